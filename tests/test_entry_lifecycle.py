"""A lifecycle rule that names vCPU counts marks exactly those entries, and ``sevref verify`` says so.

The golden publication revokes one vCPU count (3) of one SEV-SNP configuration
(tests/golden/manifest.yaml); its other counts stay active.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sevref._cli import main
from sevref.digest import LaunchMeasureInputs, sev_launch_measurement
from sevref.records import EntryStatus, GroupRecord
from tests.test_build import GOLDEN, GOLDEN_PASSPHRASE, GOLDEN_SIGNING, groups_of

TRUST = ["--trusted-key", str(GOLDEN / "key" / "golden.pub")]
TRUST += ["--publisher", "golden", "--product", "tiny", "--stream", "test", "--at", "2026-02-01T00:00:00Z"]
REASON = "example: a flaw found in 3-vCPU launches"
SINCE = "2026-01-15T00:00:00Z"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(args, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def verify(site: Path, capsys: pytest.CaptureFixture[str], *evidence: str) -> tuple[int, str, str]:
    return run(["verify", "--publication", str(site), *TRUST, *evidence], capsys)


def marked(site: Path) -> list[tuple[GroupRecord, int | None, str]]:
    """Every entry whose own status is not active: (group, vCPU count, digest)."""
    records = [GroupRecord.from_dict(g) for g in groups_of(site)]
    return [(r, n, d) for r in records for n, d in r.entries if r.state_at(n).status is not EntryStatus.ACTIVE]


def build(tmp_path: Path, rules: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The golden publication with more lifecycle rules, signed with the golden test key."""
    return built(tmp_path, rules, capsys, monkeypatch)[0]


# A host stack whose SEV-SNP VMSAs are those of qemu9.1-init2 (KVM_SEV_INIT2): the same measurements.
QEMU10 = '  - id: qemu10.0-init2\n    vmm: qemu\n    qemu: {version: "10.0.2", machine: q35, legacy_vm_type: "off"}\n'
QEMU10 += '    host_linux: "6.12"\n'


def built(
    tmp_path: Path,
    rules: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    qemu10: bool = False,
) -> tuple[Path, str, str]:
    """:func:`build`, with what the build printed; ``qemu10`` adds :data:`QEMU10` to the qemu matrix."""
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", GOLDEN_PASSPHRASE)
    shutil.copytree(GOLDEN / "inputs", tmp_path / "inputs")
    text = (GOLDEN / "manifest.yaml").read_text(encoding="utf-8")
    if qemu10:
        text = text.replace("  - {id: ec2, vmm: ec2}\n", f"{QEMU10}  - {{id: ec2, vmm: ec2}}\n")
        text = text.replace("[qemu7.2.1, qemu9.1-init2]", "[qemu7.2.1, qemu9.1-init2, qemu10.0-init2]")
    (tmp_path / "m.yaml").write_text(text.replace("lifecycle:\n", f"lifecycle:\n{rules}"), encoding="utf-8")
    status, out, err = run(
        ["build", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "site"), *GOLDEN_SIGNING], capsys
    )
    assert status == 0, err
    return tmp_path / "site", out, err


def test_revoking_one_vcpu_count_revokes_exactly_that_entry(capsys: pytest.CaptureFixture[str]) -> None:
    site = GOLDEN / "publication"
    ((record, count, digest),) = [m for m in marked(site) if m[0].mode == "sev-snp"]
    assert (record.cpu, record.host_stack, record.boot, count) == ("EPYC-Milan", "qemu9.1-init2", None, 3)
    assert record.status is EntryStatus.ACTIVE and record.state_at(3).describe() == f"revoked since {SINCE}: {REASON}"
    status, out, err = verify(site, capsys, "--snp-measurement", digest)
    assert status == 1, err
    assert f"refused: {record.id}-0003 sev-snp firmware tiny host qemu9.1-init2 cpu EPYC-Milan 3 vCPUs [revoked]" in out
    assert f"  refused: revoked since {SINCE}: {REASON}\n" in out
    assert err == f"sevref: no match: the SEV-SNP measurement {digest} matches 1 entries, each refused\n"
    # Every other count of the configuration is active and accepted.
    for other, neighbour in record.entries:
        if other != 3:
            status, out, err = verify(site, capsys, "--snp-measurement", neighbour)
            assert (status, err) == (0, ""), other
            assert f"match: {record.id}-{other:04d} sev-snp" in out and "[active]" in out
    status, out, _ = verify(site, capsys, "--snp-measurement", digest, "--json")
    (match,) = json.loads(out)["matches"]
    assert (match["status"], match["status_reason"], match["status_since"]) == ("revoked", REASON, SINCE)
    assert match["acceptable"] is False
    assert match["configuration"]["status"] == "active"
    assert match["configuration"]["exceptions"] == [
        {"vcpus": [[3, 3]], "status": "revoked", "status_reason": REASON, "successor": None, "status_since": SINCE}
    ]


