"""Run sev-snp-measure (whichever version is on PYTHONPATH) over many configurations.

Reads a JSON list of configurations on stdin and writes a JSON object: the
results (each the digest as hex, or {"error": text}), the peer's version (from
its installed metadata) and its CPU table.

Two keys compose the peers' own parts for the rule of QEMU 10.1 and later,
which no release of sev-snp-measure models (the APs' FPU 0 under
KVM_SEV_INIT2): ``"dump_vmsa": true`` answers the peer's BSP and AP VMSA pages
(hex) instead of a digest, and ``"vmsa_pages": [bsp, ap]`` makes the peer
measure those pages (BSP first, then the AP page for every further vCPU)
instead of the ones it builds.
Kept free of any sevref import: the peer must stay independent.
"""

import json
import sys
import time
from importlib import metadata

from sevsnpmeasure import guest, vcpu_types
from sevsnpmeasure.ovmf import OVMF
from sevsnpmeasure.sev_mode import SevMode
from sevsnpmeasure.vmm_types import VMMType

MODES = {"sev": SevMode.SEV, "sev-es": SevMode.SEV_ES, "sev-snp": SevMode.SEV_SNP}


def vmsa_pages(config):
    """The peer's own BSP and AP pages for a configuration."""
    vmm = VMMType[{"qemu": "QEMU"}.get(config.get("vmm", "qemu"), config.get("vmm"))]
    features = config.get("guest_features", 0x1) if config["mode"] == "sev-snp" else 0x0
    vmsa = guest.VMSA(
        MODES[config["mode"]],
        OVMF(config["firmware"]).sev_es_reset_eip(),
        config.get("cpu_signature", 0),
        features,
        vmm,
    )
    bsp, ap = list(vmsa.pages(2))
    return [bsp.hex(), ap.hex()]


def run(config):
    builds = guest.VMSA.pages
    try:
        if config.get("dump_vmsa"):
            return vmsa_pages(config)
        if "vmsa_pages" in config:
            bsp, ap = (bytes.fromhex(page) for page in config["vmsa_pages"])
            guest.VMSA.pages = lambda self, vcpus: iter([bsp] + [ap] * (vcpus - 1))
        if config["mode"] == "sev-snp-firmware":
            return guest.calc_snp_ovmf_hash(config["firmware"]).hex()
        digest = guest.calc_launch_digest(
            MODES[config["mode"]],
            config.get("vcpus", 1),
            config.get("cpu_signature", 0),
            config["firmware"],
            config.get("kernel"),
            config.get("initrd") or "",
            config.get("cmdline") or "",
            config.get("guest_features", 0x1),
            config.get("firmware_prefix", ""),
            VMMType[{"qemu": "QEMU"}.get(config.get("vmm", "qemu"), config.get("vmm"))],
        )
        return digest.hex()
    except Exception as error:  # the peer's failures are data here
        return {"error": f"{type(error).__name__}: {error}"}
    finally:
        guest.VMSA.pages = builds


def main():
    configs = json.load(sys.stdin)
    start = time.perf_counter()
    results = [run(c) for c in configs]
    seconds = time.perf_counter() - start
    json.dump(
        {
            "cpu_sigs": dict(vcpu_types.CPU_SIGS),
            "results": results,
            "seconds": seconds,
            "version": metadata.version("sev-snp-measure"),
        },
        sys.stdout,
    )


main()
