"""Knowledge of host stacks: what a VMM, a QEMU release and a host kernel can launch.

The launch digest of an SEV-ES or SEV-SNP guest depends on the host stack, not
only on the guest: QEMU's version and machine type decide whether KVM's legacy
``KVM_SEV_ES_INIT`` or ``KVM_SEV_INIT2`` runs (4 bytes of every VMSA differ),
the host kernel decides whether DebugSwap is set in SEV_FEATURES, one QEMU
release made kernel hashes unpredictable, and a CPU model or a vCPU count the
host's QEMU does not have cannot be launched at all. This module turns a host
stack as a manifest describes it into the VMSA profile it produces, or refuses
it with the reason and what to use instead.

Every rule is a row of a table below with the QEMU or Linux release it starts
at and the commit or file that says so; ``docs/host-stacks.md`` lists them for
people. Where a release cannot be told from the sources, sevref asks the
manifest instead of guessing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sevref.binfmt.vmsa import EC2_LEGACY_RDX, EC2_RDX, Vmm, VmsaProfile
from sevref.digest import Mode
from sevref.errors import ConfigError
from sevref.values import Version

__all__ = [
    "CPU_MODEL_SINCE",
    "DEBUG_SWAP",
    "LINUX_SINCE",
    "MAX_VCPUS",
    "NEWEST_QEMU",
    "QEMU_SINCE",
    "DebugSwap",
    "HostStack",
    "QemuFix",
    "Since",
    "debian_qemu_fixes",
]

_MACHINE = re.compile(r"pc-(q35|i440fx)-(\d+)\.(\d+)")
_SEV_FEAT_DEBUG_SWAP = 0x20  # SEV_FEATURES bit 5 (APM Vol. 2 Table 15-34; Linux SVM_SEV_FEAT_DEBUG_SWAP)


def _release(release: tuple[int, int]) -> str:
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
        return _release(self.release)


# --------------------------------------------------------------------------- QEMU

NEWEST_QEMU = (10, 1)
"""The newest QEMU release whose SEV code these tables were checked against.

``legacy-vm-type=auto`` picks the legacy KVM_SEV_ES_INIT in 9.1 through 10.1:
``sev_init2_required()`` returns false ("Currently no KVM_SEV_INIT2-specific
options are exposed via QEMU", target/i386/sev.c, unchanged on master in
September 2025). A series that adds ``sev-guest,debug-swap=on`` (Naveen N Rao,
v1-v4, September-October 2025, marked "since 10.2") makes it return true when
SEV features are requested; whether 10.2 has it could not be confirmed, so for
any newer QEMU the manifest must state the VMSA profile.
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
            "023267334d 'i386/sev: Add legacy-vm-type parameter for SEV guest objects'; made OnOffAuto by "
            "'i386/sev: Don't allow automatic fallback to legacy KVM_SEV*_INIT' (pull of 2024-07-14)",
        ),
        "igvm": Since((10, 1), "Roy Hopkins' IGVM series, -machine igvm-cfg (pull of 2025-07-14, QEMU 10.1)"),
    }
)
"""The first QEMU release of each feature sevref checks."""


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
"""vCPU limits by machine family, from the first machine type version each applies to."""


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
_DEBIAN_RNG_SEED_REVERT = 5


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
    return frozenset({QemuFix.RNG_SEED_REVERT}) if int(match.group(1)) >= _DEBIAN_RNG_SEED_REVERT else frozenset()


# --------------------------------------------------------------------------- Linux

LINUX_SINCE: Mapping[str, Since] = MappingProxyType(
    {
        "init2": Since((6, 10), "4f5defae7089 'KVM: SEV: introduce KVM_SEV_INIT2 operation' (6.10)"),
        "sev-snp": Since((6, 11), "KVM_X86_SNP_VM and KVM_SEV_SNP_LAUNCH_* (arch/x86/kvm/svm/sev.c, 6.11)"),
    }
)
"""The first host Linux release of each KVM feature sevref checks."""


