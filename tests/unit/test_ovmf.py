"""OVMF footer table parsing: real images, synthetic layouts, hostile input."""

from __future__ import annotations

import random
import struct

import pytest

from sevref.binfmt.ovmf import (
    SEV_ES_RESET_BLOCK_GUID,
    SEV_HASH_TABLE_RV_GUID,
    SEV_METADATA_GUID,
    SEV_SECRET_GUID,
    Area,
    ResetBlockSource,
    parse_ovmf,
)
from sevref.errors import FirmwareFormatError
from tests.images import AMDSEV_SNP_SECTIONS, amdsev_image, entry, legacy_image, ovmf_image

TDX_METADATA_GUID = "e47a6535-984a-4798-865e-4685a7bf8ec2"

U32 = struct.Struct("<I").pack


@pytest.mark.parametrize("size", [4096, 4 << 20])
def test_amdsev_image(size: int) -> None:
    # The synthetic AmdSevX64-like image (tests/images.py) has the layout of a real
    # edk2-stable202405 AmdSevX64 build's top, as research/sev-snp-measure-oracle.md §2.4
    # records it (table size 0x88); this checks sevref reads it as such.
    image = amdsev_image(size)
    info = parse_ovmf(image)
    assert info.size == size
    assert info.sev_es_reset_eip == 0x80B004
    assert info.reset_block_source is ResetBlockSource.FOOTER_TABLE
    assert info.hash_table == Area(0x810C00, 0x400)
    assert info.secret_area == Area(0x810000, 0xC00)
    assert info.kernel_hashes_supported()
    assert [e.guid for e in info.table] == [
        TDX_METADATA_GUID,
        SEV_METADATA_GUID,
        SEV_HASH_TABLE_RV_GUID,
        SEV_SECRET_GUID,
        SEV_ES_RESET_BLOCK_GUID,
    ]
    assert info.snp_metadata_offset == size - 0x554
    assert image[info.snp_metadata_offset : info.snp_metadata_offset + 4] == b"ASEV"
    assert info.snp_sections is not None
    assert [(s.gpa, s.size, s.type) for s in info.snp_sections] == list(AMDSEV_SNP_SECTIONS)
    assert [s.type for s in info.snp_sections] == [
        1,
        1,
        2,
        3,
        4,
        0x10,
        1,
    ]  # SEC_MEM, SECRETS, CPUID, SVSM_CAA, KERNEL_HASHES
    # The table ends 50 bytes before the end and its entries tile it exactly.
    assert sum(len(e.data) + 18 for e in info.table) + 18 == 0x88
    assert image[-20:-16] == b"VTF\0"
    tdx = size - int.from_bytes(info.table[0].data, "little")
    assert image[tdx : tdx + 4] == b"TDVF"


def test_debian_images(debian_ovmf) -> None:  # type: ignore[no-untyped-def]
    # research/sev-snp-measure-oracle.md §3: reset EIP, hash table (0, 0), SNP metadata.
    code = parse_ovmf((debian_ovmf / "usr/share/OVMF/OVMF_CODE.fd").read_bytes())
    assert code.sev_es_reset_eip == 0x80B004
    assert code.hash_table == Area(0, 0)
    assert not code.kernel_hashes_supported()
    assert code.snp_metadata_offset is not None
    code_4m = parse_ovmf((debian_ovmf / "usr/share/OVMF/OVMF_CODE_4M.fd").read_bytes())
    assert code_4m.sev_es_reset_eip == 0x808004
    assert code_4m.snp_metadata_offset is None


def test_synthetic_table_order_and_gpa() -> None:
    image = ovmf_image(
        [
            (SEV_HASH_TABLE_RV_GUID, U32(0x810C00) + U32(0x400)),
            ("11111111-2222-3333-4444-555555555555", b"xyz"),
            (SEV_ES_RESET_BLOCK_GUID, U32(0x80B004)),
        ],
        size=8192,
    )
    info = parse_ovmf(image)
    assert info.table[0].guid == SEV_HASH_TABLE_RV_GUID
    unknown = info.entry("11111111-2222-3333-4444-555555555555")
    assert unknown is not None and unknown.data == b"xyz"
    assert image[unknown.offset : unknown.offset + 3] == b"xyz"
    assert info.gpa == 0x1_0000_0000 - 8192
    assert info.snp_metadata_offset is None and info.secret_area is None


def test_empty_table_is_allowed() -> None:
    info = parse_ovmf(ovmf_image([]))
    assert info.table == () and info.sev_es_reset_eip is None


