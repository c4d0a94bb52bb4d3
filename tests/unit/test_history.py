"""sevref.history: what changed from one release to the next, both ways and valid against its schema."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref.errors import LayoutError
from sevref.history import CHANGES_SCHEMA, Changes, EntryChange, Snapshot, compare, link_problem
from sevref.records import Counts, EntryState, EntryStatus, Index, Layout, Previous, Release
from sevref.serialize import canonical
from sevref.validate import check_document

ACTIVE = EntryState(EntryStatus.ACTIVE)
REVOKED = EntryState(EntryStatus.REVOKED, "a flaw in 2-vCPU launches", "qemu9.1-init2")
DEPRECATED = EntryState(EntryStatus.DEPRECATED, "superseded", None)
G1, G2, G3, SEV = "1" * 20, "2" * 20, "3" * 20, "5" * 20


def snapshot(serial: int, groups: dict[str, dict[int | None, EntryState]], **fields: Any) -> Snapshot:
    index = Index(
        release=Release("acme", "guest", "stable", f"1.{serial}", serial),
        publisher_name=fields.get("publisher_name", "Acme"),
        contact="security@example.org",
        url=None,
        issued=datetime(2026, 1, serial, tzinfo=UTC),
        expires=datetime(2026, 7, 1, tzinfo=UTC),
        counts=Counts(0, 0, 0),
        layout=Layout(1, 1),
        files=(),
    )
    return Snapshot(
        index=index,
        index_sha256=f"{serial:064x}",
        description=fields.get("description", "test"),
        firmware=fields.get("firmware", {"ovmf": "aa" * 32}),
        host_stacks=fields.get("host_stacks", ("qemu9.1",)),
        groups=groups,
    )


OLD = snapshot(
    1,
    {G1: {1: ACTIVE, 2: ACTIVE, 3: ACTIVE}, G2: {1: DEPRECATED, 2: ACTIVE}, SEV: {None: ACTIVE}},
    firmware={"ovmf": "aa" * 32, "old": "cc" * 32},
)
NEW = snapshot(
    2,
    {G1: {1: ACTIVE, 2: REVOKED, 3: ACTIVE, 4: ACTIVE, 5: ACTIVE, 8: ACTIVE}, G2: {2: ACTIVE}, G3: {1: ACTIVE}},
    firmware={"ovmf": "bb" * 32, "new": "dd" * 32},
    host_stacks=("qemu10.1", "qemu9.1"),
    description="now with more",
)


def test_compare_names_every_kind_of_change() -> None:
    changes = compare(OLD, NEW)
    assert changes.release == NEW.index.release and changes.index_sha256 == f"{2:064x}"
    assert (changes.previous.release, changes.previous.index_sha256) == (OLD.index.release, f"{1:064x}")
    assert [(f.field, f.old, f.new) for f in changes.fields] == [
        ("release", "1.1", "1.2"),
        ("serial", 1, 2),
        ("description", "test", "now with more"),
        ("issued", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
    ]
    # A rebuilt image under the same id is both removed and added.
    assert changes.firmware_added == ("new", "ovmf") and changes.firmware_removed == ("old", "ovmf")
    assert changes.host_stacks_added == ("qemu10.1",) and changes.host_stacks_removed == ()
    assert changes.configurations_added == (G3,) and changes.configurations_removed == (SEV,)
    assert changes.entries == (
        EntryChange(G1, ((2, 2),), ACTIVE, REVOKED),
        EntryChange(G1, ((4, 5), (8, 8)), None, ACTIVE),
        EntryChange(G2, ((1, 1),), DEPRECATED, None),
        EntryChange(G3, ((1, 1),), None, ACTIVE),
        EntryChange(SEV, None, ACTIVE, None),
    )
    assert [c.count for c in changes.added] == [3, 1]
    assert changes.status_changed == (EntryChange(G1, ((2, 2),), ACTIVE, REVOKED),)
    # The deprecated entry of G2 was announced; the SEV entry was active: only it is a silent removal.
    assert changes.silent_removals == (EntryChange(SEV, None, ACTIVE, None),)


def test_the_same_release_has_no_changes() -> None:
    changes = compare(OLD, OLD)
    assert (changes.fields, changes.entries, changes.firmware_added, changes.configurations_removed) == ((), (), (), ())
    assert changes.summary() == ["no changes"]


def test_summary_says_each_change_in_a_line() -> None:
    lines = compare(OLD, NEW).summary()
    assert "firmware added: new, ovmf" in lines and "host stacks added: qemu10.1" in lines
    assert "entries added: 4 (2 lines)" in lines
    assert f"  + {G1} vCPUs 4-5, 8" in lines
    assert f"  - {SEV} (was active)" in lines
    assert f"  - {G2} vCPUs 1 (was deprecated: superseded)" in lines
    assert f"  ~ {G1} vCPUs 2: active -> revoked: a flaw in 2-vCPU launches; use qemu9.1-init2" in lines
    assert "entries changed in status: 1 (1 line)" in lines


def test_the_document_is_valid_and_reads_back() -> None:
    changes = compare(OLD, NEW)
    data = changes.to_dict()
    assert data["schema"] == CHANGES_SCHEMA == "urn:sevref:schema:changes:1"
    check_document("changes", data, "changes.json")
    again = json.loads(canonical(data))
    assert Changes.from_dict(again) == changes
    built = Changes.from_dict({**again, "index_sha256": None})  # a release's own changes.json
    check_document("changes", built.to_dict(), "changes.json")


def test_an_index_and_its_changes_name_one_previous_release() -> None:
    changes = compare(OLD, NEW)
    linked = replace(NEW.index, previous=Previous(1, f"{1:064x}"))
    assert link_problem(linked, changes) is None
    assert link_problem(NEW.index, None) is None  # a release that follows none names none
    one = f"previous serial 1 (index.json sha256 {1:064x})"
    assert link_problem(linked, None) == (
        f"index.json names {one}, but the publication lists no changes.json; expected one naming it too"
    )
    assert link_problem(NEW.index, changes) == (
        f"index.json names no previous release, but changes.json names {one}; expected the same link in both"
    )
    other = replace(NEW.index, previous=Previous(1, "ab" * 32))
    assert link_problem(other, changes) == (
        f"index.json names previous serial 1 (index.json sha256 {'ab' * 32}), but changes.json names {one}; "
        "expected the same link in both"
    )


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d["entries"][0].update(vcpus=[[0, 1]]), "/entries/0/vcpus"),
        (lambda d: d["entries"][0]["new"].update(status="gone"), "/entries/0/new"),
        (lambda d: d["fields"].append({"field": "colour", "old": 1, "new": 2}), "/fields/4/field"),
        (lambda d: d.update(extra=1), "/"),
        (lambda d: d["previous"].update(index_sha256="ABC"), "/previous/index_sha256"),
    ],
)
def test_the_schema_refuses_a_broken_document(edit: Any, where: str) -> None:
    data = json.loads(canonical(compare(OLD, NEW).to_dict()))
    edit(data)
    with pytest.raises(LayoutError) as raised:
        check_document("changes", data, "changes.json")
    assert str(raised.value).startswith(f"changes.json: {where}")


STATES = st.sampled_from([ACTIVE, REVOKED, DEPRECATED])
GROUPS = st.dictionaries(
    st.sampled_from([G1, G2, G3]), st.dictionaries(st.integers(1, 12), STATES, min_size=1, max_size=8), max_size=3
)


@settings(max_examples=60, deadline=None)
@given(GROUPS, GROUPS)
def test_every_entry_change_is_accounted_for(before: Any, after: Any) -> None:
    changes = compare(snapshot(1, before), snapshot(2, after))
    seen: dict[tuple[str, int | None], tuple[EntryState | None, EntryState | None]] = {}
    for change in changes.entries:
        for first, last in change.vcpus or ():
            for count in range(first, last + 1):
                assert (change.group, count) not in seen
                seen[(change.group, count)] = (change.old, change.new)
    expected = {
        (group, count): (before.get(group, {}).get(count), after.get(group, {}).get(count))
        for group in set(before) | set(after)
        for count in set(before.get(group, {})) | set(after.get(group, {}))
        if before.get(group, {}).get(count) != after.get(group, {}).get(count)
    }
    assert seen == expected
    assert canonical(changes.to_dict()) == canonical(compare(snapshot(1, before), snapshot(2, after)).to_dict())
