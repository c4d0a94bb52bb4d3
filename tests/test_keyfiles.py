"""Key files: the passphrase KDF, obsolete encryptions, re-encryption, file modes and links, passphrases kept quiet."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sevref.edge.keys import generate_key_files, load_signer
from sevref.errors import SignatureError
from sevref.pkcs8 import PBKDF2_ITERATIONS, encrypt_pem, protection
from sevref.sign import Algorithm

PASSPHRASE = "key-file-test-passphrase"
PASSOUT = ("-passout", f"pass:{PASSPHRASE}")


def sevref(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sevref", *args],
        cwd=cwd,
        env={**os.environ, "SEVREF_KEY_PASSPHRASE": PASSPHRASE, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_new_keys_use_pbkdf2_sha256_at_600000_iterations(tmp_path: Path) -> None:
    done = sevref(["key", "generate", "--out", str(tmp_path / "k")], tmp_path)
    assert done.returncode == 0, done.stderr
    pem = (tmp_path / "k.pem").read_bytes()
    found = protection(pem, "k.pem")
    assert (found.kdf, found.prf, found.iterations, found.strong) == ("PBKDF2", "hmacWithSHA256", 600_000, True)
    assert PBKDF2_ITERATIONS == 600_000
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    if shutil.which("openssl"):  # any PKCS#8 reader opens it
        opened = subprocess.run(
            ["openssl", "pkey", "-in", str(tmp_path / "k.pem"), "-passin", "env:SEVREF_KEY_PASSPHRASE", "-noout"],
            env={**os.environ, "SEVREF_KEY_PASSPHRASE": PASSPHRASE},
            capture_output=True,
            check=False,
        )
        assert opened.returncode == 0, opened.stderr


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_key_files_have_their_modes_whatever_the_umask(umask: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        generate_key_files(tmp_path / "k", Algorithm.ED25519, PASSPHRASE.encode())
    finally:
        os.umask(old)
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k.pub").stat().st_mode & 0o777 == 0o644


def test_key_files_are_not_written_through_links(tmp_path: Path) -> None:
    (tmp_path / "k.pub").symlink_to(tmp_path / "elsewhere.pub")  # dangling: would create elsewhere.pub
    with pytest.raises(SignatureError, match="k.pub: exists; refusing to overwrite a key"):
        generate_key_files(tmp_path / "k", Algorithm.ED25519, PASSPHRASE.encode())
    (tmp_path / "k.pub").unlink()
    (tmp_path / "j.pem").symlink_to(tmp_path / "target.pem")
    with pytest.raises(Exception, match="j.pem: exists; refusing to overwrite a key"):
        generate_key_files(tmp_path / "j", Algorithm.ED25519, PASSPHRASE.encode())
    assert not (tmp_path / "elsewhere.pub").exists() and not (tmp_path / "target.pem").exists()


def _legacy(tmp_path: Path) -> Path:
    """A key in the old PEM encryption (Proc-Type: 4,ENCRYPTED; the key is an MD5 of the passphrase)."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "legacy.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(PASSPHRASE.encode()),
        )
    )
    assert b"Proc-Type: 4,ENCRYPTED" in path.read_bytes()
    return path


