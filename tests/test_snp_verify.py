"""SEV-SNP report signatures: AMD's real chain and report, test chains, and openssl's word on both.

The real vectors are go-sev-guest's (tests/data/snp/README.md). The test
chains are made here with ``cryptography``: an RSA-4096 ARK and ASK signing
with RSASSA-PSS/SHA-384 (salt 48, MGF1-SHA-384) as AMD's do, and a P-384
VCEK with AMD's extensions. openssl (installed by ``make hsm``) checks the
same chains and signatures independently: sevref and openssl must agree on
good and tampered inputs alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import NameOID

from sevref._resources import resource
from sevref.binfmt.report import (
    ARK_GUID,
    ASK_GUID,
    SIGNED_SIZE,
    VCEK_GUID,
    VLEK_GUID,
    AttestationReport,
    parse_report,
    parse_tcb,
    signature_rs,
)
from sevref.snp import CertificateFormatError, EvidenceError
from sevref.snp.products import PRODUCTS, Product
from sevref.snp.verify import RootProvider, Roots, endorsement_from_table, load_roots, verify_report
from sevref.snp.x509 import parse_certificate, read_certificates
from tests.conftest import REPO

DATA = REPO / "tests" / "data" / "snp"
MILAN_REPORT = DATA / "attestation.bin"
MILAN_VCEK = DATA / "vcek.testcer"
AT = datetime(2026, 2, 1, tzinfo=UTC)
MILAN_TCB = int.from_bytes(bytes([3, 0, 0, 0, 0, 0, 8, 115]), "little")  # bl 3, tee 0, snp 8, ucode 115
TURIN_TCB = int.from_bytes(bytes([1, 3, 0, 9, 0, 0, 0, 72]), "little")  # fmc 1, bl 3, tee 0, snp 9, ucode 72
AMD = "1.3.6.1.4.1.3704.1."


# --------------------------------------------------------------------------- test chains


def _name(common: str, org: str = "Advanced Micro Devices") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


@cache
def rsa_key(label: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


@cache
def ec_key(label: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _cert(
    subject: x509.Name,
    issuer: x509.Name,
    public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    signer: rsa.RSAPrivateKey,
    *,
    ca: bool,
    serial: int = 1,
    extensions: list[x509.ExtensionType] | None = None,
    not_after: datetime = datetime(2045, 1, 1, tzinfo=UTC),
    rsa_padding: padding.PSS | padding.PKCS1v15 | None = None,
    algorithm: hashes.SHA256 | hashes.SHA384 | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(not_after)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    for extension in extensions or []:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(signer, algorithm or hashes.SHA384(), rsa_padding=rsa_padding or PSS)


def _der_integer(value: int) -> bytes:
    body = value.to_bytes(1 if value < 0x80 else 2, "big")
    return bytes([0x02, len(body)]) + body


def amd_extensions(product_name: str, tcb: dict[str, int], hwid: bytes | None) -> list[x509.ExtensionType]:
    """AMD's VCEK extensions (AMD 57230 Table 10): struct version, product name, SPLs, hwid (untagged, as KDS writes it)."""
    arcs = {"bootloader": "3.1", "tee": "3.2", "snp": "3.3", "microcode": "3.8", "fmc": "3.9"}
    values = {AMD + "1": _der_integer(0), AMD + "2": bytes([0x16, len(product_name)]) + product_name.encode()}
    for arc in ("3.4", "3.5", "3.6", "3.7"):
        values[AMD + arc] = _der_integer(0)
    for part, level in tcb.items():
        values[AMD + arcs[part]] = _der_integer(level)
    if hwid is not None:
        values[AMD + "4"] = hwid
    return [x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value) for oid, value in values.items()]


@dataclass(frozen=True)
class Chain:
    """A test ARK, ASK (or ASVK) and VCEK (or VLEK), with the VCEK's private key."""

    ark: x509.Certificate
    ask: x509.Certificate
    vcek: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    product: str

    @property
    def roots_pem(self) -> bytes:
        return self.ask.public_bytes(serialization.Encoding.PEM) + self.ark.public_bytes(serialization.Encoding.PEM)

    @property
    def vcek_der(self) -> bytes:
        return self.vcek.public_bytes(serialization.Encoding.DER)

    def roots(self) -> Roots:
        return load_roots(self.roots_pem, "test roots")


