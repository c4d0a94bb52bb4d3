"""A signed CoRIM of the values a verifier may accept (its verification: :mod:`sevref.corim.read`).

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
import functools
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sevref.digest import Mode
from sevref.errors import ConfigError
from sevref.export import Accepted, accepted
from sevref.records import GroupRecord
from sevref.sign import Algorithm, Signer
from sevref.trust import TrustedPublication

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_PROFILE",
    "MAX_CORIM_BYTES",
    "PROFILES",
    "SEV_PROFILE",
    "Profile",
    "corim_bytes",
    "deterministic",
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
        if all(type(k) is int and k >= 0 for k in value):
            # Unsigned integers' shortest encodings sort bytewise as the numbers do (RFC 8949 §4.2.1).
            return {k: _ordered(value[k]) for k in sorted(value)}
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
    # Every triple of a group is the same but for its digest: each class's triple is encoded once, around the
    # digest's place, and the digests are put in (a publication can have a million entries). The result is what
    # deterministic() gives for the whole structure (tests/test_corim.py holds the two to each other).
    measurement = profile.mkeys[Quantity.DIGEST]

    def triple(class_map: Mapping[int, Any], value: bytes) -> list[Any]:
        return [{0: class_map}, [{0: measurement, 1: {2: [[digest_alg, value]]}}, *claims_of_policy]]

    templates = [
        _around_digest(functools.partial(triple, class_map), _HASH_SIZES[digest_alg])
        for class_map in profile.classes[group.mode]
    ]
    triples = [head + bytes.fromhex(digest) + tail for _, digest in entries for head, tail in templates]
    identity = deterministic({0: uuid.uuid5(_COMID_NAMESPACE, name).bytes, 1: release.serial})
    # {1: tag-identity, 4: {0: reference-triples}}: keys 1 < 4 and 0, in RFC 8949 §4.2.1 order.
    start = [_head(5, 2), deterministic(1), identity, deterministic(4), _head(5, 1), deterministic(0)]
    return b"".join([*start, _head(4, len(triples)), *triples])


def _head(major: int, argument: int) -> bytes:
    """The shortest head of a CBOR data item (RFC 8949 §3, §4.2.1): major type and argument."""
    if argument < 24:
        return bytes([major << 5 | argument])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << 8 * size:
            return bytes([major << 5 | extra]) + argument.to_bytes(size, "big")
    raise ValueError(f"CBOR argument {argument} is larger than 64 bits")


def _around_digest(build: Callable[[bytes], Any], size: int) -> tuple[bytes, bytes]:
    """The deterministic encoding of ``build(digest)`` before and after the digest's bytes.

    It is encoded with two digests that differ in every byte: where they
    differ is the digest's place.
    """
    low, high = deterministic(build(bytes(size))), deterministic(build(b"\xff" * size))
    start = next(i for i, (a, b) in enumerate(zip(low, high, strict=True)) if a != b)
    if low[start + size :] != high[start + size :] or low[:start] != high[:start]:
        raise ValueError("the digest's place in a triple is not one run of bytes")  # a bug, not an input
    return low[:start], low[start + size :]


def _profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"CoRIM profile {name!r}: expected one of {', '.join(PROFILES)}") from None


def unsigned_corim(
    publication: TrustedPublication, profile: str = DEFAULT_PROFILE, values: Sequence[Accepted] | None = None
) -> bytes:
    """The ``#6.501`` CoRIM of a publication's acceptable values under one profile.

    Args:
        publication: the trusted publication.
        profile: a name in :data:`PROFILES`.
        values: what :func:`sevref.export.accepted` gives for the publication
            (of these or more modes), when the caller has it already; else it is read.

    Returns:
        Deterministic CBOR bytes.

    Raises:
        ConfigError: an unknown profile, or no acceptable entry of the profile's modes.
        TrustError: the publication's files fail their checks.
    """
    chosen = _profile(profile)
    every = accepted(publication, chosen.modes) if values is None else values
    groups = [a for a in every if a.entries and a.group.mode in chosen.modes]
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


def corim_bytes(
    publication: TrustedPublication,
    signer: Signer,
    profile: str = DEFAULT_PROFILE,
    values: Sequence[Accepted] | None = None,
) -> bytes:
    """The signed CoRIM (``#6.18`` COSE_Sign1) of a publication's acceptable values.

    Args:
        publication: the trusted publication.
        signer: the key that signed the publication (a key file or a token).
        profile: a name in :data:`PROFILES`.
        values: see :func:`unsigned_corim`.

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
    payload = unsigned_corim(publication, profile, values)
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
