"""A signed CoRIM of the values a verifier may accept, and its verification.

CoRIM is IETF RATS' format for reference values (draft-ietf-rats-corim-11,
6 July 2026, the -11 CDDL at tag ``draft-ietf-rats-corim-11``, commit
3d81e94). sevref writes one signed CoRIM per profile:

* a ``signed-corim`` = ``#6.18(COSE_Sign1)`` (-11 ``cose-sign1-corim.cddl``,
  RFC 9052 §4.2), whose protected header carries ``alg`` (1), the content type
  (3) ``application/rim+cbor``, the signing key's id as ``kid`` (4: the SHA-256
  of its DER SubjectPublicKeyInfo, as sevref names keys) and ``corim-meta``
  (8: the publisher's name and URL, and the publication's validity), its
  signature made over RFC 9052 §4.4's ``Sig_structure``;
* a payload ``#6.501(corim-map)`` (-11 ``corim-map.cddl``): an id
  ``publisher/product/stream/serial``, one CoMID ``#6.506`` per entry group,
  the profile as ``#6.32`` URI and ``rim-validity`` = the publication's issue
  time and expiry (``#6.1`` epoch seconds);
* in each CoMID (-11 ``concise-mid-tag.cddl``) one reference triple per entry
  and environment class, with the entry's digest and the group's expected policy.

Only values a verifier may accept go in: :func:`sevref.export.accepted` (active
entries, without any digest a revoked entry carries), as for every export.

The profile decides the environment and the measurement keys (mkeys); the
profiles sevref knows are one table, :data:`PROFILES`, one row a profile
revision. SEV-SNP follows AMD's profile (draft-deeglaze-amd-sev-snp-corim-profile);
SEV and SEV-ES, which no published profile covers, follow sevref's own
(``docs/corim-sev-profile.md``).

Encoding: cbor2, the CBOR library most used in Python, kept as a runtime
dependency rather than an encoder of sevref's own (issue 24: "Encode with a
kept CBOR library"). cbor2's ``canonical`` option orders map keys length first
(RFC 7049 §3.9), not bytewise as RFC 8949 §4.2.1's deterministic encoding
does, so :func:`deterministic` orders every map itself and cbor2 keeps that
order; cbor2 always writes integers and lengths in their shortest form. ECDSA
signatures are deterministic (RFC 6979, :mod:`sevref.sign`): the same
publication and key give the same bytes.

This module does no I/O.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from sevref.digest import Mode
from sevref.errors import ConfigError, SignatureError, printable
from sevref.export import accepted
from sevref.records import GroupRecord
from sevref.sign import Algorithm, PublicKey, Signer, algorithm_of, key_id, load_public_key
from sevref.state import TrustedKey
from sevref.trust import TrustedPublication

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_PROFILE",
    "MAX_CORIM_BYTES",
    "PROFILES",
    "SEV_PROFILE",
    "Corim",
    "Profile",
    "ReferenceValue",
    "check_corim",
    "corim_bytes",
    "deterministic",
    "open_corim",
    "unsigned_corim",
]

CONTENT_TYPE = "application/rim+cbor"
"""The COSE content type of a CoRIM payload (draft-ietf-rats-corim-11, ``protected-corim-header-map.cddl``)."""

MAX_CORIM_BYTES = 64 << 20
"""The largest CoRIM :func:`open_corim` reads."""

_MAX_DEPTH = 24
"""CBOR nesting :func:`open_corim` accepts: a signed CoRIM nests 12 deep, its CoMIDs 9."""

# CBOR tags (draft-ietf-rats-corim-11 cddl/cbor-tags.txt; RFC 8949 §3.4; RFC 9090 §2; RFC 9052 §2).
TAG_EPOCH = 1
TAG_URI = 32
TAG_COSE_SIGN1 = 18
TAG_OID = 111
TAG_CORIM = 501
TAG_COMID = 506
TAG_BYTES = 560

# COSE header labels (RFC 9052 §3.1) and corim-meta (draft-ietf-rats-corim-11 §4.2.1).
_ALG, _CONTENT_TYPE, _KID, _CORIM_META = 1, 3, 4, 8

# COSE algorithm ids (RFC 9053 §2.1 ES256/ES384, §2.2 EdDSA): the signature algorithm of each key kind.
_COSE_ALG = {Algorithm.ECDSA_P256: -7, Algorithm.ECDSA_P384: -35, Algorithm.ED25519: -8}
_COORDINATE_BYTES = {Algorithm.ECDSA_P256: 32, Algorithm.ECDSA_P384: 48}
_HASHES: dict[Algorithm, type[hashes.HashAlgorithm]] = {
    Algorithm.ECDSA_P256: hashes.SHA256,
    Algorithm.ECDSA_P384: hashes.SHA384,
}

# Named Information Hash Algorithm Registry (IANA), as CoRIM digests name them: 1 sha-256, 7 sha-384.
_HASH_IDS = {"sha256": 1, "sha384": 7}
_HASH_SIZES = {1: 32, 7: 48}

# tag-identity of each CoMID: a UUID v5 (RFC 9562 §5.5) of publisher/product/stream/group in this namespace.
_COMID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:sevref:comid")


def _oid(text: str) -> bytes:
    """The content bytes of an OID's BER encoding, which tag 111 holds (RFC 9090 §2: no tag, no length)."""
    arcs = [int(a) for a in text.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        value = arc
        chunk = [value & 0x7F]
        while value > 0x7F:
            value >>= 7
            chunk.append(0x80 | value & 0x7F)
        out += bytes(reversed(chunk))
    return bytes(out)


# AMD's attestation classes (draft-deeglaze-amd-sev-snp-corim-profile-02, "AMD SEV-SNP Target Environment"):
# by chip (a VCEK signs the report) and by CSP (a VLEK does). The draft writes them as
# 111(h'06092b060104019c780301'), with the DER tag and length; RFC 9090 §2, which defines tag 111, and
# Veraison (veraison/corim comid/oid.go, OID.FromString: "drop T&L and keep the value") hold the content
# bytes only, which sevref writes.
SNP_BY_CHIP = "1.3.6.1.4.1.3704.3.1"
"""Class-id OID of an SEV-SNP guest whose report a chip's VCEK signs."""
SNP_BY_CSP = "1.3.6.1.4.1.3704.3.2"
"""Class-id OID of an SEV-SNP guest whose report a cloud provider's VLEK signs."""


class Quantity(enum.StrEnum):
    """What a measurement key names."""

    DIGEST = "digest"
    """The launch digest: MEASUREMENT (SEV-SNP) or GCTX.LD (SEV, SEV-ES)."""
    POLICY = "policy"
    """The guest policy."""


@dataclass(frozen=True)
class Profile:
    """One revision of a CoRIM profile: its URI and the numbers sevref writes under it."""

    name: str
    """The name ``--corim-profile`` takes."""
    uri: str
    """The profile id written in the CoRIM (``corim-map`` key 3, a ``#6.32`` URI)."""
    modes: frozenset[Mode]
    """The launch modes it describes."""
    mkeys: Mapping[Quantity, int]
    """The mkey of each quantity."""
    policy_bytes: int
    """The policy's size: it is written as ``560(little-endian bytes)``."""
    classes: Mapping[Mode, tuple[Mapping[int, Any], ...]]
    """The environment ``class-map`` of each mode: one reference triple each, per entry."""
    source: str
    """Where the numbers come from (document, revision, section)."""


def _snp_classes() -> dict[Mode, tuple[Mapping[int, Any], ...]]:
    return {Mode.SEV_SNP: tuple({0: cbor2.CBORTag(TAG_OID, _oid(oid))} for oid in (SNP_BY_CHIP, SNP_BY_CSP))}


_SNP_02 = (
    "draft-deeglaze-amd-sev-snp-corim-profile-02 (10 December 2024): profile id in 'AMD SEV-SNP CoRIM Profile'; "
    "class-ids in 'AMD SEV-SNP Target Environment'; 'AMD SEV-SNP measurements': mkey 2 POLICY "
    "&(raw-value: 4): tagged-bytes8, mkey 641 MEASUREMENT &(digests: 2): [[7, bytes48]]"
)

PROFILES: Mapping[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            name="amd-snp-02",
            uri="tag:amd.com,2024:snp-corim-profile",
            modes=frozenset({Mode.SEV_SNP}),
            mkeys={Quantity.DIGEST: 641, Quantity.POLICY: 2},
            policy_bytes=8,
            classes=_snp_classes(),
            source=_SNP_02,
        ),
        Profile(
            name="amd-snp-2025",
            uri="tag:amd.com,2025:snp-corim-profile",
            modes=frozenset({Mode.SEV_SNP}),
            mkeys={Quantity.DIGEST: 641, Quantity.POLICY: 2},
            policy_bytes=8,
            classes=_snp_classes(),
            source="the draft's editor's copy (repository deeglaze/draft-deeglaze-amd-sev-snp-corim-profile, "
            "main at 0fbed55, 21 June 2025): profile id tag:amd.com,2025:snp-corim-profile; mkeys 2 and 641 as in -02",
        ),
        Profile(
            name="amd-snp-split-tcb",
            uri="tag:amd.com,2025:snp-corim-profile",
            modes=frozenset({Mode.SEV_SNP}),
            mkeys={Quantity.DIGEST: 1152, Quantity.POLICY: 64},
            policy_bytes=8,
            classes=_snp_classes(),
            source="the editor's open branch split_tcb (849ce4d, 2 June 2025, 'Use bit position for every mkey'): "
            "'measurement-map' section, mkey 64 POLICY and mkey 1152 MEASUREMENT (the bit offsets in the report)",
        ),
        Profile(
            name="sevref-sev-1",
            uri="urn:sevref:corim-profile:sev:1",
            modes=frozenset({Mode.SEV, Mode.SEV_ES}),
            mkeys={Quantity.DIGEST: 0, Quantity.POLICY: 1},
            policy_bytes=4,
            classes={
                Mode.SEV: ({1: "AMD", 2: "SEV"},),
                Mode.SEV_ES: ({1: "AMD", 2: "SEV-ES"},),
            },
            source="docs/corim-sev-profile.md, version 1",
        ),
    )
}
"""Every profile sevref writes, by name."""

