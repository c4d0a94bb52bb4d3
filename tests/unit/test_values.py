"""sevref.values: hex numbers, hex bytes, digests and times as people write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref.errors import ConfigError
from sevref.values import (
    format_duration,
    format_time,
    parse_duration,
    parse_hex,
    parse_hex_bytes,
    parse_sha256,
    parse_time,
)

HEX_EXAMPLE = 'expected a hex string such as "0x1f" or an integer'

VALID_HEX: dict[str, tuple[object, int, int]] = {
    # name: (value, bits, expected)
    "0x prefix": ("0x1f", 8, 0x1F),
    "0X prefix": ("0X1F", 8, 0x1F),
    "no prefix": ("a00f11", 32, 0xA00F11),
    "mixed case": ("0xAbCd", 16, 0xABCD),
    "leading zeros": ("0x0001", 1, 1),
    "an integer": (255, 8, 255),
    "zero": (0, 1, 0),
    "largest 64-bit value": ("0xffffffffffffffff", 64, (1 << 64) - 1),
}

INVALID_HEX: dict[str, tuple[object, int, str]] = {
    # name: (value, bits, message)
    "a boolean is no integer": (True, 8, f"key: {HEX_EXAMPLE}, found True"),
    "a float": (1.0, 8, f"key: {HEX_EXAMPLE}, found 1.0"),
    "nothing": (None, 8, f"key: {HEX_EXAMPLE}, found None"),
    "empty text": ("", 8, f"key: {HEX_EXAMPLE}, found ''"),
    "0x alone": ("0x", 8, f"key: {HEX_EXAMPLE}, found '0x'"),
    "not a hex digit": ("0xg", 8, f"key: {HEX_EXAMPLE}, found '0xg'"),
    "a sign, which int() would take": ("+1", 8, f"key: {HEX_EXAMPLE}, found '+1'"),
    "an underscore, which int() would take": ("0x_1", 8, f"key: {HEX_EXAMPLE}, found '0x_1'"),
    "spaces, which int() would take": (" 0x1 ", 8, f"key: {HEX_EXAMPLE}, found ' 0x1 '"),
    "non-ASCII digits": ("\u0661", 8, f"key: {HEX_EXAMPLE}, found '\u0661'"),
    "a negative integer": (-1, 8, "key: expected a 8-bit value, found -0x1"),
    "one past the width": ("0x100", 8, "key: expected a 8-bit value, found 0x100"),
    "an integer past 64 bits": (1 << 64, 64, "key: expected a 64-bit value, found 0x10000000000000000"),
}


@pytest.mark.parametrize("name", VALID_HEX)
def test_parse_hex_valid(name: str) -> None:
    value, bits, expected = VALID_HEX[name]
    assert parse_hex(value, "key", bits) == expected


@pytest.mark.parametrize("name", INVALID_HEX)
def test_parse_hex_invalid(name: str) -> None:
    value, bits, message = INVALID_HEX[name]
    with pytest.raises(ConfigError) as raised:
        parse_hex(value, "key", bits)
    assert str(raised.value) == message


VALID_BYTES: dict[str, tuple[str, int, bytes]] = {
    "lowercase": ("00ff", 2, b"\x00\xff"),
    "uppercase": ("ABCD", 2, b"\xab\xcd"),
    "nothing for zero bytes": ("", 0, b""),
}

INVALID_BYTES: dict[str, tuple[object, int, str]] = {
    "too short": ("0f", 2, "key: expected 4 hex characters (2 bytes), found '0f'"),
    "too long": ("000102", 2, "key: expected 4 hex characters (2 bytes), found '000102'"),
    "with 0x, which is no hex digit": ("0x00", 2, "key: expected 4 hex characters (2 bytes), found '0x00'"),
    "not hex": ("zzzz", 2, "key: expected 4 hex characters (2 bytes), found 'zzzz'"),
    "spaces": ("00 f", 2, "key: expected 4 hex characters (2 bytes), found '00 f'"),
    "bytes, not text": (b"0000", 2, "key: expected 4 hex characters (2 bytes), found b'0000'"),
    "an integer": (1234, 2, "key: expected 4 hex characters (2 bytes), found 1234"),
    "nothing": (None, 2, "key: expected 4 hex characters (2 bytes), found None"),
}


@pytest.mark.parametrize("name", VALID_BYTES)
def test_parse_hex_bytes_valid(name: str) -> None:
    value, size, expected = VALID_BYTES[name]
    assert parse_hex_bytes(value, "key", size) == expected


@pytest.mark.parametrize("name", INVALID_BYTES)
def test_parse_hex_bytes_invalid(name: str) -> None:
    value, size, message = INVALID_BYTES[name]
    with pytest.raises(ConfigError) as raised:
        parse_hex_bytes(value, "key", size)
    assert str(raised.value) == message


def test_parse_sha256() -> None:
    # The SHA-256 of the empty string (FIPS 180-2 example, and `sha256sum < /dev/null`).
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert parse_sha256(empty, "pin") == bytes.fromhex(empty)
    with pytest.raises(ConfigError) as raised:
        parse_sha256(empty[:-1], "pin")
    assert str(raised.value) == f"pin: expected 64 hex characters (32 bytes), found '{empty[:-1]}'"


VALID_TIMES: dict[str, tuple[str, datetime]] = {
    "midnight": ("2026-11-26T00:00:00Z", datetime(2026, 11, 26, tzinfo=UTC)),
    "last second of a day": ("2026-11-26T23:59:59Z", datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC)),
    "leap day": ("2024-02-29T12:00:00Z", datetime(2024, 2, 29, 12, tzinfo=UTC)),
    "the epoch": ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
    "a year below 1000": ("0999-01-01T00:00:00Z", datetime(999, 1, 1, tzinfo=UTC)),
}

INVALID_TIMES: dict[str, object] = {
    "no such day": "2026-02-30T00:00:00Z",
    "not a leap year": "2025-02-29T00:00:00Z",
    "hour 24": "2026-11-26T24:00:00Z",
    "a leap second": "2026-12-31T23:59:60Z",
    "an offset instead of Z": "2026-11-26T00:00:00+00:00",
    "a lowercase z": "2026-11-26T00:00:00z",
    "a space instead of T": "2026-11-26 00:00:00Z",
    "fractional seconds": "2026-11-26T00:00:00.5Z",
    "no seconds": "2026-11-26T00:00Z",
    "a date alone": "2026-11-26",
    "non-ASCII digits": "\u0662\u0660\u0662\u0666-11-26T00:00:00Z",
    "a trailing newline": "2026-11-26T00:00:00Z\n",
    "not text": 20261126,
}


@pytest.mark.parametrize("name", VALID_TIMES)
def test_parse_time_valid(name: str) -> None:
    text, expected = VALID_TIMES[name]
    parsed = parse_time(text)
    assert parsed == expected and parsed.tzinfo is UTC
    assert format_time(parsed) == text


@pytest.mark.parametrize("name", INVALID_TIMES)
def test_parse_time_invalid(name: str) -> None:
    text = INVALID_TIMES[name]
    with pytest.raises(ConfigError) as raised:
        parse_time(text)  # type: ignore[arg-type]
    assert str(raised.value) == f"expected a time like 2026-11-26T00:00:00Z, found {text!r}"


def test_format_time_converts_to_utc_and_drops_fractions() -> None:
    paris = timezone(timedelta(hours=1))
    assert format_time(datetime(2026, 1, 1, 0, 30, 15, 999_999, tzinfo=paris)) == "2025-12-31T23:30:15Z"


moments = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]),
)


@settings(max_examples=200, deadline=None)
@given(moments)
def test_format_then_parse_is_the_same_moment_to_the_second(moment: datetime) -> None:
    text = format_time(moment)
    assert len(text) == 20
    assert parse_time(text) == moment.replace(microsecond=0)
    assert format_time(parse_time(text)) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("12h", 43200), ("1h30m", 5400), ("7d", 604800), ("1d2h3m4s", 93784)],
)
def test_durations(text: str, seconds: int) -> None:
    duration = parse_duration(text, "--max-age")
    assert duration.total_seconds() == seconds
    assert parse_duration(format_duration(duration), "x") == duration


@pytest.mark.parametrize("text", ["", "0s", "1", "1 h", "-1h", "1.5h", "1w", "h", "3661d", "1h\n"])
def test_durations_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--max-age: expected"):
        parse_duration(text, "--max-age")
