"""``sevref timestamp`` and ``verify --require-timestamp/--max-age``: freshness with an online key of its own role."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.test_verify import build, keys, load_keyid, run

__all__ = ["keys"]  # the fixture, used by name

PIN = "k1"
AT = "2026-02-01T06:00:00Z"
ISSUED = ("--issued", "2026-02-01T00:00:00Z")


@pytest.fixture()
def stamped(tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A publication whose chain has k3 for timestamps, with a timestamp issued at 2026-02-01T00:00:00Z for a day."""
    chain = tmp_path / "chain"
    common = ["key", "chain", "--keys", str(chain), "--publisher", "golden", "--signing-key", str(keys / "k1.pem")]
    assert run(common, capsys)[0] == 0
    status, _, err = run([*common, "--add", str(keys / "k3.pem"), "--role", "timestamp"], capsys)
    assert status == 0, err
    site = build(tmp_path, capsys, keys, "site", chain=chain)
    status, out, err = run(
        ["timestamp", str(site), "--signing-key", str(keys / "k3.pem"), "--valid-for", "1d", *ISSUED],
        capsys,
    )
    assert status == 0, err
    assert out.startswith(f"wrote {site / 'timestamp.dsse.json'}: serial 3, index.json sha256 ")
    assert out.rstrip().endswith(
        "valid from 2026-02-01T00:00:00Z until 2026-02-02T00:00:00Z, signed by key " + _keyid(keys, "k3")
    )
    assert (site / "timestamp.dsse.json").stat().st_mode & 0o777 == 0o644
    return site


def _keyid(keys: Path, name: str) -> str:
    return load_keyid(keys, name)


def verify(
    site: Path, capsys: pytest.CaptureFixture[str], keys: Path, *extra: str, at: str = AT
) -> tuple[int, str, str]:
    identity = ["--publisher", "golden", "--product", "tiny", "--stream", "test", "--at", at]
    return run(
        ["verify", "--publication", str(site), "--trusted-key", str(keys / f"{PIN}.pub"), *identity, *extra], capsys
    )


