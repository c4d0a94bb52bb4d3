"""Signing with keys that stay on a PKCS#11 token: Debian's SoftHSM2, for real.

The token lives in a temporary folder (``SOFTHSM2_CONF``), made with
``softhsm2-util``; its keys are made by OpenSC's ``pkcs11-tool``, which also
lists the public key objects, so sevref's reading of EC_POINT and EC_PARAMS
is checked against another program (``pkcs11-tool --read-object`` of OpenSC
0.23 fails on P-384 keys with "cannot create EVP_PKEY", so the test builds
the SubjectPublicKeyInfo from the listing itself). Signatures are checked with
``cryptography``, with ``openssl dgst -sha256 -verify`` (``.sig`` files) and
with sevref's DSSE verifier; a publication signed on the token passes
``sevref verify``. ``make hsm`` installs SoftHSM2, OpenSC and openssl.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sevref._cli import main
from sevref.edge import hsm
from sevref.edge.hsm import Pkcs11Signer, parse_uri, pkcs11_signer, read_pin
from sevref.edge.keys import extend_chain, generate_key_files, load_signer, read_chain
from sevref.errors import SignatureError
from sevref.pipeline import build
from sevref.sign import INDEX_PAYLOAD_TYPE, Algorithm, envelope, load_public_key, open_envelope, sign_file
from tests.conftest import CACHE, REPO, missing

SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")
GOLDEN = REPO / "tests" / "golden" / "manifest.yaml"
PIN = "4711-0815"
SO_PIN = "so-4711-0815"
TOKEN = "sevref release"
SPARE = "spare"


@dataclass(frozen=True)
class Key:
    """A key pair made on the token by pkcs11-tool, and its public key as pkcs11-tool lists it."""

    label: str
    id: str
    algorithm: Algorithm
    public_der: Path

    @property
    def uri(self) -> str:
        return f"pkcs11:token=sevref%20release;object={self.label};type=private"

    def public(self) -> ec.EllipticCurvePublicKey:
        key = serialization.load_der_public_key(self.public_der.read_bytes())
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key


@dataclass(frozen=True)
class Token:
    """The SoftHSM2 set-up: its folder, and its keys by algorithm."""

    folder: Path
    keys: dict[Algorithm, Key]


def der(tag: int, content: bytes) -> bytes:
    assert len(content) < 0x80  # short-form lengths are all these keys need
    return bytes((tag, len(content))) + content


def listed_public_key(listing: str, key_id: str) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key object, from pkcs11-tool --list-objects (RFC 5480)."""
    block = next(b for b in listing.split("Public Key Object; EC")[1:] if re.search(rf"\n\s*ID:\s+{key_id}\n", b))
    point = bytes.fromhex(re.findall(r"EC_POINT:\s+([0-9a-f]+)", block)[0])
    params = bytes.fromhex(re.findall(r"EC_PARAMS:\s+([0-9a-f]+)", block)[0])
    assert point[0] == 0x04 and point[1] == len(point) - 2  # a DER OCTET STRING around the point
    ec_public_key = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
    return der(0x30, der(0x30, ec_public_key + params) + der(0x03, b"\x00" + point[2:]))


