"""Configurations and their digests (``groups/<hh>.json``) and the catalogs that list them (``catalog/<id>.json``)."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sevref.digest import Mode
from sevref.ids import entry_id
from sevref.records._common import SCHEMAS, hex_or_none, int_or_none
from sevref.records.firmware import Nvram
from sevref.records.index import Release

__all__ = ["Catalog", "CatalogRow", "EntryState", "EntryStatus", "GroupRecord", "StatusException", "vcpu_runs"]


class EntryStatus(enum.StrEnum):
    """Where a published entry is in its life."""

    ACTIVE = "active"
    """Current: verifiers accept it."""
    DEPRECATED = "deprecated"
    """Still accepted, with a note: move to the successor."""
    REVOKED = "revoked"
    """Refused: a flaw was found."""


_STATUS_ORDER = {status: n for n, status in enumerate(EntryStatus)}


@dataclass(frozen=True)
class EntryState:
    """An entry's place in its life: its status, and why."""

    status: EntryStatus
    """Active, deprecated or revoked."""
    reason: str | None = None
    """Why deprecated or revoked."""
    successor: str | None = None
    """What to use instead."""
    since: str | None = None
    """When the status took effect (RFC 3339, UTC), as the publisher says; None: not said."""

    def describe(self) -> str:
        """Say it in one line.

        Returns:
            E.g. ``revoked since 2026-06-01T00:00:00Z: a flaw in 2-vCPU launches; use qemu9.1-init2``, or ``active``.
        """
        if self.status is EntryStatus.ACTIVE:
            return str(self.status)
        since = f" since {self.since}" if self.since else ""
        text = f"{self.status}{since}: {self.reason or 'no reason given'}"
        return text + (f"; use {self.successor}" if self.successor else "")


@dataclass(frozen=True)
class StatusException:
    """Entries of a group whose status is not the group's (``exceptions`` of a group record)."""

    vcpus: tuple[tuple[int, int], ...]
    """Their vCPU counts, as inclusive runs."""
    state: EntryState
    """Their status."""

    def covers(self, count: int | None) -> bool:
        """Tell whether an entry's vCPU count is among these.

        Args:
            count: the entry's count (None for SEV, which is never an exception).

        Returns:
            True when it is.
        """
        return count is not None and any(first <= count <= last for first, last in self.vcpus)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "vcpus": [[first, last] for first, last in self.vcpus],
            "status": str(self.state.status),
            "status_reason": self.state.reason,
            "successor": self.state.successor,
            "status_since": self.state.since,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StatusException:
        """Read the JSON form.

        Args:
            data: a schema-valid mapping.

        Returns:
            The exception.
        """
        state = EntryState(
            EntryStatus(data["status"]), data["status_reason"], data["successor"], data.get("status_since")
        )
        return cls(tuple((first, last) for first, last in data["vcpus"]), state)


