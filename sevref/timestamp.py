"""Freshness: short-lived signed timestamps over a release's index (TUF's timestamp role).

A signed release is valid until it expires, which can be months away. A
mirror that keeps serving it after the publisher has issued a newer one
(withholding, say, an entry's revocation) is caught only by a verifier that
has seen the newer serial. A **timestamp** closes that window: the
publisher's online key of the ``timestamp`` role signs, every few hours,
``timestamp.dsse.json``, which names the current ``index.json`` by sha256 and
size and expires soon. A verifier asking for freshness (``--require-timestamp``,
``--max-age``) refuses a release without a timestamp that is valid now and
names exactly its index; a frozen mirror can then show an old release only
until its last timestamp expires.

The release key can stay offline: a timestamp key can sign nothing but
timestamps, so its theft lets a thief keep a release looking current, no more.

This module does no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sevref import strictjson
from sevref.errors import Check, ConfigError, JSONFormatError, LayoutError, SignatureError, TrustError
from sevref.records import Release
from sevref.serialize import canonical
from sevref.sign import TIMESTAMP_PAYLOAD_TYPE, PublicKey, Signer, envelope, open_envelope, parse_envelope
from sevref.validate import check_document
from sevref.values import format_duration, format_time, parse_time

__all__ = ["TIMESTAMP_PATH", "TIMESTAMP_SCHEMA", "Timestamp", "open_timestamp", "read_timestamp", "sign_timestamp"]

TIMESTAMP_SCHEMA = "urn:sevref:schema:timestamp:1"
"""The ``schema`` value of a timestamp."""
TIMESTAMP_PATH = "timestamp.dsse.json"
"""Where a publication keeps its timestamp (beside ``index.dsse.json``; the index does not list it)."""


@dataclass(frozen=True)
class Timestamp:
    """The payload of ``timestamp.dsse.json``."""

    release: Release
    """The release it vouches for."""
    index_sha256: str
    """The sha256 of that release's ``index.json``."""
    index_size: int
    """Its size."""
    issued: datetime
    """When it was signed."""
    expires: datetime
    """When it stops vouching."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "schema": TIMESTAMP_SCHEMA,
            "release": self.release.to_dict(),
            "index": {"path": "index.json", "sha256": self.index_sha256, "size": self.index_size},
            "issued": format_time(self.issued),
            "expires": format_time(self.expires),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Timestamp:
        """Read the JSON form.

        Args:
            data: a mapping valid against ``schema/timestamp.schema.json``.

        Returns:
            The timestamp.
        """
        index = data["index"]
        issued, expires = parse_time(data["issued"]), parse_time(data["expires"])
        return cls(Release.from_dict(data["release"]), index["sha256"], index["size"], issued, expires)


def sign_timestamp(index: bytes, release: Release, issued: datetime, expires: datetime, signer: Signer) -> bytes:
    """Sign a timestamp over a release's ``index.json``.

    Args:
        index: the bytes of ``index.json``.
        release: its release identity.
        issued: now.
        expires: when the timestamp ends.
        signer: a key of the timestamp role.

    Returns:
        The canonical bytes of ``timestamp.dsse.json``.
    """
    stamp = Timestamp(release, hashlib.sha256(index).hexdigest(), len(index), issued, expires)
    return canonical(envelope(canonical(stamp.to_dict()), TIMESTAMP_PAYLOAD_TYPE, [signer]))


def read_timestamp(data: bytes, keys: Mapping[str, PublicKey]) -> Timestamp:
    """The timestamp a key of the role signed, read strictly (what it vouches for is not checked here).

    Args:
        data: the bytes of ``timestamp.dsse.json``.
        keys: the active keys of the timestamp role, by id.

    Returns:
        The timestamp.

    Raises:
        TrustError: ``freshness``: not a timestamp signed by one of the keys.
    """
    what = TIMESTAMP_PATH
    try:
        payload, _ = open_envelope(parse_envelope(data, what), TIMESTAMP_PAYLOAD_TYPE, keys, what)
        value = strictjson.loads(payload, f"{what} payload")
        check_document("timestamp", value, f"{what} payload")
        if canonical(value) != payload:
            raise SignatureError(f"{what}: the payload is not canonical JSON (RFC 8785)")
        return Timestamp.from_dict(value)
    except (SignatureError, JSONFormatError, LayoutError, ConfigError) as error:
        role = f" (keys of the timestamp role: {', '.join(sorted(keys)) or 'none'})"
        raise TrustError(Check.FRESHNESS, error.diagnostic() + role) from error


def open_timestamp(
    data: bytes,
    keys: Mapping[str, PublicKey],
    release: Release,
    index: bytes,
    at: datetime,
    max_age: timedelta | None,
) -> Timestamp:
    """Check a timestamp: signed by a key of the role, naming this index, valid at ``at``, young enough.

    Args:
        data: the bytes of ``timestamp.dsse.json``.
        keys: the active keys of the timestamp role, by id.
        release: the release trusted so far.
        index: the bytes of its ``index.json``.
        at: the checking time.
        max_age: the oldest timestamp accepted (``--max-age``), or None.

    Returns:
        The timestamp.

    Raises:
        TrustError: ``freshness``, naming what is wrong.
    """
    stamp = read_timestamp(data, keys)
    sha256 = hashlib.sha256(index).hexdigest()
    if stamp.release != release or (stamp.index_sha256, stamp.index_size) != (sha256, len(index)):
        raise TrustError(
            Check.FRESHNESS,
            f"{TIMESTAMP_PATH} vouches for serial {stamp.release.serial} with index.json sha256 "
            f"{stamp.index_sha256} ({stamp.index_size} bytes); this is serial {release.serial} with {sha256} "
            f"({len(index)} bytes)",
        )
    if not stamp.issued <= at < stamp.expires:
        raise TrustError(
            Check.FRESHNESS,
            f"{TIMESTAMP_PATH} is valid from {format_time(stamp.issued)} until {format_time(stamp.expires)}; "
            f"checked at {format_time(at)}",
        )
    if max_age is not None and at - stamp.issued > max_age:
        raise TrustError(
            Check.FRESHNESS,
            f"{TIMESTAMP_PATH} was issued {format_duration(at - stamp.issued)} before the checking time "
            f"({format_time(stamp.issued)}); --max-age allows {format_duration(max_age)}",
        )
    return stamp
