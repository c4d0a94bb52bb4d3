"""The verifier's first stage: decide whether a publication can be trusted.

Nothing here is believed before it is checked, in this order (python-tuf's
trusted metadata set is the model: each file is read with a bound, checked,
and only then used to read the next):

1. **keys**: the key chain ``keys/1.dsse.json`` … ``keys/N.dsse.json``.
   A verifier that remembers a chain (its state) continues it: each
   remembered document must be served unchanged (another one is a fork), none
   may be withheld (``rollback``), and it reads on from the newest. Otherwise
   the first document signed by a pinned key starts the chain. Each later
   document must be signed by an active release key of the one before and by
   every key it adds, and may not make a revoked key active again. Only a
   missing ``keys/N+1`` ends the chain; any other failure to read it is an error.
2. **signature**: ``index.dsse.json`` must be signed by an active release key
   of the newest keys document (a revoked key is named as such), and
   ``index.json`` must be exactly its payload, canonical JSON, naming that key.
3. **identity**: the publisher, product and stream the verifier asked for.
4. **expiry**: issued ≤ the checking time < expires.
5. **rollback**: the serial must not be lower than the last one the verifier
   trusted, nor the same with another index; **history**: a release that
   names the trusted serial as its ``previous`` must name the trusted index
   (a gap, releases not seen between, is allowed and reported).
6. **freshness** (when asked for): ``timestamp.dsse.json``, signed by a key of
   the timestamp role, names this index and is valid now (:mod:`sevref.timestamp`).
7. **integrity**: every file the index lists has its sha256 and size; each
   JSON file carries the index's release identity and its detached ``.sig``
   verifies (the site's pages and assets are pinned by the index alone); the
   index and ``changes.json`` name the same previous release, or neither names
   one; the in-toto statement names the same files and this release.

A file that cannot be read at all fails ``fetch``. Each failure is a
:class:`~sevref.errors.TrustError` naming its :class:`~sevref.errors.Check`.
This module does no I/O: it reads the publication through a ``fetch``
function, which is given a size limit for each file (:mod:`sevref.limits`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sevref import strictjson
from sevref.errors import (
    Check,
    ConfigError,
    FetchError,
    JSONFormatError,
    LayoutError,
    NotFoundError,
    SignatureError,
    TrustError,
)
from sevref.history import Changes, link_problem
from sevref.keychain import KeysDocument, KeyStatus, Role, open_keys_document, read_unverified, signed_sha256
from sevref.limits import (
    MAX_FETCH_BYTES,
    MAX_INDEX_ENVELOPE_BYTES,
    MAX_KEYS_DOCUMENT_BYTES,
    MAX_KEYS_DOCUMENTS,
    MAX_SIGNATURE_FILE_BYTES,
    MAX_TIMESTAMP_BYTES,
    attestation_limit,
)
from sevref.records import Index, Release
from sevref.records.files import schema_of, signed_beside
from sevref.serialize import canonical
from sevref.sign import (
    INDEX_PAYLOAD_TYPE,
    INTOTO_PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    PublicKey,
    key_id,
    open_envelope,
    parse_envelope,
    verify_file,
)
from sevref.state import (
    ChainLink,
    PublisherState,
    StreamState,
    TrustedKey,
    check_chain,
    check_history,
    check_stream,
    stream_name,
)
from sevref.timestamp import TIMESTAMP_PATH, Timestamp, open_timestamp
from sevref.validate import check_document
from sevref.values import format_time

__all__ = ["Fetch", "TrustAnchor", "TrustedPublication", "establish", "open_unverified"]

Fetch = Callable[[str, int], bytes]
"""Reads a file of the publication by its relative path, at most ``limit + 1`` bytes of it.

