r"""Debian binary packages (.deb): read files out of one without dpkg, streamed and bounded.

A .deb is an ``ar`` archive (``!<arch>\\n``, then 60-byte member headers: name
0..16, mtime, uid, gid, mode, size 48..58, ``"`\\n"`` 58..60; odd members are
padded to an even offset) holding ``debian-binary``, ``control.tar`` and
``data.tar``, each tar compressed with gzip, xz, zstd (Ubuntu since 21.10),
bzip2 or lzma, or not at all (deb(5)). Only the member headers are read to
open a package; its tars are streamed (:mod:`sevref.binfmt.archive`), and
nothing in the archive decides where anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from sevref.binfmt import tar
from sevref.binfmt.archive import (
    Body,
    Caps,
    Compression,
    Entry,
    EntryKind,
    Extracted,
    Index,
    Stream,
    extract,
    index_of,
    unpack,
)
from sevref.errors import FirmwareFormatError

__all__ = ["ArMember", "DebArchive", "control_fields"]

_MAGIC = b"!<arch>\n"
_HEADER = 60
_SUFFIXES = {
    "": Compression.NONE,
    ".gz": Compression.GZIP,
    ".xz": Compression.XZ,
    ".zst": Compression.ZSTD,
    ".bz2": Compression.BZIP2,
    ".lzma": Compression.LZMA,
}
"""deb(5): the compressions a control.tar or data.tar member may have, by its suffix."""


@dataclass(frozen=True)
class ArMember:
    """Where one member of the ar archive lies."""

    name: str
    """Its name (``data.tar.zst``)."""
    offset: int
    """The offset of its first byte in the .deb."""
    size: int
    """Its size."""


def _members(file: BinaryIO, what: str, total: int) -> dict[str, ArMember]:
    """Read every ar member header (ar(5)), seeking past the contents."""
    magic = file.read(len(_MAGIC))
    if magic != _MAGIC:
        raise FirmwareFormatError(f"{what}: expected an ar archive starting {_MAGIC!r}, found {magic!r}")
    members: dict[str, ArMember] = {}
    offset = len(_MAGIC)
    while offset < total:
        file.seek(offset)
        header = file.read(_HEADER)
        if len(header) < _HEADER:
            raise FirmwareFormatError(f"{what}: member header at offset {offset:#x} runs past the end ({total} bytes)")
        if header[58:60] != b"`\n":
            raise FirmwareFormatError(
                f"{what}: member header at offset {offset:#x}: expected terminator b'`\\n', found {header[58:60]!r}"
            )
        name = header[0:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as error:
            raise FirmwareFormatError(
                f"{what}: member {name!r} at offset {offset:#x}: size field {header[48:58]!r} is not a number"
            ) from error
        start = offset + _HEADER
        if size < 0 or start + size > total:
            raise FirmwareFormatError(
                f"{what}: member {name!r} at offset {offset:#x} claims {size} bytes; only {total - start} remain"
            )
        members[name] = ArMember(name, start, size)
        offset = start + size + (size & 1)
    return members


def control_fields(text: str) -> dict[str, str]:
    """The fields of a control file (deb-control(5)); continuation lines are joined with newlines.

    Args:
        text: the file.

    Returns:
        Field name to value.
    """
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    return fields


class DebArchive:
    """An open .deb: its members located, nothing unpacked until asked."""

    def __init__(self, file: BinaryIO, what: str, caps: Caps) -> None:
        """Locate the members of a .deb.

        Args:
            file: the package, open for reading and seeking.
            what: how to name it in errors (its file name).
            caps: the bounds of everything read out of it.

        Raises:
            FirmwareFormatError: not an ar archive, or a damaged member header.
        """
        self._file = file
        self.what = what
        self.caps = caps
        total = file.seek(0, 2)
        file.seek(0)
        self.members = _members(file, what, total)

    def _member(self, stem: str) -> tuple[ArMember, Compression]:
        for member in self.members.values():
            if member.name == stem or member.name.startswith(stem + "."):
                suffix = member.name[len(stem) :]
                if suffix not in _SUFFIXES:
                    raise FirmwareFormatError(
                        f"{self.what}: {member.name}: unknown compression {suffix!r}; expected {stem} or {stem}"
                        + ", ".join(s for s in _SUFFIXES if s)
                    )
                return member, _SUFFIXES[suffix]
        raise FirmwareFormatError(f"{self.what}: no {stem}.* member; found {', '.join(self.members) or 'none'}")

    def walk(self, stem: str) -> Iterator[tuple[Entry, Body]]:
        """Walk the entries of ``control.tar`` or ``data.tar``, decompressing as it goes.

        Args:
            stem: ``control.tar`` or ``data.tar``.

        Yields:
            Each entry with its contents.

        Raises:
            FirmwareFormatError: no such member, or a damaged one.
        """
        member, compression = self._member(stem)
        self._file.seek(member.offset)
        what = f"{self.what}: {member.name}"
        raw = Stream(self._file, what, member.size)
        yield from tar.walk(unpack(raw, compression, what, self.caps), self.caps)

    def control(self) -> dict[str, str]:
        """The fields of the package's ``control`` file.

        Returns:
            Package, Version, Architecture, ...

        Raises:
            FirmwareFormatError: no control file, too large, not UTF-8, or a damaged member.
        """
        for entry, body in self.walk("control.tar"):
            if entry.path == "/control" and entry.kind is EntryKind.FILE:
                if entry.size > self.caps.metadata:
                    raise FirmwareFormatError(
                        f"{self.what}: control is {entry.size} bytes; expected at most {self.caps.metadata}"
                    )
                try:
                    return control_fields(b"".join(body.chunks()).decode("utf-8"))
                except UnicodeDecodeError as error:
                    raise FirmwareFormatError(f"{self.what}: control is not UTF-8 ({error})") from error
        raise FirmwareFormatError(f"{self.what}: control.tar has no ./control; expected one (deb-control(5))")

    def index(self, label: str) -> Index:
        """Index ``data.tar``: every file and link, no contents.

        Args:
            label: the package's ``name version``, for errors.

        Returns:
            The index.

        Raises:
            FetchError: a file larger than the caps allow.
            FirmwareFormatError: a damaged archive.
        """
        member, _ = self._member("data.tar")
        return index_of(self.walk("data.tar"), label, f"{self.what}: {member.name}", self.caps)

    def read(self, index: Index, path: str) -> Extracted:
        """Read one file out of ``data.tar``, following links, and stop there.

        Args:
            index: from :meth:`index`.
            path: the installed path (``usr/share/OVMF/OVMF_CODE.fd``).

        Returns:
            The file and its SHA-256.

        Raises:
            FetchError: no such file, or too large.
            FirmwareFormatError: a damaged archive.
        """
        target = index.resolve(path)
        member, _ = self._member("data.tar")
        return extract(self.walk("data.tar"), target, f"{self.what}: {member.name}", self.caps)
