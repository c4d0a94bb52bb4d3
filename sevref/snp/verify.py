"""The signature of an SEV-SNP attestation report, checked offline to AMD's roots.

The chain (AMD VCEK specification 57230; go-sev-guest ``verify/verify.go``):

1. the ARK signs itself, and signs the ASK (the ASVK for VLEKs), each with
   RSASSA-PSS over SHA-384 (salt and MGF1 hash read from the certificate's
   parameters: 48 bytes, MGF1 with SHA-384);
2. the ASK (or ASVK) signs the VCEK (or VLEK), RSASSA-PSS/SHA-384 again;
3. the VCEK's P-384 key signs the report: ECDSA with SHA-384 over bytes
   0x000..0x29f, r and s little-endian at 0x2a0 and 0x2e8
   (:func:`sevref.binfmt.report.signature_rs`);
4. the VCEK's AMD extensions (1.3.6.1.4.1.3704.1.*) say which chip and TCB
   it was issued for, and must agree with the report: hwid (1.4) with
   CHIP_ID, blSPL/teeSPL/snpSPL/ucodeSPL (3.1, 3.2, 3.3, 3.8), and on Turin
   fmcSPL (3.9), with REPORTED_TCB.

The roots are AMD's certificates built into sevref (one file a product,
:mod:`sevref.snp.products`) unless the verifier gives its own. The ARK and
ASK an extended report carries are not used: they are the host's word, and
a chain is trusted only through the roots the verifier holds.

On Turin, public implementations ask AMD's KDS for a VCEK by the first 8
bytes of CHIP_ID (virtee snpguest ``src/fetch.rs``, Microsoft CCF
``scripts/fetch_amd_collateral.py``: "hwid is explicitly shortened for turin
... See Table 11 (section 3.1) of the VCEK spec"), while virtee's ``sev``
crate compares the VCEK's hwid with all 64 bytes. A Turin VCEK whose hwid is
those 8 bytes is accepted when they are the first 8 of CHIP_ID; any other
VCEK's hwid must be the whole CHIP_ID.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sevref.binfmt.report import (
    CERT_GUIDS,
    SIGNING_KEY_VCEK,
    SIGNING_KEY_VLEK,
    VCEK_GUID,
    VLEK_GUID,
    AttestationReport,
    parse_cert_table,
    parse_report,
    parse_tcb,
    signature_rs,
    signed_bytes,
    signing_key,
)
from sevref.errors import ReportFormatError
from sevref.snp import CertificateFormatError, EvidenceError
from sevref.snp.products import Product, product
from sevref.snp.x509 import Certificate, parse_certificate, read_certificates

__all__ = [
    "RootProvider",
    "Roots",
    "VerifiedReport",
    "endorsement_from_table",
    "load_roots",
    "verify_report",
]

_RSASSA_PSS = "1.2.840.113549.1.1.10"
_SHA384 = "2.16.840.1.101.3.4.2.2"
_MGF1 = "1.2.840.113549.1.1.8"
_ECDSA_P384_SHA384 = 1  # SIGNATURE_ALGO (SNP ABI Table 23; Table 139 "Signature Algorithms")
_AMD = "1.3.6.1.4.1.3704.1."
_PRODUCT_NAME = _AMD + "2"
_HWID = _AMD + "4"
_SPLS = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
"""TCB part to the arc of its VCEK extension (AMD 57230 Table 10; fmcSPL on Turin)."""
_KPS = {"bootloader": "blSPL", "tee": "teeSPL", "snp": "snpSPL", "microcode": "ucodeSPL", "fmc": "fmcSPL"}
_KEY_NAMES = {SIGNING_KEY_VCEK: "VCEK", SIGNING_KEY_VLEK: "VLEK"}
_SHORT_HWID = 8


@dataclass(frozen=True)
class Roots:
    """An ARK and the ASK (or ASVK) it signed: the anchors of a chain."""

    ark: Certificate
    """The self-signed AMD root key."""
    ask: Certificate
    """The AMD signing key (ASK) or, for VLEKs, the ASVK."""
    source: str
    """Where they came from, as the verifier's output says it."""


RootProvider = Callable[[Product, int], Roots]
"""Gives the roots for a product and a signing key (:data:`SIGNING_KEY_VCEK` or :data:`SIGNING_KEY_VLEK`)."""


