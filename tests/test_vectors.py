"""Every known-answer vector of tests/vectors/known-answers.jsonl, through ``sevref digest --batch``.

The vectors are computed by sev-snp-measure 0.0.9 and 0.0.13 (never by
sevref) with ``make vectors``; see tests/vectors/README.md. A vector that
names its CPU both by model and by signature runs three ways: as given, by
name only and by signature only.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sevref._cli import main
from tests.conftest import OVMF_FILES, missing
from tests.vectors.make_vectors import (
    AMDSEV,
    CMDLINES,
    CODE,
    CODE_4M,
    COMPOSED,
    CURRENT,
    FIRMWARE,
    KNOWN_ANSWERS,
    LEGACY,
    SECBOOT,
    TOOL,
    UNIFIED,
    PeerError,
    generate,
    load,
)

ALL = load()
VERSION = (
    {"sev-es-legacy": LEGACY}
    | dict.fromkeys(("sev", "sev-es-init2", "sev-snp", "sev-snp-firmware"), CURRENT)
    | dict.fromkeys(("sev-es-ap-fpu-zero", "sev-snp-ap-fpu-zero"), COMPOSED)
)
"""Which peer computes each group (tests/vectors/README.md)."""
BOOTS = {
    (kernel, initrd, cmdline)
    for kernel in ("fixtures/kernel.bin", "fixtures/kernel_small.bin", "fixtures/empty.bin")
    for initrd in (None, "fixtures/initrd.bin", "fixtures/empty.bin")
    for cmdline in CMDLINES
}


def group(vector: dict[str, Any]) -> str:
    return str(vector["id"]).rsplit("-", 1)[0]


def variants(vector: dict[str, Any]) -> list[dict[str, Any]]:
    given = dict(vector["input"])
    result = [given]
    if "cpu" in given and "cpu_signature" in given:
        result.append({k: v for k, v in given.items() if k != "cpu_signature"})
        result.append({k: v for k, v in given.items() if k != "cpu"})
    return result


@pytest.fixture(scope="session")
def batch_results(vector_root: Path) -> dict[str, list[dict[str, str]]]:
    """Run every vector's variants in one batch, from a file next to the inputs."""
    lines, owners = [], []
    for vector in ALL:
        for variant in variants(vector):
            lines.append(json.dumps(variant))
            owners.append(vector["id"])
    batch = vector_root / "batch.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    assert main(["digest", "--batch", str(batch)], out=out) == 0
    results: dict[str, list[dict[str, str]]] = {}
    for owner, line in zip(owners, out.getvalue().splitlines(), strict=True):
        results.setdefault(owner, []).append(json.loads(line))
    return results


@pytest.mark.parametrize("vector", ALL, ids=lambda v: v["id"])
def test_vector(vector: dict[str, Any], batch_results: dict[str, list[dict[str, str]]]) -> None:
    results = batch_results[vector["id"]]
    assert len(results) == len(variants(vector))
    for result in results:
        assert result == {"digest": vector["expected"]["digest"]}, vector["source"]


def test_every_vector_records_its_provenance(vector_root: Path) -> None:
    ids = [v["id"] for v in ALL]
    assert len(set(ids)) == len(ids)
    hashed: dict[str, str] = {}  # many vectors share a file: each is read and hashed once
    for vector in ALL:
        assert set(vector) == {"id", "input", "expected", "source"}, vector["id"]
        given, source = vector["input"], vector["source"]
        assert source["tool"] == TOOL and source["version"] == VERSION[group(vector)], vector["id"]
        paths = [given[key] for key in ("firmware", "kernel", "initrd") if key in given]
        assert sorted(source["files"]) == sorted(set(paths)), vector["id"]
        for path, sha256 in source["files"].items():
            if path not in hashed:
                hashed[path] = hashlib.sha256((vector_root / path).read_bytes()).hexdigest()
            assert hashed[path] == sha256, (vector["id"], path)
        assert given["firmware_sha256"] == source["files"][given["firmware"]]
        size = 96 if given["mode"].startswith("sev-snp") else 64
        assert re.fullmatch(f"[0-9a-f]{{{size}}}", vector["expected"]["digest"]), vector["id"]
    # The Debian images are the ones conftest pins.
    debian = {path: sha for v in ALL for path, sha in v["source"]["files"].items() if path.startswith("debian/")}
    assert {path.split("_all/", 1)[1]: sha for path, sha in debian.items()} == {
        path: sha for path, sha in OVMF_FILES.items() if "VARS" not in path
    }


def test_the_file_is_canonical() -> None:
    # One JSON object a line, keys sorted, ASCII: what make vectors writes.
    data = KNOWN_ANSWERS.read_bytes()
    assert data.endswith(b"\n") and data.isascii()
    for line, vector in zip(data.decode().splitlines(), ALL, strict=True):
        assert line == json.dumps(vector, sort_keys=True)


