"""Synthetic OVMF images for parser tests, laid out as edk2 builds them."""

from __future__ import annotations

from collections.abc import Sequence

from sevref.binfmt._struct import guid_bytes
from sevref.binfmt.ovmf import FOOTER_GUID, SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_RV_GUID, SEV_METADATA_GUID

RESET_VECTOR = b"\x90" * 16 + b"VTF\0" + b"\x00" * 12
"""Stand-in for the last 32 bytes (reset-vector code and the "VTF" signature)."""


def entry(guid: str, data: bytes, size: int | None = None) -> bytes:
    """One footer-table entry: data, u16 size (data + 18), GUID."""
    return data + (len(data) + 18 if size is None else size).to_bytes(2, "little") + guid_bytes(guid)


def ovmf_image(
    entries: Sequence[tuple[str, bytes] | bytes],
    size: int = 4096,
    *,
    table_size: int | None = None,
    fill: int = 0xFF,
) -> bytes:
    """An image whose footer table holds ``entries`` (first entry lowest in the file).

    ``entries`` are (guid, data) pairs or ready-made entry bytes; ``table_size``
    overrides the footer's size field.
    """
    table = b"".join(e if isinstance(e, bytes) else entry(*e) for e in entries)
    footer = (len(table) + 18 if table_size is None else table_size).to_bytes(2, "little") + guid_bytes(FOOTER_GUID)
    tail = table + footer + RESET_VECTOR
    return bytes([fill]) * (size - len(tail)) + tail


def legacy_image(eip: int, size: int = 4096, *, length: int = 22) -> bytes:
    """A pre-2021 image: the SEV-ES reset block alone before the last 32 bytes."""
    tail = eip.to_bytes(4, "little") + length.to_bytes(2, "little") + guid_bytes(SEV_ES_RESET_BLOCK_GUID)
    return bytes([0xFF]) * (size - len(tail) - 32) + tail + RESET_VECTOR


def snp_image(
    sections: Sequence[tuple[int, int, int]],
    *,
    size: int = 4 * 4096,
    reset: int = 0x80B004,
    hash_table: tuple[int, int] | None = None,
    magic: bytes = b"ASEV",
    version: int = 1,
    count: int | None = None,
    header_size: int | None = None,
) -> bytes:
    """An image with SEV-SNP metadata: ``sections`` are (gpa, size, type) descriptors.

    The "ASEV" header sits 0x800 bytes from the end; the keyword arguments
    override its fields for hostile variants.
    """
    descriptors = b"".join(
        gpa.to_bytes(4, "little") + n.to_bytes(4, "little") + t.to_bytes(4, "little") for gpa, n, t in sections
    )
    length = 16 + len(descriptors) if header_size is None else header_size
    header = (
        magic
        + length.to_bytes(4, "little")
        + version.to_bytes(4, "little")
        + (len(sections) if count is None else count).to_bytes(4, "little")
    )
    entries: list[tuple[str, bytes] | bytes] = [(SEV_METADATA_GUID, (0x800).to_bytes(4, "little"))]
    if hash_table is not None:
        entries.append(
            (SEV_HASH_TABLE_RV_GUID, hash_table[0].to_bytes(4, "little") + hash_table[1].to_bytes(4, "little"))
        )
    entries.append((SEV_ES_RESET_BLOCK_GUID, reset.to_bytes(4, "little")))
    image = bytearray(ovmf_image(entries, size=size))
    start = size - 0x800
    image[start : start + len(header) + len(descriptors)] = header + descriptors
    return bytes(image)
