"""How a host launches a firmware image in each mode, and which images it cannot launch.

QEMU maps an SEV or SEV-ES guest's firmware as pflash unit 0 (encrypted in
place and measured; a split build's OVMF_VARS on pflash unit 1 is neither) or
with ``-bios``. An SEV-SNP guest's firmware can only be given with ``-bios``:
QEMU backs ``pc.bios`` with guest_memfd (``hw/i386/x86-common.c``
``x86_bios_rom_init``), while pflash needs read-only memory slots, which KVM
refuses to SEV-SNP VMs (``kvm_arch_has_readonly_mem``; QEMU then stops with
"pflash with kvm requires KVM readonly memory support", ``hw/i386/pc_sysfw.c``).
So an SEV-SNP guest has no OVMF_VARS file at all: its UEFI variables live in
guest memory and start from the measured image on every boot.

A firmware package's QEMU firmware descriptor (QEMU ``docs/interop/firmware.json``,
:mod:`sevref.binfmt.descriptor`) says how the image is meant to be mapped, in
which modes it runs and on which machine types: :func:`descriptor_store`,
:func:`check_descriptor` and :func:`launch_method` take it into account.

Each rule here is a row with its source, like the tables of
:mod:`sevref.hosts.qemu`; ``docs/host-stacks.md`` lists them for people.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sevref.binfmt.descriptor import Described, Descriptor, Device, FlashMode
from sevref.binfmt.vmsa import Vmm
from sevref.digest import Mode
from sevref.errors import ConfigError
from sevref.records.firmware import Basis, Nvram, Store

__all__ = [
    "BIOS_ALIGNMENT",
    "SNP_BOOT_FAILURES",
    "check_descriptor",
    "check_firmware",
    "descriptor_store",
    "launch_method",
    "nvram_at_launch",
]

BIOS_ALIGNMENT = 0x10000
"""QEMU loads a ``-bios`` image only if its size is a multiple of 64 KiB.