def make_chain(
    product_name: str = "Milan-B0",
    tcb: dict[str, int] | None = None,
    hwid: bytes | None = bytes(range(64)),
    vlek: bool = False,
    label: str = "test",
    vcek_not_after: datetime = datetime(2033, 1, 1, tzinfo=UTC),
    *,
    ask_ca: bool = True,
    vcek_key: ec.EllipticCurvePrivateKey | None = None,
    raw: dict[str, bytes | None] | None = None,
    vcek_padding: padding.PSS | padding.PKCS1v15 | None = None,
    vcek_hash: hashes.SHA256 | hashes.SHA384 | None = None,
) -> Chain:
    """A chain like AMD's, with keys made for the tests (one RSA-4096 pair per label, made once a session)."""
    product = product_name.partition("-")[0]
    tcb = tcb if tcb is not None else parse_tcb(MILAN_TCB, False).parts()
    ark_name = _name(f"ARK-{product}", "Not AMD")
    ask_name = _name(f"SEV-VLEK-{product}" if vlek else f"SEV-{product}", "Not AMD")
    ark_key, ask_key = rsa_key(f"{label}-ark"), rsa_key(f"{label}-ask")
    ark = _cert(ark_name, ark_name, ark_key.public_key(), ark_key, ca=True)
    ask = _cert(ask_name, ark_name, ask_key.public_key(), ark_key, ca=ask_ca)
    key = vcek_key or ec_key(label)
    extensions = amd_extensions(product_name, tcb, None if vlek else hwid)
    for oid, value in (raw or {}).items():  # AMD's extensions replaced (or left out) as a test wants
        extensions = [e for e in extensions if isinstance(e, x509.UnrecognizedExtension) and e.oid.dotted_string != oid]
        if value is not None:
            extensions.append(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value))
    vcek = _cert(
        _name("SEV-VLEK" if vlek else "SEV-VCEK"),
        ask_name,
        key.public_key(),
        ask_key,
        ca=False,
        extensions=extensions,
        not_after=vcek_not_after,
        rsa_padding=vcek_padding,
        algorithm=vcek_hash,
    )
    return Chain(ark, ask, vcek, key, product)


