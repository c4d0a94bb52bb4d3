"""sevref.trust: each check of a publication, through an in-memory fetch.

The publication is the golden manifest built once for this module
(tests/unit/publication.py) and signed with a key made in memory; each test
changes a copy of it and names the check that must fail, and how.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest

from sevref.errors import Check, FetchError, TrustError
from sevref.keychain import KeyEntry, KeysDocument, next_document
from sevref.limits import MAX_KEYS_DOCUMENTS
from sevref.serialize import canonical
from sevref.sign import INDEX_PAYLOAD_TYPE, KEYS_PAYLOAD_TYPE, Algorithm, KeySigner, envelope, generate_key, sign_file
from sevref.state import ChainLink, PublisherState, StreamState
from sevref.trust import Fetch, TrustAnchor, TrustedPublication, establish
from tests.unit.publication import AT, anchor, build_publication, fetcher, republish, sha256

K1 = KeySigner(generate_key(Algorithm.ECDSA_P256))
"""The publisher's key."""
K2 = KeySigner(generate_key(Algorithm.ED25519))
"""A key the publisher adds later."""
K3 = KeySigner(generate_key(Algorithm.ED25519))
"""Someone else's key."""
ISSUED, EXPIRES = "2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z"  # tests/golden/manifest.yaml


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return build_publication(tmp_path_factory.mktemp("trust"), K1)


def refused(files: dict[str, bytes], expected: TrustAnchor) -> TrustError:
    with pytest.raises(TrustError) as raised:
        establish(fetcher(files), expected)
    return raised.value


def listed(files: dict[str, bytes], prefix: str) -> str:
    """The first listed JSON file whose path starts with ``prefix``."""
    paths: list[str] = [f["path"] for f in json.loads(files["index.json"])["files"]]
    return next(path for path in paths if path.startswith(prefix) and path.endswith(".json"))


def test_an_intact_publication_is_trusted(files: dict[str, bytes]) -> None:
    trusted = establish(fetcher(files), anchor(K1))
    assert (trusted.keyid, trusted.keys_version, trusted.key_label) == (K1.keyid, 1, None)
    release = trusted.index.release
    assert (release.publisher, release.product, release.stream, release.serial) == ("golden", "tiny", "test", 3)
    assert trusted.files == {f.path: (f.sha256, f.size) for f in trusted.index.files}


# --------------------------------------------------------------------------- keys


def test_keys_a_key_the_publisher_never_used(files: dict[str, bytes]) -> None:
    error = refused(files, anchor(K3))
    assert error.check is Check.KEYS
    assert str(error) == f"not trusted: keys: no keys document is signed by a pinned key ({K3.keyid})"


def test_keys_a_link_that_the_previous_document_did_not_sign(files: dict[str, bytes]) -> None:
    forged = KeysDocument("golden", 2, (KeyEntry.of(K1), KeyEntry.of(K3)))
    changed = {**files, "keys/2.dsse.json": canonical(envelope(forged.to_bytes(), KEYS_PAYLOAD_TYPE, [K3]))}
    error = refused(changed, anchor(K1))
    assert error.check is Check.KEYS
    assert str(error) == (
        f"not trusted: keys: keys/2.dsse.json is not signed by an active key of keys/1 (release role): "
        "keys/2.dsse.json: "
        f"no valid signature by a trusted key (signed by {K3.keyid}; trusted: {K1.keyid})"
    )


def test_keys_a_link_of_the_wrong_version(files: dict[str, bytes]) -> None:
    wrong = KeysDocument("golden", 3, (KeyEntry.of(K1),))
    changed = {**files, "keys/2.dsse.json": canonical(envelope(wrong.to_bytes(), KEYS_PAYLOAD_TYPE, [K1]))}
    error = refused(changed, anchor(K1))
    assert error.check is Check.KEYS
    assert str(error) == "not trusted: keys: keys/2.dsse.json says it is version 3; expected 2"


def test_keys_a_pinned_key_may_enter_the_chain_later(files: dict[str, bytes]) -> None:
    rotated = {**files, "keys/2.dsse.json": next_document([files["keys/1.dsse.json"]], "golden", K1, [K2], {}, "new")}
    trusted = establish(fetcher(rotated), anchor(K2))  # keys/1 is not signed by K2: keys/2 is
    assert (trusted.keyid, trusted.keys_version) == (K1.keyid, 2)