QEMU 10.0.13 and 10.2.2 ``hw/i386/x86-common.c`` ``x86_bios_rom_init``:
``if (bios_size <= 0 || (bios_size % 65536) != 0) goto bios_error;`` ("could
not load PC BIOS"). A 4 MiB split ``OVMF_CODE_4M.fd`` is 0x37c000 bytes, so no
SEV-SNP guest can boot it.
"""


@dataclass(frozen=True)
class _BootFailure:
    package: str
    before: tuple[int, int]
    why: str
    cite: str
    source: str


SNP_BOOT_FAILURES: tuple[_BootFailure, ...] = (
    _BootFailure(
        "ovmf",
        (2025, 2),
        "edk2 before stable202502 built with SECURE_BOOT_ENABLE, as Debian builds every OvmfPkgX64 image, sets up "
        "its emulated variable store in memory the guest has not yet accepted and stops with a #VC exception "
        "(error code 0x404)",
        "tianocore/edk2 pull request 6285, first in edk2-stable202502",
        "tianocore/edk2 pull request 6285 'Snp fixes' (Tom Lendacky, merged for edk2-stable202502; 52fa7e78d2, "
        "f0d2bc3ab2): 'When OVMF is built with SECURE_BOOT_ENABLE=TRUE, OVMF attempts to reserve and initialize "
        "memory for the EFI NV variable store during the PEI phase. However, this is done before SEV-SNP has had "
        "a chance to accept memory'; the failure as users met it: AMDESE/AMDSEV issue 261 ('kvm run failed "
        "Invalid argument' after 'Init EmuVariableNvStore'). Debian's debian/rules for ovmf 2022.11 sets "
        "-DSECURE_BOOT_ENABLE=TRUE for every image and its patches carry neither fix",
    ),
)
"""Debian firmware packages whose images cannot boot as SEV-SNP guests, by upstream version."""

_DEBIAN_UPSTREAM = re.compile(r"(?:\d+:)?(\d+)\.(\d+)")


def check_firmware(vmm: Vmm, mode: Mode, size: int, debian: tuple[str, str] | None) -> None:
    """Refuse a firmware image the host cannot launch in ``mode``.

    Args:
        vmm: who launches it.
        mode: the launch mode.
        size: the image's size in bytes.
        debian: (package, version) when the image comes from a Debian package.

    Raises:
        ConfigError: the image cannot be launched this way; the message says why and cites the source.
    """
    if vmm is not Vmm.QEMU or mode is not Mode.SEV_SNP:
        return
    if size % BIOS_ALIGNMENT:
        raise ConfigError(
            f"firmware: an SEV-SNP guest's firmware is loaded with -bios, and QEMU loads only images whose size "
            f"is a multiple of 64 KiB (x86_bios_rom_init); this one is {size:#x} bytes; use a unified or AmdSevX64 "
            f"image (a split OVMF_CODE_4M.fd, 0x37c000 bytes, never fits)"
        )
    if debian is None:
        return
    package, version = debian
    upstream = _DEBIAN_UPSTREAM.match(version)
    for row in SNP_BOOT_FAILURES:
        if package == row.package and upstream and (int(upstream.group(1)), int(upstream.group(2))) < row.before:
            raise ConfigError(
                f"firmware: Debian's {package} {version} cannot boot as an SEV-SNP guest: {row.why} ({row.cite}); "
                f"use {package} {row.before[0]}.{row.before[1]:02d} or later, or an AmdSevX64 build"
            )


_CLOUDS = {Vmm.EC2: "EC2", Vmm.GCE: "GCE"}


def descriptor_store(descriptor: Descriptor) -> Store | None:
    """Where a firmware keeps its UEFI variables, as its QEMU firmware descriptor maps it.

    QEMU ``docs/interop/firmware.json``: ``FirmwareMappingMemory`` is ``-bios
    FILE`` (ROM: nothing the firmware writes is kept); ``FirmwareFlashMode``
    (QEMU 7.0.0) ``stateless`` is an image mapped read-only whose "variable
    storage is not persisted", ``combined`` one copied per guest and written to,
    ``split`` (also when ``mode`` is absent) code with an NVRAM template that
    each guest gets a copy of as pflash unit 1.

    Args:
        descriptor: the descriptor that names the image.

    Returns:
        The store, or None when the descriptor does not say (``kernel``).
    """
    if descriptor.device is Device.MEMORY or descriptor.flash_mode is FlashMode.STATELESS:
        return Store.NONE
    if descriptor.flash_mode is FlashMode.COMBINED:
        return Store.EMBEDDED
    if descriptor.flash_mode is FlashMode.SPLIT:
        return Store.SEPARATE
    return None


def _machine_pattern(machine: str) -> str:
    """The versioned type an alias names (``q35``: the newest ``pc-q35-X.Y``; QEMU ``hw/i386/pc_q35.c``)."""
    return {"q35": "pc-q35-9999.0", "pc": "pc-i440fx-9999.0"}.get(machine, machine)


def check_descriptor(described: Described | None, vmm: Vmm, mode: Mode, machine: str | None) -> None:
    """Refuse a launch the firmware's own QEMU firmware descriptor does not list.

    The descriptor's ``features`` say in which modes the package vouches for the
    image (``amd-sev``, ``amd-sev-es``, ``amd-sev-snp``: QEMU
    ``docs/interop/firmware.json`` ``FirmwareFeature``; libvirt chooses firmware
    for an SEV, SEV-ES or SEV-SNP guest only among those listing it,
    ``src/qemu/qemu_firmware.c``), its ``targets`` on which machine types
    (globs, ``FirmwareTarget``).

    Args:
        described: the descriptor that names the image, with its package; None: nothing to check.
        vmm: who launches it (descriptors are QEMU's).
        mode: the launch mode.
        machine: the host stack's machine type.

    Raises:
        ConfigError: the mode's feature is not listed, or the machine type is not a
            target; the message names the package and the descriptor.
    """
    if described is None or vmm is not Vmm.QEMU:
        return
    descriptor = described.descriptor
    if not descriptor.lists(str(mode)):
        sev = [f for f in descriptor.features if f.startswith("amd-sev")]
        raise ConfigError(
            f"firmware: {described.label} does not list {_FEATURE[mode]} in its features "
            f"({', '.join(sev) or 'no amd-sev feature'}); expected it for {mode} (QEMU docs/interop/firmware.json "
            f"FirmwareFeature): the package does not offer this image for {mode} guests; exclude the mode for it, "
            f"or state modes_beyond_descriptor: [{mode}] in its firmware entry"
        )
    if machine is not None and descriptor.runs_on("x86_64", _machine_pattern(machine)) is False:
        globs = ", ".join(m for t in descriptor.targets if t.architecture == "x86_64" for m in t.machines)
        raise ConfigError(
            f"firmware: {described.label} lists machine types {globs} for x86_64; expected one matching {machine} "
            f"(QEMU docs/interop/firmware.json FirmwareTarget)"
        )


_FEATURE = {Mode.SEV: "amd-sev", Mode.SEV_ES: "amd-sev-es", Mode.SEV_SNP: "amd-sev-snp"}


def launch_method(vmm: Vmm, mode: Mode, descriptor: Descriptor | None = None) -> str:
    """Say how the host hands the firmware to the guest in ``mode``, for people.

    Args:
        vmm: who launches it.
        mode: the launch mode.
        descriptor: the QEMU firmware descriptor its package ships for it, if any.

    Returns:
        One sentence.
    """
    if vmm is not Vmm.QEMU:
        return f"{_CLOUDS[vmm]} loads the guest's firmware itself; what it measures is the image given here"
    named = "" if descriptor is None else f", as its package's descriptor {descriptor.name} maps it"
    if mode is Mode.SEV_SNP:
        return (
            "QEMU -bios FILE (loaded into guest_memfd and measured whole); no pflash and no OVMF_VARS: UEFI "
            "variables live in guest memory and start from the measured image on every boot"
        )
    if descriptor is not None and descriptor.device is Device.MEMORY:
        return f"QEMU -bios FILE (measured whole; nothing the firmware writes is kept){named}"
    if descriptor is not None and descriptor.flash_mode is FlashMode.STATELESS:
        return (
            f"QEMU pflash unit 0, read-only (-drive if=pflash,unit=0,readonly=on,file=FILE; encrypted in place and "
            f"measured), with no pflash unit 1: its variables are not kept{named}"
        )
    if descriptor is not None and descriptor.flash_mode is FlashMode.COMBINED:
        return (
            f"QEMU pflash unit 0 (-drive if=pflash,unit=0,file=FILE; encrypted in place and measured), a copy per "
            f"guest that also holds its UEFI variables, which the firmware writes back{named}"
        )
    if descriptor is not None and descriptor.nvram_template is not None:
        return (
            f"QEMU pflash unit 0 (-drive if=pflash,unit=0,readonly=on,file=FILE; encrypted in place and measured), "
            f"with a copy of {descriptor.nvram_template} as pflash unit 1, which QEMU does not measure{named}"
        )
    return (
        "QEMU pflash unit 0 (-drive if=pflash,unit=0,file=FILE; encrypted in place and measured), with a split "
        "build's OVMF_VARS as pflash unit 1, which QEMU does not measure; or -bios FILE"
    )


def nvram_at_launch(nvram: Nvram, vmm: Vmm, mode: Mode) -> Nvram:
    """Where a firmware's UEFI variables are kept when a host launches it in ``mode``.

    An SEV-SNP launch by QEMU has no variable store the host keeps, whatever
    the image: there is no OVMF_VARS file, and a store inside the image is part
    of the measured ``-bios`` image and is not written back. Every other launch
    keeps the firmware's own statement.

    Args:
        nvram: the firmware's own statement (its record's ``nvram``).
        vmm: who launches it.
        mode: the launch mode.

    Returns:
        The statement that holds for this launch.
    """
    if vmm is Vmm.QEMU and mode is Mode.SEV_SNP:
        return Nvram(Store.NONE, Basis.LAUNCH)
    return nvram