def test_obsolete_encryptions_are_refused(tmp_path: Path) -> None:
    done = sevref(
        ["key", "chain", "--keys", "chain", "--publisher", "p", "--signing-key", str(_legacy(tmp_path))], tmp_path
    )
    assert done.returncode == 1 and done.stderr.startswith(
        f"sevref: error: {tmp_path}/legacy.pem: legacy PEM encryption"
    )
    assert "openssl pkcs8 -topk8 -v2 aes-256-cbc" in done.stderr
    plain = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(SignatureError, match="the key is not encrypted; expected an encrypted key"):
        protection(plain, "plain.pem")
    assert shutil.which("openssl"), "make hsm installs openssl"
    # PBES1 (PKCS#5 v1.5 and PKCS#12 schemes)
    (tmp_path / "plain.pem").write_bytes(plain)
    subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-in", "plain.pem", "-out", "pbes1.pem", "-v1", "PBE-SHA1-3DES", *PASSOUT],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    with pytest.raises(SignatureError, match="expected PBES2 \\(PBES1 and PKCS#12 schemes are obsolete\\)"):
        load_signer(tmp_path / "pbes1.pem", PASSPHRASE.encode())


def test_old_keys_load_with_a_warning_until_reencrypted(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    old = tmp_path / "old.pem"
    old.write_bytes(encrypt_pem(der, PASSPHRASE.encode(), iterations=2048))  # what sevref wrote before
    old.chmod(0o600)
    keyid = load_signer(old, PASSPHRASE.encode()).keyid
    done = sevref(["key", "chain", "--keys", "chain", "--publisher", "p", "--signing-key", str(old)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"sevref: warning: {old}: its file is encrypted with PBKDF2-hmacWithSHA256 with 2048 iterations, below "
        "today's guidance; re-encrypt it with sevref key reencrypt\n"
    )
    new = "another-passphrase-for-the-key"
    done = sevref(["key", "reencrypt", str(old)], tmp_path, {"SEVREF_NEW_KEY_PASSPHRASE": new})
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{keyid}  {old}: encrypted again with PBKDF2-hmacWithSHA256 with 600000 iterations\n"
    assert old.stat().st_mode & 0o777 == 0o600
    assert load_signer(old, new.encode()).keyid == keyid
    with pytest.raises(SignatureError, match="the passphrase is wrong"):
        load_signer(old, PASSPHRASE.encode())
    done = sevref(
        ["key", "chain", "--keys", "chain2", "--publisher", "p", "--signing-key", str(old)],
        tmp_path,
        {"SEVREF_KEY_PASSPHRASE": new},
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


@pytest.mark.parametrize(
    "argv",
    [
        ["key", "generate", "--out", "k", "--passphrase", "hunter2hunter2"],
        ["key", "generate", "--out", "k", "--passphrase=hunter2hunter2"],
        ["key", "generate", "--out", "k", "hunter2hunter2"],
        ["verify", "--passphrase", "hunter2hunter2"],
    ],
)
def test_no_passphrase_is_ever_echoed(argv: list[str], tmp_path: Path) -> None:
    done = sevref(argv, tmp_path)
    assert done.returncode == 2
    assert "hunter2" not in done.stderr + done.stdout
    assert "unrecognized arguments" in done.stderr or "required" in done.stderr


def test_a_passphrase_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    environment = {
        **{k.encode(): v.encode() for k, v in os.environ.items()},
        b"SEVREF_KEY_PASSPHRASE": b"\xffsecret\xfe42",
    }
    done = subprocess.run(
        [sys.executable, "-m", "sevref", "key", "generate", "--out", str(tmp_path / "k")],
        env=environment,  # POSIX takes bytes
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == b"sevref: error: SEVREF_KEY_PASSPHRASE: the passphrase is not UTF-8 text; expected UTF-8\n"
    assert not (tmp_path / "k.pem").exists()


def _on_a_terminal(args: list[str], cwd: Path, answers: list[str]) -> tuple[int, str]:
    """Run sevref with a pseudo-terminal as its controlling terminal and standard streams; type the answers."""
    master, slave = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SEVREF_")}

    def controlling_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # after setsid: getpass opens /dev/tty, as a user's shell gives it

    process = subprocess.Popen(  # nosec B603
        [sys.executable, "-m", "sevref", *args],
        cwd=cwd,
        env=environment,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=controlling_terminal,  # noqa: PLW1509
    )
    os.close(slave)
    shown, pending, deadline = b"", list(answers), time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.1)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            shown += chunk
            if pending and shown.rstrip().endswith(b":"):
                time.sleep(0.2)  # as a person types: after getpass has turned echo off and flushed the input
                os.write(master, pending.pop(0).encode() + b"\n")
        elif process.poll() is not None:
            break
    os.close(master)
    return process.wait(timeout=60), shown.decode(errors="replace")


@pytest.mark.slow  # multi-second subprocesses or whole-demo builds: make test runs it
def test_a_passphrase_is_asked_for_on_a_terminal_and_never_echoed(tmp_path: Path) -> None:
    secret = "correct horse battery staple"
    status, shown = _on_a_terminal(["key", "generate", "--out", "k"], tmp_path, [secret, secret])
    assert status == 0, shown
    assert "sevref: new key passphrase (or set SEVREF_KEY_PASSPHRASE): " in shown and "again: " in shown
    assert secret not in shown
    load_signer(tmp_path / "k.pem", secret.encode())  # the key is encrypted with what was typed
    status, shown = _on_a_terminal(["key", "generate", "--out", "k2"], tmp_path, [secret, secret + "!"])
    assert status == 1 and "the two passphrases typed differ; expected the same passphrase twice" in shown
    assert not (tmp_path / "k2.pem").exists()
    # Not on a terminal and nothing set: the error says the three ways.
    done = subprocess.run(
        [sys.executable, "-m", "sevref", "key", "generate", "--out", "k3"],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("SEVREF_")},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "set SEVREF_KEY_PASSPHRASE, give a passphrase file, or run on a terminal" in (
        done.stderr
    )