def load_roots(data: bytes, source: str) -> Roots:
    """Read a PEM file with an ARK and an ASK (or ASVK), in either order.

    Args:
        data: the file's bytes.
        source: how to name it.

    Returns:
        The roots (not yet checked: :func:`verify_report` checks them).

    Raises:
        CertificateFormatError: not two certificates, or none of them self-issued.
    """
    ders = read_certificates(data, source)
    if len(ders) != 2:
        raise CertificateFormatError(f"{source}: {len(ders)} certificates; expected 2 (the ARK and the ASK or ASVK)")
    first, second = (parse_certificate(der, f"{source} certificate {n}") for n, der in enumerate(ders, 1))
    if first.issuer == first.subject and second.issuer != second.subject:
        return Roots(ark=first, ask=second, source=source)
    if second.issuer == second.subject and first.issuer != first.subject:
        return Roots(ark=second, ask=first, source=source)
    raise CertificateFormatError(
        f"{source}: expected one self-issued ARK and one ASK it issued; found subjects "
        f"{first.subject_cn!r} (issuer {first.issuer_cn!r}) and {second.subject_cn!r} (issuer {second.issuer_cn!r})"
    )


@dataclass(frozen=True)
class VerifiedReport:
    """A report whose signature verified to the roots, with what its chain says."""

    report: AttestationReport
    """The report."""
    key: str
    """"VCEK" or "VLEK"."""
    product: Product
    """The product the VCEK names."""
    product_name: str
    """The VCEK's product name, stepping included ("Milan-B0")."""
    roots: str
    """Where the roots came from."""

    def to_dict(self) -> dict[str, object]:
        """The JSON form the verifier prints.

        Returns:
            Key, product, product name, roots and the REPORTED_TCB it was checked against.
        """
        tcb = parse_tcb(int(self.report.reported_tcb), self.product.turin_tcb)
        return {
            "key": self.key,
            "product": self.product.name,
            "product_name": self.product_name,
            "roots": self.roots,
            "reported_tcb": tcb.parts(),
        }


def endorsement_from_table(table: bytes, report: bytes, what: str) -> bytes:
    """The VCEK or VLEK a report's certificate table gives, whichever the report says signed it.

    Args:
        table: the certificate table (SNP_GET_EXT_REPORT's certificates).
        report: the report's bytes.
        what: how to name the table in errors.

    Returns:
        The certificate's bytes.

    Raises:
        CertificateFormatError: a malformed table, or none of the certificate needed.
        ReportFormatError: a malformed report.
    """
    key = signing_key(parse_report(report))
    try:
        entries = dict(parse_cert_table(table))
    except ReportFormatError as error:
        raise CertificateFormatError(f"{what}: {error}") from error
    wanted = VLEK_GUID if key == SIGNING_KEY_VLEK else VCEK_GUID
    if wanted not in entries:
        found = ", ".join(f"{CERT_GUIDS.get(g, 'unknown')} {g}" for g in entries) or "no entries"
        raise CertificateFormatError(
            f"{what}: no {CERT_GUIDS[wanted]} entry ({wanted}), which the report's SIGNER_INFO names; found {found}"
        )
    return entries[wanted]  # its ASK/ASVK and ARK come from the roots the verifier holds, never from the table


def _public_key(cert: Certificate) -> object:
    try:
        return serialization.load_der_public_key(cert.spki)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise CertificateFormatError(
            f"{cert.what}: its subjectPublicKeyInfo is not a key sevref reads ({error})"
        ) from error


