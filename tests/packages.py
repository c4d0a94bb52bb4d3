"""Real packages for the source tests: .debs by dpkg-deb, RPMs by rpmbuild, repositories by createrepo_c.

Each tool is Debian's own (``make packages`` installs rpm and createrepo-c;
dpkg-deb comes with dpkg). A missing tool fails the test under ``make test``
and skips it otherwise (:func:`tests.conftest.missing`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import zstandard

from tests.conftest import missing

FIRMWARE_PATH = "usr/share/edk2/ovmf/OVMF.amdsev.fd"
"""Where the test packages install their firmware."""


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        missing(f"{name} is not installed (make packages)")
    return found


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


DESCRIPTOR_FOLDER = "usr/share/qemu/firmware"
"""Where packages install QEMU firmware descriptors."""


def descriptor(
    *,
    device: str = "memory",
    features: tuple[str, ...] = ("amd-sev", "amd-sev-es", "amd-sev-snp", "verbose-dynamic"),
    filename: str = "/" + FIRMWARE_PATH,
    mode: str | None = None,
    machines: tuple[str, ...] = ("pc-q35-*",),
) -> str:
    """A QEMU firmware descriptor (docs/interop/firmware.json) as Debian's ovmf-amdsev ships for OVMF.amdsev.fd."""
    if device == "flash":
        mapping: dict[str, object] = {"device": "flash", "executable": {"filename": filename, "format": "raw"}}
        if mode is not None:
            mapping["mode"] = mode
        if mode in (None, "split"):
            mapping["nvram-template"] = {"filename": "/usr/share/OVMF/OVMF_VARS.fd", "format": "raw"}
    else:
        mapping = {"device": device, "filename": filename}
    document = {
        "description": "OVMF for x86_64 with SEV, a test build",
        "interface-types": ["uefi"],
        "mapping": mapping,
        "targets": [{"architecture": "x86_64", "machines": list(machines)}],
        "features": list(features),
        "tags": [],
    }
    return json.dumps(document, indent=4) + "\n"


def build_deb(
    folder: Path,
    firmware: bytes,
    compression: str,
    *,
    package: str = "ovmf",
    version: str = "2099.1-1",
    descriptors: dict[str, str] | None = None,
    firmware_path: str = FIRMWARE_PATH,
) -> Path:
    """A .deb made by ``dpkg-deb -Z<compression>``: the firmware, a symlink to it, a control file.

    ``descriptors`` (file name to JSON text) go to ``/usr/share/qemu/firmware/``; the firmware
    goes to ``firmware_path`` (the symlink ``usr/share/OVMF/OVMF.fd`` only with the default).
    """
    root = folder / f"root-{compression}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test firmware\n",
        encoding="utf-8",
    )
    target = root / firmware_path
    target.parent.mkdir(parents=True)
    target.write_bytes(firmware)
    if firmware_path == FIRMWARE_PATH:
        (root / "usr" / "share" / "OVMF").mkdir(parents=True)
        (root / "usr" / "share" / "OVMF" / "OVMF.fd").symlink_to("../edk2/ovmf/OVMF.amdsev.fd")
    if descriptors:
        (root / DESCRIPTOR_FOLDER).mkdir(parents=True)
        for name, text in descriptors.items():
            (root / DESCRIPTOR_FOLDER / name).write_text(text, encoding="utf-8")
    out = folder / f"{package}_{version}_all.{compression}.deb"
    subprocess.run(
        [tool("dpkg-deb"), f"-Z{compression}", "--root-owner-group", "-b", str(root), str(out)],
        check=True,
        capture_output=True,
    )
    return out


SPEC = """Name: {name}
Version: {version}
Release: {release}
Summary: test firmware
License: MIT
BuildArch: noarch
%description
Test firmware.
%install
mkdir -p %{{buildroot}}/usr/share/edk2/ovmf %{{buildroot}}/usr/share/OVMF
cp %{{_sourcedir}}/firmware.fd %{{buildroot}}/{path}
ln %{{buildroot}}/{path} %{{buildroot}}/usr/share/edk2/ovmf/OVMF.hardlink.fd
ln -s ../edk2/ovmf/OVMF.amdsev.fd %{{buildroot}}/usr/share/OVMF/OVMF.fd
{install}
%files
/{path}
/usr/share/edk2/ovmf/OVMF.hardlink.fd
/usr/share/OVMF/OVMF.fd
{files}
"""