It raises NotFoundError when the file is not there (a missing file, HTTP 404)
and FetchError when it cannot be read (any other failure).
"""


@dataclass(frozen=True)
class TrustAnchor:
    """What the verifier pins, asks for and remembers: everything a publication is checked against."""

    keys: Sequence[PublicKey]
    """Pinned public keys: they start a key chain the state does not know."""
    publisher: str
    """Publisher id."""
    product: str
    """Product id."""
    stream: str
    """Stream id."""
    at: datetime
    """When to check validity."""
    check_all_files: bool = True
    """Check every listed file (False: only those read later, as they are read)."""
    known_chain: PublisherState | None = None
    """The publisher's key chain as the verifier's state remembers it."""
    keys_of_others: Mapping[str, str] = field(default_factory=dict)
    """Key id to publisher, for every key the state trusts in another publisher's chain: such a key, pinned,
    cannot start this publisher's chain (a pin is a publisher's, not a key for any name)."""
    known_release: StreamState | None = None
    """The newest release of the stream the state remembers."""
    require_timestamp: bool = False
    """Refuse a release without a valid timestamp (``--require-timestamp``)."""
    max_age: timedelta | None = None
    """Refuse a timestamp older than this (``--max-age``; implies a timestamp is required)."""


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
    chain: PublisherState = field(default_factory=lambda: PublisherState((), ()))
    """The key chain as trusted in this run, for the verifier's state."""
    index_sha256: str = ""
    """The sha256 of ``index.json``."""
    timestamp: Timestamp | None = None
    """The timestamp checked, when freshness was asked for."""
    history_gap: str | None = None
    """A note when releases between the one the state trusted and this one were not seen (or it names none)."""
    verified: bool = True
    """False for a publication read without any check of who wrote it (:func:`open_unverified`)."""
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def release_state(self) -> StreamState:
        """What the verifier's state remembers of this release."""
        return StreamState(self.index.release.serial, self.index_sha256)

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
            self._cache[path] = _check_schema(path, value)
        return self._cache[path]

    def forget(self, path: str) -> None:
        """Drop a file read before from memory (it is read and checked again if asked for).

        Args:
            path: its path in the index.
        """
        self._cache.pop(path, None)

    def has(self, path: str) -> bool:
        """Tell whether the index lists a file.

        Args:
            path: the path.

        Returns:
            True when listed.
        """
        return path in self.files


def _read(fetch: Fetch, path: str, limit: int) -> bytes:
    """A file of at most ``limit`` bytes; NotFoundError passes through for the caller to judge."""
    try:
        data = fetch(path, limit)
    except NotFoundError:
        raise
    except FetchError as error:
        raise TrustError(Check.FETCH, error.diagnostic()) from error
    if len(data) > limit:
        raise TrustError(Check.FETCH, f"{path}: more than {limit} bytes, the most sevref reads of it")
    return data


def _json(data: bytes, what: str) -> Any:
    try:
        return strictjson.loads(data, what)
    except JSONFormatError as error:
        raise TrustError(Check.INTEGRITY, error.diagnostic()) from error


def _checked(fetch: Fetch, path: str, files: Mapping[str, tuple[str, int]], release: Release) -> tuple[bytes, Any]:
    if path not in files:
        raise TrustError(Check.INTEGRITY, f"{path} is not listed in the signed index")
    sha256, size = files[path]
    try:
        data = fetch(path, min(size, MAX_FETCH_BYTES))
    except NotFoundError as error:
        raise TrustError(
            Check.INTEGRITY, f"{path} is listed in the signed index but missing: {error.diagnostic()}"
        ) from error
    except FetchError as error:
        raise TrustError(Check.FETCH, error.diagnostic()) from error
    found = hashlib.sha256(data).hexdigest()
    if found != sha256 or len(data) != size:
        # Of a file longer than listed only size + 1 bytes were read: there is no sha256 of the whole to name.
        what = f"more than {size} bytes" if len(data) > size else f"sha256 {found} ({len(data)} bytes)"
        raise TrustError(Check.INTEGRITY, f"{path} has {what}; the signed index says {sha256} ({size} bytes)")
    if not path.endswith(".json"):
        return data, None  # a page or an asset: its hash is all there is to check
    value = _json(data, path)
    identity = value.get("release") if isinstance(value, dict) else None
    if identity != release.to_dict():
        raise TrustError(Check.INTEGRITY, f"{path} belongs to release {identity}; expected {release.to_dict()}")
    return data, value


# --------------------------------------------------------------------------- 1. keys


def _keys_document(fetch: Fetch, version: int) -> bytes | None:
    """``keys/<version>.dsse.json``, or None when it is not there (the chain ends)."""
    try:
        return _read(fetch, f"keys/{version}.dsse.json", MAX_KEYS_DOCUMENT_BYTES)
    except NotFoundError:
        return None


