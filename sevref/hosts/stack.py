"""A host stack as a manifest describes it: the VMSA profile it produces for each launch, or why it cannot launch.

The launch digest of an SEV-ES or SEV-SNP guest depends on the host stack, not
only on the guest: QEMU's version and machine type decide whether KVM's legacy
``KVM_SEV_ES_INIT`` or ``KVM_SEV_INIT2`` runs and what QEMU puts in the APs'
VMSAs, the host kernel decides whether DebugSwap is set in SEV_FEATURES, one
QEMU release made kernel hashes unpredictable, and a CPU model, a machine type
or a vCPU count the host's QEMU does not have cannot be launched at all.
:class:`HostStack` applies the rules of :mod:`sevref.hosts.qemu` and
:mod:`sevref.hosts.linux`; where a release cannot be told from the sources,
it asks the manifest instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sevref.binfmt.vmsa import EC2_LEGACY_RDX, EC2_RDX, Vmm, VmsaProfile
from sevref.digest import Mode
from sevref.errors import ConfigError
from sevref.hosts.linux import LINUX_SINCE, DebugSwap, KvmFacts, KvmFeature, describe, has, legacy_debug_swap
from sevref.hosts.qemu import (
    CPU_MODEL_SINCE,
    DEBIAN_RNG_SEED_REVERT,
    NEWEST_QEMU,
    QEMU_SINCE,
    Machine,
    QemuFix,
    debian_qemu_fixes,
    parse_machine,
    release_text,
)
from sevref.values import Version

__all__ = ["HostStack"]

_SEV_FEAT_DEBUG_SWAP = 0x20  # SEV_FEATURES bit 5 (APM Vol. 2 Table 15-34; Linux SVM_SEV_FEAT_DEBUG_SWAP)


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
    """QEMU's upstream version (vmm qemu); for a distribution's QEMU, the upstream version it is built on."""
    machine: str | None = None
    """QEMU machine type: pc-q35-X.Y, pc-i440fx-X.Y, a distribution's pc-q35-rhelX.Y.Z, or the aliases q35 and pc."""
    legacy_vm_type: str | None = None
    """QEMU's sev-guest ``legacy-vm-type``: on, off or auto (9.1 and later)."""
    qemu_package: str | None = None
    """The distribution's QEMU package version, e.g. ``1:7.2+dfsg-7+deb12u18``."""
    qemu_fixes: frozenset[QemuFix] = field(default_factory=frozenset)
    """Upstream fixes the package carries, as the manifest states them."""
    igvm: bool = False
    """Whether QEMU launches from an IGVM file (``-machine igvm-cfg``): refused."""
    max_vcpus_stated: int | None = None
    """The machine type's vCPU limit, as the manifest states it (a distribution's machine type only)."""
    host_linux: Version | None = None
    """The host kernel's version, when known."""
    host_kvm: KvmFacts | None = None
    """What the host kernel's KVM can do, stated instead of derived from its version (a distribution kernel)."""
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
            for name in (
                "qemu_version",
                "machine",
                "legacy_vm_type",
                "qemu_package",
                "vmsa_profile",
                "sev_features",
                "max_vcpus_stated",
            ):
                if getattr(self, name) is not None:
                    raise ConfigError(
                        f"{name.replace('_stated', '').replace('_', ' ')}: does not apply to vmm {self.vmm}"
                    )
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
                f"{self.legacy_vm_type or 'auto'}, which produces {derived} for SEV-ES"
            )
        self._check_sev_features()

    def _machine(self) -> Machine | None:
        return None if self.machine is None else parse_machine(self.machine)

    def _check_machine(self, version: Version | None) -> None:
        machine = self._machine()
        stated = self.max_vcpus_stated
        if machine is not None and machine.distribution is not None:
            if version is None:
                raise ConfigError(
                    f"qemu machine {machine.name}: a distribution's machine type needs the upstream QEMU version "
                    f"its QEMU is built on (qemu version)"
                )
            machine.check_registered(version)
            known = machine.distribution_limit()
            if known is None and stated is None:
                raise ConfigError(
                    f"qemu machine {machine.name}: sevref knows no source for this distribution machine type's vCPU "
                    f"limit; state it (qemu max_vcpus, from the distribution's hw/i386/pc_q35.c or "
                    f"'qemu-system-x86_64 -machine help')"
                )
            if known is not None and stated is not None and stated != known.vcpus:
                raise ConfigError(
                    f"qemu max_vcpus {stated}: contradicts machine {machine.name}, whose limit is {known.vcpus} "
                    f"({known.source})"
                )
            return
        if stated is not None:
            known_limit = None if machine is None else machine.upstream_limit(version)
            what = f"machine {machine.name}" if machine is not None else "no machine type"
            raise ConfigError(
                f"qemu max_vcpus: applies to a distribution's machine type (pc-q35-rhelX.Y.Z) only, found {what}"
                + (
                    ""
                    if known_limit is None
                    else f", whose limit upstream QEMU sets ({known_limit.vcpus}: {known_limit.source})"
                )
            )
        if machine is not None and version is not None:
            machine.check_registered(version)

    def _check_qemu(self) -> None:
        version = self.qemu_version
        self._check_machine(version)
        if version is None:
            for name, given in (("package", self.qemu_package), ("fixes", self.qemu_fixes or None)):
                if given is not None:
                    raise ConfigError(f"qemu {name}: needs the QEMU version it belongs to")
            return
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
                f"1:7.2+dfsg-{DEBIAN_RNG_SEED_REVERT})"
            )

    def _has(self, feature: KvmFeature) -> bool | None:
        return has(self.host_linux, self.host_kvm, feature)

    def _lacks(self, feature: KvmFeature, what: str) -> None:
        """Refuse ``what`` when the host kernel is known to lack ``feature``."""
        if self._has(feature) is False:
            kernel = describe(self.host_linux, self.host_kvm)
            raise ConfigError(f"{what}: needs {_FEATURE_NAMES[feature]}, which {kernel} lacks{self._since(feature)}")

    def _check_linux(self) -> None:
        if self.host_kvm is not None and self.host_linux is None:
            raise ConfigError("host_kvm: states the facts of a host kernel; expected host_linux (its version) too")
        if self.legacy_vm_type == "off":
            self._lacks(KvmFeature.INIT2, "qemu legacy_vm_type off")
        if self.vmsa_profile is not None and self.vmsa_profile.uses_init2:
            self._lacks(KvmFeature.INIT2, f"vmsa_profile {self.vmsa_profile}")

    def _check_sev_features(self) -> None:
        features = self.sev_features
        if features is None or not features & _SEV_FEAT_DEBUG_SWAP:
            return
        linux = self.host_linux
        swap = legacy_debug_swap(linux, self.host_kvm)
        kernel = describe(linux, self.host_kvm)
        if swap is DebugSwap.ABSENT:
            raise ConfigError(
                f"sev_features {features:#x}: {kernel} has no DebugSwap (added in 6.6, "
                f"d1f85fbe836e); its SEV-ES VMSAs have SEV_FEATURES 0"
            )
        profile = self.vmsa_profile or self._derived_profile()
        if profile is VmsaProfile.LEGACY and swap is DebugSwap.NEVER:
            raise ConfigError(
                f"sev_features {features:#x}: with the legacy KVM_SEV_ES_INIT, {kernel} never sets "
                f"DebugSwap (from 6.10 it passes vmsa_features 0, 4f5defae7089); only KVM_SEV_INIT2 with "
                f"VMSA features requested by the VMM can"
            )
        if profile is not None and profile.uses_init2 and self._known_qemu():
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
        machine = self._machine()
        if machine is None:
            raise ConfigError("qemu machine: not given")
        return machine.family

    def max_vcpus(self) -> tuple[int, str] | None:
        """The most vCPUs the machine type allows, and the source of that limit.

        Returns:
            (limit, source), or None when the host stack names no machine type.
        """
        machine = self._machine()
        if self.vmm is not Vmm.QEMU or machine is None:
            return None
        if self.max_vcpus_stated is not None:
            return self.max_vcpus_stated, "as the manifest states it (qemu max_vcpus)"
        known = machine.distribution_limit()
        if known is not None:
            return known.vcpus, known.source
        limit = machine.upstream_limit(self.qemu_version)
        if limit is None:
            raise ConfigError(f"qemu machine {machine.name}: an alias needs the QEMU version to resolve it")
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

    def _init2_profile(self) -> VmsaProfile | None:
        """The profile of a KVM_SEV_INIT2 launch by this QEMU, if its version is in the tables.

        QEMU 10.1 gives the APs FCW and MXCSR 0 in its own CPU state, but KVM never
        takes them (:data:`sevref.hosts.qemu.AP_CONTEXT`): every QEMU from 9.1 to
        the newest in the tables measures ``init2`` VMSAs.
        """
        if not self._known_qemu():
            return None
        return VmsaProfile.INIT2

    def _derived_profile(self) -> VmsaProfile | None:
        """The profile of an SEV-ES launch, from the QEMU version and legacy-vm-type."""
        if not self._known_qemu() or self.qemu_version is None:
            return None
        if self.qemu_version.at_least(*QEMU_SINCE["legacy-vm-type"].release) and self.legacy_vm_type == "off":
            return self._init2_profile()
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
            return self._snp_profile()
        if mode is Mode.SEV:
            return None
        profile = self.vmsa_profile or self._derived_profile()
        if profile is None:
            raise ConfigError(
                f"mode sev-es: QEMU {self.qemu_version} is newer than {release_text(NEWEST_QEMU)}, the newest "
                f"release whose choice between KVM_SEV_ES_INIT and KVM_SEV_INIT2 and whose APs' state sevref "
                f"knows; state vmsa_profile (legacy, init2 or init2-ap-fpu-zero)"
            )
        if profile.uses_init2:
            self._lacks(KvmFeature.INIT2, f"mode sev-es with vmsa_profile {profile}")
        self._check_debug_swap(profile)
        return profile

    def _snp_profile(self) -> VmsaProfile:
        """The profile of an SEV-SNP launch: always KVM_SEV_INIT2, the APs' state by QEMU release."""
        derived = self._init2_profile()
        if derived is not None:
            return derived
        stated = self.vmsa_profile
        if stated is not None and stated.uses_init2:
            return stated
        which = (
            f"QEMU {self.qemu_version} is newer than {release_text(NEWEST_QEMU)}, the newest release whose APs' "
            f"state sevref knows"
            if self.qemu_version is not None
            else "no QEMU version is given"
        )
        found = f", found vmsa_profile {stated}" if stated is not None else ""
        raise ConfigError(
            f"mode sev-snp: SEV-SNP always uses KVM_SEV_INIT2 and {which}; state vmsa_profile init2 (every vCPU's "
            f"FPU as at reset, as QEMU 9.1-{release_text(NEWEST_QEMU)} measure it) or init2-ap-fpu-zero (the APs' "
            f"FPU 0){found}"
        )

    def _check_debug_swap(self, profile: VmsaProfile) -> None:
        if profile is not VmsaProfile.LEGACY or self.sev_features is not None:
            return
        if self.host_linux is None and self.host_kvm is None:
            return
        linux = self.host_linux
        swap = legacy_debug_swap(linux, self.host_kvm)
        if swap not in (DebugSwap.DEFAULT_ON, None):
            return
        kernel = describe(linux, self.host_kvm)
        if self.host_kvm is not None:
            raise ConfigError(
                f"mode sev-es: {kernel} does not say what its legacy KVM_SEV_ES_INIT does with DebugSwap; state "
                f"host_kvm debug_swap (absent, default-on, default-off or never) or sev_features (0x0 or 0x20)"
            )
        raise ConfigError(
            f"mode sev-es: {kernel} may set DebugSwap: 6.6.0-6.6.23 and 6.7.0-6.7.11 set it "
            f"by default on CPUs with DEBUG_SWAP and NO_NESTED_DATA_BP, 6.6.24, 6.7.12 and later do not "
            f"(5abf6dceb066); state sev_features (0x0 or 0x20)"
            + ("" if linux is None or linux.micro is not None else ", or give the stable release (e.g. 6.6.30)")
        )

    def _check_mode(self, mode: Mode) -> None:
        version = self.qemu_version
        if mode is Mode.SEV_ES:
            since = QEMU_SINCE["sev-es"]
            if version is not None and not version.at_least(*since.release):
                raise ConfigError(f"mode sev-es: QEMU {version} cannot launch SEV-ES guests (added in {since})")
            self._refuse_mode(mode, KvmFeature.SEV_ES)
        if mode is Mode.SEV_SNP:
            since = QEMU_SINCE["sev-snp"]
            if version is not None and not version.at_least(*since.release):
                raise ConfigError(f"mode sev-snp: QEMU {version} cannot launch SEV-SNP guests (added in {since})")
            self._refuse_mode(mode, KvmFeature.SEV_SNP)

    def _refuse_mode(self, mode: Mode, feature: KvmFeature) -> None:
        if self._has(feature) is not False:
            return
        kernel = describe(self.host_linux, self.host_kvm)
        guests = "SEV-ES" if feature is KvmFeature.SEV_ES else "SEV-SNP"
        raise ConfigError(f"mode {mode}: {kernel} cannot run {guests} guests{self._since(feature)}")

    def _since(self, feature: KvmFeature) -> str:
        """Where an upstream kernel got ``feature``, and what a distribution kernel with backports does instead."""
        if self.host_kvm is not None:
            return ""
        return (
            f" (added in {LINUX_SINCE[feature]}; a distribution kernel that carries it as a backport states host_kvm)"
        )

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
        machine = self._machine()
        if version.release != (7, 2) or machine is None:
            return
        named = machine.release or version.release
        # QEMU 7.2.0 appended a random SETUP_RNG_SEED to the kernel for pc-*-7.2
        # machine types (ffe2d2382e), so the kernel hash changed on every boot
        # (Dov Murik, qemu-devel 2023-02-07; AMDESE/qemu#10). 7.2.1 and 8.0
        # reverted it; machine types up to 7.1 never had it; Debian's package
        # carries the reverts since 1:7.2+dfsg-5 (debian_qemu_fixes).
        if named != (7, 2) or (version.micro or 0) >= 1 or self.carries(QemuFix.RNG_SEED_REVERT):
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


_FEATURE_NAMES = {
    KvmFeature.SEV_ES: "KVM's SEV-ES support",
    KvmFeature.INIT2: "KVM_SEV_INIT2",
    KvmFeature.SEV_SNP: "KVM's SEV-SNP support",
}
