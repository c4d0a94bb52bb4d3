"""The measuring core: launch digests from firmware bytes and a configuration.

SEV and SEV-ES (SEV API 6.5.1, LAUNCH_UPDATE_DATA / LAUNCH_UPDATE_VMSA)::

    GCTX.LD = SHA-256(firmware || [kernel-hashes table] || [VMSA_0 || ... || VMSA_{n-1}])

The guest-physical addresses do not enter GCTX.LD: KVM passes the firmware only
host addresses and lengths (``sev_launch_update_data``), so only the bytes and
their order matter. The VMSAs are measured for SEV-ES only, BSP first, then one
identical AP page per further vCPU.

Shared work is the performance design. A :class:`Firmware` hashes its bytes
once; every configuration copies that SHA-256 state, adds its table, then adds
VMSA pages one vCPU at a time and finalises a copy at every vCPU count asked for.

This module does no I/O: it takes bytes and returns values.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sevref.binfmt.hashtab import EMPTY_SHA256, build_hash_table, cmdline_sha256
from sevref.binfmt.ovmf import SEV_HASH_TABLE_RV_GUID, OvmfInfo, parse_ovmf
from sevref.binfmt.vmsa import BSP_RESET_EIP, Vmm, VmsaProfile, build_vmsa
from sevref.errors import ConfigError, FirmwareFormatError

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "MAX_VCPUS",
    "Firmware",
    "KernelBoot",
    "LaunchConfig",
    "LaunchMeasureInputs",
    "Mode",
    "launch_digest",
    "launch_digests",
    "parse_launch_measure_blob",
    "sev_launch_measurement",
    "tik_from_bytes",
]

MAX_VCPUS = 4096
"""Upper bound on vCPUs: KVM_MAX_VCPUS on x86-64 with CONFIG_MAXSMP."""
_LEGACY_SEV_FEATURES = (0x0, 0x20)  # KVM_SEV_ES_INIT: 0, or DebugSwap on Linux 6.6/6.7
_SNP_ACTIVE = 0x1


class Mode(enum.StrEnum):
    """The kind of confidential launch."""

    SEV = "sev"
    """SEV: memory encryption; the digest covers firmware and kernel hashes."""
    SEV_ES = "sev-es"
    """SEV-ES: adds encrypted register state; the digest also covers the VMSAs."""


@dataclass(frozen=True)
class KernelBoot:
    """Measured direct boot: what QEMU's kernel-hashes table records."""

    kernel_sha256: bytes
    """SHA-256 of the kernel file."""
    initrd_sha256: bytes | None = None
    """SHA-256 of the initrd file; None when no ``-initrd`` is given."""
    cmdline: str | None = None
    """The ``-append`` text; None when none is given (hashed like "")."""

    def __post_init__(self) -> None:
        """Check hash sizes and the command line.

        Raises:
            ConfigError: a hash is not 32 bytes or the command line has a NUL.
        """
        for name in ("kernel_sha256", "initrd_sha256"):
            value = getattr(self, name)
            if value is not None and len(value) != 32:
                raise ConfigError(f"{name}: expected 32 bytes, found {len(value)}")
        cmdline_sha256(self.cmdline)

    def table(self) -> bytes:
        """Return the 176 measured bytes of the kernel-hashes table.

        Returns:
            The padded table.
        """
        return build_hash_table(
            kernel_sha256=self.kernel_sha256,
            initrd_sha256=self.initrd_sha256 if self.initrd_sha256 is not None else EMPTY_SHA256,
            cmdline_sha256=cmdline_sha256(self.cmdline),
        )


