"""Differential tests against sev-snp-measure from PyPI, on random configurations.

sev-snp-measure 0.0.9 builds legacy VMSAs (KVM_SEV_INIT / KVM_SEV_ES_INIT, MXCSR
and FCW 0); 0.0.13 builds KVM_SEV_INIT2 VMSAs. Each runs in its own process
with its own ``.peers/<version>`` on PYTHONPATH (``make peers``), since both
are the package ``sevsnpmeasure``. Kernel hashes are measured on the project's
synthetic AmdSevX64-like image (``tests/images.py: amdsev_image``), the only
input here whose firmware has a kernel-hashes table.

Where sevref and the peers knowingly disagree, the inputs are kept out of the
random draw and the disagreement is pinned by a test of its own below:

* vCPU count 0: sev-snp-measure returns the firmware-only digest; no launch
  has zero vCPUs, so sevref refuses it (KVM needs at least the BSP).
* Images without an OVMF footer table (e.g. OVMF_VARS.fd): sev-snp-measure
  hashes them as firmware; QEMU would find no SEV metadata in them and a
  verifier would never see that digest, so sevref refuses them.
* SEV-ES with vmm ec2/gce: sev-snp-measure builds VMSAs for it; neither cloud
  offers SEV-ES guests, so sevref refuses the combination.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from sevref.binfmt.vmsa import CPU_MODELS
from sevref.edge.inputs import compute_digests
from sevref.errors import ConfigError, FirmwareFormatError, SevrefError
from sevref.request import request_from_mapping
from tests.conftest import missing
from tests.images import amdsev_image
from tests.vectors.make_vectors import PeerError
from tests.vectors.make_vectors import run_peer as run_installed_peer

DEBIAN_IMAGES = (
    "usr/share/OVMF/OVMF_CODE.fd",
    "usr/share/OVMF/OVMF_CODE.secboot.fd",
    "usr/share/OVMF/OVMF_CODE_4M.fd",  # AP reset address 0x808004
    "usr/share/ovmf/OVMF.fd",  # unified image: code and variable store
)
AMDSEV = "amdsev_synthetic.fd"
"""The synthetic firmware in the ``generated`` folder (tests/conftest.py: SYNTHETIC)."""
CMDLINES = (
    None,
    "",
    "console=ttyS0 loglevel=7",
    "root=/dev/vda1 ro quiet",
    "console=ttyS0 label=ünïcödé ✓",
    "a" * 1000,
)


def run_peer(version: str, configs: list[dict[str, Any]]) -> dict[str, Any]:
    """Run sev-snp-measure ``version`` over ``configs`` in a subprocess (a missing peer fails under make test)."""
    try:
        return run_installed_peer(version, configs)
    except PeerError as error:
        missing(str(error))


def draw(rng: random.Random, debian: Path, generated: Path) -> dict[str, Any]:
    """One random configuration, in the batch-key form (kernel hashes on the synthetic AmdSev image)."""
    mode = rng.choice(["sev", "sev-es", "sev-es", "sev-es"])
    with_kernel = rng.random() < 0.4
    firmware = generated / AMDSEV if with_kernel else debian / rng.choice(DEBIAN_IMAGES)
    config: dict[str, Any] = {"mode": mode, "firmware": str(firmware)}
    if mode == "sev-es":
        config["vcpus"] = rng.choice([1, 2, 3, 4, 8, 64, 255, 256, 512, rng.randint(1, 512)])
        which = rng.random()
        if which < 0.7:
            config["cpu"] = rng.choice(sorted(CPU_MODELS))
        elif which < 0.9:
            config["cpu_signature"] = hex(rng.choice([0, 0xA10F11, 0x800F12, rng.getrandbits(32)]))
        else:
            config["cpu_signature"] = rng.getrandbits(32)
    if with_kernel:
        config["kernel"] = str(generated / rng.choice(["kernel.bin", "kernel_small.bin", "empty.bin"]))
        initrd = rng.choice([None, "initrd.bin", "empty.bin"])
        if initrd:
            config["initrd"] = str(generated / initrd)
        cmdline = rng.choice(CMDLINES)
        if cmdline is not None:
            config["cmdline"] = cmdline
    return config


def draw_snp(rng: random.Random, debian: Path, generated: Path) -> dict[str, Any]:
    """One random SEV-SNP configuration (kernel hashes on the synthetic AmdSev image)."""
    amdsev = generated / AMDSEV
    if rng.random() < 0.1:
        image = rng.choice([*DEBIAN_IMAGES, None])
        return {"mode": "sev-snp-firmware", "firmware": str(debian / image if image else amdsev)}
    with_kernel = rng.random() < 0.4
    images = [i for i in DEBIAN_IMAGES if "_4M" not in i]  # bookworm's 4 MiB builds have no SNP metadata
    firmware = amdsev if with_kernel or rng.random() < 0.2 else debian / rng.choice(images)
    config: dict[str, Any] = {
        "mode": "sev-snp",
        "firmware": str(firmware),
        "vmm": rng.choice(["qemu", "qemu", "ec2", "gce"]),
    }
    config["vcpus"] = rng.choice([1, 2, 4, 64, 255, 512, rng.randint(1, 512)])
    config["guest_features"] = hex(rng.choice([0x1, 0x21, rng.getrandbits(64) | 1]))
    if config["vmm"] == "qemu":
        config["cpu"] = rng.choice(sorted(CPU_MODELS))
    if rng.random() < 0.1:
        config["firmware_prefix"] = rng.randbytes(48).hex()
    if with_kernel:
        config["kernel"] = str(generated / rng.choice(["kernel.bin", "kernel_small.bin", "empty.bin"]))
        if rng.random() < 0.6:
            config["initrd"] = str(generated / rng.choice(["initrd.bin", "empty.bin"]))
        cmdline = rng.choice(CMDLINES)
        if cmdline is not None:
            config["cmdline"] = cmdline
    return config


def for_peer(config: dict[str, Any]) -> dict[str, Any]:
    """The same configuration in the peer script's terms."""
    result = dict(config)
    if "guest_features" in result:
        result["guest_features"] = int(result["guest_features"], 16)
    if "cpu" in result:
        result["cpu_signature"] = CPU_MODELS[result.pop("cpu")].signature
    elif isinstance(result.get("cpu_signature"), str):
        result["cpu_signature"] = int(result["cpu_signature"], 16)
    return result


