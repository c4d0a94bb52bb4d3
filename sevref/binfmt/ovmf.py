"""OVMF firmware images: the footer GUID table and what SEV launches read from it.

An OVMF image ends with 32 bytes of reset-vector code. Just before them sits the
footer of a table of GUIDed entries, ``{u16 size; GUID 96b582de-…}``, where
``size`` counts the whole table including the footer. Entries are laid out as
``[data][u16 size][GUID]`` and are walked backwards from the footer; each
``size`` counts data + 18. This is how QEMU reads it
(``hw/i386/pc_sysfw_ovmf.c``: ``pc_system_parse_ovmf_flash``,
``pc_system_ovmf_table_find``) and how edk2 builds it
(``OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm``).

QEMU silently ignores a table it cannot read. sevref refuses it instead: a
measurement over an image QEMU would half-understand is a wrong measurement.

The image's first bytes tell where its UEFI variables are kept. edk2 lays out
an OVMF flash device as firmware volumes (PI specification volume 3, 3.2.1,
``EFI_FIRMWARE_VOLUME_HEADER``: ``_FVH`` at offset 0x28). A unified image
(``OvmfPkgX64.fdf`` ``[FD.OVMF]``, and ``OvmfPkg/AmdSev/AmdSevX64.fdf``) starts
with the variable store of ``OvmfPkg/Include/Fdf/VarStore.fdf.inc``: a volume
whose file system GUID is ``gEfiSystemNvDataFvGuid``, followed by a variable
store header. A split ``OVMF_CODE`` image (``[FD.OVMF_CODE]``) starts with the
code volume ``FVMAIN_COMPACT`` (``gEfiFirmwareFileSystem2Guid``); its store is
the separate ``OVMF_VARS`` image. :func:`first_volume` reads which.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass

from sevref.binfmt._struct import guid_bytes, guid_str, u16, u32, u64
from sevref.errors import FirmwareFormatError

__all__ = [
    "FLASH_SECTOR_SIZE",
    "FOOTER_GUID",
    "SEV_ES_RESET_BLOCK_GUID",
    "SEV_HASH_TABLE_RV_GUID",
    "SEV_METADATA_GUID",
    "SEV_SECRET_GUID",
    "Area",
    "FirmwareVolume",
    "OvmfInfo",
    "ResetBlockSource",
    "SectionType",
    "SnpSection",
    "TableEntry",
    "VolumeKind",
    "first_volume",
    "parse_ovmf",
]

FOOTER_GUID = "96b582de-1fb2-45f7-baea-a366c55a082d"
"""The footer GUID of the OVMF table (QEMU ``OVMF_TABLE_FOOTER_GUID``)."""
SEV_ES_RESET_BLOCK_GUID = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"
"""SEV-ES reset block: u32 AP reset address (QEMU ``SEV_INFO_BLOCK_GUID``)."""
SEV_HASH_TABLE_RV_GUID = "7255371f-3a3b-4b04-927b-1da6efa8d454"
"""Kernel-hashes table area: u32 base, u32 size (QEMU ``SEV_HASH_TABLE_RV_GUID``)."""
SEV_SECRET_GUID = "4c2eb361-7d9b-4cc3-8081-127c90d3d294"  # noqa: S105  # nosec B105
"""Launch secret area: u32 base, u32 size (QEMU ``SEV_SECRET_GUID``)."""
SEV_METADATA_GUID = "dc886566-984a-4798-a75e-5585a7bf67cc"
"""SEV-SNP metadata: u32 offset of the "ASEV" header from the end of the image."""

SYSTEM_NV_DATA_FV_GUID = "fff12b8d-7696-4c8b-a985-2747075b4f50"
"""``gEfiSystemNvDataFvGuid``: the file system GUID of a variable store volume (``VarStore.fdf.inc``)."""
FIRMWARE_FILE_SYSTEM_GUIDS = ("8c8ce578-8a3d-4f1c-9935-896185c32dd3", "5473c07a-3dcb-4dca-bd6f-1e9689e7349a")
"""``gEfiFirmwareFileSystem2Guid`` and ``gEfiFirmwareFileSystem3Guid``: volumes of firmware files (code)."""
VARIABLE_STORE_GUIDS = {
    "aaf32c78-947b-439a-a180-2e144ec37792": "authenticated",  # gEfiAuthenticatedVariableGuid
    "ddcf3616-3275-4164-98b6-fe85707ffe7d": "plain",  # gEfiVariableGuid
}
"""The signatures of a variable store header (``VARIABLE_STORE_HEADER``), by kind."""

FLASH_SECTOR_SIZE = 4096
"""QEMU maps pflash images in whole 4 KiB sectors (``hw/i386/pc_sysfw.c``)."""
_BYTES_AFTER_TABLE = 32  # reset vector code + "VTF" signature (QEMU bytes_after_table_footer)
_ENTRY_HEADER = 18  # u16 size + 16-byte GUID
_ASEV_HEADER = 16  # char[4] signature, u32 size, u32 version, u32 num_items
_ASEV_DESCRIPTOR = 12  # u32 gpa, u32 size, u32 type
_PAGE = 4096
_FV_SIGNATURE = b"_FVH"
_FV_HEADER = 0x48  # EFI_FIRMWARE_VOLUME_HEADER with one block map entry and its terminator

_NAMES = {
    SEV_ES_RESET_BLOCK_GUID: "SEV-ES reset block",
    SEV_HASH_TABLE_RV_GUID: "SEV kernel-hashes table",
    SEV_SECRET_GUID: "SEV secret area",
    SEV_METADATA_GUID: "SEV-SNP metadata",
}
_MIN_DATA = {
    SEV_ES_RESET_BLOCK_GUID: 4,
    SEV_HASH_TABLE_RV_GUID: 8,
    SEV_SECRET_GUID: 8,
    SEV_METADATA_GUID: 4,
}


class ResetBlockSource(enum.StrEnum):
    """Where the SEV-ES AP reset address was found."""

    FOOTER_TABLE = "footer-table"
    """In the footer GUID table (edk2-stable202102 and later)."""
    LEGACY_BLOCK = "legacy-block"
    """In the standalone block directly before the last 32 bytes (edk2 2020)."""


class SectionType(enum.IntEnum):
    """SEV-SNP metadata section types (edk2 ``OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm``)."""

    SNP_SEC_MEM = 1
    """Memory the firmware pre-validates: measured as ZERO pages."""
    SNP_SECRETS = 2
    """The secrets page."""
    CPUID = 3
    """The CPUID page."""
    SVSM_CAA = 4
    """The SVSM calling area (edk2-stable202402 and later): measured as ZERO pages."""
    SNP_KERNEL_HASHES = 0x10
    """The page that holds the kernel-hashes table."""


@dataclass(frozen=True)
class SnpSection:
    """One section descriptor of the SEV-SNP metadata."""

    index: int
    """Position in the metadata, from 0."""
    offset: int
    """File offset of the descriptor."""
    gpa: int
    """Guest-physical base address."""
    size: int
    """Size in bytes."""
    type: int
    """The raw section type."""

    @property
    def kind(self) -> SectionType | None:
        """The section type, or None when sevref does not know it."""
        return SectionType(self.type) if self.type in SectionType._value2member_map_ else None

    def describe(self) -> str:
        """Name the section for error messages.

        Returns:
            E.g. ``SNP metadata section 3 (CPUID, type 0x3) at GPA 0x80e000``.
        """
        kind = self.kind.name if self.kind else "unknown"
        return f"SNP metadata section {self.index} ({kind}, type {self.type:#x}) at GPA {self.gpa:#x}"


@dataclass(frozen=True)
class TableEntry:
    """One entry of the footer GUID table."""

    guid: str
    """The entry's GUID, lowercase text form."""
    offset: int
    """File offset of the entry's data."""
    data: bytes
    """The entry's data (its size minus the 18-byte header)."""


