"""``sevref export --format corim`` against implementations that are not sevref's.

* CDDL: every layer of the signed CoRIM (COSE_Sign1, protected header,
  corim-meta, corim-map, each CoMID) validates against the CDDL of
  draft-ietf-rats-corim-11 (``tests/data/corim/``, provenance in its README)
  with pycddl (cddl-rs), after :func:`pycddl_text` works around what pycddl
  0.6.4 cannot read (each rewrite named there).
* COSE: the signature verifies with cwt (an independent COSE implementation)
  and the publication's public key; one changed payload byte breaks it.
* From outside: the values, read with cbor2 and checked with cryptography
  alone, are every active SEV-SNP measurement and no revoked one.
* sevref's own reader (:func:`sevref.corim.read.open_corim`) refuses a tampered
  CoRIM and a key that is not the publisher's.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2
import pycddl  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cwt import COSE, COSEKey
from cwt.cose_key_interface import COSEKeyInterface

from sevref import corim as module
from sevref._cli import main
from sevref._cli.export import _CORIM_PROFILES, _EXPORT_FORMATS
from sevref.corim import DEFAULT_PROFILE, PROFILES, corim_bytes, unsigned_corim
from sevref.corim.read import open_corim
from sevref.digest import Mode
from sevref.edge.keys import generate_key_files, load_signer
from sevref.edge.remote import reader as folder_reader
from sevref.errors import ConfigError, SignatureError
from sevref.export import FORMATS, accepted, trustee_message
from sevref.export import accepted as accepted_entries
from sevref.records import EntryStatus, GroupRecord
from sevref.sign import Algorithm, KeySigner, generate_key, load_public_key
from sevref.trust import TrustedPublication, open_unverified
from sevref.verifier import Request, trust
from tests.conftest import REPO
from tests.test_entry_lifecycle import QEMU10

GOLDEN = REPO / "tests" / "golden"
DATA = REPO / "tests" / "data" / "corim"
PASS = b"corim-test-passphrase"
AT = datetime(2026, 2, 1, tzinfo=UTC)
IDENTITY = ("golden", "tiny", "test")


@dataclass(frozen=True)
class Site:
    """A signed golden publication, its key pair and what trusts it."""

    root: Path
    key: Path
    public_key: Path

    def trusted(self) -> TrustedPublication:
        return trust(Request(str(self.root), [self.public_key], IDENTITY, AT))

    def signer(self) -> KeySigner:
        return load_signer(self.key, PASS)

    def public(self) -> Any:
        return load_public_key(self.public_key.read_bytes(), "test key")

    def groups(self) -> list[GroupRecord]:
        return [a.group for a in accepted(self.trusted(), set(Mode))]

    def trust_args(self) -> list[str]:
        return [
            *("--publication", str(self.root), "--trusted-key", str(self.public_key)),
            *("--publisher", "golden", "--product", "tiny", "--stream", "test", "--at", "2026-02-01T00:00:00Z"),
        ]


def build(folder: Path, algorithm: Algorithm, rule: str = "", qemu10: bool = False) -> Site:
    """The golden publication (with one more lifecycle rule), signed with a new key of the given kind."""
    folder.mkdir(parents=True)
    shutil.copytree(GOLDEN / "inputs", folder / "inputs")
    text = (GOLDEN / "manifest.yaml").read_text()
    if qemu10:
        text = text.replace("  - {id: ec2, vmm: ec2}\n", f"{QEMU10}  - {{id: ec2, vmm: ec2}}\n")
        text = text.replace("[qemu7.2.1, qemu9.1-init2]", "[qemu7.2.1, qemu9.1-init2, qemu10.0-init2]")
    (folder / "manifest.yaml").write_text(text.replace("lifecycle:\n", f"lifecycle:\n{rule}"))
    generate_key_files(folder / "key", algorithm, PASS)
    out = io.StringIO()
    status = main(
        [
            "build",
            str(folder / "manifest.yaml"),
            "--out",
            str(folder / "site"),
            "--signing-key",
            str(folder / "key.pem"),
        ],
        out=out,
    )
    assert status == 0, out.getvalue()
    return Site(folder / "site", folder / "key.pem", folder / "key.pub")


@pytest.fixture(scope="module")
def passphrase() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEVREF_KEY_PASSPHRASE", PASS.decode())
        yield


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, passphrase: None) -> Site:
    """ECDSA P-384: the golden publication revokes one SEV-SNP entry (EPYC-Milan, 3 vCPUs)."""
    return build(tmp_path_factory.mktemp("corim") / "p384", Algorithm.ECDSA_P384)


@pytest.fixture(scope="module")
def corim(site: Site) -> bytes:
    return corim_bytes(site.trusted(), site.signer())


# --- CDDL (pycddl) -----------------------------------------------------------------------------------------------


def pycddl_text() -> str:
    """The -11 CDDL with its imports, rewritten into what pycddl 0.6.4 (cddl-rs 0.9.5) reads correctly.

    Each rewrite either narrows the schema (what validates after it validates
    before it) or is made up for by validating the layer separately:

    * imported names ``eatmc.x``/``coswid.x``/``cbor-ip.x`` become ``eatmc-x`` (pycddl reads no dotted names);
    * ``&(name: n)`` keys become ``n`` (the same value);
    * ``bstr .cbor R`` becomes ``bstr``: each embedded layer is validated against ``R`` on its own;
    * the COSE payload ``bstr .cbor … / hash-envelope-digest / nil`` becomes ``bstr``, and the digest's
      ``alg: (int / text)`` becomes ``int`` (pycddl rejects a choice inside an array: narrowing);
    * ``non-empty<{…}>`` becomes ``{…}`` (pycddl mis-reads the generic; the test checks non-emptiness);
    * type sockets ``$x /= a`` … become one rule ``socket-x = (a / …)``, and every one-line type choice is
      parenthesised (pycddl tries only one alternative of an unparenthesised choice inside ``[ + … ]``);
    * ``psa-sac-ext.cddl`` (an extension "used in examples only", corim-frags.mk) is left out (narrowing).
    """
    corim = (DATA / "corim-11.cddl").read_text()
    corim = re.sub(r"; --- cddl/psa-sac-ext\.cddl\n.*?(?=; ---|\Z)", "", corim, flags=re.S)
    text = corim + "\n" + (DATA / "imports.cddl").read_text()
    text = re.sub(r"\b(eatmc|coswid|cbor-ip)\.\$", r"$\1-", text)
    text = re.sub(r"\b(eatmc|coswid|cbor-ip)\.", r"\1-", text)
    text = re.sub(r"&\(\s*[\w-]+\s*:\s*(-?\d+)\s*\)", r"\1", text)
    text = re.sub(r"\b(bstr|bytes) \.cbor [\w-]+", "bstr", text)
    text = re.sub(r"bstr /\s*hash-envelope-digest /\s*nil", "bstr", text)
    text = text.replace("alg: (int / text)", "alg: int")
    text = re.sub(r"non-empty<\s*\{", "{", text)
    text = text.replace("}>", "}")
    text = re.sub(r"^non-empty<M>.*$", "", text, flags=re.M)
    choices: dict[str, list[str]] = {}

    def collect(match: re.Match[str]) -> str:
        choices.setdefault(match.group(1), []).append(match.group(2).strip())
        return ""

    text = re.sub(r"^(\$?[\w-]+)\s*/=\s*(.+)$", collect, text, flags=re.M)
    text += "\n" + "\n".join(f"{name} = ({' / '.join(alts)})" for name, alts in choices.items()) + "\n"
    text = re.sub(r"^([\w-]+) = ([^(){}\[\]\n]+ / [^(){}\[\]\n]+)$", r"\1 = (\2)", text, flags=re.M)
    for name in choices:
        if name.startswith("$"):
            text = re.sub(re.escape(name) + r"(?![\w-])", "socket-" + name[1:], text)
    return text


CDDL = pycddl_text()


def validate(rule: str, data: bytes) -> None:
    pycddl.Schema(f"root = {rule}\n{CDDL}").validate_cbor(data)


def layers(data: bytes) -> dict[str, list[bytes]]:
    """Every CBOR layer of a signed CoRIM, by the -11 rule it must match."""
    sign1 = cbor2.loads(data)
    protected = cbor2.loads(sign1.value[0])
    payload = cbor2.loads(sign1.value[2])
    return {
        "signed-corim": [data],
        "protected-corim-header-map": [sign1.value[0]],
        "corim-meta-map": [protected[8]],
        "tagged-unsigned-corim-map": [sign1.value[2]],
        "concise-mid-tag": [tag.value for tag in payload.value[1]],
    }


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_layer_validates_against_the_corim_11_cddl(site: Site, profile: str) -> None:
    data = corim_bytes(site.trusted(), site.signer(), profile)
    for rule, blobs in layers(data).items():
        assert blobs
        for blob in blobs:
            validate(rule, blob)
    # non-empty<> (rewritten away for pycddl): every triples-map, environment, class and measurement-values map.
    for comid in layers(data)["concise-mid-tag"]:
        triples = cbor2.loads(comid)[4]
        assert triples and all(t[0] and t[0][0] and all(m[1] for m in t[1]) for t in triples[0])


def test_the_validator_refuses_what_the_cddl_does_not_allow(corim: bytes) -> None:
    """The rewritten CDDL still judges: a digest as text, a CoMID without triples, an alg as text in the header."""
    comid = cbor2.loads(layers(corim)["concise-mid-tag"][0])
    measurement = comid[4][0][0][1][0]
    bad = [
        {**comid, 4: {0: [[comid[4][0][0][0], [{**measurement, 1: {2: [[7, "not bytes"]]}}]]]}},
        {1: comid[1]},
        {**comid, 4: {0: [[comid[4][0][0][0], [{0: 641, 1: {4: b"raw value without tag 560"}}]]]}},
    ]
    for value in bad:
        with pytest.raises(Exception, match="error validating"):
            validate("concise-mid-tag", cbor2.dumps(value))
    protected = cbor2.loads(layers(corim)["protected-corim-header-map"][0])
    with pytest.raises(Exception, match="error validating"):
        validate("protected-corim-header-map", cbor2.dumps({**protected, 1: "ES384"}))
    with pytest.raises(Exception, match="error validating"):
        validate("protected-corim-header-map", cbor2.dumps({**protected, 3: "application/json"}))


# --- COSE (cwt) and checks from outside with cbor2 and cryptography ---------------------------------------------


def cwt_key(site: Site, alg: str) -> COSEKeyInterface:
    pem = site.public_key.read_bytes()
    der = serialization.load_pem_public_key(pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return COSEKey.from_pem(pem, alg=alg, kid=hashlib.sha256(der).digest())


def test_cwt_verifies_the_signature_and_refuses_a_changed_payload_byte(site: Site, corim: bytes) -> None:
    key = cwt_key(site, "ES384")
    protected, unprotected, payload = COSE.new().decode_with_headers(corim, keys=[key])
    assert (protected[1], protected[3], unprotected) == (-35, "application/rim+cbor", {})
    assert payload == cbor2.loads(corim).value[2]
    sign1 = cbor2.loads(corim)
    changed = bytearray(sign1.value[2])
    changed[len(changed) // 2] ^= 0x01
    tampered = cbor2.dumps(cbor2.CBORTag(18, [sign1.value[0], {}, bytes(changed), sign1.value[3]]))
    with pytest.raises(Exception, match="Failed to verify"):
        COSE.new().decode(tampered, keys=[key])


def outside_verify(data: bytes, public_pem: bytes) -> Any:
    """Check a signed CoRIM with cbor2 and cryptography only, as a relying party without sevref would."""
    sign1 = cbor2.loads(data)
    assert isinstance(sign1, cbor2.CBORTag) and sign1.tag == 18
    protected_bytes, _unprotected, payload, signature = sign1.value
    protected = cbor2.loads(protected_bytes)
    key = serialization.load_pem_public_key(public_pem)
    message = cbor2.dumps(["Signature1", protected_bytes, b"", payload])  # RFC 9052 §4.4
    if isinstance(key, ed25519.Ed25519PublicKey):
        assert protected[1] == -8
        key.verify(signature, message)
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        size = (key.curve.key_size + 7) // 8
        assert protected[1] == {32: -7, 48: -35}[size] and len(signature) == 2 * size
        digest = hashes.SHA256() if size == 32 else hashes.SHA384()
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(digest))
    return protected, cbor2.loads(payload)


def snp_measurements(payload: Any, mkey: int = 641) -> list[bytes]:
    """Every SEV-SNP MEASUREMENT of the CoRIM (mkey, alg 7), read with cbor2."""
    found = []
    for tag in payload.value[1]:
        assert tag.tag == 506
        for _environment, measurements in cbor2.loads(tag.value)[4][0]:
            for measurement in measurements:
                if measurement[0] == mkey:
                    [[alg, value]] = measurement[1][2]
                    assert alg == 7 and len(value) == 48
                    found.append(value)
    return found


def active_snp(site: Site) -> set[str]:
    groups = [GroupRecord.from_dict(g) for g in group_dicts(site) if g["mode"] == "sev-snp"]
    return {d for g in groups for n, d in g.entries if g.state_at(n).status is EntryStatus.ACTIVE}


def revoked_digests(site: Site) -> set[str]:
    groups = [GroupRecord.from_dict(g) for g in group_dicts(site)]
    return {d for g in groups for n, d in g.entries if g.state_at(n).status is EntryStatus.REVOKED}


def group_dicts(site: Site) -> list[dict[str, Any]]:
    publication = site.trusted()
    return [
        g for path in sorted(publication.files) if path.startswith("groups/") for g in publication.read(path)["groups"]
    ]


def test_checked_from_outside_every_active_snp_measurement_and_no_revoked_one(site: Site, corim: bytes) -> None:
    protected, payload = outside_verify(corim, site.public_key.read_bytes())
    assert protected[3] == "application/rim+cbor"
    meta = cbor2.loads(protected[8])
    assert meta[0][0] == "sevref golden test" and meta[0][1] == cbor2.CBORTag(32, "https://example.org/golden/")
    assert payload.tag == 501
    corim_map = payload.value
    assert corim_map[0] == "golden/tiny/test/3"
    assert corim_map[3] == cbor2.CBORTag(32, "tag:amd.com,2024:snp-corim-profile")
    validity = corim_map[4]
    assert validity[0] == datetime(2026, 1, 1, tzinfo=UTC) and validity[1] == datetime(2026, 7, 1, tzinfo=UTC)
    assert validity[1] == site.trusted().index.expires
    found = {m.hex() for m in snp_measurements(payload)}
    revoked = revoked_digests(site)
    assert revoked and found == active_snp(site) - revoked and not found & revoked
    # The golden publication revokes EPYC-Milan at 3 vCPUs alone: its other counts are there.
    assert len(found) >= 20
    # Every triple: class-id by chip or by CSP, no instance (the values hold on any chip).
    oids = set()
    for tag in payload.value[1]:
        for environment, _ in cbor2.loads(tag.value)[4][0]:
            assert list(environment) == [0] and list(environment[0]) == [0]
            oids.add(environment[0][0])
    assert oids == {cbor2.CBORTag(111, bytes.fromhex(h)) for h in ("2b060104019c780301", "2b060104019c780302")}


def test_the_expected_policy_is_under_its_mkey(site: Site, corim: bytes) -> None:
    _, payload = outside_verify(corim, site.public_key.read_bytes())
    policies = set()
    for tag in payload.value[1]:
        for _, measurements in cbor2.loads(tag.value)[4][0]:
            keys = [m[0] for m in measurements]
            assert keys[0] == 641 and set(keys) <= {641, 2}
            policies |= {m[1][4] for m in measurements if m[0] == 2}
    # The qemu matrix expects 0x30000 (little-endian, as the report holds it); the clouds publish none.
    assert policies == {cbor2.CBORTag(560, (0x30000).to_bytes(8, "little"))}


def test_a_digest_a_revoked_entry_shares_is_left_out(tmp_path: Path, passphrase: None) -> None:
    rule = "  - match: {mode: sev-snp, host_stack: qemu10.0-init2}\n    status: revoked\n    reason: test\n"
    shared = build(tmp_path / "shared", Algorithm.ECDSA_P256, rule, qemu10=True)
    revoked = revoked_digests(shared)
    assert len(active_snp(shared) & revoked) >= 30  # qemu9.1-init2 entries carry them, active
    _, payload = outside_verify(corim_bytes(shared.trusted(), shared.signer()), shared.public_key.read_bytes())
    found = {m.hex() for m in snp_measurements(payload)}
    assert found == active_snp(shared) - revoked and not found & revoked
    # The same function decides for Trustee.
    message = trustee_message(shared.trusted())
    assert set(json.loads(base64.b64decode(message["payload"]))["snp_launch_measurement"]) == found


def test_the_profile_table_decides_the_mkeys_and_the_uri(site: Site) -> None:
    publication, signer = site.trusted(), site.signer()
    data = corim_bytes(publication, signer, "amd-snp-split-tcb")
    _, payload = outside_verify(data, site.public_key.read_bytes())
    assert payload.value[3] == cbor2.CBORTag(32, "tag:amd.com,2025:snp-corim-profile")
    assert snp_measurements(payload, 641) == []
    default = {
        m.hex()
        for m in snp_measurements(outside_verify(corim_bytes(publication, signer), site.public_key.read_bytes())[1])
    }
    assert {m.hex() for m in snp_measurements(payload, 1152)} == default
    keys = {m[0] for tag in payload.value[1] for _, ms in cbor2.loads(tag.value)[4][0] for m in ms}
    assert keys == {1152, 64}
    # sevref's reader tells the two 2025 rows apart by the mkeys used.
    assert open_corim(data, [site.public()]).profile.name == "amd-snp-split-tcb"
    assert open_corim(corim_bytes(publication, signer, "amd-snp-2025"), [site.public()]).profile.name == "amd-snp-2025"
    assert PROFILES[DEFAULT_PROFILE].uri == "tag:amd.com,2024:snp-corim-profile"
    assert all(p.source for p in PROFILES.values())


def test_sev_and_sev_es_go_under_sevrefs_profile(site: Site) -> None:
    publication = site.trusted()
    data = corim_bytes(publication, site.signer(), "sevref-sev-1")
    _, payload = outside_verify(data, site.public_key.read_bytes())
    assert payload.value[3] == cbor2.CBORTag(32, "urn:sevref:corim-profile:sev:1")
    read = open_corim(data, [site.public()], AT)
    groups = [a for a in accepted(publication, {Mode.SEV, Mode.SEV_ES}) if a.entries]
    assert read.digests() == {d for a in groups for _, d in a.entries}
    assert {v.mode for v in read.values} == {Mode.SEV, Mode.SEV_ES}
    assert {v.environment for v in read.values} == {"AMD/SEV", "AMD/SEV-ES"}
    assert {v.policy for v in read.values} == {0x1, 0x5}
    assert all(len(v.digest) == 64 for v in read.values)


def test_the_bytes_are_the_same_on_every_run(site: Site, corim: bytes, tmp_path: Path) -> None:
    assert corim_bytes(site.trusted(), site.signer()) == corim
    assert unsigned_corim(site.trusted()) == cbor2.loads(corim).value[2]
    out = tmp_path / "a.cbor"
    status = main(
        ["export", "--format", "corim", *site.trust_args(), "--signing-key", str(site.key), "--out", str(out)]
    )
    assert status == 0 and out.read_bytes() == corim


@pytest.mark.parametrize(
    ("algorithm", "alg"), [(Algorithm.ECDSA_P256, -7), (Algorithm.ECDSA_P384, -35), (Algorithm.ED25519, -8)]
)
def test_alg_follows_the_key(tmp_path: Path, passphrase: None, algorithm: Algorithm, alg: int) -> None:
    other = build(tmp_path / str(algorithm), algorithm)
    data = corim_bytes(other.trusted(), other.signer())
    protected, _ = outside_verify(data, other.public_key.read_bytes())
    assert protected[1] == alg
    COSE.new().decode(data, keys=[cwt_key(other, {-7: "ES256", -35: "ES384", -8: "EdDSA"}[alg])])
    assert open_corim(data, [other.public()], AT).digests() == {
        m.hex() for m in snp_measurements(cbor2.loads(cbor2.loads(data).value[2]))
    }


def test_a_tampered_corim_is_refused(site: Site, corim: bytes) -> None:
    key = site.public()
    assert open_corim(corim, [key], AT).digests()
    sign1 = cbor2.loads(corim)
    payload = bytearray(sign1.value[2])
    payload[-60] ^= 0x01
    cases = {
        "payload": cbor2.dumps(cbor2.CBORTag(18, [sign1.value[0], {}, bytes(payload), sign1.value[3]])),
        "signature": corim[:-1] + bytes([corim[-1] ^ 1]),
    }
    for name, data in cases.items():
        with pytest.raises(SignatureError, match="CoRIM: the signature does not verify"):
            open_corim(data, [key], AT)
        assert name
    # Not deterministic CBOR (an indefinite-length array around the same values) is refused before any check.
    with pytest.raises(SignatureError, match="not in deterministic CBOR encoding"):
        open_corim(b"\xd2\x9f" + corim[2:] + b"\xff", [key])
    with pytest.raises(SignatureError, match="expected CBOR tag 18"):
        open_corim(sign1.value[2], [key])
    with pytest.raises(SignatureError, match="rim-validity"):
        open_corim(corim, [key], datetime(2026, 7, 2, tzinfo=UTC))


def test_a_key_not_in_the_publishers_chain_is_refused(site: Site, corim: bytes) -> None:
    stranger = generate_key(Algorithm.ECDSA_P384)
    with pytest.raises(SignatureError, match="expected one of the publisher's keys"):
        open_corim(corim, [stranger.public_key()])
    # A CoRIM signed by another key than the publication's is not made.
    with pytest.raises(ConfigError, match="expected the key that signed the publication"):
        corim_bytes(site.trusted(), KeySigner(stranger))


def test_the_command_line(site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tuple(FORMATS) == _EXPORT_FORMATS and tuple(PROFILES) == _CORIM_PROFILES
    out = io.StringIO()
    assert main(["export", "--format", "corim", *site.trust_args(), "--signing-key", str(site.key)], out=out) == 2
    assert "--format corim writes binary: give --out FILE" in capsys.readouterr().err
    assert main(["export", "--format", "corim", *site.trust_args()], out=out) == 2
    assert "--format corim needs --signing-key or --pkcs11" in capsys.readouterr().err
    assert main(["export", "--format", "trustee", "--corim-profile", "amd-snp-02", *site.trust_args()], out=out) == 2
    assert "--corim-profile goes with --format corim" in capsys.readouterr().err
    target = tmp_path / "sev.cbor"
    status = main(
        [
            *("export", "--format", "corim", "--corim-profile", "sevref-sev-1", *site.trust_args()),
            *("--signing-key", str(site.key), "--out", str(target)),
        ],
        out=out,
    )
    assert status == 0 and open_corim(target.read_bytes(), [site.public()]).profile.name == "sevref-sev-1"


def test_a_comid_is_the_deterministic_encoding_of_its_whole_structure() -> None:
    """_comid encodes each triple once around its digest; the result must be what deterministic() gives."""
    publication = open_unverified(folder_reader(str(GOLDEN / "publication")))
    release = publication.index.release
    compared = 0
    for name, profile in module.PROFILES.items():
        for item in accepted_entries(publication, profile.modes):
            group, alg = item.group, module._HASH_IDS[item.group.digest_algorithm]
            policy = (
                []
                if group.policy is None
                else [
                    {
                        0: profile.mkeys[module.Quantity.POLICY],
                        1: {4: cbor2.CBORTag(560, group.policy.to_bytes(profile.policy_bytes, "little"))},
                    }
                ]
            )
            triples = [
                [
                    {0: class_map},
                    [{0: profile.mkeys[module.Quantity.DIGEST], 1: {2: [[alg, bytes.fromhex(d)]]}}, *policy],
                ]
                for _, d in item.entries
                for class_map in profile.classes[group.mode]
            ]
            ident = uuid.uuid5(
                module._COMID_NAMESPACE, f"{release.publisher}/{release.product}/{release.stream}/{group.id}"
            )
            whole = module.deterministic({1: {0: ident.bytes, 1: release.serial}, 4: {0: triples}})
            assert module._comid(publication, profile, group, item.entries) == whole, (name, group.id)
            assert cbor2.loads(whole) is not None
            compared += 1
    assert compared > 10
