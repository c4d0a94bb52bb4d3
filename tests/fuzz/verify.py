"""Fuzz target: ``sevref verify`` on the golden publication with one file changed.

An input is ``[path selector, flags, content...]``: the selector picks a file
of :data:`PATHS` (which includes files the publication does not have), and the
flags say whether to remove the file instead of writing ``content`` into it,
whether to check every listed file at once (``sevref verify``) or only those
read (``--only-needed``), and whether to sign the change with the publisher's
key, as a compromised or buggy publisher would, so that the checks after the
signatures see it too.

Unsigned, a change to the meaning of a golden file that the checks read must
be refused; signed or not, nothing but a SevrefError may come out of
the verifier or of the lookups on what it trusted.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
from datetime import UTC, datetime

from sevref.digest import LaunchMeasureInputs
from sevref.edge.keys import load_public, load_signer
from sevref.errors import NotFoundError, SevrefError
from sevref.keychain import verify_chain
from sevref.match import entry, lookup_digest, scan_launch_measurement
from sevref.serialize import canonical
from sevref.sign import (
    INDEX_PAYLOAD_TYPE,
    INTOTO_PAYLOAD_TYPE,
    KEYS_PAYLOAD_TYPE,
    envelope,
    sign_file,
    statement,
)
from sevref.trust import Fetch, TrustAnchor, TrustedPublication, establish
from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden"
PUBLICATION = {
    str(path.relative_to(GOLDEN / "publication")): path.read_bytes()
    for path in sorted((GOLDEN / "publication").rglob("*"))
    if path.is_file()
}
"""The golden publication: path to bytes."""
EXPECTED = TrustAnchor(
    keys=[load_public(GOLDEN / "key" / "golden.pub")],
    publisher="golden",
    product="tiny",
    stream="test",
    at=datetime(2026, 2, 1, tzinfo=UTC),
)
"""What ``sevref verify --trusted-key golden.pub --publisher golden ...`` pins."""
SIGNER = load_signer(GOLDEN / "key" / "golden.pem", b"golden-test-key-not-a-secret")
"""The golden publication's signing key (a committed test key; see the Makefile's golden target)."""
PATHS = (
    "index.dsse.json",
    "index.json",
    "index.json.sig",
    "keys/1.dsse.json",
    "keys/2.dsse.json",
    "attestation.intoto.dsse.json",
    "publication.json",
    "publication.json.sig",
    "digests/0.json",
    "digests/0.json.sig",
    "groups/7.json",
    "firmware/tiny.json",
    "catalog/tiny.json",
    "index.html",
    "keys/0.dsse.json",
)
"""The files an input can change: every kind the verifier reads, and some it must not rely on."""
KEY_CHAIN = ("keys/1.dsse.json", "keys/2.dsse.json")
"""The keys documents of :data:`PATHS` that the verifier walks (keys/0 is not one)."""
REMOVE, ONLY_NEEDED, SIGN = 1, 2, 4
"""Bits of an input's flags byte."""
_INDEX = json.loads(PUBLICATION["index.json"])
_LISTED = {f["path"] for f in _INDEX["files"]}
_PREDICATE = json.loads(base64.b64decode(json.loads(PUBLICATION["attestation.intoto.dsse.json"])["payload"]))[
    "predicate"
]
DIGESTS = sorted(
    {digest for path in _LISTED if path.startswith("digests/") for digest in json.loads(PUBLICATION[path])["digests"]}
)
"""Every digest the golden publication has."""


def _probes() -> dict[str, str]:
    """For each digests and groups shard, a published digest whose lookup reads it."""
    probes: dict[str, str] = {}
    for path in sorted(_LISTED):
        if path.startswith("digests/") and path.endswith(".json"):
            for digest, entries in json.loads(PUBLICATION[path])["digests"].items():
                probes.setdefault(path, digest)
                probes.setdefault(f"groups/{entries[0][0]}.json", digest)
    return probes


_PROBES = _probes()
_INPUTS = LaunchMeasureInputs(api_major=1, api_minor=55, build=21, policy=0x5)


def _payload(path: str) -> bytes:
    """The payload of one of the golden publication's DSSE envelopes."""
    return base64.b64decode(json.loads(PUBLICATION[path])["payload"])


_KEYS_2 = canonical({**json.loads(_payload("keys/1.dsse.json")), "version": 2})


def _seed(path: str, flags: int) -> bytes:
    """What a seed writes into ``path``: the golden file, or with SIGN what is signed into it."""
    if path == "keys/2.dsse.json":
        return _KEYS_2 if flags & SIGN else canonical(envelope(_KEYS_2, KEYS_PAYLOAD_TYPE, [SIGNER]))
    if flags & SIGN and path in (*KEY_CHAIN, "index.dsse.json", "attestation.intoto.dsse.json"):
        return _payload(path)
    return PUBLICATION.get(path, b"")


def seeds() -> list[bytes]:
    """Each selectable file as the golden publication has it, plainly, with ONLY_NEEDED and with SIGN.

    keys/2.dsse.json, which the golden publication lacks, is a valid rotation
    that keeps the same key, so that every seed is trusted.

    Returns:
        The inputs.
    """
    return [
        bytes([index, flags]) + _seed(path, flags)
        for index, path in enumerate(PATHS)
        for flags in (0, ONLY_NEEDED, SIGN)
    ]


def reads(path: str, only_needed: bool) -> bool:
    """Tell whether trusting the publication reads a file.

    Args:
        path: the file.
        only_needed: whether listed files are checked only when read.

    Returns:
        True when a change to it must be refused.
    """
    if path in ("index.dsse.json", "index.json", *KEY_CHAIN):
        return True
    if only_needed:
        return False
    signed = path.removesuffix(".sig")
    return (
        path in _LISTED
        or path == "attestation.intoto.dsse.json"
        or (path.endswith(".sig") and signed.endswith(".json") and (signed in _LISTED or signed == "index.json"))
    )