class DebugSwap(enum.Enum):
    """What a host kernel's legacy KVM_SEV_ES_INIT does with DebugSwap (SEV_FEATURES bit 5)."""

    ABSENT = "has no DebugSwap"
    """Before 6.6: SEV_FEATURES is 0."""
    DEFAULT_ON = "sets DebugSwap by default on CPUs with DEBUG_SWAP and NO_NESTED_DATA_BP"
    """It depends on the CPU: the manifest must state it."""
    DEFAULT_OFF = "sets DebugSwap only with kvm_amd.debug_swap=1"
    """0 by default; 0x20 is possible."""
    NEVER = "never sets DebugSwap (KVM_SEV_ES_INIT passes vmsa_features 0)"
    """0x20 is impossible on the legacy path."""


@dataclass(frozen=True)
class _DebugSwapRow:
    first: tuple[int, int, int]
    state: DebugSwap
    source: str


DEBUG_SWAP: tuple[_DebugSwapRow, ...] = (
    _DebugSwapRow((0, 0, 0), DebugSwap.ABSENT, "d1f85fbe836e 'KVM: SEV: Enable data breakpoints in SEV-ES' is in 6.6"),
    _DebugSwapRow(
        (6, 6, 0),
        DebugSwap.DEFAULT_ON,
        "d1f85fbe836e (6.6): sev_es_debug_swap_enabled = true; sev_hardware_setup clears it without "
        "X86_FEATURE_DEBUG_SWAP and X86_FEATURE_NO_NESTED_DATA_BP",
    ),
    _DebugSwapRow((6, 6, 24), DebugSwap.DEFAULT_OFF, "4577036353fa, the 6.6.y backport of 5abf6dceb066 (6.6.24)"),
    _DebugSwapRow((6, 7, 0), DebugSwap.DEFAULT_ON, "d1f85fbe836e, as in 6.6"),
    _DebugSwapRow((6, 7, 12), DebugSwap.DEFAULT_OFF, "the 6.7.y backport of 5abf6dceb066 (6.7.12, 2024-04-03)"),
    _DebugSwapRow((6, 8, 0), DebugSwap.DEFAULT_OFF, "5abf6dceb066 'SEV: disable SEV-ES DebugSwap by default' (6.8)"),
    _DebugSwapRow(
        (6, 10, 0),
        DebugSwap.NEVER,
        "4f5defae7089 (6.10): sev_guest_init passes struct kvm_sev_init { .vmsa_features = 0 }",
    ),
)
"""DebugSwap on the legacy path, by host kernel release: the last row at or before a version applies."""


def _debug_swap(first: tuple[int, int, int]) -> _DebugSwapRow:
    return [row for row in DEBUG_SWAP if row.first <= first][-1]


def debug_swap(linux: Version) -> DebugSwap | None:
    """What host Linux ``linux`` does with DebugSwap on the legacy path.

    Args:
        linux: the host kernel's version.

    Returns:
        The behaviour, or None when it depends on a micro version not given
        (6.6 or 6.7 without the stable release).
    """
    if linux.micro is not None:
        return _debug_swap((linux.major, linux.minor, linux.micro)).state
    low = _debug_swap((linux.major, linux.minor, 0)).state
    high = _debug_swap((linux.major, linux.minor, 999)).state
    return low if low is high else None


# --------------------------------------------------------------------------- host stacks