def _entered(data: bytes, version: int, pinned: Mapping[str, PublicKey]) -> KeysDocument | None:
    """The document where a pinned key enters the chain, or None when no pinned key signed this one."""
    try:
        return open_keys_document(data, version, pinned)
    except TrustError:
        raise
    except SignatureError:
        return None  # the pinned key enters the chain later


def _next(data: bytes, version: int, current: KeysDocument, revoked: frozenset[str]) -> KeysDocument:
    """The document after a trusted one."""
    try:
        return open_keys_document(data, version, current.active(Role.RELEASE), current, revoked)
    except TrustError:
        raise
    except SignatureError as error:
        raise TrustError(
            Check.KEYS,
            f"keys/{version}.dsse.json is not signed by an active key of keys/{version - 1} (release role): "
            f"{error.diagnostic()}",
        ) from error


def _link(data: bytes, version: int) -> ChainLink:
    """What the state remembers of a keys document: the sha256 of its payload (of the bytes, if it has none).

    A document that is no envelope never gets into a state: reading it fails next.
    """
    served = hashlib.sha256(data).hexdigest()
    try:
        return ChainLink(version, signed_sha256(data, version), served)
    except SignatureError:
        return ChainLink(version, served, served)


def _remembered(data: bytes, version: int) -> KeysDocument:
    """A document whose sha256 the state remembers: trusted by that alone."""
    try:
        return read_unverified(data, version)
    except SignatureError as error:
        raise TrustError(Check.KEYS, f"keys/{version}.dsse.json, trusted before: {error.diagnostic()}") from error


def _keys_chain(fetch: Fetch, expected: TrustAnchor) -> tuple[KeysDocument, PublisherState]:
    """Walk the key chain: on from the state's, or from the first document a pinned key signed."""
    pinned = {key_id(k): k for k in expected.keys}
    known = expected.known_chain
    if known is None:
        _pinned_for(expected, pinned)
    links: list[ChainLink] = []
    revoked = known.revoked if known else frozenset()
    current: KeysDocument | None = None
    version = known.chain[0].version if known and known.chain else 1
    for _ in range(MAX_KEYS_DOCUMENTS):
        data = _keys_document(fetch, version)
        if data is None:
            break
        link = _link(data, version)
        remembered = known.sha256(version) if known else None
        if remembered is not None:
            links.append(link)
            if not link.matches(remembered):
                break  # a fork: check_chain names it
            current = _remembered(data, version)
        elif current is None:
            current = _entered(data, version, pinned)
            links.extend([link] if current is not None else [])
        else:
            current = _next(data, version, current, revoked)
            links.append(link)
        revoked |= current.revoked() if current is not None else frozenset()
        version += 1
    else:
        raise TrustError(
            Check.KEYS, f"more than {MAX_KEYS_DOCUMENTS} keys documents; sevref reads at most that many a run"
        )
    active = () if current is None else tuple(_trusted_keys(current))
    seen = PublisherState(tuple(links), active, revoked)
    check_chain(expected.publisher, known, seen)
    if current is None:
        raise TrustError(Check.KEYS, f"no keys document is signed by a pinned key ({', '.join(sorted(pinned))})")
    return current, seen


def _pinned_for(expected: TrustAnchor, pinned: Mapping[str, PublicKey]) -> None:
    """Refuse to start a publisher's chain with a key the state trusts as another publisher's."""
    for keyid in sorted(pinned):
        owner = expected.keys_of_others.get(keyid)
        if owner is not None:
            raise TrustError(
                Check.KEYS,
                f"pinned key {keyid} is publisher {owner!r}'s (the state trusts it in that key chain); it cannot "
                f"start a key chain for publisher {expected.publisher!r}: pin {expected.publisher!r}'s own key",
            )


def _trusted_keys(document: KeysDocument) -> list[TrustedKey]:
    return [
        TrustedKey(k.keyid, str(k.algorithm), k.public_key, tuple(str(r) for r in k.roles))
        for k in document.keys
        if k.status is KeyStatus.ACTIVE
    ]


# --------------------------------------------------------------------------- 2. signature


