"""RPM packages: read files out of one without rpm, streamed and bounded.

An RPM file (rpm's ``docs/manual/format.md``) is, in order:

* the **lead**, 96 bytes: magic ``ed ab ee db``, major and minor version,
  type (0: binary), architecture number, a 66-byte name, OS number and
  signature type (5: a header-style signature), then 16 reserved bytes;
* the **signature** header, padded with zeros to a multiple of 8 bytes;
* the main **header**: its magic ``8e ad e8 01``, 4 reserved bytes, the number
  of index entries and the size of the data store (big-endian u32 each), the
  entries (tag, type, offset, count: 16 bytes each), then the store;
* the **payload**: a cpio archive (``PAYLOADFORMAT``, tag 1124) compressed as
  ``PAYLOADCOMPRESSOR`` (tag 1125) says: gzip, bzip2, xz, lzma or zstd; without
  the tag, gzip if it starts as gzip does, else not compressed at all.

Tag numbers and types are those of rpm's ``include/rpm/rpmtag.h``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from sevref.binfmt import cpio
from sevref.binfmt.archive import Body, Caps, Compression, Entry, Extracted, Index, Stream, extract, index_of, unpack
from sevref.errors import FirmwareFormatError

__all__ = ["RpmArchive", "RpmHeader"]

LEAD_SIZE = 96
LEAD_MAGIC = b"\xed\xab\xee\xdb"
HEADER_MAGIC = b"\x8e\xad\xe8\x01"
SIGNATURE_TYPE_HEADER = 5
"""The lead's signature type for a header-style signature (the only one rpm writes since 1997)."""
MAX_TAGS = 0x10000
"""rpm refuses headers with more index entries than this (``hdrchkTags`` in lib/header.c)."""

# rpmtag.h, rpmTag_e
TAG_NAME = 1000
TAG_VERSION = 1001
TAG_RELEASE = 1002
TAG_EPOCH = 1003
TAG_ARCH = 1022
TAG_PAYLOADFORMAT = 1124
TAG_PAYLOADCOMPRESSOR = 1125
# rpmtag.h, rpmTagType_e
TYPE_INT32 = 4
TYPE_STRING = 6
TYPE_STRING_ARRAY = 8
TYPE_I18NSTRING = 9

_COMPRESSORS = {
    "none": Compression.NONE,
    "gzip": Compression.GZIP,
    "bzip2": Compression.BZIP2,
    "xz": Compression.XZ,
    "lzma": Compression.LZMA,
    "zstd": Compression.ZSTD,
}
"""rpm's PAYLOADCOMPRESSOR values (lib/rpmio's rpmFileIsCompressed), as :class:`Compression`."""


@dataclass(frozen=True)
class RpmHeader:
    """One header structure: its index entries and data store."""

    entries: dict[int, tuple[int, int, int]]
    """Tag -> (type, offset into the store, count)."""
    store: bytes
    """The data store."""
    what: str
    """How to name the header in errors."""

    def string(self, tag: int) -> str | None:
        """A STRING (or the first of a STRING_ARRAY or I18NSTRING) tag's value.

        Args:
            tag: the tag number.

        Returns:
            The text, or None when the header lacks the tag.

        Raises:
            FirmwareFormatError: another type, or a string without its NUL.
        """
        if tag not in self.entries:
            return None
        kind, offset, _ = self.entries[tag]
        if kind not in (TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING):
            raise FirmwareFormatError(f"{self.what}: tag {tag} has type {kind}; expected a string ({TYPE_STRING})")
        end = self.store.find(b"\0", offset)
        if end < 0:
            raise FirmwareFormatError(f"{self.what}: tag {tag} at store offset {offset:#x}: the string has no NUL")
        return self.store[offset:end].decode("utf-8", "replace")

    def int32(self, tag: int) -> int | None:
        """An INT32 tag's first value.

        Args:
            tag: the tag number.

        Returns:
            The value, or None when the header lacks the tag.

        Raises:
            FirmwareFormatError: another type, or past the store.
        """
        if tag not in self.entries:
            return None
        kind, offset, _ = self.entries[tag]
        if kind != TYPE_INT32 or offset + 4 > len(self.store):
            raise FirmwareFormatError(f"{self.what}: tag {tag}: type {kind} at {offset:#x}; expected an INT32")
        return int.from_bytes(self.store[offset : offset + 4], "big")


def _header(stream: Stream, part: str, caps: Caps) -> RpmHeader:
    """Read one header structure (format.md "Header format")."""
    offset = stream.offset
    intro = stream.exact(16, f"the {part} header")
    if intro[:4] != HEADER_MAGIC:
        raise FirmwareFormatError(
            f"{stream.what}: {part} header at offset {offset:#x}: expected magic {HEADER_MAGIC.hex()}, "
            f"found {intro[:4].hex()}"
        )
    count, size = struct.unpack(">II", intro[8:16])
    if count > MAX_TAGS or 16 * count + size > caps.metadata:
        raise FirmwareFormatError(
            f"{stream.what}: {part} header at offset {offset:#x}: {count} tags and {size} bytes of data; "
            f"expected at most {MAX_TAGS} tags and {caps.metadata} bytes"
        )
    index = stream.exact(16 * count, f"the {part} header's index")
    store = stream.exact(size, f"the {part} header's data")
    entries: dict[int, tuple[int, int, int]] = {}
    for tag, kind, start, number in struct.iter_unpack(">IIiI", index):
        if not 0 <= start < max(size, 1):
            raise FirmwareFormatError(
                f"{stream.what}: {part} header at offset {offset:#x}: tag {tag} points at store offset {start}; "
                f"expected 0 to {size - 1}"
            )
        entries.setdefault(tag, (kind, start, number))
    return RpmHeader(entries, store, f"{stream.what}: {part} header")


