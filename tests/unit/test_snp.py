"""SEV-SNP: metadata parsing, the SHA-384 page chain and its shared work.

The expected digests here come from :func:`chain`, written from the SNP ABI
(8.17.2, PAGE_INFO) and QEMU's ``snp_populate_metadata_pages`` without any of
sevref's code; the known-answer vectors and the differential tests pin the
real firmware cases.
"""

from __future__ import annotations

import hashlib
import struct

import pytest

from sevref.binfmt.hashtab import EMPTY_SHA256
from sevref.binfmt.ovmf import parse_ovmf
from sevref.binfmt.vmsa import BSP_RESET_EIP, Vmm, VmsaProfile, build_vmsa
from sevref.digest import Firmware, KernelBoot, LaunchConfig, Mode, launch_digest, launch_digests
from sevref.errors import ConfigError, FirmwareFormatError
from tests.images import snp_image

SEC_MEM, SECRETS, CPUID, SVSM_CAA, KERNEL_HASHES = 1, 2, 3, 4, 0x10
SECTIONS = [
    (0x800000, 0x3000, SEC_MEM),
    (0x803000, 0x1000, SECRETS),
    (0x804000, 0x1000, CPUID),
    (0x805000, 0x1000, SVSM_CAA),
    (0x806000, 0x2000, KERNEL_HASHES),
    (0x808000, 0x2000, SEC_MEM),
]
QEMU = LaunchConfig(mode=Mode.SEV_SNP, cpu_signature=0xA10F11, vmsa_profile=VmsaProfile.INIT2, sev_features=0x1)


def extend(ld: bytes, page_type: int, gpa: int, contents: bytes = bytes(48)) -> bytes:
    info = ld + contents + struct.pack("<H", 0x70) + bytes([page_type, 0, 0, 0, 0, 0]) + struct.pack("<Q", gpa)
    assert len(info) == 0x70
    return hashlib.sha384(info).digest()


def chain(image: bytes, config: LaunchConfig, vcpus: int, *, table_page_offset: int = 0) -> bytes:
    """The SNP launch digest, straight from the specification."""
    ld = bytes(48)
    base = 2**32 - len(image)
    for offset in range(0, len(image), 4096):
        ld = extend(ld, 1, base + offset, hashlib.sha384(image[offset : offset + 4096]).digest())
    info = parse_ovmf(image)
    assert info.snp_sections is not None
    cpuid_later = []
    for s in info.snp_sections:
        if s.type == SEC_MEM:
            for page in range(0, s.size, 4096):
                ld = extend(ld, 4 if config.vmm is Vmm.GCE else 3, s.gpa + page)
        elif s.type == SVSM_CAA:
            for page in range(0, s.size, 4096):
                ld = extend(ld, 3, s.gpa + page)
        elif s.type == SECRETS:
            ld = extend(ld, 5, s.gpa)
        elif s.type == CPUID:
            if config.vmm is Vmm.EC2:
                cpuid_later.append(s.gpa)
            else:
                ld = extend(ld, 6, s.gpa)
        elif s.type == KERNEL_HASHES:
            area = bytearray(s.size)
            if config.boot:
                area[table_page_offset : table_page_offset + 176] = config.boot.table()
            for page in range(0, s.size, 4096):
                if config.boot:
                    ld = extend(ld, 1, s.gpa + page, hashlib.sha384(area[page : page + 4096]).digest())
                else:
                    ld = extend(ld, 3, s.gpa + page)
    for gpa in cpuid_later:
        ld = extend(ld, 6, gpa)
    for cpu in range(vcpus):
        vmsa = build_vmsa(
            eip=BSP_RESET_EIP if cpu == 0 else 0x80B004,
            vmm=config.vmm,
            profile=config.vmsa_profile,
            cpu_signature=config.cpu_signature,
            sev_features=config.sev_features,
        )
        ld = extend(ld, 2, 0xFFFFFFFFF000, hashlib.sha384(vmsa).digest())
    return ld


