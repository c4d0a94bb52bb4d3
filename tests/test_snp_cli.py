"""``sevref verify --snp-report``: AMD's real report, test chains, policy, TCB and revocations, through the command line.

Exit codes: 0 a match; 1 no acceptable match or a bad file or option; 3 a
publication not trusted, or a report whose signature or chain does not hold.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from sevref.binfmt.report import ARK_GUID, ASK_GUID, VCEK_GUID
from sevref.digest import LaunchMeasureInputs, sev_launch_measurement
from tests.test_snp_verify import MILAN_REPORT, MILAN_VCEK, cert_table, make_chain, signed_report
from tests.test_verify import build, groups, keys, site, snp_evidence, verify

__all__ = ["keys", "site"]  # the fixtures this module takes from tests/test_verify.py


def real(tmp_path: Path, report: bytes | None = None) -> list[str]:
    (tmp_path / "real.bin").write_bytes(MILAN_REPORT.read_bytes() if report is None else report)
    return ["--snp-report", str(tmp_path / "real.bin"), "--vcek", str(MILAN_VCEK)]


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


def test_a_real_milan_report_verifies_to_amds_builtin_roots(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = verify(site, capsys, keys, *real(tmp_path))
    # The signature holds; the Milan guest's measurement is not in the test publication.
    assert status == 1 and "matches no published entry" in err
    assert (
        "report: the report's signature verified: signed by a VCEK of Milan-B0 that chains to AMD's built-in "
        "Milan roots (ask_ark_milan.pem)"
    ) in out
    status, out, _ = verify(site, capsys, keys, *real(tmp_path), "--json")
    result = json.loads(out)
    assert result["report_signature"] == "verified"
    assert result["report_signer"] == {
        "key": "VCEK",
        "product": "Milan",
        "product_name": "Milan-B0",
        "roots": "AMD's built-in Milan roots (ask_ark_milan.pem)",
        "reported_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68},
    }
    # The same VCEK from the certificates of an extended report.
    table = tmp_path / "certs.bin"
    table.write_bytes(cert_table([(VCEK_GUID, MILAN_VCEK.read_bytes())]))
    status, out, _ = verify(
        site, capsys, keys, "--snp-report", str(MILAN_REPORT), "--report-certs", str(table), "--json"
    )
    assert status == 1 and json.loads(out)["report_signature"] == "verified"


def test_one_changed_byte_of_a_real_report_is_not_accepted(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = bytearray(MILAN_REPORT.read_bytes())
    changed[0x90] ^= 0x01  # the measurement
    status, out, err = verify(site, capsys, keys, *real(tmp_path, bytes(changed)))
    assert (status, out) == (3, "") and one_line(err)
    assert err.startswith("sevref: not accepted: attestation report: its signature (offset 0x2a0) does not verify with")
    status, out, _ = verify(site, capsys, keys, *real(tmp_path, bytes(changed)), "--json")
    result = json.loads(out)
    assert status == 3 and result["verdict"] == "not accepted" and result["report_signature"]["reason"] == "invalid"


def test_a_chain_that_is_not_amds_is_accepted_only_through_amd_root(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = next(g for g in groups(site) if g["mode"] == "sev-snp" and g["vmm"] == "qemu")
    evidence = snp_evidence(tmp_path, policy=0x30000, measurement=bytes.fromhex(group["entries"][0][1]))
    status, out, err = verify(site, capsys, keys, *evidence)
    assert (status, err) == (0, "") and "\nmatch: " in out
    without_root = evidence[:-2]
    status, out, err = verify(site, capsys, keys, *without_root)
    assert (status, out) == (3, "") and one_line(err)
    assert "issued by 'SEV-Milan'; expected the ASK of AMD's built-in Milan roots (ask_ark_milan.pem)" in err


def test_debug_and_migration_are_refused_unless_allowed(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A group whose publisher expects no particular policy (policy: any): verify says so, and judges DEBUG alone.
    group = next(g for g in groups(site) if g["mode"] == "sev-snp" and g["policy"] is None)
    vcpus, digest = group["entries"][0]
    ident = f"{group['id']}-{vcpus:04d}"
    status, out, err = verify(
        site, capsys, keys, *snp_evidence(tmp_path, policy=0x30000, measurement=bytes.fromhex(digest))
    )
    assert (status, err) == (0, "") and f"match: {ident}" in out
    assert "  note: the publisher expects no particular policy (policy: any); the guest's is 0x30000" in out
    for policy, bit, option in (
        (0xB0000, "DEBUG (bit 19)", "--allow-debug"),
        (0x70000, "MIGRATE_MA (bit 18)", "--allow-migration"),
    ):
        evidence = snp_evidence(tmp_path, policy=policy, measurement=bytes.fromhex(digest))
        status, out, err = verify(site, capsys, keys, *evidence)
        assert status == 1 and f"refused: {ident}" in out
        assert f"  refused: policy {policy:#x} allows {bit}" in out and f"refused unless {option}" in out
        status, out, err = verify(site, capsys, keys, *evidence, option)
        assert (status, err) == (0, "") and f"match: {ident}" in out
        assert f"  note: policy {policy:#x} allows {bit}" in out and f"accepted ({option})" in out
    # Both set: both must be allowed.
    evidence = snp_evidence(tmp_path, policy=0xF0000, measurement=bytes.fromhex(digest))
    assert verify(site, capsys, keys, *evidence, "--allow-debug")[0] == 1
    assert verify(site, capsys, keys, *evidence, "--allow-debug", "--allow-migration")[0] == 0


def test_a_minimum_tcb_is_compared_with_reported_tcb(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = next(g for g in groups(site) if g["mode"] == "sev-snp" and g["vmm"] == "qemu")
    evidence = snp_evidence(tmp_path, policy=0x30000, measurement=bytes.fromhex(group["entries"][0][1]))
    assert verify(site, capsys, keys, *evidence, "--min-tcb", "bootloader=3,tee=0,snp=8,microcode=0x73")[0] == 0
    status, out, _ = verify(site, capsys, keys, *evidence, "--min-tcb", "snp=9,microcode=116")
    assert status == 1
    assert "  refused: REPORTED_TCB 0x7308000000000003: snp 8 below 9, microcode 115 below 116 (--min-tcb)" in out
    status, out, err = verify(site, capsys, keys, *evidence, "--min-tcb", "bios=1")
    assert (status, out) == (1, "") and one_line(err)
    assert "--min-tcb: 'bios=1'; expected PART=LEVEL with PART one of fmc, bootloader, tee, snp, microcode" in err
    status, _, err = verify(site, capsys, keys, "--snp-measurement", "ab" * 48, "--min-tcb", "snp=1")
    assert status == 2 and "--min-tcb goes with --snp-report" in err


def _files(tmp_path: Path, **files: bytes) -> dict[str, str]:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: str(tmp_path / name) for name in files}


def test_bad_inputs_are_one_line_errors_or_refusals(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = make_chain()
    vcek = MILAN_VCEK.read_bytes()
    paths = _files(
        tmp_path,
        truncated=vcek[:700],
        pem=b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        table=cert_table([("00112233-4455-6677-8899-aabbccddeeff", vcek)]),
        offsets=bytes.fromhex(VCEK_GUID.replace("-", ""))
        + (8).to_bytes(4, "little")
        + (9).to_bytes(4, "little")
        + bytes(24),
        roots=chain.roots_pem,
        other_chip=signed_report(chain, chip_id=bytes(64)),
        other_tcb=signed_report(chain, reported_tcb=0x7308000000000004),
        vcek=chain.vcek_der,
    )
    report = ["--snp-report", str(MILAN_REPORT)]
    cases: list[tuple[list[str], int, str]] = [
        (
            [*report, "--vcek", paths["truncated"]],
            1,
            f"--vcek {paths['truncated']}: DER at offset 0x0: length 1356 runs past",
        ),
        ([*report, "--vcek", paths["pem"]], 1, "PEM block 1 is 'PUBLIC KEY'; expected 'CERTIFICATE'"),
        ([*report, "--report-certs", paths["table"]], 1, "no VCEK entry (63da758d-e664-4564-adc5-f4b93be8accd)"),
        ([*report, "--report-certs", paths["offsets"]], 1, "offset 0x8 points into the table; expected 0x30 or more"),
        ([*report, "--vcek", str(MILAN_VCEK), "--amd-root", paths["pem"]], 1, "PEM block 1 is 'PUBLIC KEY'"),
        (
            [*report, "--vcek", str(MILAN_VCEK), "--amd-root", str(MILAN_VCEK)],
            1,
            "1 certificates; expected 2 (the ARK and the ASK",
        ),
        (
            ["--snp-report", paths["other_chip"], "--vcek", paths["vcek"], "--amd-root", paths["roots"]],
            3,
            "hwid 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
            "303132333435363738393a3b3c3d3e3f; expected the report's CHIP_ID (offset 0x1a0) " + "00" * 64,
        ),
        (
            ["--snp-report", paths["other_tcb"], "--vcek", paths["vcek"], "--amd-root", paths["roots"]],
            3,
            "blSPL 3; the report's REPORTED_TCB (offset 0x180, 0x7308000000000004) has bootloader 4",
        ),
    ]
    for args, code, message in cases:
        status, out, err = verify(site, capsys, keys, *args)
        assert (status, out) == (code, ""), (args, err)
        assert one_line(err) and message in err, (message, err)
    # Usage: the report's options need a report; skipping the check goes with no certificate.
    assert verify(site, capsys, keys, "--vcek", str(MILAN_VCEK))[0] == 2
    status, _, err = verify(site, capsys, keys, *real(tmp_path), "--skip-report-signature")
    assert status == 2 and "--skip-report-signature: give it without --vcek" in err
    status, _, err = verify(site, capsys, keys, *report, "--amd-root", paths["roots"])
    assert status == 2 and "--amd-root goes with --vcek or --report-certs" in err
    status, _, err = verify(site, capsys, keys, *report, "--vcek", str(MILAN_VCEK), "--report-certs", paths["table"])
    assert status == 2 and "not allowed with argument" in err


def test_a_revoked_digest_is_refused_whatever_active_entry_carries_it(
    tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A second host stack that builds the same SEV-SNP guests as the one a lifecycle rule revokes.
    twin = '  - id: qemu9.2-init2\n    vmm: qemu\n    qemu: {version: "9.2.0", machine: q35, legacy_vm_type: "off"}\n    host_linux: "6.12"\n'
    shadowed = build(
        tmp_path,
        capsys,
        keys,
        "shadowed",
        changes={
            "  - {id: ec2, vmm: ec2}\n": twin + "  - {id: ec2, vmm: ec2}\n",
            "host_stacks: [qemu7.2.1, qemu9.1-init2]": "host_stacks: [qemu7.2.1, qemu9.1-init2, qemu9.2-init2]",
        },
    )
    all_groups = groups(shadowed)
    revoked = next(g for g in all_groups if g["exceptions"] and g["host_stack"] == "qemu9.1-init2")
    assert revoked["exceptions"][0]["status"] == "revoked" and revoked["exceptions"][0]["vcpus"] == [[3, 3]]
    digest = next(d for v, d in revoked["entries"] if v == 3)
    siblings = [g for g in all_groups if g["host_stack"] == "qemu9.2-init2" and [3, digest] in g["entries"]]
    assert siblings and all(g["status"] == "active" for g in siblings)  # the twin is active, with the same digest
    revoked_id = f"{revoked['id']}-0003"
    evidence = snp_evidence(tmp_path, policy=0x30000, measurement=bytes.fromhex(digest))
    for only_needed in ([], ["--only-needed"]):  # the digest table lists revoked entries too: it is all it reads
        status, out, err = verify(shadowed, capsys, keys, *evidence, *only_needed)
        assert status == 1 and "each refused" in err and "\nmatch: " not in out
        for sibling in siblings:
            assert f"refused: {sibling['id']}-0003 sev-snp firmware tiny host qemu9.2-init2" in out
        assert f"  refused: its digest is also that of revoked entry {revoked_id} (revoked" in out
    status, out, _ = verify(shadowed, capsys, keys, "--snp-measurement", digest, "--json")
    matches: list[dict[str, Any]] = json.loads(out)["matches"]
    assert status == 1 and {m["status"] for m in matches} == {"active", "revoked"}
    assert all(not m["acceptable"] for m in matches)


def test_the_extended_report_table_ignores_its_own_ark_and_ask(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A host's ARK and ASK in the table add no trust: the test chain still needs --amd-root."""
    chain = make_chain()
    der = serialization.Encoding.DER
    paths = _files(
        tmp_path,
        report=signed_report(chain),
        certs=cert_table(
            [
                (ARK_GUID, chain.ark.public_bytes(der)),
                (ASK_GUID, chain.ask.public_bytes(der)),
                (VCEK_GUID, chain.vcek_der),
            ]
        ),
    )
    status, _, err = verify(site, capsys, keys, "--snp-report", paths["report"], "--report-certs", paths["certs"])
    assert status == 3 and "expected the ASK of AMD's built-in Milan roots" in err


