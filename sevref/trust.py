"""The verifier's first stage: decide whether a publication can be trusted.

Nothing here is believed before it is checked, in this order:

1. **keys**: the key chain ``keys/1.dsse.json`` … ``keys/N.dsse.json``. The
   first document signed by a key the verifier pinned starts the chain; each
   later one must be signed by an active key of the one before. The last one
   names the publisher's active and revoked keys.
2. **signature**: ``index.dsse.json`` must be signed by an active key of the
   last keys document (a revoked key is named as such), and ``index.json``
   must be exactly its payload.
3. **identity**: the publisher, product and stream the verifier asked for.
4. **expiry**: issued ≤ the checking time < expires.
5. **rollback**: the serial must not be lower than the last one the verifier
   saw, nor the key chain shorter (a withheld rotation or revocation).
6. **integrity**: every file the index lists has its sha256 and size; each
   JSON file carries the index's release identity and its detached ``.sig``
   verifies (the site's pages and assets are pinned by the index alone); the
   in-toto statement names the same files.

Each failure is a :class:`~sevref.errors.TrustError` naming its
:class:`~sevref.errors.Check`. This module does no I/O: it reads the
publication through a ``fetch`` function.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sevref.errors import Check, FetchError, LayoutError, SignatureError, TrustError
from sevref.keychain import KeysDocument, KeyStatus, open_keys_document
from sevref.limits import MAX_KEYS_DOCUMENTS
from sevref.records import Index, Release
from sevref.sign import (
    INDEX_PAYLOAD_TYPE,
    INTOTO_PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    PublicKey,
    key_id,
    open_envelope,
    verify_file,
)
from sevref.validate import KINDS, check_document
from sevref.values import format_time

__all__ = ["Fetch", "TrustAnchor", "TrustedPublication", "establish"]

Fetch = Callable[[str], bytes]
"""Reads a file of the publication by its relative path; raises FetchError when it is missing."""


@dataclass(frozen=True)
class TrustAnchor:
    """What the verifier pins, asks for and remembers: everything a publication is checked against."""

    keys: Sequence[PublicKey]
    """Pinned public keys."""
    publisher: str
    """Publisher id."""
    product: str
    """Product id."""
    stream: str
    """Stream id."""
    at: datetime
    """When to check validity."""
    last_serial: int | None = None
    """The highest serial seen before, from the verifier's state."""
    check_all_files: bool = True
    """Check every listed file (False: only those read later, as they are read)."""
    last_keys_version: int | None = None
    """The newest keys document seen before, from the verifier's state."""


@dataclass
class TrustedPublication:
    """A publication that passed every check, and a checked reader of its files."""

    index: Index
    """The signed index."""
    keyid: str
    """The key that signed it."""
    keys_version: int
    """The keys document it was checked against."""
    key_label: str | None
    """The signing key's label in that document (e.g. a demo key's warning)."""
    fetch: Fetch
    """Raw access to the publication."""
    files: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    """Path to (sha256, size) from the index."""
    _cache: dict[str, Any] = field(default_factory=dict)

    def read(self, path: str) -> Any:
        """Read, check and parse one listed JSON file.

        A file of a kind that has a schema (``digests/``, ``groups/``,
        ``firmware/``, ``catalog/``, ``publication.json``) must match it: the
        signature says who wrote a file, not that the file is well formed.

        Args:
            path: its path in the index.

        Returns:
            The parsed JSON.

        Raises:
            TrustError: not listed, not what the index says, or not valid against its schema.
        """
        if not path.endswith(".json"):
            raise TrustError(Check.INTEGRITY, f"{path}: expected a JSON file of the publication")
        if path not in self._cache:
            value = _checked(self.fetch, path, self.files, self.index.release)[1]
            _check_schema(path, value)
            self._cache[path] = value
        return self._cache[path]

    def has(self, path: str) -> bool:
        """Tell whether the index lists a file.

        Args:
            path: the path.

        Returns:
            True when listed.
        """
        return path in self.files


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:  # RecursionError: nested deeper than Python's stack
        raise TrustError(Check.INTEGRITY, f"{what} is not JSON ({error})") from error