CONFIGS = {
    "qemu": QEMU,
    "qemu debugswap": LaunchConfig(
        mode=Mode.SEV_SNP, cpu_signature=0, vmsa_profile=VmsaProfile.INIT2, sev_features=0x21
    ),
    "ec2": LaunchConfig(mode=Mode.SEV_SNP, vmm=Vmm.EC2, sev_features=0x1),
    "gce": LaunchConfig(mode=Mode.SEV_SNP, vmm=Vmm.GCE, sev_features=0x1),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_chain_matches_the_specification(name: str) -> None:
    image = snp_image(SECTIONS)
    firmware = Firmware.from_bytes(image)
    digests = launch_digests(firmware, CONFIGS[name], [1, 2, 5, 64])
    for vcpus, digest in digests.items():
        assert len(digest) == 48
        assert digest == chain(image, CONFIGS[name], vcpus), vcpus


def test_the_vmm_changes_the_digest() -> None:
    firmware = Firmware.from_bytes(snp_image(SECTIONS))
    assert len({launch_digest(firmware, config, 2) for config in CONFIGS.values()}) == len(CONFIGS)


def test_kernel_hashes_in_a_two_page_section() -> None:
    # QEMU zeroes the whole section, places the table at base & 0xfff and
    # measures every page of it as NORMAL (snp_launch_update_kernel_hashes).
    image = snp_image(SECTIONS, hash_table=(0x806C00, 0x400))
    boot = KernelBoot(hashlib.sha256(b"kernel").digest(), EMPTY_SHA256, "console=ttyS0")
    config = LaunchConfig(mode=Mode.SEV_SNP, vmm=Vmm.GCE, sev_features=0x1, boot=boot)
    assert launch_digest(Firmware.from_bytes(image), config, 3) == chain(image, config, 3, table_page_offset=0xC00)


def test_firmware_prefix_seeds_the_chain() -> None:
    image = snp_image(SECTIONS)
    firmware = Firmware.from_bytes(image)
    prefix = launch_digest(firmware, LaunchConfig(mode=Mode.SEV_SNP_FIRMWARE))
    assert prefix == firmware.snp_prefix
    other = Firmware.from_bytes(snp_image(SECTIONS, size=5 * 4096))
    # Seeding another image's digest with this prefix gives this image's digest.
    assert (
        launch_digest(other, QEMU, 4, seed=prefix) == launch_digest(firmware, QEMU, 4) != launch_digest(other, QEMU, 4)
    )
    with pytest.raises(ConfigError, match="firmware_prefix: expected 48 bytes with mode sev-snp, found 32 bytes"):
        launch_digest(firmware, QEMU, seed=bytes(32))


HOSTILE = {
    "wrong magic": (
        snp_image(SECTIONS, magic=b"ASEX"),
        "SEV-SNP metadata at offset 0x3800: signature is b'ASEX'; expected b'ASEV'",
    ),
    "version 2": (snp_image(SECTIONS, version=2), "SEV-SNP metadata at offset 0x3800: version is 2; expected 1"),
    "count overflows": (
        snp_image(SECTIONS, count=0xFFFFFFFF),
        "4294967295 sections need 0xc00000004 bytes; expected at most the header's size 0x58",
    ),
    "header past the end": (
        snp_image(SECTIONS, header_size=0x900),
        "size field is 0x900; expected 0x10..0x800 (inside the image)",
    ),
    "overlapping sections": (
        snp_image([(0x800000, 0x3000, SEC_MEM), (0x802000, 0x1000, SECRETS)]),
        "SNP metadata section 1 (SNP_SECRETS, type 0x2) at GPA 0x802000 overlaps section 0 (0x800000..0x803000)",
    ),
    "unaligned section": (
        snp_image([(0x800800, 0x1000, SEC_MEM)]),
        "descriptor at offset 0x3810: size 0x1000; expected a page-aligned base",
    ),
    "empty section": (
        snp_image([(0x800000, 0, SEC_MEM)]),
        "expected a page-aligned base and a non-zero multiple of 0x1000 bytes",
    ),
    "past 4 GiB": (snp_image([(0xFFFFF000, 0x2000, SEC_MEM)]), "size 0x2000 reaches past 4 GiB"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_metadata_is_refused_by_the_parser(name: str) -> None:
    image, message = HOSTILE[name]
    with pytest.raises(FirmwareFormatError) as caught:
        parse_ovmf(image)
    assert message in str(caught.value)


MEASURE_ERRORS = {
    "unknown section type": (
        snp_image([(0x800000, 0x1000, 7)]),
        QEMU,
        FirmwareFormatError,
        "SNP metadata section 0 (unknown, type 0x7) at GPA 0x800000: unknown section type; expected one of 0x1 SNP_SEC_MEM",
    ),
    "two-page CPUID section": (
        snp_image([(0x800000, 0x2000, CPUID)]),
        QEMU,
        FirmwareFormatError,
        "(CPUID, type 0x3) at GPA 0x800000: size 0x2000; expected one page (0x1000)",
    ),
    "kernel without a table area": (
        snp_image([]),
        LaunchConfig(mode=Mode.SEV_SNP, vmm=Vmm.EC2, sev_features=1, boot=KernelBoot(EMPTY_SHA256)),
        ConfigError,
        "firmware cannot measure a kernel",
    ),
    "kernel without a KERNEL_HASHES section": (
        snp_image([(0x800000, 0x1000, SEC_MEM)], hash_table=(0x810C00, 0x400)),
        LaunchConfig(mode=Mode.SEV_SNP, vmm=Vmm.EC2, sev_features=1, boot=KernelBoot(EMPTY_SHA256)),
        ConfigError,
        "its metadata has no SNP_KERNEL_HASHES section (type 0x10)",
    ),
}


@pytest.mark.parametrize("name", MEASURE_ERRORS)
def test_metadata_sevref_cannot_measure(name: str) -> None:
    image, config, error, message = MEASURE_ERRORS[name]
    with pytest.raises(error) as caught:
        launch_digest(Firmware.from_bytes(image), config)
    assert message in str(caught.value)


def test_table_that_does_not_fit_its_section() -> None:
    image = snp_image([(0x806000, 0x1000, KERNEL_HASHES)], hash_table=(0x806F80, 0x400))
    config = LaunchConfig(mode=Mode.SEV_SNP, vmm=Vmm.EC2, sev_features=1, boot=KernelBoot(EMPTY_SHA256))
    with pytest.raises(
        FirmwareFormatError, match="kernel-hashes table at page offset 0xf80 does not fit its 0x1000 bytes"
    ):
        launch_digest(Firmware.from_bytes(image), config)


def test_debian_4m_image_has_no_metadata(debian_ovmf) -> None:  # type: ignore[no-untyped-def]
    firmware = Firmware.from_bytes((debian_ovmf / "usr/share/OVMF/OVMF_CODE_4M.fd").read_bytes())
    with pytest.raises(FirmwareFormatError, match="firmware has no SEV-SNP metadata .* mode sev-snp-firmware gives"):
        launch_digest(firmware, QEMU)
    assert len(launch_digest(firmware, LaunchConfig(mode=Mode.SEV_SNP_FIRMWARE))) == 48


SNP_CONFIGS = {
    "legacy profile": (
        {"mode": Mode.SEV_SNP, "cpu_signature": 0, "vmsa_profile": VmsaProfile.LEGACY, "sev_features": 1},
        "always launched with KVM_SEV_INIT2",
    ),
    "no SNPActive": (
        {"mode": Mode.SEV_SNP, "cpu_signature": 0, "vmsa_profile": VmsaProfile.INIT2, "sev_features": 0x20},
        "bit 0 \\(SNPActive\\) must be set",
    ),
    "cpu on ec2": (
        {"mode": Mode.SEV_SNP, "vmm": Vmm.EC2, "cpu_signature": 0xA00F11, "sev_features": 1},
        r"vmm ec2: cpu_signature sets RDX; EC2 is known to have used 0x600 .* and 0x0 .*found 0xa00f11",
    ),
    "ec2 today's rdx given": (
        {"mode": Mode.SEV_SNP, "vmm": Vmm.EC2, "cpu_signature": 0x600, "sev_features": 1},
        r"today's: leave cpu_signature out",
    ),
    "cpu on gce": (
        {"mode": Mode.SEV_SNP, "vmm": Vmm.GCE, "cpu_signature": 0, "sev_features": 1},
        "vmm gce fixes RDX itself: cpu_signature does not apply",
    ),
    "profile on gce": (
        {"mode": Mode.SEV_SNP, "vmm": Vmm.GCE, "vmsa_profile": VmsaProfile.INIT2, "sev_features": 1},
        "vmm gce fixes the FPU state itself: vmsa_profile does not apply",
    ),
    "no cpu": (
        {"mode": Mode.SEV_SNP, "vmsa_profile": VmsaProfile.INIT2, "sev_features": 1},
        "mode sev-snp with vmm qemu: expected the guest CPU",
    ),
    "firmware prefix with a kernel": (
        {"mode": Mode.SEV_SNP_FIRMWARE, "boot": KernelBoot(EMPTY_SHA256)},
        "measures the firmware only",
    ),
}


@pytest.mark.parametrize("name", SNP_CONFIGS)
def test_invalid_snp_configurations(name: str) -> None:
    fields, message = SNP_CONFIGS[name]
    with pytest.raises(ConfigError, match=message):
        LaunchConfig(**fields)  # type: ignore[arg-type]