def same_meaning(path: str, content: bytes) -> bool:
    """Tell whether changed content still says what the golden file says, to a verifier.

    An envelope is JSON around its signed payload: spacing, order and extra
    signatures do not change what it signs. A detached signature that
    verifies is as good as another (ECDSA signatures are malleable). Every
    other file is pinned byte for byte.

    Args:
        path: a file of the golden publication.
        content: what it holds now.

    Returns:
        True when the verifier may trust the publication all the same.
    """
    if content == PUBLICATION[path] or path.endswith(".sig"):
        return True
    if not path.endswith(".dsse.json"):
        return False
    try:
        return base64.b64decode(json.loads(content)["payload"], validate=True) == _payload(path)
    except (ValueError, TypeError, KeyError, RecursionError):
        return False


def sign(files: dict[str, bytes], path: str, content: bytes) -> None:
    """Sign ``content`` into a publication as its publisher would.

    An envelope's content is its payload; a file the index lists gets its
    new sha256 and size in a newly signed index, and a new ``.sig``.

    Args:
        files: the publication, changed in place.
        path: the file to write.
        content: what to write or sign into it.
    """
    if path.startswith("keys/"):
        files[path] = canonical(envelope(content, KEYS_PAYLOAD_TYPE, [SIGNER]))
        return
    if path == "attestation.intoto.dsse.json":
        files[path] = canonical(envelope(content, INTOTO_PAYLOAD_TYPE, [SIGNER]))
        return
    files[path] = content
    if path in ("index.json", "index.dsse.json"):
        index = content
        files["index.json"] = index
    elif path in _LISTED:
        changed = {**_INDEX, "files": [dict(f) for f in _INDEX["files"]]}
        for item in changed["files"]:
            if item["path"] == path:
                item["sha256"], item["size"] = hashlib.sha256(content).hexdigest(), len(content)
        if path.endswith(".json"):
            files[f"{path}.sig"] = sign_file(SIGNER, content)
        index = canonical(changed)
        files["index.json"] = index
    else:
        return
    files["index.dsse.json"] = canonical(envelope(index, INDEX_PAYLOAD_TYPE, [SIGNER]))
    files["index.json.sig"] = sign_file(SIGNER, index)
    subjects = [(f["path"], f["sha256"]) for f in _INDEX["files"] if f["path"] != path]
    if path in _LISTED:
        subjects.append((path, hashlib.sha256(content).hexdigest()))
    subjects.append(("index.json", hashlib.sha256(index).hexdigest()))
    files["attestation.intoto.dsse.json"] = canonical(
        envelope(statement(subjects, _PREDICATE), INTOTO_PAYLOAD_TYPE, [SIGNER])
    )


def publication(data: bytes) -> tuple[dict[str, bytes], str, int]:
    """The publication an input makes.

    Args:
        data: see the module's description.

    Returns:
        (the files, the path the input changed, its flags).
    """
    path = PATHS[data[0] % len(PATHS)] if data else PATHS[0]
    flags = data[1] if len(data) > 1 else 0
    content = data[2:]
    files = dict(PUBLICATION)
    if flags & REMOVE:
        files.pop(path, None)
    elif flags & SIGN:
        sign(files, path, content)
    else:
        files[path] = content
    return files, path, flags


def fetcher(files: dict[str, bytes]) -> Fetch:
    """A ``fetch`` over files held in memory.

    Args:
        files: path to bytes.

    Returns:
        The function; it raises NotFoundError for a missing path and returns at most ``limit + 1`` bytes.
    """

    def fetch(path: str, limit: int) -> bytes:
        try:
            return files[path][: limit + 1]
        except KeyError:
            raise NotFoundError(f"{path}: no such file in the publication") from None

    return fetch


def look_up(trusted: TrustedPublication, path: str, probe: bytes) -> None:
    """Run the verifier's lookups: by digest, by entry id, and a launch-measurement scan.

    Args:
        trusted: the publication.
        path: the file the input changed: a lookup of a digest that reads it comes first.
        probe: bytes to make a digest, an entry id and a measurement of.
    """
    known = _PROBES.get(path, _PROBES["digests/0.json"])
    for digest in (known, probe[:48].hex(), probe[:64].decode("latin-1")):
        for match in lookup_digest(trusted, digest):
            entry(trusted, match.entry_id)
    for ident in (probe[:24].decode("latin-1"), probe[:10].hex() + "-0001"):
        with contextlib.suppress(SevrefError):
            entry(trusted, ident)
    measurement = hashlib.sha256(probe).digest()
    scan_launch_measurement(trusted, measurement, bytes(16), _INPUTS, bytes(16), vcpus=1)


def one_input(data: bytes) -> None:
    """Verify the publication an input makes and look things up in it; any exception that escapes is a bug.

    Args:
        data: see the module's description.

    Raises:
        AssertionError: an unsigned change to a file the checks read was trusted.
    """
    files, path, flags = publication(data)
    if path in KEY_CHAIN and path in files:
        with contextlib.suppress(SevrefError):
            verify_chain([files[path]])
    only_needed = bool(flags & ONLY_NEEDED)
    expected = dataclasses.replace(EXPECTED, check_all_files=not only_needed)
    try:
        trusted = establish(fetcher(files), expected)
    except SevrefError:
        return
    if not flags & SIGN and path in PUBLICATION and reads(path, only_needed):
        assert path in files and same_meaning(path, files[path]), f"trusted a publication whose {path} was changed"
    try:
        look_up(trusted, path, data[2:])
    except SevrefError:
        return