@dataclass(frozen=True)
class Area:
    """A guest-physical memory area the firmware reserves: ``{u32 base; u32 size}``."""

    base: int
    """Guest-physical base address; 0 means the firmware does not provide the area."""
    size: int
    """Size in bytes."""


class VolumeKind(enum.StrEnum):
    """What the firmware volume at the start of an image holds."""

    VARIABLE_STORE = "variable-store"
    """UEFI variables (``gEfiSystemNvDataFvGuid``): the image carries its own store."""
    FIRMWARE_FILES = "firmware-files"
    """Code (a firmware file system): the image has no store of its own."""
    OTHER = "other"
    """A volume of another file system."""


@dataclass(frozen=True)
class FirmwareVolume:
    """The firmware volume at the start of an image (``EFI_FIRMWARE_VOLUME_HEADER``)."""

    offset: int
    """File offset of its header."""
    guid: str
    """Its file system GUID, lowercase text form."""
    length: int
    """Its length in bytes (``FvLength``)."""
    header_length: int
    """The header's length (``HeaderLength``)."""
    variable_store: str | None = None
    """For a variable store: ``authenticated`` or ``plain``, from its store header."""

    def describe(self) -> str:
        """Name the volume for messages.

        Returns:
            E.g. ``firmware volume fff12b8d-… (gEfiSystemNvDataFvGuid) at offset 0x0, 0x84000 bytes``.
        """
        name = {VolumeKind.VARIABLE_STORE: "gEfiSystemNvDataFvGuid", VolumeKind.FIRMWARE_FILES: "firmware files"}
        known = name.get(self.kind)
        return (
            f"firmware volume {self.guid}{f' ({known})' if known else ''} at offset {self.offset:#x}, "
            f"{self.length:#x} bytes"
        )

    @property
    def kind(self) -> VolumeKind:
        """What the volume holds, by its file system GUID."""
        if self.guid == SYSTEM_NV_DATA_FV_GUID:
            return VolumeKind.VARIABLE_STORE
        if self.guid in FIRMWARE_FILE_SYSTEM_GUIDS:
            return VolumeKind.FIRMWARE_FILES
        return VolumeKind.OTHER


