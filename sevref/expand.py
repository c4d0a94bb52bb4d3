"""Manifests to every combination: the matrix, its stable ids, and its size.

Expansion is deterministic: the same manifests give the same groups, in the
same order, with the same ids, whatever order the files or axes come in. A
*group* is a configuration without its vCPU count; it holds the counts it is
published for, and each (group, vCPU count) is one *entry*.

Axes that do not change a digest are collapsed rather than multiplied: SEV
measures no VMSA (no CPU, no vCPU count), and EC2 and GCE fix RDX themselves
(no CPU). Every combination that survives the include and exclude rules must
be launchable and predictable; otherwise expansion goes on to collect every
combination that is not, and stops with their reasons and the fewest exclude
rules that would leave them out (:mod:`sevref.excludes`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from sevref.binfmt.descriptor import Finding
from sevref.binfmt.hashtab import cmdline_sha256
from sevref.binfmt.ovmf import OvmfInfo
from sevref.binfmt.vmsa import Vmm
from sevref.digest import KernelBoot, LaunchConfig, Mode, check_launch
from sevref.errors import ConfigError, FirmwareFormatError, ManifestError
from sevref.excludes import Combination, Refusals, UnlaunchableError
from sevref.hosts import HostStack
from sevref.hosts.firmware import check_descriptor, check_firmware
from sevref.ids import entry_id, group_id
from sevref.limits import DEFAULT_MAX_ENTRIES
from sevref.manifest.model import BootSpec, CpuSpec, Expected, FirmwareSpec, Lifecycle, Manifest, Matrix, Pattern

__all__ = ["AxisReport", "Expansion", "Group", "expand"]

_VMSA_MODES = (Mode.SEV_ES, Mode.SEV_SNP)


@dataclass(frozen=True)
class Group:
    """A configuration without its vCPU count, and the counts it is published for."""

    id: str
    """Stable id: :func:`sevref.ids.group_id` of :meth:`identity`."""
    mode: Mode
    """The launch mode."""
    firmware: str
    """Firmware id."""
    firmware_sha256: bytes
    """The firmware's pin."""
    host: HostStack
    """The host stack."""
    cpu: CpuSpec | None
    """The guest CPU (None where it does not change the digest)."""
    boot: BootSpec | None
    """The measured boot (None: firmware only)."""
    cmdline: str | None
    """The boot's command line."""
    config: LaunchConfig
    """What the measuring core takes."""
    vcpus: tuple[int, ...]
    """vCPU counts, ascending; empty for SEV, whose digest does not depend on them."""
    expected: Expected
    """Published policy and minimum API."""
    matrix: str
    """The matrix that lists it (the first by id when several do)."""
    status: Lifecycle | None = None
    """The lifecycle rule that marks its entries, if any (those :attr:`exceptions` do not name)."""
    exceptions: tuple[tuple[tuple[int, ...], Lifecycle | None], ...] = ()
    """(vCPU counts, rule or None: active) of the entries another rule marks, or none does, by first count."""

    def identity(self) -> dict[str, object]:
        """The fields that make the configuration what it is (not labels, not metadata).

        Returns:
            A JSON-ready mapping.
        """
        return group_identity(self.mode, self.firmware_sha256, self.host, self.cpu, self.config)

    def entry_ids(self) -> list[str]:
        """The ids of the group's entries, in vCPU order.

        Returns:
            One id per entry.
        """
        if not self.vcpus:
            return [self.id]
        return [entry_id(self.id, count) for count in self.vcpus]