# --------------------------------------------------------------------------- signature


def test_signature_no_signed_index(files: dict[str, bytes]) -> None:
    unsigned = {path: data for path, data in files.items() if path != "index.dsse.json"}
    error = refused(unsigned, anchor(K1))
    assert error.check is Check.SIGNATURE
    assert (
        str(error) == "not trusted: signature: the publication is unsigned: no index.dsse.json (it has an index.json)"
    )


def test_signature_an_index_envelope_that_is_no_json(files: dict[str, bytes]) -> None:
    error = refused({**files, "index.dsse.json": b"{"}, anchor(K1))
    assert error.check is Check.SIGNATURE
    assert str(error).startswith("not trusted: signature: index.dsse.json: not JSON (Expecting property name")


def test_signature_by_a_key_outside_the_chain(files: dict[str, bytes]) -> None:
    resigned = canonical(envelope(files["index.json"], INDEX_PAYLOAD_TYPE, [K3]))
    error = refused({**files, "index.dsse.json": resigned}, anchor(K1))
    assert error.check is Check.SIGNATURE
    assert str(error) == (
        f"not trusted: signature: index.dsse.json: no valid signature by a trusted key "
        f"(signed by {K3.keyid}; trusted: {K1.keyid})"
    )


def test_signature_by_a_key_the_chain_revoked(files: dict[str, bytes]) -> None:
    revocation = next_document([files["keys/1.dsse.json"]], "golden", K1, [K2], {K1.keyid: "stolen"}, None)
    error = refused({**files, "keys/2.dsse.json": revocation}, anchor(K1))
    assert error.check is Check.SIGNATURE
    assert str(error) == (
        f"not trusted: signature: index.dsse.json is signed by key {K1.keyid}, revoked in keys/2 (stolen)"
    )


def test_junk_under_a_revoked_keys_id_is_not_called_its_signature(files: dict[str, bytes]) -> None:
    """Four bytes of junk under a revoked key's id: no signature, not "signed by key K, revoked"."""
    revocation = next_document([files["keys/1.dsse.json"]], "golden", K1, [K2], {K1.keyid: "stolen"}, None)
    junk = json.loads(files["index.dsse.json"])
    junk["signatures"] = [{"keyid": K1.keyid, "sig": base64.b64encode(b"junk").decode()}]
    error = refused({**files, "keys/2.dsse.json": revocation, "index.dsse.json": canonical(junk)}, anchor(K1))
    assert error.check is Check.SIGNATURE
    assert "revoked" not in str(error) and "is signed by" not in str(error)
    assert str(error).startswith("not trusted: signature: index.dsse.json: no valid signature by a trusted key")


def test_signature_an_index_that_is_not_the_signed_one(files: dict[str, bytes]) -> None:
    error = refused({**files, "index.json": files["index.json"] + b" "}, anchor(K1))
    assert error.check is Check.INTEGRITY
    assert str(error) == "not trusted: integrity: index.json differs from the payload of index.dsse.json"


# --------------------------------------------------------------------------- identity

IDENTITIES: dict[str, tuple[str, str, str, str]] = {
    "publisher": ("acme", "tiny", "test", "publisher is 'golden'; expected 'acme'"),
    "product": ("golden", "huge", "test", "product is 'tiny'; expected 'huge'"),
    "stream": ("golden", "tiny", "nightly", "stream is 'test'; expected 'nightly'"),
}


@pytest.mark.parametrize("name", IDENTITIES)
def test_identity_another_release_than_asked_for(files: dict[str, bytes], name: str) -> None:
    publisher, product, stream, message = IDENTITIES[name]
    error = refused(files, anchor(K1, publisher=publisher, product=product, stream=stream))
    assert error.check is Check.IDENTITY
    assert str(error) == f"not trusted: identity: {message}"