@dataclass(frozen=True)
class OvmfInfo:
    """What an SEV launch reads from an OVMF image."""

    size: int
    """Image size in bytes."""
    table: tuple[TableEntry, ...]
    """Footer table entries in file order (empty for a pre-2021 image)."""
    sev_es_reset_eip: int | None
    """The SEV-ES AP reset address (CS base + IP), or None when absent."""
    reset_block_source: ResetBlockSource | None
    """Where :attr:`sev_es_reset_eip` came from."""
    hash_table: Area | None
    """The kernel-hashes table area, or None when the GUID is absent."""
    secret_area: Area | None
    """The launch-secret area, or None when the GUID is absent."""
    snp_metadata_offset: int | None
    """File offset of the SEV-SNP metadata ("ASEV") header, or None when absent."""
    snp_sections: tuple[SnpSection, ...] | None = None
    """The SEV-SNP metadata sections in the image's own order, or None when absent."""
    first_volume: FirmwareVolume | None = None
    """The firmware volume at offset 0, or None when the image does not start with one."""

    @property
    def gpa(self) -> int:
        """The guest-physical address of the first byte: images end at 4 GiB."""
        return (1 << 32) - self.size

    def entry(self, guid: str) -> TableEntry | None:
        """Return the footer table entry with ``guid``, if any.

        Args:
            guid: lowercase text form.

        Returns:
            The entry, or None.
        """
        for item in self.table:
            if item.guid == guid:
                return item
        return None

    def kernel_hashes_supported(self) -> bool:
        """Tell whether QEMU can add the kernel-hashes table for this image.

        QEMU refuses when the GUID is missing, the base is 0 or the area is
        smaller than the 176-byte padded table (``sev_add_kernel_loader_hashes``).

        Returns:
            True when measured direct boot is possible.
        """
        area = self.hash_table
        return area is not None and area.base != 0 and area.size >= 176


def _check_image_size(size: int) -> None:
    if size == 0:
        raise FirmwareFormatError("firmware image is empty; expected an OVMF image")
    if size < FLASH_SECTOR_SIZE or size % FLASH_SECTOR_SIZE:
        raise FirmwareFormatError(
            f"firmware image is {size} bytes; expected a non-zero multiple of "
            f"{FLASH_SECTOR_SIZE} (QEMU maps firmware in whole 4 KiB flash sectors)"
        )


def _parse_table(data: bytes, footer: int) -> tuple[TableEntry, ...]:
    """Walk the table whose footer entry starts at ``footer``."""
    total = u16(data, footer)
    if total < _ENTRY_HEADER or total - _ENTRY_HEADER > footer:
        raise FirmwareFormatError(
            f"OVMF footer table at offset {footer:#x}: size field is {total:#x}; expected "
            f"{_ENTRY_HEADER:#x}..{footer + _ENTRY_HEADER:#x} (the footer plus entries that "
            f"fit before it)"
        )
    end = footer
    remaining = total - _ENTRY_HEADER
    entries: list[TableEntry] = []
    seen: dict[str, int] = {}
    while remaining > 0:
        if remaining < _ENTRY_HEADER:
            raise FirmwareFormatError(
                f"OVMF footer table: {remaining} stray bytes at offset {end - remaining:#x}; "
                f"expected entries of at least {_ENTRY_HEADER} bytes filling the table"
            )
        header = end - _ENTRY_HEADER
        size = u16(data, header)
        guid = guid_str(data[header + 2 : end])
        if size < _ENTRY_HEADER or size > remaining:
            raise FirmwareFormatError(
                f"OVMF footer table entry {guid} at offset {header:#x}: size field is "
                f"{size:#x}; expected {_ENTRY_HEADER:#x}..{remaining:#x} (header plus data "
                f"inside the table)"
            )
        start = end - size
        if guid in seen:
            raise FirmwareFormatError(
                f"OVMF footer table: GUID {guid} appears twice (entries at offsets "
                f"{seen[guid]:#x} and {start:#x}); expected each GUID once"
            )
        seen[guid] = start
        entry = TableEntry(guid=guid, offset=start, data=bytes(data[start:header]))
        minimum = _MIN_DATA.get(guid, 0)
        if len(entry.data) < minimum:
            raise FirmwareFormatError(
                f"OVMF footer table entry {guid} ({_NAMES[guid]}) at offset {start:#x}: "
                f"{len(entry.data)} data bytes; expected at least {minimum}"
            )
        entries.append(entry)
        end = start
        remaining -= size
    return tuple(reversed(entries))


