"""The verifier's second stage: match a guest's evidence against a trusted publication.

* SEV-SNP: the attestation report's MEASUREMENT is a published digest; it is
  looked up directly in ``digests/<first hex digits>.json``.
* SEV and SEV-ES: the launch measurement is an HMAC keyed by the guest owner's
  TIK, so it cannot be looked up; each candidate GCTX.LD of the firmware
  builds (``firmware/<id>.json``) is tried with the owner's TIK, nonce, policy
  and platform version.

A digest that matches is not yet an acceptable guest: the entry may be revoked
(and a digest that any revoked entry carries is refused whichever other entry
carries it too: the evidence cannot say which configuration it came from), the
guest's policy may differ from the one the publisher expects, allow debugging
or migration (:mod:`sevref.snp.validate`), or its platform may be older than
the minimum API. Each such finding is a note; a match is acceptable when none
of its notes is blocking. Every match also says whether its firmware is
stateless (:func:`firmware_notes`): a verifier that requires it refuses a
stateful one.

An SEV-SNP report's signature is checked to AMD's roots by
:mod:`sevref.snp.verify`; :class:`ReportSignature` says what was done about
it, in words a verifier's output carries. An SEV/SEV-ES launch measurement
needs no such statement: it matches only through its HMAC, which is checked
with the owner's TIK.
"""

from __future__ import annotations

import bisect
import dataclasses
import hmac
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sevref.binfmt.report import AttestationReport, is_turin
from sevref.digest import LaunchMeasureInputs, sev_launch_measurement
from sevref.errors import Check, TrustError
from sevref.ids import parse_entry_id
from sevref.records import EntryState, EntryStatus, FirmwareRecord, GroupRecord, State
from sevref.snp.validate import Acceptance, policy_findings, tcb_findings
from sevref.trust import TrustedPublication

if TYPE_CHECKING:
    from sevref.snp.verify import VerifiedReport

__all__ = [
    "Match",
    "ReportSignature",
    "all_groups",
    "entry",
    "firmware_notes",
    "firmware_record",
    "lookup_digest",
    "scan_launch_measurement",
    "snp_notes",
]


@dataclass(frozen=True)
class Match:
    """A published entry whose digest the evidence matches."""

    entry_id: str
    """The entry's id."""
    vcpus: int | None
    """Its vCPU count (None for SEV)."""
    digest: str
    """The published digest."""
    group: GroupRecord
    """The entry's configuration (its group record)."""
    notes: tuple[tuple[str, bool], ...] = ()
    """(finding, blocking) pairs."""

    @property
    def state(self) -> EntryState:
        """The entry's own lifecycle status."""
        return self.group.state_at(self.vcpus)

    @property
    def acceptable(self) -> bool:
        """True when no note blocks the match."""
        return not any(blocking for _, blocking in self.notes)

    def with_notes(self, notes: Iterable[tuple[str, bool]]) -> Match:
        """Add notes.

        Args:
            notes: (finding, blocking) pairs.

        Returns:
            A new match.
        """
        return dataclasses.replace(self, notes=(*self.notes, *notes))

    def to_dict(self) -> dict[str, object]:
        """The JSON form the verifier prints.

        Returns:
            The mapping.
        """
        configuration = self.group.to_dict()
        del configuration["entries"]
        state = self.state
        nvram = self.group.firmware_nvram
        return {
            "entry": self.entry_id,
            "vcpus": self.vcpus,
            "digest": self.digest,
            "status": str(state.status),
            "status_reason": state.reason,
            "successor": state.successor,
            "status_since": state.since,
            "acceptable": self.acceptable,
            "notes": [{"note": text, "blocking": blocking} for text, blocking in self.notes],
            "firmware_nvram": {**nvram.to_dict(), "explanation": nvram.explain()},
            "configuration": configuration,
        }


@dataclass(frozen=True)
class ReportSignature:
    """What sevref did about the signature of the report the evidence came from."""

    reason: str
    """``verified``, ``skipped`` (--skip-report-signature), ``no-certificate`` or ``no-report``."""
    note: str
    """What the verifier's output says of it."""
    verified: VerifiedReport | None = None
    """The chain and product, when verified."""

    @property
    def blocking(self) -> bool:
        """True when no match may be accepted: a report whose signature could not be checked."""
        return self.reason == "no-certificate"

    @classmethod
    def checked(cls, verified: VerifiedReport) -> ReportSignature:
        """A report whose signature verified.

        Args:
            verified: from :func:`sevref.snp.verify.verify_report`.

        Returns:
            The statement.
        """
        note = (
            f"the report's signature verified: signed by a {verified.key} of {verified.product_name} "
            f"that chains to {verified.roots}"
        )
        return cls("verified", note, verified)

    @classmethod
    def unchecked(cls, evidence: str, skipped: bool) -> ReportSignature | None:
        """Evidence whose report signature was not checked.

        Args:
            evidence: ``snp-report``, ``snp-measurement``, ``launch-measurement`` or ``none``.
            skipped: ``--skip-report-signature`` was given.

        Returns:
            The statement for SEV-SNP evidence; None where there is no report: an
            SEV or SEV-ES launch measurement matches only if its HMAC checks out
            with the owner's TIK, and no evidence matches nothing.
        """
        if evidence == "snp-report" and skipped:
            return cls(
                "skipped",
                "the report's signature was not checked (--skip-report-signature): its fields are taken as given",
            )
        if evidence == "snp-report":
            return cls(
                "no-certificate",
                "the report's signature was not checked: no VCEK or VLEK was given (--vcek or --report-certs); "
                "a report is not accepted unchecked unless --skip-report-signature says so",
            )
        if evidence == "snp-measurement":
            return cls(
                "no-report",
                "no report was given, so sevref checked neither a report's signature nor the guest's policy: "
                "give the report (--snp-report with --vcek) to check both",
            )
        return None

    def to_json(self) -> object:
        """The JSON form: ``"verified"``, or why not.

        Returns:
            ``"verified"``, or ``{"verified": false, "reason": …, "note": …}``.
        """
        if self.reason == "verified":
            return "verified"
        return {"verified": False, "reason": self.reason, "note": self.note}