def _checked(fetch: Fetch, path: str, files: Mapping[str, tuple[str, int]], release: Release) -> tuple[bytes, Any]:
    if path not in files:
        raise TrustError(Check.INTEGRITY, f"{path} is not listed in the signed index")
    try:
        data = fetch(path)
    except FetchError as error:
        raise TrustError(Check.INTEGRITY, f"{path}: {error.diagnostic()}") from error
    sha256, size = files[path]
    found = hashlib.sha256(data).hexdigest()
    if found != sha256 or len(data) != size:
        raise TrustError(
            Check.INTEGRITY,
            f"{path} has sha256 {found} ({len(data)} bytes); the signed index says {sha256} ({size} bytes)",
        )
    if not path.endswith(".json"):
        return data, None  # a page or an asset: its hash is all there is to check
    value = _json(data, path)
    identity = value.get("release") if isinstance(value, dict) else None
    if identity != release.to_dict():
        raise TrustError(Check.INTEGRITY, f"{path} belongs to release {identity}; expected {release.to_dict()}")
    return data, value


def _keys_chain(fetch: Fetch, pinned: Mapping[str, PublicKey]) -> tuple[KeysDocument, int]:
    """Walk keys/1.dsse.json, keys/2.dsse.json, ... from the first one a pinned key signed."""
    current: KeysDocument | None = None
    for version in range(1, MAX_KEYS_DOCUMENTS + 1):
        path = f"keys/{version}.dsse.json"
        try:
            data = fetch(path)
        except FetchError:
            break
        signers = pinned if current is None else current.active()
        try:
            current = open_keys_document(data, version, signers)
        except SignatureError as error:
            if current is None:
                continue  # the pinned key enters the chain later
            if isinstance(error, TrustError):
                raise  # not JSON, or signed but not the version its name says: its message says which
            raise TrustError(
                Check.KEYS, f"{path} is not signed by an active key of keys/{version - 1}: {error.diagnostic()}"
            ) from error
    if current is None:
        raise TrustError(Check.KEYS, f"no keys document is signed by a pinned key ({', '.join(sorted(pinned))})")
    return current, current.version


def establish(fetch: Fetch, expected: TrustAnchor) -> TrustedPublication:
    """Run every check on a publication.

    Args:
        fetch: reads the publication's files.
        expected: what the verifier pins and asks for.

    Returns:
        The trusted publication.

    Raises:
        TrustError: the first check that fails.
    """
    pinned = {key_id(k): k for k in expected.keys}
    try:
        data = fetch("index.dsse.json")
    except FetchError as error:
        raise TrustError(Check.SIGNATURE, "the publication is unsigned: no index.dsse.json") from error
    try:
        envelope = json.loads(data)
    except (ValueError, RecursionError) as error:  # RecursionError: nested deeper than Python's stack
        raise TrustError(Check.SIGNATURE, f"index.dsse.json is not JSON ({error})") from error
    keys, version = _keys_chain(fetch, pinned)
    payload, signer = _signed_index(envelope, keys)
    index = _index(fetch, payload)
    _check_release(index, keys, expected)
    files = {f.path: (f.sha256, f.size) for f in index.files}
    entry = keys.entry(signer)
    trusted = TrustedPublication(index, signer, version, None if entry is None else entry.label, fetch, files)
    if expected.check_all_files:
        _check_everything(trusted, keys.active()[signer])
    return trusted


def _signed_index(envelope: Any, keys: KeysDocument) -> tuple[bytes, str]:
    """The index envelope's payload and the active key that signed it; a revoked signer is named as such."""
    try:
        payload, signed_by = open_envelope(envelope, INDEX_PAYLOAD_TYPE, keys.active(), "index.dsse.json")
    except SignatureError as error:
        signatures = envelope.get("signatures") if isinstance(envelope, dict) else None
        signers = [s.get("keyid") for s in signatures if isinstance(s, dict)] if isinstance(signatures, list) else []
        for keyid in signers:
            entry = keys.entry(str(keyid))
            if entry is not None and entry.status is KeyStatus.REVOKED:
                raise TrustError(
                    Check.SIGNATURE,
                    f"index.dsse.json is signed by key {keyid}, revoked in keys/{keys.version} ({entry.reason})",
                ) from error
        raise TrustError(Check.SIGNATURE, error.diagnostic()) from error
    return payload, signed_by[0]


def _index(fetch: Fetch, payload: bytes) -> Index:
    """``index.json``, which must be exactly the signed payload and valid against its schema."""
    try:
        index_json = fetch("index.json")
    except FetchError as error:
        raise TrustError(Check.INTEGRITY, f"index.json: {error.diagnostic()}") from error
    if index_json != payload:
        raise TrustError(Check.INTEGRITY, "index.json differs from the payload of index.dsse.json")
    data = _json(payload, "index.json")
    try:
        check_document("index", data, "index.json")
    except LayoutError as error:
        raise TrustError(Check.INTEGRITY, error.diagnostic()) from error
    return Index.from_dict(data)


