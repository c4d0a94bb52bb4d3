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
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sevref.errors import Check, SignatureError, TrustError
from sevref.serialize import canonical
from sevref.sign import (
    KEYS_PAYLOAD_TYPE,
    Algorithm,
    PublicKey,
    Signer,
    envelope,
    key_id,
    load_public_key,
    open_envelope,
)

__all__ = [
    "KEYS_SCHEMA",
    "KeyEntry",
    "KeyStatus",
    "KeysDocument",
    "first_document",
    "next_document",
    "open_keys_document",
    "verify_chain",
]

KEYS_SCHEMA = "urn:sevref:schema:keys:1"
"""The ``schema`` value of a keys document."""


class KeyStatus(enum.StrEnum):
    """Whether a key may sign."""

    ACTIVE = "active"
    """It may sign releases and the next keys document."""
    REVOKED = "revoked"
    """It may sign nothing; what it signed is refused."""


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

    @classmethod
    def of(cls, signer: Signer, label: str | None = None) -> KeyEntry:
        """The active entry of a signer's key.

        Args:
            signer: the key.
            label: its label.

        Returns:
            The entry.
        """
        return cls(signer.keyid, signer.algorithm, signer.public_pem().decode(), KeyStatus.ACTIVE, None, label)

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
        }


@dataclass(frozen=True)
class KeysDocument:
    """The publisher's keys at one version of its key chain."""

    publisher: str
    """Publisher id."""
    version: int
    """1, 2, ...: each signed by an active key of the previous one."""
    keys: tuple[KeyEntry, ...]
    """The keys, sorted by id."""

    def active(self) -> dict[str, PublicKey]:
        """The active keys by id.

        Returns:
            The keys.
        """
        return {
            k.keyid: load_public_key(k.public_key.encode(), f"keys/{self.version} key {k.keyid}")
            for k in self.keys
            if k.status is KeyStatus.ACTIVE
        }

    def entry(self, keyid: str) -> KeyEntry | None:
        """Find a key by id.

        Args:
            keyid: the id.

        Returns:
            The entry, or None.
        """
        return next((k for k in self.keys if k.keyid == keyid), None)

    def require_signer(self, keyid: str, publisher: str, what: str) -> KeyEntry:
        """The one rule of the chain: only an active key of the publisher's newest document signs.

        Both a release and the next keys document are accepted only under this rule.

        Args:
            keyid: the key that is to sign.
            publisher: the publisher it signs for.
            what: how to name the key in errors (e.g. ``--signing-key``).

        Returns:
            The key's entry.

        Raises:
            SignatureError: another publisher's chain, or a key that is not active in it.
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
        """Read a keys document.

        Args:
            data: canonical JSON.
            what: how to name it in errors.

        Returns:
            The document.

        Raises:
            SignatureError: not a keys document.
        """
        try:
            value = json.loads(data)
        except (ValueError, RecursionError) as error:
            raise SignatureError(f"{what}: not a sevref keys document (not JSON: {error})") from error
        schema = value.get("schema") if isinstance(value, dict) else type(value).__name__
        if schema != KEYS_SCHEMA:
            raise SignatureError(f"{what}: not a sevref keys document (schema is {schema!r}; expected {KEYS_SCHEMA!r})")
        publisher, version, keys = value.get("publisher"), value.get("version"), value.get("keys")
        if not _text(publisher) or type(version) is not int or version < 1 or type(keys) is not list:
            raise SignatureError(
                f"{what}: publisher {publisher!r}, version {version!r}, keys of type {type(keys).__name__}; "
                f"expected text, an integer from 1 and a list"
            )
        document = cls(publisher, version, tuple(_key_entry(item, f"{what} /keys/{n}") for n, item in enumerate(keys)))
        for key in document.keys:
            public = load_public_key(key.public_key.encode(), f"{what} key {key.keyid}")
            if key_id(public) != key.keyid:
                raise SignatureError(f"{what}: key id {key.keyid} does not match its public key ({key_id(public)})")
        return document


def _text(value: Any) -> bool:
    """Tell whether a JSON value is text that can be written out again (no lone surrogate)."""
    if type(value) is not str:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _key_entry(item: Any, what: str) -> KeyEntry:
    """Read one key of a keys document, checking the type of every member."""
    if type(item) is not dict:
        raise SignatureError(f"{what}: {type(item).__name__}; expected a key object")
    for name in ("keyid", "algorithm", "public_key", "status"):
        if not _text(item.get(name)):
            raise SignatureError(f"{what}: {name} is {item.get(name)!r}; expected text")
    for name in ("reason", "label"):
        if item.get(name) is not None and not _text(item[name]):
            raise SignatureError(f"{what}: {name} is {item[name]!r}; expected text or null")
    if not item["public_key"].isascii():
        raise SignatureError(f"{what}: public_key is not ASCII; expected a PEM public key")
    try:
        algorithm = Algorithm(item["algorithm"])
    except ValueError:
        known = ", ".join(a.value for a in Algorithm)
        raise SignatureError(f"{what}: algorithm is {item['algorithm']!r}; expected one of {known}") from None
    try:
        status = KeyStatus(item["status"])
    except ValueError:
        raise SignatureError(
            f"{what}: key {item['keyid']} has status {item['status']!r}; expected active or revoked"
        ) from None
    return KeyEntry(item["keyid"], algorithm, item["public_key"], status, item.get("reason"), item.get("label"))


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:  # RecursionError: nested deeper than Python's stack
        raise TrustError(Check.KEYS, f"{what} is not JSON ({error})") from error


def open_keys_document(data: bytes, version: int, signers: Mapping[str, PublicKey]) -> KeysDocument:
    """Open ``keys/<version>.dsse.json`` with the keys allowed to sign it.

    Args:
        data: the envelope's bytes.
        version: the version its file name says.
        signers: the keys that may sign it.

    Returns:
        The document.

    Raises:
        SignatureError: not signed by one of ``signers``, or not a keys document.
        TrustError: not JSON, or another version than its file name says.
    """
    path = f"keys/{version}.dsse.json"
    payload, _ = open_envelope(_json(data, path), KEYS_PAYLOAD_TYPE, signers, path)
    document = KeysDocument.from_bytes(payload, path)
    if document.version != version:
        raise TrustError(Check.KEYS, f"{path} says it is version {document.version}; expected {version}")
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
                raise TrustError(Check.KEYS, f"keys/1.dsse.json: not a DSSE envelope ({error})") from error
            try:
                signers = KeysDocument.from_bytes(unverified, "keys/1.dsse.json").active()
            except SignatureError as error:
                raise TrustError(Check.KEYS, error.diagnostic()) from error
        else:
            signers = current.active()
        try:
            current = open_keys_document(data, version, signers)
        except SignatureError as error:
            raise TrustError(Check.KEYS, error.diagnostic().removeprefix("not trusted: keys: ")) from error
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

    Returns:
        The new document's DSSE envelope, checked as the end of the chain.

    Raises:
        SevrefError: a broken chain, an inactive signer, an unknown key to revoke.
    """
    entries: dict[str, KeyEntry] = {}
    if chain:
        last = verify_chain(chain)
        last.require_signer(signer.keyid, publisher, "--signing-key")
        entries = {k.keyid: k for k in last.keys}
    else:
        entries[signer.keyid] = KeyEntry.of(signer, label)
    for key in added:
        entries[key.keyid] = KeyEntry.of(key, label)
    for keyid, reason in revoked.items():
        if keyid not in entries:
            raise SignatureError(f"--revoke {keyid}: no such key in the chain")
        old = entries[keyid]
        entries[keyid] = KeyEntry(old.keyid, old.algorithm, old.public_key, KeyStatus.REVOKED, reason, old.label)
    document = KeysDocument(publisher, len(chain) + 1, tuple(sorted(entries.values(), key=lambda k: k.keyid)))
    data = _signed(document, [signer, *added])
    verify_chain([*chain, data])
    return data
