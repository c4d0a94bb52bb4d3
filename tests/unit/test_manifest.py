"""sevref.manifest: the hardened loader, schema errors in prose, the model and the reader.

Documents are built in memory: bytes to :func:`parse_yaml` to :func:`load_manifests`.
Nothing here reads a file; the folder a document names is never opened.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from sevref.digest import Mode
from sevref.errors import ManifestError
from sevref.limits import MAX_MANIFEST_BYTES
from sevref.manifest import loader
from sevref.manifest.loader import Document, json_pointer, parse_yaml
from sevref.manifest.model import CpuSpec, DebianSource, Manifest, Pattern, Publication, Source
from sevref.manifest.reader import load_manifests
from sevref.records import EntryStatus
from sevref.values import Version

FOLDER = Path("/srv/manifests")
SHA = "ab" * 32
EPYC = 0x800F12  # QEMU's EPYC: family 23 (0xf + 0x8), model 1, stepping 2

BASE = f"""\
sevref: 1
publication:
  publisher: {{id: acme, name: Acme, contact: security@example.org}}
  product: cvm
  stream: stable
  release: "1.0"
  serial: 1
  issued: "2026-01-01T00:00:00Z"
  valid_for_days: 30
firmware:
  - {{id: fw, source: {{path: fw.fd, sha256: {SHA}}}}}
host_stacks:
  - {{id: q91, vmm: qemu, qemu: {{version: "9.1.0", machine: q35, legacy_vm_type: "off"}}}}
boots:
  - {{id: direct, kernel: {{path: vmlinuz, sha256: {SHA}}}}}
matrices:
  - id: m
    modes: [sev-es]
    firmware: [fw]
    host_stacks: [q91]
    cpus: [EPYC]
    vcpus: [1-4]
    expected: {{sev-es: {{policy: any}}}}
