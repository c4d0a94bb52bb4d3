"""What each QEMU release can launch: features, CPU models, machine types and their vCPU limits.

Every rule is a row with the QEMU release it starts at and the commit or file
that says so; ``docs/host-stacks.md`` lists them for people. A distribution's
machine types (RHEL's ``pc-q35-rhel10.0.0``) are not upstream's: their limits
come from the manifest, which states them, and the publication records it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sevref.errors import ConfigError
from sevref.values import Version

__all__ = [
    "AP_CONTEXT",
    "CPU_MODEL_SINCE",
    "DISTRIBUTION_MACHINES",
    "MACHINE_DELETION",
    "MAX_VCPUS",
    "NEWEST_QEMU",
    "OLDEST_MACHINES",
    "QEMU_SINCE",
    "Machine",
    "QemuFix",
    "Since",
    "debian_qemu_fixes",
    "parse_machine",
]


def release_text(release: tuple[int, int]) -> str:
    """Show a release, e.g. ``10.1``.

    Args:
        release: (major, minor).

    Returns:
        The dotted release.
    """
    return f"{release[0]}.{release[1]}"


@dataclass(frozen=True)
class Since:
    """The release that first has something, and the source that says so."""

    release: tuple[int, int]
    """(major, minor) of the first release."""
    source: str
    """The commit, pull request or file that shows it."""

    def __str__(self) -> str:
        """Return the release, e.g. ``8.1``."""
        return release_text(self.release)


NEWEST_QEMU = (10, 2)
"""The newest QEMU release whose SEV code these tables were checked against (10.2.2).

