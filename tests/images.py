"""Synthetic OVMF images for parser tests, laid out as edk2 builds them."""

from __future__ import annotations

from collections.abc import Sequence

from sevref.binfmt._struct import guid_bytes
from sevref.binfmt.ovmf import FOOTER_GUID, SEV_ES_RESET_BLOCK_GUID

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
