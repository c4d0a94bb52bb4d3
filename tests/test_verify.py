"""``sevref verify``: trust checks, refusals, and evidence matching (``sevref export``: tests/test_export.py).

Publications are served over HTTP from 127.0.0.1 where it matters, as verifiers
fetch them in practice.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from sevref._cli import main
from sevref.binfmt.report import AttestationReport
from sevref.digest import LaunchMeasureInputs, sev_launch_measurement
from sevref.edge.keys import load_public
from sevref.serialize import canonical
from sevref.sign import Algorithm, key_id
from tests.conftest import REPO, key_files, serve
from tests.test_snp_verify import make_chain, signed_report

GOLDEN = REPO / "tests" / "golden"
PASS = "correct horse battery staple"
IDENTITY = ["--publisher", "golden", "--product", "tiny", "--stream", "test", "--at", "2026-02-01T00:00:00Z"]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(args, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def load(path: Path) -> Any:
    return json.loads(path.read_bytes())


@pytest.fixture()
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", PASS)
    monkeypatch.setenv("SEVREF_NEW_KEY_PASSPHRASE", PASS)
    folder = tmp_path / "keys"
    for name, algorithm in (("k1", Algorithm.ECDSA_P256), ("k2", Algorithm.ECDSA_P384), ("k3", Algorithm.ED25519)):
        key_files(folder / name, algorithm, PASS.encode())  # the same three keys in every test
    return folder


def manifest(tmp_path: Path, changes: dict[str, str] | None = None) -> Path:
    shutil.copytree(GOLDEN / "inputs", tmp_path / "inputs", dirs_exist_ok=True)  # files sit beside their manifest
    text = (GOLDEN / "manifest.yaml").read_text()
    for old, new in (changes or {}).items():
        text = text.replace(old, new)
    path = tmp_path / f"m{random.Random(str(changes)).randrange(10**9)}.yaml"
    path.write_text(text)
    return path


def build(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    keys: Path,
    name: str,
    key: str = "k1",
    chain: Path | None = None,
    changes: dict[str, str] | None = None,
) -> Path:
    out = tmp_path / name
    args = [
        "build",
        str(manifest(tmp_path, changes or {})),
        "--out",
        str(out),
        "--signing-key",
        str(keys / f"{key}.pem"),
    ]
    if chain is not None:
        args += ["--keys", str(chain)]
    status, _, err = run(args, capsys)
    assert status == 0, err
    return out


def verify(
    site: Path | str, capsys: pytest.CaptureFixture[str], keys: Path, *extra: str, key: str = "k1"
) -> tuple[int, str, str]:
    return run(
        ["verify", "--publication", str(site), "--trusted-key", str(keys / f"{key}.pub"), *IDENTITY, *extra], capsys
    )


_BUILT: dict[str, Path] = {}
"""The golden publication as :func:`site` builds it, kept aside by the first test that builds it in this process."""


@pytest.fixture()
def site(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The golden publication signed with k1, built once a test process and copied for each test.

    A build of the same inputs with the same keys (:func:`keys`: the same in every test) gives the same bytes.
    """
    if "site" not in _BUILT:
        built = build(tmp_path, capsys, keys, "site")
        _BUILT["site"] = tmp_path_factory.mktemp("built") / "site"
        shutil.copytree(built, _BUILT["site"], symlinks=True)
        return built
    manifest(tmp_path)  # the manifest and its inputs, as build leaves them beside the site
    shutil.copytree(_BUILT["site"], tmp_path / "site", symlinks=True)
    return tmp_path / "site"


@pytest.fixture()
def server(site: Path) -> Iterator[str]:
    with serve(site) as base:
        yield base


def test_trusted_over_http_and_from_a_folder(
    site: Path, server: str, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for location in (server, str(site), site.as_uri()):
        status, out, err = verify(location, capsys, keys)
        assert (status, err) == (0, "")
        assert out.startswith("trusted: golden tiny test release 1.0 serial 3, signed by key ")
    status, out, _ = verify(server, capsys, keys, "--json")
    result = json.loads(out)
    assert (
        result["verdict"] == "trusted"
        and result["publication"]["serial"] == 3
        and result["publication"]["keys_version"] == 1
    )


def published_files(site: Path) -> list[str]:
    return sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())


def expected_check(name: str) -> set[str]:
    if name.startswith("keys/"):
        return {"keys"}
    if name == "index.dsse.json":
        return {"signature", "integrity"}
    return {"integrity"}


