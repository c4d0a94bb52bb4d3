"""The firmware volume an image starts with: where its UEFI variables are kept.

The layouts are edk2's: ``OvmfPkg/Include/Fdf/VarStore.fdf.inc`` (the empty
variable store a unified image starts with) and the PI specification's
``EFI_FIRMWARE_VOLUME_HEADER``. Debian's real images are read in
tests/test_firmware_state.py.
"""

from __future__ import annotations

import struct

import pytest

from sevref.binfmt._struct import guid_bytes
from sevref.binfmt.ovmf import (
    FIRMWARE_FILE_SYSTEM_GUIDS,
    SYSTEM_NV_DATA_FV_GUID,
    FirmwareVolume,
    VolumeKind,
    first_volume,
    parse_ovmf,
)
from sevref.errors import FirmwareFormatError
from tests.images import VARSTORE_4M, amdsev_image, ovmf_image


def volume(guid: str, length: int, header_length: int = 0x48, *, checksum: bool = True, size: int = 0x10000) -> bytes:
    """An image of ``size`` bytes that starts with a volume header (a valid checksum unless told otherwise)."""
    header = bytearray(
        bytes(16) + guid_bytes(guid) + struct.pack("<Q4sIHHHBB", length, b"_FVH", 0x4FEFF, header_length, 0, 0, 0, 2)
    )
    header += struct.pack("<II", length // 0x1000, 0x1000) + bytes(8)
    header += bytes(max(0, header_length - len(header)))
    if checksum:
        total = sum(struct.unpack_from("<H", header, i)[0] for i in range(0, header_length // 2 * 2, 2))
        struct.pack_into("<H", header, 0x32, -total & 0xFFFF)
    return bytes(header) + b"\xff" * (size - len(header))


def test_the_variable_store_template_is_transcribed_exactly() -> None:
    # Its 16-bit words sum to zero, as edk2's CheckSum makes them: a transcription error would show.
    assert sum(struct.unpack_from("<36H", VARSTORE_4M)) & 0xFFFF == 0
    found = first_volume(VARSTORE_4M + b"\xff" * (0x84000 - len(VARSTORE_4M)))
    assert found == FirmwareVolume(0, SYSTEM_NV_DATA_FV_GUID, 0x84000, 0x48, "authenticated")
    assert found.kind is VolumeKind.VARIABLE_STORE


def test_an_amdsev_image_starts_with_its_empty_variable_store() -> None:
    # AmdSevX64.fdf includes VarStore.fdf.inc: the image carries a store template, as a unified image does.
    info = parse_ovmf(amdsev_image(4 << 20, variable_store=True))
    assert info.first_volume is not None and info.first_volume.kind is VolumeKind.VARIABLE_STORE
    assert info.kernel_hashes_supported()
    # The plain synthetic image (the known-answer vectors' one) starts with filler: no volume.
    assert parse_ovmf(amdsev_image(4 << 20)).first_volume is None
    assert parse_ovmf(ovmf_image([])).first_volume is None
    with pytest.raises(ValueError, match="expected a 4 MiB image"):
        amdsev_image(4096, variable_store=True)


@pytest.mark.parametrize("guid", FIRMWARE_FILE_SYSTEM_GUIDS)
def test_a_code_volume_means_no_store_of_its_own(guid: str) -> None:
    found = first_volume(volume(guid, 0x8000))
    assert found == FirmwareVolume(0, guid, 0x8000, 0x48)
    assert found.kind is VolumeKind.FIRMWARE_FILES
    assert "firmware files" in found.describe() and "at offset 0x0, 0x8000 bytes" in found.describe()


def test_another_file_system_is_reported_as_other() -> None:
    found = first_volume(volume("11111111-2222-3333-4444-555555555555", 0x8000))
    assert found is not None and found.kind is VolumeKind.OTHER


BROKEN = {
    "length beyond the image": (
        volume(FIRMWARE_FILE_SYSTEM_GUIDS[0], 0x20000),
        "FvLength 0x20000, HeaderLength 0x48; expected an even 0x48 <= HeaderLength <= FvLength <= 0x10000 (the image)",
    ),
    "header too short": (
        volume(FIRMWARE_FILE_SYSTEM_GUIDS[0], 0x8000, 0x40),
        "HeaderLength 0x40; expected an even 0x48",
    ),
    "odd header length": (volume(FIRMWARE_FILE_SYSTEM_GUIDS[0], 0x8000, 0x49), "HeaderLength 0x49"),
    "bad checksum": (
        volume(FIRMWARE_FILE_SYSTEM_GUIDS[0], 0x8000, checksum=False),
        "the 16-bit sum of its 0x48-byte header is ",
    ),
    "variable store without a store header": (
        volume(SYSTEM_NV_DATA_FV_GUID, 0x8000),
        "(a variable store): store header at offset 0x48 has signature ffffffff-ffff-ffff-ffff-ffffffffffff; "
        "expected aaf32c78-947b-439a-a180-2e144ec37792 or ddcf3616-3275-4164-98b6-fe85707ffe7d",
    ),
}


@pytest.mark.parametrize("name", BROKEN)
def test_malformed_headers_are_refused_with_their_offsets(name: str) -> None:
    data, message = BROKEN[name]
    with pytest.raises(FirmwareFormatError, match="^firmware volume [0-9a-f-]+ at offset 0x0[: ]") as caught:
        first_volume(data)
    assert message in str(caught.value)


def test_parse_ovmf_refuses_an_image_with_a_malformed_volume() -> None:
    image = bytearray(amdsev_image(4 << 20, variable_store=True))
    image[0x40] ^= 1  # the block map: the checksum no longer holds
    with pytest.raises(FirmwareFormatError, match="checksum|16-bit sum"):
        parse_ovmf(bytes(image))


def test_too_short_for_a_header_is_no_volume() -> None:
    assert first_volume(b"\0" * 0x28 + b"_FVH") is None
