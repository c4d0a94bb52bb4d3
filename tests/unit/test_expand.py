"""sevref.expand: the matrix, collapsed axes, include/exclude, stable ids, merging and refusals.

Manifests are built in memory; the firmware is synthetic (tests/images.py), parsed
with :func:`sevref.binfmt.ovmf.parse_ovmf`.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref.binfmt.ovmf import SEV_ES_RESET_BLOCK_GUID, OvmfInfo, parse_ovmf
from sevref.binfmt.vmsa import CPU_MODELS, VmsaProfile
from sevref.digest import LaunchConfig, Mode
from sevref.errors import ManifestError
from sevref.expand import AxisReport, Expansion, Group, expand, group_identity
from sevref.ids import group_id
from sevref.manifest.loader import parse_yaml
from sevref.manifest.model import Expected
from sevref.manifest.reader import load_manifests
from sevref.records import EntryStatus
from tests.images import ovmf_image, snp_image

# As tests/golden/make_inputs.py lays out its tiny.fd: firmware pages, VMSA, a zero
# page, SNP_KERNEL_HASHES (0x10) around the kernel-hashes table, and an unmeasured page.
SECTIONS = [(0x800000, 0x2000, 1), (0x802000, 0x1000, 2), (0x803000, 0x1000, 3), (0x804000, 0x1000, 0x10)]
FULL = parse_ovmf(snp_image([*SECTIONS, (0x805000, 0x1000, 4)], size=16 * 4096, hash_table=(0x804C00, 0x400)))
"""Firmware that can launch every mode, with or without a kernel."""
NO_SNP = parse_ovmf(ovmf_image([(SEV_ES_RESET_BLOCK_GUID, (0x80B004).to_bytes(4, "little"))], size=8192))
"""Firmware with an SEV-ES reset block but neither SEV-SNP metadata nor a kernel-hashes table."""
FIRMWARE: dict[str, OvmfInfo] = {"fw": FULL, "old": NO_SNP}
FW_SHA = "ab" * 32

HEAD = f"""\
sevref: 1
publication:
  publisher: {{id: acme, name: Acme, contact: x}}
  product: cvm
  stream: stable
  release: "1"
  serial: 1
firmware:
  - {{id: fw, source: {{path: fw.fd, sha256: {FW_SHA}}}}}
  - {{id: old, source: {{path: old.fd, sha256: {"cd" * 32}}}}}
host_stacks:
  - {{id: q91, vmm: qemu, qemu: {{version: "9.1.0", machine: q35, legacy_vm_type: "off"}}}}
  - {{id: q72, vmm: qemu, qemu: {{version: "7.2.0", machine: pc-q35-7.2}}}}
  - {{id: ec2, vmm: ec2}}
  - {{id: gce, vmm: gce}}
boots:
  - {{id: direct, kernel: {{path: vmlinuz, sha256: {"ef" * 32}}}, cmdlines: [null, quiet]}}
matrices:
"""
"""Everything but the matrices, which start on line 19."""


def matrix(ident: str, body: str) -> str:
    """A matrix; one that states no expected values gets ``policy: any`` for each of its modes, last."""
    lines = body.strip().splitlines()
    if not any(line.startswith("expected:") for line in lines):
        modes = next(line for line in lines if line.startswith("modes:"))[len("modes:") :].strip(" []").split(",")
        lines.append(f"expected: {{{', '.join(f'{m.strip()}: {{policy: any}}' for m in modes)}}}")
    return f"  - id: {ident}\n" + "".join(f"    {line}\n" for line in lines)


def run(*matrices: str, tail: str = "", max_entries: int | None = None) -> Expansion:
    document = parse_yaml((HEAD + "".join(matrices) + tail).encode(), "m.yaml", Path("/srv/manifests"))
    manifest = load_manifests([document])
    if max_entries is None:
        return expand(manifest, FIRMWARE, found={})
    return expand(manifest, FIRMWARE, max_entries, found={})


def refusal(*matrices: str, max_entries: int | None = None) -> str:
    with pytest.raises(ManifestError) as raised:
        run(*matrices, max_entries=max_entries)
    return str(raised.value)


def summary(expansion: Expansion) -> list[tuple[str, str, str | None, tuple[int, ...], str]]:
    """(mode, host stack, CPU, vCPUs, matrix) of each group, in the expansion's order."""
    return [
        (str(g.mode), g.host.id, None if g.cpu is None else g.cpu.label(), g.vcpus, g.matrix) for g in expansion.groups
    ]