@pytest.mark.slow
def test_one_flipped_byte_in_any_published_file_is_refused(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = published_files(site)
    assert len(names) > 60 and {
        "index.json",
        "index.dsse.json",
        "keys/1.dsse.json",
        "attestation.intoto.dsse.json",
        "index.json.sig",
    } <= set(names)
    for name in names:
        copy = tmp_path / "tampered"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(site, copy)
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / name).write_bytes(bytes(data))
        status, out, err = verify(copy, capsys, keys)
        assert status == 3, (name, out, err)
        assert err.count("\n") == 1 and err.startswith("sevref: not trusted: "), (name, err)
        check = err.removeprefix("sevref: not trusted: ").split(":", 1)[0]
        assert check in expected_check(name), (name, err)


def test_refusals(site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A key the publisher never used.
    status, _, err = verify(site, capsys, keys, key="k2")
    assert status == 3 and "not trusted: keys: no keys document is signed by a pinned key" in err
    # Expired, and not yet valid.
    status, _, err = run(
        [
            "verify",
            "--publication",
            str(site),
            "--trusted-key",
            str(keys / "k1.pub"),
            *IDENTITY[:-2],
            "--at",
            "2026-07-01T00:00:00Z",
        ],
        capsys,
    )
    assert (
        status == 3 and "not trusted: expiry: expired at 2026-07-01T00:00:00Z (checked at 2026-07-01T00:00:00Z)" in err
    )
    status, _, err = run(
        [
            "verify",
            "--publication",
            str(site),
            "--trusted-key",
            str(keys / "k1.pub"),
            *IDENTITY[:-2],
            "--at",
            "2025-12-31T23:59:59Z",
        ],
        capsys,
    )
    assert status == 3 and "not trusted: expiry: issued 2026-01-01T00:00:00Z, after the checking time" in err
    # Another identity than the one asked for.
    status, _, err = run(
        [
            "verify",
            "--publication",
            str(site),
            "--trusted-key",
            str(keys / "k1.pub"),
            "--publisher",
            "golden",
            "--product",
            "tiny",
            "--stream",
            "other",
            "--at",
            "2026-02-01T00:00:00Z",
        ],
        capsys,
    )
    assert status == 3 and "not trusted: identity: stream is 'test'; expected 'other'" in err


def test_another_streams_files_are_refused(tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = build(tmp_path, capsys, keys, "other", changes={"stream: test": "stream: nightly"})
    status, _, err = verify(other, capsys, keys)
    assert status == 3 and "not trusted: identity: stream is 'nightly'; expected 'test'" in err


def test_a_file_from_another_release_mixed_in_is_refused(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newer = build(
        tmp_path, capsys, keys, "newer", changes={"serial: 3": "serial: 4", 'release: "1.0"': 'release: "1.1"'}
    )
    name = next(p for p in published_files(site) if p.startswith("groups/"))
    shutil.copy(newer / name, site / name)
    shutil.copy(newer / f"{name}.sig", site / f"{name}.sig")
    status, _, err = verify(site, capsys, keys)
    assert status == 3 and f"not trusted: integrity: {name} has sha256" in err


def reserialised(envelope: Path) -> None:
    """Write a keys envelope out again as a mirror might: other spacing, the other valid form of each ECDSA s."""
    document = json.loads(envelope.read_bytes())
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's group order n
    for signature in document["signatures"]:
        r, s = decode_dss_signature(base64.b64decode(signature["sig"]))
        signature["sig"] = base64.b64encode(encode_dss_signature(r, order - s)).decode()
    envelope.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


def test_a_reserialised_keys_envelope_neither_poisons_the_state_nor_reads_as_a_fork(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror = tmp_path / "mirror"
    shutil.copytree(site, mirror)
    reserialised(mirror / "keys" / "1.dsse.json")
    assert (mirror / "keys" / "1.dsse.json").read_bytes() != (site / "keys" / "1.dsse.json").read_bytes()
    state = tmp_path / "state.json"
    # The mirror's envelope is the same signed document: trusted, and remembered as that document.
    assert verify(mirror, capsys, keys, "--state", str(state))[0] == 0
    remembered = load(state)["publishers"]["golden"]["chain"]
    # The genuine publication after it, and the mirror again, with the same state.
    assert verify(site, capsys, keys, "--state", str(state))[:3:2] == (0, "")
    assert verify(mirror, capsys, keys, "--state", str(state))[:3:2] == (0, "")
    assert load(state)["publishers"]["golden"]["chain"] == remembered


def test_a_state_that_remembered_envelopes_still_matches_and_learns_the_document(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    assert verify(site, capsys, keys, "--state", str(state))[0] == 0
    before = load(state)
    # As sevref wrote it before states remembered payloads: the sha256 of the envelope as served.
    served = hashlib.sha256((site / "keys" / "1.dsse.json").read_bytes()).hexdigest()
    before["publishers"]["golden"]["chain"] = [{"version": 1, "sha256": served}]
    state.write_bytes(canonical(before))
    assert verify(site, capsys, keys, "--state", str(state))[:3:2] == (0, "")
    signed = hashlib.sha256(base64.b64decode(load(site / "keys" / "1.dsse.json")["payload"])).hexdigest()
    assert load(state)["publishers"]["golden"]["chain"] == [{"version": 1, "sha256": signed}]


def test_rollback_is_refused_and_the_state_file_is_kept(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state" / "sevref.json"
    newer = build(tmp_path, capsys, keys, "newer", changes={"serial: 3": "serial: 9"})
    assert verify(newer, capsys, keys, "--state", str(state))[0] == 0
    remembered = load(state)
    # What keys/1.dsse.json signs, not the envelope as served (a re-serialised envelope is the same document).
    chain = hashlib.sha256(base64.b64decode(load(newer / "keys" / "1.dsse.json")["payload"])).hexdigest()
    index = hashlib.sha256((newer / "index.json").read_bytes()).hexdigest()
    assert remembered["schema"] == "urn:sevref:schema:state:1"
    assert remembered["publishers"]["golden"]["chain"] == [{"version": 1, "sha256": chain}]
    assert [k["keyid"] for k in remembered["publishers"]["golden"]["active"]] == [load_keyid(keys, "k1")]
    assert remembered["streams"] == {"golden/tiny/test": {"serial": 9, "index_sha256": index}}
    status, _, err = verify(site, capsys, keys, "--state", str(state))
    assert status == 3 and "not trusted: rollback: serial 3 is lower than 9, the last one seen" in err
    assert load(state) == remembered
    assert sorted(p.name for p in state.parent.iterdir()) == [".sevref.json.lock", "sevref.json"]


def test_unsigned_publications_are_refused(tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "unsigned"
    status, text, _ = run(["build", str(manifest(tmp_path)), "--out", str(out)], capsys)
    assert status == 0 and "UNSIGNED: verifiers will refuse it" in text
    assert load(out / "index.json")["signing"] is None
    status, _, err = verify(out, capsys, keys)
    assert status == 3 and "not trusted: signature: the publication is unsigned: no index.dsse.json" in err


def test_key_rotation_and_revocation(tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chain = tmp_path / "chain"
    k1, k2 = keys / "k1.pem", keys / "k2.pem"
    assert (
        run(["key", "chain", "--keys", str(chain), "--publisher", "golden", "--signing-key", str(k1)], capsys)[0] == 0
    )
    old = build(tmp_path, capsys, keys, "old", chain=chain)
    # Rotate: k2 joins (countersigning), k1 is revoked, signed by k1.
    status, out, _ = run(
        [
            "key",
            "chain",
            "--keys",
            str(chain),
            "--publisher",
            "golden",
            "--signing-key",
            str(k1),
            "--add",
            str(k2),
            "--revoke",
            load_keyid(keys, "k1"),
            "--reason",
            "laptop stolen",
        ],
        capsys,
    )
    assert status == 0 and out.startswith(f"wrote {chain / '2.dsse.json'}: keys version 2")
    # The build refuses the revoked key, and accepts the new one.
    status, _, err = run(
        [
            "build",
            str(manifest(tmp_path)),
            "--out",
            str(tmp_path / "x"),
            "--signing-key",
            str(k1),
            "--keys",
            str(chain),
        ],
        capsys,
    )
    assert status == 1 and "revoked (laptop stolen) in keys/2; sign with an active key of the chain" in err
    new = build(tmp_path, capsys, keys, "new", key="k2", chain=chain)
    # A verifier pinned to k1 follows the chain to k2; one pinned to k2 starts at keys/2.
    for pinned in ("k1", "k2"):
        status, out, _ = verify(new, capsys, keys, key=pinned)
        assert status == 0 and "(keys/2)" in out
    # An old release signed by k1, served with the new chain, is refused.
    shutil.copy(chain / "2.dsse.json", old / "keys" / "2.dsse.json")
    status, _, err = verify(old, capsys, keys)
    assert status == 3 and "revoked in keys/2 (laptop stolen)" in err
    # A verifier that has seen keys/2 refuses a host that withholds it (and with it the revocation).
    state = tmp_path / "state.json"
    assert verify(new, capsys, keys, "--state", str(state))[0] == 0
    (old / "keys" / "2.dsse.json").unlink()
    status, _, err = verify(old, capsys, keys, "--state", str(state))
    assert (
        status == 3
        and (
            "not trusted: rollback: the newest keys document is keys/1.dsse.json; keys/2.dsse.json was seen before "
            "(a newer document, perhaps a revocation, is withheld)"
        )
        in err
    )
    # A forged keys/2 that k1 did not sign breaks the chain for a k1-pinned verifier.
    forged = tmp_path / "forged"
    assert (
        run(
            ["key", "chain", "--keys", str(forged), "--publisher", "golden", "--signing-key", str(keys / "k3.pem")],
            capsys,
        )[0]
        == 0
    )
    shutil.copy(forged / "1.dsse.json", new / "keys" / "2.dsse.json")
    status, _, err = verify(new, capsys, keys)
    assert status == 3 and "not trusted: keys: keys/2.dsse.json is not signed by an active key of keys/1" in err


def load_keyid(keys: Path, name: str) -> str:
    return key_id(load_public(keys / f"{name}.pub"))


def groups(site: Path) -> list[dict[str, Any]]:
    return [
        g
        for f in load(site / "index.json")["files"]
        if f["path"].startswith("groups/")
        for g in load(site / f["path"])["groups"]
    ]


def snp_evidence(tmp_path: Path, **fields: Any) -> list[str]:
    """A report signed through a test chain (tests/test_snp_verify.py), with the options that check it."""
    chain = make_chain()
    (tmp_path / "report.bin").write_bytes(signed_report(chain, **fields))
    (tmp_path / "vcek.der").write_bytes(chain.vcek_der)
    (tmp_path / "roots.pem").write_bytes(chain.roots_pem)
    return [
        "--snp-report",
        str(tmp_path / "report.bin"),
        "--vcek",
        str(tmp_path / "vcek.der"),
        "--amd-root",
        str(tmp_path / "roots.pem"),
    ]


def test_snp_reports_are_matched_by_lookup(
    site: Path, server: str, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = next(g for g in groups(site) if g["mode"] == "sev-snp" and g["vmm"] == "qemu")
    vcpus, digest = group["entries"][1]
    evidence = snp_evidence(tmp_path, policy=0x30000, measurement=bytes.fromhex(digest))
    status, out, err = verify(server, capsys, keys, *evidence)
    assert (status, err) == (0, "")
    assert f"match: {group['id']}-{vcpus:04d} sev-snp firmware tiny host qemu9.1-init2" in out
    assert (
        f"report: the report's signature verified: signed by a VCEK of Milan-B0 that chains to --amd-root {tmp_path}"
        in out
    )
    # Debug allowed (policy bit 19) is not what the publisher expects, and is refused anyway.
    evidence = snp_evidence(tmp_path, policy=0xB0000, measurement=bytes.fromhex(digest))
    status, out, err = verify(server, capsys, keys, *evidence)
    assert status == 1 and "refused: policy 0xb0000 differs from the expected 0x30000" in out
    assert "refused: policy 0xb0000 allows DEBUG (bit 19)" in out
    assert err == f"sevref: no match: the SEV-SNP report's measurement {digest} matches 1 entries, each refused\n"
    status, out, err = verify(server, capsys, keys, "--snp-measurement", "ab" * 48, "--json")
    assert status == 1 and json.loads(out)["verdict"] == "no match" and "matches no published entry" in err


UNCHECKED_REPORT = "the report's signature was not checked"


def test_a_report_without_its_vcek_is_not_accepted_unless_the_check_is_skipped(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = next(g for g in groups(site) if g["mode"] == "sev-snp" and g["vmm"] == "qemu")
    _, digest = group["entries"][0]
    report = tmp_path / "report.bin"  # a synthetic report: its signature is all zeros
    report.write_bytes(
        AttestationReport.build(
            version=3, policy=0x30000, measurement=bytes.fromhex(digest), current_major=1, current_minor=55
        ).to_bytes()
    )
    assert report.read_bytes()[0x2A0:0x330] == bytes(144)
    status, out, err = verify(site, capsys, keys, "--snp-report", str(report))
    assert status == 1 and "\nrefused: " in out and "match: " not in out.replace("refused: ", "")
    warning = out.splitlines()[1]  # before the matches, right under the publication's "trusted:" line
    assert warning.startswith(f"warning: {UNCHECKED_REPORT}: no VCEK or VLEK was given (--vcek or --report-certs)")
    assert f"  refused: {UNCHECKED_REPORT}: no VCEK" in out
    assert err.endswith("each refused (the report's signature was not checked: give --vcek or --report-certs)\n")
    status, out, err = verify(site, capsys, keys, "--snp-report", str(report), "--json")
    result = json.loads(out)
    assert (status, result["verdict"], result["report_signer"]) == (1, "no match", None)
    assert result["report_signature"]["verified"] is False
    assert result["report_signature"]["reason"] == "no-certificate"
    # Said so, the report is read unchecked.
    status, out, err = verify(site, capsys, keys, "--snp-report", str(report), "--skip-report-signature")
    assert (status, err) == (0, "") and "\nmatch: " in out
    assert (
        out.splitlines()[1] == f"warning: {UNCHECKED_REPORT} (--skip-report-signature): its fields are taken as given"
    )
    status, out, err = verify(site, capsys, keys, "--snp-report", str(report), "--skip-report-signature", "--json")
    assert json.loads(out)["report_signature"]["reason"] == "skipped"
    # A zero signature checked with a VCEK is no signature: not accepted (exit 3).
    chain = make_chain()
    (tmp_path / "vcek.der").write_bytes(chain.vcek_der)
    (tmp_path / "roots.pem").write_bytes(chain.roots_pem)
    checked = ["--vcek", str(tmp_path / "vcek.der"), "--amd-root", str(tmp_path / "roots.pem")]
    status, out, err = verify(site, capsys, keys, "--snp-report", str(report), *checked)
    assert (status, out) == (3, "") and err.startswith("sevref: not accepted: ") and err.count("\n") == 1
    # No match is no reason to stay silent about it.
    other = tmp_path / "other.bin"
    other.write_bytes(AttestationReport.build(version=3, measurement=bytes(48)).to_bytes())
    status, out, _ = verify(site, capsys, keys, "--snp-report", str(other))
    assert status == 1 and UNCHECKED_REPORT in out
    # A bare measurement has no report: sevref says it checked neither signature nor policy.
    status, out, _ = verify(site, capsys, keys, "--snp-measurement", digest, "--json")
    note = json.loads(out)["report_signature"]
    assert status == 0 and note["verified"] is False and note["reason"] == "no-report"
    assert "checked neither a report's signature nor the guest's policy" in note["note"]


def test_sev_evidence_and_no_evidence_say_nothing_of_a_report_signature(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An SEV/SEV-ES launch measurement matches only through its HMAC, checked with the owner's TIK.
    group = next(g for g in groups(site) if g["mode"] == "sev-es" and g["status"] == "active")
    _, digest = group["entries"][0]
    tik, nonce = bytes(range(16)), bytes(16)
    inputs = LaunchMeasureInputs(1, 55, 21, 0x5)
    blob = base64.b64encode(sev_launch_measurement(bytes.fromhex(digest), inputs, nonce, tik) + nonce).decode()
    (tmp_path / "tik").write_bytes(tik)
    evidence = ["--launch-measurement", blob, "--tik", str(tmp_path / "tik"), "--api-major", "1", "--api-minor"]
    evidence += ["55", "--build", "21", "--policy", "0x5"]
    for extra in (evidence, []):
        status, out, err = verify(site, capsys, keys, *extra)
        assert (status, err) == (0, "") and "signature was not checked" not in out and "warning:" not in out
        status, out, _ = verify(site, capsys, keys, *extra, "--json")
        result = json.loads(out)
        assert status == 0 and "report_signature" in result and result["report_signature"] is None


def test_sev_launch_measurements_are_matched_with_the_owners_tik(
    site: Path, server: str, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = next(
        g for g in groups(site) if g["mode"] == "sev-es" and g["status"] == "active" and g["vmsa_profile"] == "init2"
    )
    vcpus, digest = group["entries"][-1]
    tik, nonce = bytes(range(100, 116)), bytes(range(16))
    inputs = LaunchMeasureInputs(1, 55, 21, 0x5)
    blob = base64.b64encode(sev_launch_measurement(bytes.fromhex(digest), inputs, nonce, tik) + nonce).decode()
    (tmp_path / "tik").write_bytes(tik)
    (tmp_path / "other-tik").write_bytes(bytes(16))
    evidence = [
        "--launch-measurement",
        blob,
        "--api-major",
        "1",
        "--api-minor",
        "55",
        "--build",
        "21",
        "--policy",
        "0x5",
    ]
    status, out, err = verify(server, capsys, keys, *evidence, "--tik", str(tmp_path / "tik"))
    assert (status, err) == (0, "")
    assert f"match: {group['id']}-{vcpus:04d} sev-es" in out
    status, out, err = verify(server, capsys, keys, *evidence, "--tik", str(tmp_path / "other-tik"))
    assert status == 1 and "sevref: no match: the launch measurement (tried against" in err and "match:" not in out
    status, _, _ = verify(
        server, capsys, keys, *evidence, "--tik", str(tmp_path / "tik"), "--vcpus", str(vcpus + 1 if vcpus < 8 else 1)
    )
    assert status == 1
    status, _, err = verify(server, capsys, keys, "--launch-measurement", blob, "--tik", str(tmp_path / "tik"))
    assert status == 2 and "--launch-measurement needs --api-major, --api-minor, --build, --policy" in err


def test_lifecycle_is_reported(tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    revoked = build(tmp_path, capsys, keys, "revoked", changes={"status: deprecated": "status: revoked"})
    group = next(g for g in groups(revoked) if g["status"] == "revoked")
    _, digest = group["entries"][0]
    tik, nonce = bytes(16), bytes(16)
    blob = base64.b64encode(
        sev_launch_measurement(bytes.fromhex(digest), LaunchMeasureInputs(1, 55, 0, 0x5), nonce, tik) + nonce
    ).decode()
    (tmp_path / "tik").write_bytes(tik)
    status, out, _ = verify(
        revoked,
        capsys,
        keys,
        "--launch-measurement",
        blob,
        "--tik",
        str(tmp_path / "tik"),
        "--api-major",
        "1",
        "--api-minor",
        "55",
        "--build",
        "0",
        "--policy",
        "0x5",
    )
    assert status == 1 and "refused: revoked: superseded by the KVM_SEV_INIT2 host stack; use qemu9.1-init2" in out


def test_a_state_named_through_a_symbolic_link_stays_a_link(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file a linked --state names is updated; the link is not replaced by a regular file (issue 21)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    link = tmp_path / "state.json"
    link.symlink_to(shared / "state.json")
    for _ in range(2):
        assert verify(site, capsys, keys, "--state", str(link))[:3:2] == (0, "")
    assert link.is_symlink() and os.readlink(link) == str(shared / "state.json")
    assert "golden/tiny/test" in load(shared / "state.json")["streams"]


def test_replacing_a_file_flushes_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the rename, the folder itself is fsynced: the new name survives a crash."""
    from sevref.edge import files  # noqa: PLC0415 - this test alone

    synced: list[bool] = []
    real = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(descriptor).st_mode))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    files.write_atomic(tmp_path / "state.json", b"{}")
    assert synced == [False, True]  # the file's data, then the folder's entry


def test_a_key_pinned_for_one_publisher_starts_no_chain_for_another(
    site: Path, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A state that trusts k1 as golden's key refuses k1 as the start of publisher other's chain (issue 21)."""
    state = tmp_path / "state.json"
    assert verify(site, capsys, keys, "--state", str(state))[0] == 0
    other = build(tmp_path, capsys, keys, "other", changes={"publisher: {id: golden": "publisher: {id: other"})
    asked = ["--product", "tiny", "--stream", "test", "--at", "2026-02-01T00:00:00Z", "--trusted-key"]
    argv = ["verify", "--publication", str(other), "--publisher", "other", *asked, str(keys / "k1.pub")]
    status, _, err = run([*argv, "--state", str(state)], capsys)
    assert status == 3, err
    assert err == (
        f"sevref: not trusted: keys: pinned key {load_keyid(keys, 'k1')} is publisher 'golden''s (the state trusts "
        f"it in that key chain); it cannot start a key chain for publisher 'other': pin 'other''s own key\n"
    )
    assert "other" not in load(state)["publishers"]
    # Without a state nothing says whose the key is: the pin given for this run is the user's word.
    assert run(argv, capsys)[0] == 0
