"""A publication's files, declared once: what each is, who writes it, and what holds it to account.

Every stage that works out a publication's set of files reads this table: the
build's writer (:mod:`sevref.edge.publish`: the schema a written file is held
to, the files that get a detached ``.sig``), the signer
(:mod:`sevref.edge.signing`: what signing adds, what else a folder may hold)
and the verifier (:mod:`sevref.trust`: the schema a listed JSON file must
match, the files that must carry a ``.sig``). A new kind of published file is
one row of :data:`FILES`.

The in-page verifier (``templates/assets/sevref.js``) applies the same rules
in JavaScript; ``tests/unit/test_files.py`` holds it to this table.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection
from dataclasses import dataclass

__all__ = [
    "FILES",
    "FileKind",
    "Listing",
    "kind_of",
    "made_by_signing",
    "schema_of",
    "signed_beside",
    "written_by_signing",
]


class Listing(enum.Enum):
    """How a file relates to the signed index."""

    INDEX = "index"
    """``index.json`` itself: what ``index.dsse.json`` signs."""
    LISTED = "listed"
    """Listed in ``index.json`` with its sha256 and size: the build writes it."""
    SIGNING = "signing"
    """Written by signing (``sevref build --signing-key`` or ``sevref sign``), not listed: it signs the index."""
    SERVICE = "service"
    """Written beside a signed release later, by another role (the timestamp), not listed."""


@dataclass(frozen=True)
class FileKind:
    """One kind of file a publication holds."""

    name: str
    """What it is, in words."""
    pattern: re.Pattern[str]
    """The paths of this kind, relative to the publication's root."""
    listing: Listing
    """Whether the index lists it, or who writes it."""
    schema: str | None = None
    """The JSON Schema kind (``schema/<kind>.schema.json``) it is held to, if any."""
    detached_signature: bool = False
    """The release key signs it in ``<path>.sig`` beside it (RFC 8785 JSON, for tools that read one file)."""
    made_by_signing: bool = False
    """Listed, but made when the release is signed (it carries the release key's own signature): an unsigned
    build has none, and signing (again) makes it anew."""


def _kind(
    name: str,
    pattern: str,
    listing: Listing,
    schema: str | None = None,
    detached_signature: bool = False,
    made_by_signing: bool = False,
) -> FileKind:
    return FileKind(name, re.compile(pattern), listing, schema, detached_signature, made_by_signing)


_JSON_NAME = r"[a-z0-9][a-z0-9._-]*\.json"

FILES: tuple[FileKind, ...] = (
    _kind("the release index", r"index\.json", Listing.INDEX, "index", detached_signature=True),
    _kind("what the release covers", r"publication\.json", Listing.LISTED, "publication", detached_signature=True),
    _kind("what changed since the previous release", r"changes\.json", Listing.LISTED, "changes", True),
    _kind("configurations and their digests", rf"groups/{_JSON_NAME}", Listing.LISTED, "groups", True),
    _kind("digest to entries", rf"digests/{_JSON_NAME}", Listing.LISTED, "digests", True),
    _kind("a firmware build and its candidates", rf"firmware/{_JSON_NAME}", Listing.LISTED, "firmware", True),
    _kind("a firmware build's configurations", rf"catalog/{_JSON_NAME}", Listing.LISTED, "catalog", True),
    _kind("a page", r"([a-z0-9][a-z0-9._-]*/)*[a-z0-9][a-z0-9._-]*\.html", Listing.LISTED),
    _kind("a script or style sheet of the pages", r"assets/[a-z0-9][a-z0-9._-]*", Listing.LISTED),
    # A COSE_Sign1 by the release key itself (draft-ietf-rats-corim-11), so no .sig beside it.
    _kind(
        "a signed CoRIM of the values a verifier may accept",
        r"corim/[a-z0-9-]+\.corim",
        Listing.LISTED,
        made_by_signing=True,
    ),
    _kind("the signed index (DSSE)", r"index\.dsse\.json", Listing.SIGNING),
    _kind("a keys document of the publisher's chain (DSSE)", r"keys/[1-9][0-9]*\.dsse\.json", Listing.SIGNING),
    _kind("the in-toto statement of the release (DSSE)", r"attestation\.intoto\.dsse\.json", Listing.SIGNING),
    _kind("a detached signature", r".+\.json\.sig", Listing.SIGNING),
    _kind("the timestamp (DSSE, timestamp role)", r"timestamp\.dsse\.json", Listing.SERVICE),
)
"""Every kind of file, most specific first: the first whose pattern matches a path is its kind."""


def kind_of(path: str) -> FileKind | None:
    """The kind of a file, by its path in the publication.

    Args:
        path: relative to the publication's root, with ``/``.

    Returns:
        Its kind, or None for a path no publication has.
    """
    return next((kind for kind in FILES if kind.pattern.fullmatch(path)), None)


def schema_of(path: str) -> str | None:
    """The JSON Schema kind a listed file is held to.

    Args:
        path: the file's path.

    Returns:
        The schema kind, or None (pages, assets, and what no schema describes).
    """
    kind = kind_of(path)
    return None if kind is None else kind.schema


def signed_beside(path: str) -> bool:
    """Whether the release key signs a file in ``<path>.sig`` beside it.

    Args:
        path: the file's path.

    Returns:
        True for ``index.json`` and the listed JSON records.
    """
    kind = kind_of(path)
    return kind is not None and kind.detached_signature


def made_by_signing(path: str) -> bool:
    """Whether a listed file is made when the release is signed (so signing again makes it anew).

    Args:
        path: the file's path.

    Returns:
        True for the signed CoRIMs.
    """
    kind = kind_of(path)
    return kind is not None and kind.made_by_signing


def written_by_signing(path: str, listed: Collection[str]) -> bool:
    """Whether signing writes a file (so a signed publication may hold it though the index does not list it).

    Args:
        path: the file's path.
        listed: the paths the index lists.

    Returns:
        True for the envelopes, the key chain, and a ``.sig`` beside a file that has one.
    """
    kind = kind_of(path)
    if kind is None or kind.listing is not Listing.SIGNING:
        return False
    if path.endswith(".json.sig"):
        signed = path.removesuffix(".sig")
        return (signed in listed or signed == "index.json") and signed_beside(signed)
    return True
