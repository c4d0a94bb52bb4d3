"""sevref.excludes: every combination that cannot launch, in one run, and the fewest exclude rules that leave them out.

The matrices are those of tests/unit/test_expand.py (synthetic firmware: ``fw``
launches everything, ``old`` has no SEV-SNP metadata and no kernel-hashes
table; QEMU 9.1 lacks EPYC-Turin, QEMU 7.2 also EPYC-Genoa, SEV-SNP and a
predictable kernel hash).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import time
from pathlib import Path

import pytest
import yaml

from sevref._cli import main
from sevref.binfmt.vmsa import CPU_MODELS
from sevref.digest import Mode
from sevref.errors import ManifestError
from sevref.excludes import MAX_CAUSES_SHOWN, MAX_RULES_SHOWN, Refusals, UnlaunchableError
from sevref.expand import Expansion
from sevref.manifest.loader import parse_yaml
from sevref.manifest.reader import load_manifests
from tests.unit import test_expand
from tests.unit.test_expand import HEAD, matrix, run
from tests.unit.test_hosts import Q72, TINY, Case, text_of

SEVERAL = """
modes: [sev, sev-es, sev-snp]
firmware: [fw, old]
host_stacks: [q91, q72]
cpus: [EPYC, EPYC-Genoa, EPYC-Turin]
boots: [null, direct]
vcpus: [1-4]
"""
"""Seven independent problems: two CPU models QEMU 7.2 lacks, one QEMU 9.1 lacks, SEV-SNP on QEMU 7.2, SEV-SNP
on firmware without metadata, a kernel on QEMU 7.2.0 (RNG seed) and a kernel on firmware without a table."""

CAUSES = [
    "kernel hashes: QEMU 7.2.0 with machine pc-q35-7.2 appends a random RNG seed",
    "firmware cannot measure a kernel",
    "cpu EPYC-Turin: QEMU 9.1.0 does not have this CPU model",
    "cpu EPYC-Genoa: QEMU 7.2.0 does not have this CPU model",
    "cpu EPYC-Turin: QEMU 7.2.0 does not have this CPU model",
    "mode sev-snp: QEMU 7.2.0 cannot launch SEV-SNP guests",
    "firmware has no SEV-SNP metadata",
]


def refused(*matrices: str, tail: str = "") -> str:
    """The diagnostic of a refused expansion, as the command line prints it."""
    with pytest.raises(ManifestError) as raised:
        run(*matrices, tail=tail)
    return raised.value.diagnostic()


def block(message: str) -> list[str]:
    """The rules of the suggested ``exclude:`` block, as written."""
    lines = message.splitlines()
    start = lines.index("    exclude:")
    return [line.removeprefix("      - ") for line in lines[start + 1 :] if line.startswith("      - ")]


def pasted(body: str, message: str) -> str:
    """The matrix with the suggested block pasted at its end, as a user would."""
    lines = message.splitlines()
    start = lines.index("    exclude:")
    return matrix("m", body) + "".join(line + "\n" for line in lines[start:])


Row = tuple[str, str, str, str | None, str | None]
"""(mode, firmware, host stack, boot, CPU) of a group."""


def launchable(expansion: Expansion) -> set[Row]:
    return {
        (
            str(g.mode),
            g.firmware,
            g.host.id,
            None if g.boot is None else g.boot.id,
            None if g.cpu is None else g.cpu.label(),
        )
        for g in expansion.groups
    }


def oracle(
    modes: list[str], firmware: list[str], hosts: list[str], boots: list[str | None], cpus: list[str]
) -> set[Row]:
    """Every combination that launches on its own: a one-combination matrix each."""
    found: set[Row] = set()
    for mode, fw, host, boot in itertools.product(modes, firmware, hosts, boots):
        for cpu in cpus if mode != "sev" else [None]:
            body = f"modes: [{mode}]\nfirmware: [{fw}]\nhost_stacks: [{host}]\nboots: [{boot or 'null'}]\nvcpus: [1]"
            body += f"\ncpus: [{cpu}]" if cpu else ""
            try:
                run(matrix("m", body))
            except ManifestError:
                continue
            found.add((mode, fw, host, boot, cpu))
    return found


def test_every_cause_of_a_matrix_in_one_run() -> None:
    message = refused(matrix("m", SEVERAL))
    lines = message.splitlines()
    assert lines[0] == (
        f"{test_expand.MATRIX_LINE}: matrix m: 39 combinations cannot launch, for 7 causes; if they do not exist, "
        "leave them out with 6 exclude rules (below)"
    )
    for cause in CAUSES:
        assert sum(cause in line for line in lines) == 1, (cause, message)
    assert "  mode sev-es, firmware fw, host stack q91, cpu EPYC-Turin (and 7 more): cpu EPYC-Turin: QEMU" in message
    assert block(message) == [
        "{firmware: old, boot: direct}",
        "{host_stack: q72, boot: direct}",
        "{host_stack: q72, cpu: [EPYC-Genoa, EPYC-Turin]}",
        "{host_stack: q91, cpu: EPYC-Turin}",
        "{mode: sev-snp, firmware: old}",
        "{mode: sev-snp, host_stack: q72}",
    ]
    with pytest.raises(UnlaunchableError) as raised:
        run(matrix("m", SEVERAL))
    assert str(raised.value) == message


def test_the_suggested_block_pasted_validates_and_leaves_out_only_what_cannot_launch() -> None:
    message = refused(matrix("m", SEVERAL))
    expansion = run(pasted(SEVERAL, message))
    expected = oracle(
        ["sev", "sev-es", "sev-snp"],
        ["fw", "old"],
        ["q91", "q72"],
        [None, "direct"],
        ["EPYC", "EPYC-Genoa", "EPYC-Turin"],
    )
    assert launchable(expansion) == expected
    assert len(expected) == 2 * 2 * 2 + 2 * 2 * 2 * 3 * 2 - 39  # SEV has no CPU axis: 8 + 48 combinations, 39 refused


@pytest.mark.parametrize(
    ("hosts", "rules"),
    [
        # One CPU model one QEMU lacks: one rule, not one per firmware, mode or boot.
        ("[q91]", ["{host_stack: q91, cpu: EPYC-Turin}"]),
        # Three (model, QEMU) pairs: two rules, those of QEMU 7.2 merged.
        ("[q91, q72]", ["{host_stack: q72, cpu: [EPYC-Genoa, EPYC-Turin]}", "{host_stack: q91, cpu: EPYC-Turin}"]),
    ],
)
def test_one_rule_per_cpu_model_a_qemu_lacks(hosts: str, rules: list[str]) -> None:
    body = f"modes: [sev-es]\nfirmware: [fw, old]\nhost_stacks: {hosts}\ncpus: [EPYC, EPYC-Genoa, EPYC-Turin]\n"
    body += "boots: [null]\nvcpus: [1-4]"
    body = body.replace("EPYC-Genoa, ", "") if hosts == "[q91]" else body
    message = refused(matrix("m", body))
    if len(rules) == 1:
        assert message.endswith(f"if these 2 combinations do not exist, leave them out with exclude: [{rules[0]}]")
        assert "\n" not in message  # one cause, one rule: one line, as every other error
        expansion = run(matrix("m", body + f"\nexclude: [{rules[0]}]"))
    else:
        assert block(message) == rules
        expansion = run(pasted(body, message))
    assert {cpu for _, _, _, _, cpu in launchable(expansion)} == {"EPYC"} | (
        {"EPYC-Genoa"} if "q72" in hosts else set()
    )


def test_several_matrices_are_refused_together() -> None:
    first = matrix("a", "modes: [sev-snp]\nfirmware: [old]\nhost_stacks: [q91]\ncpus: [EPYC]\nvcpus: [1]")
    second = matrix("b", "modes: [sev-es]\nfirmware: [fw]\nhost_stacks: [q91]\ncpus: [EPYC-Turin]\nvcpus: [1]")
    message = refused(first, second)
    assert [line.split(": ", 2)[1] for line in message.splitlines()] == ["matrix a", "matrix b"]
    assert message.splitlines()[1].endswith("leave it out with exclude: [{host_stack: q91, cpu: EPYC-Turin}]")


HEAD_Q80 = HEAD.replace(
    "  - {id: ec2, vmm: ec2}\n",
    '  - {id: ec2, vmm: ec2}\n  - {id: q80, vmm: qemu, qemu: {version: "8.0", machine: pc-q35-8.0}}\n',
)


def test_vcpu_counts_a_machine_type_refuses_are_one_rule_that_spares_sev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_expand, "HEAD", HEAD_Q80)
    body = "modes: [sev, sev-es]\nfirmware: [fw]\nhost_stacks: [q80, q91]\ncpus: [EPYC, EPYC-Rome]\nvcpus: [1, 288-290]"
    message = refused(matrix("m", body))
    rule = '{mode: sev-es, host_stack: q80, vcpus: ["289-290"]}'
    assert message.endswith(f"if these 2 combinations do not exist, leave them out with exclude: [{rule}]")
    assert (
        "mode sev-es, firmware fw, host stack q80, cpu EPYC, vcpus 289-290 (and 1 more): machine pc-q35-8.0" in message
    )
    expansion = run(matrix("m", body + f"\nexclude: [{rule}]"))
    assert sorted((str(g.mode), g.host.id, g.vcpus) for g in expansion.groups) == [
        ("sev", "q80", ()),
        ("sev", "q91", ()),
        ("sev-es", "q80", (1, 288)),
        ("sev-es", "q80", (1, 288)),
        ("sev-es", "q91", (1, 288, 289, 290)),
        ("sev-es", "q91", (1, 288, 289, 290)),
    ]


def test_a_matrix_with_exclude_rules_is_told_to_add_to_them() -> None:
    message = refused(matrix("m", SEVERAL + "exclude: [{cpu: EPYC-Genoa}]"))
    assert "    # add to the exclude rules of matrix m:" in message.splitlines()
    assert "      - {host_stack: [q72, q91], cpu: EPYC-Turin}" in message  # EPYC-Genoa is out already


def test_the_work_is_per_combination_not_per_entry() -> None:
    """22 CPU models × 4096 vCPU counts × 2 modes, firmware, host stacks and boots: 1.4 million entries."""
    cpus = ", ".join(sorted(CPU_MODELS))
    body = f"modes: [sev-es, sev-snp]\nfirmware: [fw, old]\nhost_stacks: [q91, q72]\ncpus: [{cpus}]\nvcpus: [1-4096]"
    started = time.monotonic()
    message = refused(matrix("m", body + "\nboots: [null, direct]"))
    assert time.monotonic() - started < 20
    rules = block(message)
    assert len(rules) <= 8, message
    assert "{mode: sev-snp, host_stack: q72}" in rules and "{mode: sev-snp, firmware: old}" in rules


def _fake(matrix_text: str) -> Refusals:
    document = parse_yaml((HEAD + matrix_text).encode(), "m.yaml", Path("/srv/manifests"))
    (found,) = load_manifests([document]).matrices
    return Refusals(found)


def test_the_output_is_capped() -> None:
    """More causes and rules than are shown: the rest are counted, and the block still parses."""
    refusals = _fake(matrix("m", "modes: [sev]\nfirmware: [fw]\nhost_stacks: [q91]"))
    names = [f"f{i:02d}" for i in range(30)]
    for i, name in enumerate(names):  # one firmware fails on one host stack each: no two rules merge
        refusals.refuse(
            (Mode.SEV, name, f"h{i:02d}", None, None), f"reason {i}", lambda: frozenset({"firmware", "host_stack"})
        )
    live = [(Mode.SEV, f, f"h{j:02d}", None, None) for f in names for j in range(30)]
    lines = refusals.report(live).splitlines()
    assert lines[0].endswith(
        "30 combinations cannot launch, for 30 causes; if they do not exist, leave them out with 30 exclude rules (below)"
    )
    assert lines[MAX_CAUSES_SHOWN + 1] == f"  and {30 - MAX_CAUSES_SHOWN} more causes"
    assert lines[-1] == f"      # and {30 - MAX_RULES_SHOWN} more rules: validate again once these are in"
    rules = yaml.safe_load("\n".join(lines[MAX_CAUSES_SHOWN + 2 :]))["exclude"]
    assert len(rules) == MAX_RULES_SHOWN and rules[0] == {"firmware": "f00", "host_stack": "h00"}


@pytest.mark.parametrize("ident", ["null", "1.0", "true", "0x10", "a-b"])
def test_ids_that_yaml_reads_otherwise_are_quoted(ident: str) -> None:
    refusals = _fake(matrix("m", "modes: [sev]\nfirmware: [fw]\nhost_stacks: [q91]"))
    refusals.refuse((Mode.SEV, ident, "q91", None, None), "why", lambda: frozenset({"firmware"}))
    message = refusals.report([(Mode.SEV, ident, "q91", None, None), (Mode.SEV, "fw", "q91", None, None)])
    rule = message.rsplit("exclude: ", 1)[1]
    assert yaml.safe_load(rule) == [{"firmware": ident}]


def test_a_rule_never_leaves_out_a_launchable_combination() -> None:
    """A cause that names too few axes for this matrix gets the next axes it needs."""
    refusals = _fake(matrix("m", "modes: [sev]\nfirmware: [fw]\nhost_stacks: [q91]"))
    live = [(Mode.SEV, fw, host, None, None) for fw in ("a", "b") for host in ("h1", "h2")]
    refusals.refuse((Mode.SEV, "a", "h1", None, None), "why", lambda: frozenset({"firmware"}))
    assert refusals.report(live).endswith("leave it out with exclude: [{firmware: a, host_stack: h1}]")


def test_sevref_validate_prints_every_cause_and_the_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the command line: one error, several lines, the block ready to paste."""
    case = Case(Q72, modes="[sev-es, sev-snp]", cpus="[EPYC, EPYC-Genoa, EPYC-Turin]", boots="[null, direct]")
    (tmp_path / "fw.fd").write_bytes(TINY.read_bytes())
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    text = text_of(case).replace("ab" * 32, hashlib.sha256(b"kernel").hexdigest())
    (tmp_path / "m.yaml").write_text(text, encoding="utf-8")
    assert main(["validate", str(tmp_path / "m.yaml")], out=io.StringIO()) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith(f"sevref: error: {tmp_path / 'm.yaml'}:")
    assert (
        "combinations cannot launch, for 4 causes; if they do not exist, leave them out with 3 exclude rules"
        in lines[0]
    )
    assert lines[-4:] == [
        "    exclude:",
        "      - {host_stack: h, boot: direct}",
        "      - {host_stack: h, cpu: [EPYC-Genoa, EPYC-Turin]}",
        "      - {mode: sev-snp, host_stack: h}",
    ]
    (tmp_path / "m.yaml").write_text(text + "".join(line + "\n" for line in lines[-4:]), encoding="utf-8")
    assert main(["validate", str(tmp_path / "m.yaml")], out=io.StringIO()) == 0, capsys.readouterr().err


def test_a_cause_that_names_no_axes_gets_as_few_as_spare_the_rest() -> None:
    refusals = _fake(matrix("m", "modes: [sev]\nfirmware: [fw]\nhost_stacks: [q91]"))
    live = [(Mode.SEV, fw, host, boot, None) for fw in ("a", "b") for host in ("h1", "h2") for boot in (None, "k")]
    for host in ("h1", "h2"):  # firmware a with a kernel, on every host stack
        refusals.refuse((Mode.SEV, "a", host, "k", None), "why", lambda: None)
    assert refusals.report(live).endswith("leave them out with exclude: [{firmware: a, boot: k}]")