def group_identity(
    mode: Mode, firmware_sha256: bytes, host: HostStack, cpu: CpuSpec | None, config: LaunchConfig
) -> dict[str, object]:
    """The identity of a group (see :attr:`Group.id`).

    Args:
        mode: the mode.
        firmware_sha256: the firmware's hash.
        host: the host stack (its parameters, not its id).
        cpu: the guest CPU.
        config: the launch configuration.

    Returns:
        A JSON-ready mapping with no labels in it.
    """
    boot = config.boot
    return {
        "mode": str(mode),
        "firmware_sha256": firmware_sha256.hex(),
        **host.launch_facts(),
        "vmsa_profile": None if config.vmsa_profile is None else str(config.vmsa_profile),
        "cpu": None if cpu is None else cpu.name,
        "cpu_signature": None if config.cpu_signature is None else f"{config.cpu_signature:#x}",
        "features": f"{config.sev_features:#x}" if mode in _VMSA_MODES else None,
        "kernel_sha256": None if boot is None else boot.kernel_sha256.hex(),
        "initrd_sha256": None if boot is None or boot.initrd_sha256 is None else boot.initrd_sha256.hex(),
        "cmdline_sha256": None if boot is None else cmdline_sha256(boot.cmdline).hex(),
        "cmdline": None if boot is None else boot.cmdline,
    }


@dataclass(frozen=True)
class AxisReport:
    """The size of a matrix's axes, and of what it expanded to."""

    matrix: str
    """The matrix id."""
    axes: Mapping[str, int]
    """Axis name to number of values (boots counted per command line)."""
    product: int
    """The product of the axes."""
    entries: int
    """Entries the matrix lists after exclusions and collapsed axes (another matrix may list some too)."""

    def describe(self) -> str:
        """One line: ``matrix x: modes 3 × firmware 3 × ... = 5760, 2566 entries``.

        Returns:
            The line.
        """
        axes = " × ".join(f"{name} {size}" for name, size in self.axes.items())
        return f"matrix {self.matrix}: {axes} = {self.product} combinations, {self.entries} entries"


@dataclass(frozen=True)
class Expansion:
    """Everything a manifest expands to."""

    groups: tuple[Group, ...]
    """Groups sorted by id."""
    reports: tuple[AxisReport, ...]
    """One per matrix, in manifest order."""

    @property
    def entries(self) -> int:
        """The number of entries (a group without vCPUs counts one)."""
        return sum(len(g.vcpus) or 1 for g in self.groups)


def _boots(matrix: Matrix, manifest: Manifest) -> list[tuple[BootSpec | None, str | None]]:
    result: list[tuple[BootSpec | None, str | None]] = []
    for ident in matrix.boots:
        if ident is None:
            result.append((None, None))
        else:
            boot = manifest.boots[ident]
            result.extend((boot, cmdline) for cmdline in boot.cmdlines)
    return result


def _matches(
    pattern: Pattern, mode: Mode, firmware: str, host: str, boot: BootSpec | None, cpu: CpuSpec | None
) -> bool:
    return (
        (pattern.modes is None or mode in pattern.modes)
        and (pattern.firmware is None or firmware in pattern.firmware)
        and (pattern.host_stacks is None or host in pattern.host_stacks)
        and (pattern.boots is None or (None if boot is None else boot.id) in pattern.boots)
        and pattern.matches_cpu(cpu)
    )


def _allowed(
    matrix: Matrix, axes: tuple[Mode, str, str, BootSpec | None, CpuSpec | None], vcpus: tuple[int, ...]
) -> tuple[int, ...] | None:
    """The vCPU counts the include/exclude rules leave (None: the whole group is out)."""
    allowed = set(vcpus) if vcpus else {0}
    if matrix.include:
        kept: set[int] = set()
        for pattern in matrix.include:
            if _matches(pattern, *axes):
                kept |= allowed if pattern.vcpus is None or not vcpus else allowed & pattern.vcpus
        allowed = kept
    for pattern in matrix.exclude:
        if _matches(pattern, *axes):
            allowed = set() if pattern.vcpus is None or not vcpus else allowed - pattern.vcpus
    if not allowed:
        return None
    return tuple(sorted(allowed)) if vcpus else ()


