"""The publisher's freshness composition: sign a short-lived timestamp over a publication's index.

``sevref timestamp DIR --signing-key KEY --valid-for 1d`` runs this, typically
every few hours from a machine that holds only the timestamp key (an online
key of the ``timestamp`` role; the release key stays offline). It checks what
it vouches for, as a verifier would, before it signs: the key chain in
``DIR/keys/``, that the key is active in its newest document with the
timestamp role, and that ``index.json`` is exactly what an active release key
signed in ``index.dsse.json``. A timestamp only ever moves forward: it
refuses to vouch for a release older than (or forked from) the one the
folder's current timestamp vouches for, so a folder rolled back to a
superseded release is not made to look current again. It then replaces
``DIR/timestamp.dsse.json`` atomically (:mod:`sevref.timestamp` holds the
format and the verifier's rules).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from sevref import strictjson
from sevref.edge.files import read_bytes, write_atomic
from sevref.edge.keys import read_chain
from sevref.errors import ConfigError, JSONFormatError, LayoutError, SignatureError, TrustError
from sevref.keychain import Role, verify_chain
from sevref.limits import MAX_INDEX_ENVELOPE_BYTES
from sevref.records import Index
from sevref.sign import INDEX_PAYLOAD_TYPE, PublicKey, Signer, open_envelope, parse_envelope
from sevref.timestamp import TIMESTAMP_PATH, Timestamp, open_timestamp, read_timestamp, sign_timestamp
from sevref.validate import check_document
from sevref.values import format_time

__all__ = ["stamp"]


def stamp(folder: Path, signer: Signer, valid_for: timedelta, issued: datetime) -> Timestamp:
    """Write ``timestamp.dsse.json`` into a publication.

    Args:
        folder: the publication (as ``sevref build`` wrote it).
        signer: a key of the timestamp role in the publication's key chain.
        valid_for: how long the timestamp vouches (it never outlives the release).
        issued: now.

    Returns:
        The timestamp written.

    Raises:
        SevrefError: not a signed publication, a key chain that does not hold,
            a key without the timestamp role, or an expired release.
    """
    index_json = read_bytes(folder / "index.json", "index", MAX_INDEX_ENVELOPE_BYTES)
    envelope = read_bytes(folder / "index.dsse.json", "signed index", MAX_INDEX_ENVELOPE_BYTES)
    chain = read_chain(folder / "keys")
    if not chain:
        raise ConfigError(f"{folder}: no keys/1.dsse.json; expected a signed publication")
    keys = verify_chain(chain)
    try:
        value = strictjson.loads(index_json, str(folder / "index.json"))
        check_document("index", value, str(folder / "index.json"))
    except (JSONFormatError, LayoutError) as error:
        raise ConfigError(error.diagnostic()) from error
    index = Index.from_dict(value)
    keys.require_signer(signer.keyid, index.release.publisher, "--signing-key", Role.TIMESTAMP)
    payload, _ = open_envelope(
        parse_envelope(envelope, "index.dsse.json"), INDEX_PAYLOAD_TYPE, keys.active(Role.RELEASE), "index.dsse.json"
    )
    if payload != index_json:
        raise SignatureError(f"{folder / 'index.json'}: differs from what index.dsse.json signs")
    _check_forward(folder, keys.active(Role.TIMESTAMP), index, hashlib.sha256(index_json).hexdigest(), issued)
    if issued >= index.expires:
        raise ConfigError(f"the release expired at {format_time(index.expires)}; a timestamp cannot renew it")
    expires = min(issued + valid_for, index.expires)
    data = sign_timestamp(index_json, index.release, issued, expires, signer)
    written = open_timestamp(data, keys.active(Role.TIMESTAMP), index.release, index_json, issued, None)
    write_atomic(folder / TIMESTAMP_PATH, data, mode=0o644)
    return written


def _check_forward(folder: Path, keys: Mapping[str, PublicKey], index: Index, sha256: str, issued: datetime) -> None:
    """Refuse to stamp a release the folder's current timestamp has moved past (TUF: timestamps never go back).

    A timestamp there that no active key of the role signed says nothing (anyone
    can write a file) and is replaced.
    """
    path = folder / TIMESTAMP_PATH
    if not path.exists():
        return
    try:
        current = read_timestamp(read_bytes(path, "timestamp", MAX_INDEX_ENVELOPE_BYTES), keys)
    except TrustError:
        return
    serial = index.release.serial
    if current.release.serial > serial or (current.release.serial == serial and current.index_sha256 != sha256):
        raise ConfigError(
            f"{path}: already vouches for serial {current.release.serial} with index.json sha256 "
            f"{current.index_sha256}; this folder holds serial {serial} with {sha256}: expected that release or "
            "a later one (a timestamp never makes a superseded release look current)"
        )
    if current.release.serial == serial and issued < current.issued:
        raise ConfigError(
            f"{path}: was issued {format_time(current.issued)}; expected --issued at or after it, "
            f"found {format_time(issued)}"
        )
