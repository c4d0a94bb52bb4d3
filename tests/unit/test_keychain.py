"""sevref.keychain: keys documents, the one rule that accepts a signer, and the chain's links.

Keys are made in memory (Ed25519: fast); nothing is read from or written to disk.
"""

from __future__ import annotations

import json

import pytest

from sevref.errors import Check, SignatureError, TrustError
from sevref.keychain import (
    KEYS_SCHEMA,
    KeyEntry,
    KeysDocument,
    KeyStatus,
    first_document,
    next_document,
    open_keys_document,
    verify_chain,
)
from sevref.serialize import canonical
from sevref.sign import INDEX_PAYLOAD_TYPE, KEYS_PAYLOAD_TYPE, Algorithm, KeySigner, envelope, generate_key

K1, K2, K3 = (KeySigner(generate_key(Algorithm.ED25519)) for _ in range(3))
P256 = KeySigner(generate_key(Algorithm.ECDSA_P256))


def signed(document: KeysDocument, *signers: KeySigner, payload_type: str = KEYS_PAYLOAD_TYPE) -> bytes:
    """A keys document signed by whoever the test says, as a forger or a buggy tool would."""
    return canonical(envelope(document.to_bytes(), payload_type, list(signers)))


def keys(*signers: KeySigner) -> tuple[KeyEntry, ...]:
    return tuple(sorted((KeyEntry.of(s) for s in signers), key=lambda k: k.keyid))


D1 = first_document("acme", K1, "the first key")
D2 = next_document([D1], "acme", K1, [K2], {K1.keyid: "lost"}, "the second key")
"""keys/1 names K1; keys/2, signed by K1 and K2, adds K2 and revokes K1."""


def test_the_first_document_names_its_signer() -> None:
    document = verify_chain([D1])
    assert document == KeysDocument(
        "acme",
        1,
        (KeyEntry(K1.keyid, Algorithm.ED25519, K1.public_pem().decode(), KeyStatus.ACTIVE, None, "the first key"),),
    )
    assert list(document.active()) == [K1.keyid]
    assert json.loads(D1)["signatures"][0]["keyid"] == K1.keyid


def test_the_next_document_adds_and_revokes() -> None:
    document = verify_chain([D1, D2])
    assert document.version == 2
    assert {k.keyid: (k.status, k.reason, k.label) for k in document.keys} == {
        K1.keyid: (KeyStatus.REVOKED, "lost", "the first key"),
        K2.keyid: (KeyStatus.ACTIVE, None, "the second key"),
    }
    assert list(document.active()) == [K2.keyid]
    # signed by the previous document's key and by the key it adds (its holder agrees)
    assert sorted(s["keyid"] for s in json.loads(D2)["signatures"]) == sorted([K1.keyid, K2.keyid])


def test_a_chain_may_start_with_several_keys() -> None:
    document = verify_chain([next_document([], "acme", K1, [P256], {}, "both")])
    assert (document.version, sorted(document.active())) == (1, sorted([K1.keyid, P256.keyid]))
    assert {k.label for k in document.keys} == {"both"}


def test_keys_are_written_sorted_and_read_back() -> None:
    document = KeysDocument("acme", 3, (KeyEntry.of(K2), KeyEntry.of(P256, "hsm"), KeyEntry.of(K1)))
    data = document.to_bytes()
    listed = [k["keyid"] for k in json.loads(data)["keys"]]
    assert listed == sorted(listed)
    read = KeysDocument.from_bytes(data, "keys/3.dsse.json")
    assert read.keys == tuple(sorted(document.keys, key=lambda k: k.keyid))
    assert read.to_bytes() == data


# --------------------------------------------------------------------------- the one rule


def test_require_signer_accepts_an_active_key() -> None:
    assert verify_chain([D1, D2]).require_signer(K2.keyid, "acme", "--signing-key").label == "the second key"


