"""Streams out of packages: bounded reading, decompression, and the index of an archive's files.

A package (a .deb, an RPM) is read forward, member by member, and never held
whole: :class:`Stream` reads a byte stream and counts its offset,
:func:`unpack` decompresses one (gzip, xz, lzma, bzip2 or zstd) and refuses to
give more than :attr:`Caps.unpacked` bytes, and the archive formats
(:mod:`~sevref.binfmt.tar`, :mod:`~sevref.binfmt.cpio`) walk their entries on
top of it. A first walk builds an :class:`Index` (names, links, sizes, no
contents); a second reads the one file wanted, hashing it as it comes
(:func:`extract`), and stops there.

Every bound is a parameter (:class:`Caps`): the edge takes them from
:mod:`sevref.limits`.
"""

from __future__ import annotations

import bz2
import enum
import gzip
import hashlib
import lzma
import posixpath
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import zstandard

from sevref.errors import FetchError, FirmwareFormatError

__all__ = [
    "CHUNK_BYTES",
    "Body",
    "Caps",
    "Compression",
    "Entry",
    "EntryKind",
    "Extracted",
    "Index",
    "Reader",
    "Stream",
    "extract",
    "index_of",
    "normal_path",
    "unpack",
]

CHUNK_BYTES = 1 << 16
"""The most bytes read at a time."""
MAX_LINKS = 16
"""Links followed from a path before giving up (a loop)."""


class Reader(Protocol):
    """Anything with ``read(size)``: a file, a decompressor, a :class:`Stream`."""

    def read(self, size: int, /) -> bytes:
        """Return at most ``size`` bytes; nothing at the end."""


@dataclass(frozen=True)
class Caps:
    """The bounds of one read out of a package."""

    member: int
    """The largest file read out of it: a larger entry stops the read at its header."""
    member_label: str
    """How to name :attr:`member` in errors, e.g. ``the limit of firmware ovmf-code``."""
    unpacked: int
    """The most bytes one compressed stream may unpack to."""
    entries: int
    """The most entries of one archive."""
    names: int
    """The longest name, link target or extended header."""
    metadata: int
    """The largest control file or package header."""
    window: int
    """The most memory an xz or zstd decoder may ask for."""


class Stream:
    """A byte stream read forward only, with its offset; running short is a format error."""

    def __init__(self, source: Reader, what: str, size: int | None = None) -> None:
        """Read ``source`` from where it stands.

        Args:
            source: the bytes.
            what: how to name the stream in errors (``ovmf.deb: data.tar.xz``).
            size: read no more than this many bytes (an ar member), if given.
        """
        self._source = source
        self.what = what
        self.size = size
        self.offset = 0

    def read(self, size: int, /) -> bytes:
        """Return at most ``size`` bytes (fewer near the end), nothing at the end.

        Args:
            size: the most bytes.

        Returns:
            The bytes.
        """
        if self.size is not None:
            size = min(size, self.size - self.offset)
        if size <= 0:
            return b""
        data = self._source.read(size)
        self.offset += len(data)
        return data

    def chunks(self, size: int, part: str) -> Iterator[bytes]:
        """Yield exactly ``size`` bytes in pieces.

        Args:
            size: how many.
            part: what they are, for errors (``the header of entry 3``).

        Yields:
            The pieces, each at most :data:`CHUNK_BYTES`.

        Raises:
            FirmwareFormatError: the stream ends first.
        """
        start, left = self.offset, size
        while left > 0:
            piece = self.read(min(left, CHUNK_BYTES))
            if not piece:
                raise FirmwareFormatError(
                    f"{self.what}: {part} at offset {start:#x}: expected {size} bytes, found {self.offset - start} "
                    "(the stream is truncated)"
                )
            left -= len(piece)
            yield piece

    def exact(self, size: int, part: str) -> bytes:
        """Read exactly ``size`` bytes (only for sizes already bounded).

        Args:
            size: how many.
            part: what they are, for errors.

        Returns:
            The bytes.

        Raises:
            FirmwareFormatError: the stream ends first.
        """
        return b"".join(self.chunks(size, part))

    def skip(self, size: int, part: str) -> None:
        """Read past ``size`` bytes.

        Args:
            size: how many.
            part: what they are, for errors.

        Raises:
            FirmwareFormatError: the stream ends first.
        """
        for _ in self.chunks(size, part):
            pass


class Compression(enum.StrEnum):
    """The compressions of package members and payloads (deb(5); rpm's PAYLOADCOMPRESSOR)."""

    NONE = "none"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    LZMA = "lzma"
    ZSTD = "zstd"