"""
"""A valid manifest: line 17 is the matrix, line 21 its cpus, line 22 its vcpus, line 23 its expected values."""


def parse(data: bytes, name: str = "m.yaml") -> Document:
    return parse_yaml(data, name, FOLDER)


def load(*texts: str) -> Manifest:
    """Load documents named a.yaml, b.yaml, ... in that order."""
    return load_manifests([parse(text.encode(), f"{'abcdef'[n]}.yaml") for n, text in enumerate(texts)])


def refusal(*texts: str) -> str:
    with pytest.raises(ManifestError) as raised:
        load(*texts)
    return str(raised.value)


def with_matrix(extra: str) -> str:
    """BASE with more keys in its matrix (from line 23), before its expected values (which ``extra`` may replace)."""
    head, expected = BASE.rsplit("    expected:", 1)
    lines = extra.splitlines()
    kept = [] if any(line.startswith("expected:") for line in lines) else [f"    expected:{expected}"]
    return head + "".join(f"    {line}\n" for line in lines) + "".join(kept)


# --------------------------------------------------------------------------- the hardened loader

LOADER_REFUSALS: dict[str, tuple[bytes, str]] = {
    "an alias": (b"a: &x 1\nb: *x\n", "m.yaml:2:4: a YAML alias (*x); expected every value written out"),
    "33 levels": (
        b"a: " + b"[" * 32 + b"]" * 32,
        "m.yaml:1:35: nested more than 32 levels deep; expected at most 32",
    ),
    "a duplicate key": (
        b"a: 1\nb: 2\na: 3\n",
        "m.yaml:3:1: key 'a' appears twice (first at 1:1); expected each key once",
    ),
    "a duplicate key further in": (
        b"m:\n  x: 1\n  x: 2\n",
        "m.yaml:3:3: key 'x' appears twice (first at 2:3); expected each key once",
    ),
    "a boolean key": (b"true: 1\n", "m.yaml:1:1: mapping key 'true' is not text; expected text keys (quote it)"),
    "a collection as a key": (
        b"? [a]\n: 1\n",
        "m.yaml:1:3: mapping key 'a collection' is not text; expected text keys (quote it)",
    ),
    "an integer of 33 characters": (
        b"a: 0x" + b"f" * 31 + b"\n",
        "m.yaml:1:4: an integer written with 33 characters; expected at most 32 (64 bits)",
    ),
    "!!omap": (
        b"a: !!omap [{b: 1}]\n",
        "m.yaml:1:4: the YAML tag !!omap makes a value JSON has not; expected plain YAML values",
    ),
    "!!pairs": (
        b"a: !!pairs [{b: 1}]\n",
        "m.yaml:1:4: the YAML tag !!pairs makes a value JSON has not; expected plain YAML values",
    ),
    "!!timestamp": (
        b"a: !!timestamp 2026-11-26\n",
        "m.yaml:1:4: the YAML tag !!timestamp makes a value JSON has not; expected plain YAML values",
    ),
    "a Python object": (
        b"a: !!python/object:os.system x\n",
        "m.yaml:1:4: invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object:os.system'",
    ),
    "not UTF-8": (b"sevref: 1\nx: \xff\n", "m.yaml:2: byte 13 (0xff) is not UTF-8; expected UTF-8 text"),
    "a NUL character": (b"a: \x00\n", "m.yaml:1:4: character 0x00 is not allowed in YAML; expected printable text"),
    "a lone surrogate": (
        b'a: "\\ud800"\n',
        "m.yaml:1:4: '\\ud800' is a lone surrogate, which UTF-8 cannot encode; expected Unicode text",
    ),
    "a lone surrogate in a key": (
        b'"x\\udfff": 1\n',
        "m.yaml:1:1: '\\udfff' is a lone surrogate, which UTF-8 cannot encode; expected Unicode text",
    ),
    "an empty file": (b"", "m.yaml:1:1: the file is empty; expected a mapping with `sevref: 1`"),
    "comments only": (b"# nothing\n", "m.yaml:1:1: the file is empty; expected a mapping with `sevref: 1`"),
    "a tab as indentation": (
        b"a:\n\t- 1\n",
        "m.yaml:2:1: invalid YAML: found character '\\t' that cannot start any token",
    ),
    "two documents": (b"a: 1\n---\nb: 2\n", "m.yaml:2:1: invalid YAML: but found another document"),
    "one byte too many": (
        b"#" * (MAX_MANIFEST_BYTES + 1),
        f"m.yaml: {MAX_MANIFEST_BYTES + 1} bytes; expected at most {MAX_MANIFEST_BYTES}",
    ),
}


@pytest.mark.parametrize("name", LOADER_REFUSALS)
def test_loader_refusals(name: str) -> None:
    data, message = LOADER_REFUSALS[name]
    with pytest.raises(ManifestError) as raised:
        parse(data)
    assert str(raised.value) == message


def test_32_levels_are_fine() -> None:
    value = parse(b"a: " + b"[" * 31 + b"]" * 31).data["a"]  # the mapping and 31 lists
    depth = 0
    while isinstance(value, list):
        depth, value = depth + 1, value[0] if value else None
    assert depth == 31


def test_node_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real bound is 200,000 nodes; a small one shows where it bites without parsing that many.
    monkeypatch.setattr(loader, "_MAX_NODES", 4)
    assert parse(b"[1, 2, 3]").data == [1, 2, 3]  # the list and three items
    with pytest.raises(ManifestError) as raised:
        parse(b"[1, 2, 3, 4]")
    assert str(raised.value) == "m.yaml:1:11: more than 4 YAML nodes; expected a smaller manifest"


# YAML 1.1 reads these as booleans, octal or sexagesimal numbers and dates; a manifest means the text.
YAML_1_1_TRAPS = {
    "off": "off",
    "on": "on",
    "yes": "yes",
    "no": "no",
    "y": "y",
    "010": "010",
    "0o10": "0o10",
    "00": "00",
    "1_000": "1_000",
    "0b1": "0b1",
    "190:20:30": "190:20:30",
    "2026-11-26": "2026-11-26",
    "2026-11-26T00:00:00Z": "2026-11-26T00:00:00Z",
    "0x": "0x",
}
# What YAML 1.2 does read as something else than text.
YAML_1_2_VALUES: dict[str, object] = {
    "0x1F": 31,
    "0": 0,
    "-5": -5,
    "+5": 5,
    "17": 17,
    "true": True,
    "False": False,
    "TRUE": True,
    "~": None,
    "null": None,
    "1.5": 1.5,
    "'010'": "010",
}


@pytest.mark.parametrize("text", YAML_1_1_TRAPS)
def test_yaml_1_1_traps_stay_text(text: str) -> None:
    assert parse(f"a: {text}\n".encode()).data == {"a": YAML_1_1_TRAPS[text]}


@pytest.mark.parametrize("text", YAML_1_2_VALUES)
def test_yaml_1_2_values(text: str) -> None:
    value = parse(f"a: {text}\n".encode()).data["a"]
    assert value == YAML_1_2_VALUES[text] and type(value) is type(YAML_1_2_VALUES[text])


def test_anchors_without_aliases_are_harmless() -> None:
    assert parse(b"a: &x 1\n").data == {"a": 1}


def test_positions_and_pointers() -> None:
    data = b'sevref: 1\nmatrices:\n  - id: m\n    vcpus: [1, "2-4"]\n"a/b~c": x\n'
    document = parse(data, "n.yaml")
    assert document.sha256 == hashlib.sha256(data).digest()
    assert document.folder == FOLDER
    assert document.where("/matrices/0/vcpus/1") == "n.yaml:4:16"
    assert document.where("/matrices/0/vcpus") == "n.yaml:4:12"
    assert document.where("/matrices/0/vcpus/7") == "n.yaml:4:12"  # no such node: its nearest parent
    assert document.where("/nowhere") == "n.yaml:1:1"
    assert document.where(json_pointer(["a/b~c"])) == "n.yaml:5:10"


def test_json_pointer_escapes_as_rfc6901() -> None:
    assert json_pointer([]) == ""
    assert json_pointer(["matrices", 0, "vcpus"]) == "/matrices/0/vcpus"
    assert json_pointer(["a/b", "c~d"]) == "/a~1b/c~0d"


# --------------------------------------------------------------------------- schema errors in prose

SCHEMA_REFUSALS: dict[str, tuple[str, str]] = {
    "a required key": (
        BASE.replace("  serial: 1\n", ""),
        "a.yaml:3:3: /publication: 'serial' is missing; expected it here",
    ),
    "an unknown key": (
        BASE + "extra: 1\n",
        "a.yaml:1:1: /: unknown key 'extra'; expected one of boots, firmware, host_stacks, lifecycle, matrices, "
        "publication, sevref",
    ),
    "another format version": (
        BASE.replace("sevref: 1", "sevref: 2"),
        "a.yaml:1:9: /sevref: expected one of 1, found 2",
    ),
    "a type": (
        BASE.replace("serial: 1", "serial: one"),
        'a.yaml:7:11: /publication/serial: expected an integer, found "one"',
    ),
    "a number where text is meant": (
        BASE.replace('release: "1.0"', "release: 1.0"),
        "a.yaml:6:12: /publication/release: expected text, found 1.0 (a number: quote it to mean text)",
    ),
    "an enum": (
        BASE.replace("modes: [sev-es]", "modes: [sev-sn]"),
        'a.yaml:18:13: /matrices/0/modes/0: expected one of "sev", "sev-es", "sev-snp", found "sev-sn"',
    ),
    "a pattern": (
        BASE.replace("id: m\n", "id: M\n"),
        'a.yaml:17:9: /matrices/0/id: expected text matching ^[a-z0-9][a-z0-9._-]{0,62}$, found "M"',
    ),
    "a long value is cut short": (
        BASE.replace('release: "1.0"', 'release: "' + "x" * 100 + '"'),
        "a.yaml:6:12: /publication/release: expected text matching ^[A-Za-z0-9][A-Za-z0-9.+~:_-]{0,62}$, found "
        '"' + "x" * 76 + "...",
    ),
    "a minimum": (
        BASE.replace("serial: 1", "serial: 0"),
        "a.yaml:7:11: /publication/serial: expected at least 1, found 0",
    ),
    "a maximum": (
        BASE.replace("cpus: [EPYC]", "cpus: [{family: 271, model: 1, stepping: 1}]"),
        "a.yaml:21:12: /matrices/0/cpus/0: expected at most 270, found 271",
    ),
    "minItems": (
        BASE.replace("vcpus: [1-4]", "vcpus: []"),
        "a.yaml:22:12: /matrices/0/vcpus: expected at least 1 item, found an empty list",
    ),
    "an empty pattern": (
        with_matrix("exclude: [{}]"),
        "a.yaml:23:15: /matrices/0/exclude/0: expected at least 1 key, found an empty mapping",
    ),
    "a boolean is no integer": (
        BASE.replace("vcpus: [1-4]", "vcpus: [true]"),
        "a.yaml:22:13: /matrices/0/vcpus/0: expected an integer or text, found true",
    ),
    "a float is no integer, even 2.0": (
        BASE.replace("vcpus: [1-4]", "vcpus: [2.0]"),
        "a.yaml:22:13: /matrices/0/vcpus/0: expected an integer or text, found 2.0",
    ),
    "a float family": (
        BASE.replace("cpus: [EPYC]", "cpus: [{family: 25.0, model: 1, stepping: 1}]"),
        "a.yaml:21:12: /matrices/0/cpus/0: expected an integer, found 25.0",
    ),
    "a float serial": (
        BASE.replace("serial: 1", "serial: 1.0"),
        "a.yaml:7:11: /publication/serial: expected an integer, found 1.0",
    ),
    "a float policy": (
        with_matrix("expected: {sev-es: {policy: 5.0}}"),
        "a.yaml:23:33: /matrices/0/expected/sev-es/policy: expected text or an integer, found 5.0",
    ),
    "a source without path or package": (
        BASE.replace("source: {path: fw.fd, sha256", "source: {sha256"),
        "a.yaml:11:22: /firmware/0/source: expected one of path, debian, url, rpm, found none of them",
    ),
}


@pytest.mark.parametrize("name", SCHEMA_REFUSALS)
def test_schema_refusals(name: str) -> None:
    text, message = SCHEMA_REFUSALS[name]
    assert refusal(text) == message


# --------------------------------------------------------------------------- what the documents mean

OTHER_FIRMWARE = f"sevref: 1\nfirmware:\n  - {{id: fw, source: {{path: other.fd, sha256: {SHA}}}}}\n"
SECOND_PUBLICATION = """\
sevref: 1
publication:
  publisher: {id: acme, name: Acme, contact: x}
  product: cvm
  stream: stable
  release: "2"
  serial: 2