def _check_signed(child: Certificate, issuer: Certificate, issuer_name: str) -> None:
    """``issuer`` issued ``child``: names chain, and its RSASSA-PSS/SHA-384 signature verifies."""
    if child.issuer != issuer.subject:
        raise EvidenceError(
            f"{child.what}: issued by {child.issuer_cn!r}; expected {issuer_name}, whose name "
            f"({issuer.subject_cn!r}, compared whole) differs"
        )
    if child.signature_algorithm != _RSASSA_PSS:
        raise EvidenceError(
            f"{child.what}: signed with {child.signature_algorithm}; expected RSASSA-PSS ({_RSASSA_PSS}) as AMD signs"
        )
    params = child.pss_parameters()
    if (params.hash, params.mgf, params.mgf_hash, params.trailer) != (_SHA384, _MGF1, _SHA384, 1):
        raise EvidenceError(
            f"{child.what}: RSASSA-PSS with hash {params.hash}, MGF {params.mgf} over {params.mgf_hash}; "
            f"expected SHA-384 ({_SHA384}) and MGF1 with SHA-384 (AMD 57230)"
        )
    key = _public_key(issuer)
    if not isinstance(key, rsa.RSAPublicKey):
        raise EvidenceError(f"{issuer.what}: its key is {type(key).__name__}; expected an RSA key")
    if not 0 <= params.salt_length <= key.key_size // 8:
        raise EvidenceError(f"{child.what}: RSASSA-PSS salt of {params.salt_length} bytes; expected 48")
    try:
        key.verify(
            child.signature,
            child.tbs,
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=params.salt_length),
            hashes.SHA384(),
        )
    except (InvalidSignature, ValueError) as error:
        raise EvidenceError(f"{child.what}: its signature does not verify with the key of {issuer_name}") from error


def _check_time(cert: Certificate, at: datetime) -> None:
    if not cert.not_before <= at <= cert.not_after:
        raise EvidenceError(
            f"{cert.what}: valid from {cert.not_before:%Y-%m-%dT%H:%M:%SZ} to {cert.not_after:%Y-%m-%dT%H:%M:%SZ}; "
            f"checked at {at:%Y-%m-%dT%H:%M:%SZ}"
        )


def _check_chain(roots: Roots, endorsement: Certificate, key_name: str, at: datetime) -> None:
    ark, ask = roots.ark, roots.ask
    ask_name = "ASVK" if key_name == "VLEK" else "ASK"
    if not ark.is_ca or not ask.is_ca:
        raise EvidenceError(f"{roots.source}: the ARK and the {ask_name} must be CA certificates (basicConstraints cA)")
    _check_signed(ark, ark, f"the ARK {ark.subject_cn!r} of {roots.source} (self-signed)")
    _check_signed(ask, ark, f"the ARK of {roots.source}")
    _check_signed(endorsement, ask, f"the {ask_name} of {roots.source}")
    for cert in (ark, ask, endorsement):
        _check_time(cert, at)


def _check_report_signature(report: AttestationReport, data: bytes, endorsement: Certificate) -> None:
    if int(report.signature_algo) != _ECDSA_P384_SHA384:
        raise EvidenceError(
            f"attestation report at offset 0x34: SIGNATURE_ALGO {int(report.signature_algo)}; "
            f"expected {_ECDSA_P384_SHA384} (ECDSA P-384 with SHA-384)"
        )
    key = _public_key(endorsement)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise EvidenceError(f"{endorsement.what}: its key is not an ECDSA P-384 key; expected one (AMD 57230)")
    r, s = signature_rs(report)
    try:
        key.verify(encode_dss_signature(r, s), signed_bytes(data), ec.ECDSA(hashes.SHA384()))
    except (InvalidSignature, ValueError) as error:
        raise EvidenceError(
            f"attestation report: its signature (offset 0x2a0) does not verify with the key of {endorsement.what}"
        ) from error


def _ia5(cert: Certificate, oid: str, name: str) -> str:
    value = cert.extensions.get(oid)
    if value is None:
        raise EvidenceError(f"{cert.what}: no {name} extension ({oid}); expected one (AMD 57230 Table 10)")
    if len(value) < 2 or value[0] != 0x16 or value[1] != len(value) - 2 or value[1] >= 0x80:
        raise CertificateFormatError(f"{cert.what}: {name} extension ({oid}): expected a short IA5String")
    return value[2:].decode("ascii", "replace")


def _spl(cert: Certificate, part: str) -> int:
    oid = _AMD + _SPLS[part]
    value = cert.extensions.get(oid)
    if value is None:
        raise EvidenceError(f"{cert.what}: no {_KPS[part]} extension ({oid}); expected one (AMD 57230 Table 10)")
    if not 3 <= len(value) <= 4 or value[0] != 0x02 or value[1] != len(value) - 2:
        raise CertificateFormatError(f"{cert.what}: {_KPS[part]} extension ({oid}): expected an INTEGER 0..255")
    number = int.from_bytes(value[2:], "big", signed=True)
    if not 0 <= number <= 255:
        raise CertificateFormatError(f"{cert.what}: {_KPS[part]} extension ({oid}) is {number}; expected 0..255")
    return number


