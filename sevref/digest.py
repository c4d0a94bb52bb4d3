"""The measuring core: launch digests from firmware bytes and a configuration.

SEV and SEV-ES (SEV API 6.5.1, LAUNCH_UPDATE_DATA / LAUNCH_UPDATE_VMSA)::

    GCTX.LD = SHA-256(firmware || [kernel-hashes table] || [VMSA_0 || ... || VMSA_{n-1}])

The guest-physical addresses do not enter GCTX.LD: KVM passes the firmware only
host addresses and lengths (``sev_launch_update_data``), so only the bytes and
their order matter. The VMSAs are measured for SEV-ES only, BSP first, then one
identical AP page per further vCPU.

SEV-SNP (SNP ABI 8.17.2, SNP_LAUNCH_UPDATE): every measured page extends a
48-byte chain, ``LD = SHA-384(LD || PAGE_INFO)`` where PAGE_INFO also holds the
page's SHA-384 (or zeros), its type and its guest-physical address. The order
is the firmware pages, then the metadata sections in the image's own order
(QEMU ``snp_populate_metadata_pages``), then one VMSA page per vCPU. The
attestation report's MEASUREMENT is the final LD.

Shared work is the performance design. A :class:`Firmware` hashes its bytes
once (and its SNP page chain once); every configuration copies that state, adds
its table or metadata, then adds VMSA pages one vCPU at a time and keeps the
digest at every vCPU count asked for.

This module does no I/O: it takes bytes and returns values.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sevref.binfmt.hashtab import EMPTY_SHA256, TABLE_SIZE, build_hash_table, cmdline_sha256, hash_table_page
from sevref.binfmt.ovmf import SEV_HASH_TABLE_RV_GUID, SEV_METADATA_GUID, OvmfInfo, SectionType, parse_ovmf
from sevref.binfmt.vmsa import BSP_RESET_EIP, EC2_LEGACY_RDX, EC2_RDX, Vmm, VmsaProfile, build_vmsa
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
    "PageType",
    "check_launch",
    "launch_digest",
    "launch_digests",
    "parse_launch_measure_blob",
    "sev_launch_measurement",
    "tik_from_bytes",
]

MAX_VCPUS = 4096
"""Upper bound on vCPUs: KVM_MAX_VCPUS on x86-64 with CONFIG_MAXSMP."""
_LEGACY_SEV_FEATURES = (0x0, 0x20)  # KVM_SEV_ES_INIT: 0, or DebugSwap on Linux 6.6-6.9 (sevref.hosts.DEBUG_SWAP)
_SNP_ACTIVE = 0x1
_PAGE = 4096
_SNP_VMSA_GPA = 0xFFFF_FFFF_F000  # (u64)-1 page-aligned, bits above 51 cleared (SNP ABI 8.17)
_ZERO48 = bytes(48)
_ZERO_PAGE_SHA384 = hashlib.sha384(bytes(_PAGE)).digest()
# SNP ABI 8.17.2 Table 67, PAGE_INFO: DIGEST_CUR[48] CONTENTS[48] LENGTH u16 PAGE_TYPE u8
# IMI_PAGE u8 VMPL3_PERMS u8 VMPL2_PERMS u8 VMPL1_PERMS u8 reserved u8 GPA u64.
_PAGE_INFO = struct.Struct("<48s48sHBBBBBBQ")
if _PAGE_INFO.size != 0x70:  # pragma: no cover - a declaration error, caught at import
    raise ImportError(f"PAGE_INFO is 0x70 bytes, declared {_PAGE_INFO.size:#x}")


class Mode(enum.StrEnum):
    """The kind of confidential launch."""

    SEV = "sev"
    """SEV: memory encryption; the digest covers firmware and kernel hashes."""
    SEV_ES = "sev-es"
    """SEV-ES: adds encrypted register state; the digest also covers the VMSAs."""
    SEV_SNP = "sev-snp"
    """SEV-SNP: the SHA-384 page chain that the attestation report's MEASUREMENT holds."""
    SEV_SNP_FIRMWARE = "sev-snp-firmware"
    """Not a launch: the SEV-SNP chain over the firmware pages only, a prefix to extend."""


