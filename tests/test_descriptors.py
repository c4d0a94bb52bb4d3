"""QEMU firmware descriptors, read from the package the firmware comes from.

Real packages (``dpkg-deb -Zzstd``, ``rpmbuild`` with zstd and xz payloads)
carry the test firmware and a descriptor in ``/usr/share/qemu/firmware/``, and
are served on 127.0.0.1. The descriptor decides the firmware's nvram statement
(``memory``, i.e. ``-bios``: stateless), the modes the build accepts
(``features``) and the launch method the pages give; a manifest statement
that contradicts it is an error naming the manifest's line and the
descriptor. The descriptors of Debian 12's ``ovmf`` are parsed as shipped.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from sevref.binfmt.descriptor import Described, Device, FlashMode, parse_descriptor
from sevref.binfmt.vmsa import Vmm
from sevref.digest import Mode
from sevref.errors import ConfigError, FirmwareFormatError
from sevref.hosts.firmware import check_descriptor, descriptor_store, launch_method
from sevref.records import FirmwareRecord, Store
from tests.packages import FIRMWARE_PATH, build_deb, build_rpm, descriptor, sha256
from tests.test_rpm import expected_snp_digests, published_digests, snp_manifest
from tests.test_sources import TINY, TINY_SHA256, run, server

DEBIAN_60 = """{
    "description": "UEFI firmware for x86_64, without Secure Boot without SMM, with empty varstore",
    "interface-types": [
        "uefi"
    ],
    "mapping": {
        "device": "flash",
        "executable": {
            "filename": "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "format": "raw"
        },
        "nvram-template": {
            "filename": "/usr/share/OVMF/OVMF_VARS_4M.fd",
            "format": "raw"
        }
    },
    "targets": [
        {
            "architecture": "x86_64",
            "machines": [
                "pc-i440fx-*",
                "pc-q35-*"
            ]
        }
    ],
    "features": [
        "acpi-s3",
        "amd-sev",
        "verbose-dynamic"
    ],
    "tags": [

    ]
}
"""
"""``/usr/share/qemu/firmware/60-edk2-x86_64.json`` of Debian 12's ovmf 2022.11-6+deb12u2, byte for byte."""

NAME = "60-edk2-x86_64-amdsev.json"
"""The descriptor's name in the test packages (as Debian's ovmf-amdsev names it)."""
PACKAGES = ("deb-zstd", "rpm-zstd", "rpm-xz")
RELEASE = {"rpm-zstd": "1.fc99", "rpm-xz": "2.el9"}


def _build(kind: str, folder: Path, text: str) -> Path:
    if kind == "deb-zstd":
        return build_deb(folder, TINY, "zstd", descriptors={NAME: text})
    return build_rpm(folder, TINY, kind.split("-")[1], release=RELEASE[kind], descriptors={NAME: text})


def _source(kind: str, url: str, pin: str) -> str:
    if kind == "deb-zstd":
        return (
            f"{{sha256: {TINY_SHA256}, debian: {{package: ovmf, version: '2099.1-1', url: \"{url}\", "
            f"deb_sha256: {pin}, path: {FIRMWARE_PATH}}}}}"
        )
    return (
        f"{{sha256: {TINY_SHA256}, rpm: {{package: edk2-ovmf, version: '20990101-{RELEASE[kind]}', "
        f'architecture: noarch, path: {FIRMWARE_PATH}, url: "{url}", rpm_sha256: {pin}}}}}'
    )


def _serve_and_build(
    kind: str, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str = ""
) -> tuple[int, str, Path]:
    """Build a package with ``text`` as its descriptor, serve it, and build a publication of its firmware."""
    www = tmp_path / "www"
    www.mkdir()
    built = _build(kind, tmp_path / "pkg", text)
    shutil.copy(built, www / built.name)
    with server(www) as url:
        manifest = snp_manifest(tmp_path, _source(kind, f"{url}/{built.name}", sha256(built)))
        if extra:
            manifest.write_text(manifest.read_text(encoding="utf-8").replace("    source:", f"{extra}\n    source:"))
        out = tmp_path / "out"
        status, _, err = run(["build", str(manifest), "--out", str(out), "--cache", str(tmp_path / "c")], capsys)
    return status, err, out