DEFAULT_PROFILE = "amd-snp-02"
"""The newest published revision of AMD's profile (-02; the editor's copy is not published)."""
SEV_PROFILE = "sevref-sev-1"
"""sevref's profile of SEV and SEV-ES GCTX.LD values (``docs/corim-sev-profile.md``)."""


def deterministic(value: Any) -> bytes:
    """Encode as RFC 8949 §4.2.1 deterministic CBOR.

    Map keys are sorted by the bytewise order of their encodings; cbor2
    writes every integer, length and tag in its shortest form and no
    indefinite length. Floats and sets are refused (sevref writes neither).

    Args:
        value: ints, bytes, text, lists, dicts and ``cbor2.CBORTag``.

    Returns:
        The bytes.

    Raises:
        TypeError: a value of another type (a bug).
    """
    return cbor2.dumps(_ordered(value))


def _ordered(value: Any) -> Any:
    if isinstance(value, Mapping):
        items = [(cbor2.dumps(_ordered(k)), _ordered(v)) for k, v in value.items()]
        return {cbor2.loads(k): v for k, v in sorted(items, key=lambda item: item[0])}
    if isinstance(value, (list, tuple)):
        return [_ordered(v) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, _ordered(value.value))
    if isinstance(value, bool) or value is None or isinstance(value, (int, str, bytes)):
        return value
    # What cbor2 reads tags 1 and 37 as, when it decodes a CoRIM (open_corim encodes it again to compare).
    if isinstance(value, datetime) and value.tzinfo is not None and value.microsecond == 0:
        return _epoch(value)
    if isinstance(value, uuid.UUID):
        return cbor2.CBORTag(37, value.bytes)
    raise TypeError(f"deterministic CBOR: {type(value).__name__} is not written")


