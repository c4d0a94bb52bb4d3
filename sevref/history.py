"""Release history: what changed from one release to the next.

``sevref diff OLD NEW`` and the ``changes.json`` of a release built with
``--previous`` both come from :func:`compare`, which takes what two releases
hold (a :class:`Snapshot` each) and returns the :class:`Changes` between them:

* configurations added and removed, and the entries (vCPU counts) added and
  removed within each, with the status a removed entry had;
* entries whose status changed (deprecated, revoked, or back to active), with
  the reason and successor of both states;
* firmware builds and host stacks added or removed;
* the publication's own fields (release, serial, validity, publisher, ...).

Entries are written as a group id with vCPU runs, so a release that adds a
million entries is a few thousand lines, not a million. This module does no
I/O and imports nothing of the build side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sevref.records import SCHEMAS, EntryState, EntryStatus, GroupRecord, Index, Release, vcpu_runs
from sevref.values import format_time

__all__ = [
    "CHANGES_SCHEMA",
    "Changes",
    "EntryChange",
    "FieldChange",
    "ReleaseLink",
    "Snapshot",
    "States",
    "compare",
    "link_problem",
    "states_of",
]

CHANGES_SCHEMA = SCHEMAS["changes"]
"""The ``schema`` value of a changes document (``schema/changes.schema.json``)."""

Runs = tuple[tuple[int, int], ...]
States = Mapping[int | None, EntryState]
"""One configuration's entries: vCPU count (None for SEV) to lifecycle state."""


def link_problem(index: Index, changes: Changes | None) -> str | None:
    """Whether a release's index and its ``changes.json`` name the same previous release.

    A release built with ``--previous`` names it twice: in its index
    (``previous``: serial and index sha256) and in ``changes.json``; a release
    without one has neither. ``sevref sign`` and ``sevref verify`` both hold a
    publication to this.

    Args:
        index: the release's index.
        changes: its ``changes.json``, or None when the index lists none.

    Returns:
        What disagrees, in words, or None.
    """
    named = None if index.previous is None else (index.previous.serial, index.previous.sha256)
    linked = None if changes is None else (changes.previous.release.serial, changes.previous.index_sha256)
    if named == linked:
        return None

    def said(link: tuple[int, str] | None) -> str:
        """One side's link, in words."""
        return "no previous release" if link is None else f"previous serial {link[0]} (index.json sha256 {link[1]})"

    if changes is None:
        return f"index.json names {said(named)}, but the publication lists no changes.json; expected one naming it too"
    return f"index.json names {said(named)}, but changes.json names {said(linked)}; expected the same link in both"


def states_of(group: GroupRecord) -> dict[int | None, EntryState]:
    """The state of every entry of a published group.

    Args:
        group: the group's record.

    Returns:
        vCPU count (None for SEV) to state.
    """
    return {count: group.state_at(count) for count, _ in group.entries}


def _runs_to_json(runs: Runs | None) -> list[list[int]] | None:
    return None if runs is None else [[first, last] for first, last in runs]


def _runs_from_json(value: Sequence[Sequence[int]] | None) -> Runs | None:
    return None if value is None else tuple((first, last) for first, last in value)


def _state_to_json(state: EntryState | None) -> dict[str, object] | None:
    if state is None:
        return None
    return {
        "status": str(state.status),
        "status_reason": state.reason,
        "successor": state.successor,
        "status_since": state.since,
    }


def _state_from_json(value: Mapping[str, Any] | None) -> EntryState | None:
    if value is None:
        return None
    return EntryState(
        EntryStatus(value["status"]), value["status_reason"], value["successor"], value.get("status_since")
    )


@dataclass(frozen=True)
class Snapshot:
    """What one release holds, as far as its history is concerned."""

    index: Index
    """Its index."""
    index_sha256: str
    """The SHA-256 of its ``index.json``: what a later release links to ("" for a release being built)."""
    description: str
    """Its description (``publication.json``)."""
    firmware: Mapping[str, str]
    """Firmware id to the image's SHA-256."""
    host_stacks: tuple[str, ...]
    """Host stack ids."""
    groups: Mapping[str, States]
    """Every configuration's entries and their states, by group id."""

    def fields(self) -> dict[str, object]:
        """The publication's own fields, as a change history compares them.

        Returns:
            Field name to value.
        """
        index = self.index
        return {
            "release": index.release.release,
            "serial": index.release.serial,
            "publisher_name": index.publisher_name,
            "contact": index.contact,
            "url": index.url,
            "description": self.description,
            "issued": format_time(index.issued),
            "expires": format_time(index.expires),
            "sevref": index.sevref,
        }


