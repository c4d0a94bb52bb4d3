"""Stateless and stateful firmware: read from the image, stated in the manifest, said by the site and by verify.

QEMU's documentation: "you must build a stateless firmware file which doesn't
use an NVRAM store, because the NVRAM area is not measured". Every Debian OVMF
build is stateful; an edk2 AmdSevX64 build (the synthetic image of
tests/images.py, with the variable store template its real counterpart starts
with) is stateless when its publisher says so.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from sevref._cli import main
from sevref.digest import LaunchMeasureInputs, sev_launch_measurement
from sevref.edge.keys import generate_key_files
from sevref.sign import Algorithm
from tests.conftest import CACHE, REPO
from tests.images import amdsev_image

WARNING = (
    "UEFI variables are outside the measurement: the host can change boot order and Secure Boot keys "
    "without changing this digest."
)
PASSPHRASE = "firmware-state-test-passphrase"
IDENTITY = ["--publisher", "t", "--product", "p", "--stream", "s", "--at", "2026-01-02T00:00:00Z"]
MANIFEST = """\
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
  - id: fw
    source: {path: fw.fd, sha256: SHA}
NVRAM
host_stacks:
  - {id: q, vmm: qemu, qemu: {version: "9.1.0", machine: q35, legacy_vm_type: "off"}, host_linux: "6.12"}
matrices:
  - id: m
    modes: [MODES]
    firmware: [fw]
    host_stacks: [q]
    cpus: [EPYC-Milan]
    vcpus: [1-2]
    expected: EXPECTED
"""


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(args, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def load(path: Path) -> Any:
    return json.loads(path.read_bytes())


def manifest(folder: Path, image: bytes, nvram: str | None, modes: str = "sev-es, sev-snp") -> Path:
    """A manifest of one firmware image in ``folder``, with ``nvram: <nvram>`` if given."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fw.fd").write_bytes(image)
    text = MANIFEST.replace("SHA", hashlib.sha256(image).hexdigest()).replace("MODES", modes)
    text = text.replace("EXPECTED", "{" + ", ".join(f"{m.strip()}: {{policy: any}}" for m in modes.split(",")) + "}")
    text = text.replace("NVRAM\n", "" if nvram is None else f"    nvram: {nvram}\n")
    (folder / "m.yaml").write_text(text)
    return folder / "m.yaml"


@pytest.fixture()
def key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", PASSPHRASE)
    generate_key_files(tmp_path / "key", Algorithm.ECDSA_P256, PASSPHRASE.encode())
    return tmp_path / "key"