def _check_release(index: Index, keys: KeysDocument, expected: TrustAnchor) -> None:
    """Identity, expiry and rollback: the release is the one asked for, current, and not older than one seen."""
    release = index.release
    for name, want in (("publisher", expected.publisher), ("product", expected.product), ("stream", expected.stream)):
        found = getattr(release, name)
        if found != want:
            raise TrustError(Check.IDENTITY, f"{name} is {found!r}; expected {want!r}")
    if keys.publisher != release.publisher:
        raise TrustError(
            Check.IDENTITY,
            f"keys/{keys.version} belongs to publisher {keys.publisher!r}; the index to {release.publisher!r}",
        )
    if expected.at < index.issued:
        raise TrustError(
            Check.EXPIRY, f"issued {format_time(index.issued)}, after the checking time {format_time(expected.at)}"
        )
    if expected.at >= index.expires:
        raise TrustError(
            Check.EXPIRY, f"expired at {format_time(index.expires)} (checked at {format_time(expected.at)})"
        )
    if expected.last_serial is not None and release.serial < expected.last_serial:
        raise TrustError(
            Check.ROLLBACK, f"serial {release.serial} is lower than {expected.last_serial}, the last one seen"
        )
    if expected.last_keys_version is not None and keys.version < expected.last_keys_version:
        raise TrustError(
            Check.ROLLBACK,
            f"the newest keys document is keys/{keys.version}.dsse.json; keys/{expected.last_keys_version}.dsse.json "
            "was seen before (a newer document, perhaps a revocation, is withheld)",
        )


def _check_schema(path: str, value: Any) -> None:
    """Hold a published JSON file of a kind that has a schema to it.

    The signature says who wrote a file, not that it is well formed.
    """
    kind = path.split("/", 1)[0].removesuffix(".json")
    if path.endswith(".json") and kind in KINDS:
        try:
            check_document(kind, value, path)
        except LayoutError as error:
            raise TrustError(Check.INTEGRITY, error.diagnostic()) from error


def _check_everything(publication: TrustedPublication, key: PublicKey) -> None:
    fetch = publication.fetch
    for path in [*publication.files, "index.json"]:
        if path == "index.json":
            data = fetch(path)
        else:
            data, value = _checked(fetch, path, publication.files, publication.index.release)
            _check_schema(path, value)  # parsed values are not kept: a publication can be large
        if not path.endswith(".json"):
            continue  # pages and assets have no .sig: the signed index pins them
        try:
            signature = fetch(f"{path}.sig")
        except FetchError as error:
            raise TrustError(Check.INTEGRITY, f"{path}.sig: {error.diagnostic()}") from error
        if not verify_file(key, data, signature):
            raise TrustError(Check.INTEGRITY, f"{path}.sig does not verify with key {publication.keyid}")
    try:
        envelope = _json(fetch("attestation.intoto.dsse.json"), "attestation.intoto.dsse.json")
        payload, _ = open_envelope(
            envelope, INTOTO_PAYLOAD_TYPE, {publication.keyid: key}, "attestation.intoto.dsse.json"
        )
    except (FetchError, SignatureError) as error:
        raise TrustError(Check.INTEGRITY, error.diagnostic()) from error
    statement = _json(payload, "the in-toto statement")
    listed = {path: sha for path, (sha, _) in publication.files.items()}
    listed["index.json"] = hashlib.sha256(fetch("index.json")).hexdigest()
    if (
        not isinstance(statement, dict)
        or statement.get("_type") != STATEMENT_TYPE
        or statement.get("predicateType") != PREDICATE_TYPE
        or _subjects(statement.get("subject")) != listed
    ):
        raise TrustError(Check.INTEGRITY, "attestation.intoto.dsse.json does not state the files the index lists")


def _subjects(subject: Any) -> dict[str, Any] | None:
    """An in-toto statement's subjects as name to sha256, or None when they are not a list of subjects."""
    if not isinstance(subject, list):
        return None
    subjects = {}
    for item in subject:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("digest"), dict)
        ):
            return None
        subjects[item["name"]] = item["digest"].get("sha256")
    return subjects