def test_legacy_reset_block() -> None:
    # QEMU sev_es_find_reset_vector: the GUID 32 bytes from the end, its u16
    # length before it, the u32 address at end - 0x20 - length.
    info = parse_ovmf(legacy_image(0x80B000))
    assert info.sev_es_reset_eip == 0x80B000
    assert info.reset_block_source is ResetBlockSource.LEGACY_BLOCK
    assert info.table == () and info.hash_table is None


HOSTILE = {
    "empty": (b"", "firmware image is empty"),
    "10 bytes": (b"0123456789", "firmware image is 10 bytes; expected a non-zero multiple of 4096"),
    "not sector aligned": (ovmf_image([]) + b"\0", "4097 bytes; expected a non-zero multiple of 4096"),
    "4 KiB of zeros": (bytes(4096), "no OVMF footer table: expected GUID 96b582de-1fb2-45f7-baea-a366c55a082d"),
    "footer size below 18": (
        ovmf_image([], table_size=17),
        "footer table at offset 0xfce: size field is 0x11; expected 0x12..0xfe0",
    ),
    "footer size past the start": (ovmf_image([], table_size=0xFFFF), "size field is 0xffff; expected 0x12..0xfe0"),
    "entry size below 18": (
        ovmf_image([entry(SEV_ES_RESET_BLOCK_GUID, U32(1), size=4)]),
        "entry 00f771de-1a7e-4fcb-890e-68c77e2fb44e at offset 0xfbc: size field is 0x4; expected 0x12..0x16",
    ),
    "entry size past the table": (
        ovmf_image([entry(SEV_ES_RESET_BLOCK_GUID, U32(1), size=0x200)]),
        "size field is 0x200; expected 0x12..0x16",
    ),
    "stray bytes": (
        ovmf_image([b"\x01\x02\x03", (SEV_ES_RESET_BLOCK_GUID, U32(1))]),
        "3 stray bytes at offset 0xfb5; expected entries of at least 18 bytes",
    ),
    "duplicate GUID": (
        ovmf_image([(SEV_ES_RESET_BLOCK_GUID, U32(1)), (SEV_ES_RESET_BLOCK_GUID, U32(2))]),
        "GUID 00f771de-1a7e-4fcb-890e-68c77e2fb44e appears twice (entries at offsets 0xfb8 and 0xfa2)",
    ),
    "short reset block": (
        ovmf_image([(SEV_ES_RESET_BLOCK_GUID, b"\x04\xb0")]),
        "(SEV-ES reset block) at offset 0xfba: 2 data bytes; expected at least 4",
    ),
    "short hash table entry": (
        ovmf_image([(SEV_HASH_TABLE_RV_GUID, U32(0x810C00))]),
        "(SEV kernel-hashes table) at offset 0xfb8: 4 data bytes; expected at least 8",
    ),
    "metadata offset past the start": (
        ovmf_image([(SEV_METADATA_GUID, U32(0x2000))]),
        "header offset 0x2000 from the end; expected 0x10..0x1000 (inside the image)",
    ),
    "metadata header past the end": (
        ovmf_image([(SEV_METADATA_GUID, U32(8))]),
        "header offset 0x8 from the end; expected 0x10..0x1000",
    ),
    "legacy block with a bad length": (
        legacy_image(0x80B000, length=3),
        "SEV-ES reset block at offset 0xfce: size field is 0x3; expected 0x16..0xfe0",
    ),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_images(name: str) -> None:
    image, message = HOSTILE[name]
    with pytest.raises(FirmwareFormatError) as caught:
        parse_ovmf(image)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_random_bytes_never_crash() -> None:
    rng = random.Random(20261126)
    for _ in range(300):
        image = bytes(rng.getrandbits(8) for _ in range(4096 * rng.randint(1, 2)))
        with pytest.raises(FirmwareFormatError):
            parse_ovmf(image)


def test_random_tables_parse_or_refuse() -> None:
    # Random footer sizes and entry sizes: either a table whose entries tile it
    # exactly, or a FirmwareFormatError; never another exception.
    rng = random.Random(7)
    for _ in range(2000):
        entries: list[bytes] = []
        for _ in range(rng.randint(0, 4)):
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 12)))
            size = rng.choice([None, rng.randint(0, 0x40)])
            entries.append(entry(str(rng.choice([SEV_SECRET_GUID, TDX_METADATA_GUID])), data, size))
        table_size = rng.choice([None, rng.randint(0, 0x100)])
        try:
            info = parse_ovmf(ovmf_image(entries, table_size=table_size))
        except FirmwareFormatError:
            continue
        assert sum(len(e.data) + 18 for e in info.table) + 18 == (table_size or sum(map(len, entries)) + 18)
