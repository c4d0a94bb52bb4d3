"""Synthetic OVMF images for parser tests, laid out as edk2 builds them."""

from __future__ import annotations

import hashlib
import struct
import uuid
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


# --------------------------------------------------------------------------- AmdSevX64-like image
#
# The layout of the top of an edk2 OvmfPkg/AmdSev/AmdSevX64.dsc build (edk2-stable202405; the facts are
# in research/sev-snp-measure-oracle.md §2.4 and edk2's OvmfPkg/ResetVector): the reset vector in the last
# 16 bytes, "VTF\0" before it, the footer GUID table ending 32 bytes before the end, and the SEV-SNP and
# TDX metadata blocks the ResetVector module places below it. Written from those facts, independently of
# sevref's parser: the GUIDs are spelled out again on purpose.

AMDSEV_RESET_EIP = 0x80B004
"""SEV-ES AP reset address (the SEV-ES reset block's u32)."""
AMDSEV_HASH_TABLE = (0x810C00, 0x400)
"""Kernel-hashes table area: (GPA, size) of the SEV hash table entry."""
AMDSEV_SECRET = (0x810000, 0xC00)
"""Launch secret area: (GPA, size)."""
AMDSEV_SNP_SECTIONS: tuple[tuple[int, int, int], ...] = (
    (0x800000, 0x9000, 1),  # SNP_SEC_MEM: memory SEC uses, pre-validated (below the GHCB)
    (0x80A000, 0x3000, 1),  # SNP_SEC_MEM: pre-validated (above the GHCB)
    (0x80D000, 0x1000, 2),  # SNP_SECRETS
    (0x80E000, 0x1000, 3),  # CPUID
    (0x80F000, 0x1000, 4),  # SVSM_CAA (edk2-stable202402 and later)
    (0x810000, 0x1000, 0x10),  # SNP_KERNEL_HASHES: the launch-secret page holding the hash table
    (0x811000, 0xF000, 1),  # SNP_SEC_MEM: pre-validated (the SEC stack and heap)
)
"""SEV-SNP metadata sections (GPA, size, type), in file order."""
AMDSEV_SNP_METADATA_FROM_END = 0x554
"""Where the "ASEV" header starts, counted back from the end of the image."""
AMDSEV_TDX_METADATA_FROM_END = 0x9D0
"""Where the "TDVF" header starts, counted back from the end of the image."""

_GUIDS = {
    "footer": "96b582de-1fb2-45f7-baea-a366c55a082d",
    "reset_block": "00f771de-1a7e-4fcb-890e-68c77e2fb44e",
    "secret": "4c2eb361-7d9b-4cc3-8081-127c90d3d294",
    "hash_table": "7255371f-3a3b-4b04-927b-1da6efa8d454",
    "snp_metadata": "dc886566-984a-4798-a75e-5585a7bf67cc",
    "tdx_metadata": "e47a6535-984a-4798-865e-4685a7bf8ec2",
}


def _le_guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


def _tdvf(size: int) -> bytes:
    """A TDX metadata block ("TDVF", version 1): the boot firmware volume and a temporary-memory section.

    SEV ignores it; it is here because edk2 builds carry it in the same table.
    """
    four_gib = 1 << 32
    sections = [
        # data offset, raw size, GPA, memory size, type (0 BFV, 3 TempMem), attributes (1 MR.EXTENDMR)
        (0, size, four_gib - size, size, 0, 1),
        (0, 0, 0x800000, 0x9000, 3, 0),
    ]
    body = b"".join(struct.pack("<IIQQII", *s) for s in sections)
    return b"TDVF" + struct.pack("<III", 16 + len(body), 1, len(sections)) + body