def vcpu_runs(counts: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Sorted vCPU counts as inclusive ``(first, last)`` runs of consecutive counts.

    Args:
        counts: sorted, distinct counts.

    Returns:
        E.g. ``((1, 4), (8, 8))`` for 1, 2, 3, 4, 8.
    """
    runs: list[list[int]] = []
    for count in counts:
        if runs and runs[-1][1] == count - 1:
            runs[-1][1] = count
        else:
            runs.append([count, count])
    return tuple((first, last) for first, last in runs)


@dataclass(frozen=True)
class GroupRecord:
    """A configuration without its vCPU count, with one digest per count (``groups/<hh>.json``)."""

    id: str
    """The group id."""
    mode: Mode
    """The launch mode."""
    digest_algorithm: str
    """sha256 (GCTX.LD) or sha384 (the SEV-SNP MEASUREMENT)."""
    digest_quantity: str
    """GCTX.LD or MEASUREMENT."""
    firmware: str
    """Firmware id."""
    firmware_sha256: str
    """The firmware image's SHA-256."""
    firmware_package: str | None
    """``name version`` of the Debian package it came from, if any."""
    firmware_nvram: Nvram
    """Where the firmware keeps its UEFI variables (its firmware record's ``nvram``), so a match says it."""
    host_stack: str
    """Host stack id."""
    vmm: str
    """qemu, ec2 or gce."""
    qemu_version: str | None
    """QEMU's version."""
    machine: str | None
    """QEMU machine type."""
    legacy_vm_type: str | None
    """QEMU's legacy-vm-type."""
    host_linux: str | None
    """Host kernel version."""
    vmsa_profile: str | None
    """legacy, init2 or init2-ap-fpu-zero (sevref.binfmt.vmsa.VmsaProfile)."""
    cpu: str | None
    """QEMU CPU model name."""
    cpu_signature: int | None
    """CPUID signature in the VMSA's RDX."""
    sev_features: int | None
    """SEV-ES VMSA SEV_FEATURES."""
    guest_features: int | None
    """SEV-SNP VMSA SEV_FEATURES."""
    boot: str | None
    """Boot id (measured direct boot), or None."""
    kernel_sha256: str | None
    """The kernel's SHA-256."""
    initrd_sha256: str | None
    """The initrd's SHA-256."""
    cmdline: str | None
    """The kernel command line."""
    cmdline_sha256: str | None
    """SHA-256 of the command line with its NUL, as the hash table holds it."""
    policy: int | None
    """The guest policy verifiers should expect."""
    min_api: tuple[int, int] | None
    """The minimum SEV firmware API version."""
    status: EntryStatus
    """Lifecycle status."""
    status_reason: str | None
    """Why deprecated or revoked."""
    successor: str | None
    """What to use instead."""
    status_since: str | None
    """When the status took effect (RFC 3339, UTC), if the publisher says."""
    matrix: str
    """The matrix that lists it."""
    calculator: str
    """The sevref version that computed the digests."""
    entries: tuple[tuple[int | None, str], ...]
    """(vCPU count or None for SEV, digest), by vCPU count."""
    exceptions: tuple[StatusException, ...] = ()
    """Entries whose status is not :attr:`status` (by first vCPU count); usually none."""

    @property
    def state(self) -> EntryState:
        """The group's status: that of every entry no exception names."""
        return EntryState(self.status, self.status_reason, self.successor, self.status_since)

    def state_at(self, vcpus: int | None) -> EntryState:
        """The status of one entry.

        Args:
            vcpus: the entry's vCPU count (None for SEV).

        Returns:
            Its exception's status, else the group's.
        """
        if not self.exceptions:  # most groups: every entry has the group's status
            return self.state
        return next((e.state for e in self.exceptions if e.covers(vcpus)), self.state)

    def status_counts(self) -> dict[EntryStatus, int]:
        """How many entries have each status.

        Returns:
            Status -> entries, for the statuses some entry has.
        """
        counts: dict[EntryStatus, int] = {}
        for count, _ in self.entries:
            status = self.state_at(count).status
            counts[status] = counts.get(status, 0) + 1
        return counts

    @property
    def features(self) -> int | None:
        """SEV_FEATURES of the VMSA: ``sev_features`` (SEV-ES) or ``guest_features`` (SEV-SNP)."""
        return self.sev_features if self.sev_features is not None else self.guest_features

    def entry_ids(self) -> list[str]:
        """The ids of the entries, in vCPU order.

        Returns:
            One id per entry.
        """
        return [entry_id(self.id, count) for count, _ in self.entries]

    def digest_for(self, vcpus: int | None) -> str | None:
        """The digest at a vCPU count.

        Args:
            vcpus: the count (None for SEV).

        Returns:
            The digest, or None when the group has no entry for it.
        """
        return next((digest for count, digest in self.entries if count == vcpus), None)

    def catalog_row(self) -> CatalogRow:
        """The group's line in its firmware's catalog: the configuration, without digests.

        Returns:
            The row.
        """
        counts = [count for count, _ in self.entries if count is not None]
        others: dict[EntryStatus, list[int]] = {}
        for count in counts if self.exceptions else ():  # without exceptions every entry has the group's status
            status = self.state_at(count).status
            if status is not self.status:
                others.setdefault(status, []).append(count)
        return CatalogRow(
            id=self.id,
            mode=self.mode,
            host_stack=self.host_stack,
            vmsa_profile=self.vmsa_profile,
            cpu=self.cpu,
            cpu_signature=self.cpu_signature,
            features=self.features,
            boot=self.boot,
            cmdline=self.cmdline,
            vcpus=vcpu_runs(counts) if counts else None,
            status=self.status,
            exceptions=tuple(
                (status, vcpu_runs(others[status])) for status in sorted(others, key=_STATUS_ORDER.__getitem__)
            ),
        )

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "id": self.id,
            "mode": str(self.mode),
            "digest_algorithm": self.digest_algorithm,
            "digest_quantity": self.digest_quantity,
            "firmware": self.firmware,
            "firmware_sha256": self.firmware_sha256,
            "firmware_package": self.firmware_package,
            "firmware_nvram": self.firmware_nvram.to_dict(),
            "host_stack": self.host_stack,
            "vmm": self.vmm,
            "qemu_version": self.qemu_version,
            "machine": self.machine,
            "legacy_vm_type": self.legacy_vm_type,
            "host_linux": self.host_linux,
            "vmsa_profile": self.vmsa_profile,
            "cpu": self.cpu,
            "cpu_signature": hex_or_none(self.cpu_signature),
            "sev_features": hex_or_none(self.sev_features),
            "guest_features": hex_or_none(self.guest_features),
            "boot": self.boot,
            "kernel_sha256": self.kernel_sha256,
            "initrd_sha256": self.initrd_sha256,
            "cmdline": self.cmdline,
            "cmdline_sha256": self.cmdline_sha256,
            "policy": hex_or_none(self.policy),
            "min_api": None if self.min_api is None else "{}.{}".format(*self.min_api),
            "status": str(self.status),
            "status_reason": self.status_reason,
            "successor": self.successor,
            "status_since": self.status_since,
            "matrix": self.matrix,
            "calculator": self.calculator,
            "entries": [[count, digest] for count, digest in self.entries],
            "exceptions": [exception.to_dict() for exception in self.exceptions],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupRecord:
        """Read the JSON form.

        Args:
            data: a mapping valid against the group schema.

        Returns:
            The record.
        """
        min_api = data["min_api"]
        return cls(
            id=data["id"],
            mode=Mode(data["mode"]),
            digest_algorithm=data["digest_algorithm"],
            digest_quantity=data["digest_quantity"],
            firmware=data["firmware"],
            firmware_sha256=data["firmware_sha256"],
            firmware_package=data["firmware_package"],
            firmware_nvram=Nvram.from_dict(data["firmware_nvram"]),
            host_stack=data["host_stack"],
            vmm=data["vmm"],
            qemu_version=data["qemu_version"],
            machine=data["machine"],
            legacy_vm_type=data["legacy_vm_type"],
            host_linux=data["host_linux"],
            vmsa_profile=data["vmsa_profile"],
            cpu=data["cpu"],
            cpu_signature=int_or_none(data["cpu_signature"]),
            sev_features=int_or_none(data["sev_features"]),
            guest_features=int_or_none(data["guest_features"]),
            boot=data["boot"],
            kernel_sha256=data["kernel_sha256"],
            initrd_sha256=data["initrd_sha256"],
            cmdline=data["cmdline"],
            cmdline_sha256=data["cmdline_sha256"],
            policy=int_or_none(data["policy"]),
            min_api=None if min_api is None else (int(min_api.split(".")[0]), int(min_api.split(".")[1])),
            status=EntryStatus(data["status"]),
            status_reason=data["status_reason"],
            successor=data["successor"],
            status_since=data.get("status_since"),  # absent from records written before it existed
            matrix=data["matrix"],
            calculator=data["calculator"],
            entries=tuple((count, digest) for count, digest in data["entries"]),
            exceptions=tuple(StatusException.from_dict(e) for e in data["exceptions"]),
        )


_MODE_ORDER = {mode: n for n, mode in enumerate((Mode.SEV, Mode.SEV_ES, Mode.SEV_SNP))}


@dataclass(frozen=True)
class CatalogRow:
    """A configuration of a firmware's catalog, without digests (``catalog/<id>.json``)."""

    id: str
    """The group id."""
    mode: Mode
    """The launch mode."""
    host_stack: str
    """Host stack id."""
    vmsa_profile: str | None
    """legacy, init2 or init2-ap-fpu-zero (sevref.binfmt.vmsa.VmsaProfile)."""
    cpu: str | None
    """QEMU CPU model name."""
    cpu_signature: int | None
    """CPUID signature."""
    features: int | None
    """sev_features (SEV-ES) or guest features (SEV-SNP)."""
    boot: str | None
    """Boot id."""
    cmdline: str | None
    """Kernel command line."""
    vcpus: tuple[tuple[int, int], ...] | None
    """vCPU counts as inclusive runs; None for SEV."""
    status: EntryStatus
    """Lifecycle status of every entry no exception names."""
    exceptions: tuple[tuple[EntryStatus, tuple[tuple[int, int], ...]], ...] = ()
    """(status, vCPU runs) of the entries with another status, in status order; usually none."""

    @property
    def entry_count(self) -> int:
        """How many entries (digests) the configuration has: one per vCPU count, one for SEV."""
        return sum(last - first + 1 for first, last in self.vcpus) if self.vcpus else 1

    def status_counts(self) -> dict[EntryStatus, int]:
        """How many entries have each status.

        Returns:
            Status -> entries, for the statuses some entry has, in status order.
        """
        others = {status: sum(last - first + 1 for first, last in runs) for status, runs in self.exceptions}
        counts = {self.status: self.entry_count - sum(others.values()), **others}
        return {status: counts[status] for status in sorted(counts, key=_STATUS_ORDER.__getitem__) if counts[status]}

    def status_at(self, vcpus: int) -> EntryStatus:
        """The status of the entry with a vCPU count.

        Args:
            vcpus: the count.

        Returns:
            Its status.
        """
        return next((status for status, runs in self.exceptions if any(a <= vcpus <= b for a, b in runs)), self.status)

    def sort_key(self) -> tuple[object, ...]:
        """People read catalogs by mode, host stack, CPU, features, boot and command line.

        Returns:
            The key.
        """
        return (
            _MODE_ORDER[self.mode],
            self.host_stack,
            self.cpu or "",
            self.cpu_signature or 0,
            self.features or 0,
            self.boot or "",
            self.cmdline or "",
            self.id,
        )

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "id": self.id,
            "mode": str(self.mode),
            "host_stack": self.host_stack,
            "vmsa_profile": self.vmsa_profile,
            "cpu": self.cpu,
            "cpu_signature": hex_or_none(self.cpu_signature),
            "features": hex_or_none(self.features),
            "boot": self.boot,
            "cmdline": self.cmdline,
            "vcpus": None if self.vcpus is None else [[first, last] for first, last in self.vcpus],
            "status": str(self.status),
            "exceptions": [
                {"status": str(status), "vcpus": [[first, last] for first, last in runs]}
                for status, runs in self.exceptions
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CatalogRow:
        """Read the JSON form.

        Args:
            data: a mapping valid against the catalog schema's row.

        Returns:
            The row.
        """
        vcpus = data["vcpus"]
        return cls(
            id=data["id"],
            mode=Mode(data["mode"]),
            host_stack=data["host_stack"],
            vmsa_profile=data["vmsa_profile"],
            cpu=data["cpu"],
            cpu_signature=int_or_none(data["cpu_signature"]),
            features=int_or_none(data["features"]),
            boot=data["boot"],
            cmdline=data["cmdline"],
            vcpus=None if vcpus is None else tuple((first, last) for first, last in vcpus),
            status=EntryStatus(data["status"]),
            exceptions=tuple(
                (EntryStatus(e["status"]), tuple((first, last) for first, last in e["vcpus"]))
                for e in data["exceptions"]
            ),
        )


@dataclass(frozen=True)
class Catalog:
    """One firmware build's catalog (``catalog/<id>.json``)."""

    release: Release
    """The release identity."""
    firmware: str
    """The firmware id."""
    configurations: tuple[CatalogRow, ...]
    """Its configurations, in :meth:`CatalogRow.sort_key` order."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "schema": SCHEMAS["catalog"],
            "release": self.release.to_dict(),
            "firmware": self.firmware,
            "configurations": [row.to_dict() for row in self.configurations],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Catalog:
        """Read the JSON form.

        Args:
            data: a mapping valid against the catalog schema.

        Returns:
            The catalog.
        """
        rows = tuple(CatalogRow.from_dict(row) for row in data["configurations"])
        return cls(Release.from_dict(data["release"]), data["firmware"], rows)
