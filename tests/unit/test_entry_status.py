"""Lifecycle status per entry: lifecycle rules that name vCPU counts, the records that carry them, their checks.

A group record keeps one status for its entries and lists the entries with
another one as ``exceptions`` (so the common case, every entry active, stays
one status); its catalog row does the same without the reasons.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref.assemble import group_record
from sevref.binfmt.ovmf import parse_ovmf
from sevref.digest import Mode
from sevref.errors import LayoutError, ManifestError
from sevref.expand import Group, expand
from sevref.manifest.loader import parse_yaml
from sevref.manifest.reader import load_manifests
from sevref.records import (
    SCHEMAS,
    Basis,
    Catalog,
    EntryState,
    EntryStatus,
    FirmwareRecord,
    GroupRecord,
    KernelHashesRecord,
    Nvram,
    Release,
    Store,
)
from sevref.validate import check_document, check_group
from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden"
FIRMWARE = {"tiny": parse_ovmf((GOLDEN / "inputs" / "tiny.fd").read_bytes())}
BASE: dict[str, Any] = {
    "sevref": 1,
    "publication": {
        "publisher": {"id": "t", "name": "test", "contact": "t@example.org"},
        "product": "p",
        "stream": "s",
        "release": "1",
        "serial": 1,
        "issued": "2026-01-01T00:00:00Z",
        "valid_for_days": 30,
    },
    "firmware": [{"id": "tiny", "source": {"path": "inputs/tiny.fd", "sha256": "00" * 32}}],
    "host_stacks": [
        {"id": "q", "vmm": "qemu", "qemu": {"version": "9.1.0", "machine": "q35", "legacy_vm_type": "off"}},
    ],
    "matrices": [
        {
            "id": "m",
            "modes": ["sev", "sev-snp"],
            "firmware": ["tiny"],
            "host_stacks": ["q"],
            "cpus": ["EPYC-Milan"],
            "expected": {"sev": {"policy": "any"}, "sev-snp": {"policy": "any"}},
        }
    ],
}
BASE["host_stacks"][0]["host_linux"] = "6.12"
RELEASE = Release("t", "p", "s", "1", 1)
FIRMWARE_RECORD = FirmwareRecord(
    id="tiny",
    description="",
    sha256="00" * 32,
    sha384="00" * 48,
    size=16384,
    debian=None,
    file="tiny.fd",
    ap_reset_eip=None,
    reset_block=None,
    kernel_hashes=KernelHashesRecord(False, None, None),
    snp_metadata=None,
    snp_prefix=None,
    modes={},
    nvram=Nvram(Store.UNKNOWN, Basis.ASSUMED),
)


def groups(rules: Sequence[dict[str, Any]], vcpus: Sequence[object] = ("1-12",)) -> dict[Mode, Group]:
    data = copy.deepcopy(BASE)
    data["matrices"][0]["vcpus"] = list(vcpus)
    data["lifecycle"] = list(rules)
    manifest = load_manifests([parse_yaml(json.dumps(data).encode(), "m.json", GOLDEN)])
    return {g.mode: g for g in expand(manifest, FIRMWARE, found={}).groups}


def record(group: Group) -> GroupRecord:
    """The published record (fake digests: the status is what is checked), round-tripped through its JSON."""
    counts = group.vcpus or (None,)
    made = group_record(group, [bytes([n or 0]) * 48 for n in counts], FIRMWARE_RECORD)
    data = json.loads(json.dumps(made.to_dict()))
    check_group(data)
    return GroupRecord.from_dict(data)


def rule(status: str, reason: str, **match: Any) -> dict[str, Any]:
    return {"match": {"mode": "sev-snp", **match}, "status": status, "reason": reason}


def test_a_rule_naming_one_vcpu_count_marks_exactly_that_entry() -> None:
    found = groups([rule("revoked", "flaw", vcpus=[3])])
    snp = record(found[Mode.SEV_SNP])
    assert [
        (n, snp.state_at(n).status) for n, _ in snp.entries if snp.state_at(n).status is not EntryStatus.ACTIVE
    ] == [(3, EntryStatus.REVOKED)]
    assert snp.status is EntryStatus.ACTIVE and snp.to_dict()["exceptions"] == [
        {"vcpus": [[3, 3]], "status": "revoked", "status_reason": "flaw", "successor": None, "status_since": None}
    ]
    assert snp.status_counts() == {EntryStatus.ACTIVE: 11, EntryStatus.REVOKED: 1}
    row = snp.catalog_row()
    assert row.exceptions == ((EntryStatus.REVOKED, ((3, 3),)),) and row.status_at(3) is EntryStatus.REVOKED
    assert row.status_counts() == {EntryStatus.ACTIVE: 11, EntryStatus.REVOKED: 1}
    # The rule names sev-snp: SEV's entry is untouched.
    assert record(found[Mode.SEV]).status is EntryStatus.ACTIVE


def test_the_group_keeps_the_status_most_of_its_entries_have() -> None:
    # Revoking all but 12 makes "revoked" the group's status and 12 an active exception.
    snp = record(groups([rule("revoked", "old", vcpus=["1-11"])])[Mode.SEV_SNP])
    assert snp.state == EntryState(EntryStatus.REVOKED, "old") and snp.state_at(12) == EntryState(EntryStatus.ACTIVE)
    assert [e.to_dict() for e in snp.exceptions] == [
        {"vcpus": [[12, 12]], "status": "active", "status_reason": None, "successor": None, "status_since": None}
    ]
    # Of two rules, the first that matches an entry wins; the same status for another reason is another exception.
    snp = record(
        groups(
            [
                rule("deprecated", "a", vcpus=[1, 2, 5]),
                rule("deprecated", "b", vcpus=["1-6"]),
                rule("revoked", "c", vcpus=[12]),
            ]
        )[Mode.SEV_SNP]
    )
    assert snp.state == EntryState(EntryStatus.ACTIVE)
    assert [(e.vcpus, e.state) for e in snp.exceptions] == [
        (((1, 2), (5, 5)), EntryState(EntryStatus.DEPRECATED, "a")),
        (((3, 4), (6, 6)), EntryState(EntryStatus.DEPRECATED, "b")),
        (((12, 12),), EntryState(EntryStatus.REVOKED, "c")),
    ]
    assert snp.catalog_row().exceptions == (
        (EntryStatus.DEPRECATED, ((1, 6),)),
        (EntryStatus.REVOKED, ((12, 12),)),
    )


def test_a_rule_s_since_is_published_with_its_status() -> None:
    since = "2026-06-01T00:00:00Z"
    found = groups([{**rule("revoked", "flaw", vcpus=[3]), "since": since}, rule("revoked", "flaw", vcpus=[4])])
    snp = record(found[Mode.SEV_SNP])
    # The same status and reason at another time (or none) is another exception.
    assert [(e.vcpus, e.state) for e in snp.exceptions] == [
        (((3, 3),), EntryState(EntryStatus.REVOKED, "flaw", None, since)),
        (((4, 4),), EntryState(EntryStatus.REVOKED, "flaw")),
    ]
    assert [e.to_dict()["status_since"] for e in snp.exceptions] == [since, None]
    assert snp.state_at(3).describe() == f"revoked since {since}: flaw"
    assert snp.state_at(4).describe() == "revoked: flaw"
    whole = record(groups([{**rule("deprecated", "old"), "successor": "q", "since": since}])[Mode.SEV_SNP])
    assert (whole.status, whole.status_since, whole.exceptions) == (EntryStatus.DEPRECATED, since, ())
    assert whole.to_dict()["status_since"] == since


def test_a_record_written_before_status_since_still_reads() -> None:
    # Every build writes status_since; a publication built before it existed leaves it out, and
    # still checks and reads (as "not said"), so its verifiers need not wait for a rebuild.
    data = good()
    del data["status_since"]
    for exception in data["exceptions"]:
        del exception["status_since"]
    check_group(data)
    old = GroupRecord.from_dict(data)
    assert old.status_since is None and all(e.state.since is None for e in old.exceptions)
    assert old.state_at(3) == EntryState(EntryStatus.REVOKED, "flaw")


def test_sevs_one_entry_stands_for_every_vcpu_count() -> None:
    # As an exclude rule with vcpus leaves SEV out, a lifecycle rule with vcpus marks SEV's entry.
    found = groups([{"match": {"vcpus": [3]}, "status": "revoked", "reason": "r"}])
    assert record(found[Mode.SEV]).state == EntryState(EntryStatus.REVOKED, "r")
    assert record(found[Mode.SEV]).exceptions == ()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.none() | st.sets(st.integers(1, 12), min_size=1),
            st.sampled_from(["deprecated", "revoked"]),
            st.sampled_from(["x", "y"]),
        ),
        max_size=4,
    ),
    st.sets(st.integers(1, 12), min_size=1),
)
def test_every_entry_gets_the_first_rule_that_matches_it(
    rules: list[tuple[set[int] | None, str, str]], vcpus: set[int]
) -> None:
    made = [
        {"match": {"mode": "sev-snp", **({} if n is None else {"vcpus": sorted(n)})}, "status": s, "reason": r}
        for n, s, r in rules
    ]
    snp = record(groups(made, sorted(vcpus))[Mode.SEV_SNP])
    for count in sorted(vcpus):
        first = next((r for r in rules if r[0] is None or count in r[0]), None)
        expected = EntryState(EntryStatus.ACTIVE) if first is None else EntryState(EntryStatus(first[1]), first[2])
        assert snp.state_at(count) == expected
    states = [snp.state_at(n) for n in sorted(vcpus)]
    assert states.count(snp.state) == max(states.count(s) for s in states)
    row = snp.catalog_row()
    catalog = Catalog(RELEASE, "tiny", (row,)).to_dict()
    check_document("catalog", json.loads(json.dumps(catalog)), "catalog")
    assert all(row.status_at(n) is snp.state_at(n).status for n in vcpus)


def good() -> dict[str, Any]:
    return record(groups([rule("revoked", "flaw", vcpus=[3, 5])])[Mode.SEV_SNP]).to_dict()


BROKEN: dict[str, tuple[Any, str]] = {
    "a count the group does not have": ([[13, 13]], "vCPU count 13 has no entry in this configuration"),
    "runs out of order": ([[5, 5], [3, 3]], "is not after the run before it with a gap"),
    "runs that touch": ([[3, 4], [5, 5]], "is not after the run before it with a gap"),
    "a run that ends before it starts": ([[5, 3]], "ends before it starts"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_exceptions_name_counts_the_group_has_once_in_order(name: str) -> None:
    data = good()
    runs, message = BROKEN[name]
    data["exceptions"][0]["vcpus"] = runs
    with pytest.raises(LayoutError, match="/exceptions/0: ") as caught:
        check_group(data)
    assert message in str(caught.value)


def test_exceptions_differ_from_the_group_and_from_each_other() -> None:
    data = good()
    data["exceptions"][0].update(status="active", status_reason=None)
    with pytest.raises(LayoutError, match="status active is the configuration's own"):
        check_group(data)
    data = good()
    twin = {**data["exceptions"][0], "vcpus": [[5, 6]], "status": "deprecated"}
    data["exceptions"].append(twin)
    with pytest.raises(LayoutError, match="vCPU count 5 is also in /exceptions/0"):
        check_group(data)
    data = good()
    data["exceptions"] = [{**data["exceptions"][0], "vcpus": [[5, 5]]}, {**data["exceptions"][0], "vcpus": [[3, 3]]}]
    with pytest.raises(LayoutError, match="/exceptions: expected them in vCPU order"):
        check_group(data)
    sev = record(groups([])[Mode.SEV]).to_dict()
    sev["exceptions"] = [
        {"vcpus": [[1, 1]], "status": "revoked", "status_reason": None, "successor": None, "status_since": None}
    ]
    with pytest.raises(LayoutError, match="vCPU count 1 has no entry"):
        check_group(sev)


def test_catalog_exceptions_are_one_per_status_in_order() -> None:
    row = GroupRecord.from_dict(good()).catalog_row().to_dict()
    document = {"schema": SCHEMAS["catalog"], "release": RELEASE.to_dict(), "firmware": "tiny", "configurations": [row]}
    check_document("catalog", document, "c")
    row["exceptions"] = [{"status": "revoked", "vcpus": [[3, 3]]}, {"status": "deprecated", "vcpus": [[5, 5]]}]
    with pytest.raises(LayoutError, match="/configurations/0/exceptions: expected them in status order"):
        check_document("catalog", document, "c")
    row["exceptions"] = [{"status": "active", "vcpus": [[3, 3]]}]
    with pytest.raises(LayoutError, match="status active is the configuration's own"):
        check_document("catalog", document, "c")
    row["exceptions"] = [{"status": "revoked", "vcpus": [[20, 20]]}]
    with pytest.raises(LayoutError, match="vCPU count 20 has no entry"):
        check_document("catalog", document, "c")


def test_a_matrix_that_expands_to_nothing_is_an_error_naming_it() -> None:
    data = copy.deepcopy(BASE)
    data["matrices"][0]["vcpus"] = [1]
    data["matrices"].append(copy.deepcopy({**data["matrices"][0], "id": "empty", "exclude": [{"firmware": "tiny"}]}))
    text = yaml.safe_dump(data, sort_keys=False)
    manifest = load_manifests([parse_yaml(text.encode(), "m.yaml", GOLDEN)])
    line = text.splitlines().index("- id: empty") + 1
    with pytest.raises(ManifestError, match=rf"^m\.yaml:{line}:\d+: matrix empty: .* = 2 combinations, 0 entries: "):
        expand(manifest, FIRMWARE, found={})


def test_a_publication_that_expands_to_nothing_is_an_error_naming_it() -> None:
    # The reader refuses a publication without matrices, and every matrix lists an entry: this is the last guard.
    data = copy.deepcopy(BASE)
    data["matrices"][0]["vcpus"] = [1]
    manifest = load_manifests([parse_yaml(json.dumps(data).encode(), "m.json", GOLDEN)])
    empty = dataclasses.replace(manifest, matrices=())
    with pytest.raises(ManifestError, match=r"^m\.json:\d+:\d+: publication: its matrices expand to 0 entries"):
        expand(empty, FIRMWARE, found={})