def test_a_fresh_timestamp_is_accepted(stamped: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = verify(stamped, capsys, keys, "--max-age", "12h")
    assert (status, err) == (0, "")
    assert out.rstrip().endswith("; timestamp issued 2026-02-01T00:00:00Z, until 2026-02-02T00:00:00Z")
    status, out, _ = verify(stamped, capsys, keys, "--require-timestamp", "--json")
    assert json.loads(out)["publication"]["timestamp"] == {
        "issued": "2026-02-01T00:00:00Z",
        "expires": "2026-02-02T00:00:00Z",
    }
    status, out, _ = run(
        [
            *("export", "--format", "trustee", "--publication", str(stamped), "--trusted-key", str(keys / "k1.pub")),
            *("--publisher", "golden", "--product", "tiny", "--stream", "test", "--at", AT, "--max-age", "12h"),
        ],
        capsys,
    )
    assert status == 0 and json.loads(out)["type"] == "sample"


def test_stale_expired_and_missing_timestamps_are_refused(
    stamped: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = verify(stamped, capsys, keys, "--max-age", "1h")
    assert status == 3 and err == (
        "sevref: not trusted: freshness: timestamp.dsse.json was issued 6h before the checking time "
        "(2026-02-01T00:00:00Z); --max-age allows 1h\n"
    )
    status, _, err = verify(stamped, capsys, keys, "--require-timestamp", at="2026-02-02T00:00:00Z")
    assert status == 3 and "freshness: timestamp.dsse.json is valid from 2026-02-01T00:00:00Z until 2026-02-02" in err
    assert verify(stamped, capsys, keys, at="2026-02-02T00:00:00Z")[0] == 0  # not asked for: not checked
    (stamped / "timestamp.dsse.json").unlink()
    status, _, err = verify(stamped, capsys, keys, "--require-timestamp")
    assert status == 3 and err.startswith("sevref: not trusted: freshness: no timestamp.dsse.json (")
    status, _, err = verify(stamped, capsys, keys, "--max-age", "forever")
    assert status == 1 and "--max-age: expected a duration such as 90s, 15m, 12h, 1h30m or 7d, found 'forever'" in err


def test_only_a_key_of_the_timestamp_role_signs_timestamps(
    stamped: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(
        ["timestamp", str(stamped), "--signing-key", str(keys / "k1.pem"), "--valid-for", "1d"], capsys
    )
    assert status == 1 and err == (
        f"sevref: error: --signing-key {_keyid(keys, 'k1')}: has the roles release in keys/2; expected a key of "
        "the timestamp role\n"
    )
    status, _, err = run(
        ["timestamp", str(stamped), "--signing-key", str(keys / "k2.pem"), "--valid-for", "1d"], capsys
    )
    assert status == 1 and "keys/2 does not list it" in err
    # A timestamp key cannot sign a release or the next keys document.
    status, _, err = run(
        [
            "key",
            "chain",
            "--keys",
            str(stamped / "keys"),
            "--publisher",
            "golden",
            "--signing-key",
            str(keys / "k3.pem"),
        ],
        capsys,
    )
    assert status == 1 and "expected a key of the release role" in err
    status, _, err = run(
        ["key", "chain", "--keys", "x", "--publisher", "golden", "--signing-key", "y", "--role", "timestamp"], capsys
    )
    assert status == 2 and "--role gives the roles of --add keys" in err


def test_a_timestamp_never_outlives_its_release(stamped: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["timestamp", str(stamped), "--signing-key", str(keys / "k3.pem"), "--valid-for", "3650d"]
    status, out, err = run([*args, "--issued", "2026-06-30T00:00:00Z"], capsys)
    assert status == 0 and "until 2026-07-01T00:00:00Z" in out, err
    status, _, err = run([*args, "--issued", "2026-07-01T00:00:00Z"], capsys)
    assert status == 1 and err == (
        "sevref: error: the release expired at 2026-07-01T00:00:00Z; a timestamp cannot renew it\n"
    )


def test_a_timestamp_never_makes_a_superseded_release_look_current(
    stamped: Path, keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = tmp_path / "chain"
    args = ["timestamp", str(stamped), "--signing-key", str(keys / "k3.pem"), "--valid-for", "1d"]
    older = build(tmp_path, capsys, keys, "older", chain=chain, changes={"serial: 3": "serial: 2"})
    forked = build(tmp_path, capsys, keys, "forked", chain=chain, changes={'release: "1.0"': 'release: "1.0-fork"'})
    stamp = (stamped / "timestamp.dsse.json").read_bytes()
    vouched = hashlib.sha256((stamped / "index.json").read_bytes()).hexdigest()
    for other, found in ((older, "serial 2"), (forked, "serial 3")):
        # The folder rolled back to another release, its current timestamp left in place.
        for name in ("index.json", "index.dsse.json"):
            (stamped / name).write_bytes((other / name).read_bytes())
        status, _, err = run([*args, "--issued", "2026-02-01T01:00:00Z"], capsys)
        assert status == 1, err
        assert f"already vouches for serial 3 with index.json sha256 {vouched}; " in err
        assert f"this folder holds {found} with " in err and "a timestamp never makes a superseded release" in err
        assert (stamped / "timestamp.dsse.json").read_bytes() == stamp  # left as it was
    # A file no key of the role signed says nothing, and is replaced.
    (stamped / "timestamp.dsse.json").write_text('{"payload": "", "payloadType": "x", "signatures": []}')
    status, out, err = run([*args, "--issued", "2026-02-01T01:00:00Z"], capsys)
    assert status == 0 and "serial 3," in out, err
    # The same release again, but issued before the timestamp already there: the clock went back.
    status, _, err = run([*args, "--issued", "2026-02-01T00:30:00Z"], capsys)
    assert status == 1 and "expected --issued at or after it, found 2026-02-01T00:30:00Z" in err