def sign(data: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """Sign a report's bytes 0x000..0x29f in place of its signature (r, s little-endian, 72 bytes each)."""
    r, s = decode_dss_signature(key.sign(data[:SIGNED_SIZE], ec.ECDSA(hashes.SHA384())))
    signature = r.to_bytes(72, "little") + s.to_bytes(72, "little")
    return data[:SIGNED_SIZE] + signature + data[SIGNED_SIZE + 144 :]


def signed_report(chain: Chain, **fields: object) -> bytes:
    """A report with the chain's chip id and TCB (unless given), signed by its VCEK."""
    defaults: dict[str, object] = {
        "version": 3,
        "policy": 0x30000,
        "signature_algo": 1,
        "cpuid_fam_id": 0x1A if chain.product == "Turin" else 0x19,
        "chip_id": bytes(range(64)),
        "reported_tcb": TURIN_TCB if chain.product == "Turin" else MILAN_TCB,
        "current_major": 1,
        "current_minor": 55,
    }
    return sign(AttestationReport.build(**{**defaults, **fields}).to_bytes(), chain.key)


def builtin(row: Product, key: int) -> Roots:
    name = row.roots(key)
    return load_roots(resource("snp", "roots", name).read_bytes(), f"AMD's built-in {row.name} roots ({name})")


def given(roots: Roots) -> RootProvider:
    return lambda _row, _key: roots


# --------------------------------------------------------------------------- AMD's real chain


def test_a_real_milan_report_verifies_to_the_builtin_roots_without_a_deprecation_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cryptography's warning about serial number 0 would fail here
        verified = verify_report(MILAN_REPORT.read_bytes(), MILAN_VCEK.read_bytes(), "VCEK", builtin, AT)
    assert parse_certificate(MILAN_VCEK.read_bytes(), "VCEK").serial == 0
    assert verified.to_dict() == {
        "key": "VCEK",
        "product": "Milan",
        "product_name": "Milan-B0",
        "roots": "AMD's built-in Milan roots (ask_ark_milan.pem)",
        "reported_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68},
    }


def test_every_changed_byte_of_the_signed_part_is_refused() -> None:
    data = MILAN_REPORT.read_bytes()
    vcek = MILAN_VCEK.read_bytes()
    for offset in range(0, SIGNED_SIZE + 144, 37):  # the signed bytes and the signature (r, s)
        changed = bytearray(data)
        changed[offset] ^= 0x01
        if offset < 4:
            continue  # the version: a report sevref cannot read (test_report.py)
        with pytest.raises(EvidenceError):
            verify_report(bytes(changed), vcek, "VCEK", builtin, AT)


def test_every_product_has_its_roots_built_in_and_they_verify() -> None:
    for row in PRODUCTS:
        for key, ask in ((0, f"SEV-{row.name}"), (1, f"SEV-VLEK-{row.name}")):
            roots = builtin(row, key)
            assert (roots.ark.subject_cn, roots.ask.subject_cn) == (f"ARK-{row.name}", ask)
            assert roots.ark.not_after > datetime(2045, 1, 1, tzinfo=UTC)
            text = resource("snp", "roots", row.roots(key)).read_text()
            assert "Source: AMD KDS https://kdsintf.amd.com/" in text and "google/go-sev-guest" in text
    # A new product is one file and one row: the files are the rows' files, nothing else.
    files = {p.name for p in resource("snp", "roots").glob("*.pem")}
    assert files == {name for row in PRODUCTS for name in (row.vcek_roots, row.vlek_roots)}


def test_the_wheel_carries_the_roots() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'packages = ["sevref"]' in text  # hatchling puts every file of the package in the wheel
    assert all(resource("snp", "roots", row.vcek_roots).is_relative_to(REPO / "sevref") for row in PRODUCTS)


# --------------------------------------------------------------------------- test chains


def test_a_test_chain_verifies_only_through_its_own_roots() -> None:
    chain = make_chain()
    report = signed_report(chain)
    verified = verify_report(report, chain.vcek_der, "VCEK", given(chain.roots()), AT)
    assert (verified.key, verified.product.name, verified.roots) == ("VCEK", "Milan", "test roots")
    with pytest.raises(EvidenceError, match="issued by 'SEV-Milan'; expected the ASK of AMD's built-in Milan roots"):
        verify_report(report, chain.vcek_der, "VCEK", builtin, AT)
    # The same names as AMD's, other keys: the signature tells.
    other = make_chain(label="other")
    with pytest.raises(EvidenceError, match="its signature does not verify with the key of the ASK of test roots"):
        mixed = Roots(ark=chain.roots().ark, ask=chain.roots().ask, source="test roots")
        verify_report(signed_report(other), other.vcek_der, "VCEK", given(mixed), AT)


def test_a_vcek_must_be_valid_at_the_time_of_checking() -> None:
    chain = make_chain(vcek_not_after=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(EvidenceError, match="valid from 2020-01-01T00:00:00Z to 2026-01-01T00:00:00Z; checked at"):
        verify_report(signed_report(chain), chain.vcek_der, "VCEK", given(chain.roots()), AT)
    verify_report(signed_report(chain), chain.vcek_der, "VCEK", given(chain.roots()), AT - timedelta(days=60))


CLAIMS: dict[str, tuple[dict[str, object], str]] = {
    "another chip": ({"chip_id": bytes(64)}, "hwid 000102"),
    "another microcode": (
        {"reported_tcb": MILAN_TCB + (1 << 56)},
        re.escape("ucodeSPL 115; the report's REPORTED_TCB (offset 0x180, 0x7408000000000003) has microcode 116"),
    ),
    "another bootloader": ({"reported_tcb": MILAN_TCB - 1}, "blSPL 3; the report's REPORTED_TCB"),
    "another family": ({"cpuid_fam_id": 0x1A}, "CPUID family 0x1a; expected 0x19, the family of Milan"),
    "a VLEK report": ({"signer_info": 1 << 2}, "subject 'SEV-VCEK'; expected 'SEV-VLEK'"),
    "an unsigned report": (
        {"signer_info": 7 << 2},
        "SIGNING_KEY 7; expected 0 \\(VCEK\\) or 1 \\(VLEK\\): the report is not signed",
    ),
    "another algorithm": ({"signature_algo": 2}, "SIGNATURE_ALGO 2; expected 1"),
}


@pytest.mark.parametrize("name", CLAIMS)
def test_the_vceks_claims_must_agree_with_the_report(name: str) -> None:
    fields, message = CLAIMS[name]
    chain = make_chain()
    with pytest.raises(EvidenceError, match=message):
        verify_report(signed_report(chain, **fields), chain.vcek_der, "VCEK", given(chain.roots()), AT)


def test_turin_reads_its_tcb_layout_fmc_and_a_short_hwid() -> None:
    tcb = parse_tcb(TURIN_TCB, True).parts()
    assert tcb == {"fmc": 1, "bootloader": 3, "tee": 0, "snp": 9, "microcode": 72}
    chip = bytes(range(1, 9)) + bytes(56)
    for hwid in (chip[:8], chip):
        chain = make_chain("Turin-B0", tcb, hwid)
        verified = verify_report(signed_report(chain, chip_id=chip), chain.vcek_der, "VCEK", given(chain.roots()), AT)
        assert verified.to_dict()["reported_tcb"] == tcb
    chain = make_chain("Turin-B0", tcb, chip[:8])
    with pytest.raises(EvidenceError, match="hwid 0102030405060708; expected the report's CHIP_ID"):
        verify_report(signed_report(chain, chip_id=bytes(64)), chain.vcek_der, "VCEK", given(chain.roots()), AT)
    chain = make_chain("Turin-B0", {k: v for k, v in tcb.items() if k != "fmc"}, chip)
    with pytest.raises(EvidenceError, match=r"no fmcSPL extension \(1.3.6.1.4.1.3704.1.3.9\)"):
        verify_report(signed_report(chain, chip_id=chip), chain.vcek_der, "VCEK", given(chain.roots()), AT)
    # Milan has no short hwid.
    chain = make_chain(hwid=bytes(range(8)))
    with pytest.raises(EvidenceError, match="hwid 0001020304050607; expected"):
        verify_report(signed_report(chain), chain.vcek_der, "VCEK", given(chain.roots()), AT)


def test_vlek_reports_verify_through_a_vlek_chain() -> None:
    chain = make_chain(vlek=True)
    report = signed_report(chain, signer_info=1 << 2)
    verified = verify_report(report, chain.vcek_der, "VLEK", given(chain.roots()), AT)
    assert verified.key == "VLEK"
    with pytest.raises(EvidenceError, match="expected the ASVK of AMD's built-in Milan roots"):
        verify_report(report, chain.vcek_der, "VLEK", builtin, AT)
    table = cert_table([(VLEK_GUID, chain.vcek_der), (ASK_GUID, b"ignored"), (ARK_GUID, b"ignored")])
    assert endorsement_from_table(table, report, "table") == chain.vcek_der
    with pytest.raises(CertificateFormatError, match="no VCEK entry"):
        endorsement_from_table(table, signed_report(make_chain()), "table")


def test_an_unknown_product_is_refused() -> None:
    chain = make_chain("Venice-A0")
    with pytest.raises(EvidenceError, match="product name 'Venice-A0'; expected one of Milan, Genoa, Turin"):
        verify_report(signed_report(chain), chain.vcek_der, "VCEK", given(chain.roots()), AT)


# --------------------------------------------------------------------------- certificate tables and bad files


def cert_table(entries: list[tuple[str, bytes]], *, terminator: bool = True) -> bytes:
    """A certificate table as SNP_GET_EXT_REPORT returns it (GUIDs in the byte order of their text)."""
    header = 24 * (len(entries) + 1)
    table, blobs = b"", b""
    for guid, blob in entries:
        table += bytes.fromhex(guid.replace("-", "")) + (header + len(blobs)).to_bytes(4, "little")
        table += len(blob).to_bytes(4, "little")
        blobs += blob
    return table + (bytes(24) if terminator else b"") + blobs


BAD_TABLES = {
    "no terminator": (
        lambda vcek: cert_table([(VCEK_GUID, vcek)], terminator=False),
        "bytes left; expected a 24-byte entry",
    ),
    "an unknown GUID only": (
        lambda vcek: cert_table([("00112233-4455-6677-8899-aabbccddeeff", vcek)]),
        "no VCEK entry \\(63da758d-e664-4564-adc5-f4b93be8accd\\), which the report's SIGNER_INFO names; found unknown 00112233",
    ),
    "an offset into the table": (
        lambda vcek: (
            bytes.fromhex(VCEK_GUID.replace("-", ""))
            + (8).to_bytes(4, "little")
            + (4).to_bytes(4, "little")
            + bytes(24)
            + vcek
        ),
        "offset 0x8 points into the table; expected 0x30 or more",
    ),
    "a length past the end": (
        lambda vcek: cert_table([(VCEK_GUID, vcek)])[:-10],
        "end past the data",
    ),
    "a GUID twice": (lambda vcek: cert_table([(VCEK_GUID, vcek), (VCEK_GUID, vcek)]), "given twice"),
}


@pytest.mark.parametrize("name", BAD_TABLES)
def test_bad_certificate_tables_are_one_line_errors(name: str) -> None:
    make, message = BAD_TABLES[name]
    with pytest.raises(CertificateFormatError, match=message) as caught:
        endorsement_from_table(make(MILAN_VCEK.read_bytes()), MILAN_REPORT.read_bytes(), "certs.bin")  # type: ignore[no-untyped-call]
    assert str(caught.value).startswith("certs.bin: ") and "\n" not in str(caught.value)


def test_the_real_report_verifies_through_a_certificate_table() -> None:
    vcek = MILAN_VCEK.read_bytes()
    table = cert_table([(ARK_GUID, b"x"), (ASK_GUID, b"y"), (VCEK_GUID, vcek)])
    assert endorsement_from_table(table, MILAN_REPORT.read_bytes(), "certs") == vcek


BAD_CERTIFICATES = {
    "truncated DER": (MILAN_VCEK.read_bytes()[:700], "VCEK: DER at offset 0x0: length 1356 runs past its container"),
    "a DER with bytes after it": (MILAN_VCEK.read_bytes() + b"\0", "1 bytes after the certificate; expected none"),
    "a public key in PEM": (
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "PEM block 1 is 'PUBLIC KEY'; expected 'CERTIFICATE'",
    ),
    "no certificate at all": (b"hello", "no certificate found; expected DER or PEM"),
    "bad base64": (b"-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n", "PEM block 1: bad base64"),
    "two certificates": (
        resource("snp", "roots", "ask_ark_milan.pem").read_bytes(),
        "2 certificates; expected one VCEK",
    ),
    "an indefinite length": (b"\x30\x80" + bytes(10), "indefinite length; expected a definite length"),
    "a long length form for a short length": (b"\x30\x81\x05" + bytes(5), "not in its shortest form"),
}


@pytest.mark.parametrize("name", BAD_CERTIFICATES)
def test_bad_certificates_are_one_line_errors(name: str) -> None:
    data, message = BAD_CERTIFICATES[name]
    with pytest.raises(CertificateFormatError, match=message) as caught:
        verify_report(MILAN_REPORT.read_bytes(), data, "VCEK", builtin, AT)
    assert "\n" not in str(caught.value)


def test_every_truncation_of_a_certificate_is_a_format_error() -> None:
    der = MILAN_VCEK.read_bytes()
    for end in range(0, len(der), 7):
        with pytest.raises(CertificateFormatError):
            parse_certificate(der[:end], "VCEK")
    for offset in range(0, len(der), 5):  # a changed byte: a format error, or parsed (and judged by the chain)
        changed = bytearray(der)
        changed[offset] ^= 0xFF
        with contextlib.suppress(CertificateFormatError):
            parse_certificate(bytes(changed), "VCEK")


def test_pem_and_der_read_the_same() -> None:
    der = make_chain().vcek_der
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    assert read_certificates(b"comment\n" + pem, "f") == [der] == read_certificates(der, "f")


# --------------------------------------------------------------------------- openssl agrees


OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed (make hsm)")


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *map(str, args)], capture_output=True, text=True, check=False)