def _status_notes(state: EntryState) -> list[tuple[str, bool]]:
    if state.status is EntryStatus.ACTIVE:
        return []
    return [(state.describe(), state.status is EntryStatus.REVOKED)]


def _group(publication: TrustedPublication, group_id: str) -> GroupRecord:
    path = f"groups/{publication.index.layout.group_shard(group_id)}.json"
    if not publication.has(path):
        raise TrustError(Check.INTEGRITY, f"entry group {group_id} is in no listed file ({path} is not listed)")
    groups = publication.read(path)["groups"]
    ids = [g["id"] for g in groups]
    position = bisect.bisect_left(ids, group_id)
    if position == len(ids) or ids[position] != group_id:
        raise TrustError(Check.INTEGRITY, f"entry group {group_id} is not in {path}")
    return GroupRecord.from_dict(groups[position])


def all_groups(publication: TrustedPublication) -> Iterator[GroupRecord]:
    """Every group record of a publication, by shard.

    Args:
        publication: the trusted publication.

    Yields:
        The records.
    """
    for path in sorted(publication.files):
        if path.startswith("groups/"):
            for group in publication.read(path)["groups"]:
                yield GroupRecord.from_dict(group)


def firmware_record(publication: TrustedPublication, firmware: str) -> FirmwareRecord:
    """The record of one firmware build.

    Args:
        publication: the trusted publication.
        firmware: the firmware id.

    Returns:
        The record.

    Raises:
        TrustError: the firmware's file is not listed or not valid.
    """
    return FirmwareRecord.from_dict(publication.read(f"firmware/{firmware}.json")["firmware"])


def entry(publication: TrustedPublication, entry_id: str) -> Match:
    """Load a published entry by id.

    Args:
        publication: the trusted publication.
        entry_id: the id.

    Returns:
        The entry as a match without notes.

    Raises:
        ConfigError: the id is not an entry id.
        TrustError: the id points at nothing the index lists.
    """
    group_id, vcpus = parse_entry_id(entry_id)
    group = _group(publication, group_id)
    digest = group.digest_for(vcpus)
    if digest is None:
        raise TrustError(Check.INTEGRITY, f"entry {entry_id}: group {group.id} has no entry for {vcpus} vCPUs")
    return Match(entry_id, vcpus, digest, group, tuple(_status_notes(group.state_at(vcpus))))


def lookup_digest(publication: TrustedPublication, digest: str) -> list[Match]:
    """Find the entries with a given digest (SEV-SNP measurements, or a known GCTX.LD).

    Args:
        publication: the trusted publication.
        digest: lowercase hex.

    Returns:
        The entries, by id; revoked entries included, and every other entry
        refused with a note when a revoked one carries the digest too.

    Raises:
        TrustError: the digest table points to an entry with another digest.
    """
    path = f"digests/{publication.index.layout.digest_shard(digest)}.json"
    if not publication.has(path):
        return []
    found = [
        _entry_with(publication, ident, digest, path) for ident in publication.read(path)["digests"].get(digest, [])
    ]
    return _shadowed(found, found)


def _shadowed(matches: Sequence[Match], carriers: Sequence[Match]) -> list[Match]:
    """Refuse every match whose digest a revoked entry carries too.

    The evidence gives the digest alone: it cannot tell the revoked
    configuration from an active one with the same digest (on SEV-SNP the
    host stack, QEMU and Linux versions often change nothing of it).

    Args:
        matches: the matches.
        carriers: every entry with the digests of the matches.

    Returns:
        The matches, each not itself revoked with a blocking note naming a revoked carrier of its digest.
    """
    revoked: dict[str, Match] = {}
    for carrier in carriers:
        if carrier.state.status is EntryStatus.REVOKED:
            revoked.setdefault(carrier.digest, carrier)
    out = []
    for match in matches:
        shadow = revoked.get(match.digest)
        if shadow is None or match.state.status is EntryStatus.REVOKED:
            out.append(match)
            continue
        note = (
            f"its digest is also that of revoked entry {shadow.entry_id} ({shadow.state.describe()}): "
            "a digest any revoked entry carries is refused"
        )
        out.append(match.with_notes([(note, True)]))
    return out


