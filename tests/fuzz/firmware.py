"""Fuzz target: whole OVMF images, parsed and then measured for every kind of launch."""

from __future__ import annotations

from sevref.binfmt.ovmf import SEV_ES_RESET_BLOCK_GUID
from sevref.binfmt.vmsa import Vmm, VmsaProfile
from sevref.digest import Firmware, KernelBoot, LaunchConfig, Mode, launch_digests
from sevref.errors import SevrefError
from tests.conftest import REPO
from tests.golden.make_inputs import SECTIONS
from tests.images import legacy_image, ovmf_image, snp_image

TINY = REPO / "tests" / "golden" / "inputs" / "tiny.fd"
"""The golden 16 KiB image: footer table, kernel-hashes area and SEV-SNP metadata."""
BOOT = KernelBoot(kernel_sha256=bytes(range(32)), initrd_sha256=bytes(32), cmdline="console=ttyS0")
_CPU = 0xA00F11
SNP = LaunchConfig(Mode.SEV_SNP, cpu_signature=_CPU, vmsa_profile=VmsaProfile.INIT2, sev_features=0x1)
"""A SEV-SNP launch on QEMU, firmware only."""
SNP_BOOT = LaunchConfig(Mode.SEV_SNP, cpu_signature=_CPU, vmsa_profile=VmsaProfile.INIT2, sev_features=0x21, boot=BOOT)
"""A SEV-SNP launch on QEMU with measured direct boot."""
CONFIGS = (
    LaunchConfig(Mode.SEV),
    LaunchConfig(Mode.SEV, boot=BOOT),
    LaunchConfig(Mode.SEV_ES, cpu_signature=_CPU, vmsa_profile=VmsaProfile.LEGACY),
    LaunchConfig(Mode.SEV_ES, cpu_signature=_CPU, vmsa_profile=VmsaProfile.INIT2, sev_features=0x20, boot=BOOT),
    LaunchConfig(Mode.SEV_SNP_FIRMWARE),
    SNP,
    SNP_BOOT,
    LaunchConfig(Mode.SEV_SNP, vmm=Vmm.EC2, sev_features=0x1, boot=BOOT),
    LaunchConfig(Mode.SEV_SNP, vmm=Vmm.GCE, sev_features=0x1),
)
"""One configuration of each mode, VMM and boot that reads something different from the image."""
VCPUS = (1, 3)


def seeds() -> list[bytes]:
    """Valid images of every layout sevref reads.

    Returns:
        The golden image, a footer-table image without SEV-SNP, a pre-2021
        image, and SEV-SNP images with and without a kernel-hashes section.
    """
    return [
        TINY.read_bytes(),
        ovmf_image([(SEV_ES_RESET_BLOCK_GUID, (0x80B004).to_bytes(4, "little"))], size=8192),
        legacy_image(0xFFFFF000, size=8192),
        snp_image(SECTIONS[:3]),
        snp_image([*SECTIONS[:3], (0x804000, 0x2000, 0x10)], hash_table=(0x804FF0, 0x400)),
    ]


def measure(firmware: Firmware) -> dict[LaunchConfig, dict[int, bytes] | SevrefError]:
    """Compute the digests of every configuration of :data:`CONFIGS`.

    Args:
        firmware: the parsed image.

    Returns:
        Configuration to its digests by vCPU count, or to the SevrefError that refused it.
    """
    results: dict[LaunchConfig, dict[int, bytes] | SevrefError] = {}
    for config in CONFIGS:
        try:
            results[config] = launch_digests(firmware, config, VCPUS)
        except SevrefError as error:
            results[config] = error
    return results


def one_input(data: bytes) -> None:
    """Parse an image and measure it in every configuration; any exception that escapes is a bug.

    Args:
        data: the image.
    """
    try:
        firmware = Firmware.from_bytes(data)
    except SevrefError:
        return
    measure(firmware)
