"""QEMU's SEV kernel-hashes table: SHA-256 of kernel, initrd and command line.

With ``-kernel`` and ``sev-guest,kernel-hashes=on`` QEMU writes this table into
the area the firmware's footer names and measures it after the firmware
(``target/i386/sev.c``: ``build_kernel_loader_hashes``). OVMF's AmdSevX64 build
checks the blobs it loads against it. The table is 168 bytes, measured padded
with zeros to 176 ("data encrypted by sev_encrypt_flash() must be padded to a
multiple of 16 bytes").
"""

from __future__ import annotations

import ctypes
import hashlib

from sevref.binfmt._struct import LEStruct, check_layout, guid_bytes
from sevref.errors import ConfigError, LayoutError

__all__ = [
    "CMDLINE_ENTRY_GUID",
    "EMPTY_SHA256",
    "HEADER_GUID",
    "INITRD_ENTRY_GUID",
    "KERNEL_ENTRY_GUID",
    "TABLE_SIZE",
    "PaddedSevHashTable",
    "SevHashTable",
    "SevHashTableEntry",
    "build_hash_table",
    "cmdline_sha256",
    "hash_table_page",
]

HEADER_GUID = "9438d606-4f22-4cc9-b479-a793d411fd21"
"""The table's header GUID (QEMU ``sev_hash_table_header_guid``)."""
CMDLINE_ENTRY_GUID = "97d02dd8-bd20-4c94-aa78-e7714d36ab2a"
"""The command-line entry (QEMU ``sev_cmdline_entry_guid``)."""
INITRD_ENTRY_GUID = "44baf731-3a2f-4bd7-9af1-41e29169781d"
"""The initrd entry (QEMU ``sev_initrd_entry_guid``)."""
KERNEL_ENTRY_GUID = "4de79437-abd2-427f-b835-d5b172d2045b"
"""The kernel entry (QEMU ``sev_kernel_entry_guid``)."""
EMPTY_SHA256 = hashlib.sha256(b"").digest()
"""What QEMU hashes for a missing initrd: an empty buffer."""
_PAGE = 4096


class SevHashTableEntry(LEStruct):
    """``SevHashTableEntry``: GUID, u16 length 50, SHA-256."""

    _fields_ = [("guid", ctypes.c_uint8 * 16), ("len", ctypes.c_uint16), ("hash", ctypes.c_uint8 * 32)]


class SevHashTable(LEStruct):
    """``SevHashTable``: header GUID, u16 length 168, then cmdline, initrd, kernel."""

    _fields_ = [
        ("guid", ctypes.c_uint8 * 16),
        ("len", ctypes.c_uint16),
        ("cmdline", SevHashTableEntry),
        ("initrd", SevHashTableEntry),
        ("kernel", SevHashTableEntry),
    ]


class PaddedSevHashTable(LEStruct):
    """``PaddedSevHashTable``: the table and 8 zero bytes (176 bytes)."""

    _fields_ = [("ht", SevHashTable), ("reserved_0xa8", ctypes.c_uint8 * 8)]


check_layout(SevHashTableEntry, 50, {"guid": 0, "len": 16, "hash": 18})
check_layout(SevHashTable, 168, {"cmdline": 0x12, "initrd": 0x44, "kernel": 0x76})
check_layout(PaddedSevHashTable, 176)
TABLE_SIZE = ctypes.sizeof(PaddedSevHashTable)
"""Bytes measured for the table: 176."""


def cmdline_sha256(cmdline: str | None) -> bytes:
    r"""Hash a kernel command line as QEMU does: UTF-8 bytes plus the terminating NUL.

    No ``-append`` hashes the single byte ``\\0``, exactly like an empty one.

    Args:
        cmdline: the command line, or None.

    Returns:
        The 32-byte SHA-256.

    Raises:
        ConfigError: the command line contains a NUL, which ``-append`` cannot carry.
    """
    text = cmdline or ""
    if "\0" in text:
        raise ConfigError(
            f"cmdline: NUL byte at index {text.index(chr(0))}; expected none (QEMU's -append ends at the first NUL)"
        )
    return hashlib.sha256(text.encode("utf-8") + b"\0").digest()


def _entry(guid: str, digest: bytes) -> SevHashTableEntry:
    return SevHashTableEntry.build(guid=guid_bytes(guid), len=ctypes.sizeof(SevHashTableEntry), hash=digest)


def build_hash_table(*, kernel_sha256: bytes, initrd_sha256: bytes, cmdline_sha256: bytes) -> bytes:
    """Build the 176 measured bytes of the kernel-hashes table.

    Args:
        kernel_sha256: SHA-256 of the kernel file (QEMU hashes setup + kernel
            data, which is the unmodified bzImage because it does not patch the
            header under SEV).
        initrd_sha256: SHA-256 of the initrd, :data:`EMPTY_SHA256` when none.
        cmdline_sha256: from :func:`cmdline_sha256`.

    Returns:
        Exactly :data:`TABLE_SIZE` bytes.

    Raises:
        LayoutError: a hash is not 32 bytes.
    """
    table = SevHashTable.build(
        guid=guid_bytes(HEADER_GUID),
        len=ctypes.sizeof(SevHashTable),
        cmdline=_entry(CMDLINE_ENTRY_GUID, cmdline_sha256),
        initrd=_entry(INITRD_ENTRY_GUID, initrd_sha256),
        kernel=_entry(KERNEL_ENTRY_GUID, kernel_sha256),
    )
    return PaddedSevHashTable.build(ht=table).to_bytes()


def hash_table_page(table: bytes, offset: int, size: int = _PAGE) -> bytes:
    """Place the table in a zeroed area at ``offset`` (SEV-SNP's KERNEL_HASHES section).

    QEMU zeroes the section, copies the table to the table area's offset within
    its page and measures the whole section as NORMAL pages
    (``snp_launch_update_kernel_hashes``).

    Args:
        table: from :func:`build_hash_table`.
        offset: the table area's base address within its page.
        size: the section's size.

    Returns:
        Exactly ``size`` bytes.

    Raises:
        LayoutError: the table does not fit in the section at that offset.
    """
    if not 0 <= offset <= size - len(table):
        raise LayoutError(
            f"kernel-hashes table at page offset {offset:#x}: expected "
            f"0..{size - len(table):#x} so its {len(table)} bytes fit in the {size:#x}-byte section"
        )
    return bytes(offset) + table + bytes(size - offset - len(table))
