"""Reading a signed CoRIM back: its signature by one of the publisher's keys, its profile, its values.

:func:`open_corim` reads any CoRIM sevref writes (:mod:`sevref.corim`);
:func:`check_corim` holds one to a trusted publication (``sevref verify
--corim``). Every layer is decoded with bounds and encoded again: what is not
deterministic CBOR (RFC 8949 §4.2.1), duplicate keys included, is refused.

This module does no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sevref.corim import (
    _ALG,
    _CONTENT_TYPE,
    _COORDINATE_BYTES,
    _CORIM_META,
    _COSE_ALG,
    _HASH_IDS,
    _HASH_SIZES,
    _HASHES,
    _KID,
    _MAX_DEPTH,
    CONTENT_TYPE,
    MAX_CORIM_BYTES,
    PROFILES,
    SNP_BY_CHIP,
    SNP_BY_CSP,
    TAG_BYTES,
    TAG_COMID,
    TAG_CORIM,
    TAG_COSE_SIGN1,
    TAG_EPOCH,
    TAG_URI,
    Profile,
    Quantity,
    _oid,
    _profile,
    _sig_structure,
    deterministic,
)
from sevref.digest import Mode
from sevref.errors import SignatureError, printable
from sevref.export import accepted
from sevref.sign import PublicKey, algorithm_of, key_id, load_public_key
from sevref.state import TrustedKey
from sevref.trust import TrustedPublication

__all__ = ["Corim", "ReferenceValue", "check_corim", "open_corim"]


@dataclass(frozen=True)
class ReferenceValue:
    """One reference triple of a verified CoRIM."""

    comid: str
    """The CoMID's tag id (a UUID)."""
    environment: str
    """The environment: a class-id OID, or ``vendor/model``."""
    mode: Mode
    """The launch mode the profile gives that environment."""
    digest: str
    """The digest, lowercase hex."""
    policy: int | None
    """The expected guest policy, when given."""


@dataclass(frozen=True)
class Corim:
    """A CoRIM whose signature verified, read under its profile."""

    id: str
    """The CoRIM id (``publisher/product/stream/serial``)."""
    profile: Profile
    """Its profile."""
    keyid: str
    """The key that signed it."""
    signer: str
    """The signer's name (corim-meta)."""
    signer_uri: str | None
    """The signer's URL (corim-meta), if given."""
    not_before: datetime | None
    """rim-validity not-before."""
    not_after: datetime
    """rim-validity not-after."""
    values: tuple[ReferenceValue, ...]
    """Every reference triple, in order."""

    def digests(self) -> set[str]:
        """The digests it accepts.

        Returns:
            Lowercase hex digests.
        """
        return {value.digest for value in self.values}


def _fail(what: str, message: str) -> SignatureError:
    return SignatureError(f"{what}: {printable(message)}")


def _decode(data: bytes, what: str) -> Any:
    """Decode one layer, which must be deterministic CBOR, as sevref writes it.

    Re-encoding the decoded value must give the same bytes back: that refuses
    duplicate map keys (which cbor2 5 reads as the last one), indefinite
    lengths and any other encoding of the same value, so that no two readers
    of a signed CoRIM can see different values in it.
    """
    try:
        value = cbor2.loads(data, max_depth=_MAX_DEPTH)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as error:
        raise _fail(what, f"not CBOR ({error})") from None
    try:
        again = deterministic(value)
    except (TypeError, ValueError, OverflowError):
        again = b""
    if again != data:
        raise _fail(what, "not in deterministic CBOR encoding (RFC 8949 §4.2.1)")
    return value


def _tagged(value: Any, tag: int, what: str) -> Any:
    if not isinstance(value, cbor2.CBORTag) or value.tag != tag:
        found = f"tag {value.tag}" if isinstance(value, cbor2.CBORTag) else type(value).__name__
        raise _fail(what, f"expected CBOR tag {tag}, found {found}")
    return value.value