# The empty variable store an AmdSevX64 (or unified OvmfPkgX64) build of 4 MiB starts with, byte for byte as
# edk2's OvmfPkg/Include/Fdf/VarStore.fdf.inc writes it for FD_SIZE_IN_KB 4096: a firmware volume header
# (gEfiSystemNvDataFvGuid, FvLength 0x84000, "_FVH", HeaderLength 0x48, CheckSum bytes af b8, 0x84 blocks of
# 0x1000) and a VARIABLE_STORE_HEADER (gEfiAuthenticatedVariableGuid, size 0x3ffb8, FORMATTED, HEALTHY).
VARSTORE_4M = bytes(16) + bytes.fromhex(
    "8d2bf1ff96768b4ca9852747075b4f50"  # FileSystemGuid: gEfiSystemNvDataFvGuid
    "0040080000000000"  # FvLength 0x84000
    "5f465648fffe0400"  # "_FVH", Attributes 0x0004feff
    "4800afb800000002"  # HeaderLength 0x48, CheckSum (bytes af b8), ExtHeaderOffset 0, Reserved 0, Revision 2
    "8400000000100000"  # BlockMap[0]: 0x84 blocks of 0x1000 bytes
    "0000000000000000"  # BlockMap[1]: end
    "782cf3aa7b949a43a1802e144ec37792"  # VARIABLE_STORE_HEADER Signature: gEfiAuthenticatedVariableGuid
    "b8ff0300"  # Size 0x3ffb8
    "5afe000000000000"  # Format FORMATTED, State HEALTHY, reserved
)
"""The start of an edk2 4 MiB unified image: its empty UEFI variable store (``VarStore.fdf.inc``)."""


def amdsev_image(
    size: int = 4096, *, seed: bytes = b"sevref synthetic AmdSevX64", variable_store: bool = False
) -> bytes:
    """A synthetic image laid out as the top of an edk2 AmdSevX64 build, able to measure a kernel.

    Everything that is not a structure QEMU or a measuring tool reads is
    pseudo-random (SHAKE-256 of ``seed``), so every 4 KiB page differs. The
    last 4 KiB carry, counted back from the end: the reset vector (16 bytes),
    "VTF\\0", the footer GUID table (0x88 bytes with its footer: TDX
    metadata, SEV-SNP metadata, SEV hash table 0x810c00/0x400, SEV secret
    area 0x810000/0xc00, SEV-ES reset block 0x80b004), the "ASEV" SEV-SNP
    metadata 0x554 bytes from the end (the seven sections of
    :data:`AMDSEV_SNP_SECTIONS`) and a "TDVF" header 0x9d0 bytes from the end.

    Args:
        size: the image size, a multiple of 4096 (a real AmdSevX64 build is 4 MiB;
            4096 gives only its last page, like upstream test fixtures).
        seed: what the filler bytes derive from.
        variable_store: start the image with the empty variable store a real
            4 MiB AmdSevX64 build starts with (:data:`VARSTORE_4M`, the rest of its
            0x84000 bytes erased to 0xff), as ``AmdSevX64.fdf`` includes
            ``VarStore.fdf.inc``; the image must then be 4 MiB.

    Returns:
        The image.
    """
    if size < 4096 or size % 4096:
        raise ValueError(f"size: expected a multiple of 4096, found {size}")
    image = bytearray(hashlib.shake_256(seed).digest(size))
    if variable_store:
        if size != 4 << 20:
            raise ValueError(f"variable_store: expected a 4 MiB image, found {size} bytes")
        image[:0x84000] = VARSTORE_4M + b"\xff" * (0x84000 - len(VARSTORE_4M))

    def put(from_end: int, data: bytes) -> None:
        image[size - from_end : size - from_end + len(data)] = data

    table = b"".join(
        data + struct.pack("<H", len(data) + 18) + _le_guid(_GUIDS[name])
        for name, data in (
            ("tdx_metadata", struct.pack("<I", AMDSEV_TDX_METADATA_FROM_END)),
            ("snp_metadata", struct.pack("<I", AMDSEV_SNP_METADATA_FROM_END)),
            ("hash_table", struct.pack("<II", *AMDSEV_HASH_TABLE)),
            ("secret", struct.pack("<II", *AMDSEV_SECRET)),
            ("reset_block", struct.pack("<I", AMDSEV_RESET_EIP)),
        )
    )
    footer = struct.pack("<H", len(table) + 18) + _le_guid(_GUIDS["footer"])
    # The last 32 bytes: 12 bytes of padding, "VTF\0", then the reset vector at 0xfffffff0:
    # nop, nop, a near jump back into the image, padding.
    top = bytes(12) + b"VTF\0" + b"\x90\x90\xe9" + struct.pack("<h", -0x1000) + b"\x90" * 11
    put(32 + len(footer) + len(table), table + footer + top)
    descriptors = b"".join(struct.pack("<III", *s) for s in AMDSEV_SNP_SECTIONS)
    header = b"ASEV" + struct.pack("<III", 16 + len(descriptors), 1, len(AMDSEV_SNP_SECTIONS))
    put(AMDSEV_SNP_METADATA_FROM_END, header + descriptors)
    put(AMDSEV_TDX_METADATA_FROM_END, _tdvf(size))
    return bytes(image)