def test_the_vectors_cover_the_configuration_space() -> None:
    counts = Counter(group(v) for v in ALL)
    assert counts == {
        "sev": 68,
        "sev-es-legacy": 304,
        "sev-es-init2": 304,
        "sev-snp": 344,
        "sev-snp-firmware": 5,
        "sev-es-ap-fpu-zero": 32,
        "sev-snp-ap-fpu-zero": 27,
    }
    by_group: dict[str, list[dict[str, Any]]] = {}
    for vector in ALL:
        by_group.setdefault(group(vector), []).append(vector["input"])
    cpus = {c["cpu"] for c in by_group["sev-snp"] if "cpu" in c}
    assert len(cpus) == 16 and {"EPYC", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa", "EPYC-Turin", "EPYC-IBPB"} <= cpus
    for name in ("sev-es-legacy", "sev-es-init2", "sev-snp"):
        configs = by_group[name]
        assert {c.get("cpu") for c in configs} - {None} == cpus, name
        assert len({c["cpu_signature"] for c in configs if "cpu" not in c and "cpu_signature" in c}) >= 12, name
        assert {c["vcpus"] for c in configs} >= {1, 2, 3, 4, 63, 64, 65, 128, 255, 256, 512}, name
        assert sum(c["vcpus"] >= 64 for c in configs) >= 40, name
    for name in ("sev", "sev-es-legacy", "sev-es-init2", "sev-snp"):
        boots = [c for c in by_group[name] if "kernel" in c]
        assert {(c["kernel"], c.get("initrd"), c.get("cmdline")) for c in boots} == BOOTS, name
        assert {c["firmware"] for c in boots} == {AMDSEV}, name
    assert {None, "", "console=ttyS0 label=ünïcödé ✓", "a" * 1000} <= set(CMDLINES)
    for name in ("sev-es-legacy", "sev-es-init2", "sev", "sev-snp-firmware"):
        assert {c["firmware"] for c in by_group[name]} == set(FIRMWARE), name
    # Bookworm's 4 MiB build has no SEV-SNP metadata.
    assert {c["firmware"] for c in by_group["sev-snp"]} == set(FIRMWARE) - {CODE_4M} == {CODE, SECBOOT, UNIFIED, AMDSEV}
    assert {c["vmsa_profile"] for c in by_group["sev-es-legacy"]} == {"legacy"}
    assert {c["vmsa_profile"] for c in by_group["sev-es-init2"]} == {"init2"}
    # QEMU 10.1's rule: every base model, 1 vCPU (no AP: init2's digest) up to 255, on every image the mode takes.
    for name, images in (("sev-es-ap-fpu-zero", set(FIRMWARE)), ("sev-snp-ap-fpu-zero", set(FIRMWARE) - {CODE_4M})):
        configs = by_group[name]
        assert {c["vmsa_profile"] for c in configs} == {"init2-ap-fpu-zero"}, name
        assert {c["firmware"] for c in configs} == images, name
        assert {c["cpu"] for c in configs} == {"EPYC", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa", "EPYC-Turin"}, name
        assert {c["vcpus"] for c in configs} == {1, 2, 3, 4, 8, 64, 255}, name
        assert sum("kernel" in c for c in configs) == 7, name
    snp = by_group["sev-snp"]
    assert Counter(c["vmm"] for c in snp) == {"qemu": 170, "ec2": 87, "gce": 87}
    assert {c["vmm"] for c in snp if "kernel" in c} == {"qemu", "ec2", "gce"}
    assert len({c["guest_features"] for c in snp}) == 13
    assert sum("firmware_prefix" in c for c in snp) == 6


@pytest.mark.peers
def test_regenerating_reproduces_the_committed_file(vector_root: Path) -> None:
    """The whole file, byte for byte: ``make vectors`` from the installed peers (about 5 seconds)."""
    try:
        data = generate(vector_root)
    except PeerError as error:
        missing(str(error))
    assert data == KNOWN_ANSWERS.read_bytes()


def test_qemu_10_1s_rule_changes_every_digest_with_an_ap_and_no_other(vector_root: Path) -> None:
    """The init2-ap-fpu-zero vectors differ from init2's wherever there is an AP, and only there."""
    vectors = [v for v in ALL if group(v).endswith("-ap-fpu-zero")]
    batch = vector_root / "init2.jsonl"
    batch.write_text("".join(json.dumps({**v["input"], "vmsa_profile": "init2"}) + "\n" for v in vectors))
    out = io.StringIO()
    assert main(["digest", "--batch", str(batch)], out=out) == 0
    for vector, line in zip(vectors, out.getvalue().splitlines(), strict=True):
        init2 = json.loads(line)["digest"]
        assert (init2 == vector["expected"]["digest"]) is (vector["input"]["vcpus"] == 1), vector["id"]


NEWEST_QEMU_MANIFEST = """\
sevref: 1
publication:
  publisher: {id: t, name: test, contact: t@example.org}
  product: p
  stream: s
  release: "1"
  serial: 1
  issued: "2026-01-01T00:00:00Z"
  valid_for_days: 30
firmware:
  - {id: amdsev, source: {path: AMDSEV, sha256: AMDSEV_SHA}}
  - {id: code, source: {path: CODE, sha256: CODE_SHA}}
host_stacks:
  - {id: q100, vmm: qemu, qemu: {version: "10.0.13", machine: pc-q35-10.0}, host_linux: "6.12"}
  - {id: q101, vmm: qemu, qemu: {version: "10.1", machine: pc-q35-10.1}, host_linux: "6.12"}
  - {id: q102, vmm: qemu, qemu: {version: "10.2.2", machine: pc-q35-10.2}, host_linux: "6.18"}
  - id: q101-off
    vmm: qemu
    qemu: {version: "10.1", machine: pc-q35-10.1, legacy_vm_type: "off"}
    host_linux: "6.12"
  - id: q102-off
    vmm: qemu
    qemu: {version: "10.2.2", machine: pc-q35-10.2, legacy_vm_type: "off"}
    host_linux: "6.18"
matrices:
  - id: snp
    modes: [sev-snp]
    firmware: [amdsev]
    host_stacks: [q100, q101, q102]
    cpus: [EPYC, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin]
    vcpus: [1-4, 8, 16, 32, 63-65, 128, 255, 256, 512]
    expected: {sev-snp: {policy: "0x30000"}}
    exclude:
      - {cpu: EPYC-Turin, host_stack: q100}
  - id: es
    modes: [sev-es]
    firmware: [code]
    host_stacks: [q101-off, q102-off]
    cpus: [EPYC, EPYC-Rome, EPYC-Milan, EPYC-Genoa, EPYC-Turin]
    vcpus: [1-8, 15-17, 31-33, 63-65, 127-129, 255-257, 511, 512, 1024, 4096]
    expected: {sev-es: {policy: "0x5"}}
"""


def test_the_newest_qemu_publishes_what_sev_snp_measure_computes(vector_root: Path) -> None:
    """QEMU 10.1 and 10.2 on the KVM_SEV_INIT2 path publish the digests sev-snp-measure 0.0.13 computes.

    QEMU 10.1 gives every AP FCW 0 and MXCSR 0 in its own CPU state, and the
    issue that reported it expected the APs' VMSAs to carry them. They do not
    reach the VMSA: QEMU hands them to KVM_SET_XSAVE with XSTATE_BV 0, and
    Linux's copy_uabi_to_xstate takes the legacy FPU fields only for the
    components XSTATE_BV names, so KVM keeps FCW 0x37f and MXCSR 0x1f80
    (sevref.hosts.qemu.AP_CONTEXT). sev-snp-measure 0.0.13, which builds every
    VMSA with those values, is right for 10.1 and 10.2 too; these are its
    vectors, at 1 vCPU and at 2 or more, next to QEMU 10.0's.
    """
    text = NEWEST_QEMU_MANIFEST
    for name, path in (("AMDSEV", AMDSEV), ("CODE", CODE)):
        text = text.replace(f"{name}_SHA", hashlib.sha256((vector_root / path).read_bytes()).hexdigest())
        text = text.replace(f"path: {name}", f"path: {vector_root / path}")
    (vector_root / "newest.yaml").write_text(text, encoding="utf-8")
    site = vector_root / "newest-site"
    args = ["build", str(vector_root / "newest.yaml"), "--out", str(site)]
    args += ["--allow-path", str((vector_root / CODE).resolve().parent)]
    assert main(args, out=io.StringIO()) == 0
    firmware = {"amdsev": AMDSEV, "code": CODE}
    published = {}
    for shard in sorted((site / "groups").glob("*.json")):
        for g in json.loads(shard.read_bytes())["groups"]:
            assert g["vmsa_profile"] == "init2", g["id"]
            for vcpus, digest in g["entries"]:
                published[(firmware[g["firmware"]], g["mode"], g["host_stack"], g["cpu_signature"], vcpus)] = digest
    expected = {}
    for vector in ALL:
        given = vector["input"]
        plain = not {"kernel", "firmware_prefix"} & set(given) and given.get("vmm") == "qemu"
        if plain and group(vector) in ("sev-snp", "sev-es-init2") and given.get("guest_features", "0x1") == "0x1":
            expected[(given["firmware"], given["mode"], given["cpu_signature"], given["vcpus"])] = vector
    checked: Counter[tuple[str, bool]] = Counter()
    for (path, mode, host, signature, vcpus), digest in published.items():
        known = expected.get((path, mode, signature, vcpus))
        if known is not None:
            assert digest == known["expected"]["digest"], (host, known["id"])
            checked[(host, vcpus > 1)] += 1
    hosts = ("q100", "q101", "q102", "q101-off", "q102-off")
    assert {host for host, _ in checked} == set(hosts)
    assert all(checked[(host, True)] >= 20 and checked[(host, False)] >= 2 for host in hosts), checked