class PageType(enum.IntEnum):
    """SNP page types (SNP ABI, SNP_LAUNCH_UPDATE PAGE_TYPE)."""

    NORMAL = 1
    """Data whose contents are measured."""
    VMSA = 2
    """A vCPU save area."""
    ZERO = 3
    """A page of zeros; contents not measured."""
    UNMEASURED = 4
    """Contents not measured."""
    SECRETS = 5
    """The secrets page, filled by the firmware."""
    CPUID = 6
    """The CPUID page, checked by the firmware."""


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
    """CPUID Fn0000_0001 EAX of the guest CPU, in every VMSA's RDX (QEMU); for
    EC2, None (RDX 0x600, today's) or 0x0 (EC2's RDX before sev-snp-measure 0.0.13)."""
    vmsa_profile: VmsaProfile | None = None
    """The rule for QEMU's VMSAs: KVM init API and AP state (SEV-ES, SEV-SNP)."""
    sev_features: int = 0
    """The VMSA SEV_FEATURES field (SEV-ES)."""
    boot: KernelBoot | None = None
    """Measured direct boot, or None for firmware-only boot."""

    def __post_init__(self) -> None:
        """Check that the fields fit the mode.

        Raises:
            ConfigError: a field is missing, out of range or does not apply.
        """
        if self.mode in (Mode.SEV, Mode.SEV_SNP_FIRMWARE):
            if (self.vmm, self.cpu_signature, self.vmsa_profile, self.sev_features) != (
                Vmm.QEMU,
                None,
                None,
                0,
            ):
                raise ConfigError(
                    f"mode {self.mode} measures no VMSA: vmm, cpu_signature, vmsa_profile and sev_features do not apply"
                )
            if self.mode is Mode.SEV_SNP_FIRMWARE and self.boot is not None:
                raise ConfigError("mode sev-snp-firmware measures the firmware only: a kernel does not apply")
            return
        if not 0 <= self.sev_features < 1 << 64:
            raise ConfigError(f"sev_features: expected a 64-bit value, found {self.sev_features:#x}")
        if self.vmm is not Vmm.QEMU:
            if self.mode is Mode.SEV_ES:
                offer = (
                    "EC2 offers SEV-SNP guests only"
                    if self.vmm is Vmm.EC2
                    else "sevref supports SEV-SNP launches on GCE only (GCE also offers SEV)"
                )
                raise ConfigError(
                    f"mode {self.mode} with vmm {self.vmm}: {offer}, and its initial vCPU state is known only "
                    f"for SEV-SNP launches"
                )
            if self.vmsa_profile is not None:
                raise ConfigError(f"vmm {self.vmm} fixes the FPU state itself: vmsa_profile does not apply")
            if self.vmm is Vmm.EC2 and self.cpu_signature not in (None, EC2_LEGACY_RDX):
                raise ConfigError(
                    f"vmm ec2: cpu_signature sets RDX; EC2 is known to have used {EC2_RDX:#x} (today's: leave "
                    f"cpu_signature out) and {EC2_LEGACY_RDX:#x} (earlier launches), found {self.cpu_signature:#x}"
                )
            if self.vmm is Vmm.GCE and self.cpu_signature is not None:
                raise ConfigError("vmm gce fixes RDX itself: cpu_signature does not apply")
        else:
            if self.cpu_signature is None:
                raise ConfigError(
                    f"mode {self.mode} with vmm qemu: expected the guest CPU (a model name, a "
                    f"signature, or family/model/stepping; for -cpu host, the host's signature)"
                )
            if not 0 <= self.cpu_signature <= 0xFFFF_FFFF:
                raise ConfigError(f"cpu_signature: expected a 32-bit value, found {self.cpu_signature:#x}")
            if self.vmsa_profile is None:
                raise ConfigError(
                    f"mode {self.mode} with vmm qemu: expected a vmsa_profile (legacy, init2 or init2-ap-fpu-zero)"
                )
        if self.mode is Mode.SEV_SNP:
            if self.vmsa_profile is VmsaProfile.LEGACY:
                raise ConfigError(
                    "vmsa_profile: SEV-SNP guests are always launched with KVM_SEV_INIT2 (init2, or "
                    "init2-ap-fpu-zero from QEMU 10.1), found legacy"
                )
            if not self.sev_features & _SNP_ACTIVE:
                raise ConfigError(
                    f"guest_features: bit 0 (SNPActive) must be set for SEV-SNP, found {self.sev_features:#x}"
                )
            return
        if self.sev_features & _SNP_ACTIVE:
            raise ConfigError(
                f"sev_features: bit 0 (SNPActive) is for SEV-SNP guests only, found {self.sev_features:#x}"
            )
        if self.vmsa_profile is VmsaProfile.LEGACY and self.sev_features not in _LEGACY_SEV_FEATURES:
            raise ConfigError(
                f"sev_features: with vmsa_profile legacy KVM sets 0x0, or 0x20 (DebugSwap, "
                f"host Linux 6.6 to 6.9), found {self.sev_features:#x}"
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

    @cached_property
    def snp_prefix(self) -> bytes:
        """The SEV-SNP chain over the firmware pages alone, computed once.

        Every page is measured as NORMAL at its guest-physical address; the
        image ends at 4 GiB.

        Returns:
            The 48-byte digest.
        """
        return _snp_normal(_ZERO48, self.info.gpa, self.data)


def _ap_eip(info: OvmfInfo) -> int:
    """The AP reset address that SEV-ES and SEV-SNP launches need."""
    eip = info.sev_es_reset_eip
    if eip is None:
        raise FirmwareFormatError(
            "firmware has no SEV-ES reset block (GUID 00f771de-1a7e-4fcb-890e-68c77e2fb44e) "
            "in its footer table; expected one for SEV-ES and SEV-SNP: QEMU needs it to start the APs"
        )
    if eip == 0:
        raise FirmwareFormatError(
            "firmware's SEV-ES reset block holds AP reset address 0x0; expected a "
            'non-zero address (QEMU: "SEV-ES reset address is zero")'
        )
    return eip


def _check_kernel_hashes(info: OvmfInfo) -> None:
    """Check that QEMU can add a kernel-hashes table for this image."""
    if info.kernel_hashes_supported():
        return
    area = info.hash_table
    found = "no such entry" if area is None else f"base {area.base:#x} size {area.size:#x}"
    raise ConfigError(
        f"firmware cannot measure a kernel: its kernel-hashes table area "
        f"({SEV_HASH_TABLE_RV_GUID}) has {found}; expected base != 0 and size >= 0xb0, "
        f"as in builds of OvmfPkg/AmdSev/AmdSevX64.dsc"
    )


def _check_snp_metadata(info: OvmfInfo, config: LaunchConfig) -> None:
    """Check that the image's SNP metadata is there and measurable for ``config``."""
    sections = info.snp_sections
    if sections is None:
        raise FirmwareFormatError(
            f"firmware has no SEV-SNP metadata ({SEV_METADATA_GUID}); expected it for a SEV-SNP launch "
            f'(QEMU: "Failed to locate SEV metadata header"); mode sev-snp-firmware gives the '
            f"firmware-only prefix"
        )
    for section in sections:
        kind = section.kind
        if kind is None:
            known = ", ".join(f"{t.value:#x} {t.name}" for t in SectionType)
            raise FirmwareFormatError(
                f"{section.describe()}: unknown section type; expected one of {known}, whose measurement sevref knows"
            )
        if kind in (SectionType.SNP_SECRETS, SectionType.CPUID) and section.size != _PAGE:
            raise FirmwareFormatError(
                f"{section.describe()}: size {section.size:#x}; expected one page (0x1000), the "
                f"only size whose measurement sevref can confirm"
            )
        if kind is SectionType.SNP_KERNEL_HASHES and config.boot is not None:
            offset = (info.hash_table.base if info.hash_table else 0) & (_PAGE - 1)
            if offset + TABLE_SIZE > section.size:
                raise FirmwareFormatError(
                    f"{section.describe()}: the kernel-hashes table at page offset {offset:#x} does not fit "
                    f"its {section.size:#x} bytes; expected offset + 0xb0 <= size"
                )
    if config.boot is not None and not any(s.kind is SectionType.SNP_KERNEL_HASHES for s in sections):
        raise ConfigError(
            "firmware cannot measure a kernel under SEV-SNP: its metadata has no SNP_KERNEL_HASHES "
            "section (type 0x10); expected one, as in builds of OvmfPkg/AmdSev/AmdSevX64.dsc"
        )


def check_launch(info: OvmfInfo, config: LaunchConfig) -> None:
    """Check, without hashing anything, that a firmware can serve a configuration.

    :func:`launch_digests` runs exactly these checks first, so a configuration
    that passes here will be measured.

    Args:
        info: the parsed firmware.
        config: the configuration.

    Raises:
        ConfigError: the firmware cannot measure the kernel the configuration boots.
        FirmwareFormatError: the firmware lacks what the launch needs (reset
            block, SNP metadata) or has metadata sevref cannot measure.
    """
    if config.mode is Mode.SEV_SNP_FIRMWARE:
        return
    if config.boot is not None:
        _check_kernel_hashes(info)
    if config.mode in (Mode.SEV_ES, Mode.SEV_SNP):
        _ap_eip(info)
    if config.mode is Mode.SEV_SNP:
        _check_snp_metadata(info, config)


def _snp_update(digest: bytes, page_type: PageType, gpa: int, contents: bytes) -> bytes:
    """Extend the SNP chain by one page (SNP ABI 8.17.2)."""
    return hashlib.sha384(_PAGE_INFO.pack(digest, contents, _PAGE_INFO.size, page_type, 0, 0, 0, 0, 0, gpa)).digest()


def _snp_normal(digest: bytes, gpa: int, data: bytes) -> bytes:
    """Extend the chain by ``data`` as NORMAL pages from ``gpa`` on."""
    view = memoryview(data)
    for offset in range(0, len(data), _PAGE):
        page = hashlib.sha384(view[offset : offset + _PAGE]).digest()
        digest = _snp_update(digest, PageType.NORMAL, gpa + offset, page)
    return digest


def _snp_zeros(digest: bytes, gpa: int, size: int) -> bytes:
    """Extend the chain by ``size`` bytes of zeros as NORMAL pages, without making them."""
    for offset in range(0, size, _PAGE):
        digest = _snp_update(digest, PageType.NORMAL, gpa + offset, _ZERO_PAGE_SHA384)
    return digest


def _snp_blank(digest: bytes, page_type: PageType, gpa: int, size: int) -> bytes:
    """Extend the chain by ``size`` bytes of pages whose contents are not measured."""
    for offset in range(0, size, _PAGE):
        digest = _snp_update(digest, page_type, gpa + offset, _ZERO48)
    return digest


def _snp_metadata(digest: bytes, firmware: Firmware, config: LaunchConfig) -> bytes:
    """Extend the chain by the firmware's metadata sections, as the VMM measures them.

    :func:`check_launch` has checked the sections.
    """
    table = None if config.boot is None else config.boot.table()
    deferred = []
    for section in firmware.info.snp_sections or ():
        kind = section.kind
        if kind is SectionType.SNP_SEC_MEM:
            # GCE leaves pre-validated memory unmeasured (sev-snp-measure 0.0.12, PR #56).
            blank = PageType.UNMEASURED if config.vmm is Vmm.GCE else PageType.ZERO
            digest = _snp_blank(digest, blank, section.gpa, section.size)
        elif kind is SectionType.SVSM_CAA:
            digest = _snp_blank(digest, PageType.ZERO, section.gpa, section.size)
        elif kind is SectionType.SNP_KERNEL_HASHES:
            if table is None:
                digest = _snp_blank(digest, PageType.ZERO, section.gpa, section.size)
            else:
                # Only the pages that hold the table are built: a section can be up to 4 GiB of zeros.
                offset = (firmware.info.hash_table.base if firmware.info.hash_table else 0) & (_PAGE - 1)
                held = -(-(offset + len(table)) // _PAGE) * _PAGE
                digest = _snp_normal(digest, section.gpa, hash_table_page(table, offset, held))
                digest = _snp_zeros(digest, section.gpa + held, section.size - held)
        elif kind is SectionType.CPUID and config.vmm is Vmm.EC2:
            deferred.append(section)  # EC2 measures the CPUID page last (sev-snp-measure 0.0.6)
        else:
            page_type = PageType.CPUID if kind is SectionType.CPUID else PageType.SECRETS
            digest = _snp_update(digest, page_type, section.gpa, _ZERO48)
    for section in deferred:
        digest = _snp_update(digest, PageType.CPUID, section.gpa, _ZERO48)
    return digest


def _check_vcpus(counts: Iterable[int]) -> list[int]:
    given = list(counts)
    if all(type(count) is int for count in given) and (not given or (min(given) >= 1 and max(given) <= MAX_VCPUS)):
        return given  # the common case, checked in one pass
    result = []
    for count in given:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_VCPUS:
            raise ConfigError(f"vcpus: expected 1..{MAX_VCPUS}, found {count!r}")
        result.append(count)
    return result


def _vmsa_pages(firmware: Firmware, config: LaunchConfig) -> tuple[bytes, bytes]:
    """The BSP and AP pages of a configuration."""
    ap_eip = _ap_eip(firmware.info)
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
    return bsp, ap


def launch_digests(
    firmware: Firmware, config: LaunchConfig, vcpus: Iterable[int], *, seed: bytes | None = None
) -> dict[int, bytes]:
    """Compute the launch digest for several vCPU counts of one configuration, sharing work.

    The cost is one pass over the table or metadata and over the VMSA pages of
    the largest count; the firmware itself was hashed when it was prepared.

    Args:
        firmware: the prepared image.
        config: the configuration.
        vcpus: the vCPU counts (each 1..MAX_VCPUS; SEV and the SNP firmware
            prefix ignore them).
        seed: SEV-SNP only: a firmware prefix (``sev-snp-firmware``) to start
            from instead of hashing the firmware pages; the image is still
            read for its metadata and reset address.

    Returns:
        vCPU count to the digest: 32 bytes (SHA-256 GCTX.LD) for SEV and
        SEV-ES, 48 bytes (SHA-384) for SEV-SNP.

    Raises:
        ConfigError: a count is out of range, or the firmware cannot measure a kernel.
        FirmwareFormatError: the firmware lacks what the launch needs (reset
            block, SNP metadata) or has metadata sevref cannot measure.
    """
    counts = sorted(set(_check_vcpus(vcpus)))
    check_launch(firmware.info, config)
    if seed is not None and (config.mode is not Mode.SEV_SNP or len(seed) != 48):
        raise ConfigError(
            f"firmware_prefix: expected 48 bytes with mode sev-snp, found {len(seed)} bytes with mode {config.mode}"
        )
    if config.mode is Mode.SEV_SNP_FIRMWARE:
        return dict.fromkeys(counts, firmware.snp_prefix)
    if config.mode is Mode.SEV_SNP:
        digest = _snp_metadata(seed or firmware.snp_prefix, firmware, config)
        bsp, ap = (hashlib.sha384(page).digest() for page in _vmsa_pages(firmware, config))
        snp: dict[int, bytes] = {}
        digest, done = _snp_update(digest, PageType.VMSA, _SNP_VMSA_GPA, bsp), 1
        # Every AP's PAGE_INFO is the chain so far followed by the same 64 bytes.
        after = _PAGE_INFO.pack(_ZERO48, ap, _PAGE_INFO.size, PageType.VMSA, 0, 0, 0, 0, 0, _SNP_VMSA_GPA)[48:]
        sha384 = hashlib.sha384
        for count in counts:
            for _ in range(done, count):
                digest = sha384(digest + after).digest()
            snp[count], done = digest, count
        return snp
    state = firmware._state.copy()
    if config.boot is not None:
        state.update(config.boot.table())
    if config.mode is Mode.SEV:
        return dict.fromkeys(counts, state.digest())
    bsp, ap = _vmsa_pages(firmware, config)
    digests: dict[int, bytes] = {}
    state.update(bsp)
    done = 1
    for count in counts:
        state.update(ap * (count - done))
        done = count
        digests[count] = state.copy().digest()
    return digests


def launch_digest(firmware: Firmware, config: LaunchConfig, vcpus: int = 1, *, seed: bytes | None = None) -> bytes:
    """Compute the launch digest of one launch.

    Args:
        firmware: the prepared image.
        config: the configuration.
        vcpus: the number of vCPUs at launch (ignored by SEV).
        seed: see :func:`launch_digests`.

    Returns:
        The digest (32 bytes, or 48 for SEV-SNP).

    Raises:
        ConfigError: see :func:`launch_digests`.
        FirmwareFormatError: see :func:`launch_digests`.
    """
    return launch_digests(firmware, config, [vcpus], seed=seed)[vcpus]


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
