r"""tar archives, walked as a stream: ustar, GNU long names and pax headers (the data.tar of a .deb).

Each entry is a 512-byte header (POSIX.1-2001 ``ustar``: name 0..100,
size 124..136, checksum 148..156, type 156, link name 157..257, magic 257,
prefix 345..500), then its contents padded to 512 bytes; two zero blocks end
the archive (one is enough here; an archive without it is truncated). GNU tar
(and dpkg-deb) write names longer than 100 bytes as a ``L`` (or ``K``, for
link targets) entry before the one they name; pax writes them as ``x`` records ``"<length> <key>=<value>\\n"``. Extended headers are
read whole, so each is bounded (:attr:`~sevref.binfmt.archive.Caps.names`);
contents are never read here, only walked past or handed to the caller.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from sevref.binfmt.archive import Body, Caps, Entry, EntryKind, Stream, normal_path
from sevref.errors import FirmwareFormatError

__all__ = ["walk"]

BLOCK = 512
_FILE_TYPES = (b"0", b"\0", b"7")  # regular, old regular, contiguous (read as regular)
_EXTENDED = (b"L", b"K", b"x", b"g")


def _number(field: bytes, what: str, offset: int, name: str) -> int:
    """A numeric header field: octal text, or GNU's base-256 when its first bit is set."""
    if field[:1] and field[0] & 0x80:
        value = int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text or b"0", 8)
    except ValueError as error:
        raise FirmwareFormatError(
            f"{what}: tar header at offset {offset:#x}: {name} field {field!r} is not an octal number"
        ) from error


def _check(header: bytes, what: str, offset: int) -> None:
    """Compare a header's checksum: the sum of its bytes, the checksum field counted as spaces (unsigned, or signed as old tars did)."""
    stored = _number(header[148:156], what, offset, "checksum")
    blanked = header[:148] + b" " * 8 + header[156:]
    if stored not in (sum(blanked), sum(b - 256 if b > 127 else b for b in blanked)):
        raise FirmwareFormatError(
            f"{what}: tar header at offset {offset:#x}: checksum {stored:#o}, expected {sum(blanked):#o} "
            "(not a tar header, or a damaged one)"
        )


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes, what: str, offset: int) -> dict[str, str]:
    """The records of a pax extended header (POSIX.1-2001 pax, "pax Extended Header File Format")."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data) and data[position:].strip(b"\0"):
        space = data.find(b" ", position)
        try:
            length = int(data[position:space])
        except ValueError as error:
            raise FirmwareFormatError(
                f"{what}: pax header at offset {offset:#x}: record at {position} has no length"
            ) from error
        record = data[space + 1 : position + length]
        if length <= 0 or space < 0 or not record.endswith(b"\n") or b"=" not in record:
            raise FirmwareFormatError(
                f"{what}: pax header at offset {offset:#x}: record at {position}: expected "
                f"'<length> <key>=<value>\\n', found {data[position : position + 40]!r}"
            )
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


def walk(stream: Stream, caps: Caps) -> Iterator[tuple[Entry, Body]]:
    """Walk a tar archive's entries; contents the caller does not read are skipped.

    Args:
        stream: the (decompressed) archive.
        caps: the bounds (extended headers at most ``caps.names`` bytes).

    Yields:
        Each file, link, directory or other entry, with its contents.

    Raises:
        FirmwareFormatError: a damaged header, an unsupported entry, or a
            truncated archive, with the offset.
    """
    what = stream.what
    long_name: str | None = None
    long_link: str | None = None
    pax: dict[str, str] = {}
    while True:
        offset = stream.offset
        header = stream.read(BLOCK)
        if not header:
            raise FirmwareFormatError(
                f"{what}: ends at offset {offset:#x} without the end-of-archive block; expected a zero block "
                "(the archive is truncated)"
            )
        if len(header) < BLOCK:
            header += stream.exact(BLOCK - len(header), "a tar header")
        if header == bytes(BLOCK):
            return
        _check(header, what, offset)
        kind = header[156:157]
        size = (
            int(pax["size"])
            if pax.get("size", "").isascii() and pax.get("size", "").isdigit()
            else _number(header[124:136], what, offset, "size")
        )
        if size < 0:
            raise FirmwareFormatError(f"{what}: tar header at offset {offset:#x}: negative size {size}")
        if kind in _EXTENDED:
            if size > caps.names:
                raise FirmwareFormatError(
                    f"{what}: tar extended header ({kind.decode()}) at offset {offset:#x} is {size} bytes; "
                    f"expected at most {caps.names}"
                )
            data = stream.exact(size, f"the extended header at {offset:#x}")
            stream.skip(-size % BLOCK, "padding")
            if kind == b"L":
                long_name = _text(data)
            elif kind == b"K":
                long_link = _text(data)
            elif kind == b"x":
                pax = _pax(data, what, offset)
            continue
        name = _text(header[0:100])
        if header[257:263] == b"ustar\0" and header[345:500].strip(b"\0"):
            name = f"{_text(header[345:500])}/{name}"
        name = long_name or pax.get("path") or name
        link = long_link or pax.get("linkpath") or _text(header[157:257])
        long_name, long_link, pax = None, None, {}
        path = normal_path(name)
        if kind in _FILE_TYPES:
            entry = Entry(path, EntryKind.FILE, size, name=name)
        elif kind == b"1":
            entry = Entry(path, EntryKind.HARDLINK, 0, normal_path(link), name)
        elif kind == b"2":
            entry = Entry(path, EntryKind.SYMLINK, 0, normal_path(posixpath.join(posixpath.dirname(path), link)), name)
        elif kind == b"S":
            raise FirmwareFormatError(
                f"{what}: tar entry {name!r} at offset {offset:#x} is a GNU sparse file; expected a plain one"
            )
        else:
            entry = Entry(path, EntryKind.OTHER, 0, name=name)
        body = Body(stream, size, name)
        yield entry, body
        body.drain()
        stream.skip(-size % BLOCK, "padding")
