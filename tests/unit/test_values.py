"""sevref.values: durations (the other values are tested where they are read)."""

from __future__ import annotations

import pytest

from sevref.errors import ConfigError
from sevref.values import format_duration, parse_duration


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
