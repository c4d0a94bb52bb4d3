"""sevref.binfmt.deb: Debian packages built in memory, read back as streams; hostile archives refused.

A .deb is an ar archive (``!<arch>\\n``, then 60-byte member headers: name 16,
mtime 12, uid 6, gid 6, mode 8, size 10, "`\\n") of ``debian-binary``,
``control.tar.*`` and ``data.tar.*`` (deb(5), ar(5)).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import tarfile
from collections.abc import Callable, Sequence

import pytest
import zstandard

from sevref.binfmt.archive import Caps, Index
from sevref.binfmt.deb import DebArchive
from sevref.errors import FetchError, FirmwareFormatError

CAPS = Caps(1 << 20, "the test's limit", 64 << 20, 1000, 4096, 1 << 20, 1 << 27)


def open_deb(data: bytes, what: str = "ovmf.deb") -> tuple[DebArchive, Index]:
    archive = DebArchive(io.BytesIO(data), what, CAPS)
    archive.control()
    return archive, archive.index("ovmf 2022.11-6+deb12u2")


CONTROL = b"Package: ovmf\nVersion: 2022.11-6+deb12u2\nArchitecture: all\nDescription: UEFI firmware\n for 64-bit VMs\n"
CODE = b"\x90" * 4096
VARS = b"\x00" * 1025  # an odd size: ar pads the member to an even offset


def member(name: str, data: bytes, size: bytes | None = None, end: bytes = b"`\n") -> bytes:
    """One ar member: its 60-byte header, its data, and a pad byte after odd sizes."""
    size_field = (size if size is not None else str(len(data)).encode()).ljust(10)
    header = name.encode().ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
    return header + size_field + end + data + (b"\n" if len(data) % 2 else b"")


COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda data: data,
    "gz": gzip.compress,
    "xz": lzma.compress,  # the .xz container, as dpkg-deb writes it
    "bz2": bz2.compress,
    "zst": zstandard.compress,
}
Entry = tuple[str, bytes | str, bytes]
"""(name in the tar, contents or link target, kind: b"file", b"sym" or b"hard")."""


def tar(entries: Sequence[Entry], compression: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == b"file":
                assert isinstance(content, bytes)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            else:
                assert isinstance(content, str)
                info.type = tarfile.SYMTYPE if kind == b"sym" else tarfile.LNKTYPE
                info.linkname = content
                archive.addfile(info)
    return COMPRESS[compression](buffer.getvalue())


DATA: list[Entry] = [
    ("./usr/share/OVMF/OVMF_CODE.fd", CODE, b"file"),
    ("./usr/share/OVMF/OVMF_VARS.fd", VARS, b"file"),
    ("./usr/share/ovmf/OVMF.fd", "../OVMF/OVMF_CODE.fd", b"sym"),  # relative
    ("./usr/share/qemu/OVMF.fd", "/usr/share/ovmf/OVMF.fd", b"sym"),  # absolute, to a link
    ("./usr/share/OVMF/OVMF_CODE.copy.fd", "./usr/share/OVMF/OVMF_CODE.fd", b"hard"),
    ("./usr/share/doc/ovmf/.keep", b"", b"file"),
]
SUFFIX = {"": "", "gz": ".gz", "xz": ".xz", "bz2": ".bz2", "zst": ".zst"}


def deb(data: Sequence[Entry] = DATA, control: bytes = CONTROL, compression: str = "xz") -> bytes:
    return (
        b"!<arch>\n"
        + member("debian-binary", b"2.0\n")
        + member(f"control.tar{SUFFIX[compression]}", tar([("./control", control, b"file")], compression))
        + member(f"data.tar{SUFFIX[compression]}", tar(data, compression))
    )


@pytest.mark.parametrize("compression", SUFFIX)
def test_a_package_reads_back(compression: str) -> None:
    archive, index = open_deb(deb(compression=compression))
    assert archive.control() == {
        "Package": "ovmf",
        "Version": "2022.11-6+deb12u2",
        "Architecture": "all",
        "Description": "UEFI firmware\nfor 64-bit VMs",
    }
    assert index.files == {
        "/usr/share/OVMF/OVMF_CODE.fd": len(CODE),
        "/usr/share/OVMF/OVMF_VARS.fd": len(VARS),
        "/usr/share/doc/ovmf/.keep": 0,
    }
    assert index.links == {
        "/usr/share/ovmf/OVMF.fd": "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/qemu/OVMF.fd": "/usr/share/ovmf/OVMF.fd",
        "/usr/share/OVMF/OVMF_CODE.copy.fd": "/usr/share/OVMF/OVMF_CODE.fd",
    }
    assert archive.read(index, "usr/share/OVMF/OVMF_VARS.fd").data == VARS
    assert archive.read(index, "usr/share/doc/ovmf/.keep").data == b""


READS = {
    "a file": "usr/share/OVMF/OVMF_CODE.fd",
    "with a leading slash": "/usr/share/OVMF/OVMF_CODE.fd",
    "with ./": "./usr/share/OVMF/OVMF_CODE.fd",
    "through a relative link": "usr/share/ovmf/OVMF.fd",
    "through two links": "usr/share/qemu/OVMF.fd",
    "through a hard link": "usr/share/OVMF/OVMF_CODE.copy.fd",
}


@pytest.mark.parametrize("name", READS)
def test_read_follows_links_and_hashes_as_it_reads(name: str) -> None:
    archive, index = open_deb(deb())
    found = archive.read(index, READS[name])
    assert found.data == CODE
    assert found.sha256 == hashlib.sha256(CODE).digest()


def test_a_missing_file_names_what_the_package_has() -> None:
    archive, index = open_deb(deb())
    with pytest.raises(FetchError) as raised:
        archive.read(index, "usr/share/OVMF/OVMF_CODE_4M.fd")
    assert str(raised.value) == (
        "ovmf 2022.11-6+deb12u2: no file /usr/share/OVMF/OVMF_CODE_4M.fd; it has /usr/share/OVMF/OVMF_CODE.copy.fd, "
        "/usr/share/OVMF/OVMF_CODE.fd, /usr/share/OVMF/OVMF_VARS.fd, /usr/share/ovmf/OVMF.fd, /usr/share/qemu/OVMF.fd"
    )
    with pytest.raises(FetchError) as raised:
        archive.read(index, "etc/ovmf.conf")  # nothing with its extension: no hint
    assert str(raised.value) == "ovmf 2022.11-6+deb12u2: no file /etc/ovmf.conf"


def test_link_loops_end() -> None:
    loop: list[Entry] = [("./a.fd", "b.fd", b"sym"), ("./b.fd", "a.fd", b"sym")]
    archive, index = open_deb(deb(loop), "loop.deb")
    with pytest.raises(FetchError) as raised:
        archive.read(index, "a.fd")
    assert str(raised.value) == "ovmf 2022.11-6+deb12u2: no file /a.fd; it has /a.fd, /b.fd"


def test_names_cannot_leave_the_package() -> None:
    hostile: list[Entry] = [
        ("../../etc/passwd", b"root", b"file"),
        ("/abs/file", b"abs", b"file"),
        ("./usr/../../../x", b"x", b"file"),
        ("./usr/escape", "../../../../etc/shadow", b"sym"),
        ("./usr/hard", "../../etc/hosts", b"hard"),
    ]
    _, index = open_deb(deb(hostile), "hostile.deb")
    assert index.files == {"/etc/passwd": 4, "/abs/file": 3, "/x": 1}
    assert index.links == {"/usr/escape": "/etc/shadow", "/usr/hard": "/etc/hosts"}


def test_dot_files_keep_their_names() -> None:
    archive, index = open_deb(deb([("./.hidden", b"h", b"file"), ("./hidden", b"v", b"file")]), "dots.deb")
    assert index.files == {"/.hidden": 1, "/hidden": 1}
    assert archive.read(index, ".hidden").data == b"h"


def test_long_names_gnu_and_pax_are_read() -> None:
    deep = "./usr/share/" + "d" * 120 + "/OVMF_CODE.fd"
    for form in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=form) as archive:
            info = tarfile.TarInfo(deep)
            info.size = len(CODE)
            archive.addfile(info, io.BytesIO(CODE))
        data = MAGIC + BINARY + CONTROL_XZ + member("data.tar", buffer.getvalue())
        package, index = open_deb(data)
        assert package.read(index, deep).data == CODE


# --------------------------------------------------------------------------- hostile archives

MAGIC = b"!<arch>\n"
BINARY = member("debian-binary", b"2.0\n")
CONTROL_XZ = member("control.tar.xz", tar([("./control", CONTROL, b"file")], "xz"))
DATA_XZ = tar(DATA, "xz")

REFUSALS: dict[str, tuple[bytes, str]] = {
    "not an ar archive": (
        b"PK\x03\x04" + bytes(60),
        "expected an ar archive starting b'!<arch>\\n', found b'PK\\x03\\x04\\x00\\x00\\x00\\x00'",
    ),
    "empty": (b"", "expected an ar archive starting b'!<arch>\\n', found b''"),
    "a truncated header": (MAGIC + BINARY[:20], "member header at offset 0x8 runs past the end (28 bytes)"),
    "a header without its terminator": (
        MAGIC + member("debian-binary", b"2.0\n", end=b"xx"),
        "member header at offset 0x8: expected terminator b'`\\n', found b'xx'",
    ),
    "a size that is no number": (
        MAGIC + member("debian-binary", b"2.0\n", size=b"abc"),
        "member 'debian-binary' at offset 0x8: size field b'abc       ' is not a number",
    ),
    "a member larger than the archive": (
        MAGIC + BINARY + CONTROL_XZ + member("data.tar.xz", b"x" * 10, size=b"1000")[:70],
        f"member 'data.tar.xz' at offset {8 + len(BINARY) + len(CONTROL_XZ):#x} claims 1000 bytes; only 10 remain",
    ),
    "no data member": (MAGIC + BINARY + CONTROL_XZ, "no data.tar.* member; found debian-binary, control.tar.xz"),
    "no control member": (
        MAGIC + BINARY + member("data.tar.xz", DATA_XZ),
        "no control.tar.* member; found debian-binary, data.tar.xz",
    ),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_hostile_archives(name: str) -> None:
    data, message = REFUSALS[name]
    with pytest.raises(FirmwareFormatError) as raised:
        open_deb(data, "pkg.deb")
    assert str(raised.value) == f"pkg.deb: {message}"


UNREADABLE: dict[str, tuple[bytes, str]] = {
    # name: (archive, the start of the message; the rest is the decompressor's own)
    "a member that is no xz": (
        MAGIC + BINARY + CONTROL_XZ + member("data.tar.xz", b"not a tar"),
        "pkg.deb: data.tar.xz: not a readable xz stream after 0 unpacked bytes (",
    ),
    "a damaged zstd member": (
        MAGIC + BINARY + CONTROL_XZ + member("data.tar.zst", b"\x28\xb5\x2f\xfd" + bytes(20)),
        "pkg.deb: data.tar.zst: ends at offset 0x0 without the end-of-archive block; expected a zero block",
    ),
    "a truncated data archive": (
        MAGIC + BINARY + CONTROL_XZ + member("data.tar.xz", DATA_XZ[: len(DATA_XZ) // 2]),
        "pkg.deb: data.tar.xz: not a readable xz stream after ",
    ),
    "a plain tar that is no tar": (
        MAGIC + BINARY + CONTROL_XZ + member("data.tar", b"x" * 512),
        "pkg.deb: data.tar: tar header at offset 0x0: checksum field b'xxxxxxxx' is not an octal number",
    ),
    "an unknown compression": (
        MAGIC + BINARY + CONTROL_XZ + member("data.tar.lz4", b"x"),
        "pkg.deb: data.tar.lz4: unknown compression '.lz4'; expected data.tar or data.tar.gz, .xz, .zst, .bz2, .lzma",
    ),
}


@pytest.mark.parametrize("name", UNREADABLE)
def test_unreadable_members(name: str) -> None:
    data, start = UNREADABLE[name]
    with pytest.raises(FirmwareFormatError) as raised:
        open_deb(data, "pkg.deb")
    assert str(raised.value).startswith(start), str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_control_file_that_is_not_utf8() -> None:
    data = MAGIC + BINARY + member("control.tar.xz", tar([("./control", b"Package: \xff\n", b"file")], "xz"))
    with pytest.raises(FirmwareFormatError, match=r"^pkg.deb: control is not UTF-8 \('utf-8' codec can't decode"):
        DebArchive(io.BytesIO(data + member("data.tar.xz", DATA_XZ)), "pkg.deb", CAPS).control()


def test_members_after_an_odd_sized_one_are_found() -> None:
    odd = member("debian-binary", b"2.0\n\n")  # five bytes, then a pad byte
    assert len(odd) == 60 + 6
    archive, index = open_deb(MAGIC + odd + CONTROL_XZ + member("data.tar.xz", DATA_XZ), "pkg.deb")
    assert archive.read(index, "usr/share/OVMF/OVMF_VARS.fd").data == VARS


def test_a_file_larger_than_the_limit_stops_the_read_at_its_header() -> None:
    big: list[Entry] = [("./usr/share/OVMF/big.fd", b"\0" * ((1 << 20) + 1), b"file"), *DATA]
    with pytest.raises(FetchError) as raised:
        open_deb(deb(big, compression="zst"), "pkg.deb")
    assert str(raised.value) == (
        f"pkg.deb: data.tar.zst: ./usr/share/OVMF/big.fd is {(1 << 20) + 1} bytes; expected at most {1 << 20} "
        "(the test's limit); nothing was unpacked"
    )


def test_a_member_that_unpacks_past_the_cap_is_refused() -> None:
    caps = Caps(1 << 20, "the test's limit", 1 << 20, 1000, 4096, 1 << 20, 1 << 27)
    many: list[Entry] = [(f"./f{i}.fd", b"\0" * (300 << 10), b"file") for i in range(5)]
    archive = DebArchive(io.BytesIO(deb(many, compression="gz")), "pkg.deb", caps)
    with pytest.raises(FirmwareFormatError) as raised:
        archive.index("x")
    assert str(raised.value).startswith(
        f"pkg.deb: data.tar.gz: unpacks to more than {1 << 20} bytes; expected at most that"
    )


def test_extended_headers_are_bounded() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("./x")
        info.pax_headers = {"comment": "c" * 5000}
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(
        FirmwareFormatError,
        match=r"pkg.deb: data.tar: tar extended header \(x\) at offset 0x0 is \d+ bytes; expected at most 4096",
    ):
        open_deb(MAGIC + BINARY + CONTROL_XZ + member("data.tar", buffer.getvalue()), "pkg.deb")
