"""``sevref build`` and ``sevref validate``: output, reproducibility, and every refusal."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sevref._cli import main
from sevref.binfmt.ovmf import SEV_ES_RESET_BLOCK_GUID
from sevref.edge import publish
from sevref.records import Layout
from sevref.validate import check_document
from tests.conftest import REPO
from tests.images import ovmf_image
from tests.vectors import make_vectors

GOLDEN = REPO / "tests" / "golden"
# The golden publication is signed with a committed test key (see the Makefile's golden target).
GOLDEN_PASSPHRASE = "golden-test-key-not-a-secret"
GOLDEN_SIGNING = ["--signing-key", str(GOLDEN / "key" / "golden.pem"), "--keys", str(GOLDEN / "key" / "chain")]
real_tasks, real_width = publish._tasks, publish._bucket_width
UNLISTED = {"index.json", "index.dsse.json", "attestation.intoto.dsse.json", "keys/1.dsse.json"}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(args, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def test_golden_build_is_byte_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", GOLDEN_PASSPHRASE)
    status, out, err = run(
        [
            "build",
            str(GOLDEN / "manifest.yaml"),
            "--out",
            str(tmp_path / "site"),
            "--cache",
            str(tmp_path),
            *GOLDEN_SIGNING,
        ],
        capsys,
    )
    assert (status, err) == (0, "")
    assert out.startswith("built 111 entries (35 configurations, 1 firmware build) into ")
    built, golden = tree(tmp_path / "site"), tree(GOLDEN / "publication")
    assert sorted(built) == sorted(golden)
    for name, data in golden.items():
        assert built[name] == data, f"{name} differs from the golden publication (make golden after an intended change)"


@pytest.mark.slow  # multi-second subprocesses or whole-demo builds: make test runs it
def test_reproducible_across_environments(tmp_path: Path) -> None:
    # Another working folder, time zone, locale, hash seed and number of workers.
    outs = []
    for index, (tz, lang, seed, jobs) in enumerate([("UTC", "C.UTF-8", "0", "1"), ("Asia/Kolkata", "C", "12345", "2")]):
        cwd = tmp_path / f"run{index}"
        cwd.mkdir()
        env = {
            **os.environ,
            "TZ": tz,
            "LANG": lang,
            "LC_ALL": lang,
            "PYTHONHASHSEED": seed,
            "SEVREF_KEY_PASSPHRASE": GOLDEN_PASSPHRASE,
        }
        command = [
            sys.executable,
            "-m",
            "sevref",
            "build",
            str(GOLDEN / "manifest.yaml"),
            "--out",
            "site",
            "--jobs",
            jobs,
            "--cache",
            str(tmp_path),
            *GOLDEN_SIGNING,
        ]
        subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
        outs.append(tree(cwd / "site"))
    assert outs[0] == outs[1] == tree(GOLDEN / "publication")


def test_workers_writing_in_many_tasks_give_the_golden_publication(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every group shard a task of its own, across two workers: each writes its shards, pages, parts of
    # the candidates and spilled digests, and the result is the golden publication, byte for byte.
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", GOLDEN_PASSPHRASE)
    monkeypatch.setattr(publish, "TASK_ENTRIES", 1)
    tasks: list[int] = []

    def counted(plan: publish.BuildPlan) -> list[tuple[int, int, int]]:
        found = real_tasks(plan)
        tasks.append(len(found))
        return found

    monkeypatch.setattr(publish, "_tasks", counted)
    args = ["build", str(GOLDEN / "manifest.yaml"), "--out", str(tmp_path / "site"), "--cache", str(tmp_path)]
    status, out, err = run([*args, "--jobs", "2", *GOLDEN_SIGNING], capsys)
    assert (status, err) == (0, "")
    assert out.startswith("built 111 entries (35 configurations, 1 firmware build) into ")
    assert tasks[0] > 8
    assert tree(tmp_path / "site") == tree(GOLDEN / "publication")


def test_spilled_digests_in_two_digit_buckets_give_the_same_shards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past 16 x SPILL_ENTRIES entries the digest index spills into 256 buckets; the shards must not change.
    monkeypatch.setattr(Layout, "for_counts", classmethod(lambda cls, groups, entries: cls(1, 3)))
    args = ["build", str(GOLDEN / "manifest.yaml"), "--cache", str(tmp_path)]
    assert run([*args, "--out", str(tmp_path / "one"), "--jobs", "1"], capsys)[0] == 0
    monkeypatch.setattr(publish, "TASK_ENTRIES", 1)
    monkeypatch.setattr(publish, "SPILL_ENTRIES", 0)
    widths: list[int] = []

    def width(layout: Layout, entries: int) -> int:
        widths.append(real_width(layout, entries))
        return widths[-1]

    monkeypatch.setattr(publish, "_bucket_width", width)
    assert run([*args, "--out", str(tmp_path / "two"), "--jobs", "2"], capsys)[0] == 0
    assert widths == [2]
    one, two = tree(tmp_path / "one"), tree(tmp_path / "two")
    assert len([name for name in one if name.startswith("digests/")]) > 16
    assert one == two


def load(root: Path, path: str) -> Any:
    return json.loads((root / path).read_bytes())


def test_index_pins_every_file_and_every_file_is_valid() -> None:
    root = GOLDEN / "publication"
    index = load(root, "index.json")
    check_document("index", index, "index.json")
    listed = {f["path"]: f for f in index["files"]}
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    signatures = {path for path in on_disk if path.endswith(".sig")}
    assert set(listed) == on_disk - UNLISTED - signatures
    assert signatures == {f"{path}.sig" for path in [*listed, "index.json"] if path.endswith(".json")}
    assert [f["path"] for f in index["files"]] == sorted(listed)
    kinds = set()
    for path, ref in listed.items():
        data = (root / path).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (ref["sha256"], ref["size"])
        if path.endswith(".json"):
            kind = path.split("/")[0].removesuffix(".json")
            kinds.add(kind)
            check_document(kind, json.loads(data), path)
    assert kinds == {"publication", "groups", "digests", "firmware", "catalog"}
    assert index["counts"] == {"entries": 111, "groups": 35, "firmware": 1}
    assert (index["issued"], index["expires"], index["serial"]) == ("2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z", 3)


def groups_of(root: Path) -> list[dict[str, Any]]:
    index = load(root, "index.json")
    return [g for f in index["files"] if f["path"].startswith("groups/") for g in load(root, f["path"])["groups"]]


def test_every_entry_is_reachable_by_digest_and_candidates_are_complete() -> None:
    root = GOLDEN / "publication"
    index = load(root, "index.json")
    width = index["layout"]["digests_shard_hex"]
    groups = groups_of(root)
    candidates = load(root, "firmware/tiny.json")["candidates"]
    expected_candidates = []
    for group in groups:
        assert (
            load(root, f"groups/{group['id'][: index['layout']['groups_shard_hex']]}.json")["shard"]
            == group["id"][: index["layout"]["groups_shard_hex"]]
        )
        for vcpus, digest in group["entries"]:
            entry = group["id"] if vcpus is None else f"{group['id']}-{vcpus:04d}"
            shard = load(root, f"digests/{digest[:width]}.json")
            assert entry in shard["digests"][digest]
            if group["mode"] in ("sev", "sev-es"):
                expected_candidates.append([entry, group["mode"], digest])
    assert candidates == sorted(expected_candidates)
    assert sum(len(g["entries"]) for g in groups) == index["counts"]["entries"]
    deprecated = [g for g in groups if g["status"] == "deprecated"]
    assert {(g["mode"], g["host_stack"], g["cpu"], g["boot"]) for g in deprecated} == {
        ("sev-es", "qemu7.2.1", "EPYC-Milan", "direct")
    }
    assert all(g["successor"] == "qemu9.1-init2" for g in deprecated) and len(deprecated) == 2


def batch_line(group: dict[str, Any], vcpus: int | None, inputs: dict[str, str]) -> dict[str, Any]:
    """The `sevref digest --batch` line of a published entry."""
    line: dict[str, Any] = {
        "mode": group["mode"],
        "firmware": inputs[group["firmware"]],
        "firmware_sha256": group["firmware_sha256"],
    }
    if group["mode"] != "sev":
        line.update(vcpus=vcpus, vmm=group["vmm"])
        if group["vmm"] == "qemu":
            line.update(cpu_signature=group["cpu_signature"], vmsa_profile=group["vmsa_profile"])
        key = "sev_features" if group["mode"] == "sev-es" else "guest_features"
        line[key] = group[key]
    if group["boot"] is not None:
        line.update(kernel=inputs[f"{group['boot']}-kernel"], cmdline=group["cmdline"])
        if group["initrd_sha256"] is not None:
            line["initrd"] = inputs[f"{group['boot']}-initrd"]
    return line


def check_against_digest(
    root: Path, inputs: dict[str, str], sample: int | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> int:
    entries = [(g, vcpus, digest) for g in groups_of(root) for vcpus, digest in g["entries"]]
    if sample is not None:
        entries = random.Random(8).sample(entries, sample)
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(batch_line(g, v, inputs)) + "\n" for g, v, _ in entries))
    status, out, err = run(["digest", "--batch", str(batch)], capsys)
    assert (status, err) == (0, "")
    assert [json.loads(line)["digest"] for line in out.splitlines()] == [d for _, _, d in entries]
    return len(entries)


def test_golden_digests_equal_sevref_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = {
        "tiny": str(GOLDEN / "inputs" / "tiny.fd"),
        "direct-kernel": str(GOLDEN / "inputs" / "vmlinuz"),
        "direct-initrd": str(GOLDEN / "inputs" / "initrd.img"),
    }
    assert check_against_digest(GOLDEN / "publication", inputs, None, tmp_path, capsys) == 111


DEMO_FIRMWARE = {
    "ovmf-code": "usr/share/OVMF/OVMF_CODE.fd",
    "ovmf-code-4m": "usr/share/OVMF/OVMF_CODE_4M.fd",
    "ovmf-unified": "usr/share/ovmf/OVMF.fd",
}


@pytest.mark.slow  # multi-second subprocesses or whole-demo builds: make test runs it
def test_demo_digests_equal_sevref_digest(
    demo: Path, debian_ovmf: Path, suite_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = {ident: str(debian_ovmf / path) for ident, path in DEMO_FIRMWARE.items()}
    inputs |= {ident: str(path) for ident, path in suite_files.items() if ident != "cloud-kernel"}
    inputs["trixie-cloud-kernel"] = str(suite_files["cloud-kernel"])  # boot trixie-cloud (manifests/amdsev.yaml)
    assert check_against_digest(demo, inputs, 200, tmp_path, capsys) == 200
    index = load(demo, "index.json")
    assert index["counts"] == {"entries": 2826, "groups": 54, "firmware": 6}
    modes = load(demo, "firmware/ovmf-code-4m.json")["firmware"]["modes"]
    assert modes["sev-es"] == "supported" and modes["sev-snp"].startswith("firmware has no SEV-SNP metadata")
    # Bookworm's other images have SEV-SNP metadata, but edk2 2022.11 built with SECURE_BOOT_ENABLE cannot boot
    # as an SEV-SNP guest (sevref.hosts.firmware): the record says so of QEMU; the image's own SEV-SNP chain
    # (its firmware prefix) is still a fact of the image.
    for ident in ("ovmf-code", "ovmf-unified"):
        firmware = load(demo, f"firmware/{ident}.json")["firmware"]
        assert firmware["modes"]["sev-snp"].startswith("on QEMU: firmware: Debian's ovmf 2022.11-6+deb12u2 cannot")
        assert firmware["snp_prefix"] is not None and firmware["modes"]["sev-es"] == "supported"


def test_demo_digests_equal_known_answers(demo: Path) -> None:
    # Where the bundled publication and tests/vectors (sev-snp-measure) cover the same configuration.
    firmware_ids = {
        make_vectors.CODE: "ovmf-code",
        make_vectors.CODE_4M: "ovmf-code-4m",
        make_vectors.UNIFIED: "ovmf-unified",
    }
    published: dict[tuple[Any, ...], str] = {}
    for g in groups_of(demo):
        for vcpus, digest in g["entries"]:
            key = (g["firmware"], g["mode"], g["vmsa_profile"], g["cpu_signature"], vcpus, g["guest_features"])
            published[key] = digest
    matched: dict[str, int] = {}
    for vector in make_vectors.load():
        given = vector["input"]
        if given["firmware"] not in firmware_ids or given.get("vmm", "qemu") != "qemu" or "kernel" in given:
            continue
        mode = given["mode"]
        if mode == "sev-snp-firmware" or "firmware_prefix" in given:
            continue
        profile = {"sev": None, "sev-es": given.get("vmsa_profile"), "sev-snp": "init2"}[mode]
        key = (
            firmware_ids[given["firmware"]],
            mode,
            profile,
            given.get("cpu_signature") if mode != "sev" else None,
            given.get("vcpus") if mode != "sev" else None,
            given.get("guest_features") if mode == "sev-snp" else None,
        )
        if key in published:
            assert published[key] == vector["expected"]["digest"], vector["id"]
            matched[key[0]] = matched.get(key[0], 0) + 1
    # SEV and both SEV-ES profiles: Debian 12's firmware cannot boot as an SEV-SNP guest, so the SEV-SNP
    # vectors (of Debian 12's images) find no published entry here.
    assert set(matched) == set(firmware_ids.values()) and min(matched.values()) >= 40, matched


BASE = """\
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
  - {id: fw, source: {path: FIRMWARE, sha256: FWSHA}}
