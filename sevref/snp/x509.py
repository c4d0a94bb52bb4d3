"""A small, bounded DER reader for the certificates of AMD's SEV-SNP key chain.

It reads what the chain check needs (RFC 5280 section 4.1): the signed
``tbsCertificate`` bytes, serial number, signature algorithm and its
parameters, issuer and subject (as DER, and their common names), validity,
``subjectPublicKeyInfo`` (as DER, for ``cryptography``'s key loader) and the
extensions. ``cryptography``'s X.509 loader is not used: AMD's VCEKs have
serial number 0, which it warns it will refuse in a future release.

Every length is checked against its container before it is used, only the
definite, minimal lengths of DER are accepted, and every error is one line
naming the certificate, the offset, what was expected and what was found.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from sevref.snp import CertificateFormatError

__all__ = [
    "MAX_CERTIFICATE_BYTES",
    "Certificate",
    "PssParameters",
    "parse_certificate",
    "read_certificates",
]

MAX_CERTIFICATE_BYTES = 16 * 1024
"""AMD's ARK is about 1.7 KB and a VCEK 1.4 KB: a certificate above 16 KiB is refused unread."""
_MAX_CERTIFICATES = 8
_MAX_CHILDREN = 64
_MAX_OID_BYTES = 64

_SEQUENCE, _SET, _INTEGER, _BIT_STRING, _OCTET_STRING, _OID, _BOOLEAN = 0x30, 0x31, 0x02, 0x03, 0x04, 0x06, 0x01
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii"}  # UTF8String, PrintableString, IA5String
_COMMON_NAME = "2.5.4.3"
_BASIC_CONSTRAINTS = "2.5.29.19"


@dataclass(frozen=True)
class _Tlv:
    tag: int
    start: int
    """Offset of the tag."""
    body: int
    """Offset of the contents."""
    end: int
    """Offset after the contents."""