@dataclass(frozen=True)
class ReleaseLink:
    """A release named by another: its identity and the SHA-256 of its ``index.json``."""

    release: Release
    """Its identity."""
    index_sha256: str
    """The SHA-256 of its ``index.json``."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {"release": self.release.to_dict(), "index_sha256": self.index_sha256}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReleaseLink:
        """Read the JSON form.

        Args:
            data: a schema-valid mapping.

        Returns:
            The link.
        """
        return cls(Release.from_dict(data["release"]), data["index_sha256"])


@dataclass(frozen=True)
class FieldChange:
    """A field of the publication that differs."""

    field: str
    """Its name (``expires``, ``serial``, ...)."""
    old: object
    """Its old value."""
    new: object
    """Its new value."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class EntryChange:
    """Entries of one configuration that were added, removed, or changed status."""

    group: str
    """The configuration's group id."""
    vcpus: Runs | None
    """Their vCPU counts as runs; None for an SEV configuration's one entry."""
    old: EntryState | None
    """Their state before (None: added)."""
    new: EntryState | None
    """Their state now (None: removed)."""

    def where(self) -> str:
        """Name the entries for people.

        Returns:
            The group id, with its vCPU counts (``<group> vCPUs 1-3, 8``) where the mode measures them.
        """
        return self.group if self.vcpus is None else f"{self.group} vCPUs {_label(self.vcpus)}"

    @property
    def count(self) -> int:
        """How many entries."""
        return 1 if self.vcpus is None else sum(last - first + 1 for first, last in self.vcpus)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "group": self.group,
            "vcpus": _runs_to_json(self.vcpus),
            "old": _state_to_json(self.old),
            "new": _state_to_json(self.new),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EntryChange:
        """Read the JSON form.

        Args:
            data: a schema-valid mapping.

        Returns:
            The change.
        """
        return cls(
            data["group"], _runs_from_json(data["vcpus"]), _state_from_json(data["old"]), _state_from_json(data["new"])
        )


