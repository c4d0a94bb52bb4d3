"""Signing keys that never leave a PKCS#11 token (an HSM, a smart card, SoftHSM).

A :class:`Pkcs11Signer` is a :class:`sevref.sign.Signer` whose private key
stays on the token: sevref hashes the data itself and asks the token for a
raw ECDSA signature (``CKM_ECDSA``) over that digest, so the signatures are
exactly those a key file would give, only not deterministic:

* DSSE envelopes: SHA-256 for P-256 keys, SHA-384 for P-384 keys, as
  :class:`sevref.sign.KeySigner` does;
* ``.sig`` files: SHA-256 for both, as ``openssl dgst -sha256 -verify`` expects.

The token returns r‖s (PKCS#11 v2.40 section 2.3.1, "Signatures"); sevref
publishes DER (``ECDSA-Sig-Value``). Each signature is checked against the
token's public key object before it is used, so a private key and a public
key object that do not belong together are noticed at once.

Keys are named by a PKCS#11 URI (RFC 7512), e.g.
``pkcs11:token=release;object=sevref%202026;type=private``; the module (the
token's shared library) comes from an argument or ``$SEVREF_PKCS11_MODULE``,
the PIN from a file (its first line) or ``$SEVREF_PKCS11_PIN``, never from a
command line argument nor from the URI. The key's id is the SHA-256 of its
public key's DER SubjectPublicKeyInfo, as for key files.

This module is the edge to the token: it loads the module, reads the PIN file
and talks to the token. It imports ``pkcs11`` (the ``python-pkcs11`` package,
extra ``sevref[hsm]``) only when a signer is opened, so nothing else in sevref
needs it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from sevref.errors import SignatureError
from sevref.sign import Algorithm, key_id, public_pem

if TYPE_CHECKING:
    from pkcs11 import Session, Token
    from pkcs11.types import SignMixin

__all__ = ["MODULE_ENV", "PIN_ENV", "Pkcs11Signer", "Pkcs11Uri", "parse_uri", "pkcs11_signer", "read_pin"]

MODULE_ENV = "SEVREF_PKCS11_MODULE"
"""Where the PKCS#11 module's path comes from when none is given."""
PIN_ENV = "SEVREF_PKCS11_PIN"
"""Where the token's user PIN comes from when no PIN file is given."""

# The named curves sevref signs with, as CKA_EC_PARAMS holds them: the DER of
# the curve's OBJECT IDENTIFIER (PKCS#11 v2.40 section 2.3.3; RFC 5480 section 2.1.1.1).
_CURVES: dict[bytes, tuple[Algorithm, ec.EllipticCurve, hashes.HashAlgorithm]] = {
    bytes.fromhex("06082a8648ce3d030107"): (
        Algorithm.ECDSA_P256,
        ec.SECP256R1(),
        hashes.SHA256(),
    ),  # 1.2.840.10045.3.1.7
    bytes.fromhex("06052b81040022"): (Algorithm.ECDSA_P384, ec.SECP384R1(), hashes.SHA384()),  # 1.3.132.0.34
}

# RFC 7512 section 2.3: the path attributes sevref matches on. The library-*
# and slot-* attributes and vendor ones (x-*) are refused rather than ignored,
# so that a URI never selects more than it says.
_PATH_ATTRIBUTES = ("token", "manufacturer", "model", "serial", "object", "id", "type")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PIN_FILE_LIMIT = 4096


@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of a PKCS#11 URI (RFC 7512) that name a signing key."""

    text: str
    """The URI as given (it holds no secret: a ``pin-value`` is refused)."""
    token: str | None = None
    """The token's label (``token=``)."""
    manufacturer: str | None = None
    """The token's manufacturer id (``manufacturer=``)."""
    model: str | None = None
    """The token's model (``model=``)."""
    serial: str | None = None
    """The token's serial number (``serial=``)."""
    object: str | None = None
    """The key's label, ``CKA_LABEL`` (``object=``)."""
    id: bytes | None = None
    """The key's ``CKA_ID`` (``id=``, percent-encoded bytes)."""

    def describe_key(self) -> str:
        """Name the key the way the URI selects it, for messages.

        Returns:
            E.g. ``label 'release' and id 01``, or ``any label``.
        """
        parts = []
        if self.object is not None:
            parts.append(f"label {self.object!r}")
        if self.id is not None:
            parts.append(f"id {self.id.hex() or '(empty)'}")
        return " and ".join(parts) or "any label"


_SECRET = re.compile(r"(pin-value|pin-source)=[^;?&]*", re.IGNORECASE)


