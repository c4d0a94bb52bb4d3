"""Keys, signatures and envelopes: what makes a publication trustworthy.

* Keys: ECDSA P-256 (the default: it verifies everywhere, WebCrypto included),
  ECDSA P-384 or Ed25519, from ``cryptography``. A key's id is the SHA-256 of
  its public key's DER SubjectPublicKeyInfo. ECDSA signatures are deterministic
  (RFC 6979), so the same inputs give the same signed bytes.
* DSSE envelopes (secure-systems-lab/dsse, protocol v1) over exact bytes: the
  release index, the keys documents, and an in-toto Statement v1.
* Detached ``.sig`` files: DER ECDSA over SHA-256 of the file, which
  ``openssl dgst -sha256 -verify KEY.pub -signature FILE.sig FILE`` accepts
  (Ed25519: raw 64 bytes, for ``openssl pkeyutl -verify -rawin``).
* The key chain that says which keys are the publisher's is
  :mod:`sevref.keychain`.

This module does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sevref import strictjson
from sevref.errors import JSONFormatError, SignatureError, printable
from sevref.limits import MAX_ENVELOPE_SIGNATURES
from sevref.pkcs8 import Protection, encrypt_pem, protection
from sevref.serialize import canonical

__all__ = [
    "INDEX_PAYLOAD_TYPE",
    "INTOTO_PAYLOAD_TYPE",
    "KEYS_PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "TIMESTAMP_PAYLOAD_TYPE",
    "Algorithm",
    "KeySigner",
    "PublicKey",
    "Signer",
    "envelope",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "open_envelope",
    "pae",
    "parse_envelope",
    "private_pem",
    "public_pem",
    "sign_file",
    "statement",
    "verify_file",
]

INDEX_PAYLOAD_TYPE = "application/vnd.sevref.index+json"
"""DSSE payloadType of the signed release index."""
KEYS_PAYLOAD_TYPE = "application/vnd.sevref.keys+json"
"""DSSE payloadType of a keys document."""
TIMESTAMP_PAYLOAD_TYPE = "application/vnd.sevref.timestamp+json"
"""DSSE payloadType of a timestamp (``timestamp.dsse.json``)."""
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""DSSE payloadType of an in-toto Statement (in-toto attestation framework)."""
PREDICATE_TYPE = "urn:sevref:predicate:release:1"
"""The in-toto predicateType of sevref's release predicate."""
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
"""in-toto Statement v1 ``_type``."""

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class Algorithm(enum.StrEnum):
    """Signature algorithms sevref signs with."""

    ECDSA_P256 = "ecdsa-p256"
    """ECDSA on P-256 with SHA-256."""
    ECDSA_P384 = "ecdsa-p384"
    """ECDSA on P-384 with SHA-384 (SHA-256 for .sig files, as openssl dgst -sha256 expects)."""
    ED25519 = "ed25519"
    """Ed25519."""


_CURVES = {Algorithm.ECDSA_P256: ec.SECP256R1, Algorithm.ECDSA_P384: ec.SECP384R1}


def _hash(algorithm: Algorithm) -> hashes.HashAlgorithm:
    """The hash an algorithm signs DSSE payloads with: SHA-384 for P-384, else SHA-256."""
    return hashes.SHA384() if algorithm is Algorithm.ECDSA_P384 else hashes.SHA256()


def generate_key(algorithm: Algorithm) -> PrivateKey:
    """Make a new private key.

    Args:
        algorithm: which kind.

    Returns:
        The key.
    """
    if algorithm is Algorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(_CURVES[algorithm]())


def algorithm_of(key: PrivateKey | PublicKey) -> Algorithm:
    """Name a key's algorithm.

    Args:
        key: a private or public key.

    Returns:
        The algorithm.

    Raises:
        SignatureError: a key sevref does not use.
    """
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return Algorithm.ED25519
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        for algorithm, curve in _CURVES.items():
            if isinstance(key.curve, curve):
                return algorithm
    raise SignatureError(f"unsupported key type {type(key).__name__}; expected ECDSA P-256/P-384 or Ed25519")


def public_pem(key: PrivateKey | PublicKey) -> bytes:
    """The PEM SubjectPublicKeyInfo of a key.

    Args:
        key: a private or public key.

    Returns:
        PEM bytes.
    """
    public = key.public_key() if isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: PrivateKey | PublicKey) -> str:
    """A key's id: lowercase hex SHA-256 of its public key's DER SubjectPublicKeyInfo.

    Args:
        key: a private or public key.

    Returns:
        64 hex digits.
    """
    public = key.public_key() if isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def private_pem(key: PrivateKey, passphrase: bytes) -> bytes:
    """Encrypt a private key as PKCS#8 PEM, its passphrase stretched as :mod:`sevref.pkcs8` says.

    Args:
        key: the key.
        passphrase: the passphrase (at least 8 bytes).

    Returns:
        PEM bytes.

    Raises:
        SignatureError: a passphrase shorter than 8 bytes.
    """
    if len(passphrase) < 8:
        raise SignatureError(f"key passphrase: {len(passphrase)} bytes; expected at least 8")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return encrypt_pem(der, passphrase)


