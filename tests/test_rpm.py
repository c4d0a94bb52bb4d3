"""RPM sources: real RPMs (rpmbuild: zstd, xz, gzip and uncompressed payloads) by URL and from real repositories (createrepo_c).

Everything is served on 127.0.0.1 by the local server of ``tests/test_sources.py``.
A publication built from an RPM holds the SEV-SNP digests ``sevref digest``
gives for the firmware inside; damaged, truncated, mislabelled and oversized
packages, and repositories whose metadata lies, are one-line errors naming
the file or URL, the field or offset, what was expected and what was found.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref.binfmt.archive import Caps
from sevref.binfmt.rpm import RpmArchive
from sevref.errors import FetchError, FirmwareFormatError, SevrefError
from tests.packages import FIRMWARE_PATH, PAYLOADS, build_rpm, create_repo, sha256, zstd_bomb
from tests.test_sources import INPUTS, TINY, TINY_SHA256, run, server

RELEASES = {"zstd": "1.fc99", "xz": "2.el9", "gzip": "3.fc99", "none": "4.fc99"}
"""One release per payload compression, so that one repository holds all three."""
REPOS = ("gz", "xz", "bz2", "zstd")
"""Compressions of the repositories' primary metadata."""
CAPS = Caps(256 << 20, "the limit for firmware fw", 4 << 30, 1000, 4096, 1 << 20, 1 << 27)


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RPMs under rpms/, and a repository per metadata compression under repo-<compression>/."""
    root = tmp_path_factory.mktemp("www")
    (root / "rpms").mkdir()
    for payload, release in RELEASES.items():
        built = build_rpm(tmp_path_factory.mktemp(payload), TINY, payload, release=release)
        shutil.copy(built, root / "rpms" / f"{payload}.rpm")
    for compression in REPOS:
        packages = root / f"repo-{compression}" / "Packages" / "e"
        packages.mkdir(parents=True)
        for payload, release in RELEASES.items():
            shutil.copy(root / "rpms" / f"{payload}.rpm", packages / f"edk2-ovmf-20990101-{release}.noarch.rpm")
        create_repo(root / f"repo-{compression}", compression)
    return root


@pytest.fixture()
def site(www: Path, tmp_path: Path) -> Iterator[str]:
    """The packages and repositories, served on 127.0.0.1 (a copy each test may change)."""
    shutil.copytree(www, tmp_path / "www")
    with server(tmp_path / "www") as url:
        yield url


def manifest(folder: Path, rpm: str, sha: str = TINY_SHA256) -> Path:
    """One firmware from an RPM (``rpm`` is the flow mapping's inside), measured for SEV-SNP."""
    return snp_manifest(folder, f"{{sha256: {sha}, rpm: {{{rpm}}}}}")


def snp_manifest(folder: Path, source: str) -> Path:
    """One firmware (``source`` as YAML flow text), measured for SEV-SNP at 1 and 2 vCPUs."""
    text = f"""sevref: 1
publication:
  publisher: {{id: t, name: Test, contact: t@example.org}}
  product: p
  stream: s
  release: "1"
  serial: 1
  issued: "2026-01-01T00:00:00Z"
  valid_for_days: 30
firmware:
  - id: fw
    source: {source}
host_stacks:
  - {{id: q, vmm: qemu, qemu: {{version: "9.1", machine: q35, legacy_vm_type: "off"}}, host_linux: "6.11"}}
matrices:
  - id: m
    modes: [sev-snp]
    firmware: [fw]
    host_stacks: [q]
    cpus: [EPYC-Milan]
    vcpus: [1, 2]
    expected: {{sev-snp: {{policy: "0x30000"}}}}
"""
    path = folder / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def rpm_mapping(*, url: str = "", mirror: str = "", pin: str, version: str = "20990101-1.fc99", **extra: str) -> str:
    fields = {
        "package": "edk2-ovmf",
        "version": version,
        "architecture": "noarch",
        "path": FIRMWARE_PATH,
        "rpm_sha256": pin,
        **({"url": f'"{url}"'} if url else {}),
        **({"mirror": f'"{mirror}"'} if mirror else {}),
        **extra,
    }
    return ", ".join(f"{key}: {value}" for key, value in fields.items())


def published_digests(site: Path) -> set[str]:
    found: set[str] = set()
    for page in (site / "digests").glob("*.json"):
        found.update(json.loads(page.read_bytes())["digests"])
    return found


def expected_snp_digests(capsys: pytest.CaptureFixture[str]) -> set[str]:
    """What ``sevref digest`` says for the firmware itself, at 1 and 2 vCPUs."""
    digests = set()
    for vcpus in ("1", "2"):
        argv = ["digest", "--mode", "sev-snp", "--firmware", str(INPUTS / "tiny.fd"), "--cpu", "EPYC-Milan"]
        status, out, _ = run([*argv, "--vcpus", vcpus], capsys)
        assert status == 0
        digests.add(out.strip())
    return digests


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_an_rpm_by_url_publishes_the_snp_digests_of_its_firmware(
    payload: str, site: str, www: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin = sha256(www / "rpms" / f"{payload}.rpm")
    mapping = rpm_mapping(url=f"{site}/rpms/{payload}.rpm", pin=pin, version=f"20990101-{RELEASES[payload]}")
    path = manifest(tmp_path, mapping)
    status, _, err = run(["build", str(path), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c")], capsys)
    assert (status, err) == (0, ""), err
    assert published_digests(tmp_path / "out") == expected_snp_digests(capsys)
    record = json.loads((tmp_path / "out" / "firmware" / "fw.json").read_bytes())["firmware"]
    assert record["sha256"] == TINY_SHA256


@pytest.mark.parametrize("compression", REPOS)
def test_an_rpm_from_a_repository_is_found_through_its_metadata(
    compression: str, site: str, www: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin = sha256(www / "rpms" / "xz.rpm")
    path = manifest(tmp_path, rpm_mapping(mirror=f"{site}/repo-{compression}/", pin=pin, version="20990101-2.el9"))
    cache = tmp_path / "c"
    status, _, err = run(["build", str(path), "--out", str(tmp_path / "out"), "--cache", str(cache)], capsys)
    assert (status, err) == (0, ""), err
    assert published_digests(tmp_path / "out") == expected_snp_digests(capsys)
    assert (cache / "sha256" / pin).is_file()  # the .rpm is kept by its pin, beside the primary metadata


def test_the_cache_outlives_the_repository(www: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pin = sha256(www / "rpms" / "zstd.rpm")
    cache = tmp_path / "c"
    with server(www) as url:
        path = manifest(tmp_path, rpm_mapping(mirror=f"{url}/repo-xz", pin=pin))
        assert run(["validate", str(path), "--cache", str(cache)], capsys)[0] == 0
    status, out, err = run(["validate", str(path), "--cache", str(cache)], capsys)  # the server is gone
    assert (status, err) == (0, "") and out.startswith("ok: ")


def failure(tmp_path: Path, mapping: str, capsys: pytest.CaptureFixture[str], sha: str = TINY_SHA256) -> str:
    manifest(tmp_path, mapping, sha)
    status, out, err = run(["validate", str(tmp_path / "m.yaml"), "--cache", str(tmp_path / "c")], capsys)
    assert (status, out) == (1, "") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_a_header_that_names_another_package_is_refused(
    site: str, www: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin = sha256(www / "rpms" / "gzip.rpm")
    url = f"{site}/rpms/gzip.rpm"
    err = failure(tmp_path, rpm_mapping(url=url, pin=pin, version="20990101-9.fc99"), capsys)
    assert err.startswith(f"sevref: error: {tmp_path / 'm.yaml'}:12:") and ": firmware fw: " in err
    assert (
        f"{url}: its header's VERSION-RELEASE (tag 1001, 1002) is '20990101-3.fc99'; expected '20990101-9.fc99'" in err
    )
    err = failure(tmp_path, rpm_mapping(url=url, pin=pin, version="20990101-3.fc99", architecture="x86_64"), capsys)
    assert f"{url}: its header's ARCH (tag 1022) is 'noarch'; expected 'x86_64'" in err


def test_a_repository_without_the_version_says_which_it_has(
    site: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = failure(tmp_path, rpm_mapping(mirror=f"{site}/repo-xz", pin="0" * 64, version="20990101-9.fc99"), capsys)
    assert "-primary.xml.xz: no package edk2-ovmf 20990101-9.fc99 noarch; it has edk2-ovmf " in err
    assert (
        "20990101-1.fc99 (noarch), 20990101-2.el9 (noarch), 20990101-3.fc99 (noarch), 20990101-4.fc99 (noarch)" in err
    )


def test_pins_are_checked_against_the_repository_and_the_bytes(
    site: str, www: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pin = sha256(www / "rpms" / "zstd.rpm")
    err = failure(tmp_path, rpm_mapping(mirror=f"{site}/repo-gz", pin="0" * 64), capsys)
    assert f"-primary.xml.gz: edk2-ovmf 20990101-1.fc99 noarch has sha256 {pin}; expected {'0' * 64} (the pin)" in err
    err = failure(tmp_path, rpm_mapping(url=f"{site}/rpms/zstd.rpm", pin="0" * 64), capsys)
    assert f"{site}/rpms/zstd.rpm: sha256 is {pin}, expected {'0' * 64} (the pin)" in err
    other = "ab" * 32
    err = failure(tmp_path, rpm_mapping(url=f"{site}/rpms/zstd.rpm", pin=pin), capsys, sha=other)
    assert f"sha256 is {TINY_SHA256}, expected {other} (the pin)" in err


def test_primary_metadata_that_is_not_what_repomd_says_is_refused(
    site: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served = tmp_path / "www" / "repo-zstd" / "repodata"
    (primary,) = served.glob("*-primary.xml.zst")
    primary.write_bytes(primary.read_bytes() + b"\0")
    err = failure(tmp_path, rpm_mapping(mirror=f"{site}/repo-zstd", pin="0" * 64), capsys)
    assert f"{primary.name}: sha256 is " in err
    assert f", expected {primary.name.split('-')[0]} (the checksum {site}/repo-zstd/repodata/repomd.xml gives)" in err


def test_a_repomd_with_a_document_type_is_refused(
    site: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repomd = tmp_path / "www" / "repo-gz" / "repodata" / "repomd.xml"
    laughs = '<!DOCTYPE repomd [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
    text = repomd.read_text(encoding="utf-8")
    repomd.write_text(text.replace("?>\n", "?>\n" + laughs, 1), encoding="utf-8")
    err = failure(tmp_path, rpm_mapping(mirror=f"{site}/repo-gz", pin="0" * 64), capsys)
    assert "repodata/repomd.xml: has a document type declaration; expected none (rpm-md has none)" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("sha512: x", "/rpm: "),
        ("mirror: 'https://mirror.example.org/'", "/rpm: "),
    ],
)
def test_source_forms_that_are_refused(
    extra: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = rpm_mapping(url="https://example.org/x.rpm", pin="0" * 64) + f", {extra}"
    err = failure(tmp_path, mapping, capsys)
    assert message in err


def test_a_missing_pin_of_the_package_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mapping = rpm_mapping(url="https://example.org/x.rpm", pin="0" * 64).replace(f"rpm_sha256: {'0' * 64}, ", "")
    assert "rpm_sha256" in failure(tmp_path, mapping, capsys)


# --------------------------------------------------------------------------- the format itself


@pytest.fixture(scope="module")
def zstd_rpm(www: Path) -> bytes:
    return (www / "rpms" / "zstd.rpm").read_bytes()


def open_rpm(data: bytes) -> RpmArchive:
    return RpmArchive(io.BytesIO(data), "t.rpm", CAPS)


def test_the_header_and_payload_read_back(zstd_rpm: bytes) -> None:
    archive = open_rpm(zstd_rpm)
    assert archive.facts() == {
        "name": "edk2-ovmf",
        "version": "20990101",
        "release": "1.fc99",
        "arch": "noarch",
        "epoch": "",
    }
    assert archive.compression == "zstd"
    index = archive.index("edk2-ovmf 20990101-1.fc99")
    for path in (FIRMWARE_PATH, "usr/share/OVMF/OVMF.fd", "usr/share/edk2/ovmf/OVMF.hardlink.fd"):
        assert archive.read(index, path).data == TINY, path
    with pytest.raises(
        FetchError, match=r"^edk2-ovmf 20990101-1.fc99: no file /usr/share/x.fd; it has /usr/share/OVMF/OVMF.fd, "
    ):
        archive.read(index, "usr/share/x.fd")


def damaged(data: bytes) -> dict[str, tuple[bytes, str]]:
    archive = open_rpm(data)
    main = archive.payload_offset - 16 - 16 * len(archive.header.entries) - len(archive.header.store)
    return {
        "empty": (b"", "t.rpm: the lead at offset 0x0: expected 96 bytes, found 0 (the stream is truncated)"),
        "a truncated lead": (data[:50], "t.rpm: the lead at offset 0x0: expected 96 bytes, found 50"),
        "not an rpm": (b"PK" + data[2:], "t.rpm: lead at offset 0x0: expected magic edabeedb (an RPM), found 504beedb"),
        "a source package": (
            data[:6] + b"\0\1" + data[8:],
            "t.rpm: lead at offset 0x6: type 1; expected 0 (a binary package)",
        ),
        "a truncated signature": (data[:100], "t.rpm: the signature header at offset 0x60: expected 16 bytes, found 4"),
        "a main header without its magic": (
            data[:main] + b"\0\0\0\0" + data[main + 4 :],
            f"t.rpm: main header at offset {main:#x}: expected magic 8eade801, found 00000000",
        ),
        "a truncated main header": (data[: main + 40], "t.rpm: the main header's index at offset"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "a truncated lead",
        "not an rpm",
        "a source package",
        "a truncated signature",
        "a main header without its magic",
        "a truncated main header",
    ],
)
def test_damaged_leads_and_headers_name_the_offset(case: str, zstd_rpm: bytes) -> None:
    data, message = damaged(zstd_rpm)[case]
    with pytest.raises(FirmwareFormatError) as raised:
        open_rpm(data)
    assert str(raised.value).startswith(message), str(raised.value)


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_a_truncated_payload_is_refused(payload: str, www: Path) -> None:
    data = (www / "rpms" / f"{payload}.rpm").read_bytes()
    archive = open_rpm(data)
    cut = open_rpm(data[: archive.payload_offset + (len(data) - archive.payload_offset) // 2])
    with pytest.raises(FirmwareFormatError) as raised:
        cut.index("x")
    assert str(raised.value).startswith(f"t.rpm: payload ({payload} cpio at {archive.payload_offset:#x}): "), str(
        raised.value
    )


def newc(name: str, size: int, mode: int = 0o100644) -> bytes:
    """A newc cpio header and name (cpio(5)), padded to 4 bytes."""
    fields = [1, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    header = b"070701" + b"".join(b"%08X" % field for field in fields) + name.encode() + b"\0"
    return header + bytes(-len(header) % 4)


@pytest.mark.slow
def test_a_payload_bomb_stops_at_the_entry_header(zstd_rpm: bytes) -> None:
    # 3 GiB of zeros in a cpio entry, zstd-compressed to a few hundred KiB: refused from its header alone.
    head = zstd_rpm[: open_rpm(zstd_rpm).payload_offset]
    size = 3 << 30
    bomb = head + zstd_bomb(newc("./" + FIRMWARE_PATH, size), size)
    assert len(bomb) < 2 << 20
    with pytest.raises(FetchError) as raised:
        open_rpm(bomb).index("x")
    assert str(raised.value) == (
        f"t.rpm: payload: ./{FIRMWARE_PATH} is {size} bytes; expected at most {256 << 20} (the limit for firmware fw); "
        "nothing was unpacked"
    )


def test_a_cpio_entry_with_another_magic_is_refused(zstd_rpm: bytes) -> None:
    head = zstd_rpm[: open_rpm(zstd_rpm).payload_offset]
    stripped = head + zstandard.compress(b"07070X" + bytes(200))
    with pytest.raises(FirmwareFormatError) as raised:
        open_rpm(stripped).index("x")
    assert str(raised.value).endswith(
        "cpio header at offset 0x0: expected magic b'070701' (newc), found b'07070X' "
        "(rpm's stripped cpio, for files of 4 GiB or more)"
    )


@st.composite
def damaged_package(draw: st.DrawFn, data: bytes, hot: int) -> bytes:
    """A package cut short, or with 1 to 4 bytes changed, mostly within its first ``hot`` bytes."""
    if draw(st.booleans()):
        return data[: draw(st.integers(0, len(data) - 1))]
    changed = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, min(hot, len(data)) - 1) | st.integers(0, len(data) - 1))
        changed[at] = draw(st.integers(0, 255))
    return bytes(changed)


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_damaged_rpms_are_sevref_errors_or_read_the_same(payload: str, www: Path) -> None:
    data = (www / "rpms" / f"{payload}.rpm").read_bytes()
    hot = open_rpm(data).payload_offset + 1024

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(damaged_package(data, hot))
    def check(package: bytes) -> None:
        try:
            archive = open_rpm(package)
            archive.facts()
            found = archive.read(archive.index("x"), FIRMWARE_PATH)
        except SevrefError as error:
            assert "\n" not in error.diagnostic()
        else:
            assert len(found.data) == len(TINY)  # a change in the contents is for the pin to find

    check()