@dataclass(frozen=True)
class LaunchConfig:
    """Everything but the firmware and the vCPU count that decides a launch digest.

    Fields that do not apply to the mode must keep their defaults, so that two
    configurations with the same digest compare equal.
    """

    mode: Mode
    """SEV or SEV-ES."""
    vmm: Vmm = Vmm.QEMU
    """Who builds the initial vCPU state (SEV-ES)."""
    cpu_signature: int | None = None
    """CPUID Fn0000_0001 EAX of the guest CPU, in every VMSA's RDX (SEV-ES, QEMU)."""
    vmsa_profile: VmsaProfile | None = None
    """KVM init API of the host (SEV-ES, QEMU)."""
    sev_features: int = 0
    """The VMSA SEV_FEATURES field (SEV-ES)."""
    boot: KernelBoot | None = None
    """Measured direct boot, or None for firmware-only boot."""

    def __post_init__(self) -> None:
        """Check that the fields fit the mode.

        Raises:
            ConfigError: a field is missing, out of range or does not apply.
        """
        if self.mode is Mode.SEV:
            if (self.vmm, self.cpu_signature, self.vmsa_profile, self.sev_features) != (
                Vmm.QEMU,
                None,
                None,
                0,
            ):
                raise ConfigError(
                    "mode sev measures no VMSA: vmm, cpu_signature, vmsa_profile and sev_features do not apply"
                )
            return
        if self.vmm is not Vmm.QEMU:
            raise ConfigError(
                f"mode {self.mode} with vmm {self.vmm}: {self.vmm} offers only SEV-SNP "
                f"guests, and its initial vCPU state is known only for SEV-SNP launches"
            )
        if self.cpu_signature is None:
            raise ConfigError(
                "mode sev-es with vmm qemu: expected the guest CPU (a model name, a "
                "signature, or family/model/stepping; for -cpu host, the host's signature)"
            )
        if not 0 <= self.cpu_signature <= 0xFFFF_FFFF:
            raise ConfigError(f"cpu_signature: expected a 32-bit value, found {self.cpu_signature:#x}")
        if self.vmsa_profile is None:
            raise ConfigError("mode sev-es with vmm qemu: expected a vmsa_profile (legacy or init2)")
        if not 0 <= self.sev_features < 1 << 64:
            raise ConfigError(f"sev_features: expected a 64-bit value, found {self.sev_features:#x}")
        if self.sev_features & _SNP_ACTIVE:
            raise ConfigError(
                f"sev_features: bit 0 (SNPActive) is for SEV-SNP guests only, found {self.sev_features:#x}"
            )
        if self.vmsa_profile is VmsaProfile.LEGACY and self.sev_features not in _LEGACY_SEV_FEATURES:
            raise ConfigError(
                f"sev_features: with vmsa_profile legacy KVM sets 0x0, or 0x20 (DebugSwap, "
                f"host Linux 6.6 and 6.7), found {self.sev_features:#x}"
            )


@dataclass(frozen=True, eq=False)
class Firmware:
    """A firmware image prepared for measuring: parsed once, hashed once."""

    data: bytes = field(repr=False)
    """The whole image."""
    info: OvmfInfo = field(repr=False)
    """Its parsed footer table."""
    sha256: bytes
    """SHA-256 of the image."""
    _state: _Hash = field(repr=False)

    @classmethod
    def from_bytes(cls, data: bytes) -> Firmware:
        """Parse and hash a firmware image.

        Args:
            data: the image exactly as QEMU maps it.

        Returns:
            The prepared firmware.

        Raises:
            FirmwareFormatError: the image is malformed.
        """
        info = parse_ovmf(data)
        state = hashlib.sha256(data)
        return cls(data=data, info=info, sha256=state.digest(), _state=state)

    def sev_es_ap_eip(self) -> int:
        """Return the AP reset address that SEV-ES and SEV-SNP launches need.

        Returns:
            The address from the SEV-ES reset block.

        Raises:
            FirmwareFormatError: the block is missing or holds 0 (QEMU refuses
                such images: "SEV-ES reset address is zero").
        """
        eip = self.info.sev_es_reset_eip
        if eip is None:
            raise FirmwareFormatError(
                "firmware has no SEV-ES reset block (GUID 00f771de-1a7e-4fcb-890e-68c77e2fb44e) "
                "in its footer table; expected one for SEV-ES: QEMU needs it to start the APs"
            )
        if eip == 0:
            raise FirmwareFormatError(
                "firmware's SEV-ES reset block holds AP reset address 0x0; expected a "
                'non-zero address (QEMU: "SEV-ES reset address is zero")'
            )
        return eip

    def check_kernel_hashes(self) -> None:
        """Check that QEMU can add a kernel-hashes table for this image.

        Raises:
            ConfigError: the table area is missing, has base 0 or is too small.
        """
        if self.info.kernel_hashes_supported():
            return
        area = self.info.hash_table
        found = "no such entry" if area is None else f"base {area.base:#x} size {area.size:#x}"
        raise ConfigError(
            f"firmware cannot measure a kernel: its kernel-hashes table area "
            f"({SEV_HASH_TABLE_RV_GUID}) has {found}; expected base != 0 and size >= 0xb0, "
            f"as in builds of OvmfPkg/AmdSev/AmdSevX64.dsc"
        )


def _check_vcpus(counts: Iterable[int]) -> list[int]:
    result = []
    for count in counts:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_VCPUS:
            raise ConfigError(f"vcpus: expected 1..{MAX_VCPUS}, found {count!r}")
        result.append(count)
    return result


