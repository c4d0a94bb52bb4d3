"""sevref.binfmt.deb: Debian packages built in memory, read back; hostile archives refused.

A .deb is an ar archive (``!<arch>\\n``, then 60-byte member headers: name 16,
mtime 12, uid 6, gid 6, mode 8, size 10, "`\\n") of ``debian-binary``,
``control.tar.*`` and ``data.tar.*`` (deb(5), ar(5)).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
from collections.abc import Callable, Sequence

import pytest

from sevref.binfmt.deb import DebPackage
from sevref.errors import FetchError, FirmwareFormatError

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
SUFFIX = {"": "", "gz": ".gz", "xz": ".xz", "bz2": ".bz2"}


def deb(data: Sequence[Entry] = DATA, control: bytes = CONTROL, compression: str = "xz") -> bytes:
    return (
        b"!<arch>\n"
        + member("debian-binary", b"2.0\n")
        + member(f"control.tar{SUFFIX[compression]}", tar([("./control", control, b"file")], compression))
        + member(f"data.tar{SUFFIX[compression]}", tar(data, compression))
    )


@pytest.mark.parametrize("compression", SUFFIX)
def test_a_package_reads_back(compression: str) -> None:
    package = DebPackage.from_bytes(deb(compression=compression), "ovmf.deb")
    assert package.control == {
        "Package": "ovmf",
        "Version": "2022.11-6+deb12u2",
        "Architecture": "all",
        "Description": "UEFI firmware\nfor 64-bit VMs",
    }
    assert package.files == {
        "/usr/share/OVMF/OVMF_CODE.fd": CODE,
        "/usr/share/OVMF/OVMF_VARS.fd": VARS,
        "/usr/share/doc/ovmf/.keep": b"",
    }
    assert package.links == {
        "/usr/share/ovmf/OVMF.fd": "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/qemu/OVMF.fd": "/usr/share/ovmf/OVMF.fd",
        "/usr/share/OVMF/OVMF_CODE.copy.fd": "/usr/share/OVMF/OVMF_CODE.fd",
    }


READS = {
    "a file": "usr/share/OVMF/OVMF_CODE.fd",
    "with a leading slash": "/usr/share/OVMF/OVMF_CODE.fd",
    "with ./": "./usr/share/OVMF/OVMF_CODE.fd",
    "through a relative link": "usr/share/ovmf/OVMF.fd",
    "through two links": "usr/share/qemu/OVMF.fd",
    "through a hard link": "usr/share/OVMF/OVMF_CODE.copy.fd",
}


@pytest.mark.parametrize("name", READS)
def test_read_follows_links(name: str) -> None:
    assert DebPackage.from_bytes(deb(), "ovmf.deb").read(READS[name]) == CODE


def test_a_missing_file_names_what_the_package_has() -> None:
    package = DebPackage.from_bytes(deb(), "ovmf.deb")
    with pytest.raises(FetchError) as raised:
        package.read("usr/share/OVMF/OVMF_CODE_4M.fd")
    assert str(raised.value) == (
        "ovmf 2022.11-6+deb12u2: no file /usr/share/OVMF/OVMF_CODE_4M.fd; it has /usr/share/OVMF/OVMF_CODE.copy.fd, "
        "/usr/share/OVMF/OVMF_CODE.fd, /usr/share/OVMF/OVMF_VARS.fd, /usr/share/ovmf/OVMF.fd, /usr/share/qemu/OVMF.fd"
    )
    with pytest.raises(FetchError) as raised:
        package.read("etc/ovmf.conf")  # nothing with its extension: no hint
    assert str(raised.value) == "ovmf 2022.11-6+deb12u2: no file /etc/ovmf.conf"


def test_link_loops_end() -> None:
    loop: list[Entry] = [("./a.fd", "b.fd", b"sym"), ("./b.fd", "a.fd", b"sym")]
    with pytest.raises(FetchError) as raised:
        DebPackage.from_bytes(deb(loop), "loop.deb").read("a.fd")
    assert str(raised.value) == "ovmf 2022.11-6+deb12u2: no file /a.fd; it has /a.fd, /b.fd"


def test_names_cannot_leave_the_package() -> None:
    hostile: list[Entry] = [
        ("../../etc/passwd", b"root", b"file"),
        ("/abs/file", b"abs", b"file"),
        ("./usr/../../../x", b"x", b"file"),
        ("./usr/escape", "../../../../etc/shadow", b"sym"),
        ("./usr/hard", "../../etc/hosts", b"hard"),
    ]
    package = DebPackage.from_bytes(deb(hostile), "hostile.deb")
    assert package.files == {"/etc/passwd": b"root", "/abs/file": b"abs", "/x": b"x"}
    assert package.links == {"/usr/escape": "/etc/shadow", "/usr/hard": "/etc/hosts"}


def test_dot_files_keep_their_names() -> None:
    package = DebPackage.from_bytes(deb([("./.hidden", b"h", b"file"), ("./hidden", b"v", b"file")]), "dots.deb")
    assert package.files == {"/.hidden": b"h", "/hidden": b"v"}
    assert package.read(".hidden") == b"h"


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
    "zstd, which Python 3.11 cannot read": (
        MAGIC + BINARY + CONTROL_XZ + member("data.tar.zst", b"\x28\xb5\x2f\xfd"),
        "data.tar.zst is zstd-compressed, which Python 3.11 cannot read; expected data.tar.xz, .gz, .bz2 or an "
        "uncompressed data.tar",
    ),
}


@pytest.mark.parametrize("name", REFUSALS)
def test_hostile_archives(name: str) -> None:
    data, message = REFUSALS[name]
    with pytest.raises(FirmwareFormatError) as raised:
        DebPackage.from_bytes(data, "pkg.deb")
    assert str(raised.value) == f"pkg.deb: {message}"


UNREADABLE: dict[str, tuple[bytes, str]] = {
    # name: (archive, the start of the message; the rest is Python's tarfile's own)
    "a member that is no tar": (
        MAGIC + BINARY + CONTROL_XZ + member("data.tar.xz", b"not a tar"),
        "pkg.deb: data.tar.xz is not a readable tar archive (",
    ),
    "a truncated data archive": (
        MAGIC + BINARY + CONTROL_XZ + member("data.tar.xz", DATA_XZ[: len(DATA_XZ) // 2]),
        "pkg.deb: cannot read its archives (",
    ),
    "a control file that is not UTF-8": (
        MAGIC + BINARY + member("control.tar.xz", tar([("./control", b"Package: \xff\n", b"file")], "xz")),
        "pkg.deb: cannot read its archives ('utf-8' codec can't decode byte 0xff in position 9",
    ),
}


@pytest.mark.parametrize("name", UNREADABLE)
def test_unreadable_members(name: str) -> None:
    data, start = UNREADABLE[name]
    with pytest.raises(FirmwareFormatError) as raised:
        DebPackage.from_bytes(data, "pkg.deb")
    assert str(raised.value).startswith(start)


def test_members_after_an_odd_sized_one_are_found() -> None:
    odd = member("debian-binary", b"2.0\n\n")  # five bytes, then a pad byte
    assert len(odd) == 60 + 6
    package = DebPackage.from_bytes(MAGIC + odd + CONTROL_XZ + member("data.tar.xz", DATA_XZ), "pkg.deb")
    assert package.read("usr/share/OVMF/OVMF_VARS.fd") == VARS
