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
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", GOLDEN_PASSPHRASE)
    shutil.copytree(GOLDEN / "inputs", tmp_path / "inputs")
    text = (GOLDEN / "manifest.yaml").read_text(encoding="utf-8")
    (tmp_path / "m.yaml").write_text(text.replace("lifecycle:\n", f"lifecycle:\n{rules}"), encoding="utf-8")
    status, _, err = run(["build", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "site"), *GOLDEN_SIGNING], capsys)
    assert status == 0, err
    return tmp_path / "site"


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