def launch_digests(firmware: Firmware, config: LaunchConfig, vcpus: Iterable[int]) -> dict[int, bytes]:
    """Compute GCTX.LD for several vCPU counts of one configuration, sharing work.

    The cost is one pass over the table and over the VMSA pages of the largest
    count; the firmware itself was hashed when it was prepared.

    Args:
        firmware: the prepared image.
        config: the configuration.
        vcpus: the vCPU counts (each 1..MAX_VCPUS; SEV ignores them).

    Returns:
        vCPU count to the 32-byte digest.

    Raises:
        ConfigError: a count is out of range, or the firmware cannot measure a kernel.
        FirmwareFormatError: SEV-ES needs a reset block the firmware lacks.
    """
    counts = sorted(set(_check_vcpus(vcpus)))
    state = firmware._state.copy()
    if config.boot is not None:
        firmware.check_kernel_hashes()
        state.update(config.boot.table())
    if config.mode is Mode.SEV:
        digest = state.digest()
        return {count: digest for count in counts}
    ap_eip = firmware.sev_es_ap_eip()
    bsp, ap = (
        build_vmsa(
            eip=eip,
            vmm=config.vmm,
            profile=config.vmsa_profile,
            cpu_signature=config.cpu_signature,
            sev_features=config.sev_features,
        )
        for eip in (BSP_RESET_EIP, ap_eip)
    )
    digests: dict[int, bytes] = {}
    state.update(bsp)
    done = 1
    for count in counts:
        state.update(ap * (count - done))
        done = count
        digests[count] = state.copy().digest()
    return digests


def launch_digest(firmware: Firmware, config: LaunchConfig, vcpus: int = 1) -> bytes:
    """Compute GCTX.LD for one launch.

    Args:
        firmware: the prepared image.
        config: the configuration.
        vcpus: the number of vCPUs at launch (ignored by SEV).

    Returns:
        The 32-byte digest.

    Raises:
        ConfigError: see :func:`launch_digests`.
        FirmwareFormatError: see :func:`launch_digests`.
    """
    return launch_digests(firmware, config, [vcpus])[vcpus]


@dataclass(frozen=True)
class LaunchMeasureInputs:
    """The platform and policy values that the SEV launch measurement covers."""

    api_major: int
    """SEV firmware API major version (query-sev ``api-major``)."""
    api_minor: int
    """SEV firmware API minor version."""
    build: int
    """SEV firmware build id."""
    policy: int
    """Guest policy (32 bits)."""

    def __post_init__(self) -> None:
        """Check ranges.

        Raises:
            ConfigError: a value is out of range.
        """
        for name, limit in (("api_major", 0xFF), ("api_minor", 0xFF), ("build", 0xFF), ("policy", 0xFFFF_FFFF)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise ConfigError(f"{name}: expected 0..{limit:#x}, found {value!r}")


def sev_launch_measurement(digest: bytes, inputs: LaunchMeasureInputs, mnonce: bytes, tik: bytes) -> bytes:
    """Compute the SEV/SEV-ES launch measurement (SEV API 6.5.1, LAUNCH_MEASURE).

    ``HMAC-SHA256(0x04 || API_MAJOR || API_MINOR || BUILD || POLICY (le32) ||
    GCTX.LD || MNONCE; key GCTX.TIK)``.

    Args:
        digest: GCTX.LD, 32 bytes.
        inputs: API version, build and policy.
        mnonce: the 16-byte nonce the firmware chose.
        tik: the 16-byte transport integrity key.

    Returns:
        The 32-byte measurement.

    Raises:
        ConfigError: a value has the wrong size.
    """
    for name, value, size in (("digest", digest, 32), ("nonce", mnonce, 16), ("tik", tik, 16)):
        if len(value) != size:
            raise ConfigError(f"{name}: expected {size} bytes, found {len(value)}")
    message = (
        bytes([0x04, inputs.api_major, inputs.api_minor, inputs.build])
        + inputs.policy.to_bytes(4, "little")
        + digest
        + mnonce
    )
    return hmac.new(tik, message, hashlib.sha256).digest()


def parse_launch_measure_blob(text: str) -> tuple[bytes, bytes]:
    """Split QMP ``query-sev-launch-measure`` data into measurement and nonce.

    Args:
        text: base64 of the 48-byte blob (32-byte measurement || 16-byte MNONCE).

    Returns:
        (measurement, mnonce).

    Raises:
        ConfigError: not base64, or not 48 bytes.
    """
    try:
        blob = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ConfigError(f"launch measurement: expected base64, found {text[:60]!r} ({error})") from error
    if len(blob) != 48:
        raise ConfigError(f"launch measurement: expected 48 bytes (32-byte HMAC + 16-byte nonce), found {len(blob)}")
    return blob[:32], blob[32:]


def tik_from_bytes(data: bytes) -> bytes:
    """Extract the TIK from a key file's bytes.

    Args:
        data: 16 bytes (the TIK), or 32 bytes (TEK || TIK, as sevctl and
            libvirt's ``--tk`` files hold them).

    Returns:
        The 16-byte TIK.

    Raises:
        ConfigError: any other size.
    """
    if len(data) == 16:
        return data
    if len(data) == 32:
        return data[16:]
    raise ConfigError(f"expected 16 bytes (TIK) or 32 bytes (TEK || TIK), found {len(data)}")