def tool(*args: str) -> str:
    done = subprocess.run(["pkcs11-tool", "--module", str(SOFTHSM), *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    """Two SoftHSM2 tokens in a temporary folder, with P-256, P-384 and RSA keys made by pkcs11-tool.

    SoftHSM2 reads its configuration when the module is initialized, which
    python-pkcs11 does once per process: the tokens and keys are all made first.
    """
    for program in ("softhsm2-util", "pkcs11-tool", "openssl"):
        if shutil.which(program) is None:
            missing(f"{program} is not installed: run make hsm")
    if not SOFTHSM.is_file():
        missing(f"{SOFTHSM} (Debian's softhsm2) is not installed: run make hsm")
    try:
        import pkcs11  # noqa: F401, PLC0415
    except ImportError:
        missing("python-pkcs11 is not installed: run make dev")
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    (folder / "softhsm2.conf").write_text(
        f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(folder / "softhsm2.conf"))
        for label in (TOKEN, SPARE):
            subprocess.run(
                ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN],
                capture_output=True,
                check=True,
            )
        keys = {}
        keygen = (
            ("p256", "01", "EC:prime256v1", Algorithm.ECDSA_P256),
            ("p384", "02", "EC:secp384r1", Algorithm.ECDSA_P384),
            ("rsa", "03", "rsa:2048", None),
        )
        for label, key_id, key_type, _ in keygen:
            login = ["--token-label", TOKEN, "--login", "--pin", PIN]
            tool(*login, "--keypairgen", "--key-type", key_type, "--label", label, "--id", key_id)
        listing = tool("--token-label", TOKEN, "--list-objects", "--type", "pubkey")
        for label, key_id, _, algorithm in keygen:
            if algorithm is not None:
                (folder / f"{label}.der").write_bytes(listed_public_key(listing, key_id))
                keys[algorithm] = Key(label, key_id, algorithm, folder / f"{label}.der")
        spare = ["--token-label", SPARE, "--login", "--pin", PIN]
        tool(*spare, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "p256", "--id", "01")
        yield Token(folder, keys)


@pytest.fixture()
def env(softhsm: Token, monkeypatch: pytest.MonkeyPatch) -> Iterator[Token]:
    """The module and PIN in the environment, as a release engineer sets them; no signer left open afterwards."""
    monkeypatch.setenv("SEVREF_PKCS11_MODULE", str(SOFTHSM))
    monkeypatch.setenv("SEVREF_PKCS11_PIN", PIN)
    yield softhsm
    assert hsm._LOGINS == {}, "a test left a PKCS#11 session open"


KINDS = [Algorithm.ECDSA_P256, Algorithm.ECDSA_P384]
HASHES = {Algorithm.ECDSA_P256: hashes.SHA256(), Algorithm.ECDSA_P384: hashes.SHA384()}


@pytest.mark.parametrize("algorithm", KINDS)
def test_the_public_key_and_key_id_are_the_tokens(env: Token, algorithm: Algorithm) -> None:
    key = env.keys[algorithm]
    with pkcs11_signer(key.uri) as signer:
        assert signer.algorithm is algorithm and signer.uri == key.uri
        # pkcs11-tool's own listing of the public key object, as DER SubjectPublicKeyInfo.
        assert (
            serialization.load_pem_public_key(signer.public_pem()).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == key.public_der.read_bytes()
        )
        assert signer.keyid == hashlib.sha256(key.public_der.read_bytes()).hexdigest()
        # The same key by id (percent-encoded bytes) instead of its label.
        with pkcs11_signer(f"pkcs11:token=sevref%20release;id=%{key.id}") as by_id:
            assert by_id.keyid == signer.keyid


@pytest.mark.parametrize("algorithm", KINDS)
def test_signatures_verify_with_cryptography(env: Token, algorithm: Algorithm) -> None:
    key = env.keys[algorithm]
    public = key.public()
    payload = os.urandom(1000)
    with pkcs11_signer(key.uri) as signer:
        dsse, sig = signer.sign(payload), signer.sign_sha256(payload)
        again = signer.sign(payload)
    # DSSE: the algorithm's own hash, as KeySigner signs; .sig files: SHA-256 for every curve.
    public.verify(dsse, payload, ec.ECDSA(HASHES[algorithm]))
    public.verify(again, payload, ec.ECDSA(HASHES[algorithm]))
    public.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
    assert dsse != again  # a token's ECDSA is randomized, unlike the RFC 6979 signatures of key files
    with pytest.raises(InvalidSignature):
        public.verify(dsse, payload + b"x", ec.ECDSA(HASHES[algorithm]))
    if algorithm is Algorithm.ECDSA_P384:
        with pytest.raises(InvalidSignature):
            public.verify(dsse, payload, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("algorithm", KINDS)
def test_openssl_verifies_a_sig_made_on_the_token(env: Token, algorithm: Algorithm, tmp_path: Path) -> None:
    key = env.keys[algorithm]
    data = tmp_path / "index.json"
    data.write_bytes(b'{"hello": "token"}\n')
    with pkcs11_signer(key.uri) as signer:
        (tmp_path / "index.json.sig").write_bytes(sign_file(signer, data.read_bytes()))
        (tmp_path / "sevref.pub").write_bytes(signer.public_pem())
    # The public key as sevref exports it, and as openssl reads the one pkcs11-tool listed.
    subprocess.run(
        [
            "openssl",
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            str(key.public_der),
            "-out",
            str(tmp_path / "token.pub"),
        ],
        check=True,
    )
    for public in ("sevref.pub", "token.pub"):
        command = ["openssl", "dgst", "-sha256", "-verify", public, "-signature", "index.json.sig", "index.json"]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp_path)
        assert (done.returncode, done.stdout) == (0, "Verified OK\n"), done.stderr
    (tmp_path / "index.json").write_bytes(b'{"hello": "tampered"}\n')
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 1 and "Verification failure" in done.stdout


@pytest.mark.parametrize("algorithm", KINDS)
def test_dsse_envelopes_made_on_the_token_open(env: Token, algorithm: Algorithm, tmp_path: Path) -> None:
    key = env.keys[algorithm]
    generate_key_files(tmp_path / "file", Algorithm.ECDSA_P256, b"a passphrase for a file key")
    on_disk = load_signer(tmp_path / "file.pem", b"a passphrase for a file key")
    payload = b'{"release": "1.0"}'
    with pkcs11_signer(key.uri) as signer:
        public = load_public_key(signer.public_pem(), "the token's key")
        env_ = envelope(payload, INDEX_PAYLOAD_TYPE, [signer, on_disk])
        keyid = signer.keyid
    assert open_envelope(env_, INDEX_PAYLOAD_TYPE, {keyid: public}, "index.dsse.json") == (payload, [keyid])
    tampered = {**env_, "payloadType": "application/other"}
    with pytest.raises(SignatureError, match="payloadType"):
        open_envelope(tampered, INDEX_PAYLOAD_TYPE, {keyid: public}, "index.dsse.json")


def test_a_publication_and_a_key_chain_signed_on_the_token_verify(
    env: Token, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p256, p384 = env.keys[Algorithm.ECDSA_P256], env.keys[Algorithm.ECDSA_P384]
    chain = tmp_path / "chain"
    # sevref key chain with token keys: keys/1 names the P-256 key; keys/2 adds the
    # P-384 key, signed by both (two signers of one token share its login).
    with pkcs11_signer(p256.uri) as old, pkcs11_signer(p384.uri) as new:
        extend_chain(chain, "golden", old, [], {}, "release key on SoftHSM")
        extend_chain(chain, "golden", old, [new], {}, "next key on SoftHSM")
        (tmp_path / "old.pub").write_bytes(old.public_pem())
    with pkcs11_signer(p384.uri) as signer:
        build([GOLDEN], tmp_path / "site", cache=CACHE, signer=signer, keys=read_chain(chain))
    site = tmp_path / "site"
    identity = ["--publisher", "golden", "--product", "tiny", "--stream", "test", "--at", "2026-02-01T00:00:00Z"]
    out = io.StringIO()
    status = main(
        ["verify", "--publication", str(site), "--trusted-key", str(tmp_path / "old.pub"), *identity], out=out
    )
    assert (status, capsys.readouterr().err) == (0, "")
    assert out.getvalue().startswith("trusted: golden tiny test release 1.0 serial 3, signed by key ")
    assert "(keys/2)" in out.getvalue()
    done = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            str(tmp_path / "old.pub"),
            "-signature",
            "index.json.sig",
            "index.json",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=site,
    )
    assert done.returncode == 1  # signed by the new key, not the old one
    (tmp_path / "new.pub").write_bytes(
        env.keys[Algorithm.ECDSA_P384]
        .public()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for name in ("index.json", "firmware/tiny.json"):
        command = [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            str(tmp_path / "new.pub"),
            "-signature",
            f"{name}.sig",
            name,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=site)
        assert (done.returncode, done.stdout) == (0, "Verified OK\n"), done.stderr


def one_line(error: pytest.ExceptionInfo[SignatureError], *secrets: str) -> str:
    message = str(error.value)
    assert "\n" not in message and message == error.value.diagnostic()
    for secret in secrets:
        assert secret not in message
    return message


def test_errors_are_one_line_and_never_show_the_pin(
    env: Token, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p256 = env.keys[Algorithm.ECDSA_P256].uri
    cases = {
        "pkcs11:token=sevref%20release;object=nope": (
            "pkcs11:token=sevref%20release;object=nope: no private key with label 'nope' on token 'sevref release'; "
            "expected one"
        ),
        "pkcs11:token=nope;object=p256": "no token with token 'nope'; tokens present: 'sevref release', 'spare'",
        "pkcs11:object=p256": "2 tokens match ('sevref release', 'spare'); expected one: name it with token= or serial=",
        "pkcs11:token=sevref%20release": (
            "3 private keys match any label on token 'sevref release' ('p256', 'p384', 'rsa'); "
            "expected one: name it with object= or id="
        ),
        "pkcs11:token=sevref%20release;object=rsa": "private key 'rsa' is RSA; expected an ECDSA P-256 or P-384 key",
        "pkcs11:token=sevref%20release;id=%09": "no private key with id 09 on token 'sevref release'",
    }
    for uri, expected in cases.items():
        with pytest.raises(SignatureError) as caught:
            pkcs11_signer(uri)
        assert expected in one_line(caught, PIN), uri
    # A wrong PIN, from the environment and from a file.
    monkeypatch.setenv("SEVREF_PKCS11_PIN", "0000-0000")
    with pytest.raises(SignatureError) as caught:
        pkcs11_signer(p256)
    assert one_line(caught, "0000-0000") == f"{p256}: the PIN of token 'sevref release' is wrong (CKR_PIN_INCORRECT)"
    (tmp_path / "pin").write_text("9999-9999\n")
    with pytest.raises(SignatureError, match="is wrong") as caught:
        pkcs11_signer(p256, pin_file=tmp_path / "pin")
    one_line(caught, "9999-9999")
    # The token is open in this process with the right PIN: another PIN is still refused.
    (tmp_path / "pin").write_text(f"{PIN}\n")
    with pkcs11_signer(p256, pin_file=tmp_path / "pin") as signer:
        assert signer.algorithm is Algorithm.ECDSA_P256
        with pytest.raises(SignatureError, match="is open in this process with another PIN") as caught:
            Pkcs11Signer.open(p256, str(SOFTHSM), "0000-0000")
        one_line(caught, "0000-0000")
    # No module, a module that is not one, no PIN.
    monkeypatch.delenv("SEVREF_PKCS11_MODULE")
    with pytest.raises(SignatureError) as caught:
        pkcs11_signer(p256)
    assert one_line(caught).startswith("no PKCS#11 module: give --pkcs11-module or set SEVREF_PKCS11_MODULE")
    with pytest.raises(SignatureError) as caught:
        pkcs11_signer(p256, module=str(tmp_path / "pin"))
    assert one_line(caught, PIN).startswith(f"PKCS#11 module {tmp_path / 'pin'}: cannot load it (")
    with pytest.raises(SignatureError) as caught:
        pkcs11_signer(p256, module=str(tmp_path / "missing.so"))
    assert "no such file; expected the token's shared library" in one_line(caught)
    monkeypatch.delenv("SEVREF_PKCS11_PIN")
    with pytest.raises(SignatureError) as caught:
        pkcs11_signer(p256, module=str(SOFTHSM))
    assert one_line(caught) == "no PKCS#11 PIN: set SEVREF_PKCS11_PIN or give a PIN file (never on the command line)"


def test_a_closed_signer_signs_nothing(env: Token) -> None:
    signer = pkcs11_signer(env.keys[Algorithm.ECDSA_P256].uri)
    signer.close()
    signer.close()
    with pytest.raises(SignatureError, match="the signer is closed"):
        signer.sign(b"x")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("https://example.org/key", "expected pkcs11:token=…;object=… (RFC 7512)"),
        ("pkcs11:object=a;object=b", "attribute 'object' appears twice; expected it once"),
        ("pkcs11:slot-id=1", "attribute 'slot-id' is not supported; expected token, manufacturer, model, serial"),
        ("pkcs11:type=cert", "type=cert; expected private (a signing key)"),
        ("pkcs11:object=a%2", "object has a % not followed by two hex digits"),
        ("pkcs11:object=%ff", "object is not UTF-8 once decoded"),
        ("pkcs11:object", "'object' is not name=value"),
        ("pkcs11:object=a?pin-value=4711-0815", "query attribute pin-value; expected none"),
        ("pkcs11:object=a?module-path=/x.so&pin-source=file:/p", "query attribute module-path, pin-source;"),
        # A PIN in the path is not echoed either, whatever else is wrong with the URI.
        ("pkcs11:token=x;pin-value=4711-0815", "'pkcs11:token=x;pin-value=…': attribute 'pin-value' is not supported"),
        ("pkcs11:pin-value=4711-0815;object=a%2", "attribute 'pin-value' is not supported"),
        ("pkcs11:PIN-VALUE=4711-0815;object", "'PIN-VALUE' is not supported"),
        ("pkcs11:object=a;object=b;pin-source=4711-0815", "attribute 'object' appears twice"),
        ("pkcs11:pin-value=4711-0815;type=cert", "is not supported"),
    ],
)
def test_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        parse_uri(uri)
    one_line(caught, "4711-0815")


def test_uris_are_percent_decoded() -> None:
    uri = parse_uri("pkcs11:token=My%20HSM;object=sevref%3Brelease;id=%01%a0;serial=42;type=private")
    assert (uri.token, uri.object, uri.id, uri.serial, uri.model) == (
        "My HSM",
        "sevref;release",
        b"\x01\xa0",
        "42",
        None,
    )
    assert parse_uri("PKCS11:").token is None


def test_pin_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEVREF_PKCS11_PIN", "from-the-environment")
    (tmp_path / "pin").write_bytes("1234-ü\r\nignored\n".encode())
    assert read_pin(tmp_path / "pin") == "1234-ü"
    assert read_pin(None) == "from-the-environment"
    problems = {
        "empty": (b"", "empty first line; expected the PIN on it"),
        "latin1": (b"\xfc\n", "the PIN is not UTF-8 text"),
        "huge": (b"1" * 5000, "more than 4096 bytes; expected the PIN on one line"),
    }
    for name, (data, message) in problems.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SignatureError, match=message):
            read_pin(tmp_path / name)
    with pytest.raises(SignatureError, match="No such file or directory"):
        read_pin(tmp_path / "missing")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(SignatureError, match="not a regular file; expected a file"):
        read_pin(tmp_path / "fifo")