# cbor2 6 reads what a tag holds as immutable containers (tuples, frozendicts), the rest as lists and dicts.
def _map(value: Any, what: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise _fail(what, f"expected a map, found {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise _fail(what, f"expected an array, found {type(value).__name__}")
    return value


def _time(value: Any, what: str) -> datetime:
    # cbor2 reads tag 1 as a datetime itself.
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, cbor2.CBORTag) and value.tag == TAG_EPOCH and type(value.value) is int:
        return datetime.fromtimestamp(value.value, UTC)
    raise _fail(what, f"expected a #6.1 time, found {type(value).__name__}")


def _uri(value: Any, what: str) -> str:
    text = _tagged(value, TAG_URI, what)
    if not isinstance(text, str):
        raise _fail(what, f"expected a URI text, found {type(text).__name__}")
    return text


def _check_signature(key: PublicKey, alg: int, signature: bytes, message: bytes, what: str) -> None:
    algorithm = algorithm_of(key)
    if _COSE_ALG[algorithm] != alg:
        raise _fail(what, f"alg {alg}; the key is {algorithm}, which signs with alg {_COSE_ALG[algorithm]}")
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
            return
        size = _COORDINATE_BYTES[algorithm]
        if len(signature) != 2 * size:
            raise _fail(what, f"signature of {len(signature)} bytes; expected {2 * size} (r || s)")
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(_HASHES[algorithm]()))
    except InvalidSignature:
        raise _fail(what, "the signature does not verify") from None


def _keys_by_id(keys: Mapping[str, PublicKey] | Iterable[PublicKey]) -> dict[str, PublicKey]:
    if isinstance(keys, Mapping):
        return dict(keys)
    return {key_id(key): key for key in keys}


def _check_header(
    header: Mapping[Any, Any], trusted: Mapping[str, PublicKey], signature: bytes, message: bytes, what: str
) -> str:
    """Check the protected header's content type and signing key, and the signature; return the key id."""
    if header.get(_CONTENT_TYPE) != CONTENT_TYPE:
        raise _fail(what, f"content type {header.get(_CONTENT_TYPE)!r}; expected {CONTENT_TYPE!r}")
    kid, alg = header.get(_KID), header.get(_ALG)
    if not isinstance(kid, bytes) or type(alg) is not int:
        raise _fail(what, "expected alg (1) and kid (4) in the protected header")
    if kid.hex() not in trusted:
        known = ", ".join(sorted(trusted)) or "none"
        raise _fail(what, f"signed by key {kid.hex()}; expected one of the publisher's keys ({known})")
    _check_signature(trusted[kid.hex()], alg, signature, message, what)
    return kid.hex()


def _window(value: Any, what: str) -> tuple[datetime | None, datetime]:
    """A validity-map's (not-before, not-after)."""
    validity = _map(value, what)
    return (None if 0 not in validity else _time(validity[0], what)), _time(validity.get(1), what)


def _check_time(at: datetime, start: datetime | None, end: datetime, what: str) -> None:
    if (start is not None and at < start) or at > end:
        since = start.isoformat() if start else "-"
        raise _fail(what, f"{since} to {end.isoformat()}; checked at {at.astimezone(UTC).isoformat()}")