class RpmArchive:
    """An open RPM: lead and headers read, the payload not yet."""

    def __init__(self, file: BinaryIO, what: str, caps: Caps) -> None:
        """Read an RPM's lead and headers.

        Args:
            file: the package, open for reading and seeking.
            what: how to name it in errors (its file name or URL).
            caps: the bounds of everything read out of it.

        Raises:
            FirmwareFormatError: not an RPM, a truncated or damaged lead or
                header, or a payload format other than cpio.
        """
        self._file = file
        self.what = what
        self.caps = caps
        self.total = file.seek(0, 2)
        file.seek(0)
        stream = Stream(file, what)
        lead = stream.exact(LEAD_SIZE, "the lead")
        if lead[:4] != LEAD_MAGIC:
            raise FirmwareFormatError(
                f"{what}: lead at offset 0x0: expected magic {LEAD_MAGIC.hex()} (an RPM), found {lead[:4].hex()}"
            )
        kind, signature = struct.unpack(">h", lead[6:8])[0], struct.unpack(">h", lead[78:80])[0]
        if kind != 0:
            raise FirmwareFormatError(f"{what}: lead at offset 0x6: type {kind}; expected 0 (a binary package)")
        if signature != SIGNATURE_TYPE_HEADER:
            raise FirmwareFormatError(
                f"{what}: lead at offset 0x4e: signature type {signature}; expected {SIGNATURE_TYPE_HEADER}"
            )
        self.signature = _header(stream, "signature", caps)
        stream.skip(-stream.offset % 8, "the signature's padding")
        self.header = _header(stream, "main", caps)
        self.payload_offset = stream.offset
        payload = self.header.string(TAG_PAYLOADFORMAT) or "cpio"
        if payload != "cpio":
            raise FirmwareFormatError(f"{what}: payload format (tag {TAG_PAYLOADFORMAT}) {payload!r}; expected 'cpio'")
        compressor = self.header.string(TAG_PAYLOADCOMPRESSOR)
        if compressor is None:
            # rpm reads a payload without the tag as "gzip" through zlib's gzread, which passes data
            # that is not gzip through as it is: what rpmbuild writes for _binary_payload w0.ufdio.
            file.seek(self.payload_offset)
            compressor = "gzip" if file.read(2) == b"\x1f\x8b" else "none"
        if compressor not in _COMPRESSORS:
            raise FirmwareFormatError(
                f"{what}: payload compressor (tag {TAG_PAYLOADCOMPRESSOR}) {compressor!r}; expected one of "
                + ", ".join(_COMPRESSORS)
            )
        self.compression = _COMPRESSORS[compressor]

    def facts(self) -> dict[str, str]:
        """The package's identity, from its main header.

        Returns:
            ``name``, ``version``, ``release``, ``arch`` and ``epoch`` (empty when none).
        """
        epoch = self.header.int32(TAG_EPOCH)
        return {
            "name": self.header.string(TAG_NAME) or "",
            "version": self.header.string(TAG_VERSION) or "",
            "release": self.header.string(TAG_RELEASE) or "",
            "arch": self.header.string(TAG_ARCH) or "",
            "epoch": "" if epoch is None else str(epoch),
        }

    def walk(self) -> Iterator[tuple[Entry, Body]]:
        """Walk the payload's cpio entries, decompressing as it goes.

        Yields:
            Each entry with its contents.

        Raises:
            FirmwareFormatError: a damaged or truncated payload.
        """
        self._file.seek(self.payload_offset)
        what = f"{self.what}: payload ({self.compression} cpio at {self.payload_offset:#x})"
        raw = Stream(self._file, what, self.total - self.payload_offset)
        yield from cpio.walk(unpack(raw, self.compression, what, self.caps), self.caps)

    def index(self, label: str) -> Index:
        """Index the payload: every file and link, no contents.

        Args:
            label: the package's ``name version``, for errors.

        Returns:
            The index.

        Raises:
            FetchError: a file larger than the caps allow.
            FirmwareFormatError: a damaged payload.
        """
        return index_of(self.walk(), label, f"{self.what}: payload", self.caps)

    def read(self, index: Index, path: str) -> Extracted:
        """Read one file out of the payload, following links, and stop there.

        Args:
            index: from :meth:`index`.
            path: the installed path (``usr/share/edk2/ovmf/OVMF_CODE.fd``).

        Returns:
            The file and its SHA-256.

        Raises:
            FetchError: no such file, or too large.
            FirmwareFormatError: a damaged payload.
        """
        return extract(self.walk(), index.resolve(path), f"{self.what}: payload", self.caps)