def test_identity_a_key_chain_of_another_publisher(files: dict[str, bytes]) -> None:
    other = canonical(envelope(KeysDocument("acme", 1, (KeyEntry.of(K1),)).to_bytes(), KEYS_PAYLOAD_TYPE, [K1]))
    error = refused({**files, "keys/1.dsse.json": other}, anchor(K1))
    assert error.check is Check.IDENTITY
    assert str(error) == "not trusted: identity: keys/1 belongs to publisher 'acme'; the index to 'golden'"


# --------------------------------------------------------------------------- expiry


def test_expiry_bounds(files: dict[str, bytes]) -> None:
    issued, expires = AT.replace(month=1, day=1), AT.replace(month=7, day=1)
    establish(fetcher(files), anchor(K1, at=issued))  # valid from its issue time
    establish(fetcher(files), anchor(K1, at=expires - timedelta(seconds=1)))
    error = refused(files, anchor(K1, at=expires))
    assert error.check is Check.EXPIRY
    assert str(error) == f"not trusted: expiry: expired at {EXPIRES} (checked at {EXPIRES})"
    error = refused(files, anchor(K1, at=issued - timedelta(seconds=1)))
    assert error.check is Check.EXPIRY
    assert str(error) == f"not trusted: expiry: issued {ISSUED}, after the checking time 2025-12-31T23:59:59Z"


# --------------------------------------------------------------------------- rollback


def test_rollback(files: dict[str, bytes]) -> None:
    index = sha256(files["index.json"])
    establish(fetcher(files), anchor(K1, known_release=StreamState(3, index)))  # the same release again
    error = refused(files, anchor(K1, known_release=StreamState(4, "0" * 64)))
    assert error.check is Check.ROLLBACK
    assert str(error) == "not trusted: rollback: serial 3 is lower than 4, the last one seen"
    error = refused(files, anchor(K1, known_release=StreamState(3, "0" * 64)))
    assert error.check is Check.ROLLBACK
    assert str(error) == (
        f"not trusted: rollback: serial 3 of golden/tiny/test was trusted with index.json sha256 {'0' * 64}; "
        f"this one has {index} (one serial, two releases)"
    )


# --------------------------------------------------------------------------- integrity


def test_integrity_a_changed_file(files: dict[str, bytes]) -> None:
    path = listed(files, "groups/")
    changed = files[path].replace(b'"status":"active"', b'"status":"revoked"', 1)
    error = refused({**files, path: changed}, anchor(K1))
    assert error.check is Check.INTEGRITY
    sha256, size = establish(fetcher(files), anchor(K1)).files[path]
    # Longer than listed: only size + 1 bytes are read, so there is no sha256 of the whole to name.
    assert str(error) == (
        f"not trusted: integrity: {path} has more than {size} bytes; the signed index says {sha256} ({size} bytes)"
    )
    same_size = files[path].replace(b'"status":"active"', b'"status":"ACTIVE"', 1)
    error = refused({**files, path: same_size}, anchor(K1))
    assert str(error) == (
        f"not trusted: integrity: {path} has sha256 {hashlib.sha256(same_size).hexdigest()} "
        f"({size} bytes); the signed index says {sha256} ({size} bytes)"
    )


def test_integrity_a_missing_file_and_a_missing_signature(files: dict[str, bytes]) -> None:
    path = listed(files, "digests/")
    error = refused({p: d for p, d in files.items() if p != path}, anchor(K1))
    assert (error.check, str(error)) == (
        Check.INTEGRITY,
        f"not trusted: integrity: {path} is listed in the signed index but missing: {path}: no such file",
    )
    error = refused({p: d for p, d in files.items() if p != f"{path}.sig"}, anchor(K1))
    assert (error.check, str(error)) == (
        Check.INTEGRITY,
        f"not trusted: integrity: {path}.sig is missing: {path}.sig: no such file",
    )


def test_integrity_a_signature_by_another_key(files: dict[str, bytes]) -> None:
    path = "catalog/tiny.json"
    error = refused({**files, f"{path}.sig": sign_file(K3, files[path])}, anchor(K1))
    assert (error.check, str(error)) == (
        Check.INTEGRITY,
        f"not trusted: integrity: {path}.sig does not verify with key {K1.keyid}",
    )