class _Lzma:
    """xz and lzma streams, read ``size`` bytes at a time, with the decoder's memory bounded."""

    def __init__(self, source: Reader, window: int) -> None:
        self._source = source
        self._window = window
        self._decoder = lzma.LZMADecompressor(lzma.FORMAT_AUTO, memlimit=window)

    def read(self, size: int, /) -> bytes:
        while True:
            if self._decoder.eof:
                rest = self._decoder.unused_data or self._source.read(CHUNK_BYTES)
                if not rest.strip(b"\0"):  # xz stream padding (xz-file-format 2.2), then the end
                    return b""
                self._decoder = lzma.LZMADecompressor(lzma.FORMAT_AUTO, memlimit=self._window)
                data = rest
            elif self._decoder.needs_input:
                data = self._source.read(CHUNK_BYTES)
                if not data:
                    raise EOFError("the compressed stream ends before its end marker")
            else:
                data = b""
            out = self._decoder.decompress(data, max_length=size)
            if out:
                return out


class _Unpacked:
    """Decompressed bytes, counted: more than the cap is a refusal, not a MemoryError."""

    def __init__(self, source: Reader, compression: Compression, what: str, caps: Caps) -> None:
        self._what = what
        self._compression = compression
        self._cap = caps.unpacked
        self._count = 0
        self._reader: Reader
        match compression:
            case Compression.NONE:
                self._reader = source
            case Compression.GZIP:
                self._reader = gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[call-overload]
            case Compression.BZIP2:
                self._reader = bz2.BZ2File(source)  # type: ignore[call-overload]
            case Compression.XZ | Compression.LZMA:
                self._reader = _Lzma(source, caps.window)
            case Compression.ZSTD:
                decoder = zstandard.ZstdDecompressor(max_window_size=caps.window)
                self._reader = decoder.stream_reader(source, read_across_frames=True, closefd=False)  # type: ignore[arg-type]

    def read(self, size: int, /) -> bytes:
        try:
            data = self._reader.read(min(size, self._cap + 1 - self._count))
        except (OSError, EOFError, lzma.LZMAError, zlib.error, zstandard.ZstdError, ValueError) as error:
            raise FirmwareFormatError(
                f"{self._what}: not a readable {self._compression} stream after {self._count} unpacked bytes ({error})"
            ) from error
        self._count += len(data)
        if self._count > self._cap:
            raise FirmwareFormatError(
                f"{self._what}: unpacks to more than {self._cap} bytes; expected at most that "
                "(a compression bomb, or a package far larger than any firmware package)"
            )
        return data


def unpack(source: Reader, compression: Compression, what: str, caps: Caps) -> Stream:
    """Decompress a stream as it is read, to at most ``caps.unpacked`` bytes.

    Args:
        source: the compressed bytes.
        compression: how they are compressed.
        what: how to name the stream in errors.
        caps: the bounds.

    Returns:
        The decompressed stream; reading it raises :class:`FirmwareFormatError`
        for a damaged stream or one that unpacks past the cap.
    """
    return Stream(_Unpacked(source, compression, what, caps), what)


class EntryKind(enum.Enum):
    """What an archive entry is."""

    FILE = "file"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    OTHER = "other"
    """A directory, device or FIFO: nothing to read."""


@dataclass(frozen=True)
class Entry:
    """One entry of an archive, by its installed path."""

    path: str
    """Absolute and normalized: ``/usr/share/OVMF/OVMF_CODE.fd``."""
    kind: EntryKind
    """What it is."""
    size: int
    """Bytes of contents (files only)."""
    link: str | None = None
    """The absolute, normalized target of a link."""
    name: str = ""
    """The name as the archive writes it, for errors."""
    group: tuple[int, int, int] | None = None
    """cpio hard links: (device major, minor, inode) shared by every name of one file."""


class Body:
    """The contents of the entry a walk stands at; what is not read is skipped."""

    def __init__(self, stream: Stream, size: int, name: str) -> None:
        """Stand at an entry's contents.

        Args:
            stream: the archive's stream, at the first byte of the contents.
            size: the contents' size.
            name: the entry's name, for errors.
        """
        self._stream = stream
        self._name = name
        self.left = size

    def chunks(self) -> Iterator[bytes]:
        """Yield the contents not yet read.

        Yields:
            Pieces of at most :data:`CHUNK_BYTES`.
        """
        size, self.left = self.left, 0
        yield from self._stream.chunks(size, f"the contents of {self._name}")

    def drain(self) -> None:
        """Skip what was not read."""
        for _ in self.chunks():
            pass


def normal_path(path: str) -> str:
    """An archive name as an absolute, normalized path that cannot leave the root.

    Args:
        path: ``./usr/x``, ``usr/x`` or ``/usr/x``.

    Returns:
        ``/usr/x``.
    """
    # Not path.lstrip("./"), which strips the dot of a dot file too: "./.x" is "/.x".
    return posixpath.normpath("/" + path.lstrip("/"))