def _shown(text: str) -> str:
    """A URI as an error may show it: the value of any ``pin-value`` or ``pin-source`` left out."""
    return repr(_SECRET.sub(r"\1=…", text))


def parse_uri(text: str) -> Pkcs11Uri:
    """Read a PKCS#11 URI that names a private key (RFC 7512).

    Args:
        text: e.g. ``pkcs11:token=release;object=sevref;type=private``.

    Returns:
        The URI's parts.

    Raises:
        SignatureError: not a ``pkcs11:`` URI, a malformed or repeated
            attribute, an attribute sevref does not match on, a query
            attribute (the module and the PIN are given otherwise), or a
            ``type`` other than ``private``.
    """
    scheme, colon, rest = text.partition(":")
    if not colon or scheme.lower() != "pkcs11":
        raise SignatureError(f"PKCS#11 URI {_shown(text)}: expected pkcs11:token=…;object=… (RFC 7512)")
    path, question, query = rest.partition("?")
    if question:
        names = sorted({item.partition("=")[0] for item in query.split("&") if item})
        raise SignatureError(
            f"PKCS#11 URI: query attribute {', '.join(names) or '(empty)'}; expected none: give the module with "
            f"--pkcs11-module or ${MODULE_ENV}, the PIN with ${PIN_ENV} or a PIN file (never in the URI)"
        )
    values: dict[str, bytes] = {}
    for item in path.split(";") if path else []:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise SignatureError(f"PKCS#11 URI {_shown(text)}: {item!r} is not name=value")
        if name not in _PATH_ATTRIBUTES:
            raise SignatureError(
                f"PKCS#11 URI {_shown(text)}: attribute {name!r} is not supported; expected {', '.join(_PATH_ATTRIBUTES)}"
            )
        if name in values:
            raise SignatureError(f"PKCS#11 URI {_shown(text)}: attribute {name!r} appears twice; expected it once")
        if _BAD_ESCAPE.search(value):
            raise SignatureError(f"PKCS#11 URI {_shown(text)}: {name} has a % not followed by two hex digits")
        values[name] = urllib.parse.unquote_to_bytes(value)
    texts: dict[str, str] = {}
    for name, raw in values.items():
        if name != "id":
            try:
                texts[name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SignatureError(f"PKCS#11 URI {_shown(text)}: {name} is not UTF-8 once decoded") from None
    if texts.get("type", "private") != "private":
        raise SignatureError(f"PKCS#11 URI {_shown(text)}: type={texts['type']}; expected private (a signing key)")
    return Pkcs11Uri(
        text,
        token=texts.get("token"),
        manufacturer=texts.get("manufacturer"),
        model=texts.get("model"),
        serial=texts.get("serial"),
        object=texts.get("object"),
        id=values.get("id"),
    )


def read_pin(pin_file: Path | None) -> str:
    """Read the token's user PIN: the first line of a file, else ``$SEVREF_PKCS11_PIN``.

    Args:
        pin_file: a file holding the PIN, if given.

    Returns:
        The PIN.

    Raises:
        SignatureError: no PIN, an unreadable, empty or oversized file, or a
            PIN that is not UTF-8 (PKCS#11 PINs are UTF-8 text).
    """
    if pin_file is None:
        value = os.environ.get(PIN_ENV)
        if not value:
            raise SignatureError(f"no PKCS#11 PIN: set {PIN_ENV} or give a PIN file (never on the command line)")
        return value
    try:
        # O_NONBLOCK: a FIFO named as the PIN file must not hang the signer.
        descriptor = os.open(pin_file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise SignatureError(f"PIN file {pin_file}: not a regular file; expected a file")
            data = handle.read(_PIN_FILE_LIMIT + 1)
    except OSError as error:
        raise SignatureError(f"PIN file {pin_file}: {error.strerror or error}") from None
    if len(data) > _PIN_FILE_LIMIT:
        raise SignatureError(f"PIN file {pin_file}: more than {_PIN_FILE_LIMIT} bytes; expected the PIN on one line")
    lines = data.splitlines()
    if not lines or not lines[0]:
        raise SignatureError(f"PIN file {pin_file}: empty first line; expected the PIN on it")
    try:
        return lines[0].decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError(f"PIN file {pin_file}: the PIN is not UTF-8 text") from None


def _library() -> ModuleType:
    """Import python-pkcs11 (only now: the rest of sevref does without it)."""
    try:
        import pkcs11  # noqa: PLC0415
    except ImportError:
        raise SignatureError(
            "PKCS#11 signing needs the python-pkcs11 package; install sevref with its hsm extra (sevref[hsm])"
        ) from None
    return pkcs11


@dataclass
class _Login:
    """A logged-in session that the signers of one token share."""

    session: Session
    pin_digest: bytes
    users: int


# PKCS#11 keeps one login state per token for the whole process (a second
# C_Login fails with CKR_USER_ALREADY_LOGGED_IN), so signers of the same token,
# e.g. the old and the new key of a rotation, share one session.
_LOGINS: dict[tuple[str, int], _Login] = {}


def _token_facts(token: Token) -> dict[str, str]:
    return {
        "token": token.label,
        "manufacturer": token.manufacturer_id,
        "model": token.model,
        "serial": token.serial.decode("ascii", "replace").strip(),
    }


def _find_token(pkcs11: ModuleType, lib: Any, uri: Pkcs11Uri) -> Token:
    wanted = {
        name: value
        for name, value in (
            ("token", uri.token),
            ("manufacturer", uri.manufacturer),
            ("model", uri.model),
            ("serial", uri.serial),
        )
        if value is not None
    }
    # A free slot's token (SoftHSM always offers one) has no label yet: only initialized tokens count.
    tokens: list[Token] = [t for t in lib.get_tokens() if t.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED]
    found = [t for t in tokens if all(_token_facts(t)[k] == v for k, v in wanted.items())]
    if len(found) == 1:
        return found[0]
    present = ", ".join(sorted(repr(t.label) for t in tokens)) or "none"
    if not found:
        asked = ", ".join(f"{k} {v!r}" for k, v in wanted.items()) or "any token"
        raise SignatureError(f"{uri.text}: no token with {asked}; tokens present: {present}")
    raise SignatureError(
        f"{uri.text}: {len(found)} tokens match ({present}); expected one: name it with token= or serial="
    )


class Pkcs11Signer:
    """A :class:`sevref.sign.Signer` whose ECDSA key stays on a PKCS#11 token.

    Open one with :func:`pkcs11_signer` (or :meth:`open`) and close it when
    done (it is a context manager); signers of the same token share one
    logged-in session.
    """

    def __init__(
        self,
        uri: Pkcs11Uri,
        login: tuple[str, int],
        key: SignMixin,
        public: ec.EllipticCurvePublicKey,
        algorithm: Algorithm,
        digest: hashes.HashAlgorithm,
    ) -> None:
        """Wrap a private key found on a logged-in token; use :meth:`open`.

        Args:
            uri: the key's URI.
            login: the shared session's key.
            key: the private key object.
            public: its public key, from the token's public key object.
            algorithm: ECDSA P-256 or P-384.
            digest: the hash of its DSSE signatures.
        """
        self._uri = uri
        self._login: tuple[str, int] | None = login
        self._key = key
        self._public = public
        self._algorithm = algorithm
        self._digest = digest
        self._mechanism = _library().Mechanism.ECDSA
        self._errors: type[Exception] = _library().PKCS11Error

    @classmethod
    def open(cls, uri: str | Pkcs11Uri, module: str, pin: str) -> Pkcs11Signer:
        """Log in to the token and find the key a URI names.

        Args:
            uri: a PKCS#11 URI (RFC 7512) naming the private key.
            module: the path of the token's PKCS#11 shared library.
            pin: the token's user PIN.

        Returns:
            The signer.

        Raises:
            SignatureError: python-pkcs11 missing, the module cannot be loaded,
                no such token or key (or several), a wrong or locked PIN, a key
                that is not ECDSA P-256 or P-384, or no public key object for it.
        """
        parsed = uri if isinstance(uri, Pkcs11Uri) else parse_uri(uri)
        pkcs11 = _library()
        if "/" in module and not Path(module).is_file():
            raise SignatureError(f"PKCS#11 module {module}: no such file; expected the token's shared library")
        try:
            lib = pkcs11.lib(module)
        except pkcs11.PKCS11Error as error:
            raise SignatureError(f"PKCS#11 module {module}: cannot load it ({error})") from None
        try:
            token = _find_token(pkcs11, lib, parsed)
        except pkcs11.PKCS11Error as error:
            raise SignatureError(
                f"{parsed.text}: module {module} cannot list its tokens ({type(error).__name__})"
            ) from None
        login = (module, token.slot.slot_id)
        session = _log_in(login, token, pin, parsed)
        try:
            key, public, (algorithm, digest) = _find_key(pkcs11, session, token, parsed)
        except BaseException:
            _log_out(login)
            raise
        return cls(parsed, login, key, public, algorithm, digest)

    @property
    def uri(self) -> str:
        """The key's PKCS#11 URI, as given."""
        return self._uri.text

    @property
    def keyid(self) -> str:
        """The key's id: lowercase hex SHA-256 of its DER SubjectPublicKeyInfo."""
        return key_id(self._public)

    @property
    def algorithm(self) -> Algorithm:
        """The key's algorithm."""
        return self._algorithm

    def public_pem(self) -> bytes:
        """The PEM SubjectPublicKeyInfo of the key, from the token's public key object.

        Returns:
            PEM bytes.
        """
        return public_pem(self._public)

    def sign(self, payload: bytes) -> bytes:
        """Sign bytes with the algorithm's own hash (SHA-384 for P-384, else SHA-256).

        Args:
            payload: the bytes (for DSSE, the PAE).

        Returns:
            The DER ECDSA signature.

        Raises:
            SignatureError: the token failed, or its signature does not verify.
        """
        return self._sign(payload, self._digest)

    def sign_sha256(self, payload: bytes) -> bytes:
        """Sign bytes with SHA-256, as ``openssl dgst -sha256 -sign`` does.

        Args:
            payload: the bytes (a published file).

        Returns:
            The DER ECDSA signature.

        Raises:
            SignatureError: the token failed, or its signature does not verify.
        """
        return self._sign(payload, hashes.SHA256())

    def _sign(self, payload: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        if self._login is None:
            raise SignatureError(f"{self._uri.text}: the signer is closed")
        hasher = hashes.Hash(algorithm)
        hasher.update(payload)
        digest = hasher.finalize()
        try:
            raw = self._key.sign(digest, mechanism=self._mechanism)
        except self._errors as error:
            raise SignatureError(f"{self._uri.text}: the token did not sign ({type(error).__name__})") from None
        size = (self._public.curve.key_size + 7) // 8
        if len(raw) != 2 * size:
            raise SignatureError(
                f"{self._uri.text}: the token returned a {len(raw)}-byte ECDSA signature; expected r||s, {2 * size} bytes"
            )
        der = encode_dss_signature(int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big"))
        try:
            self._public.verify(der, digest, ec.ECDSA(Prehashed(algorithm)))
        except InvalidSignature:
            raise SignatureError(
                f"{self._uri.text}: the token's signature does not verify with its public key object; "
                f"expected the public key of the same key pair"
            ) from None
        return der

    def close(self) -> None:
        """Let go of the token (the last signer of a token logs out); closing twice is harmless."""
        if self._login is not None:
            _log_out(self._login)
            self._login = None

    def __enter__(self) -> Pkcs11Signer:
        """Use the signer in a ``with`` block.

        Returns:
            The signer.
        """
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Close the signer at the end of a ``with`` block.

        Args:
            kind: the exception's type, if any.
            value: the exception, if any.
            traceback: its traceback, if any.
        """
        self.close()


def _log_in(login: tuple[str, int], token: Token, pin: str, uri: Pkcs11Uri) -> Session:
    """Open the token's shared session, logging in with the PIN if this process has not yet."""
    pkcs11 = _library()
    pin_digest = hashlib.sha256(pin.encode("utf-8")).digest()
    shared = _LOGINS.get(login)
    if shared is not None:
        if not hmac.compare_digest(shared.pin_digest, pin_digest):
            raise SignatureError(f"{uri.text}: token {token.label!r} is open in this process with another PIN")
        shared.users += 1
        return shared.session
    try:
        session = token.open(user_pin=pin)
    except pkcs11.PinIncorrect:
        raise SignatureError(f"{uri.text}: the PIN of token {token.label!r} is wrong (CKR_PIN_INCORRECT)") from None
    except pkcs11.PinLocked:
        raise SignatureError(f"{uri.text}: the PIN of token {token.label!r} is locked (CKR_PIN_LOCKED)") from None
    except pkcs11.PKCS11Error as error:
        raise SignatureError(f"{uri.text}: cannot log in to token {token.label!r} ({type(error).__name__})") from None
    _LOGINS[login] = _Login(session, pin_digest, 1)
    return session


def _log_out(login: tuple[str, int]) -> None:
    """Release the token's shared session; the last user closes it, which logs out."""
    shared = _LOGINS[login]
    shared.users -= 1
    if shared.users == 0:
        del _LOGINS[login]
        try:
            shared.session.close()
        except _library().PKCS11Error:
            pass  # the token is gone (removed, or the module finalized): nothing is left to close


def _one(objects: list[Any], what: str, uri: Pkcs11Uri, token: Token) -> Any:
    if len(objects) == 1:
        return objects[0]
    if not objects:
        raise SignatureError(f"{uri.text}: no {what} with {uri.describe_key()} on token {token.label!r}; expected one")
    labels = ", ".join(sorted(repr(o.label) for o in objects))
    raise SignatureError(
        f"{uri.text}: {len(objects)} {what}s match {uri.describe_key()} on token {token.label!r} ({labels}); "
        f"expected one: name it with object= or id="
    )


def _find_key(
    pkcs11: ModuleType, session: Session, token: Token, uri: Pkcs11Uri
) -> tuple[SignMixin, ec.EllipticCurvePublicKey, tuple[Algorithm, hashes.HashAlgorithm]]:
    """The private key a URI names, its public key and its algorithm."""
    attribute, kind = pkcs11.Attribute, pkcs11.ObjectClass
    search: dict[Any, Any] = {attribute.CLASS: kind.PRIVATE_KEY}
    if uri.object is not None:
        search[attribute.LABEL] = uri.object
    if uri.id is not None:
        search[attribute.ID] = uri.id
    try:
        key = _one(list(session.get_objects(search)), "private key", uri, token)
        key_type = key.key_type
        if key_type != pkcs11.KeyType.EC:
            raise SignatureError(
                f"{uri.text}: private key {key.label!r} is {key_type.name}; expected an ECDSA P-256 or P-384 key"
            )
        # The public key object of the same pair: same CKA_ID (as pkcs11-tool and
        # most HSM tools make them), or the same label when the key has no id.
        pair: dict[Any, Any] = {attribute.CLASS: kind.PUBLIC_KEY, attribute.KEY_TYPE: pkcs11.KeyType.EC}
        if key.id:
            pair[attribute.ID] = key.id
        else:
            pair[attribute.LABEL] = key.label
        public = _one(
            list(session.get_objects(pair)),
            "public key object",
            Pkcs11Uri(uri.text, object=key.label, id=key.id),
            token,
        )
        params, point = bytes(public[attribute.EC_PARAMS]), bytes(public[attribute.EC_POINT])
    except pkcs11.PKCS11Error as error:
        raise SignatureError(
            f"{uri.text}: cannot read the key from token {token.label!r} ({type(error).__name__})"
        ) from None
    if params not in _CURVES:
        raise SignatureError(
            f"{uri.text}: key {key.label!r} has curve parameters {params.hex()}; expected P-256 or P-384 (named curves)"
        )
    algorithm, curve, digest = _CURVES[params]
    return key, _public_key(point, curve, uri), (algorithm, digest)


def _public_key(point: bytes, curve: ec.EllipticCurve, uri: Pkcs11Uri) -> ec.EllipticCurvePublicKey:
    """Read CKA_EC_POINT: a DER OCTET STRING holding the uncompressed point (PKCS#11 v2.40), or the bare point."""
    size = 1 + 2 * ((curve.key_size + 7) // 8)
    if len(point) == size + 2 and point[:2] == bytes((0x04, size)):
        point = point[2:]
    if len(point) != size or point[0] != 0x04:
        raise SignatureError(
            f"{uri.text}: EC_POINT of {len(point)} bytes; expected an uncompressed {curve.name} point ({size} bytes)"
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except ValueError:
        raise SignatureError(f"{uri.text}: EC_POINT is not a point on {curve.name}") from None


def pkcs11_signer(uri: str, module: str | None = None, pin_file: Path | None = None) -> Pkcs11Signer:
    """Open the signer a PKCS#11 URI names, as the command line does.

    Args:
        uri: a PKCS#11 URI (RFC 7512), e.g. ``pkcs11:token=release;object=sevref``.
        module: the token's PKCS#11 shared library (``--pkcs11-module``);
            default ``$SEVREF_PKCS11_MODULE``.
        pin_file: a file whose first line is the user PIN (``--pin-file``);
            default ``$SEVREF_PKCS11_PIN``.

    Returns:
        The signer; close it when done.

    Raises:
        SignatureError: no module or PIN, or any reason :meth:`Pkcs11Signer.open` gives.
    """
    parsed = parse_uri(uri)
    module = module or os.environ.get(MODULE_ENV)
    if not module:
        raise SignatureError(
            f"no PKCS#11 module: give --pkcs11-module or set {MODULE_ENV} (the token's shared library, "
            f"e.g. libsofthsm2.so)"
        )
    return Pkcs11Signer.open(parsed, module, read_pin(pin_file))