def ours(configs: list[dict[str, Any]], profile: str | None = None) -> list[str]:
    requests = [
        request_from_mapping({**c, "vmsa_profile": profile} if profile and c["mode"] == "sev-es" else c, Path())
        for c in configs
    ]
    outcomes = compute_digests(requests)
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error]
    return [o.digest.hex() for o in outcomes if o.digest]


@pytest.mark.peers
@pytest.mark.parametrize(("version", "profile", "seed"), [("0.0.9", "legacy", 9), ("0.0.13", "init2", 13)])
def test_random_configurations(version: str, profile: str, seed: int, debian_ovmf: Path, generated: Path) -> None:
    rng = random.Random(seed)
    configs = [draw(rng, debian_ovmf, generated) for _ in range(300)]
    peer = run_peer(version, [for_peer(c) for c in configs])
    mine = ours(configs, profile)
    mismatches = [(c, p, m) for c, p, m in zip(configs, peer["results"], mine, strict=True) if p != m]
    assert not mismatches, mismatches[:3]
    # The draw covers what the issue asks: every CPU model, 1..512 vCPUs, with and without kernel hashes.
    assert {c.get("cpu") for c in configs} >= set(CPU_MODELS)
    assert max(c.get("vcpus", 0) for c in configs) == 512
    assert sum(c["mode"] == "sev" for c in configs) > 30
    assert sum("kernel" in c for c in configs) > 50


