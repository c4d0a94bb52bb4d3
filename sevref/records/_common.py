"""What every kind of published record shares: schema ids, the calculator, hex numbers."""

from __future__ import annotations

from sevref import __version__

__all__ = ["CALCULATOR", "SCHEMAS", "hex_or_none", "int_or_none"]

CALCULATOR = f"sevref {__version__}"
"""Who computed the digests, recorded in every group."""
_VERSIONS = {"index": 1, "publication": 1, "groups": 2, "digests": 1, "firmware": 2, "catalog": 2, "changes": 1}
# groups 2 and catalog 2: a lifecycle status per entry (``exceptions``); firmware 2: ``nvram``.
# index stays 1 with an optional ``previous`` (the release it follows): an index without one is byte for
# byte what sevref wrote before and every verifier reads it; an index with one is refused by a verifier
# that does not know the field (the schema allows no other member), so a link is never silently ignored.
SCHEMAS = {kind: f"urn:sevref:schema:{kind}:{version}" for kind, version in _VERSIONS.items()}
"""The ``schema`` value of each kind of file (and the ``$id`` of its JSON Schema)."""


def hex_or_none(value: int | None) -> str | None:
    """Write an integer as lowercase hex with 0x, as every record does.

    Args:
        value: the integer, or None.

    Returns:
        E.g. ``0xa00f11``, or None.
    """
    return None if value is None else f"{value:#x}"


def int_or_none(text: str | None) -> int | None:
    """Read a record's hex number.

    Args:
        text: e.g. ``0xa00f11``, or None.

    Returns:
        The integer, or None.
    """
    return None if text is None else int(text, 16)
