"""Knowledge of host stacks: which VMSA a VMM, QEMU version and host kernel produce.

The launch digest of an SEV-ES or SEV-SNP guest depends on the host stack, not
only on the guest: QEMU's version and machine type decide whether KVM's legacy
``KVM_SEV_ES_INIT`` or ``KVM_SEV_INIT2`` runs (4 bytes of every VMSA differ),
and one QEMU release made kernel hashes unpredictable. This module turns a
host stack as a manifest describes it into the VMSA profile it produces, or
refuses it with the reason and what to use instead. Sources are in comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sevref.binfmt.vmsa import Vmm, VmsaProfile
from sevref.digest import Mode
from sevref.errors import ConfigError

__all__ = ["HostStack", "Version", "parse_version"]

_MACHINE = re.compile(r"pc-(?:q35|i440fx)-(\d+)\.(\d+)")


@dataclass(frozen=True, order=True)
class Version:
    """A dotted version: major.minor[.micro]."""

    major: int
    """Major number."""
    minor: int
    """Minor number."""
    micro: int | None = None
    """Micro number, when given."""

    def __str__(self) -> str:
        """Return the dotted form."""
        return f"{self.major}.{self.minor}" + ("" if self.micro is None else f".{self.micro}")

    def at_least(self, major: int, minor: int) -> bool:
        """Tell whether this is major.minor or later.

        Args:
            major: the major number.
            minor: the minor number.

        Returns:
            True when this version is not older.
        """
        return (self.major, self.minor) >= (major, minor)


def parse_version(text: str, what: str) -> Version:
    """Read "6.10" or "7.2.1".

    Args:
        text: the version.
        what: its name, for the error.

    Returns:
        The version.

    Raises:
        ConfigError: not a dotted version.
    """
    match = re.fullmatch(r"(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?", text)
    if not match:
        raise ConfigError(f"{what}: expected a version such as 9.1 or 7.2.1, found {text!r}")
    major, minor, micro = match.groups()
    return Version(int(major), int(minor), None if micro is None else int(micro))


# QEMU gained SEV-SNP guests, the legacy-vm-type property and KVM_SEV_INIT2 in
# 9.1 (target/i386/sev.c; pulls of 2024-04-23 and 2024-07-14). Every QEMU
# release launches SEV/SEV-ES with the legacy KVM_SEV_(ES_)INIT unless
# legacy-vm-type=off: "auto" picks legacy while no INIT2-only option is set
# (sev_kvm_type, sev_init2_required).
_QEMU_INIT2 = (9, 1)
# kernel-hashes=on exists since QEMU 6.2 (qapi/qom.json "since 6.2").
_QEMU_KERNEL_HASHES = (6, 2)
# Linux: KVM_SEV_INIT2 since 6.10 (kvm-sev-init2 series), SEV-SNP host support
# since 6.11. 6.6 added DebugSwap for SEV-ES, on by default (d1f85fbe836e);
# 6.8 turned the default off (5abf6dceb066), as did later 6.6.y stable releases.
_LINUX_INIT2 = (6, 10)
_LINUX_SNP = (6, 11)
_LINUX_DEBUG_SWAP = ((6, 6), (6, 7))


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
    host_linux: Version | None = None
    """The host kernel's version, when known."""
    vmsa_profile: VmsaProfile | None = None
    """The VMSA profile, when stated instead of (or besides) the QEMU version."""
    sev_features: int | None = None
    """SEV-ES VMSA SEV_FEATURES, when not the default 0."""
    guest_features: int | None = None
    """SEV-SNP guest features, when not the default 0x1 (SNPActive)."""

    def check(self) -> None:
        """Check what the host stack can be without looking at any guest.

        Raises:
            ConfigError: a contradiction, naming the field and why.
        """
        if self.vmm is not Vmm.QEMU:
            for name in ("qemu_version", "machine", "legacy_vm_type", "vmsa_profile", "sev_features"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"{name.replace('_', ' ')}: does not apply to vmm {self.vmm}")
            return
        if self.qemu_version is None and self.vmsa_profile is None:
            raise ConfigError("vmm qemu: expected qemu (version and machine) or vmsa_profile")
        if self.qemu_version is not None and self.machine is not None:
            machine = self.machine_version()
            if (machine.major, machine.minor) > (self.qemu_version.major, self.qemu_version.minor):
                raise ConfigError(
                    f"qemu machine {self.machine}: newer than QEMU {self.qemu_version}, which does not have it"
                )
        version = self.qemu_version
        if self.legacy_vm_type is not None and version is not None and not version.at_least(*_QEMU_INIT2):
            raise ConfigError(
                f"qemu legacy_vm_type: QEMU {version} has no such property (added in 9.1); "
                f"it always uses the legacy KVM_SEV_ES_INIT"
            )
        if self.legacy_vm_type == "off" and self.host_linux is not None and not self.host_linux.at_least(*_LINUX_INIT2):
            raise ConfigError(
                f"qemu legacy_vm_type off: needs KVM_SEV_INIT2, which host Linux {self.host_linux} lacks "
                f"(added in 6.10); QEMU refuses to start"
            )
        derived = self._derived_profile()
        if self.vmsa_profile is not None and derived is not None and self.vmsa_profile is not derived:
            raise ConfigError(
                f"vmsa_profile {self.vmsa_profile}: contradicts QEMU {self.qemu_version} with legacy_vm_type "
                f"{self.legacy_vm_type or 'auto'}, which produces {derived}"
            )

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
            return Version(int(match.group(1)), int(match.group(2)))
        if self.qemu_version is None:
            raise ConfigError(f"qemu machine {self.machine}: an alias needs the QEMU version to resolve it")
        return Version(self.qemu_version.major, self.qemu_version.minor)

    def _derived_profile(self) -> VmsaProfile | None:
        if self.qemu_version is None:
            return None
        if self.qemu_version.at_least(*_QEMU_INIT2) and self.legacy_vm_type == "off":
            return VmsaProfile.INIT2
        return VmsaProfile.LEGACY

    def profile_for(self, mode: Mode, with_kernel: bool) -> VmsaProfile | None:
        """Return the VMSA profile a launch of ``mode`` gets on this host, or refuse it.

        Args:
            mode: the launch mode.
            with_kernel: whether the launch measures a kernel (kernel-hashes=on).

        Returns:
            The profile (None for vmm ec2 and gce, and for modes without a VMSA).

        Raises:
            ConfigError: the host cannot launch ``mode`` this way, or its digest
                cannot be predicted; the message says why and what to use instead.
        """
        if self.vmm is not Vmm.QEMU:
            if mode is not Mode.SEV_SNP:
                raise ConfigError(f"mode {mode}: vmm {self.vmm} offers SEV-SNP guests only")
            return None
        if with_kernel:
            self._check_kernel_hashes()
        if mode is Mode.SEV_SNP:
            if self.qemu_version is not None and not self.qemu_version.at_least(*_QEMU_INIT2):
                raise ConfigError(f"mode sev-snp: QEMU {self.qemu_version} cannot launch SEV-SNP guests (added in 9.1)")
            if self.host_linux is not None and not self.host_linux.at_least(*_LINUX_SNP):
                raise ConfigError(
                    f"mode sev-snp: host Linux {self.host_linux} cannot run SEV-SNP guests (added in 6.11)"
                )
            if self.vmsa_profile is VmsaProfile.LEGACY and self.qemu_version is None:
                raise ConfigError(
                    "mode sev-snp: SEV-SNP always uses KVM_SEV_INIT2; vmsa_profile legacy cannot launch it"
                )
            return VmsaProfile.INIT2
        if mode is Mode.SEV:
            return None
        profile = self.vmsa_profile or self._derived_profile()
        if profile is None:  # pragma: no cover - check() requires a version or a profile
            raise ConfigError("vmm qemu: expected qemu (version and machine) or vmsa_profile")
        linux = self.host_linux
        if (
            profile is VmsaProfile.LEGACY
            and self.sev_features is None
            and linux is not None
            and (linux.major, linux.minor) in _LINUX_DEBUG_SWAP
        ):
            raise ConfigError(
                f"mode sev-es: host Linux {linux} turned DebugSwap on by default on CPUs that have it, and "
                f"later {linux.major}.{linux.minor}.y releases turned it off; state sev_features (0x0 or 0x20)"
            )
        return profile

    def _check_kernel_hashes(self) -> None:
        version = self.qemu_version
        if version is None:
            return
        if not version.at_least(*_QEMU_KERNEL_HASHES):
            raise ConfigError(f"kernel hashes: QEMU {version} has no kernel-hashes=on (added in 6.2)")
        if (version.major, version.minor) != (7, 2) or self.machine is None:
            return
        machine = self.machine_version()
        # QEMU 7.2.0 appended a random SETUP_RNG_SEED to the kernel for pc-*-7.2
        # machine types (ffe2d2382e), so the kernel hash changed on every boot
        # (Dov Murik, qemu-devel 2023-02-07; AMDESE/qemu#10). 7.2.1 and 8.0
        # reverted it; machine types up to 7.1 never had it.
        if (machine.major, machine.minor) == (7, 2) and version.micro in (None, 0):
            exact = "QEMU 7.2.0" if version.micro == 0 else "QEMU 7.2 (7.2.0 or later 7.2.x?)"
            raise ConfigError(
                f"kernel hashes: {exact} with machine {self.machine} appends a random RNG seed to the kernel, "
                f"so its digest changes on every boot; use machine type pc-q35-7.1 (or pc-i440fx-7.1), or "
                f"QEMU 7.2.1 or later" + ("" if version.micro == 0 else ", and give the exact version")
            )
