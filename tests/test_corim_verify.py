"""``sevref verify --corim``: a publication's own CoRIM, and one exported from it, held to the trusted release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2

from tests.test_history import TRUST, Releases, releases, run

__all__ = ["releases"]  # the fixture, used by name


def verify(site: Path, corim: Path, capsys: Any, *extra: str) -> tuple[int, str, str]:
    return run(["verify", "--publication", str(site), *TRUST, "--corim", str(corim), *extra], capsys)


def test_a_publication_carries_corims_that_verify_against_it(releases: Releases, capsys: Any) -> None:
    r1 = releases.root / "r1"
    for name, profile in (("sev-snp", "tag:amd.com,2024:snp-corim-profile"), ("sev", "urn:sevref:corim-profile:sev:1")):
        status, out, err = verify(r1, r1 / "corim" / f"{name}.corim", capsys)
        assert (status, err) == (0, ""), err
        assert f"corim: {r1 / 'corim' / name}.corim (golden/tiny/test/3, profile {profile}) is signed by key " in out
        assert "are all accepted by this release" in out


def test_a_corim_that_still_accepts_a_digest_revoked_since_is_refused(releases: Releases, capsys: Any) -> None:
    # Release 2 revokes the EC2 SEV-SNP configuration that release 1's CoRIM still accepts.
    old = releases.root / "r1" / "corim" / "sev-snp.corim"
    status, _, err = verify(releases.root / "r2", old, capsys)
    assert status == 3 and err.startswith(f"sevref: not accepted: {old}: accepts ") and "that serial 4 does not" in err
    # Release 2's own CoRIM leaves the revoked digests out.
    assert verify(releases.root / "r2", releases.root / "r2" / "corim" / "sev-snp.corim", capsys)[0] == 0


def test_a_tampered_or_missing_corim_is_refused(releases: Releases, capsys: Any, tmp_path: Path) -> None:
    r1 = releases.root / "r1"
    data = (r1 / "corim" / "sev-snp.corim").read_bytes()
    sign1 = cbor2.loads(data).value
    tampered = tmp_path / "tampered.corim"
    tampered.write_bytes(cbor2.dumps(cbor2.CBORTag(18, [sign1[0], sign1[1], sign1[2], bytes(len(sign1[3]))])))
    status, _, err = verify(r1, tampered, capsys)
    assert status == 3 and "not accepted" in err and "signature" in err
    status, _, err = verify(r1, tmp_path / "missing.corim", capsys)
    assert status == 1 and "missing.corim" in err