def _area(entry: TableEntry | None) -> Area | None:
    if entry is None:
        return None
    return Area(base=u32(entry.data, 0), size=u32(entry.data, 4))


def _legacy_reset_block(data: bytes) -> int:
    """Read the pre-2021 standalone SEV-ES reset block (QEMU's fallback)."""
    block_end = len(data) - _BYTES_AFTER_TABLE
    length = u16(data, block_end - _ENTRY_HEADER)
    if length < _ENTRY_HEADER + 4 or length > block_end:
        raise FirmwareFormatError(
            f"SEV-ES reset block at offset {block_end - _ENTRY_HEADER:#x}: size field is "
            f"{length:#x}; expected {_ENTRY_HEADER + 4:#x}..{block_end:#x}"
        )
    return u32(data, block_end - length)


def _snp_metadata(data: bytes, start: int) -> tuple[SnpSection, ...]:
    """Parse the "ASEV" header at ``start`` and its section descriptors."""
    what = f"SEV-SNP metadata at offset {start:#x}"
    magic = bytes(data[start : start + 4])
    if magic != b"ASEV":
        raise FirmwareFormatError(f"{what}: signature is {magic!r}; expected b'ASEV'")
    size, version, count = u32(data, start + 4), u32(data, start + 8), u32(data, start + 12)
    if version != 1:
        raise FirmwareFormatError(f"{what}: version is {version}; expected 1")
    if not _ASEV_HEADER <= size <= len(data) - start:
        raise FirmwareFormatError(
            f"{what}: size field is {size:#x}; expected {_ASEV_HEADER:#x}..{len(data) - start:#x} (inside the image)"
        )
    if _ASEV_HEADER + count * _ASEV_DESCRIPTOR > size:
        raise FirmwareFormatError(
            f"{what}: {count} sections need {_ASEV_HEADER + count * _ASEV_DESCRIPTOR:#x} bytes; "
            f"expected at most the header's size {size:#x}"
        )
    sections = []
    for index in range(count):
        offset = start + _ASEV_HEADER + index * _ASEV_DESCRIPTOR
        section = SnpSection(index, offset, u32(data, offset), u32(data, offset + 4), u32(data, offset + 8))
        if section.gpa % _PAGE or section.size % _PAGE or section.size == 0:
            raise FirmwareFormatError(
                f"{section.describe()}, descriptor at offset {offset:#x}: size {section.size:#x}; "
                f"expected a page-aligned base and a non-zero multiple of {_PAGE:#x} bytes"
            )
        if section.gpa + section.size > 1 << 32:
            raise FirmwareFormatError(
                f"{section.describe()}, descriptor at offset {offset:#x}: size {section.size:#x} "
                f"reaches past 4 GiB; expected the section below 4 GiB"
            )
        sections.append(section)
    ordered = sorted(sections, key=lambda s: s.gpa)
    for low, high in itertools.pairwise(ordered):
        if low.gpa + low.size > high.gpa:
            raise FirmwareFormatError(
                f"{high.describe()} overlaps section {low.index} "
                f"({low.gpa:#x}..{low.gpa + low.size:#x}); expected disjoint sections"
            )
    return tuple(sections)