@dataclass
class Index:
    """The files and links of one archive, without their contents."""

    label: str
    """The package's ``name version``, for errors."""
    files: dict[str, int] = field(default_factory=dict)
    """Regular files by path, with their sizes."""
    links: dict[str, str] = field(default_factory=dict)
    """Symbolic and hard links by path, to their absolute target."""
    groups: dict[tuple[int, int, int], list[str]] = field(default_factory=dict)
    """cpio hard links: the names of each file that has several."""

    def add(self, entry: Entry) -> None:
        """Record an entry.

        Args:
            entry: a file or a link; others are left out.
        """
        if entry.kind is EntryKind.FILE:
            self.files[entry.path] = entry.size
            if entry.group is not None:
                self.groups.setdefault(entry.group, []).append(entry.path)
        elif entry.link is not None and entry.kind in (EntryKind.SYMLINK, EntryKind.HARDLINK):
            self.links[entry.path] = entry.link

    def resolve(self, path: str) -> str:
        """The regular file a path names, following links inside the archive.

        Args:
            path: the installed path (a leading / is optional).

        Returns:
            The file's normalized path.

        Raises:
            FetchError: no such file (the message lists files with the same extension).
        """
        current = normal_path(path)
        for _ in range(MAX_LINKS):
            if current in self.files:
                return current
            if current not in self.links:
                break
            current = self.links[current]
        extension = posixpath.splitext(path)[1]
        similar = sorted(p for p in (*self.files, *self.links) if posixpath.splitext(p)[1] == extension)
        hint = f"; it has {', '.join(similar[:12])}" if similar else ""
        raise FetchError(f"{self.label}: no file {normal_path(path)}{hint}")


def index_of(walk: Iterable[tuple[Entry, Body]], label: str, what: str, caps: Caps) -> Index:
    """Index an archive's entries, refusing any file larger than ``caps.member``.

    Args:
        walk: the archive's entries.
        label: the package's ``name version``.
        what: the archive, for errors (``ovmf.deb: data.tar.zst``).
        caps: the bounds.

    Returns:
        The index.

    Raises:
        FetchError: a file larger than ``caps.member``.
        FirmwareFormatError: too many entries, or a damaged archive.
    """
    index = Index(label)
    for count, (entry, _) in enumerate(walk, start=1):
        if count > caps.entries:
            raise FirmwareFormatError(f"{what}: more than {caps.entries} entries; expected at most that")
        too_large(entry, what, caps)
        index.add(entry)
    # newc cpio (as rpm writes it) gives a hard-linked file's contents with its last name only.
    for names in index.groups.values():
        holder = next((n for n in reversed(names) if index.files.get(n)), names[-1])
        for name in names:
            if name != holder:
                del index.files[name]
                index.links[name] = holder
    return index


def too_large(entry: Entry, what: str, caps: Caps) -> None:
    """Refuse a file larger than ``caps.member``, from its header alone.

    Args:
        entry: the entry.
        what: the archive, for errors.
        caps: the bounds.

    Raises:
        FetchError: the file is too large.
    """
    if entry.kind is EntryKind.FILE and entry.size > caps.member:
        raise FetchError(
            f"{what}: {entry.name or entry.path} is {entry.size} bytes; expected at most {caps.member} "
            f"({caps.member_label}); nothing was unpacked"
        )


@dataclass(frozen=True)
class Extracted:
    """A file read out of a package."""

    data: bytes
    """Its contents."""
    sha256: bytes
    """Their SHA-256, computed as they were read."""


def extract(walk: Iterable[tuple[Entry, Body]], path: str, what: str, caps: Caps) -> Extracted:
    """Read one regular file out of an archive, hashing it as it comes, and stop there.

    Args:
        walk: the archive's entries.
        path: the file's normalized path (from :meth:`Index.resolve`).
        what: the archive, for errors.
        caps: the bounds.

    Returns:
        The file and its SHA-256.

    Raises:
        FetchError: the file is not there, or larger than ``caps.member``.
        FirmwareFormatError: a damaged archive.
    """
    for count, (entry, body) in enumerate(walk, start=1):
        if count > caps.entries:
            break
        if entry.path == path and entry.kind is EntryKind.FILE:
            too_large(entry, what, caps)
            hasher, pieces = hashlib.sha256(), []
            for piece in body.chunks():
                hasher.update(piece)
                pieces.append(piece)
            return Extracted(b"".join(pieces), hasher.digest())
    raise FetchError(f"{what}: no file {path}; expected it where the first reading found it")
