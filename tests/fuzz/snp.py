"""Fuzz target: the SEV-SNP metadata and kernel-hashes area of an otherwise valid image.

Mutating a whole image mostly breaks its footer table, which the parser reads
first. Here the input replaces only what the SEV-SNP path reads: its first 8
bytes are the kernel-hashes area entry (u32 base, u32 size) and the rest is
written from the "ASEV" header on, up to the footer table, of the golden image.
"""

from __future__ import annotations

import contextlib

from sevref.binfmt.ovmf import SEV_HASH_TABLE_RV_GUID, parse_ovmf
from sevref.digest import Firmware, check_launch
from sevref.errors import SevrefError
from tests.fuzz.firmware import CONFIGS, TINY, measure
from tests.golden.make_inputs import SECTIONS
from tests.images import snp_image

_BASE = TINY.read_bytes()
_INFO = parse_ovmf(_BASE)
_AREA = next(e.offset for e in _INFO.table if e.guid == SEV_HASH_TABLE_RV_GUID)
_START = _INFO.snp_metadata_offset or 0
_END = min(e.offset for e in _INFO.table)
MAX_MEASURED = 1 << 20
"""Sections covering more bytes than this are checked, not hashed (see :func:`one_input`)."""


def image(data: bytes) -> bytes:
    """Write an input into the golden image.

    Args:
        data: kernel-hashes area entry (8 bytes), then the metadata from its header on.

    Returns:
        The 16 KiB image.
    """
    out = bytearray(_BASE)
    area, metadata = data[:8], data[8 : 8 + _END - _START]
    out[_AREA : _AREA + len(area)] = area
    out[_START : _START + len(metadata)] = metadata
    return bytes(out)


def encode(whole: bytes) -> bytes:
    """The input that :func:`image` turns back into an image laid out like the golden one.

    Args:
        whole: an image from ``snp_image(..., size=0x4000, hash_table=...)``.

    Returns:
        Its kernel-hashes area entry and metadata region.
    """
    return whole[_AREA : _AREA + 8] + whole[_START:_END]


def seeds() -> list[bytes]:
    """The golden metadata and variants of it.

    Returns:
        Inputs for the golden sections, every section type on its own, a table
        that straddles a page boundary, and many small sections.
    """
    variants = [
        snp_image(SECTIONS, hash_table=(0x804C00, 0x400)),
        snp_image([*SECTIONS[:3], (0x804000, 0x2000, 0x10)], hash_table=(0x804FA0, 0x400)),
        snp_image(
            [(0x800000 + 0x1000 * n, 0x1000, kind) for n, kind in enumerate((1, 2, 3, 4, 0x10))], hash_table=(0, 0)
        ),
        snp_image([(0x1000 * n, 0x1000, 1) for n in range(100)], hash_table=(0x804C00, 0x400)),
        snp_image([(0x803000, 0x1000, 3), (0x800000, 0x3000, 0x10)], hash_table=(0x801F80, 0x1000)),
    ]
    return [encode(whole) for whole in variants]


def one_input(data: bytes) -> None:
    """Parse the image the input makes and measure it; any exception that escapes is a bug.

    Sections are hashed page by page, up to 4 GiB of them, which would slow
    this target down to a few inputs per second once libFuzzer finds big
    sections. An image whose sections cover more than :data:`MAX_MEASURED`
    bytes is therefore checked for every configuration but not hashed: its
    pages take the same paths as a small section's, and the firmware target
    and tests/test_fuzz.py measure such images whole.

    Args:
        data: see :func:`image`.
    """
    try:
        firmware = Firmware.from_bytes(image(data))
    except SevrefError:
        return
    if sum(section.size for section in firmware.info.snp_sections or ()) <= MAX_MEASURED:
        measure(firmware)
        return
    for config in CONFIGS:
        with contextlib.suppress(SevrefError):
            check_launch(firmware.info, config)
