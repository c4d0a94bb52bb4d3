"""What the conformance cases put into a base publication: signed variants, and what a verifier remembers.

A strict-parsing case needs a file that a key of the chain signed and that is
wrong all the same (a duplicate key in the signed index, a key added to the
chain without its signature...): an attacker who holds no key cannot make
one, a buggy or compromised publisher can. These helpers make them from a base
publication with the suite's keys, and the state a verifier has after it
trusted a publication (``sevref verify --state``), so that each case can say
what the verifier remembers.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sevref.edge.keys import generate_key_files, load_public, load_signer
from sevref.errors import NotFoundError
from sevref.keychain import KeysDocument
from sevref.serialize import canonical
from sevref.sign import (
    INDEX_PAYLOAD_TYPE,
    INTOTO_PAYLOAD_TYPE,
    KEYS_PAYLOAD_TYPE,
    Algorithm,
    KeySigner,
    Signer,
    envelope,
    sign_file,
    statement,
)
from sevref.state import VerifierState, remember, stream_name
from sevref.trust import TrustAnchor, establish
from sevref.values import parse_time

HERE = Path(__file__).resolve().parent
IDENTITY = {"publisher": "conformance", "product": "tiny", "stream": "test"}
AT = "2026-06-01T00:00:00Z"
PASSPHRASE = b"conformance-test-key-not-a-secret"
KEY_ALGORITHMS = {
    "A": Algorithm.ECDSA_P256,
    "B": Algorithm.ECDSA_P384,
    "C": Algorithm.ED25519,
    "T": Algorithm.ECDSA_P256,
}
"""A, B: release keys; C: in no chain; T: the timestamp key of the ``timestamped`` base."""
GENUINE_KEYS_3 = [{"path": "keys/3.dsse.json", "action": "put", "source": "base/revoked/keys/3.dsse.json"}]
"""The publisher's keys/3 (B revokes A), put beside a release."""


@functools.cache
def keys() -> dict[str, KeySigner]:
    """The suite's keys: made once, then committed and reused."""
    folder = HERE / "keys"
    for name, algorithm in KEY_ALGORITHMS.items():
        if not (folder / f"{name}.pem").is_file():
            generate_key_files(folder / name, algorithm, PASSPHRASE)
    return {name: load_signer(folder / f"{name}.pem", PASSPHRASE) for name in KEY_ALGORITHMS}


def verify_args(**changes: Any) -> dict[str, Any]:
    """How a case is verified: the suite's pin, identity and time unless the case says otherwise."""
    args: dict[str, Any] = {"trusted_keys": ["keys/A.pub"], **IDENTITY, "at": AT}
    args.update(state=None, require_timestamp=False, max_age=None, evidence=None)
    args.update(changes)
    return args


def make_case(
    ident: str, description: str, base: str, expect_exit: int, check: str | None, **more: Any
) -> dict[str, Any]:
    """One case of cases.json (see README.md)."""
    changes = more.pop("changes", [])
    entries = more.pop("entries", None)
    gap = more.pop("gap", None)
    expect: dict[str, Any] = {"exit": expect_exit, "check": check}
    if entries is not None:
        expect["entries"] = entries
    if gap is not None:
        expect["gap"] = gap
    return {
        "id": ident,
        "description": description,
        "base": base,
        "changes": changes,
        "verify": verify_args(**more),
        "expect": expect,
    }


def tree(base: str) -> dict[str, bytes]:
    """A base publication: path to bytes."""
    root = HERE / "base" / base
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def apply(files: Mapping[str, bytes], changes: Sequence[Mapping[str, Any]]) -> dict[str, bytes]:
    """Apply a case's changes in memory, as tests/test_conformance.py applies them on disk ("unreadable" aside)."""
    out = dict(files)
    for change in changes:
        path = change["path"]
        if change["action"] == "delete":
            out.pop(path)
        elif change["action"] == "put":
            out[path] = (HERE / change["source"]).read_bytes()
        elif change["action"] == "replace":
            out[path] = (HERE / "base" / change["from"] / path).read_bytes()
        else:
            raise AssertionError(f"not needed here: {change['action']}")
    return out