ALL_MODES = matrix(
    "m",
    """
modes: [sev, sev-es, sev-snp]
firmware: [fw]
host_stacks: [q91]
cpus: [EPYC, EPYC-Milan]
vcpus: [1, 2]
""",
)


def test_sev_has_no_cpu_and_no_vcpus() -> None:
    expansion = run(ALL_MODES)
    assert sorted(summary(expansion)) == [
        ("sev", "q91", None, (), "m"),
        ("sev-es", "q91", "EPYC", (1, 2), "m"),
        ("sev-es", "q91", "EPYC-Milan", (1, 2), "m"),
        ("sev-snp", "q91", "EPYC", (1, 2), "m"),
        ("sev-snp", "q91", "EPYC-Milan", (1, 2), "m"),
    ]
    assert expansion.entries == 9  # the SEV group is one entry
    [report] = expansion.reports
    assert report == AxisReport(
        "m", {"modes": 3, "firmware": 1, "host_stacks": 1, "boots": 1, "cpus": 2, "vcpus": 2}, 12, 9
    )
    assert report.describe() == (
        "matrix m: modes 3 × firmware 1 × host_stacks 1 × boots 1 × cpus 2 × vcpus 2 = 12 combinations, 9 entries"
    )
    sev = next(g for g in expansion.groups if g.mode is Mode.SEV)
    assert sev.config == LaunchConfig(mode=Mode.SEV)
    assert sev.entry_ids() == [sev.id]
    es = next(g for g in expansion.groups if g.mode is Mode.SEV_ES)
    assert es.entry_ids() == [f"{es.id}-0001", f"{es.id}-0002"]


def test_groups_are_sorted_by_id_and_ids_are_their_identity() -> None:
    expansion = run(ALL_MODES)
    ids = [g.id for g in expansion.groups]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for group in expansion.groups:
        assert group.id == group_id(group.identity())
        assert group.identity() == group_identity(
            group.mode, bytes.fromhex(FW_SHA), group.host, group.cpu, group.config
        )


def test_clouds_have_no_cpu() -> None:
    expansion = run(
        matrix(
            "c",
            """
modes: [sev-snp]
firmware: [fw]
host_stacks: [q91, ec2, gce]
cpus: [EPYC, EPYC-Milan]
vcpus: [1, 2]
""",
        )
    )
    assert sorted(summary(expansion)) == [
        ("sev-snp", "ec2", None, (1, 2), "c"),
        ("sev-snp", "gce", None, (1, 2), "c"),
        ("sev-snp", "q91", "EPYC", (1, 2), "c"),
        ("sev-snp", "q91", "EPYC-Milan", (1, 2), "c"),
    ]
    assert expansion.reports[0].entries == 8
    ec2 = next(g for g in expansion.groups if g.host.id == "ec2")
    assert (ec2.config.cpu_signature, ec2.config.vmsa_profile, ec2.config.sev_features) == (None, None, 0x1)


def test_the_host_stack_decides_the_profile() -> None:
    expansion = run(
        matrix(
            "m",
            """
modes: [sev-es]
firmware: [fw]
host_stacks: [q91, q72]
cpus: [EPYC]
vcpus: [1]
""",
        )
    )
    profiles = {g.host.id: g.config.vmsa_profile for g in expansion.groups}
    assert profiles == {"q91": VmsaProfile.INIT2, "q72": VmsaProfile.LEGACY}


def test_boots_multiply_by_command_line() -> None:
    expansion = run(
        matrix(
            "m",
            """
modes: [sev]
firmware: [fw]
host_stacks: [q91]
boots: [null, direct]
""",
        )
    )
    assert sorted((g.boot.id if g.boot else "-", g.cmdline or "-") for g in expansion.groups) == [
        ("-", "-"),
        ("direct", "-"),
        ("direct", "quiet"),
    ]
    assert expansion.reports[0].axes["boots"] == 3


