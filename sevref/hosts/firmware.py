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

Each rule here is a row with its source, like the tables of
:mod:`sevref.hosts.qemu`; ``docs/host-stacks.md`` lists them for people.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sevref.binfmt.vmsa import Vmm
from sevref.digest import Mode
from sevref.errors import ConfigError
from sevref.records.firmware import Basis, Nvram, Store

__all__ = ["BIOS_ALIGNMENT", "SNP_BOOT_FAILURES", "check_firmware", "launch_method", "nvram_at_launch"]

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


def launch_method(vmm: Vmm, mode: Mode) -> str:
    """Say how the host hands the firmware to the guest in ``mode``, for people.

    Args:
        vmm: who launches it.
        mode: the launch mode.

    Returns:
        One sentence.
    """
    if vmm is not Vmm.QEMU:
        return f"{_CLOUDS[vmm]} loads the guest's firmware itself; what it measures is the image given here"
    if mode is Mode.SEV_SNP:
        return (
            "QEMU -bios FILE (loaded into guest_memfd and measured whole); no pflash and no OVMF_VARS: UEFI "
            "variables live in guest memory and start from the measured image on every boot"
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
