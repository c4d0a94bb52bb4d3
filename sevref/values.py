"""Plain values as people write them: hex numbers, hex bytes, digests, times and versions.

Every reader of user input (manifests, batch lines, options, state files) goes
through these, so a value is spelled the same way everywhere and a wrong one is
described the same way: the key, what was expected, what was found. Nothing
here depends on any other part of sevref but its errors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sevref.errors import ConfigError, OptionError

__all__ = [
    "Version",
    "format_duration",
    "format_time",
    "parse_duration",
    "parse_hex",
    "parse_hex_bytes",
    "parse_sha256",
    "parse_time",
    "parse_version",
    "positive_seconds",
    "show",
]

_HEX = re.compile(r"(0[xX])?[0-9a-fA-F]+")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")  # ASCII digits, as in the schemas
_DURATION = re.compile(r"(?:[0-9]{1,9}[dhms])+")
_DURATION_PART = re.compile(r"([0-9]{1,9})([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_DURATION = timedelta(days=3660)
"""The longest duration sevref reads (ten years and a few days)."""
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""RFC 3339 UTC with whole seconds: the only time format sevref reads or writes."""


def parse_hex(value: object, key: str, bits: int) -> int:
    """Read a value given as a hex string (``"0xa00f11"``, the 0x optional) or an integer.

    Args:
        value: the raw value.
        key: its name, for the error.
        bits: its width.

    Returns:
        The integer.

    Raises:
        ConfigError: not a hex string or a non-negative integer that fits.
    """
    if isinstance(value, str) and _HEX.fullmatch(value):
        number = int(value, 16)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise ConfigError(f'{key}: expected a hex string such as "0x1f" or an integer, found {value!r}')
    if not 0 <= number < 1 << bits:
        raise ConfigError(f"{key}: expected a {bits}-bit value, found {number:#x}")
    return number


def parse_hex_bytes(value: object, key: str, size: int) -> bytes:
    """Read a byte string given as exactly ``2 * size`` hex characters.

    Args:
        value: the raw value.
        key: its name, for the error.
        size: the number of bytes.

    Returns:
        The bytes.

    Raises:
        ConfigError: not a string of ``2 * size`` hex characters.
    """
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX_DIGITS.fullmatch(value):
        raise ConfigError(f"{key}: expected {2 * size} hex characters ({size} bytes), found {value!r}")
    return bytes.fromhex(value)


def parse_sha256(value: object, key: str) -> bytes:
    """Read a SHA-256 given as 64 hex characters.

    Args:
        value: the raw value.
        key: its name, for the error.

    Returns:
        The 32 bytes.

    Raises:
        ConfigError: not 64 hex characters.
    """
    return parse_hex_bytes(value, key, 32)


def parse_time(text: str) -> datetime:
    """Read an RFC 3339 UTC time with whole seconds.

    Args:
        text: e.g. ``2026-11-26T00:00:00Z``.

    Returns:
        An aware datetime.

    Raises:
        ConfigError: another form, or not a real date.
    """
    try:
        if not isinstance(text, str) or not _TIME.fullmatch(text):
            raise ValueError("form")
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as error:
        raise ConfigError(f"expected a time like 2026-11-26T00:00:00Z, found {text!r}") from error


def format_time(moment: datetime) -> str:
    """Write a time as RFC 3339 UTC with whole seconds.

    Args:
        moment: an aware datetime.

    Returns:
        E.g. ``2026-11-26T00:00:00Z``.
    """
    # Not strftime: its %Y does not pad years below 1000 to four digits (glibc).
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


@dataclass(frozen=True, order=True)
class Version:
    """A dotted version: major.minor[.micro]."""

    major: int
    """Major number."""
    minor: int
    """Minor number."""
    micro: int | None = None
    """Micro number, when given."""

    def __str__(self) -> str:
        """Return the dotted form."""
        return f"{self.major}.{self.minor}" + ("" if self.micro is None else f".{self.micro}")

    @property
    def release(self) -> tuple[int, int]:
        """The release: (major, minor)."""
        return (self.major, self.minor)

    def at_least(self, major: int, minor: int) -> bool:
        """Tell whether this is major.minor or later.

        Args:
            major: the major number.
            minor: the minor number.

        Returns:
            True when this version is not older.
        """
        return self.release >= (major, minor)


def parse_version(text: str, what: str) -> Version:
    """Read "6.10" or "7.2.1".

    Args:
        text: the version.
        what: its name, for the error.

    Returns:
        The version.

    Raises:
        ConfigError: not a dotted version.
    """
    match = re.fullmatch(r"([0-9]{1,3})\.([0-9]{1,3})(?:\.([0-9]{1,3}))?", text)
    if not match:
        raise ConfigError(f"{what}: expected a version such as 9.1 or 7.2.1, found {text!r}")
    major, minor, micro = match.groups()
    return Version(int(major), int(minor), None if micro is None else int(micro))


def positive_seconds(seconds: float, option: str) -> float:
    """Hold a time limit to a positive, finite number of seconds.

    Args:
        seconds: the limit.
        option: its name, for the error (e.g. ``--timeout``).

    Returns:
        ``seconds``.

    Raises:
        OptionError: zero, negative, infinite or not a number.
    """
    if not 0 < seconds < float("inf"):
        raise OptionError(f"{option}: expected a positive number of seconds, found {seconds:g}")
    return seconds


def parse_duration(text: str, key: str) -> timedelta:
    """Read a duration: whole days, hours, minutes and seconds, e.g. ``90s``, ``15m``, ``1h30m``, ``7d``.

    Args:
        text: the duration.
        key: its name, for the error.

    Returns:
        The duration (more than zero, at most :data:`MAX_DURATION`).

    Raises:
        ConfigError: another form, zero, or too long.
    """
    if not isinstance(text, str) or not _DURATION.fullmatch(text):
        raise ConfigError(f"{key}: expected a duration such as 90s, 15m, 12h, 1h30m or 7d, found {text!r}")
    seconds = sum(int(count) * _UNITS[unit] for count, unit in _DURATION_PART.findall(text))
    if not 0 < seconds <= MAX_DURATION.total_seconds():
        raise ConfigError(f"{key}: expected more than 0 s and at most {MAX_DURATION.days} days, found {text!r}")
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """Write a duration as :func:`parse_duration` reads it.

    Args:
        duration: whole seconds.

    Returns:
        E.g. ``1d2h``, ``90s`` → ``1m30s``.
    """
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in _UNITS.items():
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def show(value: object) -> str:
    """A value as an error message shows what it found: JSON, shortened; a list or mapping by its kind.

    Args:
        value: the value found.

    Returns:
        The text.
    """
    if isinstance(value, dict):
        return "an empty mapping" if not value else "a mapping"
    if isinstance(value, list):
        return "an empty list" if not value else f"a list of {len(value)}"
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:77] + "..."
