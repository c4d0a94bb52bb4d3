"""How a host launches firmware (sevref/hosts/firmware.py): the SEV-SNP launch by -bios and what it refuses."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sevref import _cli
from sevref.binfmt.vmsa import Vmm
from sevref.digest import Mode
from sevref.errors import ConfigError, ManifestError
from sevref.hosts.firmware import BIOS_ALIGNMENT, check_firmware, launch_method, nvram_at_launch
from sevref.records.firmware import Basis, Nvram, State, Store
from tests.conftest import CACHE, REPO
from tests.images import snp_image
from tests.unit.test_hosts import SECTIONS_TINY, Case, check, text_of

SPLIT_4M = 0x37C000
"""The size of every 4 MiB split OVMF_CODE_4M.fd (edk2 OvmfPkgDefines.fdf.inc CODE_SIZE)."""


@pytest.mark.parametrize(
    ("vmm", "mode", "size", "debian", "error"),
    [
        # -bios takes whole 64 KiB (QEMU x86_bios_rom_init): SEV-SNP only, QEMU only.
        (Vmm.QEMU, Mode.SEV_SNP, SPLIT_4M, None, "this one is 0x37c000 bytes"),
        (Vmm.QEMU, Mode.SEV_SNP, 0x4000, None, "this one is 0x4000 bytes"),
        (Vmm.QEMU, Mode.SEV_SNP, 0x200000, None, None),
        (Vmm.QEMU, Mode.SEV_ES, SPLIT_4M, None, None),  # pflash takes any whole 4 KiB
        (Vmm.QEMU, Mode.SEV, SPLIT_4M, None, None),
        (Vmm.EC2, Mode.SEV_SNP, SPLIT_4M, None, None),  # the cloud loads its own build
        # Debian's ovmf before edk2-stable202502 cannot boot as an SEV-SNP guest.
        (
            Vmm.QEMU,
            Mode.SEV_SNP,
            0x200000,
            ("ovmf", "2022.11-6+deb12u2"),
            "Debian's ovmf 2022.11-6+deb12u2 cannot boot",
        ),
        (Vmm.QEMU, Mode.SEV_SNP, 0x200000, ("ovmf", "2024.11-1"), "tianocore/edk2 pull request 6285"),
        (Vmm.QEMU, Mode.SEV_SNP, 0x400000, ("ovmf", "2025.02-8+deb13u1"), None),
        (Vmm.QEMU, Mode.SEV_SNP, 0x400000, ("ovmf", "2026.08+ds-2"), None),
        (Vmm.QEMU, Mode.SEV_SNP, 0x200000, ("ovmf-amdsev", "2022.11-1"), None),  # another package: no row
        (Vmm.QEMU, Mode.SEV_ES, 0x200000, ("ovmf", "2022.11-6+deb12u2"), None),  # pflash, no SEV-SNP
    ],
)
def test_check_firmware(vmm: Vmm, mode: Mode, size: int, debian: tuple[str, str] | None, error: str | None) -> None:
    if error is None:
        check_firmware(vmm, mode, size, debian)
        return
    with pytest.raises(ConfigError) as raised:
        check_firmware(vmm, mode, size, debian)
    assert error in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_bios_rule_is_a_whole_64_kib() -> None:
    assert BIOS_ALIGNMENT == 64 * 1024
    assert SPLIT_4M % BIOS_ALIGNMENT and not (2 * 1024 * 1024) % BIOS_ALIGNMENT


def test_an_snp_launch_of_a_4_mib_split_image_is_refused_with_its_exclude() -> None:
    text = text_of(
        Case('vmm: qemu, qemu: {version: "9.1", machine: pc-q35-9.1}, host_linux: "6.11"', modes="[sev-snp]")
    )
    image = snp_image(SECTIONS_TINY, size=SPLIT_4M, hash_table=(0x804C00, 0x400))
    with pytest.raises(ManifestError) as raised:
        check(text, image)
    message = raised.value.diagnostic()
    assert "QEMU loads only images whose size is a multiple of 64 KiB" in message
    assert "leave it out with exclude: [{mode: sev-snp, firmware: fw, host_stack: h" in message


def test_debian_12s_firmware_is_refused_for_sev_snp(
    debian_ovmf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bundled firmware under SEV-SNP: the refusal names the package and the upstream fix."""
    matrix = (REPO / "manifests" / "matrix.yaml").read_text(encoding="utf-8")
    turin = matrix.index("  - id: turin\n")
    snp = matrix[:turin] + matrix[turin:].replace("modes: [sev-es]", "modes: [sev-snp]").replace(
        'sev-es: {policy: "0x5", min_api: "0.17"}', 'sev-snp: {policy: "0x30000"}'
    )
    assert snp.count("sev-snp") == 2
    (tmp_path / "matrix.yaml").write_text(snp, encoding="utf-8")
    manifests = [str(p) for p in sorted((REPO / "manifests").glob("*.yaml")) if p.name != "matrix.yaml"]
    status = _cli.main(
        ["validate", *manifests, str(tmp_path / "matrix.yaml"), "--cache", str(CACHE)], out=io.StringIO()
    )
    err = capsys.readouterr().err
    assert status == 1
    assert "mode sev-snp, firmware ovmf-code, host stack qemu10.1, cpu EPYC-Turin" in err
    assert "Debian's ovmf 2022.11-6+deb12u2 cannot boot as an SEV-SNP guest" in err


@pytest.mark.parametrize(
    ("vmm", "mode", "own", "state"),
    [
        (Vmm.QEMU, Mode.SEV_SNP, Nvram(Store.SEPARATE, Basis.IMAGE), State.STATELESS),
        (Vmm.QEMU, Mode.SEV_SNP, Nvram(Store.EMBEDDED, Basis.IMAGE), State.STATELESS),
        (Vmm.QEMU, Mode.SEV_SNP, Nvram(Store.UNKNOWN, Basis.ASSUMED), State.STATELESS),
        (Vmm.QEMU, Mode.SEV_ES, Nvram(Store.SEPARATE, Basis.IMAGE), State.STATEFUL),
        (Vmm.QEMU, Mode.SEV, Nvram(Store.EMBEDDED, Basis.IMAGE), State.STATEFUL),
        (Vmm.GCE, Mode.SEV_SNP, Nvram(Store.UNKNOWN, Basis.ASSUMED), State.STATEFUL),
    ],
)
def test_nvram_at_launch(vmm: Vmm, mode: Mode, own: Nvram, state: State) -> None:
    at_launch = nvram_at_launch(own, vmm, mode)
    assert at_launch.state is state
    if state is State.STATELESS:
        assert at_launch == Nvram(Store.NONE, Basis.LAUNCH)
        assert "-bios, no OVMF_VARS" in at_launch.label()
    else:
        assert at_launch == own


def test_launch_methods_name_the_mapping() -> None:
    assert launch_method(Vmm.QEMU, Mode.SEV_SNP).startswith("QEMU -bios FILE")
    assert "no OVMF_VARS" in launch_method(Vmm.QEMU, Mode.SEV_SNP)
    for mode in (Mode.SEV, Mode.SEV_ES):
        assert "pflash,unit=0" in launch_method(Vmm.QEMU, mode) and "OVMF_VARS" in launch_method(Vmm.QEMU, mode)
    assert launch_method(Vmm.EC2, Mode.SEV_SNP).startswith("EC2 loads the guest's firmware itself")