def openssl_verifies_report(tmp_path: Path, report: bytes, vcek_der: bytes) -> bool:
    """``openssl dgst -sha384 -verify`` of the report's bytes 0x000..0x29f with r, s converted to DER."""
    (tmp_path / "vcek.der").write_bytes(vcek_der)
    public = openssl("x509", "-inform", "DER", "-in", tmp_path / "vcek.der", "-pubkey", "-noout")
    assert public.returncode == 0, public.stderr
    (tmp_path / "vcek.pub").write_text(public.stdout)
    (tmp_path / "signed.bin").write_bytes(report[:SIGNED_SIZE])
    (tmp_path / "signature.der").write_bytes(encode_dss_signature(*signature_rs(parse_report(report))))
    done = openssl(
        "dgst",
        "-sha384",
        "-verify",
        tmp_path / "vcek.pub",
        "-signature",
        tmp_path / "signature.der",
        tmp_path / "signed.bin",
    )
    assert done.stdout.strip() in ("Verified OK", "Verification failure"), done.stdout + done.stderr
    return done.stdout.strip() == "Verified OK"


def openssl_verifies_chain(tmp_path: Path, roots_pem: bytes, vcek_der: bytes) -> bool:
    """``openssl verify`` of the VCEK with the ARK as trust anchor and the ASK as intermediate."""
    roots = load_roots(roots_pem, "roots")
    (tmp_path / "ark.pem").write_bytes(
        x509.load_der_x509_certificate(roots.ark.der).public_bytes(serialization.Encoding.PEM)
    )
    (tmp_path / "ask.pem").write_bytes(
        x509.load_der_x509_certificate(roots.ask.der).public_bytes(serialization.Encoding.PEM)
    )
    (tmp_path / "vcek.der").write_bytes(vcek_der)
    leaf = openssl("x509", "-inform", "DER", "-in", tmp_path / "vcek.der", "-out", tmp_path / "vcek.pem")
    if leaf.returncode != 0:
        return False
    done = openssl(
        "verify",
        "-attime",
        str(int(AT.timestamp())),
        "-CAfile",
        tmp_path / "ark.pem",
        "-untrusted",
        tmp_path / "ask.pem",
        tmp_path / "vcek.pem",
    )
    return done.returncode == 0


