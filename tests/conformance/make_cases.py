"""Generate the conformance suite: base publications and cases.json (``make conformance``).

The suite is committed and frozen: a verifier (sevref or another) runs the
cases against the committed bytes. Regenerate it only when the publication
format changes; the keys under keys/ are reused, so signatures stay stable.
See README.md for the format.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from sevref.digest import LaunchMeasureInputs, sev_launch_measurement
from sevref.edge.keys import extend_chain, read_chain
from sevref.freshness import stamp
from sevref.keychain import Role
from sevref.pipeline import build
from sevref.sign import KeySigner
from sevref.values import parse_time
from sevref.verifier import read_release, snapshot
from tests.conformance import more_cases
from tests.conformance.variants import GENUINE_KEYS_3, HERE, IDENTITY, keys, make_case, state_after

INPUTS = HERE.parent / "golden" / "inputs"
STAMPED = "2026-05-31T12:00:00Z"
"""When the timestamped base's timestamp was issued; it is valid for 36 hours."""
ISSUED, EXPIRES = "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"
TIK = bytes(range(16))
MNONCE = bytes(range(16, 32))


def bases(scratch: Path) -> None:
    """Build base/: the publications the cases start from."""
    signer = keys()
    a, b, t = signer["A"], signer["B"], signer["T"]
    chains: dict[str, list[tuple[KeySigner, list[KeySigner], dict[str, str], Role]]] = {
        "a": [(a, [], {}, Role.RELEASE)],  # keys/1: A
        "rotated": [(a, [], {}, Role.RELEASE), (a, [b], {}, Role.RELEASE)],  # keys/2: A and B
        "timestamped": [(a, [], {}, Role.RELEASE), (a, [t], {}, Role.TIMESTAMP)],  # keys/2: A, and T for timestamps
    }
    for name, steps in chains.items():
        for step_signer, added, revoked, role in steps:
            extend_chain(scratch / name, IDENTITY["publisher"], step_signer, added, revoked, None, [role])
    plan = {
        # base: (manifest, signing key, key chain, the base it follows)
        "release-1": ("manifest.yaml", a, "a", None),
        "release-2": ("manifest-1.1.yaml", a, "a", "release-1"),
        "rotated": ("manifest.yaml", b, "rotated", None),
        "revoked": ("manifest.yaml", a, "rotated", None),
        "unsigned": ("manifest.yaml", None, None, None),
        "timestamped": ("manifest.yaml", a, "timestamped", None),
        # Release 1.1 built on another serial-3 index (rotated's): its link names a release-1 that is not release-1.
        "release-2-forked": ("manifest-1.1.yaml", a, "a", "rotated"),
    }
    shutil.rmtree(HERE / "base", ignore_errors=True)
    for name, (manifest, key, chain, previous) in plan.items():
        build(
            [HERE / manifest],
            HERE / "base" / name,
            cache=scratch / "cache",
            signer=key,
            keys=read_chain(scratch / chain) if chain else (),
            allow=[INPUTS],
            previous=None if previous is None else snapshot(read_release(str(HERE / "base" / previous))),
        )
    # Later B revokes A. Someone holding A's key still serves the release above,
    # but beside the publisher's current chain, which says so.
    extend_chain(scratch / "rotated", IDENTITY["publisher"], b, [], {a.keyid: "retired after a suspected leak"}, None)
    shutil.copy(scratch / "rotated" / "3.dsse.json", HERE / "base" / "revoked" / "keys" / "3.dsse.json")
    # The online key T vouches that release 1.0 is current, for 36 hours from STAMPED.
    stamp(HERE / "base" / "timestamped", t, timedelta(hours=36), parse_time(STAMPED))


def files(base: str) -> list[str]:
    root = HERE / "base" / base
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def integrity_breaker(path: str, action: str) -> str:
    """The check a verifier must name when ``path`` of release-1 is changed by ``action``."""
    if path == "index.dsse.json":
        # Replaced by the other release's envelope, the signature verifies but not over this index.json.
        return "integrity" if action == "replace" else "signature"
    if path.startswith("keys/"):
        return "keys"
    return "integrity"


def groups(base: str) -> Iterator[dict[str, Any]]:
    root = HERE / "base" / base
    for path in sorted((root / "groups").iterdir()):
        if path.suffix == ".json":
            yield from json.loads(path.read_bytes())["groups"]