@dataclass(frozen=True)
class HostStack:
    """A host stack as a manifest describes it."""

    id: str
    """The manifest's id for it."""
    vmm: Vmm
    """Who builds the initial vCPU state."""
    description: str = ""
    """Free text."""
    qemu_version: Version | None = None
    """QEMU's upstream version (vmm qemu)."""
    machine: str | None = None
    """QEMU machine type: pc-q35-X.Y, pc-i440fx-X.Y, or the aliases q35 and pc."""
    legacy_vm_type: str | None = None
    """QEMU's sev-guest ``legacy-vm-type``: on, off or auto (9.1 and later)."""
    qemu_package: str | None = None
    """The distribution's QEMU package version, e.g. ``1:7.2+dfsg-7+deb12u18``."""
    qemu_fixes: frozenset[QemuFix] = field(default_factory=frozenset)
    """Upstream fixes the package carries, as the manifest states them."""
    igvm: bool = False
    """Whether QEMU launches from an IGVM file (``-machine igvm-cfg``): refused."""
    host_linux: Version | None = None
    """The host kernel's version, when known."""
    vmsa_profile: VmsaProfile | None = None
    """The VMSA profile, when stated instead of (or besides) the QEMU version."""
    sev_features: int | None = None
    """SEV-ES VMSA SEV_FEATURES, when stated."""
    guest_features: int | None = None
    """SEV-SNP guest features, when not the default 0x1 (SNPActive)."""
    ec2_rdx: int | None = None
    """vmm ec2: RDX of every VMSA when not EC2's current 0x600 (only 0x0, EC2's earlier value)."""

    def launch_facts(self) -> dict[str, str | None]:
        """The facts about the host that a published configuration records, as text.

        Returns:
            vmm, qemu_version, machine, legacy_vm_type and host_linux.
        """
        return {
            "vmm": str(self.vmm),
            "qemu_version": None if self.qemu_version is None else str(self.qemu_version),
            "machine": self.machine,
            "legacy_vm_type": self.legacy_vm_type,
            "host_linux": None if self.host_linux is None else str(self.host_linux),
        }

    def check(self) -> None:
        """Check what the host stack can be without looking at any guest.

        Raises:
            ConfigError: a contradiction, naming the field and why.
        """
        if self.ec2_rdx is not None and self.vmm is not Vmm.EC2:
            raise ConfigError(f"ec2_rdx: applies to vmm ec2 only, found vmm {self.vmm}")
        if self.ec2_rdx not in (None, EC2_LEGACY_RDX):
            raise ConfigError(
                f"ec2_rdx: EC2 is known to have used {EC2_RDX:#x} (today's, the default) and "
                f"{EC2_LEGACY_RDX:#x} (earlier); found {self.ec2_rdx:#x}"
            )
        if self.vmm is not Vmm.QEMU:
            for name in ("qemu_version", "machine", "legacy_vm_type", "qemu_package", "vmsa_profile", "sev_features"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"{name.replace('_', ' ')}: does not apply to vmm {self.vmm}")
            if self.qemu_fixes or self.igvm:
                raise ConfigError(f"qemu: does not apply to vmm {self.vmm}")
            return
        if self.qemu_version is None and self.vmsa_profile is None:
            raise ConfigError("vmm qemu: expected qemu (version and machine) or vmsa_profile")
        self._check_qemu()
        self._check_linux()
        derived = self._derived_profile()
        if self.vmsa_profile is not None and derived is not None and self.vmsa_profile is not derived:
            raise ConfigError(
                f"vmsa_profile {self.vmsa_profile}: contradicts QEMU {self.qemu_version} with legacy_vm_type "
                f"{self.legacy_vm_type or 'auto'}, which produces {derived}"
            )
        self._check_sev_features()

    def _check_qemu(self) -> None:
        version = self.qemu_version
        if version is None:
            for name, given in (("package", self.qemu_package), ("fixes", self.qemu_fixes or None)):
                if given is not None:
                    raise ConfigError(f"qemu {name}: needs the QEMU version it belongs to")
            return
        if self.machine is not None:
            machine = self.machine_version()
            if machine.release > version.release:
                raise ConfigError(f"qemu machine {self.machine}: newer than QEMU {version}, which does not have it")
        if self.legacy_vm_type is not None and not version.at_least(*QEMU_SINCE["legacy-vm-type"].release):
            raise ConfigError(
                f"qemu legacy_vm_type: QEMU {version} has no such property (added in "
                f"{QEMU_SINCE['legacy-vm-type']}); it always uses the legacy KVM_SEV_ES_INIT"
            )
        if self.igvm:
            igvm = QEMU_SINCE["igvm"]
            if not version.at_least(*igvm.release):
                raise ConfigError(f"qemu igvm: QEMU {version} cannot launch from an IGVM file (added in {igvm})")
            raise ConfigError(
                f"qemu igvm: QEMU {version} takes the firmware and the VMSAs, their sev_features included, from "
                f"the IGVM file (-machine igvm-cfg); sevref does not model IGVM launches and cannot predict "
                f"their digests"
            )
        if self.qemu_package is not None:
            self._check_package(version, self.qemu_package)

    def _check_package(self, version: Version, package: str) -> None:
        upstream = re.match(r"(?:\d+:)?(\d+)\.(\d+)(?![\d])", package)
        if upstream is None:
            raise ConfigError(
                f"qemu package {package!r}: expected a package version that starts with QEMU's upstream "
                f"version, such as 1:7.2+dfsg-7+deb12u18"
            )
        if (int(upstream.group(1)), int(upstream.group(2))) != version.release:
            raise ConfigError(
                f"qemu package {package}: is QEMU {upstream.group(1)}.{upstream.group(2)}, but qemu version says "
                f"{version}"
            )
        known = debian_qemu_fixes(package)
        if known is not None and QemuFix.RNG_SEED_REVERT in self.qemu_fixes - known:
            raise ConfigError(
                f"qemu fixes: {package} does not carry {QemuFix.RNG_SEED_REVERT} (Debian picked it in "
                f"1:7.2+dfsg-{_DEBIAN_RNG_SEED_REVERT})"
            )

    def _check_linux(self) -> None:
        linux = self.host_linux
        if linux is None:
            return
        init2 = LINUX_SINCE["init2"]
        if self.legacy_vm_type == "off" and not linux.at_least(*init2.release):
            raise ConfigError(
                f"qemu legacy_vm_type off: needs KVM_SEV_INIT2, which host Linux {linux} lacks "
                f"(added in {init2}); QEMU refuses to start"
            )
        if self.vmsa_profile is VmsaProfile.INIT2 and not linux.at_least(*init2.release):
            raise ConfigError(
                f"vmsa_profile init2: needs KVM_SEV_INIT2, which host Linux {linux} lacks (added in {init2})"
            )

    def _check_sev_features(self) -> None:
        features = self.sev_features
        if features is None or not features & _SEV_FEAT_DEBUG_SWAP:
            return
        linux = self.host_linux
        if linux is not None and debug_swap(linux) is DebugSwap.ABSENT:
            raise ConfigError(
                f"sev_features {features:#x}: host Linux {linux} has no DebugSwap (added in 6.6, "
                f"d1f85fbe836e); its SEV-ES VMSAs have SEV_FEATURES 0"
            )
        profile = self.vmsa_profile or self._derived_profile()
        if profile is VmsaProfile.LEGACY and linux is not None and debug_swap(linux) is DebugSwap.NEVER:
            raise ConfigError(
                f"sev_features {features:#x}: with the legacy KVM_SEV_ES_INIT, host Linux {linux} never sets "
                f"DebugSwap (from 6.10 it passes vmsa_features 0, 4f5defae7089); only KVM_SEV_INIT2 with "
                f"VMSA features requested by the VMM can"
            )
        if profile is VmsaProfile.INIT2 and self._known_qemu():
            raise ConfigError(
                f"sev_features {features:#x}: QEMU {self.qemu_version} passes no VMSA features to KVM_SEV_INIT2 "
                f"(sev_common_kvm_init: struct kvm_sev_init args = {{0}}), so SEV-ES VMSAs have SEV_FEATURES 0"
            )

    def machine_family(self) -> str:
        """The machine family: q35 or i440fx.

        Returns:
            The family.

        Raises:
            ConfigError: no machine.
        """
        if self.machine is None:
            raise ConfigError("qemu machine: not given")
        match = _MACHINE.fullmatch(self.machine)
        if match:
            return match.group(1)
        return "q35" if self.machine == "q35" else "i440fx"

    def machine_version(self) -> Version:
        """The QEMU version of the machine type (aliases resolve to QEMU's own).

        Returns:
            The version.

        Raises:
            ConfigError: no machine, or no QEMU version for an alias.
        """
        if self.machine is None:
            raise ConfigError("qemu machine: not given")
        match = _MACHINE.fullmatch(self.machine)
        if match:
            return Version(int(match.group(2)), int(match.group(3)))
        if self.qemu_version is None:
            raise ConfigError(f"qemu machine {self.machine}: an alias needs the QEMU version to resolve it")
        return Version(self.qemu_version.major, self.qemu_version.minor)

    def max_vcpus(self) -> tuple[int, str] | None:
        """The most vCPUs the machine type allows, and the source of that limit.

        Returns:
            (limit, source), or None when the host stack names no machine type.
        """
        if self.vmm is not Vmm.QEMU or self.machine is None:
            return None
        machine = self.machine_version().release
        limit = [row for row in MAX_VCPUS[self.machine_family()] if row.machine <= machine][-1]
        return limit.vcpus, limit.source

    def carries(self, fix: QemuFix) -> bool:
        """Tell whether the host's QEMU has an upstream fix its version number alone does not show.

        Args:
            fix: the fix.

        Returns:
            True when the manifest states it, or the Debian package version implies it.
        """
        if fix in self.qemu_fixes:
            return True
        known = None if self.qemu_package is None else debian_qemu_fixes(self.qemu_package)
        return known is not None and fix in known

    def _known_qemu(self) -> bool:
        version = self.qemu_version
        return version is not None and version.release <= NEWEST_QEMU

    def _derived_profile(self) -> VmsaProfile | None:
        if not self._known_qemu() or self.qemu_version is None:
            return None
        if self.qemu_version.at_least(*QEMU_SINCE["legacy-vm-type"].release) and self.legacy_vm_type == "off":
            return VmsaProfile.INIT2
        return VmsaProfile.LEGACY

    def profile_for(self, mode: Mode, with_kernel: bool, cpu: str | None = None) -> VmsaProfile | None:
        """Return the VMSA profile a launch of ``mode`` gets on this host, or refuse it.

        Args:
            mode: the launch mode.
            with_kernel: whether the launch measures a kernel (kernel-hashes=on).
            cpu: the guest CPU's QEMU model name (None for a bare signature or no CPU).

        Returns:
            The profile (None for vmm ec2 and gce, and for modes without a VMSA).

        Raises:
            ConfigError: the host cannot launch ``mode`` this way, or its digest
                cannot be predicted; the message says why and what to use instead.
        """
        if self.vmm is not Vmm.QEMU:
            if mode is not Mode.SEV_SNP:
                if self.vmm is Vmm.EC2:
                    raise ConfigError(f"mode {mode}: EC2 offers SEV-SNP guests only")
                raise ConfigError(
                    f"mode {mode}: sevref supports SEV-SNP launches on GCE only (GCE also offers SEV, whose "
                    f"initial state sevref does not model)"
                )
            return None
        self._check_mode(mode)
        if with_kernel:
            self._check_kernel_hashes()
        if cpu is not None and mode in (Mode.SEV_ES, Mode.SEV_SNP):
            self._check_cpu(cpu)
        if mode is Mode.SEV_SNP:
            if self.vmsa_profile is VmsaProfile.LEGACY and self.qemu_version is None:
                raise ConfigError(
                    "mode sev-snp: SEV-SNP always uses KVM_SEV_INIT2; vmsa_profile legacy cannot launch it"
                )
            return VmsaProfile.INIT2
        if mode is Mode.SEV:
            return None
        profile = self.vmsa_profile or self._derived_profile()
        if profile is None:
            raise ConfigError(
                f"mode sev-es: QEMU {self.qemu_version} is newer than {_release(NEWEST_QEMU)}, the newest release "
                f"whose choice between KVM_SEV_ES_INIT and KVM_SEV_INIT2 sevref knows (a pending QEMU series "
                f"makes legacy-vm-type=auto pick KVM_SEV_INIT2 when VMSA features are requested); state "
                f"vmsa_profile (legacy or init2)"
            )
        linux = self.host_linux
        if (
            profile is VmsaProfile.LEGACY
            and self.sev_features is None
            and linux is not None
            and debug_swap(linux) in (DebugSwap.DEFAULT_ON, None)
        ):
            raise ConfigError(
                f"mode sev-es: host Linux {linux} may set DebugSwap: 6.6.0-6.6.23 and 6.7.0-6.7.11 set it "
                f"by default on CPUs with DEBUG_SWAP and NO_NESTED_DATA_BP, 6.6.24, 6.7.12 and later do not "
                f"(5abf6dceb066); state sev_features (0x0 or 0x20)"
                + ("" if linux.micro is not None else ", or give the stable release (e.g. 6.6.30)")
            )
        return profile

    def _check_mode(self, mode: Mode) -> None:
        version = self.qemu_version
        linux = self.host_linux
        if mode is Mode.SEV_ES and version is not None:
            since = QEMU_SINCE["sev-es"]
            if not version.at_least(*since.release):
                raise ConfigError(f"mode sev-es: QEMU {version} cannot launch SEV-ES guests (added in {since})")
        if mode is Mode.SEV_SNP:
            since = QEMU_SINCE["sev-snp"]
            if version is not None and not version.at_least(*since.release):
                raise ConfigError(f"mode sev-snp: QEMU {version} cannot launch SEV-SNP guests (added in {since})")
            since = LINUX_SINCE["sev-snp"]
            if linux is not None and not linux.at_least(*since.release):
                raise ConfigError(f"mode sev-snp: host Linux {linux} cannot run SEV-SNP guests (added in {since})")

    def _check_cpu(self, cpu: str) -> None:
        version = self.qemu_version
        since = CPU_MODEL_SINCE.get(cpu)
        if version is None or since is None or version.at_least(*since.release):
            return
        raise ConfigError(
            f"cpu {cpu}: QEMU {version} does not have this CPU model (QEMU {since} added it); use an older "
            f"model, or a host stack with QEMU {since} or later"
        )

    def _check_kernel_hashes(self) -> None:
        version = self.qemu_version
        if version is None:
            return
        since = QEMU_SINCE["kernel-hashes"]
        if not version.at_least(*since.release):
            raise ConfigError(f"kernel hashes: QEMU {version} has no kernel-hashes=on (added in {since})")
        if version.release != (7, 2) or self.machine is None:
            return
        machine = self.machine_version()
        # QEMU 7.2.0 appended a random SETUP_RNG_SEED to the kernel for pc-*-7.2
        # machine types (ffe2d2382e), so the kernel hash changed on every boot
        # (Dov Murik, qemu-devel 2023-02-07; AMDESE/qemu#10). 7.2.1 and 8.0
        # reverted it; machine types up to 7.1 never had it; Debian's package
        # carries the reverts since 1:7.2+dfsg-5 (debian_qemu_fixes).
        if machine.release != (7, 2) or (version.micro or 0) >= 1 or self.carries(QemuFix.RNG_SEED_REVERT):
            return
        exact = "QEMU 7.2.0" if version.micro == 0 else "QEMU 7.2 (7.2.0 or later 7.2.x?)"
        raise ConfigError(
            f"kernel hashes: {exact} with machine {self.machine} appends a random RNG seed to the kernel, "
            f"so its digest changes on every boot; use machine type pc-q35-7.1 (or pc-i440fx-7.1), or "
            f"QEMU 7.2.1 or later"
            + (
                ""
                if version.micro == 0
                else ", and give the exact version (or the package and its fixes: [rng-seed-revert])"
            )
        )