def open_corim(
    data: bytes,
    keys: Mapping[str, PublicKey] | Iterable[PublicKey],
    at: datetime | None = None,
    what: str = "CoRIM",
    profile: str | None = None,
) -> Corim:
    """Verify a signed CoRIM by one of the publisher's keys and read its reference values.

    Args:
        data: the CoRIM's bytes.
        keys: the publisher's keys (by key id, or a list): the ``kid`` of the
            protected header must name one of them.
        at: check that the CoRIM is valid at this time (rim-validity and
            corim-meta's signature-validity); None: not checked.
        what: how to name it in errors.
        profile: read the values under this profile of :data:`PROFILES`
            (default: the one whose URI the CoRIM names; of two with the same
            URI, the one whose mkeys it uses).

    Returns:
        The CoRIM.

    Raises:
        SignatureError: not a signed CoRIM, a key the publisher does not have,
            a signature that does not verify, a time outside its validity, or
            values that its profile does not describe.
    """
    if len(data) > MAX_CORIM_BYTES:
        raise _fail(what, f"{len(data)} bytes; expected at most {MAX_CORIM_BYTES}")
    sign1 = _list(_tagged(_decode(data, what), TAG_COSE_SIGN1, what), f"{what}: COSE_Sign1")
    if len(sign1) != 4 or not all(isinstance(sign1[i], bytes) for i in (0, 2, 3)) or not isinstance(sign1[1], Mapping):
        raise _fail(what, "expected COSE_Sign1 [protected bstr, unprotected map, payload bstr, signature bstr]")
    protected_bytes, _, payload, signature = sign1
    header = _map(_decode(protected_bytes, what), f"{what}: protected header")
    keyid = _check_header(header, _keys_by_id(keys), signature, _sig_structure(protected_bytes, payload), what)
    meta_bytes = header.get(_CORIM_META)
    if not isinstance(meta_bytes, bytes):
        raise _fail(what, "expected corim-meta (8) in the protected header")
    meta = _map(_decode(meta_bytes, what), f"{what}: corim-meta")
    signer = _map(meta.get(0), f"{what}: corim-meta signer")
    if not isinstance(signer.get(0), str):
        raise _fail(what, "corim-meta: expected a signer name")
    signer_uri = None if 1 not in signer else _uri(signer[1], f"{what}: corim-meta signer-uri")
    corim = _map(_tagged(_decode(payload, what), TAG_CORIM, f"{what}: payload"), f"{what}: corim-map")
    if not isinstance(corim.get(0), str):
        raise _fail(what, "corim-map: expected a text id")
    not_before, not_after = _window(corim.get(4), f"{what}: rim-validity")
    if at is not None:
        _check_time(at, not_before, not_after, f"{what}: rim-validity")
        if 1 in meta:
            _check_time(at, *_window(meta[1], f"{what}: signature-validity"), f"{what}: signature-validity")
    uri = _uri(corim.get(3), f"{what}: profile")
    chosen = _choose_profile(uri, corim, profile, what)
    return Corim(
        id=corim[0],
        profile=chosen,
        keyid=keyid,
        signer=signer[0],
        signer_uri=signer_uri,
        not_before=not_before,
        not_after=not_after,
        values=tuple(_values(corim, chosen, what)),
    )


def _comids(corim: Mapping[Any, Any], what: str) -> Iterable[Mapping[Any, Any]]:
    for tag in _list(corim.get(1), f"{what}: tags"):
        data = _tagged(tag, TAG_COMID, f"{what}: tag")
        if not isinstance(data, bytes):
            raise _fail(what, "a CoMID is not a byte string")
        yield _map(_decode(data, f"{what}: CoMID"), f"{what}: CoMID")


def _choose_profile(uri: str, corim: Mapping[Any, Any], name: str | None, what: str) -> Profile:
    if name is not None:
        chosen = _profile(name)
        if chosen.uri != uri:
            raise _fail(what, f"profile {uri!r}; expected {chosen.uri!r} ({chosen.name})")
        return chosen
    candidates = [p for p in PROFILES.values() if p.uri == uri]
    if not candidates:
        raise _fail(what, f"profile {uri!r}; expected one of {', '.join(sorted({p.uri for p in PROFILES.values()}))}")
    used = {
        m.get(0)
        for comid in _comids(corim, what)
        for triple in _list(_map(comid.get(4), f"{what}: triples").get(0, []), f"{what}: reference triples")
        for m in (triple[1] if isinstance(triple, (list, tuple)) and len(triple) == 2 else ())
        if isinstance(m, Mapping)
    }
    return next((p for p in candidates if p.mkeys[Quantity.DIGEST] in used), candidates[0])


def _environment(env: Any, profile: Profile, what: str) -> tuple[str, Mode]:
    class_map = _map(_map(env, f"{what}: environment").get(0), f"{what}: class")
    for mode, classes in profile.classes.items():
        if dict(class_map) in [dict(c) for c in classes]:
            class_id = class_map.get(0)
            if isinstance(class_id, cbor2.CBORTag):
                oid = next(o for o in (SNP_BY_CHIP, SNP_BY_CSP) if _oid(o) == class_id.value)
                return oid, mode
            return f"{class_map.get(1)}/{class_map.get(2)}", mode
    raise _fail(what, f"environment class {class_map!r} is not one of profile {profile.name}")


