"""``sevref sign``: a publication built unsigned, signed later, is the publication a signed build writes.

The keys on a PKCS#11 token are in test_hsm.py (one SoftHSM2 set-up per process).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sevref import __version__
from sevref._cli import main
from sevref.edge.keys import generate_key_files
from sevref.sign import Algorithm
from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden"
GOLDEN_PASSPHRASE = "golden-test-key-not-a-secret"
GOLDEN_KEY = ["--signing-key", str(GOLDEN / "key" / "golden.pem"), "--keys", str(GOLDEN / "key" / "chain")]
IDENTITY = ["--publisher", "golden", "--product", "tiny", "--stream", "test", "--at", "2026-02-01T00:00:00Z"]


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(args, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def build(out: Path, capsys: pytest.CaptureFixture[str], *signing: str) -> str:
    status, text, err = run(["build", str(GOLDEN / "manifest.yaml"), "--out", str(out), *signing], capsys)
    assert (status, err) == (0, ""), err
    return text


@pytest.fixture()
def unsigned(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", GOLDEN_PASSPHRASE)
    build(tmp_path / "site", capsys)
    return tmp_path / "site"


def test_built_unsigned_then_signed_is_the_signed_build_byte_for_byte(
    unsigned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(unsigned)
    assert json.loads(before["index.json"])["signing"] is None
    status, out, err = run(["sign", str(unsigned), *GOLDEN_KEY], capsys)
    assert (status, err) == (0, "")
    assert out.startswith(
        f"signed {unsigned} with key 7116e8fadee74f97ad6b27f8a8ef921d4a42b6cbb46ac0877c95b17dc3d1f70e"
    )
    build(tmp_path / "one-step", capsys, *GOLDEN_KEY)
    signed, one_step = tree(unsigned), tree(tmp_path / "one-step")
    assert sorted(signed) == sorted(one_step) == sorted(tree(GOLDEN / "publication"))
    for name, data in one_step.items():
        assert signed[name] == data, f"{name} differs from the one-step signed build"
    # Every page changed: each shows the signing key.
    pages = [name for name in before if name.endswith(".html")]
    assert len(pages) == 38 and all(before[name] != signed[name] for name in pages)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site.tmp")] == []


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_every_key_type_signs_as_a_build_does(
    algorithm: Algorithm, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", "a passphrase for this key")
    keyid = generate_key_files(tmp_path / "k", algorithm, b"a passphrase for this key")
    build(tmp_path / "later", capsys)
    assert run(["sign", str(tmp_path / "later"), "--signing-key", str(tmp_path / "k.pem")], capsys)[0] == 0
    build(tmp_path / "once", capsys, "--signing-key", str(tmp_path / "k.pem"))
    assert tree(tmp_path / "later") == tree(tmp_path / "once")
    status, out, err = run(
        ["verify", "--publication", str(tmp_path / "later"), "--trusted-key", str(tmp_path / "k.pub"), *IDENTITY],
        capsys,
    )
    assert (status, err) == (0, "") and f"signed by key {keyid[:16]}..." in out


def test_the_build_prints_the_index_hash_that_sign_can_insist_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", GOLDEN_PASSPHRASE)
    text = build(tmp_path / "site", capsys)
    line = text.splitlines()[-1]
    assert line.startswith("  UNSIGNED: verifiers will refuse it (give --signing-key or --pkcs11, or sign it with")
    printed = line.rsplit(" ", 1)[-1]
    status, _, err = run(["sign", str(tmp_path / "site"), "--index-sha256", "ab" * 32, *GOLDEN_KEY], capsys)
    assert status == 1
    assert f"index.json: sha256 is {printed}, expected {'ab' * 32} (--index-sha256): not the publication" in err
    status, out, _ = run(["sign", str(tmp_path / "site"), "--index-sha256", printed.upper(), *GOLDEN_KEY], capsys)
    assert status == 0 and f"index.json sha256 {printed} before" in out
    assert tree(tmp_path / "site") == tree(GOLDEN / "publication")


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


TAMPERING: dict[str, tuple[Callable[[Path], object], str]] = {
    "a page": (lambda site: flip(next((site / "entry").iterdir())), "the publication changed since it was built"),
    "the home page": (lambda site: flip(site / "index.html"), "index.html: sha256"),
    "a group shard": (lambda site: flip(next((site / "groups").iterdir())), "the publication changed since it was"),
    "the script": (lambda site: flip(site / "assets" / "sevref.js"), "assets/sevref.js: sha256"),
    "the firmware record": (lambda site: flip(site / "firmware" / "tiny.json"), "firmware/tiny.json: sha256"),
    "a deleted file": (lambda site: (site / "catalog" / "tiny.json").unlink(), "catalog/tiny.json: No such file"),
    "an added file": (lambda site: (site / "groups" / "x.json").write_text("{}"), "groups/x.json: not listed in index"),
    "an index entry": (
        lambda site: (site / "index.json").write_bytes(
            (site / "index.json").read_bytes().replace(b'"size":', b'"size":1', 1)
        ),
        "index.json says",
    ),
    "another sevref": (
        lambda site: (site / "index.json").write_bytes(
            (site / "index.json").read_bytes().replace(f'"sevref":"{__version__}"'.encode(), b'"sevref":"0.0.1"')
        ),
        f"built by sevref 0.0.1; this is sevref {__version__}: sign with the sevref that built it",
    ),
    "a broken index": (lambda site: (site / "index.json").write_text("{"), "index.json: not JSON"),
    "no index": (lambda site: (site / "index.json").unlink(), "no index.json; expected a publication that sevref"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_changed_publication_is_refused_and_left_as_it_is(
    case: str, unsigned: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, message = TAMPERING[case]
    change(unsigned)
    before = tree(unsigned)
    status, out, err = run(["sign", str(unsigned), *GOLDEN_KEY], capsys)
    assert (status, out) == (1, "")
    assert err.startswith("sevref: error: ") and err.count("\n") == 1 and message in err, err
    assert tree(unsigned) == before
    assert [p.name for p in unsigned.parent.iterdir() if ".tmp-" in p.name] == []


def test_a_signed_publication_is_signed_again_only_when_asked(
    unsigned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(["sign", str(unsigned), *GOLDEN_KEY], capsys)[0] == 0
    status, _, err = run(["sign", str(unsigned), *GOLDEN_KEY], capsys)
    assert status == 1 and "already signed by key 7116e8fadee74f97" in err and "give --resign" in err
    # Signed again with the same key: the same bytes. With another key: that key's publication.
    assert run(["sign", str(unsigned), "--resign", *GOLDEN_KEY], capsys)[0] == 0
    assert tree(unsigned) == tree(GOLDEN / "publication")
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", "another passphrase")
    generate_key_files(tmp_path / "new", Algorithm.ECDSA_P384, b"another passphrase")
    assert run(["sign", str(unsigned), "--resign", "--signing-key", str(tmp_path / "new.pem")], capsys)[0] == 0
    assert [p.name for p in (unsigned / "keys").iterdir()] == ["1.dsse.json"]
    verify = ["verify", "--publication", str(unsigned), *IDENTITY]
    assert run([*verify, "--trusted-key", str(tmp_path / "new.pub")], capsys)[0] == 0
    status, _, err = run([*verify, "--trusted-key", str(GOLDEN / "key" / "golden.pub")], capsys)
    assert status == 3 and "not trusted: keys: no keys document is signed by a pinned key" in err


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_verifies_what_sign_wrote(unsigned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sign", str(unsigned), *GOLDEN_KEY], capsys)[0] == 0
    for name in ("index.json", "publication.json", "firmware/tiny.json"):
        command = ["openssl", "dgst", "-sha256", "-verify", str(GOLDEN / "key" / "golden.pub")]
        done = subprocess.run(
            [*command, "-signature", f"{name}.sig", name], cwd=unsigned, capture_output=True, text=True, check=False
        )
        assert (done.returncode, done.stdout) == (0, "Verified OK\n"), done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--passphrase-file", "p"], "one of the arguments --signing-key --pkcs11 is required"),
        (["--signing-key", "k.pem", "--pkcs11", "pkcs11:object=a"], "not allowed with argument --signing-key"),
        (["--pkcs11", "pkcs11:object=a", "--passphrase-file", "p"], "--passphrase-file goes with --signing-key"),
        (["--signing-key", "k.pem", "--pin-file", "p"], "--pin-file goes with --pkcs11"),
        (["--signing-key", "k.pem", "--pkcs11-module", "m.so"], "--pkcs11-module goes with --pkcs11"),
        (["--signing-key", "pkcs11:object=a"], "--signing-key takes a key file; name a key on a token with --pkcs11"),
        (["--pkcs11", "object=a"], "--pkcs11: expected a pkcs11: URI (RFC 7512), found 'object=a'"),
        (["--pkcs11", "pkcs11:object=a", "--pin", "1234"], "unrecognized arguments: --pin (values not shown)"),
    ],
)
def test_usage(argv: list[str], message: str, unsigned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["sign", str(unsigned), *argv], capsys)
    assert status == 2 and message in err, err
    assert "1234" not in err  # a PIN typed as an option is not echoed


def test_index_sha256_must_be_a_sha256(unsigned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["sign", str(unsigned), "--index-sha256", "abc", *GOLDEN_KEY], capsys)
    assert status == 1 and "--index-sha256: expected 64 hex characters (32 bytes), found 'abc'" in err


@pytest.mark.slow  # multi-second subprocesses or whole-demo builds: make test runs it
def test_the_demo_signed_later_is_the_demo_signed_at_once(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three Debian firmware builds, two matrices: every page and record as a one-step signed build writes them."""
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", "a passphrase for the demo")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764115200")  # as the demo fixture builds it
    generate_key_files(tmp_path / "k", Algorithm.ECDSA_P256, b"a passphrase for the demo")
    later = tmp_path / "later"
    shutil.copytree(demo, later)
    assert run(["sign", str(later), "--signing-key", str(tmp_path / "k.pem")], capsys)[0] == 0
    manifests = sorted(str(p) for p in (REPO / "manifests").glob("*.yaml"))
    command = ["build", *manifests, "--out", str(tmp_path / "once"), "--cache", str(REPO / ".cache")]
    status, _, err = run([*command, "--signing-key", str(tmp_path / "k.pem")], capsys)
    assert (status, err) == (0, "")
    assert tree(later) == tree(tmp_path / "once")