def scan(site: Path, digest: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Verify an SEV-ES launch measurement of ``digest`` made with a fresh TIK."""
    tik, nonce = bytes(range(40, 56)), bytes(16)
    blob = sev_launch_measurement(bytes.fromhex(digest), LaunchMeasureInputs(1, 55, 21, 0x5), nonce, tik) + nonce
    (tmp_path / "tik").write_bytes(tik)
    evidence = ["--launch-measurement", base64.b64encode(blob).decode(), "--tik", str(tmp_path / "tik")]
    evidence += ["--api-major", "1", "--api-minor", "55", "--build", "21", "--policy", "0x5"]
    return verify(site, capsys, *evidence)


def test_deprecating_and_revoking_counts_of_an_sev_es_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = (
        "  - match: {mode: sev-es, host_stack: qemu9.1-init2, cpu: EPYC-Milan, boot: [null], vcpus: [2]}\n"
        "    status: revoked\n    reason: r2\n"
        '  - match: {mode: sev-es, host_stack: qemu9.1-init2, cpu: EPYC-Milan, boot: [null], vcpus: ["1-3"]}\n'
        "    status: deprecated\n    reason: d\n    successor: EPYC-Genoa\n"
    )
    site = build(tmp_path, rules, capsys, monkeypatch)
    found = [(str(r.mode), n, str(r.state_at(n).status)) for r, n, _ in marked(site) if r.mode == "sev-es"]
    before = [(str(r.mode), n, "deprecated") for r, n, _ in marked(GOLDEN / "publication") if r.mode == "sev-es"]
    added: list[tuple[str, int | None, str]] = [("sev-es", 1, "deprecated"), ("sev-es", 2, "revoked")]
    added.append(("sev-es", 3, "deprecated"))
    assert sorted(found, key=str) == sorted(before + added, key=str)
    record = next(
        r
        for r, n, _ in marked(site)
        if r.mode == "sev-es" and n == 2 and (r.host_stack, r.cpu, r.boot) == ("qemu9.1-init2", "EPYC-Milan", None)
    )
    digests = dict(record.entries)
    assert record.status is EntryStatus.DEPRECATED and record.state_at(8).status is EntryStatus.ACTIVE
    status, out, err = scan(site, digests[2], tmp_path, capsys)
    assert status == 1 and f"refused: {record.id}-0002 sev-es" in out and "  refused: revoked: r2\n" in out, err
    status, out, err = scan(site, digests[1], tmp_path, capsys)
    assert (status, err) == (0, "") and f"match: {record.id}-0001 sev-es" in out
    assert "  note: deprecated: d; use EPYC-Genoa\n" in out
    status, out, err = scan(site, digests[8], tmp_path, capsys)
    assert (status, err) == (0, "") and "[active]" in out and "note: deprecated" not in out
    catalog: list[dict[str, Any]] = json.loads((site / "catalog" / "tiny.json").read_bytes())["configurations"]
    row = next(c for c in catalog if c["id"] == record.id)
    assert (row["status"], row["exceptions"]) == (
        "deprecated",
        [{"status": "active", "vcpus": [[8, 8]]}, {"status": "revoked", "vcpus": [[2, 2]]}],
    )


def entries_with(site: Path, digests: set[str]) -> dict[str, tuple[GroupRecord, int | None]]:
    """Every entry that carries one of ``digests``, by id."""
    records = [GroupRecord.from_dict(g) for g in groups_of(site)]
    return {(r.id if n is None else f"{r.id}-{n:04d}"): (r, n) for r in records for n, d in r.entries if d in digests}


@pytest.mark.parametrize("mode", ["sev", "sev-snp"])
def test_a_revocation_by_host_stack_names_the_entries_it_also_blocks(
    mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEV's GCTX.LD is the same on every host stack, SEV-SNP's on every stack with the same VMSAs.

    The build names the entries a revocation by host stack also blocks: those
    of the other stacks, which carry the same digests.
    """
    stack = "qemu7.2.1" if mode == "sev" else "qemu10.0-init2"
    rule = f"  - match: {{mode: {mode}, host_stack: {stack}}}\n    status: revoked\n    reason: a flaw in {stack}\n"
    site, out, err = built(tmp_path, rule, capsys, monkeypatch, qemu10=mode == "sev-snp")
    revoked = {d for r, n, d in marked(site) if r.host_stack == stack and r.state_at(n).status is EntryStatus.REVOKED}
    carriers = entries_with(site, revoked)
    blocked = sorted(i for i, (r, n) in carriers.items() if r.state_at(n).status is not EntryStatus.REVOKED)
    # Every digest the rule revokes is carried by an entry of another stack that stays active.
    assert blocked and {carriers[i][0].host_stack for i in blocked} == {"qemu9.1-init2"}
    assert len(blocked) == (3 if mode == "sev" else 32)
    line = (tmp_path / "m.yaml").read_text(encoding="utf-8").splitlines().index(rule.splitlines()[0]) + 1
    first = ", ".join(blocked[:3]) + ", …" * (len(blocked) > 3)
    count = f"{len(blocked)} entries"
    assert err == (
        f"sevref: warning: {tmp_path / 'm.yaml'}:{line}:5: the revocation (a flaw in {stack}) also blocks {count} "
        f"it does not revoke, which carry the digest of one it revokes (verifiers refuse the digest, exports leave "
        f"it out): {first}\n"
    )
    assert (
        f"  1 revocation blocks {len(blocked)} more entries that carry a revoked digest (see the warnings): {first}\n"
        in out
    )
    if mode == "sev-snp":  # the verifier refuses the shared digest under the entry that stays active too
        record, vcpus = carriers[blocked[0]]
        status, out, err = verify(site, capsys, "--snp-measurement", dict(record.entries)[vcpus])
        assert status == 1 and f"refused: {blocked[0]} sev-snp" in out and "[active]" in out, (out, err)


def test_revocations_that_block_nothing_else_say_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The golden revocation (one vCPU count of one EPYC-Milan configuration) has a digest of its own."""
    _, out, err = built(tmp_path, "", capsys, monkeypatch)
    assert err == "" and " block" not in out and "more entries" not in out