``legacy-vm-type=auto`` picks the legacy KVM_SEV_ES_INIT in 9.1 through 10.2:
``sev_init2_required()`` returns false ("Currently no KVM_SEV_INIT2-specific
options are exposed via QEMU", target/i386/sev.c in 10.0.13 and 10.2.2); the
"debug-swap" series (Naveen N Rao, RFC to v3, September-October 2025) that
would make it return true is in neither. QEMU 11.x has not been read: for it
the manifest must state the VMSA profile.
"""

QEMU_SINCE: Mapping[str, Since] = MappingProxyType(
    {
        "sev-es": Since(
            (6, 0),
            "027b524d6a42 'sev/i386: Enable an SEV-ES guest based on SEV policy' (pull of 2021-02-15, QEMU 6.0)",
        ),
        "kernel-hashes": Since((6, 2), "qapi/qom.json SevGuestProperties: kernel-hashes '(since 6.2)'"),
        "sev-snp": Since((9, 1), "qapi/qom.json SevSnpGuestProperties 'Since: 9.1'"),
        "legacy-vm-type": Since(
            (9, 1),
            "023267334da3 'i386/sev: Add legacy-vm-type parameter for SEV guest objects'; made OnOffAuto by "
            "9d38d9dca2a8 'i386/sev: Don't allow automatic fallback to legacy KVM_SEV*_INIT' (QEMU 9.1.0)",
        ),
        "igvm": Since((10, 1), "Roy Hopkins' IGVM series, -machine igvm-cfg (pull of 2025-07-14, QEMU 10.1)"),
    }
)
"""The first QEMU release of each feature sevref checks."""

AP_CONTEXT = Since(
    (10, 1),
    "4c7f0976b0d2 'i386/sev: Refactor setting of reset vector and initial CPU state' (Roy Hopkins; [PULL 24/77] "
    "of 2025-07-14, QEMU 10.1.0; unchanged in 10.2.2): target/i386/sev.c sev_es_save_reset_vector -> "
    "sev_es_set_ap_context -> initialize_vmsa, which zeroes the AP context and copies neither x87_fcw nor mxcsr; "
    "sev_apply_cpu_context loads FCW 0 and MXCSR 0 into every AP's CPU state",
)
"""QEMU 10.1's new start state of the APs, and why the measured VMSA does not change with it.

From 10.1 every AP's CPU state in QEMU has x87 FCW 0 and MXCSR 0 (10.0: 0x37f
and 0x1f80 from ``x86_cpu_reset_hold``). QEMU hands the FPU state to KVM with
``KVM_SET_XSAVE`` and an XSAVE header whose XSTATE_BV is ``env->xstate_bv``
(``target/i386/xsave_helper.c x86_cpu_xsave_all_areas``), which is 0 after
reset ("All units are in INIT state", ``target/i386/cpu.c x86_cpu_reset_hold``)
and which nothing on this path sets. Linux copies the legacy FCW and MXCSR
only for components set in XSTATE_BV (``arch/x86/kernel/fpu/xstate.c
copy_uabi_to_xstate``, unchanged from 5.14 to 6.18 and on master), so the
guest FPU image keeps KVM's own initial values, FCW 0x37f and MXCSR 0x1f80
(``fpstate_init_fxstate``), and ``sev_es_sync_vmsa`` copies those into every
VMSA under KVM_SEV_INIT2. The APs' VMSAs are therefore those of QEMU 9.1-10.0
(profile ``init2``). Derived from the sources of both; no launch on SEV
hardware has confirmed it (``docs/host-stacks.md`` names the one that would).
A VMM that did hand KVM the zeros with XSTATE_BV set would produce the profile
``init2-ap-fpu-zero``, which a host stack without a QEMU version can state.
"""


def _cpu_rows() -> dict[str, Since]:
    # QEMU target/i386/cpu.c builtin_x86_defs, release by release. The first row
    # holds every model and version QEMU 6.0 has; 6.0 is the first release
    # that can launch SEV-ES (QEMU_SINCE), so when exactly before it each came
    # never decides a launch.
    rows = (
        (
            (6, 0),
            ("EPYC EPYC-v1 EPYC-v2 EPYC-IBPB EPYC-v3 EPYC-Rome EPYC-Rome-v1 EPYC-Rome-v2 EPYC-Milan EPYC-Milan-v1"),
            "in QEMU 6.0: EPYC-Milan 623972ceae (pull of 2021-02-18), EPYC-Rome-v2 cdeaed2778 (6.0-rc3), "
            "EPYC-v3 (Babu Moger, 2019); docs/system/cpu-models-x86-abi.csv as first written (2021-06)",
        ),
        (
            (8, 1),
            "EPYC-v4 EPYC-Rome-v3 EPYC-Rome-v4 EPYC-Milan-v2 EPYC-Genoa EPYC-Genoa-v1",
            "Genoa 166b174188 and 'Add new EPYC CPU versions with updated cache_info' (EPYC-v4, Rome-v3), "
            "'Add missing feature bits in EPYC-Milan model' (Milan-v2), pull of 2023-05-09; Rome-v4 "
            "'EPYC-Rome model without XSAVES' (2023-05); cpu-models-x86-abi.csv regenerated for 8.1",
        ),
        (
            (10, 1),
            "EPYC-v5 EPYC-Rome-v5 EPYC-Milan-v3 EPYC-Genoa-v2 EPYC-Turin EPYC-Turin-v1",
            "3771a4daa2 'Add support for EPYC-Turin model' with 397db937e8, 83d940e970, fc014d9ba5, "
            "abc92cc848 (the EPYC, Rome, Milan and Genoa cache/RAS updates), merged June 2025, after 10.0.0",
        ),
    )
    table: dict[str, Since] = {}
    for release, names, source in rows:
        for name in names.split():
            table[name] = Since(release, source)
    return table


CPU_MODEL_SINCE: Mapping[str, Since] = MappingProxyType(_cpu_rows())
"""The first QEMU release that has each CPU model (releases before 6.0 are shown as 6.0)."""


# --------------------------------------------------------------------------- machine types


@dataclass(frozen=True)
class _Limit:
    machine: tuple[int, int]
    vcpus: int
    source: str


MAX_VCPUS: Mapping[str, tuple[_Limit, ...]] = MappingProxyType(
    {
        # By machine type version, not QEMU version: an older machine type keeps its limit.
        "q35": (
            _Limit((0, 0), 255, "hw/i386/pc_q35.c pc_q35_2_7_machine_options: max_cpus = 255"),
            _Limit((2, 8), 288, "hw/i386/pc_q35.c pc_q35_machine_options: max_cpus = 288"),
            _Limit(
                (8, 1),
                1024,
                "hw/i386/pc_q35.c: max_cpus = 1024 (Suravee Suthikulpanit, QEMU 8.1); pc-q35-8.0 and older keep 288",
            ),
            _Limit((9, 0), 4096, "hw/i386/pc_q35.c: max_cpus = 4096 (QEMU 9.0); pc-q35-8.2 and 8.1 keep 1024"),
        ),
        "i440fx": (_Limit((0, 0), 255, "hw/i386/pc.c pc_machine_class_init: max_cpus = 255"),),
    }
)
"""vCPU limits of upstream machine types by family, from the first machine type version each applies to."""


@dataclass(frozen=True)
class _Deletion:
    qemu: tuple[int, int]
    years: int
    source: str


MACHINE_DELETION = _Deletion(
    (10, 1),
    6,
    "include/hw/boards.h MACHINE_VER_DELETION_MAJOR 6 and MACHINE_VER_SHOULD_DELETE: a versioned machine type is "
    "not registered once QEMU's major version is more than 6 past its own, or 6 past with QEMU's minor at least "
    "its own (DEFINE_PC_VER_MACHINE's register function returns early). Introduced in 9.1, gated on the "
    "environment variable QEMU_DELETE_MACHINES or QEMU >= 10.1.0 (10.0.13 boards.h); the gate is gone in 10.2.2",
)
"""From which QEMU release upstream stops registering old versioned machine types, and the rule."""


@dataclass(frozen=True)
class _Oldest:
    qemu: tuple[int, int]
    q35: tuple[int, int]
    i440fx: tuple[int, int]
    source: str


OLDEST_MACHINES: tuple[_Oldest, ...] = (
    _Oldest((7, 2), (2, 4), (1, 4), "QEMU 7.2.0 hw/i386/pc_q35.c and pc_piix.c: oldest DEFINE_*_MACHINE"),
    _Oldest((8, 2), (2, 4), (2, 0), "pc-i440fx-1.4 to 1.7 removed for 8.2 (docs/about/removed-features.rst)"),
    _Oldest((9, 1), (2, 4), (2, 4), "pc-i440fx-2.0 to 2.3 removed for 9.1 (dbe442ad4849, 46a2bd52571)"),
    _Oldest((10, 1), (2, 6), (2, 6), "pc-q35 and pc-i440fx 2.4 and 2.5 removed for 10.1 (07a2adeebbe5, ff63280a8114)"),
)
"""The oldest machine type each QEMU release still defines in its source (from 7.2, the oldest release read)."""


@dataclass(frozen=True)
class _Distribution:
    name: str
    qemu: tuple[int, int]
    vcpus: int
    source: str


_RHEL_4096 = (
    "qemu-kvm kvm-pc-q35-Bump-max_cpus-to-4096-vcpus.patch (RHEL-57668): pc_q35_machine_options max_cpus = 4096 "
    "for pc-q35-rhel9.6.0 and newer"
)
_RHEL_710 = "qemu-kvm 9.1 and later: 'older RHEL machines continue to support 710 vcpus' (pc-q35-rhel9.4.0 and older)"
DISTRIBUTION_MACHINES: Mapping[str, _Distribution] = MappingProxyType(
    {
        row.name: row
        for row in (
            _Distribution("pc-q35-rhel10.0.0", (9, 1), 4096, "RHEL 10.0's qemu-kvm 9.1.0 (el10): " + _RHEL_4096),
            _Distribution("pc-q35-rhel9.8.0", (10, 1), 4096, "RHEL 9.8's qemu-kvm 10.1.0: " + _RHEL_4096),
            _Distribution("pc-q35-rhel9.4.0", (9, 1), 710, _RHEL_710),
            _Distribution("pc-q35-rhel9.2.0", (9, 1), 710, _RHEL_710),
            _Distribution("pc-q35-rhel9.0.0", (9, 1), 710, _RHEL_710),
            _Distribution(
                "pc-i440fx-rhel10.0.0", (9, 1), 240, "qemu-kvm hw/i386/pc.c: max_cpus = 240 'max CPU count for RHEL'"
            ),
            _Distribution(
                "pc-i440fx-rhel7.6.0", (9, 1), 240, "qemu-kvm hw/i386/pc.c: max_cpus = 240 'max CPU count for RHEL'"
            ),
        )
    }
)
"""RHEL and CentOS Stream machine types whose vCPU limit a source gives: the first upstream QEMU base their
qemu-kvm is read from, the limit and its source (qemu-kvm's patches, OpenELA's mirror of RHEL's sources). Other
distribution machine types (pc-q35-rhel9.6.0, whose limit differs between RHEL 9.6's and RHEL 10's builds) need
their limit stated."""

_UPSTREAM = re.compile(r"pc-(q35|i440fx)-(\d+)\.(\d+)")
# RHEL and CentOS Stream (qemu-kvm): pc-q35-rhel10.0.0, pc-i440fx-rhel7.6.0.
_DISTRIBUTION = re.compile(r"pc-(q35|i440fx)-(rhel)(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Machine:
    """A QEMU machine type as a host stack names it."""

    name: str
    """As given: ``pc-q35-9.1``, ``pc-q35-rhel10.0.0``, or the aliases ``q35`` and ``pc``."""
    family: str
    """q35 or i440fx."""
    release: tuple[int, int] | None
    """The upstream QEMU release the type is named after; None for an alias or a distribution's type."""
    distribution: str | None = None
    """The distribution whose QEMU defines it (``rhel``), None for upstream's."""

    def upstream_limit(self, qemu: Version | None) -> _Limit | None:
        """The vCPU limit upstream QEMU gives this machine type, if it is upstream's.

        Args:
            qemu: the QEMU version, which resolves an alias.

        Returns:
            The limit with its source, or None for a distribution's type (or an alias without a version).
        """
        if self.distribution is not None:
            return None
        release = self.release or (None if qemu is None else qemu.release)
        if release is None:
            return None
        return [row for row in MAX_VCPUS[self.family] if row.machine <= release][-1]

    def check_registered(self, qemu: Version) -> None:
        """Refuse a machine type that a QEMU does not register.

        Args:
            qemu: the (upstream base) QEMU version.

        Raises:
            ConfigError: the type is newer than the QEMU, removed from it, or no longer registered by it.
        """
        known = DISTRIBUTION_MACHINES.get(self.name)
        if known is not None and qemu.release < known.qemu:
            raise ConfigError(
                f"qemu machine {self.name}: a qemu-kvm built on QEMU {qemu} does not have it (first in one built on "
                f"{release_text(known.qemu)}: {known.source})"
            )
        if self.release is None:
            return
        if self.release > qemu.release:
            raise ConfigError(f"qemu machine {self.name}: newer than QEMU {qemu}, which does not have it")
        rows = [row for row in OLDEST_MACHINES if row.qemu <= qemu.release]
        if rows:
            row = rows[-1]
            oldest = row.q35 if self.family == "q35" else row.i440fx
            if self.release < oldest:
                raise ConfigError(
                    f"qemu machine {self.name}: QEMU {qemu} no longer has it (its oldest pc-{self.family} is "
                    f"{release_text(oldest)}: {row.source}); use a newer machine type"
                )
        deletion = MACHINE_DELETION
        if not qemu.at_least(*deletion.qemu):
            return
        behind = qemu.major - self.release[0]
        if behind > deletion.years or (behind == deletion.years and qemu.minor >= self.release[1]):
            raise ConfigError(
                f"qemu machine {self.name}: QEMU {qemu} no longer registers it (from QEMU "
                f"{release_text(deletion.qemu)}, a machine type {deletion.years} major versions older than QEMU is "
                f"not registered: include/hw/boards.h MACHINE_VER_DELETION_MAJOR); use a newer machine type"
            )

    def distribution_limit(self) -> _Distribution | None:
        """The vCPU limit a source gives for this distribution machine type, if any.

        Returns:
            The row of :data:`DISTRIBUTION_MACHINES`, or None.
        """
        return DISTRIBUTION_MACHINES.get(self.name)


def parse_machine(name: str) -> Machine:
    """Read a machine type's name.

    Args:
        name: ``pc-q35-X.Y``, ``pc-i440fx-X.Y``, ``pc-q35-rhelX.Y.Z``, ``pc-i440fx-rhelX.Y.Z``, ``q35`` or ``pc``.

    Returns:
        The machine type.

    Raises:
        ConfigError: another name.
    """
    match = _UPSTREAM.fullmatch(name)
    if match:
        return Machine(name, match.group(1), (int(match.group(2)), int(match.group(3))))
    match = _DISTRIBUTION.fullmatch(name)
    if match:
        return Machine(name, match.group(1), None, match.group(2))
    if name in ("q35", "pc"):
        return Machine(name, "q35" if name == "q35" else "i440fx", None)
    raise ConfigError(
        f"qemu machine: expected pc-q35-X.Y, pc-i440fx-X.Y, pc-q35-rhelX.Y.Z, pc-i440fx-rhelX.Y.Z, q35 or pc, "
        f"found {name!r}"
    )


# --------------------------------------------------------------------------- distribution packages


class QemuFix(enum.StrEnum):
    """An upstream fix a distribution's QEMU package carries beyond its upstream version."""

    RNG_SEED_REVERT = "rng-seed-revert"
    """The six reverts of the 7.2.0 RNG seed in setup_data (upstream in 7.2.1 and 8.0)."""


# Debian's QEMU 7.2 packages: 1:7.2+dfsg-N, then +deb12uN stable updates and +bN binNMUs.
_DEBIAN_QEMU_72 = re.compile(r"(?:1:)?7\.2\+dfsg-(\d+)(?:\+deb12u\d+)?(?:\+b\d+)?")
# debian/changelog of qemu 1:7.2+dfsg-5 (2023-03-05): "20 more changes picked from
# upstream/master", among them Revert-hw-i386-pass-RNG-seed-via-setup_data-entry.patch
# and the five other RNG-seed reverts; every later revision keeps them (-6 synced
# upstream 7.2.1 and 7.2.2, +deb12u18 is upstream 7.2.22).
DEBIAN_RNG_SEED_REVERT = 5
"""The first Debian revision of 1:7.2+dfsg that carries the RNG-seed reverts."""


def debian_qemu_fixes(package: str) -> frozenset[QemuFix] | None:
    """The fixes a Debian QEMU 7.2 package carries, known from its version alone.

    Args:
        package: the package version, e.g. ``1:7.2+dfsg-7+deb12u18``.

    Returns:
        The fixes, or None when ``package`` is not a Debian 7.2 version (other
        distributions must state their fixes).
    """
    match = _DEBIAN_QEMU_72.fullmatch(package)
    if match is None:
        return None
    return frozenset({QemuFix.RNG_SEED_REVERT}) if int(match.group(1)) >= DEBIAN_RNG_SEED_REVERT else frozenset()