def state_after(base: str, changes: Sequence[Mapping[str, Any]] = (), pinned: Sequence[str] = ("A",)) -> dict[str, Any]:
    """The state of a verifier after it trusted a publication (what ``--state`` holds then)."""
    files = apply(tree(base), changes)

    def fetch(path: str, limit: int) -> bytes:
        if path not in files:
            raise NotFoundError(f"{path}: not found")
        return files[path][: limit + 1]

    anchor = TrustAnchor(
        keys=[load_public(HERE / "keys" / f"{name}.pub") for name in pinned],
        publisher=IDENTITY["publisher"],
        product=IDENTITY["product"],
        stream=IDENTITY["stream"],
        at=parse_time(AT),
    )
    trusted = establish(fetch, anchor)
    name = stream_name(IDENTITY["publisher"], IDENTITY["product"], IDENTITY["stream"])
    state = remember(VerifierState(), IDENTITY["publisher"], trusted.chain, name, trusted.release_state)
    return state.to_dict()


def predicate(index: Mapping[str, Any], index_sha256: str) -> dict[str, Any]:
    """The release predicate sevref writes for an index."""
    return {
        "release": {k: index[k] for k in ("publisher", "product", "stream", "release", "serial")},
        "issued": index["issued"],
        "expires": index["expires"],
        "index": {"path": "index.json", "sha256": index_sha256},
        "counts": index["counts"],
        "calculator": f"sevref {index['sevref']}",
    }


def signed_release(
    files: Mapping[str, bytes],
    signer: Signer,
    *,
    changed: Mapping[str, bytes] | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
    encode: Callable[[dict[str, Any]], bytes] = canonical,
    statement_edit: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, bytes]:
    """A release signed again, as its publisher would sign it, after some change.

    Args:
        files: the publication.
        signer: the release key.
        changed: listed files with new contents (their sha256, size and .sig follow).
        edit: a change to the index's JSON.
        encode: how the index's JSON becomes bytes (canonical, unless a case says otherwise).
        statement_edit: a change to the in-toto statement's JSON.

    Returns:
        The publication, signed again.
    """
    out = dict(files)
    index = json.loads(files["index.json"])
    for path, content in (changed or {}).items():
        out[path] = content
        for item in index["files"]:
            if item["path"] == path:
                item["sha256"], item["size"] = hashlib.sha256(content).hexdigest(), len(content)
        if path.endswith(".json"):
            out[f"{path}.sig"] = sign_file(signer, content)
    if edit is not None:
        edit(index)
    raw = encode(index)
    out["index.json"] = raw
    out["index.dsse.json"] = canonical(envelope(raw, INDEX_PAYLOAD_TYPE, [signer]))
    out["index.json.sig"] = sign_file(signer, raw)
    sha256 = hashlib.sha256(raw).hexdigest()
    subjects = [(f["path"], f["sha256"]) for f in index["files"]] + [("index.json", sha256)]
    said = json.loads(statement(subjects, predicate(index, sha256)))
    if statement_edit is not None:
        statement_edit(said)
    out["attestation.intoto.dsse.json"] = canonical(envelope(canonical(said), INTOTO_PAYLOAD_TYPE, [signer]))
    return out


def keys_payload(files: Mapping[str, bytes], version: int) -> dict[str, Any]:
    """The payload of ``keys/<version>.dsse.json``, parsed."""
    return dict(json.loads(base64.b64decode(json.loads(files[f"keys/{version}.dsse.json"])["payload"])))


def signed_keys(payload: bytes, signers: Sequence[Signer]) -> bytes:
    """A keys document's envelope over exactly these payload bytes."""
    return canonical(envelope(payload, KEYS_PAYLOAD_TYPE, list(signers)))


def keys_document(files: Mapping[str, bytes], version: int) -> KeysDocument:
    """``keys/<version>.dsse.json`` of a publication, read."""
    return KeysDocument.from_bytes(canonical(keys_payload(files, version)), f"keys/{version}.dsse.json")


def put(case: str, before: Mapping[str, bytes], after: Mapping[str, bytes]) -> list[dict[str, str]]:
    """Write the files a case changes into ``files/<case>/`` and return its changes: put each, delete the rest."""
    changes: list[dict[str, str]] = []
    folder = HERE / "files" / case
    for path in sorted(set(before) | set(after)):
        if path not in after:
            changes.append({"path": path, "action": "delete"})
        elif before.get(path) != after[path]:
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(after[path])
            changes.append({"path": path, "action": "put", "source": f"files/{case}/{path}"})
    return changes