def _epoch(moment: datetime) -> cbor2.CBORTag:
    return cbor2.CBORTag(TAG_EPOCH, int(moment.timestamp()))


def _validity(publication: TrustedPublication) -> dict[int, Any]:
    index = publication.index
    return {0: _epoch(index.issued), 1: _epoch(index.expires)}


def _comid(
    publication: TrustedPublication, profile: Profile, group: GroupRecord, entries: Sequence[tuple[int | None, str]]
) -> bytes:
    release = publication.index.release
    name = f"{release.publisher}/{release.product}/{release.stream}/{group.id}"
    digest_alg = _HASH_IDS[group.digest_algorithm]
    if group.policy is not None and group.policy >> 8 * profile.policy_bytes:
        raise ConfigError(
            f"export corim: group {group.id}: policy {group.policy:#x}; profile {profile.name} takes "
            f"{8 * profile.policy_bytes} bits"
        )
    claims_of_policy = (
        []
        if group.policy is None
        else [
            {
                0: profile.mkeys[Quantity.POLICY],
                1: {4: cbor2.CBORTag(TAG_BYTES, group.policy.to_bytes(profile.policy_bytes, "little"))},
            }
        ]
    )
    triples = [
        [
            {0: class_map},
            [
                {0: profile.mkeys[Quantity.DIGEST], 1: {2: [[digest_alg, bytes.fromhex(digest)]]}},
                *claims_of_policy,
            ],
        ]
        for _, digest in entries
        for class_map in profile.classes[group.mode]
    ]
    return deterministic({1: {0: uuid.uuid5(_COMID_NAMESPACE, name).bytes, 1: release.serial}, 4: {0: triples}})


