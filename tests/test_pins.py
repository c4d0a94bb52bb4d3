"""``sevref key pin``: a pin file binds the publisher's keys to the publisher, with or without a state."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sevref.keychain import signed_sha256
from tests.test_verify import IDENTITY, build, keys, load_keyid, manifest, run

__all__ = ["keys"]  # the fixture, used by name


@pytest.fixture()
def pinned(tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """A publication built with golden's chain (k1), and the pin file of that chain."""
    chain = tmp_path / "chain"
    status, _, err = run(
        ["key", "chain", "--keys", str(chain), "--publisher", "golden", "--signing-key", str(keys / "k1.pem")], capsys
    )
    assert status == 0, err
    site = build(tmp_path, capsys, keys, "site", chain=chain)
    status, out, err = run(["key", "pin", "--keys", str(chain), "--out", str(tmp_path / "golden.pin")], capsys)
    assert (status, err) == (0, "")
    assert out == f"wrote {tmp_path / 'golden.pin'}: 1 release key of keys/1, pinned for publisher golden\n"
    return site, tmp_path / "golden.pin"


def test_a_pin_file_starts_only_its_publishers_chain(
    pinned: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    site, pin = pinned
    status, out, err = run(["verify", "--publication", str(site), "--trusted-key", str(pin), *IDENTITY], capsys)
    assert status == 0 and out.startswith("trusted: golden tiny test release 1.0 serial 3"), err
    # The same key, asked to start another publisher's chain (no state remembers anything here).
    other = [word if word != "golden" else "mallory" for word in IDENTITY]
    status, _, err = run(["verify", "--publication", str(site), "--trusted-key", str(pin), *other], capsys)
    assert status == 1 and err == (
        f"sevref: error: --trusted-key {pin}: pins the keys of publisher 'golden'; expected a pin for "
        "--publisher 'mallory'\n"
    )


def test_a_pin_file_is_pem_that_openssl_reads(pinned: tuple[Path, Path]) -> None:
    _, pin = pinned
    text = pin.read_text()
    keyid = re.search(r"^Key id: ([0-9a-f]{64})$", text, re.MULTILINE)
    assert keyid is not None and text.startswith("Publisher: golden\n")
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(pin), "-outform", "DER"], check=True, capture_output=True
    ).stdout
    assert hashlib.sha256(der).hexdigest() == keyid.group(1)  # the key id is the SPKI's SHA-256, as openssl reads it


def test_a_pin_file_naming_two_publishers_is_refused(
    pinned: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, pin = pinned
    bad = tmp_path / "two.pin"
    bad.write_text("Publisher: mallory\n" + pin.read_text())
    status, _, err = run(["verify", "--publication", str(site), "--trusted-key", str(bad), *IDENTITY], capsys)
    assert status == 1 and err == (
        f"sevref: error: {bad}: expected one 'Publisher: ID' line, found 'golden', 'mallory'\n"
    )
    status, _, err = run(["key", "pin", "--keys", str(tmp_path / "none"), "--out", str(tmp_path / "x.pin")], capsys)
    assert status == 1 and "no 1.dsse.json; expected a key chain" in err


def test_build_previous_is_verified_against_the_publishers_own_chain(
    tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def chain(name: str, *args: str) -> Path:
        folder = tmp_path / name
        status, _, err = run(["key", "chain", "--keys", str(folder), "--publisher", "golden", *args], capsys)
        assert status == 0, err
        return folder

    def build_next(folder: Path | None, signing: str | None, previous: Path) -> tuple[int, str, str]:
        out = tmp_path / f"next-{len(list(tmp_path.glob('next-*')))}"
        args = ["build", str(manifest(tmp_path, {"serial: 3": "serial: 4"})), "--out", str(out)]
        args += ["--previous", str(previous)]
        if folder is not None:
            args += ["--keys", str(folder), "--signing-key", str(keys / f"{signing}.pem")]
        return run(args, capsys)

    own = chain("own", "--signing-key", str(keys / "k1.pem"))
    foreign = chain("foreign", "--signing-key", str(keys / "k2.pem"))
    release = build(tmp_path, capsys, keys, "r1", chain=own)
    other = build(tmp_path, capsys, keys, "r1-foreign", key="k2", chain=foreign)
    status, out, err = build_next(own, "k1", release)
    assert status == 0 and "follows serial 3 (index.json sha256 " in out and "verified against --keys)" in out, err
    # A release by the same name and publisher id, signed by a key that is not the publisher's.
    status, _, err = build_next(own, "k1", other)
    assert status == 1 and err.startswith(f"sevref: error: --previous {other}: not trusted: keys: no keys document")
    # A key chain that forks from the release's after their common first document.
    (tmp_path / "fork").mkdir()
    shutil.copy(own / "1.dsse.json", tmp_path / "fork" / "1.dsse.json")
    fork = chain("fork", "--signing-key", str(keys / "k1.pem"), "--add", str(keys / "k3.pem"))
    chain("own", "--signing-key", str(keys / "k1.pem"), "--add", str(keys / "k2.pem"))
    rotated = build(tmp_path, capsys, keys, "r1-rotated", chain=own)
    status, _, err = build_next(fork, "k1", rotated)
    assert (
        status == 1 and "not trusted: keys: fork at version 2: the release's keys/2.dsse.json signs a document" in err
    )
    assert err.rstrip().endswith(f"; --keys holds {signed_sha256((fork / '2.dsse.json').read_bytes(), 2)}")
    # A release the publisher's key chain agrees with, but whose key it has revoked since.
    k1 = load_keyid(keys, "k1")
    chain("own", "--signing-key", str(keys / "k2.pem"), "--revoke", k1, "--reason", "stolen")
    status, _, err = build_next(own, "k2", release)
    assert status == 1 and err == (
        f"sevref: error: --previous {release}: not trusted: keys: signed by key {k1}, which the key chain in --keys "
        "revokes; expected a release signed by a key the publisher has not revoked\n"
    )
    # The publisher's chain forked from the release's: another keys/1 under the same publisher id.
    status, _, err = build_next(foreign, "k2", release)
    assert status == 1 and "not trusted: keys: no keys document is signed by a pinned key" in err
    # An unsigned build (signed later, offline) has no chain to check with, and says so.
    status, out, err = build_next(None, None, release)
    assert status == 0 and "read UNVERIFIED: no --keys)" in out, err
