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

Each failure is a :class:`TrustError` naming its check. This module does no
I/O: it reads the publication through a ``fetch`` function.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sevref.errors import FetchError, LayoutError, SignatureError
from sevref.manifest import parse_time
from sevref.records import Index, Release
from sevref.sign import (
    INDEX_PAYLOAD_TYPE,
    INTOTO_PAYLOAD_TYPE,
    KEYS_PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    KeysDocument,
    PublicKey,
    key_id,
    open_envelope,
    verify_file,
)
from sevref.validate import KINDS, check_document

__all__ = ["Expected", "Fetch", "TrustError", "TrustedPublication", "establish", "verify_chain"]

Fetch = Callable[[str], bytes]
"""Reads a file of the publication by its relative path; raises FetchError when it is missing."""
_MAX_KEY_DOCUMENTS = 1000


class TrustError(SignatureError):
    """The publication is not trusted; :attr:`check` says which check failed."""

    def __init__(self, check: str, message: str) -> None:
        """Name the failed check.

        Args:
            check: keys, signature, identity, expiry, rollback or integrity.
            message: what was found.
        """
        super().__init__(f"not trusted: {check}: {message}")
        self.check = check


@dataclass(frozen=True)
class Expected:
    """What the verifier expects of a publication."""

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
            raise TrustError("integrity", f"{path}: expected a JSON file of the publication")
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
        raise TrustError("integrity", f"{what} is not JSON ({error})") from error


def _checked(fetch: Fetch, path: str, files: Mapping[str, tuple[str, int]], release: Release) -> tuple[bytes, Any]:
    if path not in files:
        raise TrustError("integrity", f"{path} is not listed in the signed index")
    try:
        data = fetch(path)
    except FetchError as error:
        raise TrustError("integrity", f"{path}: {error.diagnostic()}") from error
    sha256, size = files[path]
    found = hashlib.sha256(data).hexdigest()
    if found != sha256 or len(data) != size:
        raise TrustError(
            "integrity", f"{path} has sha256 {found} ({len(data)} bytes); the signed index says {sha256} ({size} bytes)"
        )
    if not path.endswith(".json"):
        return data, None  # a page or an asset: its hash is all there is to check
    value = _json(data, path)
    identity = value.get("release") if isinstance(value, dict) else None
    if identity != release.to_dict():
        raise TrustError("integrity", f"{path} belongs to release {identity}; expected {release.to_dict()}")
    return data, value


def _keys_step(data: bytes, version: int, signers: Mapping[str, PublicKey]) -> KeysDocument:
    """Open keys/<version>.dsse.json with the keys allowed to sign it."""
    path = f"keys/{version}.dsse.json"
    payload, _ = open_envelope(_json(data, path), KEYS_PAYLOAD_TYPE, signers, path)
    document = KeysDocument.from_bytes(payload, path)
    if document.version != version:
        raise TrustError("keys", f"{path} says it is version {document.version}; expected {version}")
    return document


def verify_chain(documents: Sequence[bytes]) -> KeysDocument:
    """Check a whole key chain from its first document, as a publisher holds it.

    The first document must be signed by one of its own active keys; each later
    one by an active key of the one before.

    Args:
        documents: the DSSE envelopes of keys/1, keys/2, ... in order.

    Returns:
        The last document.

    Raises:
        TrustError: a broken link.
    """
    current: KeysDocument | None = None
    for version, data in enumerate(documents, start=1):
        if current is None:
            try:
                unverified = base64.b64decode(_json(data, "keys/1.dsse.json")["payload"])
            except (KeyError, TypeError, ValueError, binascii.Error) as error:
                raise TrustError("keys", f"keys/1.dsse.json: not a DSSE envelope ({error})") from error
            try:
                signers = KeysDocument.from_bytes(unverified, "keys/1.dsse.json").active()
            except SignatureError as error:
                raise TrustError("keys", error.diagnostic()) from error
        else:
            signers = current.active()
        try:
            current = _keys_step(data, version, signers)
        except SignatureError as error:
            raise TrustError("keys", error.diagnostic().removeprefix("not trusted: keys: ")) from error
    if current is None:
        raise TrustError("keys", "the key chain is empty")
    return current


def _keys_chain(fetch: Fetch, pinned: Mapping[str, PublicKey]) -> tuple[KeysDocument, int]:
    """Walk keys/1.dsse.json, keys/2.dsse.json, ... from the first one a pinned key signed."""
    current: KeysDocument | None = None
    for version in range(1, _MAX_KEY_DOCUMENTS + 1):
        path = f"keys/{version}.dsse.json"
        try:
            data = fetch(path)
        except FetchError:
            break
        signers = pinned if current is None else current.active()
        try:
            current = _keys_step(data, version, signers)
        except SignatureError as error:
            if current is None:
                continue  # the pinned key enters the chain later
            raise TrustError(
                "keys", f"{path} is not signed by an active key of keys/{version - 1}: {error.diagnostic()}"
            ) from error
    if current is None:
        raise TrustError("keys", f"no keys document is signed by a pinned key ({', '.join(sorted(pinned))})")
    return current, current.version


