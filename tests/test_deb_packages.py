"""Debian packages as dpkg-deb makes them (zstd, as Ubuntu's since 21.10; xz; gzip), streamed and bounded.

Real .debs, built with ``dpkg-deb -Z<compression>`` and served on 127.0.0.1,
give publications with the SEV-SNP digests ``sevref digest`` computes for the
firmware inside. A 6 GiB member in a small .deb (a compression bomb) is a
one-line refusal in bounded memory: the build runs under an address-space
limit of 1.5 GB (``ulimit -v 1500000``), as the issue asked.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings

from sevref.binfmt.deb import DebArchive
from sevref.edge.debian import read_deb_file
from sevref.edge.packages import package_caps
from sevref.errors import SevrefError
from tests.packages import FIRMWARE_PATH, build_deb, sha256, zstd_bomb
from tests.test_rpm import damaged_package, expected_snp_digests, published_digests, snp_manifest
from tests.test_sources import TINY, TINY_SHA256, run, server
from tests.unit.test_deb import member

COMPRESSIONS = ("zstd", "xz", "gzip")
VERSION = "2099.1-1"
BOMB_BYTES = 6 << 30
"""What the bomb's one member unpacks to: 6 GiB."""
ADDRESS_SPACE_KIB = 1_500_000
"""``ulimit -v 1500000``: the build must refuse the bomb within 1.5 GB of address space."""


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pool/ holding one .deb per compression, each with the test firmware and a link to it."""
    root = tmp_path_factory.mktemp("www")
    (root / "pool").mkdir()
    for compression in COMPRESSIONS:
        built = build_deb(tmp_path_factory.mktemp(compression), TINY, compression, version=VERSION)
        shutil.copy(built, root / "pool" / f"ovmf_{VERSION}_all.{compression}.deb")
    return root


def debian_source(url: str, deb_sha256: str, path: str = FIRMWARE_PATH) -> str:
    return (
        f"{{sha256: {TINY_SHA256}, debian: {{package: ovmf, version: '{VERSION}', url: \"{url}\", "
        f"deb_sha256: {deb_sha256}, path: {path}}}}}"
    )


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_dpkg_deb_packages_read_back_as_streams(compression: str, debs: Path) -> None:
    deb = debs / "pool" / f"ovmf_{VERSION}_all.{compression}.deb"
    with deb.open("rb") as handle:
        archive = DebArchive(handle, deb.name, package_caps(1 << 20, "the test"))
        suffix = {"zstd": ".zst", "xz": ".xz", "gzip": ".gz"}[compression]
        assert {"control.tar" + suffix, "data.tar" + suffix} <= set(archive.members)
        index = archive.index("ovmf")
        assert index.links == {"/usr/share/OVMF/OVMF.fd": "/" + FIRMWARE_PATH}
    data, control = read_deb_file(deb, "usr/share/OVMF/OVMF.fd")
    assert data == TINY
    assert (control["Package"], control["Version"], control["Architecture"]) == ("ovmf", VERSION, "all")


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_a_served_package_publishes_the_snp_digests_of_its_firmware(
    compression: str, debs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"ovmf_{VERSION}_all.{compression}.deb"
    with server(debs) as url:
        source = debian_source(f"{url}/pool/{name}", sha256(debs / "pool" / name), "usr/share/OVMF/OVMF.fd")
        path = snp_manifest(tmp_path, source)
        status, _, err = run(
            ["build", str(path), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c")], capsys
        )
    assert (status, err) == (0, ""), err
    assert published_digests(tmp_path / "out") == expected_snp_digests(capsys)


def control_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        text = f"Package: ovmf\nVersion: {VERSION}\nArchitecture: all\nDescription: a bomb\n".encode()
        info = tarfile.TarInfo("./control")
        info.size = len(text)
        archive.addfile(info, io.BytesIO(text))
    return zstandard.compress(buffer.getvalue())


def bomb_deb(members: list[tuple[str, int]]) -> bytes:
    """A .deb whose data.tar.zst holds ``members`` (name, size) of zeros: gigabytes in a few hundred KiB."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    parts = []
    for name, size in members:
        info = tarfile.TarInfo(name)
        info.size = size
        parts.append(zstd_bomb(info.tobuf(tarfile.GNU_FORMAT), size + (-size % 512)))
    parts.append(compressor.compress(bytes(1024)) + compressor.flush())  # the end-of-archive blocks
    data = b"".join(parts)  # zstd frames one after another are one stream (RFC 8878 3.1)
    return (
        b"!<arch>\n"
        + member("debian-binary", b"2.0\n")
        + member("control.tar.zst", control_tar())
        + member("data.tar.zst", data)
    )


@pytest.fixture()
def bombs(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "one.deb").write_bytes(bomb_deb([("./" + FIRMWARE_PATH, BOMB_BYTES)]))
    # Many members each within the firmware limit, 4.5 GiB in all: stopped by the cap on unpacked bytes.
    many = [(f"./usr/share/doc/f{i}", 250 << 20) for i in range(18)] + [("./" + FIRMWARE_PATH, len(TINY))]
    (tmp_path / "www" / "many.deb").write_bytes(bomb_deb(many))
    with server(tmp_path / "www") as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "one.deb",
            f"data.tar.zst: ./{FIRMWARE_PATH} is {BOMB_BYTES} bytes; expected at most {256 << 20} "
            "(the limit for firmware fw); nothing was unpacked",
        ),
        ("many.deb", f"data.tar.zst: unpacks to more than {4 << 30} bytes; expected at most that"),
    ],
)
def test_a_compression_bomb_is_one_line_in_bounded_memory(name: str, message: str, bombs: str, tmp_path: Path) -> None:
    deb = tmp_path / "www" / name
    assert deb.stat().st_size < 2 << 20  # gigabytes in a package smaller than Debian's ovmf
    snp_manifest(tmp_path, debian_source(f"{bombs}/{name}", sha256(deb)))
    # As the issue asked: ulimit -v 1500000 (KiB of address space), then the build.
    command = ["sh", "-c", f'ulimit -v {ADDRESS_SPACE_KIB} && exec "$0" "$@"', sys.executable, "-m", "sevref"]
    done = subprocess.run(
        [*command, "validate", "m.yaml", "--cache", "c"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.startswith("sevref: error: m.yaml:12:") and done.stderr.count("\n") == 1, done.stderr
    assert f"firmware fw: ovmf_{VERSION}_all.deb: {message}" in done.stderr, done.stderr


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_damaged_debs_are_sevref_errors_or_read_the_same(compression: str, debs: Path) -> None:
    data = (debs / "pool" / f"ovmf_{VERSION}_all.{compression}.deb").read_bytes()

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(damaged_package(data, 1024))
    def check(package: bytes) -> None:
        try:
            archive = DebArchive(io.BytesIO(package), "t.deb", package_caps(1 << 20, "the test"))
            archive.control()
            found = archive.read(archive.index("x"), FIRMWARE_PATH)
        except SevrefError as error:
            assert "\n" not in error.diagnostic()
        else:
            assert len(found.data) == len(TINY)  # a change in the contents is for the pin to find

    check()
