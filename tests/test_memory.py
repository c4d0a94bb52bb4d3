"""The verifier's memory (``--state``) and the build's: forks, equivocation, rollback, races, damage.

The first test is issue 11's reproduction: a holder of a revoked key writes a
key chain of their own and a release with a serial far ahead; a verifier
that remembers the publisher's chain refuses it, and still trusts the
publisher's release afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sevref.edge.keys import load_public
from sevref.edge.remote import reader
from sevref.edge.state import read_state, record
from sevref.errors import TrustError
from sevref.state import stream_name
from sevref.trust import TrustAnchor, establish
from sevref.values import parse_time
from tests.test_verify import IDENTITY, PASS, build, keys, load_keyid, manifest, run, verify

__all__ = ["keys"]  # the fixture, used by name

STREAM = stream_name("golden", "tiny", "test")


def chain(folder: Path, signing: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> None:
    args = ["key", "chain", "--keys", str(folder), "--publisher", "golden", "--signing-key", str(signing), *extra]
    status, _, err = run(args, capsys)
    assert status == 0, err


def test_a_fork_written_with_a_revoked_key_is_refused(
    tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = keys / "k1.pem", keys / "k2.pem"
    genuine_chain = tmp_path / "G"
    chain(genuine_chain, a, capsys)  # keys/1: A
    chain(genuine_chain, a, capsys, "--add", str(b))  # keys/2: A and B
    chain(genuine_chain, b, capsys, "--revoke", load_keyid(keys, "k1"), "--reason", "leaked")  # keys/3: A revoked
    genuine = build(
        tmp_path, capsys, keys, "genuine", key="k2", chain=genuine_chain, changes={"serial: 3": "serial: 5"}
    )
    state = tmp_path / "S"
    assert verify(genuine, capsys, keys, "--state", str(state))[0] == 0
    remembered = state.read_bytes()
    # The holder of A copies keys/1 and keys/2, writes a keys/3 of their own, and a release far ahead.
    forged_chain = tmp_path / "F"
    forged_chain.mkdir()
    for name in ("1.dsse.json", "2.dsse.json"):
        shutil.copy(genuine_chain / name, forged_chain / name)
    chain(forged_chain, a, capsys)
    forged = build(tmp_path, capsys, keys, "forged", key="k1", chain=forged_chain, changes={"serial: 3": "serial: 999"})
    status, _, err = verify(forged, capsys, keys, "--state", str(state))
    assert status == 3 and err.startswith(
        "sevref: not trusted: keys: fork at version 3: keys/3.dsse.json signs a document "
    )
    assert state.read_bytes() == remembered
    # Served with the shorter genuine chain (keys/3 withheld), the forged release is refused too.
    (forged / "keys" / "3.dsse.json").unlink()
    status, _, err = verify(forged, capsys, keys, "--state", str(state))
    assert status == 3 and "not trusted: rollback: the newest keys document is keys/2.dsse.json" in err
    # The publisher's release still verifies with the same state.
    status, out, err = verify(genuine, capsys, keys, "--state", str(state))
    assert (status, err) == (0, "") and "serial 5" in out and "(keys/3)" in out
    assert state.read_bytes() == remembered
    # A verifier that remembers nothing cannot tell the forged chain from the publisher's (keep --state).
    shutil.copy(genuine_chain / "3.dsse.json", forged / "keys" / "3.dsse.json")
    assert verify(forged, capsys, keys)[0] == 3  # with the publisher's keys/3, A is revoked


def test_one_serial_names_one_release(tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = build(tmp_path, capsys, keys, "first")
    other = build(tmp_path, capsys, keys, "other", changes={'release: "1.0"': 'release: "1.0b"'})
    state = tmp_path / "state.json"
    assert verify(first, capsys, keys, "--state", str(state))[0] == 0
    assert verify(first, capsys, keys, "--state", str(state))[0] == 0  # the same release again: fine
    status, _, err = verify(other, capsys, keys, "--state", str(state))
    index = hashlib.sha256((first / "index.json").read_bytes()).hexdigest()
    assert (
        status == 3
        and (f"not trusted: rollback: serial 3 of {STREAM} was trusted with index.json sha256 {index}; this one has ")
        in err
    )
    assert read_state(state).streams[STREAM].index_sha256 == index


def test_a_stale_verifier_cannot_undo_what_another_recorded(
    tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two verifiers share a state: the one that read it before the other recorded serial 2 cannot record serial 1."""
    one = build(tmp_path, capsys, keys, "one", changes={"serial: 3": "serial: 1"})
    two = build(tmp_path, capsys, keys, "two", changes={"serial: 3": "serial: 2"})
    state = tmp_path / "state.json"
    anchor = TrustAnchor([load_public(keys / "k1.pub")], "golden", "tiny", "test", parse_time("2026-02-01T00:00:00Z"))
    slow = establish(reader(str(one)), anchor)  # checked against the empty state it read
    fast = establish(reader(str(two)), anchor)
    record(state, "golden", fast.chain, STREAM, fast.release_state)
    with pytest.raises(TrustError, match="not trusted: rollback: serial 1 is lower than 2, the last one seen"):
        record(state, "golden", slow.chain, STREAM, slow.release_state)
    assert read_state(state).streams[STREAM].serial == 2