"""
BOOT = f"{{id: direct, kernel: {{path: vmlinuz, sha256: {SHA}}}}}"


def with_cmdlines(cmdlines: str) -> str:
    return BASE.replace(BOOT, f"{{id: direct, kernel: {{path: vmlinuz, sha256: {SHA}}}, cmdlines: {cmdlines}}}")


def with_policy(mode: str, policy: str) -> str:
    return with_matrix(f"expected: {{{mode}: {{policy: '{policy}'}}}}").replace("modes: [sev-es]", f"modes: [{mode}]")


READER_REFUSALS: dict[str, tuple[tuple[str, ...], str]] = {
    "an id twice, in two files": (
        (BASE, OTHER_FIRMWARE),
        "b.yaml:3:5: firmware id 'fw' is already defined at a.yaml:11:5; expected unique ids",
    ),
    "two publication sections": (
        (BASE, SECOND_PUBLICATION),
        "b.yaml:3:3: a second publication section; expected one, found the first at a.yaml:3:3",
    ),
    "no publication section": (
        ("sevref: 1\nmatrices: []\n", "sevref: 1\n"),
        "a.yaml, b.yaml: no publication section; expected one in one of the files",
    ),
    "no matrices": ((BASE.split("matrices:", maxsplit=1)[0],), "a.yaml: no matrices; expected at least one"),
    "an unknown firmware": (
        (BASE.replace("firmware: [fw]", "firmware: [fw, nope]"),),
        "a.yaml:17:5: matrix m: unknown firmware 'nope'; defined: fw",
    ),
    "an unknown boot": (
        (with_matrix("boots: [null, netboot]"),),
        "a.yaml:17:5: matrix m: unknown boot 'netboot'; defined: direct",
    ),
    "an unknown boot in a pattern": (
        (with_matrix("exclude: [{boot: netboot}]"),),
        "a.yaml:23:15: unknown boot 'netboot' in a pattern; defined: direct",
    ),
    "an unknown host stack in a lifecycle rule": (
        (BASE + "lifecycle:\n  - {match: {host_stack: q72}, status: revoked, reason: old}\n",),
        "a.yaml:25:13: unknown host stack 'q72' in a pattern; defined: q91",
    ),
    "SEV-SNP without policy bit 17": (
        (with_policy("sev-snp", "0x10000"),),
        "a.yaml:23:25: policy 0x10000: SEV-SNP policy bit 17 is reserved and must be 1",
    ),
    "an SEV policy above 32 bits": (
        (with_policy("sev", "0x100000000"),),
        "a.yaml:23:21: policy 0x100000000: expected a 32-bit SEV policy",
    ),
    "SEV-ES without the ES bit": (
        (with_policy("sev-es", "0x1"),),
        "a.yaml:23:24: policy 0x1: SEV-ES needs the ES bit (0x4) set",
    ),
    "SEV with the ES bit": (
        (with_policy("sev", "0x5"),),
        "a.yaml:23:21: policy 0x5: has the ES bit (0x4), which makes the guest SEV-ES",
    ),
    "expected values for a mode the matrix lacks": (
        (with_matrix("expected: {sev: {policy: '0x1'}}"),),
        "a.yaml:23:21: expected values for mode sev, which the matrix does not list",
    ),
    "a minimum API above 255": (
        (with_matrix("expected: {sev-es: {policy: '0x5', min_api: '256.0'}}"),),
        "a.yaml:23:24: min_api 256.0: expected major and minor 0..255",
    ),
    "a mode without a policy": (
        (with_matrix("expected: {sev-es: {min_api: '0.17'}}"),),
        'a.yaml:23:24: /matrices/0/expected/sev-es: no guest policy; expected one (e.g. {policy: "0x30000"} for '
        "SEV-SNP) or {policy: any} to publish none, which verifiers then report",
    ),
    "a mode without expected values": (
        (BASE.replace("    expected: {sev-es: {policy: any}}\n", ""),),
        'a.yaml:17:5: matrix m: expected.sev-es: no guest policy; expected one (e.g. {policy: "0x30000"} for '
        "SEV-SNP) or {policy: any} to publish none, which verifiers then report",
    ),
    "a vCPU range backwards": (
        (BASE.replace("vcpus: [1-4]", "vcpus: [4-2]"),),
        "a.yaml:22:12: vcpus range '4-2': expected 1 <= low <= high <= 4096",
    ),
    "a vCPU range from 0": (
        (BASE.replace("vcpus: [1-4]", "vcpus: [0-3]"),),
        "a.yaml:22:12: vcpus range '0-3': expected 1 <= low <= high <= 4096",
    ),
    "a vCPU range past 4096": (
        (BASE.replace("vcpus: [1-4]", "vcpus: [1-4097]"),),
        "a.yaml:22:12: vcpus range '1-4097': expected 1 <= low <= high <= 4096",
    ),
    "a CPU twice by name": (
        (BASE.replace("cpus: [EPYC]", "cpus: [EPYC, epyc]"),),
        "a.yaml:21:11: a CPU appears twice; expected each once",
    ),
    "a CPU twice by signature": (
        (BASE.replace("cpus: [EPYC]", "cpus: [{family: 23, model: 1, stepping: 2}, '0x800f12']"),),
        "a.yaml:21:11: a CPU appears twice; expected each once",
    ),
    "an unknown CPU model": (
        (BASE.replace("cpus: [EPYC]", "cpus: [EPYC-Nope]"),),
        "a.yaml:21:12: cpu: unknown CPU model 'EPYC-Nope'; expected one of EPYC, EPYC-v1, EPYC-v2, EPYC-v3, "
        "EPYC-v4, EPYC-v5, EPYC-IBPB, EPYC-Rome, EPYC-Rome-v1, EPYC-Rome-v2, EPYC-Rome-v3, EPYC-Rome-v4, "
        "EPYC-Rome-v5, EPYC-Milan, EPYC-Milan-v1, EPYC-Milan-v2, EPYC-Milan-v3, EPYC-Genoa, EPYC-Genoa-v1, "
        "EPYC-Genoa-v2, EPYC-Turin, EPYC-Turin-v1 (for -cpu host give the host's signature instead)",
    ),
    "SEV-ES without vCPUs": (
        (BASE.replace("    vcpus: [1-4]\n", ""),),
        "a.yaml:17:5: matrix m: modes sev-es need vcpus; found none",
    ),
    "QEMU without CPUs": (
        (BASE.replace("    cpus: [EPYC]\n", ""),),
        "a.yaml:17:5: matrix m: QEMU launches need cpus (the guest CPU is in every VMSA); found none",
    ),
    "an issue time that is no date": (
        (BASE.replace("2026-01-01T00:00:00Z", "2026-02-30T00:00:00Z"),),
        "a.yaml:8:11: expected a time like 2026-11-26T00:00:00Z, found '2026-02-30T00:00:00Z'",
    ),
    "both expires and valid_for_days": (
        (BASE.replace("valid_for_days: 30", "valid_for_days: 30\n  expires: '2026-03-01T00:00:00Z'"),),
        "a.yaml:3:3: publication: give expires or valid_for_days, not both",
    ),
    "a package path out of the package": (
        (BASE.replace("{path: fw.fd, sha256", "{debian: {package: ovmf, version: '1', path: ../etc/x}, sha256"),),
        "a.yaml:11:67: expected a path inside the package such as usr/share/OVMF/OVMF_CODE.fd, found '../etc/x'",
    ),
    "an absolute package path": (
        (BASE.replace("{path: fw.fd, sha256", "{debian: {package: ovmf, version: '1', path: /usr/x}, sha256"),),
        "a.yaml:11:67: expected a path inside the package such as usr/share/OVMF/OVMF_CODE.fd, found '/usr/x'",
    ),
    "a command line with a NUL": (
        (with_cmdlines('[a, "b\\0"]'),),
        "a.yaml:15:131: cmdline: a NUL byte; QEMU's -append cannot carry one",
    ),
    "a command line twice": (
        (with_cmdlines("[a, null, a]"),),
        "a.yaml:15:127: a command line appears twice; expected each once",
    ),
    "a host stack that cannot exist": (
        (
            BASE.replace(
                '{version: "9.1.0", machine: q35, legacy_vm_type: "off"}', '{version: "7.2.0", machine: pc-q35-9.1}'
            ),
        ),
        "a.yaml:13:5: host stack q91: qemu machine pc-q35-9.1: newer than QEMU 7.2.0, which does not have it",
    ),
}


@pytest.mark.parametrize("name", READER_REFUSALS)
def test_reader_refusals(name: str) -> None:
    texts, message = READER_REFUSALS[name]
    assert refusal(*texts) == message


@pytest.mark.parametrize(("mode", "policy"), [("sev", 0x1), ("sev-es", 0x5), ("sev-snp", 0x30000)])
def test_policies_that_fit_their_mode(mode: str, policy: int) -> None:
    [matrix] = load(with_policy(mode, f"{policy:#x}")).matrices
    assert matrix.expected[Mode(mode)].policy == policy


def test_the_model_of_a_valid_manifest() -> None:
    text = with_matrix("boots: [null, direct]\nexpected: {sev-es: {policy: '0x5', min_api: '1.55'}}")
    text = text.replace("vcpus: [1-4]", "vcpus: [8, 2-3, '3-4', 2]")
    manifest = load(text)
    assert manifest.documents == (("a.yaml", hashlib.sha256(text.encode()).digest()),)
    publication = manifest.publication
    assert (publication.publisher_id, publication.product, publication.stream, publication.release) == (
        "acme",
        "cvm",
        "stable",
        "1.0",
    )
    assert publication.origin == "a.yaml:3:3"
    [matrix] = manifest.matrices
    assert matrix.vcpus == (2, 3, 4, 8)  # ranges and counts merged, sorted, once each
    assert matrix.cpus == (CpuSpec(EPYC, "EPYC"),)
    assert matrix.boots == (None, "direct")
    assert matrix.expected[Mode.SEV_ES].min_api == (1, 55)
    assert matrix.origin == "a.yaml:17:5"
    firmware = manifest.firmware["fw"]
    assert firmware.source == Source(bytes.fromhex(SHA), path=FOLDER / "fw.fd", origin="a.yaml:11:22", root=FOLDER)
    host = manifest.host_stacks["q91"]
    assert (host.qemu_version, host.machine, host.legacy_vm_type) == (Version(9, 1, 0), "q35", "off")
    assert manifest.boots["direct"].cmdlines == (None,)  # no cmdlines: one boot without -append


def test_package_sources() -> None:
    text = BASE.replace("{path: fw.fd, sha256", "{debian: {package: ovmf, version: '1:2', path: ./usr/x.fd}, sha256")
    source = load(text).firmware["fw"].source
    assert source.debian is not None
    assert dataclasses.replace(source.debian, origin="") == DebianSource("ovmf", "1:2", "all", "usr/x.fd", None)
    assert source.path is None and source.root is None
    assert source.label() == "ovmf 1:2 (all): usr/x.fd"


def test_absolute_paths_stay_absolute() -> None:
    source = load(BASE.replace("{path: fw.fd,", "{path: /opt/fw.fd,")).firmware["fw"].source
    assert source.path == Path("/opt/fw.fd") and source.root == FOLDER


def test_lifecycle_patterns() -> None:
    rules = """\
