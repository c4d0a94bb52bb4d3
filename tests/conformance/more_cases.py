"""The cases of the verifier's memory, of fetching, of strict signed data and of freshness (README.md).

Each function returns its cases in a stable order; :mod:`make_cases` adds them
after the cases of every file changed each way.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from sevref.keychain import next_document
from sevref.records import Release
from sevref.serialize import canonical
from sevref.timestamp import sign_timestamp
from sevref.values import parse_time
from tests.conformance.variants import (
    GENUINE_KEYS_3,
    IDENTITY,
    keys,
    keys_payload,
    make_case,
    put,
    signed_keys,
    signed_release,
    state_after,
    tree,
)

Case = dict[str, Any]


def fetching() -> list[Case]:
    """Files that cannot be read are not "unsigned", and end no key chain but by their absence."""
    unreadable = [{"path": "keys/3.dsse.json", "action": "unreadable"}]
    return [
        make_case(
            "no-publication",
            "Neither index.dsse.json nor index.json: nothing is published there (a missing folder, a 404).",
            "release-1",
            3,
            "fetch",
            changes=[{"path": p, "action": "delete"} for p in ("index.dsse.json", "index.json")],
        ),
        make_case(
            "keys-unreadable",
            "keys/3 (the revocation of A) exists but cannot be read (an HTTP mirror: 503): an error, not the end "
            "of the chain.",
            "revoked",
            3,
            "fetch",
            changes=unreadable,
        ),
        make_case(
            "keys-unreadable-rotation",
            "keys/2 (where B joins) exists but cannot be read.",
            "rotated",
            3,
            "fetch",
            changes=[{"path": "keys/2.dsse.json", "action": "unreadable"}],
        ),
        make_case(
            "listed-file-unreadable",
            "A file the index lists exists but cannot be read.",
            "release-1",
            3,
            "fetch",
            changes=[{"path": "groups/9.json", "action": "unreadable"}],
        ),
    ]


def earlier_serial(state: dict[str, Any], serial: int) -> dict[str, Any]:
    """A state that remembers an earlier serial of the stream (with an index of its own)."""
    streams = {
        name: {"serial": serial, "index_sha256": hashlib.sha256(b"serial %d" % serial).hexdigest()}
        for name in state["streams"]
    }
    return {**state, "streams": streams}


def other_index(state: dict[str, Any], index: bytes) -> dict[str, Any]:
    """A state that remembers another index.json under the same serial."""
    streams = {
        name: {**stream, "index_sha256": hashlib.sha256(index).hexdigest()} for name, stream in state["streams"].items()
    }
    return {**state, "streams": streams}


def chains() -> list[Case]:
    """The key chain against what the verifier remembers: forks, withheld documents, revoked keys."""
    signer = keys()
    a, b = signer["A"], signer["B"]
    revoked = tree("revoked")
    genuine = state_after("rotated", GENUINE_KEYS_3)
    # Someone who still holds A (revoked in the genuine keys/3) writes a keys/3 of their own.
    chain = [revoked["keys/1.dsse.json"], revoked["keys/2.dsse.json"]]
    forged = {**revoked, "keys/3.dsse.json": next_document(chain, IDENTITY["publisher"], a, [], {}, None)}
    fork = put("fork", revoked, forged)
    out = [
        make_case(
            "fork",
            "Release 1.0 signed by A beside a keys/3 that A signed, to a verifier that trusted the publisher's keys/3 "
            "(which revokes A): another chain from version 3 on.",
            "revoked",
            3,
            "keys",
            changes=fork,
            state=genuine,
        ),
        make_case(
            "fork-unknown",
            "The same, to a verifier that remembers nothing: the forged chain holds together (keep --state).",
            "revoked",
            0,
            None,
            changes=fork,
        ),
        make_case(
            "after-fork-genuine",
            "The publisher's release (signed by B) with its keys/3, to the verifier that refused the fork.",
            "rotated",
            0,
            None,
            changes=GENUINE_KEYS_3,
            state=genuine,
        ),
        make_case(
            "same-serial-other-bytes",
            "Release 1.0 (serial 3), to a verifier that trusted serial 3 with another index.json (the rotated "
            "base's, signed by B): one serial, two releases.",
            "release-1",
            3,
            "rollback",
            state=other_index(state_after("release-1"), tree("rotated")["index.json"]),
        ),
        make_case(
            "withheld-keys-named-by-index",
            "Release 1.0 signed by A, whose index says it was signed under keys/2, served with keys/1 only.",
            "revoked",
            3,
            "rollback",
            changes=[{"path": p, "action": "delete"} for p in ("keys/2.dsse.json", "keys/3.dsse.json")],
        ),
    ]
    # keys/4, signed by B, makes A active again.
    payload = keys_payload(revoked, 3)
    payload["version"] = 4
    for key in payload["keys"]:
        if key["keyid"] == a.keyid:
            key.update(status="active", reason=None)
    again = {**revoked, "keys/4.dsse.json": signed_keys(canonical(payload), [b])}
    out.append(
        make_case(
            "keys-reactivate-revoked",
            "keys/4 (signed by B) lists A as active again after keys/3 revoked it.",
            "revoked",
            3,
            "keys",
            changes=put("keys-reactivate-revoked", revoked, again),
        )
    )
    return out


def _keys_variants() -> list[Case]:
    """Keys documents that a key of the chain signed and that are wrong all the same."""
    a, b = keys()["A"], keys()["B"]
    release, rotated = tree("release-1"), tree("rotated")
    first = keys_payload(release, 1)
    raw = canonical(first)
    variants: dict[str, tuple[str, dict[str, bytes]]] = {
        "keys-unknown-member": (
            "keys/1 with a member the schema does not know (threshold: 2).",
            {"keys/1.dsse.json": signed_keys(canonical({**first, "threshold": 2}), [a])},
        ),
        "keys-wrong-algorithm": (
            "keys/1 labels A's ECDSA P-256 key ed25519.",
            {
                "keys/1.dsse.json": signed_keys(
                    canonical({**first, "keys": [{**first["keys"][0], "algorithm": "ed25519"}]}), [a]
                )
            },
        ),
        "keys-duplicate-member": (
            "keys/1 with version twice in one object.",
            {"keys/1.dsse.json": signed_keys(raw.replace(b',"version":1}', b',"version":1,"version":1}'), [a])},
        ),
        "keys-not-canonical": (
            "keys/1 indented: not the canonical bytes.",
            {"keys/1.dsse.json": signed_keys(json.dumps(first, indent=1, sort_keys=True).encode(), [a])},
        ),
        "keys-other-publisher": (
            "keys/1 names another publisher.",
            {"keys/1.dsse.json": signed_keys(canonical({**first, "publisher": "other"}), [a])},
        ),
        "keys-wrong-version": (
            "keys/1.dsse.json says it is version 2.",
            {"keys/1.dsse.json": signed_keys(canonical({**first, "version": 2}), [a])},
        ),
    }
    out = [
        make_case(
            ident,
            description,
            "release-1",
            3,
            "identity" if ident == "keys-other-publisher" else "keys",
            changes=put(ident, release, {**release, **files}),
        )
        for ident, (description, files) in variants.items()
    ]
    second = keys_payload(rotated, 2)
    for ident, description, document, signers in (
        ("keys-added-without-countersign", "keys/2 adds B, signed by A alone.", second, [a]),
        (
            "keys-publisher-changes",
            "keys/2 names another publisher than keys/1.",
            {**second, "publisher": "other"},
            [a, b],
        ),
    ):
        changed = {**rotated, "keys/2.dsse.json": signed_keys(canonical(document), signers)}
        out.append(make_case(ident, description, "rotated", 3, "keys", changes=put(ident, rotated, changed)))
    return out


def _index_variants() -> list[Case]:
    """Indexes and statements that A signed and that are wrong all the same."""
    a, b = keys()["A"], keys()["B"]
    release = tree("release-1")
    expires = b'"expires":"2027-01-01T00:00:00Z"'

    def edit(**members: Any) -> Any:
        return lambda index: index.update(members)

    def signing(**members: Any) -> Any:
        return lambda index: index["signing"].update(members)

    variants: list[tuple[str, str, str, dict[str, Any]]] = [
        (
            "index-duplicate-key",
            "The signed index has expires twice; the second is ten years later.",
            "integrity",
            {"encode": lambda i: canonical(i).replace(expires, expires + b',"expires":"2036-01-01T00:00:00Z"')},
        ),
        (
            "index-not-canonical",
            "The signed index is indented JSON.",
            "integrity",
            {"encode": lambda i: json.dumps(i, indent=1, sort_keys=True).encode()},
        ),
        (
            "index-utf16",
            "The signed index is UTF-16.",
            "integrity",
            {"encode": lambda i: canonical(i).decode().encode("utf-16")},
        ),
        (
            "index-float-serial",
            "The signed index says serial 3.0.",
            "integrity",
            {"encode": lambda i: canonical(i).replace(b'"serial":3', b'"serial":3.0')},
        ),
        (
            "index-time-newline",
            "The signed index's expires ends in a line feed.",
            "integrity",
            {"edit": edit(expires="2027-01-01T00:00:00Z\n")},
        ),
        (
            "index-names-other-key",
            "The index names B as its signing key; A signed it.",
            "signature",
            {"edit": signing(keyid=b.keyid, algorithm="ecdsa-p384")},
        ),
        (
            "index-wrong-algorithm",
            "The index names A's algorithm as ed25519.",
            "signature",
            {"edit": signing(algorithm="ed25519")},
        ),
        (
            "index-says-unsigned",
            "The index says it is unsigned (signing: null), yet A signed it.",
            "signature",
            {"edit": edit(signing=None)},
        ),
        (
            "index-duplicate-path",
            "The index lists one file twice.",
            "integrity",
            {"edit": lambda i: i["files"].append(dict(i["files"][0]))},
        ),
        (
            "statement-predicate",
            "The in-toto statement's predicate counts one entry more.",
            "integrity",
            {
                "statement_edit": lambda s: s["predicate"]["counts"].update(
                    entries=s["predicate"]["counts"]["entries"] + 1
                )
            },
        ),
        (
            "statement-type",
            "The in-toto statement's predicateType is another.",
            "integrity",
            {"statement_edit": lambda s: s.update(predicateType="urn:example:other")},
        ),
    ]
    out = []
    for ident, description, check, how in variants:
        changed = signed_release(release, a, **how)
        out.append(make_case(ident, description, "release-1", 3, check, changes=put(ident, release, changed)))
    return out


def _data_variants() -> list[Case]:
    """Listed files that A signed and that are wrong all the same."""
    a = keys()["A"]
    release = tree("release-1")
    group_path = next(p for p in sorted(release) if p.startswith("groups/") and p.endswith(".json"))
    group = json.loads(release[group_path])
    group["release"] = {**group["release"], "release": "1.0-other"}
    other = signed_release(release, a, changed={group_path: canonical(group)})
    # A digest shard that maps an SEV-SNP digest to an entry whose digest is another.
    snp = [
        g
        for p in sorted(release)
        if p.startswith("groups/") and p.endswith(".json")
        for g in json.loads(release[p])["groups"]
        if g["mode"] == "sev-snp"
    ]
    (_, digest_1), (count_2, _) = snp[0]["entries"][:2]
    shard_path = next(
        p
        for p in sorted(release)
        if p.startswith("digests/") and p.endswith(".json") and digest_1 in json.loads(release[p])["digests"]
    )
    shard = json.loads(release[shard_path])
    shard["digests"][digest_1] = [f"{snp[0]['id']}-{count_2:04d}"]
    crossed = signed_release(release, a, changed={shard_path: canonical(shard)})
    # Release 2 whose changes.json names another previous index than its index does, or is left out.
    second = tree("release-2")
    changes = json.loads(second["changes.json"])
    changes["previous"]["index_sha256"] = hashlib.sha256(tree("rotated")["index.json"]).hexdigest()
    disagreeing = signed_release(second, a, changed={"changes.json": canonical(changes)})

    def unlist(index: dict[str, Any]) -> None:
        index["files"] = [f for f in index["files"] if f["path"] != "changes.json"]

    unlisted = signed_release(second, a, edit=unlist)
    for path in ("changes.json", "changes.json.sig"):
        del unlisted[path]
    duplicate = canonical(json.loads(release["index.dsse.json"]))
    payload = json.loads(duplicate)["payload"]
    other_payload = base64.b64encode(tree("release-2")["index.json"]).decode()
    envelope_twice = duplicate.replace(
        f'"payload":"{payload}"'.encode(), f'"payload":"{other_payload}","payload":"{payload}"'.encode()
    )
    return [
        make_case(
            "file-of-another-release-signed",
            f"{group_path}, signed, names release 1.0-other.",
            "release-1",
            3,
            "integrity",
            changes=put("file-of-another-release-signed", release, other),
        ),
        make_case(
            "digest-maps-to-other-entry",
            f"{shard_path}, signed, maps an SEV-SNP digest to an entry whose digest is another; the digest is looked up.",
            "release-1",
            3,
            "integrity",
            changes=put("digest-maps-to-other-entry", release, crossed),
            evidence={"snp_measurement": digest_1},
        ),
        make_case(
            "history-link-disagrees",
            "Release 2, signed, whose changes.json names another previous index (rotated's) than its index.json does.",
            "release-2",
            3,
            "integrity",
            changes=put("history-link-disagrees", second, disagreeing),
        ),
        make_case(
            "history-link-unlisted",
            "Release 2, signed, whose index names a previous release but lists no changes.json.",
            "release-2",
            3,
            "integrity",
            changes=put("history-link-unlisted", second, unlisted),
        ),
        make_case(
            "envelope-duplicate-key",
            "index.dsse.json has payload twice (release 2's index first, then the signed one).",
            "release-1",
            3,
            "signature",
            changes=put("envelope-duplicate-key", release, {**release, "index.dsse.json": envelope_twice}),
        ),
    ]


def strict() -> list[Case]:
    """Signed data read strictly."""
    return [*_keys_variants(), *_index_variants(), *_data_variants()]


def freshness() -> list[Case]:
    """Timestamps: required, fresh enough, for this index, by a key of the timestamp role."""
    signer = keys()
    stamped = tree("timestamped")
    index_2 = tree("release-2")["index.json"]
    release_2 = json.loads(index_2)
    other = {k: release_2[k] for k in ("publisher", "product", "stream", "release", "serial")}
    issued, expires = parse_time("2026-05-31T12:00:00Z"), parse_time("2026-06-02T00:00:00Z")
    index = json.loads(stamped["index.json"])
    this = Release.from_dict(index)
    foreign = sign_timestamp(index_2, Release.from_dict(other), issued, expires, signer["T"])
    by_release_key = sign_timestamp(stamped["index.json"], this, issued, expires, signer["A"])
    missing = [{"path": "timestamp.dsse.json", "action": "delete"}]
    return [
        make_case(
            "timestamp-fresh", "A timestamp issued 12 hours ago; --max-age 1d.", "timestamped", 0, None, max_age="1d"
        ),
        make_case(
            "timestamp-required",
            "A timestamp valid now; --require-timestamp.",
            "timestamped",
            0,
            None,
            require_timestamp=True,
        ),
        make_case(
            "timestamp-stale",
            "A timestamp issued 12 hours ago; --max-age 6h.",
            "timestamped",
            3,
            "freshness",
            max_age="6h",
        ),
        make_case(
            "timestamp-expired",
            "Checked after the timestamp expired (the release is still valid).",
            "timestamped",
            3,
            "freshness",
            at="2026-06-02T00:00:00Z",
            require_timestamp=True,
        ),
        make_case(
            "timestamp-missing",
            "No timestamp; --require-timestamp.",
            "timestamped",
            3,
            "freshness",
            changes=missing,
            require_timestamp=True,
        ),
        make_case("timestamp-not-asked", "No timestamp, and none asked for.", "timestamped", 0, None, changes=missing),
        make_case(
            "timestamp-none-in-chain",
            "Release 1.0 without a timestamp; --max-age 1d.",
            "release-1",
            3,
            "freshness",
            max_age="1d",
        ),
        make_case(
            "timestamp-key-not-in-chain",
            "The timestamped base's timestamp beside release 1.0, whose chain has no key of the timestamp role.",
            "release-1",
            3,
            "freshness",
            require_timestamp=True,
            changes=[
                {"path": "timestamp.dsse.json", "action": "put", "source": "base/timestamped/timestamp.dsse.json"}
            ],
        ),
        make_case(
            "timestamp-other-index",
            "A timestamp (signed by T) for release 1.1's index.",
            "timestamped",
            3,
            "freshness",
            require_timestamp=True,
            changes=put("timestamp-other-index", stamped, {**stamped, "timestamp.dsse.json": foreign}),
        ),
        make_case(
            "timestamp-wrong-role",
            "A timestamp signed by the release key A, which has no timestamp role.",
            "timestamped",
            3,
            "freshness",
            require_timestamp=True,
            changes=put("timestamp-wrong-role", stamped, {**stamped, "timestamp.dsse.json": by_release_key}),
        ),
        make_case(
            "timestamp-flipped",
            "One bit of the timestamp flipped.",
            "timestamped",
            3,
            "freshness",
            require_timestamp=True,
            changes=[
                {"path": "timestamp.dsse.json", "action": "flip", "offset": len(stamped["timestamp.dsse.json"]) // 2}
            ],
        ),
    ]


def versions() -> list[Case]:
    """The compatibility promise (docs/compatibility.md): a newer minor's added members are ignored, nothing else.

    A file whose ``schema`` names a later minor of its major (``index:1.1``, ``groups:2.1``) may carry
    members this verifier does not know, and is read without them; its known members are held to every
    rule all the same. A file of the major this verifier knows (minor 0) with a member it does not know,
    or of another major, is refused.
    """
    a = keys()["A"]
    release = tree("release-1")
    group_path = next(p for p in sorted(release) if p.startswith("groups/") and p.endswith(".json"))

    def index_edit(**members: Any) -> Any:
        def edit(index: dict[str, Any]) -> None:
            index.update(members)
            index["counts"] = {**index["counts"], **members.get("counts_added", {})}
            index.pop("counts_added", None)

        return edit

    def groups(schema: str, **record: Any) -> bytes:
        document = json.loads(release[group_path])
        document["schema"] = schema
        document["generator"] = "a later sevref"
        document["groups"][0] = {**document["groups"][0], **record}
        return canonical(document)

    newer_index = signed_release(
        release, a, edit=index_edit(schema="urn:sevref:schema:index:1.1", build_host="ci-7", counts_added={"pages": 12})
    )
    same_index = signed_release(release, a, edit=index_edit(build_host="ci-7"))
    major_index = signed_release(release, a, edit=index_edit(schema="urn:sevref:schema:index:2"))
    newer_groups = signed_release(
        release, a, changed={group_path: groups("urn:sevref:schema:groups:2.1", notes="added by minor 1")}
    )
    bad_known = signed_release(release, a, changed={group_path: groups("urn:sevref:schema:groups:2.1", vmm="many")})
    return [
        make_case(
            "minor-index-added-members",
            "The index says index:1.1 and has members index:1 does not know (build_host, counts.pages): ignored.",
            "release-1",
            0,
            None,
            changes=put("minor-index-added-members", release, newer_index),
        ),
        make_case(
            "minor-groups-added-members",
            f"{group_path} says groups:2.1 and has members groups:2 does not know (generator, a group's notes): ignored.",
            "release-1",
            0,
            None,
            changes=put("minor-groups-added-members", release, newer_groups),
        ),
        make_case(
            "minor-groups-known-member-wrong",
            f"{group_path} says groups:2.1, and a member groups:2 knows (a group's vmm) is a value it does not allow: refused.",
            "release-1",
            3,
            "integrity",
            changes=put("minor-groups-known-member-wrong", release, bad_known),
        ),
        make_case(
            "same-minor-index-added-member",
            "The index says index:1 and has a member index:1 does not know (build_host): refused.",
            "release-1",
            3,
            "integrity",
            changes=put("same-minor-index-added-member", release, same_index),
        ),
        make_case(
            "major-index-2",
            "The index says index:2, a major this verifier does not read: refused.",
            "release-1",
            3,
            "integrity",
            changes=put("major-index-2", release, major_index),
        ),
    ]
