"""What every kind of published record shares: schema ids, the calculator, hex numbers."""

from __future__ import annotations

import re

from sevref import __version__

__all__ = ["CALCULATOR", "SCHEMAS", "SCHEMA_IDS", "VERSIONS", "hex_or_none", "int_or_none", "schema_version"]

CALCULATOR = f"sevref {__version__}"
"""Who computed the digests, recorded in every group."""
VERSIONS: dict[str, tuple[int, int]] = {
    "index": (1, 0),
    "publication": (1, 0),
    "groups": (2, 0),
    "digests": (1, 0),
    "firmware": (2, 0),
    "catalog": (2, 0),
    "changes": (1, 0),
}
"""Each kind of published file's schema version (major, minor): the compatibility promise
(docs/compatibility.md). A minor adds optional members that a verifier may ignore without reaching
another verdict; a verifier reads a newer minor of its major without them. Anything else (a member
removed, renamed, required or changed, a value a closed list did not have, a member that narrows what
is accepted) is a new major, which a verifier of the old one refuses. The frozen schemas of each
release in tests/data/compat/ hold every later schema of the same major to that.

groups 2 and catalog 2: a lifecycle status per entry (``exceptions``); firmware 2: ``nvram``. index 1
has an optional ``previous`` (the release it follows), which a verifier that ignores it reaches its own
verdicts without: it adds a check and takes none away."""
SCHEMA_IDS = {kind: f"urn:sevref:schema:{kind}:{major}" for kind, (major, _) in VERSIONS.items()}
"""The ``$id`` of each kind's JSON Schema: one schema a major, which grows with its minors."""
SCHEMAS = {kind: SCHEMA_IDS[kind] + (f".{minor}" if minor else "") for kind, (_, minor) in VERSIONS.items()}
"""The ``schema`` value of each kind of file as this sevref writes it: ``urn:sevref:schema:<kind>:<major>``,
with ``.<minor>`` from the first minor on."""
_SCHEMA_VALUE = re.compile(r"urn:sevref:schema:([a-z]{1,16}):([1-9][0-9]{0,3})(?:\.([1-9][0-9]{0,3}))?")


def schema_version(value: object) -> tuple[str, int, int] | None:
    """Read a document's ``schema`` value.

    Args:
        value: the value of its ``schema`` member.

    Returns:
        (kind, major, minor), or None for a value that is no sevref schema id.
    """
    found = _SCHEMA_VALUE.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        return None
    return found[1], int(found[2]), int(found[3] or 0)


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
