"""SEV-SNP attestation reports: layout, decoding, and ``sevref report show``."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import cast

import pytest

from sevref._cli import main
from sevref.binfmt.report import (
    ARK_GUID,
    REPORT_SIZE,
    SIGNED_SIZE,
    SPEC_OFFSETS,
    VCEK_GUID,
    AttestationReport,
    decode_report,
    parse_cert_table,
    parse_report,
    parse_tcb,
    signature_rs,
    signed_bytes,
    signing_key,
)
from sevref.errors import ReportFormatError
from tests.vectors.make_vectors import CODE
from tests.vectors.make_vectors import load as load_vectors


def test_layout() -> None:
    assert REPORT_SIZE == 1184
    for name, offset in SPEC_OFFSETS.items():
        assert getattr(AttestationReport, name).offset == offset, name
    for name in AttestationReport.field_names():
        if name.startswith("reserved_0x"):
            assert getattr(AttestationReport, name).offset == int(name.removeprefix("reserved_"), 16)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes(100), "attestation report is 100 bytes; expected 1184"),
        (bytes(1185), "attestation report is 1185 bytes; expected 1184"),
        (bytes(1184), "version is 0; expected 2..5"),
        ((6).to_bytes(4, "little") + bytes(1180), "version is 6; expected 2..5"),
    ],
)
def test_malformed_reports(data: bytes, message: str) -> None:
    with pytest.raises(ReportFormatError, match=message):
        parse_report(data)


def test_decoding() -> None:
    rng = random.Random(4)
    fields = {
        "version": 3,
        "guest_svn": 7,
        "policy": 0x3_0000 | (1 << 19) | (1 << 20) | 0x0102,
        "family_id": rng.randbytes(16),
        "image_id": rng.randbytes(16),
        "vmpl": 1,
        "signature_algo": 1,
        "current_tcb": int.from_bytes(bytes([3, 0, 0, 0, 0, 0, 20, 209]), "little"),
        "platform_info": 0b101,
        "signer_info": 0b110,
        "report_data": rng.randbytes(64),
        "measurement": rng.randbytes(48),
        "host_data": rng.randbytes(32),
        "id_key_digest": rng.randbytes(48),
        "author_key_digest": rng.randbytes(48),
        "report_id": rng.randbytes(32),
        "report_id_ma": rng.randbytes(32),
        "reported_tcb": 0x1122334455667788,
        "cpuid_fam_id": 0x19,
        "cpuid_mod_id": 0x11,
        "cpuid_step": 1,
        "chip_id": rng.randbytes(64),
        "current_major": 1,
        "current_minor": 55,
        "current_build": 21,
        "committed_major": 1,
        "committed_minor": 55,
        "committed_build": 20,
        "signature_r": (12345).to_bytes(72, "little"),
        "signature_s": (0xABCDEF).to_bytes(72, "little"),
    }
    data = AttestationReport.build(**fields).to_bytes()
    assert len(data) == REPORT_SIZE and data[0x90:0xC0] == fields["measurement"]
    decoded = decode_report(parse_report(data))
    assert decoded["policy"] == {
        "abi_minor": 2,
        "abi_major": 1,
        "smt": True,
        "migrate_ma": False,
        "debug": True,
        "single_socket": True,
        "cxl_allow": False,
        "mem_aes_256_xts": False,
        "rapl_dis": False,
        "ciphertext_hiding_dram": False,
        "page_swap_disable": False,
        "value": "0x00000000001b0102",
        "reserved_bit17_set": True,
    }
    assert decoded["current_tcb"] == {
        "bootloader": 3,
        "tee": 0,
        "snp": 20,
        "microcode": 209,
        "value": "0xd114000000000003",
    }
    assert decoded["signer_info"] == {"author_key_en": False, "mask_chip_key": True, "signing_key": "VLEK"}
    assert decoded["platform_info"]["smt_enabled"] is True and decoded["platform_info"]["ecc_enabled"] is True  # type: ignore[index]
    assert decoded["cpuid"] == {"family": 0x19, "model": 0x11, "stepping": 1}
    assert (decoded["current_version"], decoded["committed_version"]) == ("1.55.21", "1.55.20")
    assert decoded["launch_mit_vector"] is None  # a version 5 field
    assert decoded["signature"] == {"r": "3039", "s": "abcdef"}
    for name in (
        "family_id",
        "image_id",
        "report_data",
        "measurement",
        "host_data",
        "id_key_digest",
        "author_key_digest",
        "report_id",
        "report_id_ma",
        "chip_id",
    ):
        assert decoded[name] == cast(bytes, fields[name]).hex(), name


def test_turin_tcb_layout() -> None:
    # Family 1Ah (Turin) TCB_VERSION: FMC, bootloader, TEE, SNP in bytes 0..3, microcode in byte 7.
    raw = int.from_bytes(bytes([1, 2, 3, 4, 0, 0, 0, 5]), "little")
    data = AttestationReport.build(version=5, cpuid_fam_id=0x1A, current_tcb=raw, launch_mit_vector=3).to_bytes()
    decoded = decode_report(parse_report(data))
    assert decoded["current_tcb"] == {
        "fmc": 1,
        "bootloader": 2,
        "tee": 3,
        "snp": 4,
        "microcode": 5,
        "value": f"{raw:#018x}",
    }
    assert decoded["launch_mit_vector"] == "0x0000000000000003"


def test_report_round_trip_matches_sevref_digest(
    debian_ovmf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A report as the guest of this configuration would receive it: its
    # MEASUREMENT is the launch digest sevref computes for the configuration.
    firmware = debian_ovmf / "usr/share/OVMF/OVMF_CODE.fd"
    out = io.StringIO()
    assert (
        main(
            ["digest", "--mode", "sev-snp", "--firmware", str(firmware), "--vcpus", "64", "--cpu", "EPYC-Milan"],
            out=out,
        )
        == 0
    )
    digest = out.getvalue().strip()
    # The known answer (tests/vectors, sev-snp-measure 0.0.13) for the same configuration.
    given = {"mode": "sev-snp", "firmware": CODE, "vcpus": 64, "cpu": "EPYC-Milan", "cpu_signature": "0xa00f11"}
    given |= {"vmm": "qemu", "guest_features": "0x1"}
    (vector,) = [v for v in load_vectors() if {k: x for k, x in v["input"].items() if k != "firmware_sha256"} == given]
    assert digest == vector["expected"]["digest"]
    report = tmp_path / "report.bin"
    report.write_bytes(
        AttestationReport.build(
            version=2, policy=0x30000, signature_algo=1, measurement=bytes.fromhex(digest)
        ).to_bytes()
    )
    shown = io.StringIO()
    assert main(["report", "show", str(report), "--json"], out=shown) == 0
    fields = json.loads(shown.getvalue())
    assert fields["measurement"] == digest and fields["version"] == 2 and fields["policy"]["smt"] is True
    text = io.StringIO()
    assert main(["report", "show", str(report)], out=text) == 0
    lines = dict(line.split(None, 1) for line in text.getvalue().splitlines())
    assert lines["measurement"] == digest and lines["policy.debug"] == "false" and lines["cpuid"] == "-"


def test_report_show_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "short.bin").write_bytes(bytes(10))
    assert main(["report", "show", str(tmp_path / "short.bin")]) == 1
    assert (
        capsys.readouterr().err
        == f"sevref: error: {tmp_path / 'short.bin'}: attestation report is 10 bytes; expected 1184 (SNP ABI ATTESTATION_REPORT)\n"
    )
    assert main(["report", "show", str(tmp_path / "missing.bin")]) == 1
    assert "No such file or directory" in capsys.readouterr().err


def test_signature_signer_and_tcb_are_read_as_amd_lays_them_out() -> None:
    data = AttestationReport.build(
        version=2,
        signer_info=0b111,  # author key, masked chip id, VLEK
        signature_r=(0x0102).to_bytes(72, "little"),
        signature_s=(0x0304).to_bytes(72, "little"),
    ).to_bytes()
    report = parse_report(data)
    assert (signing_key(report), signature_rs(report)) == (1, (0x0102, 0x0304))
    assert signed_bytes(data) == data[:0x2A0] and SIGNED_SIZE == 0x2A0
    with pytest.raises(ReportFormatError, match="1183 bytes; expected 1184"):
        signed_bytes(data[:-1])
    raw = int.from_bytes(bytes([1, 2, 3, 4, 5, 6, 7, 8]), "little")
    assert parse_tcb(raw, False).parts() == {"bootloader": 1, "tee": 2, "snp": 7, "microcode": 8}
    assert parse_tcb(raw, True).parts() == {"fmc": 1, "bootloader": 2, "tee": 3, "snp": 4, "microcode": 8}


def test_certificate_tables_are_read_with_bounds() -> None:
    def entry(guid: str, offset: int, length: int) -> bytes:
        return bytes.fromhex(guid.replace("-", "")) + offset.to_bytes(4, "little") + length.to_bytes(4, "little")

    table = entry(VCEK_GUID, 72, 3) + entry(ARK_GUID, 75, 2) + bytes(24) + b"abcde"
    assert parse_cert_table(table) == ((VCEK_GUID, b"abc"), (ARK_GUID, b"de"))
    # go-sev-guest stores the GUID's bytes in the order of its text: the first byte is 0x63.
    assert table[0] == 0x63
    for bad, message in (
        (table[:40], "certificate table at offset 0x18: 16 bytes left; expected a 24-byte entry"),
        (entry(VCEK_GUID, 72, 0) + bytes(24), r"entry 0 \(VCEK\): length 0"),
        (entry(VCEK_GUID, 24, 1) + bytes(24) + b"x", r"offset 0x18 points into the table; expected 0x30 or more"),
        (entry(VCEK_GUID, 48, 9) + bytes(24) + b"x", r"bytes 0x30..0x39 end past the data \(0x31\)"),
        (entry(VCEK_GUID, 72, 1) * 2 + bytes(24) + b"x", "GUID 63da758d-e664-4564-adc5-f4b93be8accd given twice"),
        (b"".join(entry(f"{n:032x}", 0, 1) for n in range(1, 66)) + bytes(24), "more than 64 entries"),
    ):
        with pytest.raises(ReportFormatError, match=message):
            parse_cert_table(bad)