def _config(
    mode: Mode, host: HostStack, cpu: CpuSpec | None, boot: BootSpec | None, cmdline: str | None
) -> LaunchConfig:
    kernel = None
    if boot is not None:
        initrd = None if boot.initrd is None else boot.initrd.sha256
        kernel = KernelBoot(boot.kernel.sha256, initrd, cmdline)
    profile = host.profile_for(mode, kernel is not None, None if cpu is None else cpu.name)
    if mode is Mode.SEV:
        return LaunchConfig(mode=mode, boot=kernel)
    features = (
        (host.guest_features if host.guest_features is not None else 0x1)
        if mode is Mode.SEV_SNP
        else (host.sev_features or 0)
    )
    return LaunchConfig(
        mode=mode,
        vmm=host.vmm,
        # EC2 and GCE have no CPU axis; an EC2 host stack may give its earlier RDX instead.
        cpu_signature=host.ec2_rdx if cpu is None else cpu.signature,
        vmsa_profile=profile,
        sev_features=features,
        boot=kernel,
    )


def _combinations(
    matrix: Matrix, manifest: Manifest
) -> Iterator[tuple[Mode, str, str, BootSpec | None, str | None, CpuSpec | None]]:
    for mode, firmware, host_id, (boot, cmdline) in itertools.product(
        matrix.modes, matrix.firmware, matrix.host_stacks, _boots(matrix, manifest)
    ):
        host = manifest.host_stacks[host_id]
        cpus: Sequence[CpuSpec | None] = matrix.cpus if mode in _VMSA_MODES and host.vmm is Vmm.QEMU else (None,)
        for cpu in cpus:
            yield mode, firmware, host_id, boot, cmdline, cpu


def _check_firmware(spec: FirmwareSpec, info: OvmfInfo, found: Finding | None, host: HostStack, mode: Mode) -> None:
    """Refuse an image the host cannot launch in ``mode``, or its package's QEMU firmware descriptor does not list.

    A mode the firmware entry names in ``modes_beyond_descriptor`` is the
    publisher's word: the descriptor's features are not asked for it.

    Raises:
        ConfigError: why not (:func:`~sevref.hosts.firmware.check_firmware`,
            :func:`~sevref.hosts.firmware.check_descriptor`).
    """
    check_firmware(host.vmm, mode, info.size, spec.source.debian_package())
    if mode not in spec.modes_beyond_descriptor:
        check_descriptor(None if found is None else found.described, host.vmm, mode, host.machine)


def _reason_axes(
    mode: Mode, host: HostStack, info: OvmfInfo, boot: BootSpec | None, cmdline: str | None, cpu: CpuSpec | None
) -> frozenset[str]:
    """The axes (:data:`sevref.excludes.AXES`) the reason a combination cannot launch depends on.

    The checks are asked again, each with only the axes it reads: the host
    stack's for the mode alone, then with a kernel, then for the CPU; the
    firmware's without the boot, then with it. The first that refuses names
    the axes; when none does, the firmware checks refused: how the host stack
    launches the image in the mode.
    """

    def refuses(check: Callable[[], object]) -> bool:
        try:
            check()
        except (ConfigError, FirmwareFormatError):
            return True
        return False

    if refuses(lambda: host.profile_for(mode, False, None)):
        return frozenset({"mode", "host_stack"})
    if boot is not None and refuses(lambda: host.profile_for(mode, True, None)):
        return frozenset({"host_stack", "boot"})
    try:
        config = _config(mode, host, cpu, boot, cmdline)
    except ConfigError:
        return frozenset({"host_stack", "cpu"})
    if refuses(lambda: check_launch(info, dataclasses.replace(config, boot=None))):
        return frozenset({"firmware", "mode"})
    if config.boot is not None and refuses(lambda: check_launch(info, LaunchConfig(Mode.SEV, boot=config.boot))):
        return frozenset({"firmware", "boot"})
    if refuses(lambda: check_launch(info, config)):
        return frozenset({"firmware", "mode", "boot"})
    return frozenset({"firmware", "mode", "host_stack"})  # how the host launches the image (its VMM, machine)


