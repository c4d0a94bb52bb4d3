"""The publisher's key chain: keys documents, and the one rule that accepts a signer.

A publisher's keys live in a chain of keys documents, ``keys/1.dsse.json``,
``keys/2.dsse.json``, … Each names the publisher's keys, active or revoked, and
each after the first is signed by an active key of the one before and by every
key it adds (their holders agree). A verifier pinned to an old key follows the
chain to the current keys; a revoked key is refused.

This module does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sevref import strictjson
from sevref.errors import Check, JSONFormatError, LayoutError, SignatureError, TrustError
from sevref.serialize import canonical
from sevref.sign import (
    KEYS_PAYLOAD_TYPE,
    Algorithm,
    PublicKey,
    Signer,
    algorithm_of,
    envelope,
    key_id,
    load_public_key,
    open_envelope,
    parse_envelope,
)
from sevref.validate import check_document

__all__ = [
    "KEYS_SCHEMA",
    "KeyEntry",
    "KeyStatus",
    "KeysDocument",
    "Role",
    "first_document",
    "next_document",
    "open_keys_document",
    "read_unverified",
    "signed_sha256",
    "verify_chain",
]

KEYS_SCHEMA = "urn:sevref:schema:keys:1"
"""The ``schema`` value of a keys document."""


class KeyStatus(enum.StrEnum):
    """Whether a key may sign."""

    ACTIVE = "active"
    """It may sign what its roles allow."""
    REVOKED = "revoked"
    """It may sign nothing; what it signed is refused."""


class Role(enum.StrEnum):
    """What an active key may sign."""

    RELEASE = "release"
    """Releases (``index.dsse.json``, the in-toto statement, the ``.sig`` files) and the next keys document."""
    TIMESTAMP = "timestamp"
    """``timestamp.dsse.json`` only: an online key, so that the release key can stay offline."""


DEFAULT_ROLES = (Role.RELEASE,)
"""The roles of a key listed without any (documents written before roles existed)."""


@dataclass(frozen=True)
class KeyEntry:
    """One key of a keys document."""

    keyid: str
    """Its id."""
    algorithm: Algorithm
    """Its algorithm."""
    public_key: str
    """PEM SubjectPublicKeyInfo."""
    status: KeyStatus
    """Active or revoked."""
    reason: str | None = None
    """Why it was revoked."""
    label: str | None = None
    """A name for people (e.g. "DEMO KEY: do not trust")."""
    roles: tuple[Role, ...] = DEFAULT_ROLES
    """What it may sign, sorted."""

    @classmethod
    def of(cls, signer: Signer, label: str | None = None, roles: Sequence[Role] = DEFAULT_ROLES) -> KeyEntry:
        """The active entry of a signer's key.

        Args:
            signer: the key.
            label: its label.
            roles: what it may sign.

        Returns:
            The entry.
        """
        pem = signer.public_pem().decode()
        return cls(signer.keyid, signer.algorithm, pem, KeyStatus.ACTIVE, None, label, tuple(sorted(set(roles))))

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "keyid": self.keyid,
            "algorithm": str(self.algorithm),
            "public_key": self.public_key,
            "status": str(self.status),
            "reason": self.reason,
            "label": self.label,
            "roles": [str(role) for role in self.roles],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyEntry:
        """Read the JSON form.

        Args:
            data: a mapping valid against the keys schema.

        Returns:
            The entry.
        """
        roles = tuple(sorted(Role(r) for r in data.get("roles", DEFAULT_ROLES)))
        return cls(
            data["keyid"],
            Algorithm(data["algorithm"]),
            data["public_key"],
            KeyStatus(data["status"]),
            data["reason"],
            data["label"],
            roles,
        )

    def public(self, what: str) -> PublicKey:
        """The public key, held to its id and algorithm label.

        Args:
            what: how to name the document in errors.

        Returns:
            The key.

        Raises:
            SignatureError: not a public key, or another id or algorithm than the entry says.
        """
        key = load_public_key(self.public_key.encode("ascii"), f"{what} key {self.keyid}")
        if key_id(key) != self.keyid:
            raise SignatureError(f"{what}: key id {self.keyid} does not match its public key ({key_id(key)})")
        if algorithm_of(key) is not self.algorithm:
            raise SignatureError(
                f"{what}: key {self.keyid} is labelled {self.algorithm}; its public key is {algorithm_of(key)}"
            )
        return key


@dataclass(frozen=True)
class KeysDocument:
    """The publisher's keys at one version of its key chain."""

    publisher: str
    """Publisher id."""
    version: int
    """1, 2, ...: each signed by an active release key of the previous one."""
    keys: tuple[KeyEntry, ...]
    """The keys, sorted by id."""

    def active(self, role: Role = Role.RELEASE) -> dict[str, PublicKey]:
        """The active keys of a role, by id.

        Args:
            role: the role.

        Returns:
            The keys.
        """
        return {
            k.keyid: k.public(f"keys/{self.version}")
            for k in self.keys
            if k.status is KeyStatus.ACTIVE and role in k.roles
        }

    def revoked(self) -> frozenset[str]:
        """The ids of the keys this document revokes.

        Returns:
            The ids.
        """
        return frozenset(k.keyid for k in self.keys if k.status is KeyStatus.REVOKED)

    def entry(self, keyid: str) -> KeyEntry | None:
        """Find a key by id.

        Args:
            keyid: the id.

        Returns:
            The entry, or None.
        """
        return next((k for k in self.keys if k.keyid == keyid), None)

    def require_signer(self, keyid: str, publisher: str, what: str, role: Role = Role.RELEASE) -> KeyEntry:
        """The one rule of the chain: only an active key of the right role in the publisher's newest document signs.

        Both a release and the next keys document are accepted only under this
        rule with the release role; a timestamp with the timestamp role.

        Args:
            keyid: the key that is to sign.
            publisher: the publisher it signs for.
            what: how to name the key in errors (e.g. ``--signing-key``).
            role: what it is to sign.

        Returns:
            The key's entry.

        Raises:
            SignatureError: another publisher's chain, or a key that is not active in it for that role.
        """
        if self.publisher != publisher:
            raise SignatureError(
                f"keys/{self.version}.dsse.json belongs to publisher {self.publisher!r}, not {publisher!r}"
            )
        entry = self.entry(keyid)
        if entry is None:
            raise SignatureError(
                f"{what} {keyid}: keys/{self.version} does not list it; sign with an active key of the chain"
            )
        if entry.status is not KeyStatus.ACTIVE:
            raise SignatureError(
                f"{what} {keyid}: {entry.status} ({entry.reason}) in keys/{self.version}; "
                "sign with an active key of the chain"
            )
        if role not in entry.roles:
            roles = ", ".join(entry.roles)
            raise SignatureError(
                f"{what} {keyid}: has the roles {roles} in keys/{self.version}; expected a key of the {role} role"
            )
        return entry

    def to_bytes(self) -> bytes:
        """Canonical JSON.

        Returns:
            The bytes that are signed.
        """
        return canonical(
            {
                "schema": KEYS_SCHEMA,
                "publisher": self.publisher,
                "version": self.version,
                "keys": [k.to_dict() for k in sorted(self.keys, key=lambda k: k.keyid)],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, what: str) -> KeysDocument:
        """Read a keys document: strict canonical JSON, valid against ``schema/keys.schema.json``.

        Args:
            data: the payload.
            what: how to name it in errors.

        Returns:
            The document.

        Raises:
            SignatureError: not a keys document.
        """
        try:
            value = strictjson.loads(data, what)
        except JSONFormatError as error:
            raise SignatureError(f"{error} (not a sevref keys document)") from None
        schema = value.get("schema") if isinstance(value, dict) else type(value).__name__
        if schema != KEYS_SCHEMA:
            raise SignatureError(f"{what}: not a sevref keys document (schema is {schema!r}; expected {KEYS_SCHEMA!r})")
        try:
            check_document("keys", value, what)
            if canonical(value) != data:
                raise SignatureError(f"{what}: not canonical JSON (RFC 8785); expected the bytes sevref writes")
        except LayoutError as error:
            raise SignatureError(error.diagnostic()) from None
        ids = [item["keyid"] for item in value["keys"]]
        if len(set(ids)) != len(ids):
            raise SignatureError(f"{what}: a key is listed twice; expected each key once")
        document = cls(value["publisher"], value["version"], tuple(KeyEntry.from_dict(k) for k in value["keys"]))
        for key in document.keys:
            key.public(what)
        return document


def _payload(data: bytes, what: str) -> tuple[Any, bytes]:
    """The parsed envelope and its payload, unverified: for a document already trusted by its sha256."""
    parsed = parse_envelope(data, what)
    try:
        return parsed, base64.b64decode(parsed["payload"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise SignatureError(f"{what}: not a DSSE envelope ({error})") from None


def signed_sha256(data: bytes, version: int) -> str:
    """The sha256 of what a keys document's envelope signs: its payload, however the envelope is written.

    The verifier's state remembers this, not the envelope's own bytes: a mirror
    that writes the same signed document out again (other JSON spacing, the
    other valid form of an ECDSA signature) serves the same document.

    Args:
        data: the envelope's bytes.
        version: its version.

    Returns:
        Lowercase hex.

    Raises:
        SignatureError: not a DSSE envelope.
    """
    return hashlib.sha256(_payload(data, f"keys/{version}.dsse.json")[1]).hexdigest()


def read_unverified(data: bytes, version: int) -> KeysDocument:
    """Read a keys document without checking its signatures.

    For a document trusted by other means: its sha256 is one the verifier
    remembers, or it is the first of a publisher's own chain (then it must be
    signed by the keys it lists, which :func:`open_keys_document` checks next).

    Args:
        data: the envelope's bytes.
        version: its version.

    Returns:
        The document.

    Raises:
        SignatureError: not a keys document.
    """
    path = f"keys/{version}.dsse.json"
    return KeysDocument.from_bytes(_payload(data, path)[1], path)


def open_keys_document(
    data: bytes,
    version: int,
    signers: Mapping[str, PublicKey],
    previous: KeysDocument | None = None,
    revoked: frozenset[str] = frozenset(),
) -> KeysDocument:
    """Open ``keys/<version>.dsse.json`` with the keys allowed to sign it.

    Args:
        data: the envelope's bytes.
        version: the version its file name says.
        signers: the keys that may sign it: the previous document's active
            release keys, or the pinned keys where the chain is entered.
        previous: the previous document, when it is trusted: then every key
            this one adds must have signed it too, and its publisher is the same.
        revoked: the keys revoked earlier in the trusted chain: none may be active again.

    Returns:
        The document.

    Raises:
        SignatureError: not signed by one of ``signers``.
        TrustError: signed, but not a keys document, another version than its file name says, another
            publisher than the previous document's, a key added without its
            signature, or a revoked key active again.
    """
    path = f"keys/{version}.dsse.json"
    parsed = parse_envelope(data, path)
    payload, _ = open_envelope(parsed, KEYS_PAYLOAD_TYPE, signers, path)
    try:
        document = KeysDocument.from_bytes(payload, path)
    except SignatureError as error:  # signed, so no longer a question of who signed it
        raise TrustError(Check.KEYS, error.diagnostic()) from error
    if document.version != version:
        raise TrustError(Check.KEYS, f"{path} says it is version {document.version}; expected {version}")
    if previous is not None:
        if document.publisher != previous.publisher:
            raise TrustError(
                Check.KEYS,
                f"{path} belongs to publisher {document.publisher!r}; keys/{previous.version} to {previous.publisher!r}",
            )
        added = {k.keyid: k.public(path) for k in document.keys if previous.entry(k.keyid) is None}
        try:
            countersigned = set(open_envelope(parsed, KEYS_PAYLOAD_TYPE, added, path)[1]) if added else set()
        except SignatureError:
            countersigned = set()
        if set(added) - countersigned:
            missing = ", ".join(sorted(set(added) - countersigned))
            raise TrustError(Check.KEYS, f"{path} adds key {missing} without its signature; every key added signs")
    again = sorted(k.keyid for k in document.keys if k.status is KeyStatus.ACTIVE and k.keyid in revoked)
    if again:
        raise TrustError(Check.KEYS, f"{path} lists key {again[0]} as active; the trusted chain revoked it before")
    return document


def verify_chain(documents: Sequence[bytes]) -> KeysDocument:
    """Check a whole key chain from its first document, as a publisher holds it.

    The first document must be signed by its own active release keys; each
    later one by an active release key of the one before and by every key it adds.

    Args:
        documents: the DSSE envelopes of keys/1, keys/2, ... in order.

    Returns:
        The last document.

    Raises:
        TrustError: a broken link.
    """
    current: KeysDocument | None = None
    revoked: frozenset[str] = frozenset()
    for version, data in enumerate(documents, start=1):
        try:
            signers = current.active() if current is not None else read_unverified(data, version).active()
            current = open_keys_document(data, version, signers, current, revoked)
        except SignatureError as error:
            raise TrustError(Check.KEYS, error.diagnostic().removeprefix("not trusted: keys: ")) from error
        revoked |= current.revoked()
    if current is None:
        raise TrustError(Check.KEYS, "the key chain is empty")
    return current


def _signed(document: KeysDocument, signers: Sequence[Signer]) -> bytes:
    unique = {s.keyid: s for s in signers}
    return canonical(envelope(document.to_bytes(), KEYS_PAYLOAD_TYPE, list(unique.values())))


def first_document(publisher: str, signer: Signer, label: str | None = None) -> bytes:
    """The first keys document of a chain: the signer's key, signed by itself.

    Args:
        publisher: the publisher id.
        signer: the first key.
        label: its label.

    Returns:
        The DSSE envelope's canonical bytes.
    """
    return _signed(KeysDocument(publisher, 1, (KeyEntry.of(signer, label),)), [signer])


def next_document(
    chain: Sequence[bytes],
    publisher: str,
    signer: Signer,
    added: Sequence[Signer],
    revoked: Mapping[str, str],
    label: str | None,
    roles: Sequence[Role] = DEFAULT_ROLES,
) -> bytes:
    """The next keys document of a chain (the first when ``chain`` is empty).

    The new document is signed by ``signer`` (an active key of the previous
    document, or its own key for the first) and by every key it adds, which
    proves their holder agrees.

    Args:
        chain: the chain so far (DSSE envelopes, oldest first).
        publisher: the publisher id.
        signer: an active key of the last document.
        added: new keys.
        revoked: key id to reason, for keys to revoke.
        label: a label for the keys added (and for ``signer`` in a new chain).
        roles: the roles of the keys added (``signer`` in a new chain has the release role).

    Returns:
        The new document's DSSE envelope, checked as the end of the chain.

    Raises:
        SevrefError: a broken chain, an inactive signer, a key added twice, an unknown key to revoke, or
            revocations that leave no active release key.
    """
    entries: dict[str, KeyEntry] = {}
    if chain:
        last = verify_chain(chain)
        last.require_signer(signer.keyid, publisher, "--signing-key")
        entries = {k.keyid: k for k in last.keys}
    else:
        entries[signer.keyid] = KeyEntry.of(signer, label)
    for key in added:
        if key.keyid in entries:
            raise SignatureError(
                f"--add {key.keyid}: already in the chain ({entries[key.keyid].status}); add new keys only"
            )
        entries[key.keyid] = KeyEntry.of(key, label, roles)
    for keyid, reason in revoked.items():
        if keyid not in entries:
            raise SignatureError(f"--revoke {keyid}: no such key in the chain")
        old = entries[keyid]
        entries[keyid] = KeyEntry(old.keyid, old.algorithm, old.public_key, KeyStatus.REVOKED, reason, old.label)
    document = KeysDocument(publisher, len(chain) + 1, tuple(sorted(entries.values(), key=lambda k: k.keyid)))
    if revoked and not document.active(Role.RELEASE):
        raise SignatureError(
            f"--revoke {', '.join(sorted(revoked))}: would leave keys/{document.version} with no active key of the "
            f"release role, so the chain could never sign a release or grow again; add one (--add, --role release) "
            f"in the same document"
        )
    data = _signed(document, [signer, *added])
    verify_chain([*chain, data])
    return data