SUBSETS = """
modes: [sev-es]
firmware: [fw]
host_stacks: [q91]
cpus: [EPYC, EPYC-Milan, '0xa10f11']
vcpus: [1-4]
"""
INCLUDE_EXCLUDE: dict[str, tuple[str, list[tuple[str, tuple[int, ...]]]]] = {
    # name: (rules, [(cpu, vcpus) of each group])
    "no rules": ("", [("EPYC", (1, 2, 3, 4)), ("EPYC-Milan", (1, 2, 3, 4)), ("0xa10f11", (1, 2, 3, 4))]),
    "exclude a CPU": ("exclude: [{cpu: EPYC-Milan}]", [("EPYC", (1, 2, 3, 4)), ("0xa10f11", (1, 2, 3, 4))]),
    "exclude some vCPU counts": (
        "exclude: [{vcpus: [4]}, {cpu: EPYC-Milan, vcpus: [1-2]}]",
        [("EPYC", (1, 2, 3)), ("EPYC-Milan", (3,)), ("0xa10f11", (1, 2, 3))],
    ),
    "exclude every vCPU count of a CPU": (
        "exclude: [{cpu: EPYC, vcpus: [1-4]}]",
        [("EPYC-Milan", (1, 2, 3, 4)), ("0xa10f11", (1, 2, 3, 4))],
    ),
    "include keeps only what matches": ("include: [{cpu: EPYC}]", [("EPYC", (1, 2, 3, 4))]),
    "include some vCPU counts": (
        "include: [{cpu: EPYC, vcpus: [1, 2]}, {cpu: EPYC, vcpus: [2, 3]}, {cpu: '0xa10f11', vcpus: [4]}]",
        [("EPYC", (1, 2, 3)), ("0xa10f11", (4,))],
    ),
    "a signature matches every model that has it": (
        "exclude: [{cpu: '0xa00f11'}]",  # EPYC-Milan's signature
        [("EPYC", (1, 2, 3, 4)), ("0xa10f11", (1, 2, 3, 4))],
    ),
    "a name does not match a bare signature": (
        "exclude: [{cpu: EPYC-Genoa}]",  # Genoa's signature is 0xa10f10, not 0xa10f11
        [("EPYC", (1, 2, 3, 4)), ("EPYC-Milan", (1, 2, 3, 4)), ("0xa10f11", (1, 2, 3, 4))],
    ),
    "exclude after include": (
        "include: [{vcpus: [1-2]}]\nexclude: [{cpu: EPYC, vcpus: [2]}]",
        [("EPYC", (1,)), ("EPYC-Milan", (1, 2)), ("0xa10f11", (1, 2))],
    ),
    "every key must match": (
        "exclude: [{cpu: EPYC, host_stack: q72}]",
        [("EPYC", (1, 2, 3, 4)), ("EPYC-Milan", (1, 2, 3, 4)), ("0xa10f11", (1, 2, 3, 4))],
    ),
}


@pytest.mark.parametrize("name", INCLUDE_EXCLUDE)
def test_include_and_exclude(name: str) -> None:
    rules, expected = INCLUDE_EXCLUDE[name]
    expansion = run(matrix("m", SUBSETS + rules))
    order = {"EPYC": 0, "EPYC-Milan": 1, "0xa10f11": 2}
    found = sorted(((cpu or "", vcpus) for _, _, cpu, vcpus, _ in summary(expansion)), key=lambda g: order[g[0]])
    assert found == expected
    assert expansion.entries == sum(len(vcpus) for _, vcpus in expected)


def test_collapsed_axes_in_patterns() -> None:
    # Documents the rule as it is: where a mode measures no vCPU count (SEV), a
    # pattern's vcpus key is ignored and its other keys decide; a pattern's cpu
    # key never matches a launch without a CPU (SEV, EC2, GCE).
    body = "modes: [sev, sev-es]\nfirmware: [fw]\nhost_stacks: [q91]\ncpus: [EPYC]\nvcpus: [1-2]\n"
    assert sorted(summary(run(matrix("m", body + "exclude: [{cpu: EPYC}]")))) == [("sev", "q91", None, (), "m")]
    assert sorted(summary(run(matrix("m", body + "exclude: [{vcpus: [2]}]")))) == [("sev-es", "q91", "EPYC", (1,), "m")]
    assert sorted(summary(run(matrix("m", body + "include: [{vcpus: [2]}]")))) == [
        ("sev", "q91", None, (), "m"),
        ("sev-es", "q91", "EPYC", (2,), "m"),
    ]