def sevref_verifies(report: bytes, vcek_der: bytes, roots_pem: bytes) -> bool:
    roots = load_roots(roots_pem, "roots")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            verify_report(report, vcek_der, "VCEK", given(roots), AT)
    except EvidenceError:
        return False
    return True


def _flip(data: bytes, offset: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 0x01
    return bytes(changed)


@needs_openssl
def test_sevref_and_openssl_agree_on_good_and_tampered_inputs(tmp_path: Path) -> None:
    chain = make_chain()
    real_roots = resource("snp", "roots", "ask_ark_milan.pem").read_bytes()
    cases = {
        "real": (MILAN_REPORT.read_bytes(), MILAN_VCEK.read_bytes(), real_roots),
        "test": (signed_report(chain), chain.vcek_der, chain.roots_pem),
    }
    for name, (report, vcek, roots) in cases.items():
        assert openssl_verifies_report(tmp_path, report, vcek) and openssl_verifies_chain(tmp_path, roots, vcek), name
        assert sevref_verifies(report, vcek, roots), name
        for offset in (0x50, 0x90, 0x29F, 0x2A0, 0x2E8):  # report data, measurement, last signed byte, r, s
            assert not openssl_verifies_report(tmp_path, _flip(report, offset), vcek), (name, offset)
            assert not sevref_verifies(_flip(report, offset), vcek, roots), (name, offset)
        # A flipped byte in the VCEK's signature: openssl's chain check and sevref's both fail.
        tampered = _flip(vcek, len(vcek) - 20)
        assert not openssl_verifies_chain(tmp_path, roots, tampered), name
        assert not sevref_verifies(report, tampered, roots), name
    # Another's roots: neither accepts the test VCEK under AMD's roots, nor AMD's VCEK under the test roots.
    assert not openssl_verifies_chain(tmp_path, real_roots, chain.vcek_der)
    assert not sevref_verifies(signed_report(chain), chain.vcek_der, real_roots)
    assert not openssl_verifies_chain(tmp_path, chain.roots_pem, MILAN_VCEK.read_bytes())
    assert not sevref_verifies(MILAN_REPORT.read_bytes(), MILAN_VCEK.read_bytes(), chain.roots_pem)


# --------------------------------------------------------------------------- each check, one case


def _misfits() -> dict[str, tuple[Chain, type[Exception], str]]:
    pkcs1 = make_chain(vcek_padding=padding.PKCS1v15())
    sha256 = make_chain(
        vcek_padding=padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), vcek_hash=hashes.SHA256()
    )
    return {
        "PKCS#1 v1.5": (
            pkcs1,
            EvidenceError,
            r"signed with 1.2.840.113549.1.1.12; expected RSASSA-PSS \(1.2.840.113549.1.1.10\)",
        ),
        "PSS with SHA-256": (
            sha256,
            EvidenceError,
            "RSASSA-PSS with hash 2.16.840.1.101.3.4.2.1, MGF 1.2.840.113549.1.1.8 over",
        ),
        "an ASK that is no CA": (
            make_chain(ask_ca=False),
            EvidenceError,
            "the ARK and the ASK must be CA certificates",
        ),
        "a P-256 VCEK": (
            make_chain(vcek_key=ec.generate_private_key(ec.SECP256R1())),
            EvidenceError,
            "its key is not an ECDSA P-384 key",
        ),
        "no product name": (
            make_chain(raw={AMD + "2": None}),
            EvidenceError,
            r"no productName extension \(1.3.6.1.4.1.3704.1.2\)",
        ),
        "a UTF8String product name": (
            make_chain(raw={AMD + "2": b"\x0c\x08Milan-B0"}),
            CertificateFormatError,
            "expected a short IA5String",
        ),
        "an SPL that is no INTEGER": (
            make_chain(raw={AMD + "3.1": b"\x04\x01\x03"}),
            CertificateFormatError,
            r"blSPL extension \(1.3.6.1.4.1.3704.1.3.1\): expected an INTEGER",
        ),
        "an SPL of 300": (
            make_chain(raw={AMD + "3.1": b"\x02\x02\x01\x2c"}),
            CertificateFormatError,
            "is 300; expected 0..255",
        ),
        "no hwid": (
            make_chain(hwid=None),
            EvidenceError,
            r"no hwid extension \(1.3.6.1.4.1.3704.1.4\); expected the chip's CHIP_ID",
        ),
        "a 10-byte hwid": (
            make_chain(hwid=bytes(10)),
            CertificateFormatError,
            "hwid extension .* of 10 bytes; expected 64",
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "PKCS#1 v1.5",
        "PSS with SHA-256",
        "an ASK that is no CA",
        "a P-256 VCEK",
        "no product name",
        "a UTF8String product name",
        "an SPL that is no INTEGER",
        "an SPL of 300",
        "no hwid",
        "a 10-byte hwid",
    ],
)
def test_each_check_of_a_vcek(name: str) -> None:
    chain, error, message = _misfits()[name]
    with pytest.raises(error, match=message):
        verify_report(signed_report(chain), chain.vcek_der, "VCEK", given(chain.roots()), AT)