def _beyond_limit(refused: Refusals, key: Combination, host: HostStack, vcpus: tuple[int, ...]) -> bool:
    """Record the vCPU counts beyond the host stack's machine type, if any (the rest are refused with them)."""
    limit = host.max_vcpus()
    if limit is None or not vcpus or vcpus[-1] <= limit[0]:
        return False
    why = f"machine {host.machine} allows at most {limit[0]} vCPUs ({limit[1]})"
    refused.refuse_vcpus(key, why, [n for n in vcpus if n > limit[0]])
    return True


def _live(matrix: Matrix, manifest: Manifest) -> Iterator[Combination]:
    """Every combination of ``matrix`` its include and exclude rules leave, whether it can launch or not."""
    for mode, fw_id, host_id, boot, _cmdline, cpu in _combinations(matrix, manifest):
        if _allowed(matrix, (mode, fw_id, host_id, boot, cpu), matrix.vcpus if mode in _VMSA_MODES else ()):
            yield (mode, fw_id, host_id, None if boot is None else boot.id, cpu)


def _axes(matrix: Matrix, manifest: Manifest, max_entries: int) -> tuple[dict[str, int], int]:
    """The sizes of a matrix's axes and their product; a product far beyond ``max_entries`` is refused at once."""
    axes = {
        "modes": len(matrix.modes),
        "firmware": len(matrix.firmware),
        "host_stacks": len(matrix.host_stacks),
        "boots": len(_boots(matrix, manifest)),
        "cpus": max(len(matrix.cpus), 1),
        "vcpus": max(len(matrix.vcpus), 1),
    }
    product = 1
    for size in axes.values():
        product *= size
    if product // axes["vcpus"] > 10 * max_entries:
        raise ManifestError(
            f"{matrix.origin}: {AxisReport(matrix.id, axes, product, 0).describe()}: too large to expand "
            f"(--max-entries {max_entries})"
        )
    return axes, product


def expand(
    manifest: Manifest,
    firmware: Mapping[str, OvmfInfo],
    max_entries: int = DEFAULT_MAX_ENTRIES,
    *,
    found: Mapping[str, Finding],
) -> Expansion:
    """Expand a manifest into its groups.

    Args:
        manifest: the checked manifest.
        firmware: the parsed image of every firmware id the matrices name.
        max_entries: refuse to expand to more entries than this.
        found: what each firmware's package says about its file, by id (:meth:`Sources.read_firmware
            <sevref.edge.sources.Sources.read_firmware>`); a firmware missing here came from no package.

    Returns:
        The groups, sorted by id, and a report per matrix.

    Raises:
        UnlaunchableError: combinations that cannot launch or cannot be predicted: all, with the rules to exclude them.
        ManifestError: conflicting metadata for one configuration, a matrix (or the publication) that expands
            to no entry, or more than ``max_entries`` entries; each with the matrix's file and line.
    """
    groups: dict[str, Group] = {}
    reports, unlaunchable = [], []  # a report per matrix; the refusals of those with combinations that cannot launch
    total = 0
    for matrix in manifest.matrices:
        axes, product = _axes(matrix, manifest, max_entries)
        count = 0
        refused = Refusals(matrix)
        for mode, fw_id, host_id, boot, cmdline, cpu in _combinations(matrix, manifest):
            host = manifest.host_stacks[host_id]
            vcpus = _allowed(matrix, (mode, fw_id, host_id, boot, cpu), matrix.vcpus if mode in _VMSA_MODES else ())
            if vcpus is None:
                continue
            key = (mode, fw_id, host_id, None if boot is None else boot.id, cpu)
            try:
                config = _config(mode, host, cpu, boot, cmdline)
                check_launch(firmware[fw_id], config)
                _check_firmware(manifest.firmware[fw_id], firmware[fw_id], found.get(fw_id), host, mode)
            except (ConfigError, FirmwareFormatError) as error:
                refused.refuse(key, error, partial(_reason_axes, mode, host, firmware[fw_id], boot, cmdline, cpu))
                continue
            if _beyond_limit(refused, key, host, vcpus) or refused:
                continue  # a refused matrix: no need to name the groups of the rest
            spec = manifest.firmware[fw_id]
            ident = group_id(group_identity(mode, spec.source.sha256, host, cpu, config))
            expected = matrix.expected.get(mode, Expected())
            total += _add(
                groups,
                Group(
                    ident, mode, fw_id, spec.source.sha256, host, cpu, boot, cmdline, config, vcpus, expected, matrix.id
                ),
                matrix.origin,
            )
            count += len(vcpus) or 1
            if total > max_entries:
                raise ManifestError(
                    f"{matrix.origin}: {AxisReport(matrix.id, axes, product, count).describe()}: more than "
                    f"--max-entries {max_entries} entries in all; expected at most that"
                )
        if refused:
            unlaunchable.append(refused.report(_live(matrix, manifest)))
        elif count == 0:
            raise ManifestError(
                f"{matrix.origin}: {AxisReport(matrix.id, axes, product, 0).describe()}: its include and exclude "
                f"rules leave nothing; expected at least one entry"
            )
        reports.append(AxisReport(matrix.id, axes, product, count))
    if unlaunchable:
        raise UnlaunchableError("\n".join(unlaunchable))
    if not groups:
        raise ManifestError(
            f"{manifest.publication.origin}: publication: its matrices expand to 0 entries; expected at least one"
        )
    ordered = tuple(_with_status(groups[key], manifest.lifecycle) for key in sorted(groups))
    return Expansion(ordered, tuple(reports))