def _values(corim: Mapping[Any, Any], profile: Profile, what: str) -> Iterable[ReferenceValue]:
    digest_key, policy_key = profile.mkeys[Quantity.DIGEST], profile.mkeys[Quantity.POLICY]
    for comid in _comids(corim, what):
        identity = _map(comid.get(1), f"{what}: tag-identity").get(0)
        tag_id = (
            str(uuid.UUID(bytes=identity)) if isinstance(identity, bytes) and len(identity) == 16 else str(identity)
        )
        for triple in _list(_map(comid.get(4), f"{what}: triples").get(0, []), f"{what}: reference triples"):
            if not isinstance(triple, (list, tuple)) or len(triple) != 2:
                raise _fail(what, "a reference triple is not [environment, measurements]")
            environment, mode = _environment(triple[0], profile, what)
            digest: str | None = None
            policy: int | None = None
            for item in _list(triple[1], f"{what}: measurements"):
                measurement = _map(item, f"{what}: measurement")
                values = _map(measurement.get(1), f"{what}: mval")
                if measurement.get(0) == digest_key:
                    digests = _list(values.get(2), f"{what}: digests")
                    algorithm = _HASH_IDS["sha384" if mode is Mode.SEV_SNP else "sha256"]
                    if len(digests) != 1 or digests[0][0] != algorithm or len(digests[0][1]) != _HASH_SIZES[algorithm]:
                        raise _fail(what, f"mkey {digest_key}: expected one digest [[{algorithm}, bytes]]")
                    digest = bytes(digests[0][1]).hex()
                elif measurement.get(0) == policy_key:
                    raw = _tagged(values.get(4), TAG_BYTES, f"{what}: policy raw-value")
                    if not isinstance(raw, bytes) or len(raw) != profile.policy_bytes:
                        raise _fail(what, f"mkey {policy_key}: expected 560(bytes .size {profile.policy_bytes})")
                    policy = int.from_bytes(raw, "little")
                else:
                    raise _fail(what, f"mkey {measurement.get(0)!r} is not one of profile {profile.name}")
            if digest is None:
                raise _fail(what, f"a reference triple without mkey {digest_key} (the launch digest)")
            yield ReferenceValue(tag_id, environment, mode, digest, policy)


def check_corim(data: bytes, publication: TrustedPublication, at: datetime, what: str = "CoRIM") -> Corim:
    """Hold a CoRIM to a trusted publication: its publisher's, valid now, and accepting nothing the release refuses.

    ``sevref verify --corim FILE``: the CoRIM must be signed by an active
    release key of the key chain the publication was trusted with, be valid at
    ``at``, name this publisher's stream, and accept only digests this release
    accepts (an older CoRIM that still carries a digest revoked since is
    refused). It may carry fewer values than the release (one firmware's, say).

    Args:
        data: the CoRIM's bytes.
        publication: the trusted publication.
        at: the checking time.
        what: how to name it in errors.

    Returns:
        The CoRIM.

    Raises:
        SignatureError: not a CoRIM this publication's publisher signed, valid now.
        TrustError: the publication's files fail their checks.
    """
    keys = {
        key.keyid: load_public_key(key.public_key.encode("ascii"), f"key {key.keyid}")
        for key in _release_keys(publication)
    }
    corim = open_corim(data, keys, at, what)
    release = publication.index.release
    stream = f"{release.publisher}/{release.product}/{release.stream}/"
    if not corim.id.startswith(stream):
        raise _fail(what, f"id {corim.id!r}; expected a CoRIM of {stream}<serial>")
    acceptable = {digest for item in accepted(publication, corim.profile.modes) for _, digest in item.entries}
    refused = sorted(corim.digests() - acceptable)
    if refused:
        raise _fail(
            what,
            f"accepts {len(refused)} digest{'s' if len(refused) != 1 else ''} that serial {release.serial} does not "
            f"(revoked, deprecated or not published), first {refused[0]}; expected only values this release accepts",
        )
    return corim


def _release_keys(publication: TrustedPublication) -> list[TrustedKey]:
    """The active release keys of the chain the publication was trusted with."""
    return [key for key in publication.chain.active if "release" in key.roles]