def _hwid(cert: Certificate) -> bytes:
    value = cert.extensions.get(_HWID)
    if value is None:
        raise EvidenceError(f"{cert.what}: no hwid extension ({_HWID}); expected the chip's CHIP_ID")
    # AMD's KDS writes the 64 bytes untagged; go-sev-guest kds/kds.go asn1OctetString also reads an OCTET STRING.
    if len(value) in (64, _SHORT_HWID):
        return value
    if len(value) >= 2 and value[0] == 0x04 and value[1] == len(value) - 2:
        return value[2:]
    raise CertificateFormatError(f"{cert.what}: hwid extension ({_HWID}) of {len(value)} bytes; expected 64")


def _check_claims(report: AttestationReport, endorsement: Certificate, row: Product, key: int) -> None:
    """The VCEK's extensions against the report (go-sev-guest verify.go validateVcekExtensions; snpguest verify.rs)."""
    if int(report.version) >= 3 and int(report.cpuid_fam_id) != row.cpuid_family:
        raise EvidenceError(
            f"attestation report at offset 0x188: CPUID family {int(report.cpuid_fam_id):#x}; expected "
            f"{row.cpuid_family:#x}, the family of {row.name} that {endorsement.what} names"
        )
    tcb = parse_tcb(int(report.reported_tcb), row.turin_tcb)
    for part, level in tcb.parts().items():
        certified = _spl(endorsement, part)
        if certified != level:
            raise EvidenceError(
                f"{endorsement.what}: {_KPS[part]} {certified}; the report's REPORTED_TCB (offset 0x180, "
                f"{int(report.reported_tcb):#018x}) has {part} {level}: the certificate is for another TCB"
            )
    if key != SIGNING_KEY_VCEK:
        return  # a VLEK is issued to a cloud provider, not to a chip: it has no hwid (AMD 57230)
    hwid, chip = _hwid(endorsement), bytes(report.chip_id)
    if hwid == chip or (row.short_hwid and len(hwid) == _SHORT_HWID and hwid == chip[:_SHORT_HWID]):
        return
    masked = " (MASK_CHIP_ID is set in SIGNER_INFO: the report carries no chip id)" if report.signer_info & 2 else ""
    raise EvidenceError(
        f"{endorsement.what}: hwid {hwid.hex()}; expected the report's CHIP_ID (offset 0x1a0) {chip.hex()}{masked}"
    )


def verify_report(data: bytes, endorsement: bytes, what: str, roots: RootProvider, at: datetime) -> VerifiedReport:
    """Check a report's signature to AMD's roots, and the VCEK's claims against the report.

    Args:
        data: the report's bytes.
        endorsement: the VCEK or VLEK, DER or PEM (one certificate).
        what: how to name the certificate in errors (e.g. ``VCEK vcek.pem``).
        roots: gives the roots for the product the certificate names.
        at: the time the certificates must be valid at.

    Returns:
        What was verified.

    Raises:
        ReportFormatError: a malformed report or certificate (CertificateFormatError).
        EvidenceError: the report is not signed by a key that chains to the roots,
            or the VCEK is for another chip or TCB.
    """
    report = parse_report(data)
    key = signing_key(report)
    key_name = _KEY_NAMES.get(key)
    if key_name is None:
        raise EvidenceError(
            f"attestation report at offset 0x48: SIGNER_INFO.SIGNING_KEY {key}; expected 0 (VCEK) or 1 (VLEK): "
            + ("the report is not signed" if key == 7 else "a reserved value")
        )
    ders = read_certificates(endorsement, what)
    if len(ders) != 1:
        raise CertificateFormatError(f"{what}: {len(ders)} certificates; expected one {key_name}")
    cert = parse_certificate(ders[0], what)
    if cert.subject_cn != f"SEV-{key_name}":
        raise EvidenceError(
            f"{what}: subject {cert.subject_cn!r}; expected 'SEV-{key_name}', the key the report's SIGNER_INFO names"
        )
    product_name = _ia5(cert, _PRODUCT_NAME, "productName")
    row = product(product_name, what)
    anchors = roots(row, key)
    _check_chain(anchors, cert, key_name, at)
    _check_report_signature(report, data, cert)
    _check_claims(report, cert, row, key)
    return VerifiedReport(report=report, key=key_name, product=row, product_name=product_name, roots=anchors.source)