def load_private_key(data: bytes, passphrase: bytes | None, what: str) -> KeySigner:
    """Read an encrypted private key.

    Args:
        data: PEM bytes.
        passphrase: its passphrase.
        what: how to name the key in errors (never its contents).

    Returns:
        A signer.

    Raises:
        SignatureError: not a key, an unencrypted key or one in an obsolete form
            (legacy PEM encryption, PBES1), a wrong passphrase, or an unsupported algorithm.
    """
    protected = protection(data, what)
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        # Neither the passphrase nor the key's bytes go into the message or its cause.
        problem = (
            "is encrypted; expected its passphrase"
            if passphrase is None
            else "is not encrypted; expected an encrypted key"
        )
        raise SignatureError(f"{what}: the key {problem}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SignatureError(f"{what}: not a PEM private key, or the passphrase is wrong") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise SignatureError(f"{what}: {type(key).__name__}; expected an ECDSA P-256/P-384 or Ed25519 key")
    algorithm_of(key)
    return KeySigner(key, protected)


def load_public_key(data: bytes, what: str) -> PublicKey:
    """Read a PEM public key.

    Args:
        data: PEM SubjectPublicKeyInfo bytes.
        what: how to name it in errors.

    Returns:
        The key.

    Raises:
        SignatureError: not a supported public key.
    """
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise SignatureError(f"{what}: not a PEM public key ({error})") from error
    if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        raise SignatureError(f"{what}: {type(key).__name__}; expected an ECDSA P-256/P-384 or Ed25519 key")
    algorithm_of(key)
    return key


class Signer(Protocol):
    """Anything that signs bytes: a key file today, a KMS or HSM tomorrow."""

    @property
    def keyid(self) -> str:
        """The key's id."""

    @property
    def algorithm(self) -> Algorithm:
        """The key's algorithm."""

    def public_pem(self) -> bytes:
        """The PEM public key."""

    def sign(self, payload: bytes) -> bytes:
        """Sign bytes (DSSE: the PAE); ECDSA signatures are DER."""

    def sign_sha256(self, payload: bytes) -> bytes:
        """Sign bytes as ``openssl dgst -sha256 -sign`` does."""


class KeySigner:
    """A :class:`Signer` over a key held in memory."""

    def __init__(self, key: PrivateKey, protected: Protection | None = None) -> None:
        """Wrap a private key.

        Args:
            key: the key.
            protected: how its file was encrypted, when it was read from one.
        """
        self._key = key
        self._algorithm = algorithm_of(key)
        self.protection = protected
        """How the key's file stretches its passphrase (None: not read from a file)."""

    @property
    def weak_protection(self) -> str | None:
        """A warning when the key's file is encrypted below today's guidance, else None."""
        if self.protection is None or self.protection.strong:
            return None
        return (
            f"its file is encrypted with {self.protection.describe()}, below today's guidance; "
            "re-encrypt it with sevref key reencrypt"
        )

    @property
    def keyid(self) -> str:
        """The key's id."""
        return key_id(self._key)

    @property
    def algorithm(self) -> Algorithm:
        """The key's algorithm."""
        return self._algorithm

    def public_pem(self) -> bytes:
        """The PEM public key.

        Returns:
            PEM bytes.
        """
        return public_pem(self._key)

    def encrypted_pem(self, passphrase: bytes) -> bytes:
        """The private key, encrypted again (:func:`private_pem`): for ``sevref key reencrypt``.

        Args:
            passphrase: the passphrase to encrypt it with.

        Returns:
            PEM bytes.
        """
        return private_pem(self._key, passphrase)

    def _sign(self, payload: bytes, digest: hashes.HashAlgorithm) -> bytes:
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(payload)
        return key.sign(payload, ec.ECDSA(digest, deterministic_signing=True))

    def sign(self, payload: bytes) -> bytes:
        """Sign bytes with the algorithm's own hash.

        Args:
            payload: the bytes.

        Returns:
            The signature (DER for ECDSA).
        """
        return self._sign(payload, _hash(self._algorithm))

    def sign_sha256(self, payload: bytes) -> bytes:
        """Sign bytes with SHA-256, as ``openssl dgst -sha256 -sign`` does.

        Args:
            payload: the bytes.

        Returns:
            The signature.
        """
        return self._sign(payload, hashes.SHA256())


def _verify(key: PublicKey, signature: bytes, payload: bytes, digest: hashes.HashAlgorithm) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        else:
            key.verify(signature, payload, ec.ECDSA(digest))
    except InvalidSignature:
        return False
    return True


def sign_file(signer: Signer, data: bytes) -> bytes:
    """The detached signature of a published file.

    Args:
        signer: the key.
        data: the file's bytes.

    Returns:
        DER ECDSA over SHA-256 (Ed25519: the raw signature).
    """
    return signer.sign_sha256(data)


def verify_file(key: PublicKey, data: bytes, signature: bytes) -> bool:
    """Check a detached signature made by :func:`sign_file`.

    Args:
        key: the public key.
        data: the file's bytes.
        signature: the .sig file's bytes.

    Returns:
        True when it verifies.
    """
    return _verify(key, signature, data, hashes.SHA256())


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's Pre-Authentication Encoding (DSSE protocol v1).

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, lengths as ASCII decimal.

    Args:
        payload_type: the payloadType.
        payload: the payload bytes.

    Returns:
        The bytes that are signed.
    """
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def envelope(payload: bytes, payload_type: str, signers: Sequence[Signer]) -> dict[str, object]:
    """Sign a payload into a DSSE envelope.

    Args:
        payload: the exact bytes to sign.
        payload_type: what they are.
        signers: one or more keys.

    Returns:
        ``{"payload", "payloadType", "signatures": [{"keyid", "sig"}]}`` (base64, standard alphabet).
    """
    message = pae(payload_type, payload)
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [
            {"keyid": s.keyid, "sig": base64.b64encode(s.sign(message)).decode("ascii")}
            for s in sorted(signers, key=lambda s: s.keyid)
        ],
    }


def parse_envelope(data: bytes, what: str) -> Any:
    """Parse a DSSE envelope's bytes, refusing before parsing what cannot be one.

    An envelope holds one object, one list of at most
    :data:`~sevref.limits.MAX_ENVELOPE_SIGNATURES` signature objects, and
    base64 text, in which no ``{``, ``[`` or ``,`` occurs. Counting those
    characters first bounds what the JSON parser builds to a few objects,
    whatever a hostile mirror sends.

    Args:
        data: the file's bytes (at most its size limit).
        what: how to name it in errors.

    Returns:
        The parsed JSON (checked as an envelope by :func:`open_envelope`).

    Raises:
        SignatureError: too many objects, lists or members, or not strict JSON.
    """
    containers = data.count(b"{") + data.count(b"[")
    members = data.count(b",")
    if containers > 2 + MAX_ENVELOPE_SIGNATURES or members > 2 + 2 * MAX_ENVELOPE_SIGNATURES:
        raise SignatureError(
            f"{what}: {containers} objects or lists and {members} commas; expected a DSSE envelope "
            f"with at most {MAX_ENVELOPE_SIGNATURES} signatures"
        )
    try:
        return strictjson.loads(data, what)
    except JSONFormatError as error:
        raise SignatureError(str(error)) from None


def open_envelope(data: Any, payload_type: str, keys: Mapping[str, PublicKey], what: str) -> tuple[bytes, list[str]]:
    """Check a DSSE envelope and return its payload.

    Args:
        data: the parsed envelope.
        payload_type: the payloadType it must have.
        keys: the keys it may be signed with, by key id.
        what: how to name it in errors.

    Returns:
        (payload, ids of the given keys whose signatures verify), the ids sorted.

    Raises:
        SignatureError: not an envelope, another payloadType, or no signature by
            any of ``keys`` verifies.
    """
    if not isinstance(data, dict) or set(data) != {"payload", "payloadType", "signatures"}:
        raise SignatureError(f"{what}: expected a DSSE envelope with payload, payloadType and signatures")
    if data["payloadType"] != payload_type:
        raise SignatureError(
            f"{what}: payloadType is {printable(repr(data['payloadType']))}; expected {payload_type!r}"
        )
    try:
        payload = base64.b64decode(data["payload"], validate=True)
        signatures = [(s["keyid"], base64.b64decode(s["sig"], validate=True)) for s in data["signatures"]]
    except (binascii.Error, TypeError, KeyError, ValueError) as error:
        raise SignatureError(f"{what}: malformed envelope ({error})") from error
    for keyid, _ in signatures:
        if type(keyid) is not str:
            raise SignatureError(f"{what}: malformed envelope (keyid {keyid!r}; expected text)")
    message = pae(payload_type, payload)
    verified = sorted(
        {
            keyid
            for keyid, signature in signatures
            if keyid in keys and _verify(keys[keyid], signature, message, _hash(algorithm_of(keys[keyid])))
        }
    )
    if not verified:
        named = printable(", ".join(k for k, _ in signatures)) or "none"
        raise SignatureError(
            f"{what}: no valid signature by a trusted key (signed by {named}; trusted: {', '.join(sorted(keys)) or 'none'})"
        )
    return payload, verified


def statement(subjects: Iterable[tuple[str, str]], predicate: Mapping[str, object]) -> bytes:
    """An in-toto Statement v1 about the published files.

    Args:
        subjects: (path, sha256 hex) of each file.
        predicate: sevref's release predicate.

    Returns:
        Canonical JSON bytes.
    """
    return canonical(
        {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in sorted(subjects)],
            "predicateType": PREDICATE_TYPE,
            "predicate": dict(predicate),
        }
    )