REQUIRE_SIGNER: dict[str, tuple[str, str, str]] = {
    # name: (key id, publisher, message)
    "another publisher's chain": (K2.keyid, "other", "keys/2.dsse.json belongs to publisher 'acme', not 'other'"),
    "a revoked key": (
        K1.keyid,
        "acme",
        f"--signing-key {K1.keyid}: revoked (lost) in keys/2; sign with an active key of the chain",
    ),
    "an unknown key": (
        K3.keyid,
        "acme",
        f"--signing-key {K3.keyid}: keys/2 does not list it; sign with an active key of the chain",
    ),
}


@pytest.mark.parametrize("name", REQUIRE_SIGNER)
def test_require_signer_refuses(name: str) -> None:
    keyid, publisher, message = REQUIRE_SIGNER[name]
    with pytest.raises(SignatureError) as raised:
        verify_chain([D1, D2]).require_signer(keyid, publisher, "--signing-key")
    assert str(raised.value) == message


def test_next_document_needs_an_active_signer_and_known_keys() -> None:
    with pytest.raises(SignatureError) as raised:
        next_document([D1, D2], "acme", K1, [K3], {}, None)
    assert str(raised.value) == (
        f"--signing-key {K1.keyid}: revoked (lost) in keys/2; sign with an active key of the chain"
    )
    with pytest.raises(SignatureError) as raised:
        next_document([D1], "other", K1, [], {}, None)
    assert str(raised.value) == "keys/1.dsse.json belongs to publisher 'acme', not 'other'"
    with pytest.raises(SignatureError) as raised:
        next_document([D1], "acme", K1, [], {"abc": "gone"}, None)
    assert str(raised.value) == "--revoke abc: no such key in the chain"


# --------------------------------------------------------------------------- broken links

TRUSTED_K1 = f"trusted: {K1.keyid}"
BROKEN_CHAINS: dict[str, tuple[list[bytes], str]] = {
    "no document": ([], "the key chain is empty"),
    "not JSON": ([b"nope"], "keys/1.dsse.json: not JSON (Expecting value: line 1 column 1 (char 0))"),
    "not an envelope": ([b"{}"], "keys/1.dsse.json: not a DSSE envelope ('payload')"),
    "a first document signed by a key it does not list": (
        [signed(KeysDocument("acme", 1, keys(K1)), K2)],
        f"keys/1.dsse.json: no valid signature by a trusted key (signed by {K2.keyid}; {TRUSTED_K1})",
    ),
    "another payload type": (
        [signed(KeysDocument("acme", 1, keys(K1)), K1, payload_type=INDEX_PAYLOAD_TYPE)],
        f"keys/1.dsse.json: payloadType is '{INDEX_PAYLOAD_TYPE}'; expected '{KEYS_PAYLOAD_TYPE}'",
    ),
    "the wrong version": (
        [signed(KeysDocument("acme", 2, keys(K1)), K1)],
        "keys/1.dsse.json says it is version 2; expected 1",
    ),
    "a link signed by a key the previous document does not list": (
        [D1, signed(KeysDocument("acme", 2, keys(K1, K3)), K3)],
        f"keys/2.dsse.json: no valid signature by a trusted key (signed by {K3.keyid}; {TRUSTED_K1})",
    ),
    "a revoked key signing the next document": (
        [D1, D2, signed(KeysDocument("acme", 3, keys(K1, K2)), K1)],
        f"keys/3.dsse.json: no valid signature by a trusted key (signed by {K1.keyid}; trusted: {K2.keyid})",
    ),
    "a document left out": (
        [D1, signed(KeysDocument("acme", 3, keys(K1)), K1)],
        "keys/2.dsse.json says it is version 3; expected 2",
    ),
}


@pytest.mark.parametrize("name", BROKEN_CHAINS)
def test_broken_chains(name: str) -> None:
    chain, message = BROKEN_CHAINS[name]
    with pytest.raises(TrustError) as raised:
        verify_chain(chain)
    assert raised.value.check is Check.KEYS
    assert str(raised.value) == f"not trusted: keys: {message}"


