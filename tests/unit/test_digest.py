"""The measuring core: configurations, GCTX.LD and the SEV launch measurement."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import struct

import pytest

from sevref.binfmt.hashtab import EMPTY_SHA256
from sevref.binfmt.ovmf import SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_RV_GUID
from sevref.binfmt.vmsa import BSP_RESET_EIP, Vmm, VmsaProfile, build_vmsa
from sevref.digest import (
    Firmware,
    KernelBoot,
    LaunchConfig,
    LaunchMeasureInputs,
    Mode,
    launch_digest,
    launch_digests,
    parse_launch_measure_blob,
    sev_launch_measurement,
    tik_from_bytes,
)
from sevref.errors import ConfigError, FirmwareFormatError
from tests.images import ovmf_image

U32 = struct.Struct("<I").pack
ES = LaunchConfig(mode=Mode.SEV_ES, cpu_signature=0xA00F11, vmsa_profile=VmsaProfile.LEGACY)


def image(reset: int | None = 0x80B004, hashes: tuple[int, int] | None = (0x810C00, 0x400)) -> Firmware:
    entries = []
    if hashes is not None:
        entries.append((SEV_HASH_TABLE_RV_GUID, U32(hashes[0]) + U32(hashes[1])))
    if reset is not None:
        entries.append((SEV_ES_RESET_BLOCK_GUID, U32(reset)))
    return Firmware.from_bytes(ovmf_image(entries, size=3 * 4096))


def naive(fw: Firmware, config: LaunchConfig, vcpus: int) -> bytes:
    """GCTX.LD straight from the SEV API formula, without any shared work."""
    blob = fw.data + (config.boot.table() if config.boot else b"")
    if config.mode is Mode.SEV_ES:

        def page(eip: int) -> bytes:
            return build_vmsa(
                eip=eip,
                vmm=config.vmm,
                profile=config.vmsa_profile,
                cpu_signature=config.cpu_signature,
                sev_features=config.sev_features,
            )

        blob += page(BSP_RESET_EIP) + page(fw.info.sev_es_reset_eip or 0) * (vcpus - 1)
    return hashlib.sha256(blob).digest()


def test_shared_work_equals_the_formula() -> None:
    fw = image()
    rng = random.Random(1)
    boot = KernelBoot(hashlib.sha256(b"k").digest(), None, "console=ttyS0")
    for config in (
        ES,
        LaunchConfig(mode=Mode.SEV_ES, cpu_signature=0, vmsa_profile=VmsaProfile.INIT2, sev_features=0x20, boot=boot),
    ):
        counts = [*sorted(rng.sample(range(1, 300), 25)), 1, 2]
        digests = launch_digests(fw, config, reversed(counts))
        assert set(digests) == set(counts)
        for count in counts:
            assert digests[count] == naive(fw, config, count) == launch_digest(fw, config, count)


def test_sev_ignores_vcpus_and_vmsa() -> None:
    fw = image()
    config = LaunchConfig(mode=Mode.SEV)
    assert launch_digests(fw, config, [1, 7]) == {
        1: hashlib.sha256(fw.data).digest(),
        7: hashlib.sha256(fw.data).digest(),
    }
    boot = KernelBoot(EMPTY_SHA256, EMPTY_SHA256, "")
    with_kernel = LaunchConfig(mode=Mode.SEV, boot=boot)
    assert launch_digest(fw, with_kernel) == hashlib.sha256(fw.data + boot.table()).digest()


def test_ap_reset_address_changes_the_digest() -> None:
    # Debian's 4 MiB builds use 0x808004, current OVMF 0x80b004, edk2 2020 0x80b000.
    digests = {launch_digest(image(reset=eip), ES, 2) for eip in (0x80B004, 0x808004, 0x80B000)}
    assert len(digests) == 3
    # ...but not for a single vCPU, where no AP page is measured, beyond the firmware bytes.
    one = launch_digest(image(reset=0x80B004), ES, 1)
    assert one == naive(image(reset=0x80B004), ES, 1)


@pytest.mark.parametrize(
    ("firmware", "config", "error", "message"),
    [
        (image(reset=None), ES, FirmwareFormatError, "firmware has no SEV-ES reset block"),
        (image(reset=0), ES, FirmwareFormatError, "holds AP reset address 0x0; expected a non-zero address"),
        (
            image(hashes=(0, 0)),
            LaunchConfig(mode=Mode.SEV, boot=KernelBoot(EMPTY_SHA256)),
            ConfigError,
            "has base 0x0 size 0x0; expected base != 0 and size >= 0xb0",
        ),
        (
            image(hashes=(0x810C00, 0xAF)),
            LaunchConfig(mode=Mode.SEV, boot=KernelBoot(EMPTY_SHA256)),
            ConfigError,
            "base 0x810c00 size 0xaf",
        ),
        (
            image(hashes=None),
            LaunchConfig(mode=Mode.SEV, boot=KernelBoot(EMPTY_SHA256)),
            ConfigError,
            "has no such entry",
        ),
    ],
)
def test_firmware_that_cannot_serve_the_launch(
    firmware: Firmware, config: LaunchConfig, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        launch_digest(firmware, config, 2)


def test_sev_with_missing_reset_block_is_fine() -> None:
    # QEMU only looks for the reset block when SEV-ES is on.
    assert (
        launch_digest(image(reset=None), LaunchConfig(mode=Mode.SEV)) == hashlib.sha256(image(reset=None).data).digest()
    )


@pytest.mark.parametrize("vcpus", [0, -1, 4097, True])
def test_vcpu_range(vcpus: int) -> None:
    with pytest.raises(ConfigError, match="vcpus: expected 1..4096"):
        launch_digest(image(), ES, vcpus)


CONFIGS = {
    "sev with a cpu": ({"mode": Mode.SEV, "cpu_signature": 1}, "mode sev measures no VMSA"),
    "sev-es on ec2": ({"mode": Mode.SEV_ES, "vmm": Vmm.EC2}, "EC2 offers SEV-SNP guests only"),
    "sev-es on gce": (
        {"mode": Mode.SEV_ES, "vmm": Vmm.GCE},
        r"sevref supports SEV-SNP launches on GCE only \(GCE also offers SEV\)",
    ),
    "no cpu": ({"mode": Mode.SEV_ES, "vmsa_profile": VmsaProfile.LEGACY}, "expected the guest CPU"),
    "no profile": ({"mode": Mode.SEV_ES, "cpu_signature": 0}, "expected a vmsa_profile"),
    "wide signature": (
        {"mode": Mode.SEV_ES, "cpu_signature": 1 << 32, "vmsa_profile": VmsaProfile.LEGACY},
        "cpu_signature: expected a 32-bit value",
    ),
    "snp active": (
        {"mode": Mode.SEV_ES, "cpu_signature": 0, "vmsa_profile": VmsaProfile.INIT2, "sev_features": 0x21},
        "bit 0 \\(SNPActive\\) is for SEV-SNP",
    ),
    "legacy with vtom": (
        {"mode": Mode.SEV_ES, "cpu_signature": 0, "vmsa_profile": VmsaProfile.LEGACY, "sev_features": 0x2},
        "with vmsa_profile legacy KVM sets 0x0, or 0x20",
    ),
    "wide features": (
        {"mode": Mode.SEV_ES, "cpu_signature": 0, "vmsa_profile": VmsaProfile.INIT2, "sev_features": 1 << 64},
        "sev_features: expected a 64-bit value",
    ),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_invalid_configurations(name: str) -> None:
    fields, message = CONFIGS[name]
    with pytest.raises(ConfigError, match=message):
        LaunchConfig(**fields)  # type: ignore[arg-type]


def test_valid_sev_features() -> None:
    LaunchConfig(mode=Mode.SEV_ES, cpu_signature=0, vmsa_profile=VmsaProfile.LEGACY, sev_features=0x20)
    LaunchConfig(mode=Mode.SEV_ES, cpu_signature=0, vmsa_profile=VmsaProfile.INIT2, sev_features=0x22)


def test_kernel_boot_checks() -> None:
    with pytest.raises(ConfigError, match="kernel_sha256: expected 32 bytes, found 3"):
        KernelBoot(b"abc")
    with pytest.raises(ConfigError, match="cmdline: NUL byte"):
        KernelBoot(EMPTY_SHA256, None, "a\0")
    assert KernelBoot(EMPTY_SHA256, None, None).table() == KernelBoot(EMPTY_SHA256, EMPTY_SHA256, "").table()


def spec_measurement(ld: bytes, major: int, minor: int, build: int, policy: int, nonce: bytes, tik: bytes) -> bytes:
    """SEV API 6.5.1, written out independently of sevref."""
    message = b"\x04" + bytes([major]) + bytes([minor]) + bytes([build]) + struct.pack("<I", policy) + ld + nonce
    return hmac.new(tik, message, "sha256").digest()


def test_launch_measurement_matches_the_spec() -> None:
    rng = random.Random(5)
    for _ in range(50):
        ld, nonce, tik = rng.randbytes(32), rng.randbytes(16), rng.randbytes(16)
        major, minor, build, policy = rng.randrange(256), rng.randrange(256), rng.randrange(256), rng.getrandbits(32)
        got = sev_launch_measurement(ld, LaunchMeasureInputs(major, minor, build, policy), nonce, tik)
        assert got == spec_measurement(ld, major, minor, build, policy, nonce, tik)


def test_launch_measurement_known_answer() -> None:
    # The expected value was computed outside Python, with OpenSSL 3 over the 56
    # message bytes of the spec formula:
    #   openssl dgst -sha256 -mac HMAC -macopt hexkey:101112131415161718191a1b1c1d1e1f msg.bin
    # where msg.bin = 04 01 37 15 05000000 || LD || 000102...0f.
    ld = bytes.fromhex("4c55bc8b9c7804ec80940258127e2aae37f818436a54c55cebe89542bd6dc63f")
    got = sev_launch_measurement(ld, LaunchMeasureInputs(1, 55, 21, 0x5), bytes(range(16)), bytes(range(16, 32)))
    assert got == spec_measurement(ld, 1, 55, 21, 5, bytes(range(16)), bytes(range(16, 32)))
    assert got.hex() == "8383bc6b3cfb8aab90366dae65dfea9dc85eaf04a704f9bc16fc7416ad1fbe29"


def test_launch_measure_blob() -> None:
    blob = bytes(range(48))
    assert parse_launch_measure_blob(base64.b64encode(blob).decode()) == (blob[:32], blob[32:])
    with pytest.raises(ConfigError, match="expected 48 bytes .* found 47"):
        parse_launch_measure_blob(base64.b64encode(blob[:47]).decode())
    with pytest.raises(ConfigError, match="expected base64"):
        parse_launch_measure_blob("not base64!")


def test_measure_input_ranges() -> None:
    with pytest.raises(ConfigError, match="api_major: expected 0..0xff, found 256"):
        LaunchMeasureInputs(256, 0, 0, 0)
    with pytest.raises(ConfigError, match="policy"):
        LaunchMeasureInputs(0, 0, 0, 1 << 32)
    with pytest.raises(ConfigError, match="tik: expected 16 bytes, found 15"):
        sev_launch_measurement(bytes(32), LaunchMeasureInputs(0, 0, 0, 0), bytes(16), bytes(15))


def test_tik_files() -> None:
    assert tik_from_bytes(bytes(range(16))) == bytes(range(16))
    assert tik_from_bytes(bytes(range(32))) == bytes(range(16, 32))
    with pytest.raises(ConfigError, match="expected 16 bytes \\(TIK\\) or 32 bytes \\(TEK \\|\\| TIK\\), found 20"):
        tik_from_bytes(bytes(20))
