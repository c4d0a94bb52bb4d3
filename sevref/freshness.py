"""The publisher's freshness composition: sign a short-lived timestamp over a publication's index.

``sevref timestamp DIR --signing-key KEY --valid-for 1d`` runs this, typically
every few hours from a machine that holds only the timestamp key (an online
key of the ``timestamp`` role; the release key stays offline). It checks what
it vouches for, as a verifier would, before it signs: the key chain in
``DIR/keys/``, that the key is active in its newest document with the
timestamp role, and that ``index.json`` is exactly what an active release key
signed in ``index.dsse.json``. It then replaces ``DIR/timestamp.dsse.json``
atomically (:mod:`sevref.timestamp` holds the format and the verifier's rules).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sevref import strictjson
from sevref.edge.files import read_bytes, write_atomic
from sevref.edge.keys import read_chain
from sevref.errors import ConfigError, JSONFormatError, LayoutError, SignatureError
from sevref.keychain import Role, verify_chain
from sevref.limits import MAX_INDEX_ENVELOPE_BYTES
from sevref.records import Index
from sevref.sign import INDEX_PAYLOAD_TYPE, Signer, open_envelope, parse_envelope
from sevref.timestamp import TIMESTAMP_PATH, Timestamp, open_timestamp, sign_timestamp
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
    if issued >= index.expires:
        raise ConfigError(f"the release expired at {format_time(index.expires)}; a timestamp cannot renew it")
    expires = min(issued + valid_for, index.expires)
    data = sign_timestamp(index_json, index.release, issued, expires, signer)
    written = open_timestamp(data, keys.active(Role.TIMESTAMP), index.release, index_json, issued, None)
    write_atomic(folder / TIMESTAMP_PATH, data, mode=0o644)
    return written
