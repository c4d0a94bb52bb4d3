"""Encrypted private key files: PKCS#8 with a passphrase KDF strong enough for today (RFC 8018, RFC 5958).

sevref writes private keys as PEM ``ENCRYPTED PRIVATE KEY``: PBES2 with
PBKDF2-HMAC-SHA256 at :data:`PBKDF2_ITERATIONS` iterations and AES-256-CBC.
That is the iteration count the OWASP Password Storage Cheat Sheet (2023)
gives for PBKDF2-HMAC-SHA256; ``cryptography`` writes PKCS#8 with 2,048
iterations only and offers no knob for PKCS#8 (its ``encryption_builder``
serves OpenSSH and PKCS#12 files), so sevref assembles the DER here from
``cryptography``'s primitives. ``cryptography`` and ``openssl pkey`` read the
result as any PKCS#8 file. Opening such a key costs about 0.75 s of one core.

:func:`protection` reads how a PEM private key is protected, without the
passphrase, so that a loader can refuse what is obsolete (the MD5-based
``Proc-Type: 4,ENCRYPTED`` PEM form, PBES1) and warn about what is weak.

This module does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from sevref.errors import SignatureError

__all__ = ["PBKDF2_ITERATIONS", "Protection", "encrypt_pem", "protection"]

PBKDF2_ITERATIONS = 600_000
"""PBKDF2-HMAC-SHA256 iterations of the keys sevref writes (OWASP Password Storage Cheat Sheet, 2023)."""
STRONG_PBKDF2 = {"hmacWithSHA256": 600_000, "hmacWithSHA512": 210_000, "hmacWithSHA1": 1_300_000}
"""PRF to the fewest PBKDF2 iterations that count as strong (the same guidance)."""
STRONG_SCRYPT = ((1 << 17, 8, 1), (1 << 16, 8, 2), (1 << 15, 8, 3), (1 << 14, 8, 5), (1 << 13, 8, 10))
"""(N, r, p) settings of scrypt that count as strong (the same guidance): a key meeting one of them is."""

_OIDS = {
    "1.2.840.113549.1.5.13": "PBES2",
    "1.2.840.113549.1.5.12": "PBKDF2",
    "1.3.6.1.4.1.11591.4.11": "scrypt",
    "1.2.840.113549.2.7": "hmacWithSHA1",
    "1.2.840.113549.2.9": "hmacWithSHA256",
    "1.2.840.113549.2.11": "hmacWithSHA512",
    "2.16.840.1.101.3.4.1.42": "aes256-CBC",
}
_NAMES = {name: oid for oid, name in _OIDS.items()}
_BEGIN, _END = b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"-----END ENCRYPTED PRIVATE KEY-----"


@dataclass(frozen=True)
class Protection:
    """How an encrypted PKCS#8 key's passphrase is stretched."""

    kdf: str
    """``PBKDF2`` or ``scrypt``."""
    prf: str | None
    """PBKDF2's PRF, e.g. ``hmacWithSHA256``."""
    iterations: int | None
    """PBKDF2's iteration count."""
    scrypt: tuple[int, int, int] | None
    """scrypt's (N, r, p)."""

    @property
    def strong(self) -> bool:
        """Whether the KDF meets the OWASP guidance this module cites."""
        if self.scrypt is not None:
            n, r, p = self.scrypt
            return any(n >= n0 and r >= r0 and p >= p0 for n0, r0, p0 in STRONG_SCRYPT)
        minimum = STRONG_PBKDF2.get(self.prf or "")
        return minimum is not None and self.iterations is not None and self.iterations >= minimum

    def describe(self) -> str:
        """Name the KDF and its cost for people.

        Returns:
            E.g. ``PBKDF2-hmacWithSHA256 with 2048 iterations``.
        """
        if self.scrypt is not None:
            return "scrypt with N={}, r={}, p={}".format(*self.scrypt)
        return f"PBKDF2-{self.prf} with {self.iterations} iterations"