def establish(fetch: Fetch, expected: Expected) -> TrustedPublication:
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
        raise TrustError("signature", "the publication is unsigned: no index.dsse.json") from error
    try:
        envelope = json.loads(data)
    except (ValueError, RecursionError) as error:  # RecursionError: nested deeper than Python's stack
        raise TrustError("signature", f"index.dsse.json is not JSON ({error})") from error
    keys, version = _keys_chain(fetch, pinned)
    active = keys.active()
    try:
        payload, signed_by = open_envelope(envelope, INDEX_PAYLOAD_TYPE, active, "index.dsse.json")
    except SignatureError as error:
        signatures = envelope.get("signatures") if isinstance(envelope, dict) else None
        signers = [s.get("keyid") for s in signatures if isinstance(s, dict)] if isinstance(signatures, list) else []
        for keyid in signers:
            entry = keys.entry(str(keyid))
            if entry is not None and entry.status == "revoked":
                raise TrustError(
                    "signature", f"index.dsse.json is signed by key {keyid}, revoked in keys/{version} ({entry.reason})"
                ) from error
        raise TrustError("signature", error.diagnostic()) from error
    try:
        index_json = fetch("index.json")
    except FetchError as error:
        raise TrustError("integrity", f"index.json: {error.diagnostic()}") from error
    if index_json != payload:
        raise TrustError("integrity", "index.json differs from the payload of index.dsse.json")
    data = _json(payload, "index.json")
    try:
        check_document("index", data, "index.json")
    except LayoutError as error:
        raise TrustError("integrity", error.diagnostic()) from error
    index = Index.from_dict(data)
    release = index.release
    for name, want in (("publisher", expected.publisher), ("product", expected.product), ("stream", expected.stream)):
        found = getattr(release, name)
        if found != want:
            raise TrustError("identity", f"{name} is {found!r}; expected {want!r}")
    if keys.publisher != release.publisher:
        raise TrustError(
            "identity", f"keys/{version} belongs to publisher {keys.publisher!r}; the index to {release.publisher!r}"
        )
    issued, expires = parse_time(index.issued), parse_time(index.expires)
    if expected.at < issued:
        raise TrustError("expiry", f"issued {index.issued}, after the checking time {expected.at:%Y-%m-%dT%H:%M:%SZ}")
    if expected.at >= expires:
        raise TrustError("expiry", f"expired at {index.expires} (checked at {expected.at:%Y-%m-%dT%H:%M:%SZ})")
    if expected.last_serial is not None and release.serial < expected.last_serial:
        raise TrustError("rollback", f"serial {release.serial} is lower than {expected.last_serial}, the last one seen")
    if expected.last_keys_version is not None and version < expected.last_keys_version:
        raise TrustError(
            "rollback",
            f"the newest keys document is keys/{version}.dsse.json; keys/{expected.last_keys_version}.dsse.json "
            "was seen before (a newer document, perhaps a revocation, is withheld)",
        )
    signer = signed_by[0]
    files = {f.path: (f.sha256, f.size) for f in index.files}
    entry = keys.entry(signer)
    trusted = TrustedPublication(index, signer, version, None if entry is None else entry.label, fetch, files)
    if expected.check_all_files:
        _check_everything(trusted, active[signer])
    return trusted


def _check_schema(path: str, value: Any) -> None:
    """Hold a published JSON file of a kind that has a schema to it.

    The signature says who wrote a file, not that it is well formed.
    """
    kind = path.split("/", 1)[0].removesuffix(".json")
    if path.endswith(".json") and kind in KINDS:
        try:
            check_document(kind, value, path)
        except LayoutError as error:
            raise TrustError("integrity", error.diagnostic()) from error


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
            raise TrustError("integrity", f"{path}.sig: {error.diagnostic()}") from error
        if not verify_file(key, data, signature):
            raise TrustError("integrity", f"{path}.sig does not verify with key {publication.keyid}")
    try:
        envelope = _json(fetch("attestation.intoto.dsse.json"), "attestation.intoto.dsse.json")
        payload, _ = open_envelope(
            envelope, INTOTO_PAYLOAD_TYPE, {publication.keyid: key}, "attestation.intoto.dsse.json"
        )
    except (FetchError, SignatureError) as error:
        raise TrustError("integrity", error.diagnostic()) from error
    statement = _json(payload, "the in-toto statement")
    listed = {path: sha for path, (sha, _) in publication.files.items()}
    listed["index.json"] = hashlib.sha256(fetch("index.json")).hexdigest()
    if (
        not isinstance(statement, dict)
        or statement.get("_type") != STATEMENT_TYPE
        or statement.get("predicateType") != PREDICATE_TYPE
        or _subjects(statement.get("subject")) != listed
    ):
        raise TrustError("integrity", "attestation.intoto.dsse.json does not state the files the index lists")


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
