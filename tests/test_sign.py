"""Keys, DSSE envelopes, the in-toto statement and openssl interoperability."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sevref._cli import main
from sevref.edge.keys import generate_key_files, load_signer
from sevref.errors import SignatureError
from sevref.sign import INDEX_PAYLOAD_TYPE, PREDICATE_TYPE, Algorithm, envelope, open_envelope, pae
from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden" / "manifest.yaml"
PASS = b"correct horse battery staple"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(args, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def test_pae_matches_the_dsse_specification() -> None:
    # DSSE protocol.md, "Pre-Authentication Encoding" worked example.
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("", b"") == b"DSSEv1 0  0 "


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_generated_keys(algorithm: Algorithm, tmp_path: Path) -> None:
    keyid = generate_key_files(tmp_path / "k", algorithm, PASS)
    private = tmp_path / "k.pem"
    assert os.stat(private).st_mode & 0o777 == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(private.read_bytes(), password=None)
    public = serialization.load_pem_public_key((tmp_path / "k.pub").read_bytes())
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert keyid == hashlib.sha256(der).hexdigest()
    signer = load_signer(private, PASS)
    assert signer.keyid == keyid and signer.algorithm is algorithm
    with pytest.raises(SignatureError, match="k.pem: not a PEM private key, or the passphrase is wrong") as caught:
        load_signer(private, b"wrong passphrase")
    assert "wrong passphrase" not in str(caught.value).replace("the passphrase is wrong", "")
    with pytest.raises(Exception, match="exists; refusing to overwrite a key"):
        generate_key_files(tmp_path / "k", algorithm, PASS)


def test_passphrases_never_come_from_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEVREF_KEY_PASSPHRASE", raising=False)
    status, _, err = run(["key", "generate", "--out", str(tmp_path / "k"), "--passphrase", "x"], capsys)
    assert status == 2 and "unrecognized arguments: --passphrase" in err
    status, _, err = run(["key", "generate", "--out", str(tmp_path / "k")], capsys)
    assert (
        status == 1
        and "no key passphrase: set SEVREF_KEY_PASSPHRASE, give a passphrase file, or run on a terminal" in err
    )
    (tmp_path / "pass").write_text("short\n")
    status, _, err = run(
        ["key", "generate", "--out", str(tmp_path / "k"), "--passphrase-file", str(tmp_path / "pass")], capsys
    )
    assert status == 1 and "key passphrase: 5 bytes; expected at least 8" in err
    (tmp_path / "pass").write_bytes(PASS + b"\n")
    status, out, _ = run(
        ["key", "generate", "--out", str(tmp_path / "k"), "--passphrase-file", str(tmp_path / "pass")], capsys
    )
    assert status == 0 and out.split()[0] == load_signer(tmp_path / "k.pem", PASS).keyid


def test_envelope_fields_and_signatures_verify_independently(tmp_path: Path) -> None:
    generate_key_files(tmp_path / "k", Algorithm.ECDSA_P256, PASS)
    signer = load_signer(tmp_path / "k.pem", PASS)
    payload = b'{"a":1}'
    env = envelope(payload, INDEX_PAYLOAD_TYPE, [signer])
    assert set(env) == {"payload", "payloadType", "signatures"}
    assert env["payloadType"] == "application/vnd.sevref.index+json"
    assert base64.b64decode(str(env["payload"])) == payload
    signature = cast(list[dict[str, str]], env["signatures"])[0]
    assert set(signature) == {"keyid", "sig"} and signature["keyid"] == signer.keyid
    public = serialization.load_pem_public_key((tmp_path / "k.pub").read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    message = b"DSSEv1 %d %b %d %b" % (len(INDEX_PAYLOAD_TYPE), INDEX_PAYLOAD_TYPE.encode(), len(payload), payload)
    public.verify(base64.b64decode(signature["sig"]), message, ec.ECDSA(hashes.SHA256()))
    assert envelope(payload, INDEX_PAYLOAD_TYPE, [signer]) == env  # RFC 6979: deterministic
    assert open_envelope(env, INDEX_PAYLOAD_TYPE, {signer.keyid: public}, "x") == (payload, [signer.keyid])
    with pytest.raises(SignatureError, match="payloadType is 'application/vnd.sevref.index\\+json'; expected 'other'"):
        open_envelope(env, "other", {signer.keyid: public}, "x")
    tampered = {**env, "payload": base64.b64encode(b'{"a":2}').decode()}
    with pytest.raises(SignatureError, match="no valid signature by a trusted key"):
        open_envelope(tampered, INDEX_PAYLOAD_TYPE, {signer.keyid: public}, "x")


@pytest.fixture()
def signed(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", PASS.decode())
    generate_key_files(tmp_path / "k", Algorithm.ECDSA_P256, PASS)
    assert (
        run(["build", str(GOLDEN), "--out", str(tmp_path / "site"), "--signing-key", str(tmp_path / "k.pem")], capsys)[
            0
        ]
        == 0
    )
    return tmp_path / "site", tmp_path / "k.pub"


def load(path: Path) -> Any:
    return json.loads(path.read_bytes())


def test_the_statement_names_every_file(signed: tuple[Path, Path]) -> None:
    site, _ = signed
    env = load(site / "attestation.intoto.dsse.json")
    assert env["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(env["payload"]))
    assert set(statement) == {"_type", "subject", "predicateType", "predicate"}
    assert statement["_type"] == "https://in-toto.io/Statement/v1" and statement["predicateType"] == PREDICATE_TYPE
    index = load(site / "index.json")
    expected = {f["path"]: f["sha256"] for f in index["files"]}
    expected["index.json"] = hashlib.sha256((site / "index.json").read_bytes()).hexdigest()
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} == expected
    assert statement["predicate"]["release"] == {
        "publisher": "golden",
        "product": "tiny",
        "stream": "test",
        "release": "1.0",
        "serial": 3,
    }
    assert index["signing"]["keyid"] == load(site / "index.dsse.json")["signatures"][0]["keyid"]


def test_signed_builds_are_reproducible(
    signed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, _ = signed
    again = tmp_path / "again"
    assert run(["build", str(GOLDEN), "--out", str(again), "--signing-key", str(tmp_path / "k.pem")], capsys)[0] == 0
    files = sorted(p.relative_to(site) for p in site.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((site / f).read_bytes() == (again / f).read_bytes() for f in files)
    listed_json = [f for f in load(site / "index.json")["files"] if f["path"].endswith(".json")]
    assert len([f for f in files if f.suffix == ".sig"]) == len(listed_json) + 1  # pages are pinned by the index


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_openssl_verifies_the_detached_signatures(
    algorithm: Algorithm, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", PASS.decode())
    generate_key_files(tmp_path / "k", algorithm, PASS)
    site = tmp_path / "site"
    assert run(["build", str(GOLDEN), "--out", str(site), "--signing-key", str(tmp_path / "k.pem")], capsys)[0] == 0
    # The command the home page shows, for this key's algorithm.
    shown = re.findall(r"<pre><code>(openssl [^<]*)</code></pre>", (site / "index.html").read_text())
    assert len(shown) == 1
    template = shlex.split(html.unescape(shown[0]))
    expected = "Signature Verified Successfully" if algorithm is Algorithm.ED25519 else "Verified OK"
    for name in ("index.json", "firmware/tiny.json"):
        substitutes = {"publisher.pub": str(tmp_path / "k.pub"), "index.json": name, "index.json.sig": f"{name}.sig"}
        command = [substitutes.get(a, a) for a in template]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=site)
        assert done.returncode == 0 and expected in done.stdout, done.stderr
        (tmp_path / "tampered").write_bytes((site / name).read_bytes() + b" ")
        command[command.index(name)] = str(tmp_path / "tampered")
        assert subprocess.run(command, capture_output=True, check=False, cwd=site).returncode != 0


def test_ed25519_key_type_is_checked(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "plain.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(SignatureError, match="the key is not encrypted; expected an encrypted key"):
        load_signer(tmp_path / "plain.pem", PASS)