def build(path: Path, key: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    site = path.parent / "site"
    status, _, err = run(["build", str(path), "--out", str(site), "--signing-key", f"{key}.pem"], capsys)
    assert status == 0, err
    return site


def verify(site: Path, key: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    return run(["verify", "--publication", str(site), "--trusted-key", f"{key}.pub", *IDENTITY, *extra], capsys)


def first_digest(site: Path, mode: str) -> str:
    groups = [g for path in sorted((site / "groups").glob("*.json")) for g in load(path)["groups"]]
    return str(next(g for g in groups if g["mode"] == mode)["entries"][0][1])


def snp_digest(site: Path) -> str:
    return first_digest(site, "sev-snp")


def scan(site: Path, key: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    """Verify the SEV-ES launch measurement of the first SEV-ES entry, made with a fresh TIK."""
    tik, nonce = bytes(range(40, 56)), bytes(16)
    digest = bytes.fromhex(first_digest(site, "sev-es"))
    blob = sev_launch_measurement(digest, LaunchMeasureInputs(1, 55, 21, 0x5), nonce, tik) + nonce
    (site.parent / "tik").write_bytes(tik)
    evidence = ["--launch-measurement", base64.b64encode(blob).decode(), "--tik", str(site.parent / "tik")]
    evidence += ["--api-major", "1", "--api-minor", "55", "--build", "21", "--policy", "0x5"]
    return verify(site, key, capsys, *evidence, *extra)


SNP_LAUNCH = "stateless (no variable store; an SEV-SNP launch: -bios, no OVMF_VARS)"
"""What an SEV-SNP entry on QEMU says of any firmware: it is given with -bios, and there is no OVMF_VARS."""


def text_of(html: str) -> str:
    """A page's text, tags removed and white space folded, as a reader sees it."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_debians_images_are_published_as_stateful_with_the_warning_on_their_pages(demo: Path) -> None:
    nvram = {fw: load(demo / f"firmware/{fw}.json")["firmware"]["nvram"] for fw in ("ovmf-code", "ovmf-code-4m")}
    # OVMF_CODE.fd and OVMF_CODE_4M.fd start with their code volume: the store is OVMF_VARS, beside them.
    assert all(found == {"state": "stateful", "store": "separate", "basis": "image"} for found in nvram.values())
    # OVMF.fd starts with its own variable store (gEfiSystemNvDataFvGuid).
    unified = load(demo / "firmware/ovmf-unified.json")["firmware"]["nvram"]
    assert unified == {"state": "stateful", "store": "embedded", "basis": "image"}
    catalog = load(demo / "catalog/ovmf-code.json")["configurations"]
    pages = ["index.html", "firmware/ovmf-code.html", f"entry/{catalog[0]['id']}.html"]
    for page in pages:
        text = text_of((demo / page).read_text(encoding="utf-8"))
        assert WARNING in text, page
        assert "stateful (variables in a separate, unmeasured OVMF_VARS file; read from the image)" in text, page
    home = text_of((demo / "index.html").read_text(encoding="utf-8"))
    assert "ovmf-code is stateful." in home and "OvmfPkg/AmdSev/AmdSevX64.dsc" in home


def test_an_amdsev_build_its_publisher_calls_stateless_is_stateless(
    tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = build(manifest(tmp_path / "pub", amdsev_image(4 << 20, variable_store=True), "none"), key, capsys)
    record = load(site / "firmware/fw.json")["firmware"]["nvram"]
    assert record == {"state": "stateless", "store": "none", "basis": "manifest"}
    for page in ["index.html", "firmware/fw.html", *(f"entry/{p.name}" for p in (site / "entry").iterdir())]:
        text = text_of((site / page).read_text(encoding="utf-8"))
        stated = "stateless (no variable store; stated by the publisher)"
        snp = page.startswith("entry/") and "sev-snp on fw" in text
        assert (SNP_LAUNCH if snp else stated) in text, page
        if page.startswith("entry/"):
            bios = "Firmware launch QEMU -bios FILE (loaded into guest_memfd and measured whole); no pflash and no OVMF_VARS"
            assert (bios in text) is snp and ("Firmware launch QEMU pflash unit 0" in text) is not snp, page
        assert WARNING not in text and "Stateful firmware" not in text, page
    status, out, err = scan(site, key, capsys, "--require-stateless")
    assert (status, err) == (0, "")
    assert "note: firmware fw is stateless (no variable store; stated by the publisher)." in out
    status, out, err = verify(site, key, capsys, "--snp-measurement", snp_digest(site), "--require-stateless")
    assert (status, err) == (0, "")
    assert f"note: firmware fw is {SNP_LAUNCH}." in out
    status, out, _ = verify(site, key, capsys, "--snp-measurement", snp_digest(site), "--json")
    (match,) = json.loads(out)["matches"]
    assert match["acceptable"] and match["firmware_nvram"]["state"] == "stateless"


def test_unstated_an_image_that_carries_a_store_is_stateful(
    tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = build(manifest(tmp_path / "pub", amdsev_image(4 << 20, variable_store=True), None), key, capsys)
    assert load(site / "firmware/fw.json")["firmware"]["nvram"] == {
        "state": "stateful",
        "store": "embedded",
        "basis": "image",
    }
    status, out, err = scan(site, key, capsys)
    assert (status, err) == (0, "") and "note: firmware fw is stateful (variable store inside the image" in out
    status, out, err = scan(site, key, capsys, "--require-stateless")
    assert status == 1 and "refused: firmware fw is stateful" in out and out.rstrip().endswith("(--require-stateless)")
    assert err.startswith("sevref: no match: ") and "each refused" in err
    status, out, _ = scan(site, key, capsys, "--require-stateless", "--json")
    document = json.loads(out)
    assert document["verdict"] == "no match"
    (match,) = document["matches"]
    assert match["firmware_nvram"] == {
        "state": "stateful",
        "store": "embedded",
        "basis": "image",
        "explanation": match["firmware_nvram"]["explanation"],
    }
    assert any(n["blocking"] and "(--require-stateless)" in n["note"] for n in match["notes"])
    # The same image as an SEV-SNP guest: QEMU gives it with -bios, with no OVMF_VARS, and its store is
    # part of the measured image; there is no state the host keeps.
    status, out, err = verify(site, key, capsys, "--snp-measurement", snp_digest(site), "--require-stateless")
    assert (status, err) == (0, "") and f"note: firmware fw is {SNP_LAUNCH}." in out


@pytest.mark.parametrize("nvram", [None, "none", "separate", "embedded"])
def test_an_image_that_does_not_tell_takes_the_statement(
    nvram: str | None, tmp_path: Path, key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The synthetic image of the known-answer vectors starts with filler, not a firmware volume.
    site = build(manifest(tmp_path / "pub", amdsev_image(4 << 20), nvram), key, capsys)
    found = load(site / "firmware/fw.json")["firmware"]["nvram"]
    expected = {
        None: {"state": "stateful", "store": "unknown", "basis": "assumed"},
        "none": {"state": "stateless", "store": "none", "basis": "manifest"},
        "separate": {"state": "stateful", "store": "separate", "basis": "manifest"},
        "embedded": {"state": "stateful", "store": "embedded", "basis": "manifest"},
    }[nvram]
    assert found == expected


CONTRADICTIONS = {
    # image, stated: what the error says the image shows, and the statement it expects
    ("OVMF_CODE.fd", "embedded"): ("the image starts with its code (firmware volume 8c8ce578-", "separate"),
    ("OVMF_CODE.fd", "none"): ("whatever OVMF_VARS file the host adds as pflash unit 1, unmeasured", "separate"),
    ("OVMF.fd", "separate"): ("the image starts with a UEFI variable store (firmware volume fff12b8d-", "embedded"),
    ("OVMF.fd", "none"): ("and no SEV kernel-hashes area, as an OvmfPkgX64 build", "embedded"),
    ("amdsev", "separate"): ("(gEfiSystemNvDataFvGuid) at offset 0x0, 0x84000 bytes) of its own", "embedded"),
}


@pytest.mark.parametrize(("image", "stated"), list(CONTRADICTIONS))
def test_a_statement_the_image_contradicts_is_an_error_naming_the_manifest_line(
    image: str, stated: str, debian_ovmf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (
        amdsev_image(4 << 20, variable_store=True)
        if image == "amdsev"
        else (debian_ovmf / {"OVMF_CODE.fd": "usr/share/OVMF", "OVMF.fd": "usr/share/ovmf"}[image] / image).read_bytes()
    )
    path = manifest(tmp_path, data, stated)
    line = path.read_text().splitlines().index(f"    nvram: {stated}") + 1
    for command in ("validate", "build"):
        extra = ["--out", str(tmp_path / "site")] if command == "build" else []
        status, out, err = run([command, str(path), *extra], capsys)
        shown, expected = CONTRADICTIONS[image, stated]
        assert (status, out) == (1, ""), err
        assert err.startswith(f"sevref: error: {path}:{line}:") and err.count("\n") == 1, err
        assert f"firmware fw: nvram: {stated}, but " in err and shown in err
        assert err.rstrip().endswith(f"; expected nvram: {expected}"), err
    assert not (tmp_path / "site").exists()


def test_the_bundled_manifests_may_state_what_the_images_show(
    tmp_path: Path, debian_ovmf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Debian's images need no statement: sevref reads each one. A copy that states the same is accepted.
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    firmware = tmp_path / "manifests" / "firmware.yaml"
    text = firmware.read_text()
    assert not re.search(r"^ +nvram:", text, re.M)
    for path, store in (
        ("OVMF/OVMF_CODE.fd", "separate"),
        ("OVMF/OVMF_CODE_4M.fd", "separate"),
        ("ovmf/OVMF.fd", "embedded"),
    ):
        line = f"        path: usr/share/{path}\n"
        assert line in text
        text = text.replace(line, f"{line}    nvram: {store}\n")
    firmware.write_text(text)
    paths = [str(p) for p in sorted((tmp_path / "manifests").glob("*.yaml"))]
    assert run(["validate", *paths, "--cache", str(CACHE)], capsys)[0] == 0