def test_integrity_a_file_of_another_release_signed_in(files: dict[str, bytes]) -> None:
    path = "catalog/tiny.json"
    catalog = json.loads(files[path])
    catalog["release"] = {**catalog["release"], "serial": 2}
    error = refused(republish(files, K1, {path: canonical(catalog)}), anchor(K1))
    assert error.check is Check.INTEGRITY
    assert str(error) == (
        f"not trusted: integrity: {path} belongs to release {catalog['release']}; "
        "expected {'publisher': 'golden', 'product': 'tiny', 'stream': 'test', 'release': '1.0', 'serial': 3}"
    )


def test_integrity_a_signed_file_that_breaks_its_schema(files: dict[str, bytes]) -> None:
    path = "catalog/tiny.json"
    catalog = json.loads(files[path])
    catalog["configurations"][0]["mode"] = "sev-xl"
    error = refused(republish(files, K1, {path: canonical(catalog)}), anchor(K1))
    assert error.check is Check.INTEGRITY
    assert str(error) == (
        "not trusted: integrity: catalog/tiny.json: /configurations/0/mode: "
        'expected one of "sev", "sev-es", "sev-snp", found "sev-xl"'
    )


def test_integrity_a_statement_that_names_other_files(files: dict[str, bytes]) -> None:
    stale = files["attestation.intoto.dsse.json"]
    path = "publication.json"
    changed = republish(files, K1, {path: files[path].replace(b'"description":"', b'"description":"x', 1)})
    error = refused({**changed, "attestation.intoto.dsse.json": stale}, anchor(K1))
    assert (error.check, str(error)) == (
        Check.INTEGRITY,
        "not trusted: integrity: attestation.intoto.dsse.json does not state the files the index lists",
    )


def test_republishing_itself_keeps_a_publication_trusted(files: dict[str, bytes]) -> None:
    path = "publication.json"
    changed = republish(files, K1, {path: files[path].replace(b'"description":"', b'"description":"x', 1)})
    assert establish(fetcher(changed), anchor(K1)).index.release.serial == 3


# --------------------------------------------------------------------------- reading files later


def test_only_needed_files_are_checked_as_they_are_read(files: dict[str, bytes]) -> None:
    path = listed(files, "groups/")
    corrupt = {**files, path: files[path][:-1]}
    trusted: TrustedPublication = establish(fetcher(corrupt), anchor(K1, check_all_files=False))
    other = listed(files, "digests/")
    assert trusted.read(other) == json.loads(files[other])
    with pytest.raises(TrustError) as raised:
        trusted.read(path)
    assert raised.value.check is Check.INTEGRITY
    assert str(raised.value).startswith(f"not trusted: integrity: {path} has sha256 ")


READ_REFUSALS: dict[str, tuple[str, str, bool]] = {
    # name: (path, message, listed)
    "a file the index does not list": ("groups/zz.json", "groups/zz.json is not listed in the signed index", False),
    "an envelope": ("index.dsse.json", "index.dsse.json is not listed in the signed index", False),
    "a path out of the publication": ("../index.json", "../index.json is not listed in the signed index", False),
    "a page, which is listed but no JSON": ("index.html", "index.html: expected a JSON file of the publication", True),
}


@pytest.mark.parametrize("name", READ_REFUSALS)
def test_read_refuses_unlisted_files(files: dict[str, bytes], name: str) -> None:
    path, message, is_listed = READ_REFUSALS[name]
    fetched: list[str] = []

    def fetch(wanted: str, limit: int) -> bytes:
        fetched.append(wanted)
        return fetcher(files)(wanted, limit)

    trusted = establish(fetch, anchor(K1, check_all_files=False))
    fetched.clear()
    with pytest.raises(TrustError) as raised:
        trusted.read(path)
    assert raised.value.check is Check.INTEGRITY
    assert str(raised.value) == f"not trusted: integrity: {message}"
    assert fetched == []  # refused before anything is read
    assert trusted.has(path) is is_listed