host_stacks:
  - {id: old, vmm: qemu, qemu: {version: "7.2.0", machine: pc-q35-7.2}}
  - {id: new, vmm: qemu, qemu: {version: "9.1.0", machine: pc-q35-9.1, legacy_vm_type: "off"}}
boots:
  - {id: direct, kernel: {path: KERNEL, sha256: KSHA}}
matrices:
  - id: m
    modes: [sev-es]
    firmware: [fw]
    host_stacks: [new]
    cpus: [EPYC]
    vcpus: [1-4]
    expected: {sev-es: {policy: "0x5"}}
"""


def manifest(tmp_path: Path, text: str, firmware: bytes | None = None) -> Path:
    fw = firmware if firmware is not None else (GOLDEN / "inputs" / "tiny.fd").read_bytes()
    (tmp_path / "fw.fd").write_bytes(fw)
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    text = text.replace("FIRMWARE", "fw.fd").replace("FWSHA", hashlib.sha256(fw).hexdigest())
    text = text.replace("KERNEL", "vmlinuz").replace("KSHA", hashlib.sha256(b"kernel").hexdigest())
    path = tmp_path / "m.yaml"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


TINY_SHA256 = hashlib.sha256((GOLDEN / "inputs" / "tiny.fd").read_bytes()).hexdigest()
NO_SNP = ovmf_image([(SEV_ES_RESET_BLOCK_GUID, (0x80B004).to_bytes(4, "little"))], size=8192)
BAD = {
    "YAML syntax error": (
        BASE.replace("serial: 1", "serial: [1"),
        None,
        "m.yaml:8:9: invalid YAML: expected ',' or ']', but got ':'",
    ),
    "wrong type": (
        BASE.replace("serial: 1", "serial: one"),
        None,
        'm.yaml:7:11: /publication/serial: expected an integer, found "one"',
    ),
    "number where text is meant": (
        BASE.replace('release: "1"', "release: 1.5"),
        None,
        "/publication/release: expected text, found 1.5 (a number: quote it to mean text)",
    ),
    "unknown key": (
        BASE.replace("vcpus: [1-4]", "vcpus: [1-4]\n    vcpu: 3"),
        None,
        "/matrices/0: unknown key 'vcpu'; expected one of boots, cpus",
    ),
    "duplicate key": (
        BASE.replace("serial: 1", "serial: 1\n  serial: 2"),
        None,
        "m.yaml:8:3: key 'serial' appears twice (first at 7:3); expected each key once",
    ),
    "unknown reference": (
        BASE.replace("host_stacks: [new]", "host_stacks: [newer]"),
        None,
        "matrix m: unknown host stack 'newer'; defined: old, new",
    ),
    "missing firmware file": (
        BASE.replace("path: FIRMWARE", "path: missing.fd"),
        None,
        "missing.fd: No such file or directory",
    ),
    "sha256 mismatch": (
        BASE.replace("FWSHA", "ab" * 32),
        None,
        f"firmware fw {{}}: sha256 is {TINY_SHA256}, expected {'ab' * 32} (the pin)",
    ),
    "SNP on firmware without metadata": (
        BASE.replace("modes: [sev-es]", "modes: [sev-snp]").replace(
            'sev-es: {policy: "0x5"}', "sev-snp: {policy: any}"
        ),
        NO_SNP,
        "matrix m: mode sev-snp, firmware fw, host stack new, cpu EPYC: firmware has no SEV-SNP metadata",
    ),
    "kernel hashes without a table area": (
        BASE.replace("vcpus: [1-4]", "vcpus: [1-4]\n    boots: [direct]"),
        NO_SNP,
        "firmware cannot measure a kernel: its kernel-hashes table area (7255371f-3a3b-4b04-927b-1da6efa8d454) has no such entry",
    ),
    "QEMU 7.2.0 with kernel hashes": (
        BASE.replace("host_stacks: [new]", "host_stacks: [old]").replace(
            "vcpus: [1-4]", "vcpus: [1-4]\n    boots: [direct]"
        ),
        None,
        "QEMU 7.2.0 with machine pc-q35-7.2 appends a random RNG seed to the kernel, so its digest changes on every boot; use machine type pc-q35-7.1",
    ),
    "SNP on QEMU 7.2": (
        BASE.replace("modes: [sev-es]", "modes: [sev-snp]")
        .replace("host_stacks: [new]", "host_stacks: [old]")
        .replace('sev-es: {policy: "0x5"}', "sev-snp: {policy: any}"),
        None,
        "QEMU 7.2.0 cannot launch SEV-SNP guests (added in 9.1); if this combination does not exist, leave it out with exclude: [{mode: sev-snp, host_stack: old}]",
    ),
    "a mode without a policy": (
        BASE.replace('    expected: {sev-es: {policy: "0x5"}}\n', ""),
        None,
        'm.yaml:18:5: matrix m: expected.sev-es: no guest policy; expected one (e.g. {policy: "0x30000"} for SEV-SNP) '
        "or {policy: any} to publish none, which verifiers then report",
    ),
    "SEV policy with the ES bit": (
        BASE.replace('{sev-es: {policy: "0x5"}}', "{sev-es: {policy: '0x1'}}"),
        None,
        "policy 0x1: SEV-ES needs the ES bit (0x4) set",
    ),
    "matrix too large": (
        BASE.replace("vcpus: [1-4]", "vcpus: [1-4096]").replace("cpus: [EPYC]", "cpus: [EPYC, EPYC-Rome, EPYC-Milan]"),
        None,
        "more than --max-entries 10000 entries in all",
    ),
    "alias": (
        BASE.replace("cpus: [EPYC]", "cpus: &c [EPYC]\n    include: [{cpu: *c}]"),
        None,
        "m.yaml:23:21: a YAML alias (*c); expected every value written out",
    ),
    "not UTF-8": (BASE.replace("test", "t\udcffst"), None, "m.yaml:3: byte "),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_manifests(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, firmware, message = BAD[name]
    if name == "not UTF-8":
        path = manifest(tmp_path, "")
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
    else:
        path = manifest(tmp_path, text, firmware)
    out = tmp_path / "site"
    status, stdout, err = run(
        ["build", str(path), "--out", str(out), "--max-entries", "10000", "--cache", str(tmp_path)], capsys
    )
    assert (status, stdout) == (1, "")
    assert err.count("\n") == 1 and err.startswith("sevref: error: "), err
    assert message.replace("{}", str(tmp_path / "fw.fd")) in err
    assert not out.exists() and not list(tmp_path.glob(".site.tmp-*"))
    assert run(["validate", str(path), "--max-entries", "10000", "--cache", str(tmp_path)], capsys)[0] == 1


def test_failed_build_keeps_the_previous_publication(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = manifest(tmp_path, BASE)
    out = tmp_path / "site"
    assert run(["build", str(good), "--out", str(out)], capsys)[0] == 0
    before = tree(out)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("serial: 1", "serial: 0"))
    assert run(["build", str(bad), "--out", str(out)], capsys)[0] == 1
    assert tree(out) == before
    second = tmp_path / "second.yaml"
    second.write_text(good.read_text().replace("serial: 1", "serial: 2"))
    assert run(["build", str(second), "--out", str(out)], capsys)[0] == 0
    assert load(out, "index.json")["serial"] == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site.tmp")] == []


def test_refuses_to_replace_a_folder_that_is_not_a_publication(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "home"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    status, _, err = run(["build", str(manifest(tmp_path, BASE)), "--out", str(out)], capsys)
    assert status == 1 and "not empty and not a sevref publication (no index.json); refusing to replace it" in err
    assert (out / "notes.txt").read_text() == "keep me"


def test_one_build_at_a_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (tmp_path / ".site.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        status, _, err = run(["build", str(manifest(tmp_path, BASE)), "--out", str(tmp_path / "site")], capsys)
    assert status == 1 and "another sevref build is writing it" in err


def test_no_lock_file_stays_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = manifest(tmp_path, BASE)
    before = set(tmp_path.iterdir())
    assert run(["build", str(good), "--out", str(tmp_path / "site")], capsys)[0] == 0
    assert set(tmp_path.iterdir()) - before == {tmp_path / "site"}
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep me")  # refused inside the lock
    assert run(["build", str(good), "--out", str(tmp_path / "home")], capsys)[0] == 1
    assert set(tmp_path.iterdir()) - before == {tmp_path / "site", tmp_path / "home"}


def out_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of --out that cannot be a publication's folder, with the start of its message."""
    (tmp_path / "plain").write_text("a file")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    cases = {
        "a file": (tmp_path / "plain", "a file; expected a folder"),
        "under a file": (tmp_path / "plain" / "sub" / "site", f"{tmp_path / 'plain'} is a file; expected a folder"),
        "a symbolic link": (tmp_path / "link", "a symbolic link; expected a folder"),
        # /proc refuses new entries even to root: an unwritable place whatever the user.
        "unwritable": (Path("/proc/sevref-test/site"), "cannot create /proc/sevref-test:"),
        "a mount point": (Path("/proc"), "a mount point; expected a folder on the same filesystem as /"),
    }
    return cases