@pytest.mark.peers
def test_random_snp_configurations(debian_ovmf: Path, generated: Path) -> None:
    # SEV-SNP only against 0.0.13: 0.0.9 predates GCE, the EC2 RDX fix
    # (0x600, confirmed by AWS on a live c6a launch) and the KVM_SEV_INIT2
    # FPU state that every SNP launch has.
    rng = random.Random(3)
    configs = [draw_snp(rng, debian_ovmf, generated) for _ in range(300)]
    peer = run_peer("0.0.13", [for_peer(c) for c in configs])
    mine = ours(configs)
    mismatches = [(c, p, m) for c, p, m in zip(configs, peer["results"], mine, strict=True) if p != m]
    assert not mismatches, mismatches[:3]
    assert all(len(m) == 96 for m in mine)
    snp = [c for c in configs if c["mode"] == "sev-snp"]
    assert {c["vmm"] for c in snp} == {"qemu", "ec2", "gce"}
    assert {c.get("cpu") for c in snp if c["vmm"] == "qemu"} >= {
        "EPYC",
        "EPYC-Rome",
        "EPYC-Milan",
        "EPYC-Genoa",
        "EPYC-Turin",
    }
    assert sum("firmware_prefix" in c for c in snp) > 10 and len(snp) < len(configs)
    assert sum("kernel" in c for c in snp) > 50


@pytest.mark.peers
@pytest.mark.parametrize("size", [4096, 64 << 10, 4 << 20])
def test_both_peers_accept_the_synthetic_amdsev_image(size: int, tmp_path: Path, generated: Path) -> None:
    # The project's own kernel-hashes firmware: both peers parse it, measure
    # kernels with it, and give what sevref gives, at the size of a tail, of a
    # small image and of a whole AmdSevX64 build.
    firmware = tmp_path / "amdsev.fd"
    firmware.write_bytes(amdsev_image(size))
    boot = {
        "kernel": str(generated / "kernel.bin"),
        "initrd": str(generated / "initrd.bin"),
        "cmdline": "console=ttyS0",
    }
    common: list[dict[str, Any]] = [
        {"mode": "sev", "firmware": str(firmware)},
        {"mode": "sev", "firmware": str(firmware), **boot},
        {"mode": "sev-es", "firmware": str(firmware), "vcpus": 4, "cpu": "EPYC-Milan", **boot},
        {"mode": "sev-es", "firmware": str(firmware), "vcpus": 1, "cpu_signature": "0xa10f11"},
    ]
    snp: list[dict[str, Any]] = [
        {"mode": "sev-snp-firmware", "firmware": str(firmware)},
        *({"mode": "sev-snp", "firmware": str(firmware), "vcpus": 2, "vmm": v} for v in ("ec2", "gce")),
        *({"mode": "sev-snp", "firmware": str(firmware), "vcpus": 3, "vmm": v, **boot} for v in ("ec2", "gce")),
        {"mode": "sev-snp", "firmware": str(firmware), "vcpus": 64, "cpu": "EPYC-Genoa", **boot},
    ]
    for version, profile, configs in (("0.0.9", "legacy", common), ("0.0.13", "init2", common + snp)):
        peer = run_peer(version, [for_peer(c) for c in configs])["results"]
        assert all(isinstance(p, str) for p in peer), (version, peer)
        assert peer == ours(configs, profile), version


@pytest.mark.peers
@pytest.mark.parametrize("version", ["0.0.9", "0.0.13"])
def test_cpu_tables_agree(version: str) -> None:
    table = run_peer(version, [])["cpu_sigs"]
    assert len(table) >= 15
    for name, signature in table.items():
        assert CPU_MODELS[name].signature == signature, name


@pytest.mark.peers
def test_known_disagreements(debian_ovmf: Path) -> None:
    code = str(debian_ovmf / "usr/share/OVMF/OVMF_CODE.fd")
    variables = str(debian_ovmf / "usr/share/OVMF/OVMF_VARS.fd")
    cases: list[dict[str, Any]] = [
        {"mode": "sev-es", "firmware": code, "vcpus": 0, "cpu_signature": 0},
        {"mode": "sev", "firmware": variables},
        {"mode": "sev-es", "firmware": code, "vcpus": 2, "vmm": "ec2"},
    ]
    peer = run_peer("0.0.13", cases)["results"]
    assert all(isinstance(result, str) and len(result) == 64 for result in peer), peer
    with pytest.raises(ConfigError, match="vcpus: expected an integer 1..4096, found 0"):
        request_from_mapping(cases[0], Path())
    outcome = compute_digests([request_from_mapping(cases[1], Path())])[0]
    assert isinstance(outcome.error, FirmwareFormatError) and "no OVMF footer table" in str(outcome.error)
    with pytest.raises(SevrefError, match="EC2 offers SEV-SNP guests only"):
        request_from_mapping(cases[2], Path())