def _index_envelope(fetch: Fetch) -> Any:
    """``index.dsse.json``, parsed; a publication without one is unsigned if it has ``index.json``."""
    try:
        data = _read(fetch, "index.dsse.json", MAX_INDEX_ENVELOPE_BYTES)
    except NotFoundError as missing:
        try:
            fetch("index.json", 0)  # is there a publication at all?
        except NotFoundError:
            raise TrustError(
                Check.FETCH, f"{missing.diagnostic()}; no index.json either: no publication there"
            ) from missing
        except FetchError as error:
            raise TrustError(Check.FETCH, error.diagnostic()) from error
        raise TrustError(
            Check.SIGNATURE, "the publication is unsigned: no index.dsse.json (it has an index.json)"
        ) from missing
    try:
        return parse_envelope(data, "index.dsse.json")
    except SignatureError as error:
        raise TrustError(Check.SIGNATURE, error.diagnostic()) from error


def _signed_index(envelope: Any, keys: KeysDocument, revoked: frozenset[str]) -> tuple[bytes, list[str]]:
    """The index envelope's payload and the active release keys that signed it; a revoked signer is named."""
    try:
        return open_envelope(envelope, INDEX_PAYLOAD_TYPE, keys.active(Role.RELEASE), "index.dsse.json")
    except SignatureError as error:
        signatures = envelope.get("signatures") if isinstance(envelope, dict) else None
        signers = [s.get("keyid") for s in signatures if isinstance(s, dict)] if isinstance(signatures, list) else []
        for keyid in signers:
            # Named as revoked only when its signature verifies: junk under its id is no signature of it. A key
            # revoked before and no longer listed has nothing to check with: the plain error says it.
            entry = keys.entry(keyid) if isinstance(keyid, str) and keyid in revoked else None
            if entry is not None and _signs(envelope, entry.keyid, entry.public(f"keys/{keys.version}")):
                raise TrustError(
                    Check.SIGNATURE,
                    f"index.dsse.json is signed by key {keyid}, revoked in keys/{keys.version} ({entry.reason})",
                ) from error
        raise TrustError(Check.SIGNATURE, error.diagnostic()) from error


def _signs(envelope: Any, keyid: str, key: PublicKey) -> bool:
    """Tell whether a key's signature on the index envelope verifies (only to name a revoked signer truly)."""
    try:
        open_envelope(envelope, INDEX_PAYLOAD_TYPE, {keyid: key}, "index.dsse.json")
    except SignatureError:
        return False
    return True


def _index(fetch: Fetch, payload: bytes) -> tuple[bytes, Index]:
    """``index.json``: exactly the signed payload, canonical JSON, valid against its schema."""
    try:
        index_json = fetch("index.json", len(payload))  # one byte more than the payload is enough to differ
    except NotFoundError as error:
        raise TrustError(Check.INTEGRITY, f"index.json is missing: {error.diagnostic()}") from error
    except FetchError as error:
        raise TrustError(Check.FETCH, error.diagnostic()) from error
    if index_json != payload:
        raise TrustError(Check.INTEGRITY, "index.json differs from the payload of index.dsse.json")
    data = _json(payload, "index.json")
    try:
        read = check_document("index", data, "index.json")
        canonical_form = canonical(data)
        index = Index.from_dict(read)
    except (LayoutError, SignatureError, ConfigError) as error:  # ConfigError: a time that is no date
        raise TrustError(Check.INTEGRITY, error.diagnostic()) from error
    if canonical_form != payload:
        raise TrustError(
            Check.INTEGRITY, "index.json is not canonical JSON (RFC 8785); expected the bytes sevref writes"
        )
    return payload, index


def _signer(index: Index, verified: list[str], keys: KeysDocument) -> str:
    """The key the index names as its signer, which must be one that verified, as the chain lists it."""
    signing = index.signing
    if signing is None:
        raise TrustError(Check.SIGNATURE, "index.json says the release is unsigned (signing: null), yet it is signed")
    if signing.keyid not in verified:
        raise TrustError(
            Check.SIGNATURE,
            f"index.json names signing key {signing.keyid}; index.dsse.json is signed by {', '.join(verified)}",
        )
    entry = keys.entry(signing.keyid)
    if entry is None or str(entry.algorithm) != signing.algorithm:
        listed = None if entry is None else str(entry.algorithm)
        raise TrustError(
            Check.SIGNATURE, f"index.json names algorithm {signing.algorithm}; keys/{keys.version} says {listed}"
        )
    if signing.keys_version > keys.version:
        raise TrustError(
            Check.ROLLBACK,
            f"index.json was signed under keys/{signing.keys_version}.dsse.json; the chain served ends at "
            f"keys/{keys.version}.dsse.json (a newer document is withheld)",
        )
    return signing.keyid


