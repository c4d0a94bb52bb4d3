"""The one place where sevref writes JSON."""

from __future__ import annotations

import json

__all__ = ["json_line"]


def json_line(value: object) -> str:
    """Render a JSON value on one line with sorted keys, as sevref prints it.

    Args:
        value: dicts, lists, strings, integers, booleans and None only.

    Returns:
        The text, without a trailing newline.
    """
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)