PAYLOADS = {"zstd": "w19.zstdio", "xz": "w6.xzdio", "gzip": "w9.gzdio", "none": "w0.ufdio"}
"""rpmbuild's _binary_payload for each payload compression (rpm's macros)."""


def build_rpm(
    folder: Path,
    firmware: bytes,
    payload: str,
    *,
    name: str = "edk2-ovmf",
    version: str = "20990101",
    release: str = "1.fc99",
    descriptors: dict[str, str] | None = None,
) -> Path:
    """An RPM made by ``rpmbuild -bb`` with a zstd, xz, gzip or uncompressed payload.

    ``descriptors`` (file name to JSON text) go to ``/usr/share/qemu/firmware/``.
    """
    top = folder / f"rpmbuild-{payload}-{release}"
    (top / "SOURCES").mkdir(parents=True)
    (top / "SOURCES" / "firmware.fd").write_bytes(firmware)
    install, files = [], []
    for file_name, text in (descriptors or {}).items():
        (top / "SOURCES" / file_name).write_text(text, encoding="utf-8")
        install.append(f"mkdir -p %{{buildroot}}/{DESCRIPTOR_FOLDER}")
        install.append(f"cp %{{_sourcedir}}/{file_name} %{{buildroot}}/{DESCRIPTOR_FOLDER}/{file_name}")
        files.append(f"/{DESCRIPTOR_FOLDER}/{file_name}")
    spec = top / "test.spec"
    spec.write_text(
        SPEC.format(
            name=name,
            version=version,
            release=release,
            path=FIRMWARE_PATH,
            install="\n".join(install),
            files="\n".join(files),
        ),
        encoding="utf-8",
    )
    subprocess.run(
        [
            tool("rpmbuild"),
            "-bb",
            "--quiet",
            *("--define", f"_topdir {top}"),
            *("--define", f"_sourcedir {top / 'SOURCES'}"),
            *("--define", f"_binary_payload {PAYLOADS[payload]}"),
            *("--define", "__os_install_post %{nil}"),
            *("--define", "_build_id_links none"),
            str(spec),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = (top / "RPMS" / "noarch").glob("*.rpm")
    return built


def create_repo(folder: Path, compression: str) -> None:
    """Make ``folder`` an rpm-md repository with ``createrepo_c``, its primary metadata compressed as asked.

    Debian's createrepo_c 0.17 writes gz, xz and bz2; for zstd (Fedora's createrepo_c 1.0 and later,
    ``--general-compress-type=zstd``) the gz primary metadata is recompressed and ``repomd.xml`` updated
    the same way: location, checksum and size of the compressed file.
    """
    native = "gz" if compression == "zstd" else compression
    subprocess.run(
        [tool("createrepo_c"), "--quiet", "--no-database", f"--general-compress-type={native}", str(folder)],
        check=True,
        capture_output=True,
    )
    if compression != "zstd":
        return
    repomd = folder / "repodata" / "repomd.xml"
    text = repomd.read_text(encoding="utf-8")
    (old,) = (folder / "repodata").glob("*-primary.xml.gz")
    data = zstandard.compress(gzip.decompress(old.read_bytes()))
    digest = hashlib.sha256(data).hexdigest()
    (folder / "repodata" / f"{digest}-primary.xml.zst").write_bytes(data)
    old_digest = old.name.split("-", 1)[0]
    text = text.replace(f"repodata/{old.name}", f"repodata/{digest}-primary.xml.zst")
    text = text.replace(
        f'<checksum type="sha256">{old_digest}</checksum>', f'<checksum type="sha256">{digest}</checksum>'
    )
    text = text.replace(f"<size>{old.stat().st_size}</size>", f"<size>{len(data)}</size>", 1)
    repomd.write_text(text, encoding="utf-8")
    old.unlink()


def zstd_bomb(header: bytes, size: int) -> bytes:
    """``header`` then ``size`` zero bytes, zstd-compressed as it is made (6 GiB take about a second)."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    out = [compressor.compress(header)]
    zeros = bytes(16 << 20)
    left = size
    while left > 0:
        out.append(compressor.compress(zeros[: min(left, len(zeros))]))
        left -= len(zeros)
    out.append(compressor.flush())
    return b"".join(out)