def test_an_issuer_key_that_is_no_rsa_key_is_refused() -> None:
    chain = make_chain()
    ark_key = rsa_key("test-ark")
    ec_ask = ec_key("ask")
    ask = _cert(chain.ask.subject, chain.ark.subject, ec_ask.public_key(), ark_key, ca=True)
    amd = [extension.value for extension in chain.vcek.extensions]
    vcek = _cert(
        chain.vcek.subject, chain.ask.subject, chain.key.public_key(), rsa_key("test-ask"), ca=False, extensions=amd
    )
    roots = Roots(
        ark=load_roots(chain.roots_pem, "r").ark,
        ask=parse_certificate(ask.public_bytes(serialization.Encoding.DER), "ASK"),
        source="r",
    )
    with pytest.raises(EvidenceError, match="ASK: its key is .*; expected an RSA key"):
        verify_report(signed_report(chain), vcek.public_bytes(serialization.Encoding.DER), "VCEK", given(roots), AT)


def test_an_unreadable_root_key_and_a_bad_salt_are_refused() -> None:
    chain = make_chain()
    roots = chain.roots()
    rsa_oid = bytes.fromhex("06092a864886f70d010101")  # rsaEncryption, in the ARK's subjectPublicKeyInfo
    assert roots.ark.spki.count(rsa_oid) == 1
    broken = dataclasses.replace(
        roots.ark, spki=roots.ark.spki.replace(rsa_oid, bytes.fromhex("06092a864886f70d0101ff"))
    )
    with pytest.raises(CertificateFormatError, match="its subjectPublicKeyInfo is not a key sevref reads"):
        verify_report(signed_report(chain), chain.vcek_der, "VCEK", given(dataclasses.replace(roots, ark=broken)), AT)
    # A salt of -128 bytes (in both copies of the algorithm's parameters, so that the certificate still parses).
    der = chain.vcek_der
    salt = bytes.fromhex("a203020130")
    assert der.count(salt) == 2
    with pytest.raises(EvidenceError, match="RSASSA-PSS salt of -128 bytes; expected 48"):
        verify_report(signed_report(chain), der.replace(salt, bytes.fromhex("a203020180")), "VCEK", given(roots), AT)


def test_roots_must_be_an_ark_and_the_ask_it_issued() -> None:
    chain = make_chain()
    pem = chain.ask.public_bytes(serialization.Encoding.PEM) + chain.vcek.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(
        CertificateFormatError, match="expected one self-issued ARK and one ASK it issued; found subjects 'SEV-Milan'"
    ):
        load_roots(pem, "roots.pem")
