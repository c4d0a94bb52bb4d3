"""SEV-SNP policy and TCB judgements (sevref/snp/validate.py), and the certificate parsers under random input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref.binfmt.report import parse_cert_table
from sevref.errors import ConfigError, SevrefError
from sevref.snp.validate import Acceptance, parse_min_tcb, policy_findings, tcb_findings
from sevref.snp.x509 import parse_certificate, read_certificates
from tests.test_snp_verify import MILAN_TCB, MILAN_VCEK, TURIN_TCB, cert_table

POLICIES = {
    "neither": (0x30000, Acceptance(), []),
    "debug": (0xB0000, Acceptance(), [("DEBUG (bit 19)", True)]),
    "debug allowed": (0xB0000, Acceptance(allow_debug=True), [("DEBUG (bit 19)", False)]),
    "migration": (0x70000, Acceptance(allow_debug=True), [("MIGRATE_MA (bit 18)", True)]),
    "both allowed": (0xF0000, Acceptance(True, True), [("DEBUG (bit 19)", False), ("MIGRATE_MA (bit 18)", False)]),
}


@pytest.mark.parametrize("name", POLICIES)
def test_policy_findings(name: str) -> None:
    policy, acceptance, expected = POLICIES[name]
    found = policy_findings(policy, acceptance)
    assert len(found) == len(expected)
    for (text, blocking), (bit, want) in zip(found, expected, strict=True):
        assert bit in text and blocking == want


def test_min_tcb_is_read_and_compared_part_by_part() -> None:
    assert dict(parse_min_tcb("bootloader=3, tee=0,snp=0x08,microcode=115")) == {
        "bootloader": 3,
        "tee": 0,
        "snp": 8,
        "microcode": 115,
    }
    for bad in ("", "snp", "snp=256", "snp=1,snp=2", "bios=1", "snp=-1"):
        with pytest.raises(ConfigError, match="--min-tcb: "):
            parse_min_tcb(bad)
    assert tcb_findings(MILAN_TCB, False, {}) == []
    assert tcb_findings(MILAN_TCB, False, parse_min_tcb("snp=8,microcode=115")) == []
    [(text, blocking)] = tcb_findings(MILAN_TCB, False, parse_min_tcb("fmc=1"))
    assert blocking and "fmc (not in this platform's TCB layout) expected at least 1" in text
    [(text, blocking)] = tcb_findings(TURIN_TCB, True, parse_min_tcb("fmc=2,snp=9"))
    assert blocking and text == "REPORTED_TCB 0x4800000009000301: fmc 1 below 2 (--min-tcb)"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_certificates_raise_sevref_errors_only(data: st.DataObject) -> None:
    der = bytearray(MILAN_VCEK.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    end = data.draw(st.integers(0, len(der)))
    try:
        cert = parse_certificate(bytes(der[:end]), "VCEK")
        cert.is_ca  # noqa: B018  # reads basicConstraints
        cert.pss_parameters()
    except SevrefError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_sevref_errors_only(blob: bytes) -> None:
    for parse in (
        lambda: parse_certificate(blob, "x"),
        lambda: read_certificates(blob, "x"),
        lambda: parse_cert_table(blob),
        lambda: read_certificates(b"-----BEGIN CERTIFICATE-----\n" + blob + b"\n-----END CERTIFICATE-----\n", "x"),
    ):
        with contextlib.suppress(SevrefError):
            parse()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_certificate_tables_raise_sevref_errors_only(data: st.DataObject) -> None:
    table = bytearray(cert_table([("63da758d-e664-4564-adc5-f4b93be8accd", b"abc"), ("00" * 16, b"de")]))
    for _ in range(data.draw(st.integers(1, 4))):
        table[data.draw(st.integers(0, len(table) - 1))] = data.draw(st.integers(0, 255))
    try:
        for _, blob in parse_cert_table(bytes(table)):
            assert len(blob) <= len(table)
    except SevrefError:
        pass