def _entry_with(publication: TrustedPublication, ident: str, digest: str, where: str) -> Match:
    """An entry a lookup table points to, which must have the digest the table says it has."""
    found = entry(publication, ident)
    if found.digest != digest:
        raise TrustError(
            Check.INTEGRITY, f"{where} gives entry {ident} the digest {digest}; its group gives it {found.digest}"
        )
    return found


def _candidates(publication: TrustedPublication, firmware: Sequence[str] | None) -> Iterator[tuple[str, str, str]]:
    wanted = None if firmware is None else set(firmware)
    for path in sorted(publication.files):
        if not (path.startswith("firmware/") and path.endswith(".json")):
            continue  # the firmware pages of the site sit beside the JSON
        if wanted is None or path[len("firmware/") : -len(".json")] in wanted:
            yield from publication.read(path)["candidates"]


def scan_launch_measurement(
    publication: TrustedPublication,
    measurement: bytes,
    nonce: bytes,
    inputs: LaunchMeasureInputs,
    tik: bytes,
    *,
    firmware: Sequence[str] | None = None,
    vcpus: int | None = None,
) -> tuple[list[Match], int]:
    """Find the SEV/SEV-ES entries whose GCTX.LD gives this launch measurement.

    Args:
        publication: the trusted publication.
        measurement: the 32-byte HMAC from LAUNCH_MEASURE.
        nonce: its 16-byte MNONCE.
        inputs: API version, build and the guest's policy.
        tik: the guest owner's 16-byte TIK.
        firmware: only these firmware ids.
        vcpus: only this vCPU count.

    Returns:
        (matches with their policy and API notes, number of candidates tried).
    """
    found = []
    tried = 0
    for ident, _, digest in _candidates(publication, firmware):
        if vcpus is not None and parse_entry_id(ident)[1] != vcpus:
            continue
        tried += 1
        if hmac.compare_digest(sev_launch_measurement(bytes.fromhex(digest), inputs, nonce, tik), measurement):
            found.append(_entry_with(publication, ident, digest, "the firmware's candidate list"))
    carriers = [c for digest in sorted({m.digest for m in found}) for c in lookup_digest(publication, digest)]
    api = (inputs.api_major, inputs.api_minor)
    return [m.with_notes(_expected_notes(m.group, inputs.policy, api)) for m in _shadowed(found, carriers)], tried


def _expected_notes(group: GroupRecord, policy: int, api: tuple[int, int]) -> list[tuple[str, bool]]:
    notes = []
    if group.policy is None:
        notes.append((f"the publisher expects no particular policy (policy: any); the guest's is {policy:#x}", False))
    elif group.policy != policy:
        notes.append((f"policy {policy:#x} differs from the expected {group.policy:#x}", True))
    if group.min_api is not None and api < group.min_api:
        minimum = "{}.{}".format(*group.min_api)
        notes.append((f"platform API {api[0]}.{api[1]} is below the minimum {minimum}", True))
    return notes


def snp_notes(
    matches: Sequence[Match],
    report: AttestationReport,
    acceptance: Acceptance | None = None,
    turin: bool | None = None,
) -> list[Match]:
    """Add what an SEV-SNP report says about policy and platform to its matches.

    Args:
        matches: entries whose digest is the report's MEASUREMENT.
        report: the report.
        acceptance: what the verifier allows (default: neither DEBUG nor
            MIGRATE_MA, no minimum TCB).
        turin: read the TCB in the Turin layout (default: as the report's CPUID family says).

    Returns:
        The matches with notes.
    """
    acceptance = acceptance or Acceptance()
    layout = is_turin(report) if turin is None else turin
    api = (report.current_major, report.current_minor)
    platform = policy_findings(report.policy, acceptance) + tcb_findings(
        report.reported_tcb, layout, acceptance.min_tcb
    )
    return [m.with_notes([*_expected_notes(m.group, report.policy, api), *platform]) for m in matches]


def firmware_notes(matches: Sequence[Match], require_stateless: bool = False) -> list[Match]:
    """Say of each match whether its firmware is stateless (its group record repeats the firmware's ``nvram``).

    QEMU's documentation: a firmware that uses state from an NVRAM store is not
    secure to measure, because the NVRAM area is not measured.

    Args:
        matches: the matches.
        require_stateless: make a stateful firmware a blocking note.

    Returns:
        The matches with the note.
    """
    out = []
    for match in matches:
        nvram = match.group.firmware_nvram
        blocking = require_stateless and nvram.state is State.STATEFUL
        text = f"firmware {match.group.firmware} is {nvram.label()}. {nvram.explain()}"
        out.append(match.with_notes([(text + " (--require-stateless)", True) if blocking else (text, False)]))
    return out
