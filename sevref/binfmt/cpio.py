"""cpio archives in the "new ASCII" (newc) format, walked as a stream: the payload of an RPM.

Each entry is a 110-byte header: the magic ``070701``, then thirteen 8-digit
hexadecimal fields (ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
devminor, rdevmajor, rdevminor, namesize, check), then the name (``namesize``
bytes with its NUL) padded so that header and name end on a 4-byte boundary,
then the contents, padded to 4 bytes. The entry named ``TRAILER!!!`` ends the
archive (cpio(5) "New ASCII Format"; rpm's ``lib/cpio.c``). A symbolic link's
contents are its target; a file with several hard links has its contents with
its last name only (the others have size 0).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from sevref.binfmt.archive import Body, Caps, Entry, EntryKind, Stream, normal_path
from sevref.errors import FirmwareFormatError

__all__ = ["walk"]

MAGIC = b"070701"
STRIPPED_MAGIC = b"07070X"
"""rpm's own header-less cpio, for packages with files of 4 GiB or more (rpm lib/cpio.c)."""
HEADER = 110
TRAILER = "TRAILER!!!"
_S_IFMT, _S_IFREG, _S_IFLNK = 0o170000, 0o100000, 0o120000


def walk(stream: Stream, caps: Caps) -> Iterator[tuple[Entry, Body]]:
    """Walk a newc cpio archive's entries; contents the caller does not read are skipped.

    Args:
        stream: the (decompressed) archive.
        caps: the bounds (names and link targets at most ``caps.names`` bytes).

    Yields:
        Each file, link, directory or other entry, with its contents.

    Raises:
        FirmwareFormatError: a damaged header, a truncated archive, or no trailer.
    """
    what = stream.what
    while True:
        offset = stream.offset
        header = stream.exact(HEADER, "a cpio header")
        if header[:6] != MAGIC:
            hint = " (rpm's stripped cpio, for files of 4 GiB or more)" if header[:6] == STRIPPED_MAGIC else ""
            raise FirmwareFormatError(
                f"{what}: cpio header at offset {offset:#x}: expected magic {MAGIC!r} (newc), found {header[:6]!r}{hint}"
            )
        try:
            fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError as error:
            raise FirmwareFormatError(
                f"{what}: cpio header at offset {offset:#x}: expected 13 hexadecimal fields, found {header[6:]!r}"
            ) from error
        ino, mode, nlink, size = fields[0], fields[1], fields[4], fields[6]
        devmajor, devminor, namesize = fields[7], fields[8], fields[11]
        if not 0 < namesize <= caps.names:
            raise FirmwareFormatError(
                f"{what}: cpio header at offset {offset:#x}: name size {namesize}; expected 1 to {caps.names}"
            )
        raw = stream.exact(namesize, f"the name of the entry at {offset:#x}")
        stream.skip(-(HEADER + namesize) % 4, "padding")
        name = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if name == TRAILER:
            return
        path = normal_path(name)
        kind = mode & _S_IFMT
        if kind == _S_IFLNK:
            if size > caps.names:
                raise FirmwareFormatError(
                    f"{what}: cpio entry {name!r} at offset {offset:#x}: link target of {size} bytes; "
                    f"expected at most {caps.names}"
                )
            target = stream.exact(size, f"the link target of {name!r}").decode("utf-8", "surrogateescape")
            link = normal_path(posixpath.join(posixpath.dirname(path), target))
            entry, body = Entry(path, EntryKind.SYMLINK, 0, link, name), Body(stream, 0, name)
        elif kind == _S_IFREG:
            group = (devmajor, devminor, ino) if nlink > 1 else None
            entry, body = Entry(path, EntryKind.FILE, size, name=name, group=group), Body(stream, size, name)
        else:
            entry, body = Entry(path, EntryKind.OTHER, 0, name=name), Body(stream, size, name)
        yield entry, body
        body.drain()
        stream.skip(-size % 4, "padding")