# --------------------------------------------------------------------------- DER, the little of it needed


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _sequence(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _oid(name: str) -> bytes:
    numbers = [int(n) for n in _NAMES[name].split(".")]
    body = bytearray([40 * numbers[0] + numbers[1]])
    for number in numbers[2:]:
        chunk, rest = [number & 0x7F], number >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _integer(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _read(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """One TLV at ``offset``: (tag, content, offset after it)."""
    if offset + 2 > len(data):
        raise ValueError("truncated")
    tag, first = data[offset], data[offset + 1]
    offset += 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise ValueError("bad length")
        size = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    else:
        size = first
    if offset + size > len(data):
        raise ValueError("truncated")
    return tag, data[offset : offset + size], offset + size


def _items(content: bytes) -> list[tuple[int, bytes]]:
    items, offset = [], 0
    while offset < len(content):
        tag, value, offset = _read(content, offset)
        items.append((tag, value))
    return items


def _oid_name(content: bytes) -> str:
    if not content:
        raise ValueError("empty OID")
    numbers = [content[0] // 40, content[0] % 40]
    value = 0
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            numbers.append(value)
            value = 0
    dotted = ".".join(str(n) for n in numbers)
    return _OIDS.get(dotted, dotted)


# --------------------------------------------------------------------------- writing and reading


def encrypt_pem(private_key_info: bytes, passphrase: bytes, iterations: int = PBKDF2_ITERATIONS) -> bytes:
    """Encrypt a DER PrivateKeyInfo into PEM EncryptedPrivateKeyInfo (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC).

    Args:
        private_key_info: the unencrypted PKCS#8 DER.
        passphrase: the passphrase.
        iterations: PBKDF2 iterations (tests may write weaker keys to check the loader).

    Returns:
        PEM bytes.
    """
    salt, iv = secrets.token_bytes(16), secrets.token_bytes(16)
    key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(private_key_info) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    kdf = _sequence(
        _oid("PBKDF2"),
        _sequence(_tlv(0x04, salt), _integer(iterations), _sequence(_oid("hmacWithSHA256"), b"\x05\x00")),
    )
    algorithm = _sequence(_oid("PBES2"), _sequence(kdf, _sequence(_oid("aes256-CBC"), _tlv(0x04, iv))))
    der = _sequence(algorithm, _tlv(0x04, ciphertext))
    text = base64.b64encode(der)
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return b"\n".join([_BEGIN, *lines, _END]) + b"\n"


def protection(pem: bytes, what: str) -> Protection:
    """Read how a PEM private key is protected, without its passphrase.

    Args:
        pem: the key file's bytes.
        what: how to name it in errors (never its contents).

    Returns:
        The KDF and its parameters.

    Raises:
        SignatureError: not an encrypted PKCS#8 key, or one in an obsolete
            form: legacy PEM encryption (``Proc-Type: 4,ENCRYPTED``, whose key
            is one MD5 of the passphrase), PBES1 or PKCS#12 PBE schemes.
    """
    if b"Proc-Type: 4,ENCRYPTED" in pem:
        raise SignatureError(
            f"{what}: legacy PEM encryption (Proc-Type: 4,ENCRYPTED, an MD5-based key derivation); expected "
            "PKCS#8 (convert it: openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter 600000)"
        )
    if b"-----BEGIN PRIVATE KEY-----" in pem or (b"PRIVATE KEY-----" in pem and _BEGIN not in pem):
        raise SignatureError(f"{what}: the key is not encrypted; expected an encrypted key (ENCRYPTED PRIVATE KEY)")
    start, end = pem.find(_BEGIN), pem.find(_END)
    if start < 0 or end < start:
        raise SignatureError(f"{what}: not a PEM private key; expected -----BEGIN ENCRYPTED PRIVATE KEY-----")
    try:
        der = base64.b64decode(b"".join(pem[start + len(_BEGIN) : end].split()), validate=True)
        return _protection(der)
    except SignatureError as error:
        raise SignatureError(f"{what}: {error}") from None
    except (ValueError, IndexError, binascii.Error):
        raise SignatureError(f"{what}: not a PKCS#8 encrypted private key (malformed base64 or DER)") from None


def _protection(der: bytes) -> Protection:
    info = _read(der, 0)[1]
    (_, algorithm), _ciphertext = _items(info)
    scheme = _items(algorithm)
    name = _oid_name(scheme[0][1])
    if name != "PBES2":
        raise SignatureError(f"encryption scheme {name}; expected PBES2 (PBES1 and PKCS#12 schemes are obsolete)")
    kdf, _cipher = _items(scheme[1][1])
    kdf_items = _items(kdf[1])
    kdf_name = _oid_name(kdf_items[0][1])
    params = _items(kdf_items[1][1])
    if kdf_name == "scrypt":
        n, r, p = (int.from_bytes(v, "big") for _, v in params[1:4])
        return Protection("scrypt", None, None, (n, r, p))
    if kdf_name != "PBKDF2":
        raise SignatureError(f"key derivation {kdf_name}; expected PBKDF2 or scrypt")
    iterations = int.from_bytes(params[1][1], "big")
    prf = next((_oid_name(_items(v)[0][1]) for t, v in params[2:] if t == 0x30), "hmacWithSHA1")
    return Protection("PBKDF2", prf, iterations, None)