def first_volume(data: bytes) -> FirmwareVolume | None:
    """Read the firmware volume header at the start of an image, if there is one.

    Args:
        data: the whole image.

    Returns:
        The volume, or None when the image does not start with a volume header
        (``_FVH`` at offset 0x28).

    Raises:
        FirmwareFormatError: the header is there but malformed: a length outside
            the image, a header shorter than 0x48 bytes, a checksum that does not
            sum to zero, or a variable store without a store header.
    """
    if len(data) < _FV_HEADER or bytes(data[0x28:0x2C]) != _FV_SIGNATURE:
        return None
    guid = guid_str(data[0x10:0x20])
    length, header_length = u64(data, 0x20), u16(data, 0x30)
    what = f"firmware volume {guid} at offset 0x0"
    if not _FV_HEADER <= header_length <= length <= len(data) or header_length % 2:
        raise FirmwareFormatError(
            f"{what}: FvLength {length:#x}, HeaderLength {header_length:#x}; expected an even "
            f"{_FV_HEADER:#x} <= HeaderLength <= FvLength <= {len(data):#x} (the image)"
        )
    checksum = sum(u16(data, offset) for offset in range(0, header_length, 2)) & 0xFFFF
    if checksum:
        raise FirmwareFormatError(
            f"{what}: the 16-bit sum of its {header_length:#x}-byte header is {checksum:#06x}; expected 0 "
            f"(the Checksum field at offset 0x32 makes it so)"
        )
    volume = FirmwareVolume(0, guid, length, header_length)
    if volume.kind is not VolumeKind.VARIABLE_STORE:
        return volume
    store = guid_str(data[header_length : header_length + 16]) if header_length + 16 <= length else None
    if store not in VARIABLE_STORE_GUIDS:
        raise FirmwareFormatError(
            f"{what} (a variable store): store header at offset {header_length:#x} has signature {store}; "
            f"expected {' or '.join(VARIABLE_STORE_GUIDS)}"
        )
    return FirmwareVolume(0, guid, length, header_length, VARIABLE_STORE_GUIDS[store])


def parse_ovmf(data: bytes) -> OvmfInfo:
    """Parse what an SEV launch reads from an OVMF image.

    Args:
        data: the whole image, exactly as QEMU maps it (pflash unit 0 or -bios).

    Returns:
        The parsed footer table and the entries SEV launches use.

    Raises:
        FirmwareFormatError: the image is too short, not sector-aligned, has
            neither a footer table nor a pre-2021 reset block, its table or
            one of its entries is malformed, or it starts with a malformed
            firmware volume header.
    """
    _check_image_size(len(data))
    volume = first_volume(data)
    guid_at = len(data) - _BYTES_AFTER_TABLE - 16
    found = bytes(data[guid_at : guid_at + 16])
    if found == guid_bytes(FOOTER_GUID):
        table = _parse_table(data, guid_at - 2)
        by_guid = {entry.guid: entry for entry in table}
        reset = by_guid.get(SEV_ES_RESET_BLOCK_GUID)
        metadata = by_guid.get(SEV_METADATA_GUID)
        snp_offset = None
        if metadata is not None:
            snp_offset = len(data) - u32(metadata.data, 0)
            if snp_offset < 0 or snp_offset + _ASEV_HEADER > len(data):
                raise FirmwareFormatError(
                    f"OVMF footer table entry {SEV_METADATA_GUID} (SEV-SNP metadata) at "
                    f"offset {metadata.offset:#x}: header offset {u32(metadata.data, 0):#x} "
                    f"from the end; expected {_ASEV_HEADER:#x}..{len(data):#x} (inside the image)"
                )
        return OvmfInfo(
            size=len(data),
            table=table,
            sev_es_reset_eip=u32(reset.data, 0) if reset else None,
            reset_block_source=ResetBlockSource.FOOTER_TABLE if reset else None,
            hash_table=_area(by_guid.get(SEV_HASH_TABLE_RV_GUID)),
            secret_area=_area(by_guid.get(SEV_SECRET_GUID)),
            snp_metadata_offset=snp_offset,
            snp_sections=None if snp_offset is None else _snp_metadata(data, snp_offset),
            first_volume=volume,
        )
    if found == guid_bytes(SEV_ES_RESET_BLOCK_GUID):
        return OvmfInfo(
            size=len(data),
            table=(),
            sev_es_reset_eip=_legacy_reset_block(data),
            reset_block_source=ResetBlockSource.LEGACY_BLOCK,
            hash_table=None,
            secret_area=None,
            snp_metadata_offset=None,
            first_volume=volume,
        )
    raise FirmwareFormatError(
        f"no OVMF footer table: expected GUID {FOOTER_GUID} (or the pre-2021 SEV-ES reset "
        f"block {SEV_ES_RESET_BLOCK_GUID}) at offset {guid_at:#x}, found {found.hex()}; "
        f"is this an OVMF_CODE image (not OVMF_VARS) built with SEV support?"
    )