def test_an_sev_scan_refuses_a_digest_a_revoked_entry_carries_too(
    tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    twin = (
        '  - id: qemu7.2.2\n    vmm: qemu\n    qemu: {version: "7.2.2", machine: pc-q35-7.2}\n    host_linux: "6.1"\n'
    )
    shadowed = build(
        tmp_path,
        capsys,
        keys,
        "sev-shadowed",
        changes={
            "status: deprecated": "status: revoked",
            "  - {id: ec2, vmm: ec2}\n": twin + "  - {id: ec2, vmm: ec2}\n",
            "host_stacks: [qemu7.2.1, qemu9.1-init2]": "host_stacks: [qemu7.2.1, qemu7.2.2, qemu9.1-init2]",
            "- {mode: sev-snp, host_stack: qemu7.2.1}": "- {mode: sev-snp, host_stack: [qemu7.2.1, qemu7.2.2]}",
        },
    )
    all_groups = groups(shadowed)
    revoked = next(g for g in all_groups if g["status"] == "revoked")
    _, digest = revoked["entries"][0]
    twins = [g for g in all_groups if g["host_stack"] == "qemu7.2.2" and any(d == digest for _, d in g["entries"])]
    assert twins and all(g["status"] == "active" for g in twins)
    tik, nonce = bytes(16), bytes(16)
    blob = base64.b64encode(
        sev_launch_measurement(bytes.fromhex(digest), LaunchMeasureInputs(1, 55, 0, 0x5), nonce, tik) + nonce
    ).decode()
    (tmp_path / "tik").write_bytes(tik)
    sev = ["--launch-measurement", blob, "--tik", str(tmp_path / "tik"), "--api-major", "1", "--api-minor", "55"]
    sev += ["--build", "0", "--policy", "0x5"]
    # Narrowed to the twin's firmware and vCPUs or not, the revoked carrier is found through the digest table.
    status, out, err = verify(shadowed, capsys, keys, *sev, "--vcpus", str(revoked["entries"][0][0]))
    assert status == 1 and "each refused" in err
    assert f"refused: its digest is also that of revoked entry {revoked['id']}-" in out