# --------------------------------------------------------------------------- the same configuration twice

SAME_B = matrix("b", "modes: [sev-es]\nfirmware: [fw]\nhost_stacks: [q91]\ncpus: [EPYC]\nvcpus: [2, 4]")
SAME_A = matrix("a", "modes: [sev-es]\nfirmware: [fw]\nhost_stacks: [q91]\ncpus: [EPYC]\nvcpus: [1, 2]")


def test_two_matrices_listing_one_configuration_merge() -> None:
    expansion = run(SAME_B, SAME_A)
    assert summary(expansion) == [("sev-es", "q91", "EPYC", (1, 2, 4), "a")]  # the first matrix by id
    assert expansion.entries == 3
    assert [(r.matrix, r.entries) for r in expansion.reports] == [("b", 2), ("a", 2)]  # each counts what it lists
    assert summary(run(SAME_A, SAME_B)) == summary(expansion)


def test_two_matrices_must_agree_on_expected_values() -> None:
    ident = run(SAME_A).groups[0].id
    with_policy = SAME_A.replace("{sev-es: {policy: any}}", "{sev-es: {policy: '0x5'}}")
    message = refusal(with_policy, SAME_B)
    assert message == (
        f"m.yaml:26:5: matrix b gives configuration {ident} other expected values than matrix a; expected them to agree"
    )
    assert run(with_policy).groups[0].expected == Expected(policy=0x5)
    assert run(SAME_A).groups[0].expected == Expected(policy=None)  # policy: any publishes none


def test_every_mode_states_a_policy_or_any() -> None:
    """A mode without a stated policy is refused: a verifier could not tell a debuggable guest from another."""
    body = "modes: [sev, sev-es]\nfirmware: [fw]\nhost_stacks: [q91]\ncpus: [EPYC]\nvcpus: [1]\n"
    why = 'no guest policy; expected one (e.g. {policy: "0x30000"} for SEV-SNP) or {policy: any} to publish none'
    assert refusal(matrix("m", body + "expected: {sev: {policy: '0x1'}}")).startswith(
        f"m.yaml:25:15: matrix m: expected.sev-es: {why}"
    )
    bare = "  - id: m\n" + "".join(f"    {line}\n" for line in body.splitlines())  # no expected key at all
    assert refusal(bare).startswith(f"m.yaml:19:5: matrix m: expected.sev: {why}")
    assert refusal(matrix("m", body + "expected: {}")).startswith(f"m.yaml:25:15: matrix m: expected.sev: {why}")
    assert refusal(matrix("m", body + "expected: {sev: {policy: '0x1'}, sev-es: {min_api: '0.17'}}")).startswith(
        f"m.yaml:25:46: /matrices/0/expected/sev-es: {why}"
    )
    found = run(matrix("m", body + "expected: {sev: {policy: any}, sev-es: {policy: '0x5', min_api: '0.17'}}"))
    assert {str(g.mode): g.expected for g in found.groups} == {
        "sev": Expected(policy=None),
        "sev-es": Expected(policy=0x5, min_api=(0, 17)),
    }


# --------------------------------------------------------------------------- order does not matter

AXES = {
    "modes": ["sev", "sev-es", "sev-snp"],
    "host_stacks": ["q91", "ec2"],
    "cpus": ["EPYC", "EPYC-Milan", "'0xa10f11'"],
    "vcpus": ["1-2", "4", "3"],
}


def permuted_matrix(ident: str, rng: random.Random, exclude: str) -> str:
    lines = [f"firmware: [fw]\n{exclude}"]
    for axis, values in AXES.items():
        shuffled = values[:]
        rng.shuffle(shuffled)
        lines.append(f"{axis}: [{', '.join(shuffled)}]")
    rng.shuffle(lines)
    return matrix(ident, "\n".join(lines))