class _Reader:
    """Bounded reads of one DER document, with errors that name it and the offset."""

    def __init__(self, der: bytes, what: str) -> None:
        self.der, self.what = der, what

    def error(self, offset: int, message: str) -> CertificateFormatError:
        return CertificateFormatError(f"{self.what}: DER at offset {offset:#x}: {message}")

    def tlv(self, offset: int, end: int) -> _Tlv:
        if end - offset < 2:
            raise self.error(offset, f"{max(end - offset, 0)} bytes left; expected a tag and a length")
        tag, first = self.der[offset], self.der[offset + 1]
        if tag & 0x1F == 0x1F:
            raise self.error(offset, f"tag {tag:#04x} has a multi-byte number; expected a one-byte tag")
        if first < 0x80:
            length, body = first, offset + 2
        elif first == 0x80:
            raise self.error(offset, "indefinite length; expected a definite length (DER)")
        else:
            count = first & 0x7F
            if count > 3 or offset + 2 + count > end:
                raise self.error(offset, f"a length of {count} bytes; expected 1 to 3 within the container")
            raw = self.der[offset + 2 : offset + 2 + count]
            length, body = int.from_bytes(raw, "big"), offset + 2 + count
            if raw[0] == 0 or length < 0x80:
                raise self.error(offset, f"length {length} not in its shortest form; expected DER")
        if length > end - body:
            raise self.error(offset, f"length {length} runs past its container ({end - body} bytes left)")
        return _Tlv(tag, offset, body, body + length)

    def expect(self, offset: int, end: int, tag: int, name: str) -> _Tlv:
        found = self.tlv(offset, end)
        if found.tag != tag:
            raise self.error(offset, f"{name}: tag {found.tag:#04x}; expected {tag:#04x}")
        return found

    def children(self, parent: _Tlv) -> list[_Tlv]:
        found: list[_Tlv] = []
        offset = parent.body
        while offset < parent.end:
            if len(found) == _MAX_CHILDREN:
                raise self.error(offset, f"more than {_MAX_CHILDREN} elements; expected fewer")
            child = self.tlv(offset, parent.end)
            found.append(child)
            offset = child.end
        return found

    def first(self, tlv: _Tlv, name: str) -> _Tlv:
        if tlv.tag != _SEQUENCE or tlv.end == tlv.body:
            raise self.error(tlv.start, f"{name}: expected a non-empty SEQUENCE (AlgorithmIdentifier)")
        return self.tlv(tlv.body, tlv.end)

    def content(self, tlv: _Tlv) -> bytes:
        return self.der[tlv.body : tlv.end]

    def raw(self, tlv: _Tlv) -> bytes:
        return self.der[tlv.start : tlv.end]

    def oid(self, tlv: _Tlv, name: str) -> str:
        data = self.content(tlv)
        if tlv.tag != _OID or not 0 < len(data) <= _MAX_OID_BYTES or data[-1] & 0x80:
            raise self.error(tlv.start, f"{name}: expected an object identifier of 1 to {_MAX_OID_BYTES} bytes")
        arcs, value = [], 0
        for byte in data:
            value = value << 7 | byte & 0x7F
            if not byte & 0x80:
                arcs.append(value)
                value = 0
        first = min(arcs[0] // 40, 2)
        return ".".join(str(arc) for arc in (first, arcs[0] - 40 * first, *arcs[1:]))

    def integer(self, tlv: _Tlv, name: str) -> int:
        data = self.content(tlv)
        if tlv.tag != _INTEGER or not 0 < len(data) <= 64:
            raise self.error(tlv.start, f"{name}: expected an INTEGER of 1 to 64 bytes")
        return int.from_bytes(data, "big", signed=True)

    def time(self, tlv: _Tlv, name: str) -> datetime:
        text = self.content(tlv).decode("ascii", "replace")
        pattern = {_UTC_TIME: r"\d{12}Z", _GENERALIZED_TIME: r"\d{14}Z"}.get(tlv.tag)
        if pattern is None or not re.fullmatch(pattern, text):
            raise self.error(tlv.start, f"{name}: {text!r}; expected UTCTime YYMMDDHHMMSSZ or GeneralizedTime")
        if tlv.tag == _UTC_TIME:  # RFC 5280 4.1.2.5.1: YY below 50 is 20YY
            text = ("20" if int(text[:2]) < 50 else "19") + text
        try:
            return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
        except ValueError as error:
            raise self.error(tlv.start, f"{name}: {text!r} is no date; expected a valid time") from error


@dataclass(frozen=True)
class PssParameters:
    """RSASSA-PSS-params (RFC 4055 section 3.1), defaults filled in."""

    hash: str
    """The hash's OID."""
    mgf: str
    """The mask generation function's OID."""
    mgf_hash: str
    """The hash MGF1 uses."""
    salt_length: int
    """Salt bytes."""
    trailer: int
    """The trailer field (1 for 0xbc)."""


_SHA1, _MGF1 = "1.3.14.3.2.26", "1.2.840.113549.1.1.8"


@dataclass(frozen=True)
class Certificate:
    """The parts of an X.509 certificate the chain check reads."""

    what: str
    """How errors name it (e.g. ``VCEK vcek.der``)."""
    der: bytes
    """The whole certificate."""
    tbs: bytes
    """The signed ``tbsCertificate``, tag and length included."""
    serial: int
    """The serial number (0 in AMD's VCEKs)."""
    signature_algorithm: str
    """The OID of the algorithm the issuer signed with."""
    signature_parameters: bytes
    """Its parameters as DER (empty when absent)."""
    signature: bytes
    """The signature's bytes."""
    issuer: bytes
    """The issuer's Name as DER."""
    subject: bytes
    """The subject's Name as DER."""
    issuer_cn: str
    """The issuer's common name ("" when none)."""
    subject_cn: str
    """The subject's common name."""
    not_before: datetime
    """Start of validity."""
    not_after: datetime
    """End of validity."""
    spki: bytes
    """``subjectPublicKeyInfo`` as DER."""
    extensions: Mapping[str, bytes]
    """Extension OID to the contents of its ``extnValue``."""

    @property
    def is_ca(self) -> bool:
        """True when basicConstraints says cA."""
        value = self.extensions.get(_BASIC_CONSTRAINTS)
        if value is None:
            return False
        reader = _Reader(value, f"{self.what} basicConstraints")
        sequence = reader.expect(0, len(value), _SEQUENCE, "basicConstraints")
        children = reader.children(sequence)
        return bool(children) and children[0].tag == _BOOLEAN and reader.content(children[0]) == b"\xff"

    def pss_parameters(self) -> PssParameters:
        """Read the RSASSA-PSS parameters of the signature algorithm.

        Returns:
            The parameters, RFC 4055 defaults where a field is absent.

        Raises:
            CertificateFormatError: they are not RSASSA-PSS-params.
        """
        data = self.signature_parameters
        reader = _Reader(data, f"{self.what} RSASSA-PSS parameters")
        hash_oid, mgf, mgf_hash, salt, trailer = _SHA1, _MGF1, _SHA1, 20, 1
        for field in reader.children(reader.expect(0, len(data), _SEQUENCE, "RSASSA-PSS-params")):
            if field.tag not in (0xA0, 0xA1, 0xA2, 0xA3):
                raise reader.error(field.start, f"tag {field.tag:#04x}; expected [0] to [3]")
            inner = reader.tlv(field.body, field.end)
            if field.tag == 0xA0:
                hash_oid = reader.oid(reader.first(inner, "hashAlgorithm"), "hashAlgorithm")
            elif field.tag == 0xA1:
                parts = reader.children(inner) if inner.tag == _SEQUENCE else []
                if len(parts) != 2:
                    raise reader.error(inner.start, "maskGenAlgorithm: expected an algorithm and its hash")
                mgf = reader.oid(parts[0], "maskGenAlgorithm")
                mgf_hash = reader.oid(reader.first(parts[1], "MGF hash"), "MGF hash")
            elif field.tag == 0xA2:
                salt = reader.integer(inner, "saltLength")
            else:
                trailer = reader.integer(inner, "trailerField")
        return PssParameters(hash_oid, mgf, mgf_hash, salt, trailer)


def _name(reader: _Reader, tlv: _Tlv, name: str) -> str:
    """The common name of a Name (the last one, as RFC 5280 names are read); "" when there is none."""
    if tlv.tag != _SEQUENCE:
        raise reader.error(tlv.start, f"{name}: tag {tlv.tag:#04x}; expected a SEQUENCE (Name)")
    common = ""
    for rdn in reader.children(tlv):
        if rdn.tag != _SET:
            raise reader.error(rdn.start, f"{name}: tag {rdn.tag:#04x}; expected a SET (RelativeDistinguishedName)")
        for pair in reader.children(rdn):
            parts = reader.children(pair) if pair.tag == _SEQUENCE else []
            if len(parts) != 2:
                raise reader.error(pair.start, f"{name}: expected an attribute type and value")
            if reader.oid(parts[0], name) == _COMMON_NAME:
                encoding = _STRINGS.get(parts[1].tag)
                if encoding is None:
                    raise reader.error(
                        parts[1].start, f"{name}: common name tag {parts[1].tag:#04x}; expected a string"
                    )
                common = reader.content(parts[1]).decode(encoding, "replace")
    return common


def _algorithm(reader: _Reader, tlv: _Tlv, name: str) -> tuple[str, bytes]:
    if tlv.tag != _SEQUENCE:
        raise reader.error(tlv.start, f"{name}: tag {tlv.tag:#04x}; expected a SEQUENCE (AlgorithmIdentifier)")
    parts = reader.children(tlv)
    if not 1 <= len(parts) <= 2:
        raise reader.error(tlv.start, f"{name}: {len(parts)} elements; expected an OID and optional parameters")
    return reader.oid(parts[0], name), reader.raw(parts[1]) if len(parts) == 2 else b""


def _extensions(reader: _Reader, tlv: _Tlv) -> dict[str, bytes]:
    wrapped = reader.children(tlv)
    if len(wrapped) != 1 or wrapped[0].tag != _SEQUENCE:
        raise reader.error(tlv.start, "extensions: expected one SEQUENCE inside [3]")
    found: dict[str, bytes] = {}
    for extension in reader.children(wrapped[0]):
        parts = reader.children(extension) if extension.tag == _SEQUENCE else []
        if len(parts) not in (2, 3) or parts[-1].tag != _OCTET_STRING or (len(parts) == 3 and parts[1].tag != _BOOLEAN):
            raise reader.error(
                extension.start, "extension: expected an OID, an optional critical flag, an OCTET STRING"
            )
        oid = reader.oid(parts[0], "extnID")
        if oid in found:
            raise reader.error(extension.start, f"extension {oid} given twice; expected once")
        found[oid] = reader.content(parts[-1])
    return found


def parse_certificate(der: bytes, what: str) -> Certificate:
    """Read one DER certificate.

    Args:
        der: exactly one certificate, nothing after it.
        what: how errors name it.

    Returns:
        Its parts.

    Raises:
        CertificateFormatError: not a certificate, or bytes after it.
    """
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise CertificateFormatError(f"{what}: {len(der)} bytes; expected at most {MAX_CERTIFICATE_BYTES}")
    reader = _Reader(der, what)
    outer = reader.expect(0, len(der), _SEQUENCE, "Certificate")
    if outer.end != len(der):
        raise reader.error(outer.end, f"{len(der) - outer.end} bytes after the certificate; expected none")
    parts = reader.children(outer)
    if len(parts) != 3:
        raise reader.error(0, f"Certificate has {len(parts)} elements; expected 3 (tbsCertificate, algorithm, value)")
    tbs, algorithm, value = parts
    if tbs.tag != _SEQUENCE or value.tag != _BIT_STRING or value.end - value.body < 1 or der[value.body] != 0:
        raise reader.error(tbs.start, "expected a tbsCertificate SEQUENCE and a signature BIT STRING")
    fields = reader.children(tbs)
    if fields and fields[0].tag == 0xA0:  # version [0] EXPLICIT; v1 certificates have none
        fields = fields[1:]
    if len(fields) < 6:
        raise reader.error(tbs.start, f"tbsCertificate has {len(fields)} fields after its version; expected 6 or more")
    serial, inner_algorithm, issuer, validity, subject, spki = fields[:6]
    outer_algorithm = _algorithm(reader, algorithm, "signatureAlgorithm")
    if _algorithm(reader, inner_algorithm, "signature") != outer_algorithm:
        raise reader.error(inner_algorithm.start, "tbsCertificate's signature algorithm differs from the outer one")
    times = reader.children(validity) if validity.tag == _SEQUENCE else []
    if len(times) != 2:
        raise reader.error(validity.start, "validity: expected notBefore and notAfter")
    if spki.tag != _SEQUENCE:
        raise reader.error(spki.start, f"subjectPublicKeyInfo: tag {spki.tag:#04x}; expected a SEQUENCE")
    extensions: dict[str, bytes] = {}
    for extra in fields[6:]:
        if extra.tag == 0xA3:
            extensions = _extensions(reader, extra)
        elif extra.tag not in (0x81, 0xA1, 0x82, 0xA2):  # issuerUniqueID, subjectUniqueID
            raise reader.error(extra.start, f"tbsCertificate field tag {extra.tag:#04x}; expected [1], [2] or [3]")
    return Certificate(
        what=what,
        der=der,
        tbs=reader.raw(tbs),
        serial=reader.integer(serial, "serialNumber"),
        signature_algorithm=outer_algorithm[0],
        signature_parameters=outer_algorithm[1],
        signature=der[value.body + 1 : value.end],
        issuer=reader.raw(issuer),
        subject=reader.raw(subject),
        issuer_cn=_name(reader, issuer, "issuer"),
        subject_cn=_name(reader, subject, "subject"),
        not_before=reader.time(times[0], "notBefore"),
        not_after=reader.time(times[1], "notAfter"),
        spki=reader.raw(spki),
        extensions=MappingProxyType(extensions),
    )


_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def read_certificates(data: bytes, what: str) -> list[bytes]:
    """Split a certificate file into DER certificates: one DER certificate, or PEM with one or more.

    Args:
        data: the file's bytes.
        what: how errors name it.

    Returns:
        The DER of each certificate, in file order.

    Raises:
        CertificateFormatError: neither DER nor PEM certificates, a PEM block
            of another kind, bad base64, or too many certificates.
    """
    if data[:1] == bytes([_SEQUENCE]):
        return [data]
    blocks = _PEM.findall(data)
    if not blocks:
        raise CertificateFormatError(
            f"{what}: no certificate found; expected DER or PEM '-----BEGIN CERTIFICATE-----' blocks"
        )
    if len(blocks) > _MAX_CERTIFICATES:
        raise CertificateFormatError(f"{what}: {len(blocks)} certificates; expected at most {_MAX_CERTIFICATES}")
    found = []
    for number, (kind, body) in enumerate(blocks, 1):
        label = kind.decode("ascii")
        if label != "CERTIFICATE":
            raise CertificateFormatError(f"{what}: PEM block {number} is '{label}'; expected 'CERTIFICATE'")
        try:
            found.append(binascii.a2b_base64(b"".join(body.split()), strict_mode=True))
        except binascii.Error as error:
            raise CertificateFormatError(
                f"{what}: PEM block {number}: bad base64 ({error}); expected base64"
            ) from error
    return found