lifecycle:
  - {match: {mode: sev-es, cpu: '0x800f12', vcpus: [1-2]}, status: deprecated, reason: old, successor: m2}
  - {match: {host_stack: [q91], cpu: [EPYC]}, status: revoked, reason: broken, since: '2026-02-01T00:00:00Z'}
"""
    first, second = load(BASE + rules).lifecycle
    assert first.match == Pattern(
        modes=frozenset({Mode.SEV_ES}), cpus=frozenset({CpuSpec(EPYC)}), vcpus=frozenset({1, 2}), origin="a.yaml:25:13"
    )
    assert (first.status, first.reason, first.successor, first.since) == (EntryStatus.DEPRECATED, "old", "m2", None)
    assert second.match.host_stacks == frozenset({"q91"}) and second.match.modes is None
    assert (second.status, second.since, second.origin) == (EntryStatus.REVOKED, "2026-02-01T00:00:00Z", "a.yaml:26:5")
    # A CPU given by signature matches every model with it; one given by name only that model.
    assert first.match.matches_cpu(CpuSpec(EPYC, "EPYC")) and first.match.matches_cpu(CpuSpec(EPYC))
    assert second.match.matches_cpu(CpuSpec(EPYC, "EPYC")) and not second.match.matches_cpu(CpuSpec(EPYC))
    assert not first.match.matches_cpu(None)  # a pattern with a CPU never matches a launch without one
    assert Pattern().matches_cpu(None)


PUBLICATION = Publication(
    publisher_id="acme",
    publisher_name="Acme",
    contact="x",
    url=None,
    product="cvm",
    stream="stable",
    release="1",
    serial=1,
    description="",
    issued=None,
    expires=None,
    valid_for_days=None,
    origin="a.yaml:2:1",
)


def test_validity() -> None:
    days = dataclasses.replace(PUBLICATION, valid_for_days=30)
    assert days.validity("2026-01-31T12:00:00Z") == ("2026-01-31T12:00:00Z", "2026-03-02T12:00:00Z")
    fixed = dataclasses.replace(PUBLICATION, expires="2026-02-01T00:00:00Z")
    assert fixed.validity("2026-01-01T00:00:00Z") == ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
    with pytest.raises(ManifestError) as raised:
        fixed.validity("2026-02-01T00:00:00Z")
    assert str(raised.value) == (
        "a.yaml:2:1: publication: expires 2026-02-01T00:00:00Z is not after issued 2026-02-01T00:00:00Z"
    )
    with pytest.raises(ManifestError) as raised:
        PUBLICATION.validity("2026-01-01T00:00:00Z")
    assert str(raised.value) == "a.yaml:2:1: publication: expected expires or valid_for_days, found neither"


def test_labels() -> None:
    assert CpuSpec(EPYC, "EPYC").label() == "EPYC"
    assert CpuSpec(0xA10F11).label() == "0xa10f11"
    assert Source(bytes(32), path=Path("/opt/fw.fd")).label() == "/opt/fw.fd"