@dataclass(frozen=True)
class Changes:
    """What changed from one release to the next (``changes.json``; ``sevref diff --json``)."""

    release: Release
    """The newer release (every published file carries its release's identity)."""
    index_sha256: str | None
    """The SHA-256 of the newer release's ``index.json`` (None in a release's own ``changes.json``,
    which its index lists: the index cannot name its own hash)."""
    previous: ReleaseLink
    """The older release."""
    fields: tuple[FieldChange, ...]
    """Publication fields that differ."""
    firmware_added: tuple[str, ...]
    """Firmware ids new in the newer release (a rebuilt image under the same id counts as removed and added)."""
    firmware_removed: tuple[str, ...]
    """Firmware ids the newer release no longer has."""
    host_stacks_added: tuple[str, ...]
    """Host stack ids new in the newer release."""
    host_stacks_removed: tuple[str, ...]
    """Host stack ids the newer release no longer has."""
    configurations_added: tuple[str, ...]
    """Group ids new in the newer release."""
    configurations_removed: tuple[str, ...]
    """Group ids the newer release no longer has."""
    entries: tuple[EntryChange, ...]
    """Entries added, removed or changed in status, by group id and vCPU count."""

    @property
    def added(self) -> tuple[EntryChange, ...]:
        """Entries added."""
        return tuple(e for e in self.entries if e.old is None)

    @property
    def removed(self) -> tuple[EntryChange, ...]:
        """Entries removed."""
        return tuple(e for e in self.entries if e.new is None)

    @property
    def status_changed(self) -> tuple[EntryChange, ...]:
        """Entries whose status changed."""
        return tuple(e for e in self.entries if e.old is not None and e.new is not None)

    @property
    def silent_removals(self) -> tuple[EntryChange, ...]:
        """Entries removed while active: no lifecycle rule deprecated or revoked them first."""
        return tuple(e for e in self.removed if e.old is not None and e.old.status is EntryStatus.ACTIVE)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping (canonical JSON through :func:`sevref.serialize.canonical`).
        """
        return {
            "schema": CHANGES_SCHEMA,
            "release": self.release.to_dict(),
            "index_sha256": self.index_sha256,
            "previous": self.previous.to_dict(),
            "fields": [f.to_dict() for f in self.fields],
            "firmware": {"added": list(self.firmware_added), "removed": list(self.firmware_removed)},
            "host_stacks": {"added": list(self.host_stacks_added), "removed": list(self.host_stacks_removed)},
            "configurations": {
                "added": list(self.configurations_added),
                "removed": list(self.configurations_removed),
            },
            "entries": [e.to_dict() for e in self.entries],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Changes:
        """Read the JSON form.

        Args:
            data: a mapping valid against ``schema/changes.schema.json``.

        Returns:
            The changes.
        """
        return cls(
            release=Release.from_dict(data["release"]),
            index_sha256=data["index_sha256"],
            previous=ReleaseLink.from_dict(data["previous"]),
            fields=tuple(FieldChange(f["field"], f["old"], f["new"]) for f in data["fields"]),
            firmware_added=tuple(data["firmware"]["added"]),
            firmware_removed=tuple(data["firmware"]["removed"]),
            host_stacks_added=tuple(data["host_stacks"]["added"]),
            host_stacks_removed=tuple(data["host_stacks"]["removed"]),
            configurations_added=tuple(data["configurations"]["added"]),
            configurations_removed=tuple(data["configurations"]["removed"]),
            entries=tuple(EntryChange.from_dict(e) for e in data["entries"]),
        )

    def summary(self) -> list[str]:
        """The changes for people, one line each.

        Returns:
            The lines (a single line when nothing changed).
        """
        lines = [f"{f.field}: {f.old} -> {f.new}" for f in self.fields]
        for what, added, removed in (
            ("firmware", self.firmware_added, self.firmware_removed),
            ("host stacks", self.host_stacks_added, self.host_stacks_removed),
            ("configurations", self.configurations_added, self.configurations_removed),
        ):
            if added:
                lines.append(f"{what} added: {', '.join(added)}")
            if removed:
                lines.append(f"{what} removed: {', '.join(removed)}")
        for label, changes in (
            ("added", self.added),
            ("removed", self.removed),
            ("changed in status", self.status_changed),
        ):
            if changes:
                count = sum(e.count for e in changes)
                lines.append(f"entries {label}: {count} ({len(changes)} line{'s' if len(changes) != 1 else ''})")
                lines.extend(f"  {_describe(e)}" for e in changes)
        return lines or ["no changes"]


def _describe(change: EntryChange) -> str:
    where = change.where()
    if change.old is None:
        return f"+ {where}" + (
            "" if change.new is None or change.new.status is EntryStatus.ACTIVE else f" ({change.new.describe()})"
        )
    if change.new is None:
        return f"- {where} (was {change.old.describe()})"
    return f"~ {where}: {change.old.describe()} -> {change.new.describe()}"


def _label(runs: Runs) -> str:
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _grouped(group: str, items: Iterable[tuple[int | None, EntryState | None, EntryState | None]]) -> list[EntryChange]:
    """Entries of one group with the same old and new state, as runs of vCPU counts."""
    alike: dict[tuple[EntryState | None, EntryState | None], list[int | None]] = {}
    for count, old, new in items:
        alike.setdefault((old, new), []).append(count)
    changes = []
    for (old, new), counts in alike.items():
        numbered = sorted(c for c in counts if c is not None)
        changes.append(EntryChange(group, vcpu_runs(numbered) if numbered else None, old, new))
    return sorted(changes, key=lambda c: (c.vcpus or ((0, 0),))[0])


def compare(old: Snapshot, new: Snapshot) -> Changes:
    """What changed from ``old`` to ``new``.

    Args:
        old: the earlier release.
        new: the later release.

    Returns:
        The changes, every list sorted.
    """
    fields_old, fields_new = old.fields(), new.fields()
    fields = tuple(FieldChange(k, fields_old[k], fields_new[k]) for k in fields_old if fields_old[k] != fields_new[k])
    firmware_old = set(old.firmware.items())
    firmware_new = set(new.firmware.items())
    entries: list[EntryChange] = []
    for ident in sorted(set(old.groups) | set(new.groups)):
        before = old.groups.get(ident, {})
        after = new.groups.get(ident, {})
        moved = [
            (count, before.get(count), after.get(count))
            for count in sorted(set(before) | set(after), key=lambda c: -1 if c is None else c)
            if before.get(count) != after.get(count)
        ]
        entries.extend(_grouped(ident, moved))
    return Changes(
        release=new.index.release,
        index_sha256=new.index_sha256 or None,
        previous=ReleaseLink(old.index.release, old.index_sha256),
        fields=fields,
        firmware_added=tuple(sorted({i for i, _ in firmware_new - firmware_old})),
        firmware_removed=tuple(sorted({i for i, _ in firmware_old - firmware_new})),
        host_stacks_added=tuple(sorted(set(new.host_stacks) - set(old.host_stacks))),
        host_stacks_removed=tuple(sorted(set(old.host_stacks) - set(new.host_stacks))),
        configurations_added=tuple(sorted(set(new.groups) - set(old.groups))),
        configurations_removed=tuple(sorted(set(old.groups) - set(new.groups))),
        entries=tuple(entries),
    )