@settings(max_examples=15, deadline=None)
@given(st.randoms(use_true_random=False))
def test_ids_do_not_depend_on_manifest_or_axis_order(rng: random.Random) -> None:
    def expansion(rng: random.Random) -> list[tuple[str, tuple[int, ...], str]]:
        matrices = [
            permuted_matrix("first", rng, "exclude: [{host_stack: ec2, mode: [sev, sev-es]}]"),
            permuted_matrix("second", rng, "exclude: [{mode: [sev, sev-es]}, {vcpus: [4]}]"),
        ]
        rng.shuffle(matrices)
        return [(g.id, g.vcpus, g.matrix) for g in run(*matrices).groups]

    assert expansion(rng) == expansion(random.Random(0))


def test_labels_do_not_change_ids() -> None:
    original = run(ALL_MODES)
    renamed = parse_yaml(
        (HEAD + ALL_MODES).replace("q91", "another-name").replace("id: m\n", "id: renamed\n").encode(),
        "m.yaml",
        Path("/srv/manifests"),
    )
    assert [g.id for g in expand(load_manifests([renamed]), FIRMWARE, found={}).groups] == [
        g.id for g in original.groups
    ]


# --------------------------------------------------------------------------- refusals

MATRIX_LINE = "m.yaml:19:5"


def test_too_many_entries() -> None:
    body = "modes: [sev-es]\nfirmware: [fw]\nhost_stacks: [q91]\ncpus: [EPYC, EPYC-Milan]\nvcpus: [1-3]"
    assert len(run(matrix("m", body), max_entries=6).groups) == 2
    assert refusal(matrix("m", body), max_entries=5) == (
        f"{MATRIX_LINE}: matrix m: modes 1 × firmware 1 × host_stacks 1 × boots 1 × cpus 2 × vcpus 3 = "
        f"6 combinations, 6 entries: more than --max-entries 5 entries in all; expected at most that"
    )


def test_too_large_to_expand_at_all() -> None:
    cpus = ", ".join(sorted(CPU_MODELS))  # 22 models
    body = f"modes: [sev-es]\nfirmware: [fw]\nhost_stacks: [q91]\ncpus: [{cpus}]\nvcpus: [1-4096]"
    assert refusal(matrix("m", body), max_entries=2) == (
        f"{MATRIX_LINE}: matrix m: modes 1 × firmware 1 × host_stacks 1 × boots 1 × cpus 22 × vcpus 4096 = "
        f"90112 combinations, 0 entries: too large to expand (--max-entries 2)"
    )


def exclude_hint(keys: str) -> str:
    """The end of the refusal of one combination: the rule names the axes its cause depends on (tests/unit/test_excludes.py)."""
    return f"; if this combination does not exist, leave it out with exclude: [{{{keys}}}]"


