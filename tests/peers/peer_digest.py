"""Run sev-snp-measure (whichever version is on PYTHONPATH) over many configurations.

Reads a JSON list of configurations on stdin and writes a JSON object: the
results (each the digest as hex, or {"error": text}), the peer's version (from
its installed metadata) and its CPU table.
Kept free of any sevref import: the peer must stay independent.
"""

import json
import sys
import time
from importlib import metadata

from sevsnpmeasure import guest, vcpu_types
from sevsnpmeasure.sev_mode import SevMode
from sevsnpmeasure.vmm_types import VMMType

MODES = {"sev": SevMode.SEV, "sev-es": SevMode.SEV_ES, "sev-snp": SevMode.SEV_SNP}


def run(config):
    try:
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