def cases() -> list[dict[str, Any]]:
    """Every case, in a stable order."""
    out: list[dict[str, Any]] = []

    def case(ident: str, description: str, base: str, expect_exit: int, check: str | None, **more: Any) -> None:
        out.append(make_case(ident, description, base, expect_exit, check, **more))

    case("valid", "An intact publication signed by the pinned key.", "release-1", 0, None)
    after_1 = state_after("release-1")
    case(
        "valid-newer",
        "Release 2 after release 1 was seen (serial 4 > 3); its previous link names release 1's index.",
        "release-2",
        0,
        None,
        state=after_1,
        gap=False,
    )
    case(
        "history-forked",
        "Release 2 after release 1 was seen, its previous link naming another serial-3 index (rotated's).",
        "release-2-forked",
        3,
        "history",
        state=after_1,
    )
    case(
        "history-wrong-link",
        "Release 2 to a verifier that trusted another index under serial 3: the link does not name it.",
        "release-2",
        3,
        "history",
        state=more_cases.other_index(after_1, (HERE / "base" / "rotated" / "index.json").read_bytes()),
    )
    case(
        "history-gap",
        "Release 2 (serial 4, following 3) to a verifier that last trusted serial 2: a gap, allowed and reported.",
        "release-2",
        0,
        None,
        state=more_cases.earlier_serial(after_1, 2),
        gap=True,
    )
    case(
        "history-no-link",
        "Release 1.0 again under serial 3 follows nothing: to a verifier that last trusted serial 2, a gap reported.",
        "release-1",
        0,
        None,
        state=more_cases.earlier_serial(after_1, 2),
        gap=True,
    )
    case("valid-same-serial", "The same release seen again (serial 3 = 3).", "release-1", 0, None, state=after_1)
    case(
        "valid-two-pins",
        "Two pinned keys, one of them the publisher's.",
        "release-1",
        0,
        None,
        trusted_keys=["keys/C.pub", "keys/A.pub"],
    )
    case("valid-at-issue", "Checked at the issue time itself.", "release-1", 0, None, at=ISSUED)
    case("rotated-old-pin", "Signed by B; B joined the chain in keys/2, signed by the pinned A.", "rotated", 0, None)
    case(
        "rotated-new-pin",
        "Signed by B, with B pinned: the chain is entered at keys/2.",
        "rotated",
        0,
        None,
        trusted_keys=["keys/B.pub"],
    )
    case(
        "rollback",
        "Release 1 (serial 3) after serial 4 was seen.",
        "release-1",
        3,
        "rollback",
        state=state_after("release-2"),
    )
    case("expired", "Checked at the expiry time: the end is exclusive.", "release-1", 3, "expiry", at=EXPIRES)
    case(
        "not-yet-valid", "Checked a second before the issue time.", "release-1", 3, "expiry", at="2025-12-31T23:59:59Z"
    )
    for field in ("publisher", "product", "stream"):
        case(
            f"wrong-{field}", f"The verifier asks for another {field}.", "release-1", 3, "identity", **{field: "other"}
        )
    case("wrong-key", "The pinned key (C) never signed the chain.", "release-1", 3, "keys", trusted_keys=["keys/C.pub"])
    case(
        "rotated-unknown-pin",
        "A rotated chain, and a pin that is in no document.",
        "rotated",
        3,
        "keys",
        trusted_keys=["keys/C.pub"],
    )
    case("revoked-key", "Signed by A, which keys/3 (signed by B) revokes.", "revoked", 3, "signature")
    case(
        "withheld-revocation",
        "The revoked release served without keys/3, to a verifier that has seen keys/3.",
        "revoked",
        3,
        "rollback",
        changes=[{"path": "keys/3.dsse.json", "action": "delete"}],
        state=state_after("rotated", GENUINE_KEYS_3),
    )
    case(
        "revocation-unknown",
        "The same, to a verifier that has not seen keys/3: it cannot know.",
        "revoked",
        0,
        None,
        changes=[{"path": "keys/3.dsse.json", "action": "delete"}],
    )
    case("unsigned", "No index.dsse.json at all.", "unsigned", 3, "signature")
    release_2 = set(files("release-2"))
    case(
        "mixed-releases",
        "Release 2's index, envelope, signatures and statement over release 1's files.",
        "release-1",
        3,
        "integrity",
        changes=[
            {"path": p, "action": "replace", "from": "release-2"}
            for p in ("index.json", "index.dsse.json", "index.json.sig", "attestation.intoto.dsse.json")
        ],
    )

    # Evidence, on the intact release 1.
    snp = next(g for g in groups("release-1") if g["mode"] == "sev-snp")
    count, measurement = snp["entries"][-1]
    case(
        "snp-match",
        "An SEV-SNP MEASUREMENT of the publication.",
        "release-1",
        0,
        None,
        evidence={"snp_measurement": measurement},
        entries=[f"{snp['id']}-{count:04d}"],
    )
    case(
        "snp-unknown",
        "An SEV-SNP MEASUREMENT the publication does not have.",
        "release-1",
        1,
        None,
        evidence={"snp_measurement": "00" * 48},
        entries=[],
    )
    count, revoked = snp["entries"][0]
    case(
        "snp-revoked-entry",
        f"An SEV-SNP MEASUREMENT of an entry revoked alone ({count} vCPU; the other count stays active).",
        "release-1",
        1,
        None,
        evidence={"snp_measurement": revoked},
        entries=[],
    )
    es = next(g for g in groups("release-1") if g["mode"] == "sev-es")
    count, digest = es["entries"][0]
    inputs = LaunchMeasureInputs(api_major=1, api_minor=55, build=21, policy=0x5)
    blob = sev_launch_measurement(bytes.fromhex(digest), inputs, MNONCE, TIK) + MNONCE
    evidence = {
        "launch_measurement": base64.b64encode(blob).decode(),
        "tik": TIK.hex(),
        "api_major": 1,
        "api_minor": 55,
        "build": 21,
        "policy": "0x5",
    }
    case(
        "sev-es-launch-measurement",
        "An SEV-ES launch measurement, matched with the owner's TIK.",
        "release-1",
        0,
        None,
        evidence=evidence,
        entries=[f"{es['id']}-{count:04d}"],
    )
    other = {**evidence, "tik": bytes(16).hex()}
    case(
        "sev-es-wrong-tik",
        "The same measurement checked with another TIK.",
        "release-1",
        1,
        None,
        evidence=other,
        entries=[],
    )

    # Every file of release 1, changed each way.
    for path in files("release-1"):
        size = (HERE / "base" / "release-1" / path).stat().st_size
        slug = path.replace("/", "-")
        case(
            f"flip-{slug}",
            f"One bit of {path} flipped (offset {size // 2}).",
            "release-1",
            3,
            integrity_breaker(path, "flip"),
            changes=[{"path": path, "action": "flip", "offset": size // 2}],
        )
        case(
            f"truncate-{slug}",
            f"{path} without its last byte.",
            "release-1",
            3,
            integrity_breaker(path, "truncate"),
            changes=[{"path": path, "action": "truncate", "size": size - 1}],
        )
        case(
            f"delete-{slug}",
            f"{path} missing.",
            "release-1",
            3,
            integrity_breaker(path, "delete"),
            changes=[{"path": path, "action": "delete"}],
        )
        other_file = HERE / "base" / "release-2" / path
        if path in release_2 and other_file.read_bytes() != (HERE / "base" / "release-1" / path).read_bytes():
            case(
                f"replace-{slug}",
                f"{path} taken from release 2.",
                "release-1",
                3,
                integrity_breaker(path, "replace"),
                changes=[{"path": path, "action": "replace", "from": "release-2"}],
            )
    for more in (
        more_cases.fetching(),
        more_cases.chains(),
        more_cases.strict(),
        more_cases.freshness(),
        more_cases.versions(),
    ):
        out.extend(more)
    return out


def _write(document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False)
    (HERE / "cases.json").write_text(text + "\n", encoding="utf-8")


def add(names: list[str]) -> None:
    """Add (or make again) the cases of more_cases' named functions, over the committed bases.

    The bases are frozen: publications an earlier sevref wrote, which every later verifier must
    still read. New cases are made over them, so adding cases never builds the bases again.
    """
    document = json.loads((HERE / "cases.json").read_text(encoding="utf-8"))
    new = [case for name in names for case in getattr(more_cases, name)()]
    ids = {case["id"] for case in new}
    document["cases"] = [case for case in document["cases"] if case["id"] not in ids] + new
    _write(document)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="make the conformance suite (README.md)")
    parser.add_argument("--add", action="append", metavar="NAME", help="only add more_cases.NAME()'s cases")
    args = parser.parse_args(argv)
    if args.add:
        add(args.add)
        return
    shutil.rmtree(HERE / "files", ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        bases(Path(scratch))
    _write(
        {
            "schema": "urn:sevref:conformance:1",
            "description": "sevref verifier conformance cases; see README.md.",
            "cases": cases(),
        }
    )


if __name__ == "__main__":
    main()
