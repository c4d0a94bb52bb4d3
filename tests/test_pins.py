"""``sevref key pin``: a pin file binds the publisher's keys to the publisher, with or without a state."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from tests.test_verify import IDENTITY, build, keys, run

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