def test_read_parses_once(files: dict[str, bytes]) -> None:
    fetched: list[str] = []

    def fetch(wanted: str, limit: int) -> bytes:
        fetched.append(wanted)
        return fetcher(files)(wanted, limit)

    trusted = establish(fetch, anchor(K1, check_all_files=False))
    fetched.clear()
    assert trusted.has("catalog/tiny.json")
    first = trusted.read("catalog/tiny.json")
    assert trusted.read("catalog/tiny.json") is first
    assert fetched == ["catalog/tiny.json"]


# --------------------------------------------------------------------------- checks only a hostile mirror or state reaches
# (tests/test_mutants.py deletes each check in turn: these make sure an in-process test notices)


def test_keys_a_remembered_document_that_is_no_keys_document(files: dict[str, bytes]) -> None:
    """The state remembers keys/1 by its sha256; bytes with that sha256 that are no keys document are refused."""
    garbage = b"not a keys document"
    known = PublisherState((ChainLink(1, sha256(garbage)),), ())
    error = refused({**files, "keys/1.dsse.json": garbage}, anchor(K1, known_chain=known))
    assert error.check is Check.KEYS
    assert str(error).startswith("not trusted: keys: keys/1.dsse.json, trusted before: keys/1.dsse.json: not JSON")


def test_keys_an_endless_chain_is_read_to_its_limit(files: dict[str, bytes]) -> None:
    """Keys documents no pinned key signs, one after another: the walk stops at MAX_KEYS_DOCUMENTS."""
    endless = {**files}
    for version in range(1, MAX_KEYS_DOCUMENTS + 2):
        document = KeysDocument("golden", version, (KeyEntry.of(K3),))
        endless[f"keys/{version}.dsse.json"] = canonical(envelope(document.to_bytes(), KEYS_PAYLOAD_TYPE, [K3]))
    error = refused(endless, anchor(K1))
    assert (error.check, str(error)) == (
        Check.KEYS,
        f"not trusted: keys: more than {MAX_KEYS_DOCUMENTS} keys documents; sevref reads at most that many a run",
    )


def failing(files: dict[str, bytes], broken: str, error: Exception) -> Fetch:
    """A fetch that raises ``error`` for the path ``broken``."""
    inner = fetcher(files)

    def fetch(path: str, limit: int) -> bytes:
        if path == broken:
            raise error
        return inner(path, limit)

    return fetch


def test_fetch_failures_are_not_called_unsigned(files: dict[str, bytes]) -> None:
    unsigned = {path: data for path, data in files.items() if path != "index.dsse.json"}
    with pytest.raises(TrustError) as raised:
        establish(failing(unsigned, "index.json", FetchError("index.json: connection refused")), anchor(K1))
    assert (raised.value.check, str(raised.value)) == (
        Check.FETCH,
        "not trusted: fetch: index.json: connection refused",
    )
    with pytest.raises(TrustError) as raised:
        establish(failing(files, "index.json", FetchError("index.json: connection reset")), anchor(K1))
    assert (raised.value.check, str(raised.value)) == (Check.FETCH, "not trusted: fetch: index.json: connection reset")


def test_signature_a_signed_index_that_says_it_is_unsigned(files: dict[str, bytes]) -> None:
    error = refused(republish(files, K1, {}, {"signing": None}), anchor(K1))
    assert (error.check, str(error)) == (
        Check.SIGNATURE,
        "not trusted: signature: index.json says the release is unsigned (signing: null), yet it is signed",
    )


def test_integrity_a_file_listed_twice(files: dict[str, bytes]) -> None:
    entries = json.loads(files["index.json"])["files"]
    error = refused(republish(files, K1, {}, {"files": [*entries, entries[0]]}), anchor(K1))
    assert (error.check, str(error)) == (
        Check.INTEGRITY,
        f"not trusted: integrity: index.json lists {entries[0]['path']} twice; expected each file once",
    )


def test_signature_an_index_that_names_another_signer(files: dict[str, bytes]) -> None:
    signing = {**json.loads(files["index.json"])["signing"], "keyid": K3.keyid}
    error = refused(republish(files, K1, {}, {"signing": signing}), anchor(K1))
    assert (error.check, str(error)) == (
        Check.SIGNATURE,
        f"not trusted: signature: index.json names signing key {K3.keyid}; index.dsse.json is signed by {K1.keyid}",
    )