@pytest.mark.parametrize("kind", PACKAGES)
def test_a_memory_descriptor_makes_the_firmware_stateless(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pkg").mkdir()
    status, err, out = _serve_and_build(kind, descriptor(), tmp_path, capsys)
    assert (status, err) == (0, ""), err
    assert published_digests(out) == expected_snp_digests(capsys)
    record = json.loads((out / "firmware" / "fw.json").read_bytes())["firmware"]
    assert record["nvram"] == {"state": "stateless", "store": "none", "basis": "descriptor"}
    assert record["descriptor"]["path"] == f"/usr/share/qemu/firmware/{NAME}"
    assert record["descriptor"]["device"] == "memory"
    assert FirmwareRecord.from_dict(record).to_dict() == record  # the record reads back as written
    page = (out / "firmware" / "fw.html").read_text(encoding="utf-8")
    assert NAME in page and "stateless" in page


@pytest.mark.parametrize("kind", PACKAGES)
def test_a_mode_the_descriptor_does_not_list_is_refused_naming_it(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pkg").mkdir()
    text = descriptor(features=("amd-sev", "amd-sev-es"))
    status, err, _ = _serve_and_build(kind, text, tmp_path, capsys)
    assert status == 1
    assert f"/usr/share/qemu/firmware/{NAME} does not list amd-sev-snp" in err
    assert "modes_beyond_descriptor: [sev-snp]" in err


def test_the_publisher_may_vouch_for_a_mode_the_descriptor_leaves_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pkg").mkdir()
    text = descriptor(features=("amd-sev",))
    status, err, out = _serve_and_build(
        "deb-zstd", text, tmp_path, capsys, extra="    modes_beyond_descriptor: [sev-snp]"
    )
    assert (status, err) == (0, ""), err
    record = json.loads((out / "firmware" / "fw.json").read_bytes())["firmware"]
    assert record["modes"]["sev-snp"] == "supported"


def test_vouching_for_a_mode_the_descriptor_lists_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pkg").mkdir()
    status, err, _ = _serve_and_build(
        "deb-zstd", descriptor(), tmp_path, capsys, extra="    modes_beyond_descriptor: [sev-snp]"
    )
    assert status == 1
    assert re.search(r"m\.yaml:\d+:\d+: firmware fw: modes_beyond_descriptor: sev-snp, but ovmf 2099\.1-1", err), err


def test_vouching_without_a_descriptor_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pkg").mkdir()
    text = descriptor(filename="/usr/share/edk2/ovmf/OTHER.fd")
    status, err, _ = _serve_and_build("rpm-xz", text, tmp_path, capsys, extra="    modes_beyond_descriptor: [sev-snp]")
    assert status == 1
    assert "modes_beyond_descriptor: its package has no QEMU firmware descriptor naming it" in err, err


@pytest.mark.parametrize("kind", PACKAGES)
def test_a_contradicting_nvram_statement_names_both(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pkg").mkdir()
    status, err, _ = _serve_and_build(kind, descriptor(), tmp_path, capsys, extra="    nvram: separate")
    assert status == 1
    assert len(err.strip().splitlines()) == 1, err
    package = "ovmf 2099.1-1" if kind == "deb-zstd" else f"edk2-ovmf 20990101-{RELEASE[kind]}"
    line = re.search(r"m\.yaml:(\d+):(\d+): firmware fw: nvram: separate, but (.*?): (\S+) maps", err)
    assert line is not None, err
    assert (line.group(3), line.group(4)) == (package, f"/usr/share/qemu/firmware/{NAME}")
    assert "as memory (-bios)" in err and "expected nvram: none" in err


def test_a_descriptor_that_names_another_file_says_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pkg").mkdir()
    text = descriptor(filename="/usr/share/edk2/ovmf/OTHER.fd", features=("amd-sev",))
    status, err, out = _serve_and_build("deb-zstd", text, tmp_path, capsys)
    assert (status, err) == (0, ""), err
    record = json.loads((out / "firmware" / "fw.json").read_bytes())["firmware"]
    assert "descriptor" not in record and record["nvram"]["basis"] != "descriptor"


def test_a_descriptor_naming_a_link_to_the_file_describes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The test packages have /usr/share/OVMF/OVMF.fd, a link to the firmware."""
    (tmp_path / "pkg").mkdir()
    status, err, out = _serve_and_build("rpm-zstd", descriptor(filename="/usr/share/OVMF/OVMF.fd"), tmp_path, capsys)
    assert (status, err) == (0, ""), err
    record = json.loads((out / "firmware" / "fw.json").read_bytes())["firmware"]
    assert record["nvram"]["basis"] == "descriptor"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "a list; expected an object"),
        ('{"description": "x"}', "has no 'interface-types'"),
        ("{" + '"a": 1, "a": 2' + "}", "appears twice"),
        ("not json", "not JSON"),
        (descriptor(device="disk"), "mapping.device is 'disk'; expected flash, memory or kernel"),
        (descriptor(device="flash", mode="sometimes"), "mapping.mode is 'sometimes'"),
        (json.dumps({**json.loads(descriptor()), "extra": 1}), "has 'extra'; expected only"),
        (" " * (65 << 10), "expected at most 65536"),
    ],
)
def test_bad_descriptors_are_one_line_naming_the_package_and_the_file(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pkg").mkdir()
    status, err, _ = _serve_and_build("deb-zstd", text, tmp_path, capsys)
    assert status == 1
    assert len(err.strip().splitlines()) == 1, err
    assert message in err and f"/usr/share/qemu/firmware/{NAME}" in err


def test_debian_12_descriptor_reads_as_shipped() -> None:
    parsed = parse_descriptor(json.loads(DEBIAN_60), "ovmf: 60", "/usr/share/qemu/firmware/60-edk2-x86_64.json")
    assert (parsed.device, parsed.flash_mode) == (Device.FLASH, FlashMode.SPLIT)
    assert parsed.executable == "/usr/share/OVMF/OVMF_CODE_4M.fd"
    assert parsed.nvram_template == "/usr/share/OVMF/OVMF_VARS_4M.fd"
    assert descriptor_store(parsed) is Store.SEPARATE
    assert parsed.lists("sev") and not parsed.lists("sev-es") and not parsed.lists("sev-snp")
    assert parsed.runs_on("x86_64", "pc-q35-7.2") and parsed.runs_on("x86_64", "pc-i440fx-9.1")
    assert parsed.runs_on("x86_64", "microvm") is False
    assert parsed.runs_on("aarch64", "virt") is None
    described = Described(parsed, "ovmf 2022.11-6+deb12u2")
    check_descriptor(described, Vmm.QEMU, Mode.SEV, "pc-q35-7.2")
    with pytest.raises(ConfigError, match="60-edk2-x86_64.json does not list amd-sev-es"):
        check_descriptor(described, Vmm.QEMU, Mode.SEV_ES, "pc-q35-7.2")
    with pytest.raises(ConfigError, match="lists machine types pc-i440fx-\\*, pc-q35-\\* for x86_64"):
        check_descriptor(described, Vmm.QEMU, Mode.SEV, "microvm")
    check_descriptor(described, Vmm.EC2, Mode.SEV_ES, None)  # descriptors are QEMU's
    launch = launch_method(Vmm.QEMU, Mode.SEV, parsed)
    assert "/usr/share/OVMF/OVMF_VARS_4M.fd as pflash unit 1" in launch and "60-edk2-x86_64.json" in launch


@pytest.mark.parametrize(
    ("device", "mode", "store", "launch"),
    [
        ("memory", None, Store.NONE, "QEMU -bios FILE"),
        ("flash", "stateless", Store.NONE, "read-only"),
        ("flash", "combined", Store.EMBEDDED, "a copy per guest"),
        ("flash", "split", Store.SEPARATE, "as pflash unit 1"),
        ("kernel", None, None, "or -bios FILE"),
    ],
)
def test_each_mapping_says_where_the_variables_are(
    device: str, mode: str | None, store: Store | None, launch: str
) -> None:
    parsed = parse_descriptor(json.loads(descriptor(device=device, mode=mode)), "t", "/usr/share/qemu/firmware/t.json")
    assert descriptor_store(parsed) is store
    assert launch in launch_method(Vmm.QEMU, Mode.SEV_ES, parsed)
    assert launch_method(Vmm.QEMU, Mode.SEV_SNP, parsed).startswith("QEMU -bios FILE (loaded into guest_memfd")


def test_a_flash_template_where_the_mode_forbids_one_is_refused() -> None:
    document = json.loads(descriptor(device="flash", mode="stateless"))
    document["mapping"]["nvram-template"] = {"filename": "/x", "format": "raw"}
    with pytest.raises(FirmwareFormatError, match="mapping.mode stateless with an nvram-template"):
        parse_descriptor(document, "t", "/usr/share/qemu/firmware/t.json")