def _profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"CoRIM profile {name!r}: expected one of {', '.join(PROFILES)}") from None


def unsigned_corim(publication: TrustedPublication, profile: str = DEFAULT_PROFILE) -> bytes:
    """The ``#6.501`` CoRIM of a publication's acceptable values under one profile.

    Args:
        publication: the trusted publication.
        profile: a name in :data:`PROFILES`.

    Returns:
        Deterministic CBOR bytes.

    Raises:
        ConfigError: an unknown profile, or no acceptable entry of the profile's modes.
        TrustError: the publication's files fail their checks.
    """
    chosen = _profile(profile)
    groups = [a for a in accepted(publication, chosen.modes) if a.entries]
    if not groups:
        modes = ", ".join(sorted(str(m) for m in chosen.modes))
        raise ConfigError(f"export corim --corim-profile {chosen.name}: the publication has no active {modes} entries")
    release = publication.index.release
    corim = {
        0: f"{release.publisher}/{release.product}/{release.stream}/{release.serial}",
        1: [cbor2.CBORTag(TAG_COMID, _comid(publication, chosen, a.group, a.entries)) for a in groups],
        3: cbor2.CBORTag(TAG_URI, chosen.uri),
        4: _validity(publication),
    }
    return deterministic(cbor2.CBORTag(TAG_CORIM, corim))


def _raw_signature(signer: Signer, message: bytes) -> bytes:
    """Sign as COSE wants: ECDSA as r || s, each as long as the curve's order (RFC 9053 §2.1)."""
    signature = signer.sign(message)
    if signer.algorithm is Algorithm.ED25519:
        return signature
    size = _COORDINATE_BYTES[signer.algorithm]
    r, s = decode_dss_signature(signature)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 §4.4 ``Sig_structure`` of a COSE_Sign1, without external data."""
    return deterministic(["Signature1", protected, b"", payload])


def corim_bytes(publication: TrustedPublication, signer: Signer, profile: str = DEFAULT_PROFILE) -> bytes:
    """The signed CoRIM (``#6.18`` COSE_Sign1) of a publication's acceptable values.

    Args:
        publication: the trusted publication.
        signer: the key that signed the publication (a key file or a token).
        profile: a name in :data:`PROFILES`.

    Returns:
        Deterministic bytes: the same publication and key file give the same
        CoRIM (a PKCS#11 token's ECDSA signatures are its own, and may differ).

    Raises:
        ConfigError: another key than the publication's, an unknown profile, or nothing to export.
        TrustError: the publication's files fail their checks.
    """
    if signer.keyid != publication.keyid:
        raise ConfigError(
            f"export corim: signing key {signer.keyid}; expected the key that signed the publication, {publication.keyid}"
        )
    payload = unsigned_corim(publication, profile)
    index = publication.index
    signer_map: dict[int, Any] = {0: index.publisher_name}
    if index.url is not None:
        signer_map[1] = cbor2.CBORTag(TAG_URI, index.url)
    meta = deterministic({0: signer_map, 1: _validity(publication)})
    protected = deterministic(
        {
            _ALG: _COSE_ALG[signer.algorithm],
            _CONTENT_TYPE: CONTENT_TYPE,
            _KID: bytes.fromhex(signer.keyid),
            _CORIM_META: meta,
        }
    )
    signature = _raw_signature(signer, _sig_structure(protected, payload))
    return deterministic(cbor2.CBORTag(TAG_COSE_SIGN1, [protected, {}, payload, signature]))


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
