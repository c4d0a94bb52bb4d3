"""Where the JSON Schemas and templates live.

Inside the installed package, or next to it in a source checkout.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["resource"]

_HERE = Path(__file__).resolve().parent


def resource(*parts: str) -> Path:
    """Locate a file of ``schema/`` or ``templates/``.

    Args:
        *parts: the path below the project root, e.g. ``("schema", "manifest.schema.json")``.

    Returns:
        The file inside the wheel (``sevref/schema/...``) or the source tree.
    """
    packaged = _HERE.joinpath(*parts)
    return packaged if packaged.exists() else _HERE.parent.joinpath(*parts)
