"""sevref.match: entries, digest lookups, the TIK scan and the notes that make a match unacceptable.

The publication is the golden manifest with one more lifecycle rule (every GCE
configuration revoked), built and trusted once for this module
(tests/unit/publication.py). Its expected values (tests/golden/manifest.yaml):
SEV policy 0x1 and minimum API 0.17, SEV-ES policy 0x5, SEV-SNP policy 0x30000
and minimum API 1.51.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest

from sevref.binfmt.report import AttestationReport
from sevref.digest import LaunchMeasureInputs, Mode, sev_launch_measurement
from sevref.errors import Check, ConfigError, TrustError
from sevref.ids import parse_entry_id
from sevref.match import Match, all_groups, entry, firmware_record, lookup_digest, scan_launch_measurement, snp_notes
from sevref.records import EntryStatus, GroupRecord
from sevref.sign import Algorithm, KeySigner, generate_key
from sevref.trust import TrustedPublication, establish
from tests.unit.publication import REVOKED_GCE, anchor, build_publication, fetcher

SIGNER = KeySigner(generate_key(Algorithm.ED25519))
TIK = bytes(range(16))
NONCE = bytes(range(16, 32))
DEPRECATED = "deprecated: superseded by the KVM_SEV_INIT2 host stack; use qemu9.1-init2"
REVOKED = "revoked: the host leaks its guests' keys"


@pytest.fixture(scope="module")
def publication(tmp_path_factory: pytest.TempPathFactory) -> TrustedPublication:
    files = build_publication(tmp_path_factory.mktemp("match"), SIGNER, lifecycle=REVOKED_GCE)
    return establish(fetcher(files), anchor(SIGNER, check_all_files=False))


@pytest.fixture(scope="module")
def groups(publication: TrustedPublication) -> list[GroupRecord]:
    return list(all_groups(publication))


@pytest.fixture(scope="module")
def candidates(publication: TrustedPublication) -> list[tuple[str, str, str]]:
    return [(ident, mode, digest) for ident, mode, digest in publication.read("firmware/tiny.json")["candidates"]]


def pick(groups: list[GroupRecord], mode: Mode, status: EntryStatus = EntryStatus.ACTIVE) -> GroupRecord:
    return next(g for g in groups if g.mode is mode and g.status is status and g.host_stack != "qemu7.2.1")


def test_all_groups_and_the_firmware_record(publication: TrustedPublication, groups: list[GroupRecord]) -> None:
    assert len(groups) == publication.index.counts.groups == 35
    assert sum(len(g.entries) for g in groups) == publication.index.counts.entries
    assert len({g.id for g in groups}) == len(groups)
    assert firmware_record(publication, "tiny").id == "tiny"


# --------------------------------------------------------------------------- entries


def test_every_entry_loads_with_its_digest(publication: TrustedPublication, groups: list[GroupRecord]) -> None:
    for group in groups:
        for (count, digest), ident in zip(group.entries, group.entry_ids(), strict=True):
            match = entry(publication, ident)
            assert (match.entry_id, match.vcpus, match.digest, match.group) == (ident, count, digest, group)


def test_lifecycle_notes(publication: TrustedPublication, groups: list[GroupRecord]) -> None:
    statuses = Counter(g.status for g in groups)
    assert statuses[EntryStatus.DEPRECATED] > 0 and statuses[EntryStatus.REVOKED] > 0
    for group in groups:
        match = entry(publication, group.entry_ids()[0])
        expected = {
            EntryStatus.ACTIVE: (),
            EntryStatus.DEPRECATED: ((DEPRECATED, False),),
            EntryStatus.REVOKED: ((REVOKED, True),),
        }[group.status]
        assert match.notes == expected, group.id
        assert match.acceptable is (group.status is not EntryStatus.REVOKED)
        assert (group.host_stack == "gce") is (group.status is EntryStatus.REVOKED)


def test_entries_that_do_not_exist(publication: TrustedPublication, groups: list[GroupRecord]) -> None:
    group = pick(groups, Mode.SEV_ES)
    layout = publication.index.layout
    with pytest.raises(TrustError) as raised:
        entry(publication, f"{group.id}-0099")
    assert (raised.value.check, str(raised.value)) == (
        Check.INTEGRITY,
        f"not trusted: integrity: entry {group.id}-0099: group {group.id} has no entry for 99 vCPUs",
    )
    sibling = layout.group_shard(group.id) + "f" * (20 - layout.groups_shard_hex)
    assert sibling not in {g.id for g in groups}
    with pytest.raises(TrustError) as raised:
        entry(publication, sibling)
    shard = f"groups/{layout.group_shard(group.id)}.json"
    assert str(raised.value) == f"not trusted: integrity: entry group {sibling} is not in {shard}"
    # A publication whose index lists no file for one shard (the golden one lists all 16).
    unlisted = "0" * 20
    shard_file = f"groups/{layout.group_shard(unlisted)}.json"
    without = dataclasses.replace(publication, files={k: v for k, v in publication.files.items() if k != shard_file})
    with pytest.raises(TrustError) as raised:
        entry(without, unlisted)
    assert str(raised.value) == (
        f"not trusted: integrity: entry group {unlisted} is in no listed file "
        f"(groups/{layout.group_shard(unlisted)}.json is not listed)"
    )
    with pytest.raises(ConfigError):
        entry(publication, group.id.upper())


# --------------------------------------------------------------------------- lookups by digest


def test_lookup_finds_every_entry_with_a_digest(publication: TrustedPublication, groups: list[GroupRecord]) -> None:
    by_digest: dict[str, set[str]] = {}
    for group in groups:
        for (_, digest), ident in zip(group.entries, group.entry_ids(), strict=True):
            by_digest.setdefault(digest, set()).add(ident)
    for digest, idents in by_digest.items():
        assert {m.entry_id for m in lookup_digest(publication, digest)} == idents
    assert lookup_digest(publication, "0" * 96) == []


# --------------------------------------------------------------------------- the TIK scan


def inputs(policy: int, api: tuple[int, int] = (1, 55)) -> LaunchMeasureInputs:
    return LaunchMeasureInputs(api_major=api[0], api_minor=api[1], build=21, policy=policy)


def test_the_scan_finds_the_launch_with_the_owners_tik(
    publication: TrustedPublication, candidates: list[tuple[str, str, str]]
) -> None:
    ident, _, digest = next(c for c in candidates if c[1] == "sev-es")
    measurement = sev_launch_measurement(bytes.fromhex(digest), inputs(0x5), NONCE, TIK)
    matches, tried = scan_launch_measurement(publication, measurement, NONCE, inputs(0x5), TIK)
    assert tried == len(candidates)
    # Configurations whose GCTX.LD is the same (other labels, other host stacks) all match.
    assert {m.entry_id for m in matches} == {c[0] for c in candidates if c[2] == digest}
    assert ident in {m.entry_id for m in matches}
    assert all(m.digest == digest for m in matches)
    found = next(m for m in matches if m.entry_id == ident)
    assert found.notes == entry(publication, ident).notes  # nothing about policy or API: they fit


def test_the_scan_with_another_tik_finds_nothing(
    publication: TrustedPublication, candidates: list[tuple[str, str, str]]
) -> None:
    _, _, digest = candidates[0]
    measurement = sev_launch_measurement(bytes.fromhex(digest), inputs(0x1), NONCE, TIK)
    assert scan_launch_measurement(publication, measurement, NONCE, inputs(0x1), bytes(16)) == ([], len(candidates))
    other_nonce = bytes(16)
    assert scan_launch_measurement(publication, measurement, other_nonce, inputs(0x1), TIK)[0] == []


def test_the_scan_narrowed_to_a_vcpu_count_or_firmware(
    publication: TrustedPublication, candidates: list[tuple[str, str, str]]
) -> None:
    measurement = bytes(32)
    two = sum(1 for ident, _, _ in candidates if parse_entry_id(ident)[1] == 2)
    assert scan_launch_measurement(publication, measurement, NONCE, inputs(0x5), TIK, vcpus=2) == ([], two)
    assert scan_launch_measurement(publication, measurement, NONCE, inputs(0x5), TIK, firmware=["nope"]) == ([], 0)
    assert scan_launch_measurement(publication, measurement, NONCE, inputs(0x5), TIK, firmware=["tiny"])[1] == len(
        candidates
    )


def test_policy_and_api_notes_block_a_match(
    publication: TrustedPublication, candidates: list[tuple[str, str, str]]
) -> None:
    ident, _, digest = next(c for c in candidates if c[1] == "sev" and entry(publication, c[0]).acceptable)
    guest = inputs(0x3, api=(0, 16))  # SEV expects policy 0x1 and API 0.17 or later
    measurement = sev_launch_measurement(bytes.fromhex(digest), guest, NONCE, TIK)
    matches, _ = scan_launch_measurement(publication, measurement, NONCE, guest, TIK)
    found = next(m for m in matches if m.entry_id == ident)
    assert found.notes == (
        ("policy 0x3 differs from the expected 0x1", True),
        ("platform API 0.16 is below the minimum 0.17", True),
    )
    assert not found.acceptable


# --------------------------------------------------------------------------- SEV-SNP reports


def report(policy: int, api: tuple[int, int]) -> AttestationReport:
    return AttestationReport.build(version=2, policy=policy, current_major=api[0], current_minor=api[1])


SNP_NOTES: dict[str, tuple[int, tuple[int, int], tuple[tuple[str, bool], ...]]] = {
    "as expected": (0x30000, (1, 51), ()),
    "a newer platform": (0x30000, (1, 55), ()),
    "an older platform": (0x30000, (1, 50), (("platform API 1.50 is below the minimum 1.51", True),)),
    "another policy": (0x31000, (1, 51), (("policy 0x31000 differs from the expected 0x30000", True),)),
}


@pytest.mark.parametrize("name", SNP_NOTES)
def test_snp_notes(publication: TrustedPublication, groups: list[GroupRecord], name: str) -> None:
    policy, api, notes = SNP_NOTES[name]
    group = pick(groups, Mode.SEV_SNP)
    matches = lookup_digest(publication, group.entries[0][1])
    [noted] = [m for m in snp_notes(matches, report(policy, api)) if m.group.id == group.id]
    assert noted.notes == notes
    assert noted.acceptable == (notes == ())


def test_a_revoked_snp_entry_stays_blocked(publication: TrustedPublication, groups: list[GroupRecord]) -> None:
    group = next(g for g in groups if g.status is EntryStatus.REVOKED)
    [noted] = [m for m in snp_notes(lookup_digest(publication, group.entries[0][1]), report(0x30000, (1, 51)))]
    # That group's publisher expects no particular policy: said, not blocking (the revocation blocks).
    policy = ("the publisher expects no particular policy (policy: any); the guest's is 0x30000", False)
    assert noted.notes == ((REVOKED, True), policy) and not noted.acceptable


def test_the_printed_form_of_a_match(publication: TrustedPublication, groups: list[GroupRecord]) -> None:
    group = next(g for g in groups if g.status is EntryStatus.DEPRECATED)
    match: Match = entry(publication, group.entry_ids()[0]).with_notes([("another note", False)])
    printed = match.to_dict()
    configuration = {k: v for k, v in group.to_dict().items() if k != "entries"}
    nvram = group.firmware_nvram
    state = group.state_at(group.entries[0][0])
    assert printed == {
        "entry": group.entry_ids()[0],
        "vcpus": group.entries[0][0],
        "digest": group.entries[0][1],
        "status": "deprecated",
        "status_reason": state.reason,
        "successor": state.successor,
        "status_since": state.since,
        "acceptable": True,
        "notes": [{"note": DEPRECATED, "blocking": False}, {"note": "another note", "blocking": False}],
        "firmware_nvram": {**nvram.to_dict(), "explanation": nvram.explain()},
        "configuration": configuration,
    }
    assert json.loads(json.dumps(printed)) == printed