def test_only_the_hsm_signer_needs_python_pkcs11(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = "import sys, sevref._cli, sevref.pipeline, sevref.edge.hsm; sys.exit('pkcs11' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0
    monkeypatch.setitem(sys.modules, "pkcs11", None)  # as if it were not installed
    monkeypatch.setenv("SEVREF_PKCS11_PIN", PIN)
    with pytest.raises(SignatureError) as caught:
        pkcs11_signer("pkcs11:object=p256", module=str(SOFTHSM))
    assert one_line(caught) == (
        "PKCS#11 signing needs the python-pkcs11 package; install sevref with its hsm extra (sevref[hsm])"
    )


def public_pem_file(key: Key, path: Path) -> Path:
    path.write_bytes(
        key.public().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(argv, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def openssl_verifies(site: Path, public: Path, name: str) -> bool:
    command = ["openssl", "dgst", "-sha256", "-verify", str(public), "-signature", f"{name}.sig", name]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=site)
    return (done.returncode, done.stdout) == (0, "Verified OK\n")


IDENTITY = ["--publisher", "golden", "--product", "tiny", "--stream", "test", "--at", "2026-02-01T00:00:00Z"]


def test_built_in_ci_unsigned_then_signed_on_the_token_verifies(
    env: Token, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release flow the README shows: CI builds unsigned, the token signs, verifiers check."""
    site, key = tmp_path / "site", env.keys[Algorithm.ECDSA_P256]
    assert cli(["build", str(GOLDEN), "--out", str(site)], capsys)[0] == 0
    unsigned = {p: p.read_bytes() for p in site.rglob("*.json")}
    # The module and the PIN from options this time (a PIN file, never the PIN itself).
    monkeypatch.delenv("SEVREF_PKCS11_MODULE")
    monkeypatch.delenv("SEVREF_PKCS11_PIN")
    (tmp_path / "pin").write_text(f"{PIN}\n")
    token = ["--pkcs11", key.uri, "--pkcs11-module", str(SOFTHSM), "--pin-file", str(tmp_path / "pin")]
    status, out, err = cli(["sign", str(site), *token], capsys)
    assert (status, err) == (0, "") and f"with key {hashlib.sha256(key.public_der.read_bytes()).hexdigest()}" in out
    assert PIN not in out
    public = public_pem_file(key, tmp_path / "release.pub")
    status, out, err = cli(["verify", "--publication", str(site), "--trusted-key", str(public), *IDENTITY], capsys)
    assert (status, err) == (0, "") and out.startswith("trusted: golden tiny test release 1.0 serial 3")
    assert openssl_verifies(site, public, "index.json") and openssl_verifies(site, public, "firmware/tiny.json")
    # The records are the ones CI built; only the index (which now names the key) changed.
    changed = [p.relative_to(site).as_posix() for p, data in unsigned.items() if p.read_bytes() != data]
    assert changed == ["index.json"]
    assert 'data-keyid="' + hashlib.sha256(key.public_der.read_bytes()).hexdigest() in (site / "index.html").read_text()


def test_the_key_chain_and_a_parallel_build_with_token_keys(
    env: Token, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p256, p384 = env.keys[Algorithm.ECDSA_P256], env.keys[Algorithm.ECDSA_P384]
    chain = ["key", "chain", "--keys", str(tmp_path / "chain"), "--publisher", "golden"]
    status, out, err = cli([*chain, "--pkcs11", p256.uri, "--label", "release key on SoftHSM"], capsys)
    assert (status, err) == (0, "") and out.startswith("wrote ") and out.rstrip().endswith("keys version 1")
    # Rotation: keys/2 adds the P-384 key, countersigned by it on the token.
    status, out, err = cli([*chain, "--pkcs11", p256.uri, "--add", p384.uri], capsys)
    assert (status, err) == (0, "") and out.rstrip().endswith("keys version 2")
    # A parallel build forks its workers after the token's session is open; they never use it.
    site = tmp_path / "site"
    build_argv = ["build", str(GOLDEN), "--out", str(site), "--jobs", "2", "--keys", str(tmp_path / "chain")]
    status, out, err = cli([*build_argv, "--pkcs11", p384.uri], capsys)
    assert (status, err) == (0, "") and "signed by key " in out
    old = public_pem_file(p256, tmp_path / "old.pub")
    status, out, err = cli(["verify", "--publication", str(site), "--trusted-key", str(old), *IDENTITY], capsys)
    assert (status, err) == (0, "") and "(keys/2)" in out
    assert openssl_verifies(site, public_pem_file(p384, tmp_path / "new.pub"), "index.json")


def test_a_wrong_pin_on_the_command_line_leaves_the_publication_unsigned(
    env: Token, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    assert cli(["build", str(GOLDEN), "--out", str(site)], capsys)[0] == 0
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    monkeypatch.setenv("SEVREF_PKCS11_PIN", "0000-0000")
    uri = env.keys[Algorithm.ECDSA_P256].uri
    status, out, err = cli(["sign", str(site), "--pkcs11", uri], capsys)
    assert (status, out) == (1, "")
    assert err == f"sevref: error: {uri}: the PIN of token 'sevref release' is wrong (CKR_PIN_INCORRECT)\n"
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
    status, _, err = cli(["key", "chain", "--keys", str(tmp_path / "c"), "--publisher", "g", "--pkcs11", uri], capsys)
    assert status == 1 and "0000-0000" not in err and not (tmp_path / "c").exists()