# --------------------------------------------------------------------------- 3-6. the release


def _check_release(index: Index, keys: KeysDocument, expected: TrustAnchor) -> None:
    """Identity and expiry: the release is the one asked for, its key chain the publisher's, and it is current."""
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


def _freshness(
    fetch: Fetch, expected: TrustAnchor, keys: KeysDocument, index: Index, index_json: bytes
) -> Timestamp | None:
    """The timestamp, when the verifier asks for freshness."""
    if not expected.require_timestamp and expected.max_age is None:
        return None
    try:
        data = _read(fetch, TIMESTAMP_PATH, MAX_TIMESTAMP_BYTES)
    except NotFoundError as error:
        raise TrustError(
            Check.FRESHNESS, f"no {TIMESTAMP_PATH} ({error.diagnostic()}); a timestamp was asked for"
        ) from error
    return open_timestamp(data, keys.active(Role.TIMESTAMP), index.release, index_json, expected.at, expected.max_age)


def establish(fetch: Fetch, expected: TrustAnchor) -> TrustedPublication:
    """Run every check on a publication.

    Args:
        fetch: reads the publication's files.
        expected: what the verifier pins, asks for and remembers.

    Returns:
        The trusted publication.

    Raises:
        TrustError: the first check that fails.
    """
    envelope = _index_envelope(fetch)
    keys, chain = _keys_chain(fetch, expected)
    payload, verified = _signed_index(envelope, keys, chain.revoked)
    index_json, index = _index(fetch, payload)
    signer = _signer(index, verified, keys)
    _check_release(index, keys, expected)
    release = index.release
    index_sha256 = hashlib.sha256(index_json).hexdigest()
    name = stream_name(release.publisher, release.product, release.stream)
    check_stream(name, expected.known_release, StreamState(release.serial, index_sha256))
    gap = check_history(name, expected.known_release, release.serial, index.previous)
    stamp = _freshness(fetch, expected, keys, index, index_json)
    files = {f.path: (f.sha256, f.size) for f in index.files}
    if len(files) != len(index.files):
        twice = next(f.path for f in index.files if sum(g.path == f.path for g in index.files) > 1)
        raise TrustError(Check.INTEGRITY, f"index.json lists {twice} twice; expected each file once")
    entry = keys.entry(signer)
    label = None if entry is None else entry.label
    trusted = TrustedPublication(index, signer, keys.version, label, fetch, files, chain, index_sha256, stamp, gap)
    if expected.check_all_files:
        _check_everything(trusted, keys.active(Role.RELEASE)[signer], index_json)
    return trusted


def open_unverified(fetch: Fetch) -> TrustedPublication:
    """Read a publication without checking who wrote it: its index, and each file against the index as read.

    For ``sevref diff`` without trust options and ``sevref build --previous``:
    every file read must still be what the index lists (sha256, size, release
    identity, schema), but nothing says the index is the publisher's.

    Args:
        fetch: reads the publication's files.

    Returns:
        The publication, with ``verified`` False.

    Raises:
        TrustError: no index, or one that is not valid.
    """
    try:
        data = _read(fetch, "index.json", MAX_INDEX_ENVELOPE_BYTES)
    except NotFoundError as error:
        raise TrustError(Check.FETCH, f"no index.json: {error.diagnostic()}") from error
    value = _json(data, "index.json")
    try:
        index = Index.from_dict(check_document("index", value, "index.json"))
    except (LayoutError, SignatureError, ConfigError) as error:
        raise TrustError(Check.INTEGRITY, error.diagnostic()) from error
    files = {f.path: (f.sha256, f.size) for f in index.files}
    keyid = "" if index.signing is None else index.signing.keyid
    sha256 = hashlib.sha256(data).hexdigest()
    return TrustedPublication(index, keyid, 0, None, fetch, files, index_sha256=sha256, verified=False)