def test_open_keys_document_takes_the_signers_it_is_given() -> None:
    assert open_keys_document(D2, 2, {K2.keyid: verify_chain([D1, D2]).active()[K2.keyid]}).version == 2
    with pytest.raises(SignatureError) as raised:
        open_keys_document(D1, 1, {})
    assert str(raised.value) == (
        f"keys/1.dsse.json: no valid signature by a trusted key (signed by {K1.keyid}; trusted: none)"
    )


# --------------------------------------------------------------------------- documents that are not keys documents


def document(**changes: object) -> bytes:
    value = {"schema": KEYS_SCHEMA, "publisher": "acme", "version": 1, "keys": [KeyEntry.of(K1).to_dict()]}
    return canonical({**value, **changes})


def key(**changes: object) -> bytes:
    return document(keys=[{**KeyEntry.of(K1).to_dict(), **changes}])


NOT_KEYS_DOCUMENTS: dict[str, tuple[bytes, str]] = {
    "not JSON": (
        b"{",
        ": not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)) "
        "(not a sevref keys document)",
    ),
    "JSON that is not canonical": (
        json.dumps(json.loads(document())).encode(),
        ": not canonical JSON (RFC 8785); expected the bytes sevref writes",
    ),
    "a list": (b"[]", ": not a sevref keys document (schema is 'list'; expected 'urn:sevref:schema:keys:1')"),
    "another schema": (
        document(schema="urn:sevref:schema:keys:2"),
        ": not a sevref keys document (schema is 'urn:sevref:schema:keys:2'; expected 'urn:sevref:schema:keys:1')",
    ),
    # The rest is checked against schema/keys.schema.json: the message names the field by its JSON pointer.
    "version 0": (document(version=0), ": /version: expected at least 1, found 0"),
    "a publisher that is no text": (document(publisher=7), ": /publisher: expected text, found 7"),
    "an unknown status": (key(status="lost"), ': /keys/0/status: expected one of "active", "revoked", found "lost"'),
    "a reason that is no text": (key(reason=5), ": /keys/0/reason: expected null or text, found 5"),
    "a public key that is no PEM": (
        key(public_key="-----BEGIN PUBLIC KEY-----\n"),
        ": /keys/0/public_key: expected text matching ^-----BEGIN PUBLIC KEY-----\\n[A-Za-z0-9+/=\\n]+"
        '-----END PUBLIC KEY-----\\n$, found "-----BEGIN PUBLIC KEY-----\\n"',
    ),
    "a key id that is not the key's": (
        key(keyid="0" * 64),
        f": key id {'0' * 64} does not match its public key ({K1.keyid})",
    ),
}


@pytest.mark.parametrize("name", NOT_KEYS_DOCUMENTS)
def test_not_keys_documents(name: str) -> None:
    data, message = NOT_KEYS_DOCUMENTS[name]
    with pytest.raises(SignatureError) as raised:
        KeysDocument.from_bytes(data, "keys/1.dsse.json")
    assert str(raised.value) == f"keys/1.dsse.json{message}"


def test_a_pem_that_holds_no_public_key() -> None:
    garbage = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    with pytest.raises(SignatureError) as raised:
        KeysDocument.from_bytes(key(public_key=garbage), "keys/1.dsse.json")
    # the rest of the message is cryptography's own, which changes between its versions
    assert str(raised.value).startswith(f"keys/1.dsse.json key {K1.keyid}: not a PEM public key (")


def test_revoking_the_last_release_key_is_refused() -> None:
    """A chain whose newest document has no active release key can sign no release and never grow again."""
    with pytest.raises(SignatureError) as raised:
        next_document([D1, D2], "acme", K2, [], {K2.keyid: "retired"}, None)
    assert str(raised.value) == (
        f"--revoke {K2.keyid}: would leave keys/3 with no active key of the release role, so the chain could never "
        f"sign a release or grow again; add one (--add, --role release) in the same document"
    )
    # With a successor in the same document it is a rotation, and allowed.
    rotated = verify_chain([D1, D2, next_document([D1, D2], "acme", K2, [K3], {K2.keyid: "retired"}, None)])
    assert list(rotated.active()) == [K3.keyid]