def _add(groups: dict[str, Group], group: Group, origin: str) -> int:
    """Add a matrix's group, or merge its vCPU counts into the group another matrix made of the same configuration.

    Returns:
        How many entries it adds.

    Raises:
        ManifestError: the two matrices give the configuration other expected values.
    """
    previous = groups.get(group.id)
    if previous is None:
        groups[group.id] = group
        return len(group.vcpus) or 1
    if previous.expected != group.expected:
        raise ManifestError(
            f"{origin}: matrix {group.matrix} gives configuration {group.id} other expected values "
            f"than matrix {previous.matrix}; expected them to agree"
        )
    merged = tuple(sorted(set(previous.vcpus) | set(group.vcpus)))
    first = min(previous.matrix, group.matrix)  # whatever order the manifests come in
    groups[group.id] = Group(**{**previous.__dict__, "vcpus": merged, "matrix": first})
    return len(merged) - len(previous.vcpus)


def _with_status(group: Group, rules: Sequence[Lifecycle]) -> Group:
    """Mark each entry with the first lifecycle rule that matches it.

    A rule that names vCPU counts marks those entries only; SEV's one entry,
    which stands for every count, matches any counts. The group keeps the
    marking most of its entries have (of equals, that of the lowest count),
    and the other entries become its exceptions, so that the common case (one
    marking for all) stays one status.
    """
    rules = [r for r in rules if _matches(r.match, group.mode, group.firmware, group.host.id, group.boot, group.cpu)]
    if not rules:
        return group
    counts: Sequence[int | None] = group.vcpus or (None,)
    # Rules that publish the same status, reason, successor and time mark entries alike.
    same: dict[tuple[object, ...], int] = {}
    alike = [same.setdefault((r.status, r.reason, r.successor, r.since), i) for i, r in enumerate(rules)]
    marks = [
        next((alike[i] for i, r in enumerate(rules) if n is None or r.match.vcpus is None or n in r.match.vcpus), None)
        for n in counts
    ]
    tally = Counter(marks)
    default = max(tally, key=tally.__getitem__)  # the first seen of the most common: ties go to the lowest count
    others: dict[int | None, list[int]] = {}
    for count, mark in zip(counts, marks, strict=True):
        if mark != default and count is not None:
            others.setdefault(mark, []).append(count)
    exceptions = tuple((tuple(found), None if mark is None else rules[mark]) for mark, found in others.items())
    return Group(
        **{
            **group.__dict__,
            "status": None if default is None else rules[default],
            "exceptions": tuple(sorted(exceptions, key=lambda e: e[0][0])),
        }
    )