# --------------------------------------------------------------------------- 7. integrity


def _check_schema(path: str, value: Any) -> Any:
    """Hold a published JSON file of a kind that has a schema to it; the file as this sevref reads it.

    The signature says who wrote a file, not that it is well formed.
    """
    kind = schema_of(path)
    if kind is None:
        return value
    try:
        return check_document(kind, value, path)
    except LayoutError as error:
        raise TrustError(Check.INTEGRITY, error.diagnostic()) from error


def _signature(fetch: Fetch, path: str) -> bytes:
    try:
        return _read(fetch, f"{path}.sig", MAX_SIGNATURE_FILE_BYTES)
    except NotFoundError as error:
        raise TrustError(Check.INTEGRITY, f"{path}.sig is missing: {error.diagnostic()}") from error


def _check_everything(publication: TrustedPublication, key: PublicKey, index_json: bytes) -> None:
    fetch = publication.fetch
    changes = None
    for path in [*publication.files, "index.json"]:
        if path == "index.json":
            data = index_json
        else:
            data, value = _checked(fetch, path, publication.files, publication.index.release)
            read = _check_schema(path, value)  # parsed values are not kept: a publication can be large
            if path == "changes.json":
                changes = Changes.from_dict(read)
        if not signed_beside(path):
            continue  # pages and assets have no .sig: the signed index pins them
        if not verify_file(key, data, _signature(fetch, path)):
            raise TrustError(Check.INTEGRITY, f"{path}.sig does not verify with key {publication.keyid}")
    problem = link_problem(publication.index, changes)
    if problem is not None:
        raise TrustError(Check.INTEGRITY, problem)
    _check_statement(publication, key, index_json)


def _predicate(index: Index, index_sha256: str, counts: object) -> dict[str, object]:
    """The release predicate sevref writes for an index (``edge/publish.sign_publication``).

    ``counts`` is the index's own, as served: an index of a newer minor may count more than this sevref knows.
    """
    data = index.to_dict()
    return {
        "release": index.release.to_dict(),
        "issued": data["issued"],
        "expires": data["expires"],
        "index": {"path": "index.json", "sha256": index_sha256},
        "counts": counts,
        "calculator": f"sevref {index.sevref}",
    }


def _check_statement(publication: TrustedPublication, key: PublicKey, index_json: bytes) -> None:
    """The in-toto statement: signed by the release's key, naming exactly the listed files and this release."""
    path = "attestation.intoto.dsse.json"
    try:
        data = _read(publication.fetch, path, attestation_limit(len(index_json)))
    except NotFoundError as error:
        raise TrustError(Check.INTEGRITY, f"{path} is missing: {error.diagnostic()}") from error
    try:
        payload, _ = open_envelope(parse_envelope(data, path), INTOTO_PAYLOAD_TYPE, {publication.keyid: key}, path)
    except SignatureError as error:
        raise TrustError(Check.INTEGRITY, error.diagnostic()) from error
    statement = _json(payload, "the in-toto statement")
    listed = {path: sha for path, (sha, _) in publication.files.items()}
    listed["index.json"] = publication.index_sha256
    if not isinstance(statement, dict) or _subjects(statement.get("subject")) != listed:
        raise TrustError(Check.INTEGRITY, f"{path} does not state the files the index lists")
    if (statement.get("_type"), statement.get("predicateType")) != (STATEMENT_TYPE, PREDICATE_TYPE):
        raise TrustError(
            Check.INTEGRITY,
            f"{path}: _type {statement.get('_type')!r} and predicateType {statement.get('predicateType')!r}; "
            f"expected {STATEMENT_TYPE!r} and {PREDICATE_TYPE!r}",
        )
    counts = _json(index_json, "index.json")["counts"]  # the signed index, checked before: its counts as served
    if statement.get("predicate") != _predicate(publication.index, publication.index_sha256, counts):
        raise TrustError(Check.INTEGRITY, f"{path}: the predicate does not state this release and its index")


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
    return subjects if len(subjects) == len(subject) else None  # a name twice is no list of files
