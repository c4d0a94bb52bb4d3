"""The build's records: an expansion and its digests to the typed published records.

The verifier reads records (:mod:`sevref.records`) and nothing of the build
model; this module is where the build model (manifest, expansion, prepared
firmware) meets them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sevref.binfmt.descriptor import MODE_FEATURES, Finding
from sevref.binfmt.hashtab import cmdline_sha256
from sevref.binfmt.ovmf import OvmfInfo, VolumeKind
from sevref.binfmt.vmsa import Vmm, VmsaProfile
from sevref.digest import Firmware, LaunchConfig, Mode, check_launch
from sevref.errors import ConfigError, FirmwareFormatError, ManifestError
from sevref.expand import AxisReport, Group
from sevref.hosts import HostStack, QemuFix
from sevref.hosts.firmware import check_descriptor, check_firmware, descriptor_store, nvram_at_launch
from sevref.ids import entry_id
from sevref.manifest.model import FirmwareSpec, Lifecycle, Manifest, Publication, Source
from sevref.records import (
    CALCULATOR,
    SCHEMAS,
    DebianRef,
    EntryState,
    EntryStatus,
    FirmwareRecord,
    GroupRecord,
    KernelHashesRecord,
    Nvram,
    Release,
    SnpSection,
    StatusException,
    Store,
    vcpu_runs,
)
from sevref.records.firmware import Basis

__all__ = [
    "Shadow",
    "entry_states",
    "firmware_nvram",
    "firmware_record",
    "group_record",
    "package_label",
    "publication_record",
    "release_of",
    "revoked_entries",
    "shadows",
]

_QUANTITY = {
    Mode.SEV: ("sha256", "GCTX.LD"),
    Mode.SEV_ES: ("sha256", "GCTX.LD"),
    Mode.SEV_SNP: ("sha384", "MEASUREMENT"),
}


def _hex(value: int | None) -> str | None:
    return None if value is None else f"{value:#x}"


def _stated(host: HostStack) -> dict[str, object]:
    """The facts a host stack states rather than derives, each only when stated (publication.json)."""
    stated: dict[str, object] = {}
    if host.host_kvm is not None:
        stated["host_kvm"] = host.host_kvm.to_dict()
    if host.max_vcpus_stated is not None:
        stated["max_vcpus"] = host.max_vcpus_stated
    return stated


def release_of(publication: Publication) -> Release:
    """The release identity of a manifest's publication.

    Args:
        publication: from the manifest.

    Returns:
        The identity.
    """
    return Release(
        publication.publisher_id, publication.product, publication.stream, publication.release, publication.serial
    )


def package_label(source: Source) -> str | None:
    """The package a file came from, as ``name version``.

    Args:
        source: the file's source.

    Returns:
        E.g. ``ovmf 2022.11-6+deb12u2``, or None for a local file.
    """
    return None if source.debian is None else f"{source.debian.package} {source.debian.version}"


def group_record(group: Group, digests: Sequence[bytes], firmware: FirmwareRecord) -> GroupRecord:
    """The published record of a group.

    Args:
        group: the group.
        digests: one per vCPU count of the group (one for SEV).
        firmware: the record of its firmware (its package, and where it keeps UEFI variables).

    Returns:
        The record.
    """
    config: LaunchConfig = group.config
    boot = config.boot
    host = group.host
    algorithm, quantity = _QUANTITY[group.mode]
    status = group.status
    counts: Sequence[int | None] = group.vcpus or (None,)
    facts = host.launch_facts()
    return GroupRecord(
        id=group.id,
        mode=group.mode,
        digest_algorithm=algorithm,
        digest_quantity=quantity,
        firmware=group.firmware,
        firmware_sha256=group.firmware_sha256.hex(),
        firmware_package=firmware.package,
        firmware_nvram=nvram_at_launch(firmware.nvram, host.vmm, group.mode),
        host_stack=host.id,
        vmm=str(host.vmm),
        qemu_version=facts["qemu_version"],
        machine=host.machine,
        legacy_vm_type=host.legacy_vm_type,
        host_linux=facts["host_linux"],
        vmsa_profile=None if config.vmsa_profile is None else str(config.vmsa_profile),
        cpu=None if group.cpu is None else group.cpu.name,
        cpu_signature=config.cpu_signature,
        sev_features=config.sev_features if group.mode is Mode.SEV_ES else None,
        guest_features=config.sev_features if group.mode is Mode.SEV_SNP else None,
        boot=None if group.boot is None else group.boot.id,
        kernel_sha256=None if boot is None else boot.kernel_sha256.hex(),
        initrd_sha256=None if boot is None or boot.initrd_sha256 is None else boot.initrd_sha256.hex(),
        cmdline=None if boot is None else boot.cmdline,
        cmdline_sha256=None if boot is None else cmdline_sha256(boot.cmdline).hex(),
        policy=group.expected.policy,
        min_api=group.expected.min_api,
        status=_state(status).status,
        status_reason=_state(status).reason,
        successor=_state(status).successor,
        status_since=_state(status).since,
        matrix=group.matrix,
        calculator=CALCULATOR,
        entries=tuple((count, digest.hex()) for count, digest in zip(counts, digests, strict=True)),
        exceptions=tuple(StatusException(vcpu_runs(found), _state(rule)) for found, rule in group.exceptions),
    )


def entry_states(group: Group) -> dict[int | None, EntryState]:
    """The lifecycle state of each entry of a group, as its published record gives it.

    Args:
        group: the group.

    Returns:
        vCPU count (None for SEV) to state.
    """
    states: dict[int | None, EntryState] = {count: _state(group.status) for count in group.vcpus or (None,)}
    for counts, rule in group.exceptions:
        for count in counts:
            states[count] = _state(rule)
    return states


def _entry_rules(group: Group) -> dict[int | None, Lifecycle | None]:
    """The lifecycle rule that marks each entry of a group (None: active)."""
    rules: dict[int | None, Lifecycle | None] = {count: group.status for count in group.vcpus or (None,)}
    for counts, rule in group.exceptions:
        rules.update(dict.fromkeys(counts, rule))
    return rules


def revoked_entries(groups: Iterable[Group]) -> dict[str, Lifecycle]:
    """The entries lifecycle rules revoke, and the rule that revokes each.

    Args:
        groups: the expansion's groups.

    Returns:
        Entry id to its revoking rule.
    """
    return {
        group.id if count is None else entry_id(group.id, count): rule
        for group in groups
        for count, rule in _entry_rules(group).items()
        if rule is not None and rule.status is EntryStatus.REVOKED
    }


@dataclass(frozen=True)
class Shadow:
    """Entries a revocation blocks besides those it names: they carry a digest that one it revokes carries.

    A verifier sees a digest, not the configuration behind it, so it must
    refuse a revoked digest whichever entry it finds it under. The same digest
    is common: SEV's GCTX.LD covers the firmware and kernel hashes only (SEV
    API 6.5.1), and SEV-SNP's MEASUREMENT covers the pages and VMSAs, the same
    on every host stack that builds the same VMSAs (README, "The VMSA profile
    comes from the host stack"), so a rule that revokes by host stack, QEMU or
    Linux version also blocks its siblings on the other stacks.
    """

    rule: Lifecycle
    """The revoking rule."""
    blocked: tuple[str, ...]
    """The entries it does not revoke (active or deprecated) whose digest an entry it revokes carries, sorted."""

    def describe(self, shown: int = 3) -> str:
        """One line: where the rule is, how many entries it also blocks and the first few.

        Args:
            shown: how many entry ids to name.

        Returns:
            The line.
        """
        count = len(self.blocked)
        first = ", ".join(self.blocked[:shown]) + (", …" if count > shown else "")
        return (
            f"{self.rule.origin}: the revocation ({self.rule.reason}) also blocks {count} "
            f"{'entry' if count == 1 else 'entries'} it does not revoke, which carry the digest of one it revokes "
            f"(verifiers refuse the digest, exports leave it out): {first}"
        )


def shadows(
    revoked: Mapping[str, Lifecycle], tables: Iterable[Mapping[str, Sequence[str]]], rules: Sequence[Lifecycle]
) -> tuple[Shadow, ...]:
    """What each revocation blocks besides the entries it names.

    Args:
        revoked: :func:`revoked_entries`.
        tables: the publication's digest tables (digest to the ids of the entries that carry it).
        rules: the manifest's lifecycle rules, in order.

    Returns:
        One per rule that blocks other entries, in the manifest's order.
    """
    blocked: dict[str, set[str]] = {}
    for table in tables:
        for ids in table.values():
            if len(ids) < 2:
                continue
            by = {revoked[i].origin for i in ids if i in revoked}
            for origin in by:
                blocked.setdefault(origin, set()).update(i for i in ids if i not in revoked)
    return tuple(Shadow(r, tuple(sorted(blocked[r.origin]))) for r in rules if blocked.get(r.origin))


def _state(rule: Lifecycle | None) -> EntryState:
    """The published status a lifecycle rule gives (None: active)."""
    if rule is None:
        return EntryState(EntryStatus.ACTIVE)
    return EntryState(rule.status, rule.reason, rule.successor, rule.since)


# Firmware-only launches of each mode: what a firmware must offer for the mode at all.
_PROBES = {
    Mode.SEV: LaunchConfig(mode=Mode.SEV),
    Mode.SEV_ES: LaunchConfig(mode=Mode.SEV_ES, cpu_signature=0, vmsa_profile=VmsaProfile.INIT2),
    Mode.SEV_SNP: LaunchConfig(mode=Mode.SEV_SNP, cpu_signature=0, vmsa_profile=VmsaProfile.INIT2, sev_features=1),
}


def _support(
    info: OvmfInfo,
    mode: Mode,
    debian: tuple[str, str] | None = None,
    spec: FirmwareSpec | None = None,
    found: Finding | None = None,
) -> str:
    """Say "supported", or why the firmware cannot launch ``mode``: its image, or QEMU with what its package says."""
    try:
        check_launch(info, _PROBES[mode])
    except (ConfigError, FirmwareFormatError) as error:
        return error.diagnostic()
    try:
        check_firmware(Vmm.QEMU, mode, info.size, debian)
        if spec is not None and mode not in spec.modes_beyond_descriptor:
            check_descriptor(None if found is None else found.described, Vmm.QEMU, mode, None)
    except ConfigError as error:
        return f"on QEMU: {error.diagnostic()}"  # a fact of how QEMU launches it, not of the image
    return "supported"


def firmware_nvram(spec: FirmwareSpec, info: OvmfInfo, found: Finding | None) -> Nvram:
    """Judge where a firmware keeps its UEFI variables: from its image, and from what the manifest states.

    The image tells where it can (:func:`sevref.binfmt.ovmf.first_volume`): a
    variable store volume at offset 0 is a store inside the image, a code volume
    there is a split ``OVMF_CODE`` image whose store is a separate file. It
    cannot tell an AmdSevX64 build, whose image carries the same empty store
    template but keeps its variables in memory when launched with ``-bios``,
    from a unified ``OvmfPkgX64`` image that uses its store: the publisher says
    ``nvram: none``, which is accepted only from an image that also reserves
    the SEV kernel-hashes area, as AmdSevX64 builds do and ``OvmfPkgX64``
    builds do not.

    The QEMU firmware descriptor its package ships for the image
    (:func:`sevref.hosts.firmware.descriptor_store`) tells too: mapped as
    ``memory`` (-bios) or ``flash`` ``stateless``, it is stateless whatever the
    image holds; ``split`` or ``combined`` count where the image does not tell.
    A manifest ``nvram`` the descriptor contradicts is an error naming both.
    Nothing else is called stateless unless the publisher says so.

    Args:
        spec: the firmware's manifest entry.
        info: its parsed image.
        found: what its package says about it (None: it came from no package).

    Returns:
        Where the variables are kept, and how sevref knows.

    Raises:
        ManifestError: the manifest's ``nvram`` contradicts the image or the
            descriptor, or its ``modes_beyond_descriptor`` the descriptor.
    """
    described = None if found is None else found.described
    _check_beyond(spec, found)
    mapped = None if described is None else descriptor_store(described.descriptor)
    stated = spec.nvram
    if described is not None and mapped is not None:
        if stated is not None and stated is not mapped:
            raise ManifestError(
                f"{spec.nvram_origin or spec.origin}: firmware {spec.id}: nvram: {stated}, but {described.label} "
                f"maps {described.descriptor.executable} as {described.descriptor.mapping_label()}; expected "
                f"nvram: {mapped}, or no nvram statement"
            )
        if mapped is Store.NONE:
            # -bios (ROM) or a read-only pflash: nothing the firmware writes is kept, whatever the image holds.
            return Nvram(Store.NONE, Basis.DESCRIPTOR)
    volume = info.first_volume
    if volume is not None and volume.kind is VolumeKind.VARIABLE_STORE:
        if stated in (None, Store.EMBEDDED):
            return Nvram(Store.EMBEDDED, Basis.IMAGE)
        if stated is Store.NONE and info.kernel_hashes_supported():
            return Nvram(Store.NONE, Basis.MANIFEST)
        why = (
            "and no SEV kernel-hashes area, as an OvmfPkgX64 build that keeps its variables there (an AmdSevX64 "
            "build, stateless under -bios, reserves one)"
            if stated is Store.NONE
            else "of its own"
        )
        seen = f"the image starts with a UEFI variable store ({volume.describe()}) {why}"
        raise _contradiction(spec, seen, Store.EMBEDDED)
    if volume is not None and volume.kind is VolumeKind.FIRMWARE_FILES:
        if stated in (None, Store.SEPARATE):
            return Nvram(Store.SEPARATE, Basis.IMAGE)
        seen = (
            f"the image starts with its code ({volume.describe()}) and has no variable store: its variables are "
            f"in whatever OVMF_VARS file the host adds as pflash unit 1, unmeasured"
        )
        raise _contradiction(spec, seen, Store.SEPARATE)
    if mapped is not None:
        return Nvram(mapped, Basis.DESCRIPTOR)
    if stated is None:
        return Nvram(Store.UNKNOWN, Basis.ASSUMED)
    return Nvram(stated, Basis.MANIFEST)


def _check_beyond(spec: FirmwareSpec, found: Finding | None) -> None:
    """Refuse ``modes_beyond_descriptor`` where its package has no descriptor, or one that lists the mode."""
    if not spec.modes_beyond_descriptor or found is None or not found.read:
        return
    described = found.described
    where = f"{spec.modes_beyond_origin or spec.origin}: firmware {spec.id}: modes_beyond_descriptor"
    if described is None:
        raise ManifestError(f"{where}: its package has no QEMU firmware descriptor naming it; expected one")
    listed = sorted(str(m) for m in spec.modes_beyond_descriptor if described.descriptor.lists(str(m)))
    if listed:
        raise ManifestError(
            f"{where}: {', '.join(listed)}, but {described.label} lists "
            f"{', '.join(MODE_FEATURES[m] for m in listed)}; expected only modes it leaves out"
        )


def _contradiction(spec: FirmwareSpec, found: str, expected: Store) -> ManifestError:
    return ManifestError(
        f"{spec.nvram_origin or spec.origin}: firmware {spec.id}: nvram: {spec.nvram}, but {found}; "
        f"expected nvram: {expected}"
    )


def firmware_record(spec: FirmwareSpec, firmware: Firmware, sha384: bytes, found: Finding | None) -> FirmwareRecord:
    """The published description of a firmware build (without its candidate list).

    Args:
        spec: its manifest entry.
        firmware: the prepared image.
        sha384: SHA-384 of the image.
        found: what its package says about it (None: it came from no package).

    Returns:
        The record.
    """
    info = firmware.info
    area = info.hash_table
    sections = info.snp_sections
    source = spec.source
    d = source.debian
    package = source.debian_package()
    modes = {str(mode): _support(info, mode, package, spec, found) for mode in (Mode.SEV, Mode.SEV_ES, Mode.SEV_SNP)}
    described = None if found is None else found.described
    # The firmware-only SEV-SNP chain is a fact of the image: published whenever its metadata can be measured.
    snp = _support(info, Mode.SEV_SNP) == "supported"
    return FirmwareRecord(
        id=spec.id,
        description=spec.description,
        sha256=firmware.sha256.hex(),
        sha384=sha384.hex(),
        size=info.size,
        debian=None
        if d is None
        else DebianRef(
            d.package,
            d.version,
            d.architecture,
            d.path,
            None if d.deb_sha256 is None else d.deb_sha256.hex(),
            d.deb_url,
        ),
        file=_file_name(source, spec.id),
        ap_reset_eip=info.sev_es_reset_eip,
        reset_block=None if info.reset_block_source is None else str(info.reset_block_source),
        kernel_hashes=KernelHashesRecord(
            info.kernel_hashes_supported(), None if area is None else area.base, None if area is None else area.size
        ),
        snp_metadata=None
        if sections is None
        else tuple(SnpSection(s.gpa, s.size, s.kind.name if s.kind else f"{s.type:#x}") for s in sections),
        snp_prefix=firmware.snp_prefix.hex() if snp else None,
        modes=modes,
        nvram=firmware_nvram(spec, info, found),
        url=source.url,
        descriptor=None if described is None else described.descriptor,
        package_name=None if described is None else described.package,
    )


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def _file_name(source: Source, ident: str) -> str | None:
    """The name a firmware file goes by: a local file's, or a URL's last part (if a plain name; else ``<id>.fd``)."""
    if source.debian is not None:
        return None
    if source.url is None:
        return None if source.path is None else source.path.name
    path = source.url.split("://", 1)[-1].partition("/")[2]  # after the host
    last = path.split("#", 1)[0].split("?", 1)[0].rsplit("/", 1)[-1]
    return last if _SAFE_NAME.fullmatch(last) else f"{ident}.fd"


def publication_record(
    manifest: Manifest, reports: Sequence[AxisReport], firmware: Mapping[str, Firmware]
) -> dict[str, object]:
    """What the release covers (``publication.json``), for people and tools.

    Args:
        manifest: the manifest.
        reports: the expansion's axis reports.
        firmware: the prepared images by id.

    Returns:
        A JSON-ready mapping.
    """
    pub = manifest.publication
    return {
        "schema": SCHEMAS["publication"],
        "release": release_of(pub).to_dict(),
        "description": pub.description,
        "firmware": [
            {
                "id": spec.id,
                "description": spec.description,
                "sha256": firmware[spec.id].sha256.hex(),
                "size": firmware[spec.id].info.size,
                "package": package_label(spec.source),
                "file": f"firmware/{spec.id}.json",
            }
            for spec in manifest.firmware.values()
            if spec.id in firmware
        ],
        "host_stacks": [
            {
                "id": host.id,
                "description": host.description,
                **host.launch_facts(),
                "qemu_package": host.qemu_package,
                "qemu_fixes": sorted(str(fix) for fix in QemuFix if host.carries(fix)),
                "vmsa_profile": None if host.vmsa_profile is None else str(host.vmsa_profile),
                "sev_features": _hex(host.sev_features),
                "guest_features": _hex(host.guest_features),
                "ec2_rdx": _hex(host.ec2_rdx),
                **_stated(host),
            }
            for host in manifest.host_stacks.values()
        ],
        "boots": [
            {
                "id": boot.id,
                "description": boot.description,
                "kernel_sha256": boot.kernel.sha256.hex(),
                "initrd_sha256": None if boot.initrd is None else boot.initrd.sha256.hex(),
                "cmdlines": list(boot.cmdlines),
            }
            for boot in manifest.boots.values()
        ],
        "matrices": [
            {"id": r.matrix, "axes": dict(r.axes), "combinations": r.product, "entries": r.entries} for r in reports
        ],
        "manifests": [{"name": name.rsplit("/", 1)[-1], "sha256": sha.hex()} for name, sha in manifest.documents],
        "calculator": CALCULATOR,
    }