@pytest.mark.parametrize("case", ["a file", "under a file", "a symbolic link", "unwritable", "a mount point"])
def test_an_out_that_cannot_be_a_publication_is_one_clear_error(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = manifest(tmp_path, BASE)
    out, message = out_cases(tmp_path)[case]
    before = {p: p.stat(follow_symlinks=False).st_mtime_ns for p in tmp_path.rglob("*")}
    status, printed, err = run(["build", str(good), "--out", str(out)], capsys)
    assert (status, printed) == (1, "")
    assert err.startswith(f"sevref: error: --out {out}: {message}") and err.count("\n") == 1, err
    after = {p: p.stat(follow_symlinks=False).st_mtime_ns for p in tmp_path.rglob("*")}
    assert after == before


@pytest.mark.parametrize(
    ("edit", "flag", "env", "expected"),
    [
        ("", [], {}, "2026-01-01T00:00:00Z"),
        ('  issued: "2026-01-01T00:00:00Z"\n', ["--issued", "2026-03-04T05:06:07Z"], {}, "2026-03-04T05:06:07Z"),
        ('  issued: "2026-01-01T00:00:00Z"\n', [], {"SOURCE_DATE_EPOCH": "1767225600"}, "2026-01-01T00:00:00Z"),
    ],
)
def test_issue_time(
    edit: str,
    flag: list[str],
    env: dict[str, str],
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = manifest(tmp_path, BASE.replace(edit, "") if edit else BASE)
    assert run(["build", str(path), "--out", str(tmp_path / "site"), *flag], capsys)[0] == 0
    index = load(tmp_path / "site", "index.json")
    assert index["issued"] == expected


def test_no_issue_time(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    path = manifest(tmp_path, BASE.replace('  issued: "2026-01-01T00:00:00Z"\n', ""))
    status, _, err = run(["build", str(path), "--out", str(tmp_path / "site")], capsys)
    assert status == 1 and "no issue time: set publication.issued in the manifest, pass --issued TIME" in err


def test_validate_reports_axes(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["validate", str(GOLDEN / "manifest.yaml")], capsys)
    assert status == 0
    assert out.splitlines() == [
        "ok: 111 entries in 35 configurations",
        "  matrix qemu: modes 3 × firmware 1 × host_stacks 2 × boots 3 × cpus 3 × vcpus 4 = 216 combinations, 105 entries",
        "  matrix clouds: modes 1 × firmware 1 × host_stacks 2 × boots 1 × cpus 1 × vcpus 3 = 6 combinations, 6 entries",
    ]


def test_several_files_form_one_publication(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = manifest(tmp_path, BASE).read_text()
    head, tail = whole.split("firmware:\n", 1)
    (tmp_path / "a.yaml").write_text(head)
    (tmp_path / "b.yaml").write_text("sevref: 1\nfirmware:\n" + tail)
    for order in (["a.yaml", "b.yaml"], ["b.yaml", "a.yaml"]):
        out = tmp_path / f"site-{order[0]}"
        assert run(["build", *(str(tmp_path / n) for n in order), "--out", str(out)], capsys)[0] == 0
    one, two = tree(tmp_path / "site-a.yaml"), tree(tmp_path / "site-b.yaml")
    assert one.keys() == two.keys()
    listing = {"publication.json", "index.json"}  # they list the manifests in the order given
    assert {k: v for k, v in one.items() if k not in listing} == {k: v for k, v in two.items() if k not in listing}


def test_serial_from_the_command_line_replaces_the_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["build", str(GOLDEN / "manifest.yaml"), "--out", str(tmp_path / "site"), "--cache", str(tmp_path)]
    status, _, err = run([*args, "--serial", "1796649418"], capsys)
    assert (status, err) == (0, "")
    index = json.loads((tmp_path / "site" / "index.json").read_bytes())
    assert index["serial"] == 1796649418  # the golden manifest says 3
    status, _, err = run([*args, "--serial", "0"], capsys)
    assert status == 2 and "--serial: expected 1 or more, found 0" in err
