"""QEMU's kernel-hashes table."""

from __future__ import annotations

import hashlib

import pytest

from sevref.binfmt.hashtab import EMPTY_SHA256, TABLE_SIZE, build_hash_table, cmdline_sha256, hash_table_page
from sevref.errors import ConfigError, LayoutError

# research/sev-snp-measure-oracle.md §2.3: empty kernel, no initrd, no -append.
EMPTY_TABLE = bytes.fromhex(
    "06d63894224fc94cb479a793d411fd21a800"
    "d82dd09720bd944caa78e7714d36ab2a3200"
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    "31f7ba442f3ad74b9af141e29169781d3200"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    "3794e74dd2ab7f42b835d5b172d2045b3200"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    "0000000000000000"
)


def test_empty_table_bytes() -> None:
    table = build_hash_table(
        kernel_sha256=EMPTY_SHA256, initrd_sha256=EMPTY_SHA256, cmdline_sha256=cmdline_sha256(None)
    )
    assert TABLE_SIZE == 176
    assert table == EMPTY_TABLE


def test_entries_in_qemu_order() -> None:
    kernel, initrd = hashlib.sha256(b"k").digest(), hashlib.sha256(b"i").digest()
    table = build_hash_table(kernel_sha256=kernel, initrd_sha256=initrd, cmdline_sha256=cmdline_sha256("quiet"))
    assert table[0x12 + 18 : 0x12 + 50] == hashlib.sha256(b"quiet\0").digest()
    assert table[0x44 + 18 : 0x44 + 50] == initrd
    assert table[0x76 + 18 : 0x76 + 50] == kernel
    assert table[0xA8:] == bytes(8)


def test_cmdline_hash() -> None:
    # QEMU hashes the text with its NUL; no -append is the same as -append "".
    assert cmdline_sha256(None).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert cmdline_sha256("") == cmdline_sha256(None)
    assert cmdline_sha256("label=ünï ✓") == hashlib.sha256("label=ünï ✓".encode() + b"\0").digest()
    with pytest.raises(ConfigError, match="cmdline: NUL byte at index 3; expected none"):
        cmdline_sha256("abc\0def")


def test_hash_sizes_are_checked() -> None:
    with pytest.raises(LayoutError, match="SevHashTableEntry.hash: expected 32 bytes, found 20 bytes"):
        build_hash_table(kernel_sha256=b"\0" * 20, initrd_sha256=EMPTY_SHA256, cmdline_sha256=EMPTY_SHA256)


def test_page() -> None:
    page = hash_table_page(EMPTY_TABLE, 0xC00)
    assert len(page) == 4096 and page[0xC00 : 0xC00 + 176] == EMPTY_TABLE
    assert page[:0xC00] == bytes(0xC00) and page[0xCB0:] == bytes(4096 - 0xCB0)
    assert hash_table_page(EMPTY_TABLE, 4096 - 176)[-176:] == EMPTY_TABLE
    with pytest.raises(
        LayoutError, match=r"page offset 0xf51: expected 0..0xf50 so its 176 bytes fit in the 0x1000-byte section"
    ):
        hash_table_page(EMPTY_TABLE, 4096 - 175)