REFUSALS: dict[str, tuple[str, str]] = {
    "SEV-SNP on firmware without metadata": (
        "modes: [sev-snp]\nfirmware: [old]\nhost_stacks: [q91]\ncpus: [EPYC]\nvcpus: [1]",
        "matrix m: mode sev-snp, firmware old, host stack q91, cpu EPYC: firmware has no SEV-SNP metadata "
        '(dc886566-984a-4798-a75e-5585a7bf67cc); expected it for a SEV-SNP launch (QEMU: "Failed to locate SEV '
        'metadata header"); mode sev-snp-firmware gives the firmware-only prefix'
        + exclude_hint("mode: sev-snp, firmware: old"),
    ),
    "SEV-SNP on QEMU 7.2": (
        "modes: [sev-snp]\nfirmware: [fw]\nhost_stacks: [q72]\ncpus: [EPYC]\nvcpus: [1]",
        "matrix m: mode sev-snp, firmware fw, host stack q72, cpu EPYC: mode sev-snp: QEMU 7.2.0 cannot launch "
        "SEV-SNP guests (added in 9.1)" + exclude_hint("mode: sev-snp, host_stack: q72"),
    ),
    "SEV-ES on EC2": (
        "modes: [sev-es]\nfirmware: [fw]\nhost_stacks: [ec2]\nvcpus: [1]",
        "matrix m: mode sev-es, firmware fw, host stack ec2: mode sev-es: EC2 offers SEV-SNP guests only"
        + exclude_hint("mode: sev-es, host_stack: ec2"),
    ),
    "a kernel on firmware without a kernel-hashes table": (
        "modes: [sev]\nfirmware: [old]\nhost_stacks: [q91]\nboots: [direct]",
        "matrix m: mode sev, firmware old, host stack q91, boot direct: firmware cannot measure a kernel: its "
        "kernel-hashes table area (7255371f-3a3b-4b04-927b-1da6efa8d454) has no such entry; expected base != 0 and "
        "size >= 0xb0, as in builds of OvmfPkg/AmdSev/AmdSevX64.dsc" + exclude_hint("firmware: old, boot: direct"),
    ),
    "a kernel on QEMU 7.2.0 with a 7.2 machine": (
        "modes: [sev]\nfirmware: [fw]\nhost_stacks: [q72]\nboots: [direct]",
        "matrix m: mode sev, firmware fw, host stack q72, boot direct: kernel hashes: QEMU 7.2.0 with machine "
        "pc-q35-7.2 appends a random RNG seed to the kernel, so its digest changes on every boot; use machine type "
        "pc-q35-7.1 (or pc-i440fx-7.1), or QEMU 7.2.1 or later" + exclude_hint("host_stack: q72, boot: direct"),
    ),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_refusals_name_the_matrix_line_and_the_rule_that_would_leave_it_out(name: str) -> None:
    body, message = REFUSALS[name]
    assert refusal(matrix("m", body)) == f"{MATRIX_LINE}: {message}"


def test_excluded_combinations_are_not_checked() -> None:
    body = "modes: [sev-es, sev-snp]\nfirmware: [fw, old]\nhost_stacks: [q91]\ncpus: [EPYC]\nvcpus: [1]"
    expansion = run(matrix("m", body + "\nexclude: [{mode: sev-snp, firmware: old}]"))
    assert sorted((str(g.mode), g.firmware) for g in expansion.groups) == [
        ("sev-es", "fw"),
        ("sev-es", "old"),
        ("sev-snp", "fw"),
    ]


# --------------------------------------------------------------------------- lifecycle

LIFECYCLE_MATRIX = matrix(
    "m", "modes: [sev-es]\nfirmware: [fw]\nhost_stacks: [q91]\ncpus: [EPYC, EPYC-Milan]\nvcpus: [1-2]"
)


def test_lifecycle_marks_the_groups_it_matches() -> None:
    tail = """\
lifecycle:
  - {match: {cpu: EPYC}, status: deprecated, reason: old, successor: EPYC-Milan}
  - {match: {mode: sev-es}, status: revoked, reason: never matched first}
"""
    groups: dict[str | None, Group] = {
        g.cpu.name if g.cpu else None: g for g in run(LIFECYCLE_MATRIX, tail=tail).groups
    }
    epyc, milan = groups["EPYC"].status, groups["EPYC-Milan"].status
    assert epyc is not None and (epyc.status, epyc.reason, epyc.successor) == (
        EntryStatus.DEPRECATED,
        "old",
        "EPYC-Milan",
    )
    assert milan is not None and milan.status is EntryStatus.REVOKED  # the first rule that matches wins
    unmarked = run(LIFECYCLE_MATRIX)
    assert all(g.status is None for g in unmarked.groups)


def test_a_lifecycle_rule_may_mark_some_vcpu_counts_of_a_configuration() -> None:
    whole = "lifecycle:\n  - {match: {vcpus: [1-2]}, status: revoked, reason: x}\n"
    assert all(g.status is not None and g.exceptions == () for g in run(LIFECYCLE_MATRIX, tail=whole).groups)
    elsewhere = "lifecycle:\n  - {match: {vcpus: [3]}, status: revoked, reason: x}\n"
    assert all(g.status is None and g.exceptions == () for g in run(LIFECYCLE_MATRIX, tail=elsewhere).groups)
    partial = "lifecycle:\n  - {match: {cpu: EPYC, vcpus: [2]}, status: revoked, reason: x}\n"
    groups = {g.cpu.name if g.cpu else None: g for g in run(LIFECYCLE_MATRIX, tail=partial).groups}
    epyc, milan = groups["EPYC"], groups["EPYC-Milan"]
    assert epyc.status is None and [(counts, rule and rule.status) for counts, rule in epyc.exceptions] == [
        ((2,), EntryStatus.REVOKED)
    ]
    assert milan.status is None and milan.exceptions == ()