@pytest.mark.slow  # multi-second subprocesses or whole-demo builds: make test runs it
def test_verifiers_racing_on_one_state_lose_nothing(
    tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = [build(tmp_path, capsys, keys, f"s{n}", changes={"serial: 3": f"serial: {n}"}) for n in range(1, 9)]
    state = tmp_path / "state.json"
    env = {**os.environ, "SEVREF_KEY_PASSPHRASE": PASS}
    base = [sys.executable, "-m", "sevref", "verify", "--trusted-key", str(keys / "k1.pub"), *IDENTITY]
    runs = [
        subprocess.Popen(
            [*base, "--publication", str(site), "--state", str(state)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for site in reversed(sites)  # the newest first, so that the older ones race against it
    ]
    results = [(r.wait(120), *r.communicate()) for r in runs]
    for status, _, err in results:
        assert status == 0 or (status == 3 and "not trusted: rollback: serial " in err), err
    assert read_state(state).streams[STREAM].serial == 8
    assert any(status == 0 for status, _, _ in results)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"[" * 100_000, "nested deeper than sevref reads"),
        (b"{not json", "not JSON"),
        (b'{"serials": {}, "keys": {}}', "a state of sevref before urn:sevref:schema:state:1"),
        (b'{"schema": "urn:sevref:schema:state:2"}', "schema is 'urn:sevref:schema:state:2'; expected"),
        (b'{"schema": "a", "schema": "b"}', "key 'schema' appears twice"),
        (
            b'{"schema": "urn:sevref:schema:state:1", "publishers": {}, "streams": {"golden/tiny/test": '
            b'{"serial": 1.0, "index_sha256": "00"}}}',
            "the number 1.0 is not an integer",
        ),
        (b"\xff", "byte 0 is not UTF-8"),
    ],
)
def test_a_damaged_state_file_is_one_line_naming_it(
    content: bytes, problem: str, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = build(tmp_path, capsys, keys, "site")
    state = tmp_path / "state.json"
    state.write_bytes(content)
    status, _, err = verify(site, capsys, keys, "--state", str(state))
    assert status == 1 and err.startswith(f"sevref: error: state file {state}: ") and problem in err, err
    assert len(err.splitlines()) == 1
    assert state.read_bytes() == content


def test_builds_never_go_backwards(tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"

    def build_into(changes: dict[str, str]) -> tuple[int, str]:
        args = ["build", str(manifest(tmp_path, changes)), "--out", str(out), "--signing-key", str(keys / "k1.pem")]
        status, _, err = run(args, capsys)
        return status, err

    assert build_into({}) == (0, "")
    before = (out / "index.json").read_bytes()
    assert build_into({}) == (0, "")  # a byte-identical rebuild
    status, err = build_into({"serial: 3": "serial: 1"})
    assert status == 1 and err.strip() == (
        f"sevref: error: --out {out} holds serial 3 of golden/tiny/test; this build is serial 1: refusing to go "
        "backwards (raise the manifest's serial above 3)"
    )
    status, err = build_into({'release: "1.0"': 'release: "1.0b"'})
    assert status == 1 and err.strip() == (
        f"sevref: error: --out {out} holds serial 3 of golden/tiny/test with another index.json; this build is "
        f"serial 3 too: one serial names one release (raise the serial to 4, or remove {out} if that release was "
        "never published)"
    )
    assert (out / "index.json").read_bytes() == before
    assert build_into({"serial: 3": "serial: 4"}) == (0, "")
    assert build_into({"stream: test": "stream: other", "serial: 3": "serial: 1"}) == (0, "")  # another stream
    # An unsigned release was never trusted, so no verifier remembers it: building it again signed is fine.
    unsigned = tmp_path / "unsigned"
    assert run(["build", str(manifest(tmp_path, {})), "--out", str(unsigned)], capsys)[0] == 0
    assert (
        run(["build", str(manifest(tmp_path, {'release: "1.0"': 'release: "1.0b"'})), "--out", str(unsigned)], capsys)[
            0
        ]
        == 0
    )
    signed = ["build", str(manifest(tmp_path, {})), "--out", str(unsigned), "--signing-key", str(keys / "k1.pem")]
    assert run(signed, capsys)[0] == 0
    assert json.loads((out / "index.json").read_bytes())["stream"] == "other"
