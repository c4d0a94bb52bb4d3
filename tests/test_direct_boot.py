"""Measured direct boot of a real kernel on real firmware, checked against sev-snp-measure.

The bundled publication's ``amdsev`` matrix (manifests/amdsev.yaml) boots
Debian 13's cloud kernel with ``-kernel`` and ``kernel-hashes=on`` on Debian's
stateless ``OVMF.amdsev.fd``: the launch digest covers the firmware, the
kernel-hashes table (kernel, an empty initrd, the command line) and the VMSAs.
The published SEV-SNP entries must equal sev-snp-measure 0.0.13's (SEV-SNP
always launches through ``KVM_SEV_INIT2``), and the SEV-ES and SEV entries
0.0.9's (Debian 13's QEMU 10.0 with its default ``legacy-vm-type`` uses the
legacy ``KVM_SEV_ES_INIT``: MXCSR and FCW 0), for the same files: the packages
``tests/conftest.py`` obtains (``SUITE_PACKAGES``), pinned as the manifest pins
them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.test_peers import run_peer

VCPUS = (1, 2, 3, 16, 64)
"""vCPU counts compared: the BSP alone, the first AP, a few more, and the matrix's largest."""
PEERS = {"sev-snp": "0.0.13", "sev-es": "0.0.9", "sev": "0.0.9"}
"""Which sev-snp-measure computes each mode as the host stack launches it (the peers' VMSA profiles)."""


def groups(site: Path) -> list[dict[str, Any]]:
    """Every published configuration of the ``amdsev`` matrix."""
    index = json.loads((site / "index.json").read_bytes())
    found = []
    for ref in index["files"]:
        if ref["path"].startswith("groups/"):
            found += [g for g in json.loads((site / ref["path"]).read_bytes())["groups"] if g["matrix"] == "amdsev"]
    return found


@pytest.mark.peers
def test_the_published_direct_boot_digests_equal_sev_snp_measures(
    demo: Path, debian_amdsev: Path, debian_cloud_kernel: Path
) -> None:
    published = groups(demo)
    assert {(g["mode"], g["boot"]) for g in published} == {
        (mode, boot) for mode in PEERS for boot in (None, "trixie-cloud")
    }
    kernel_sha256 = hashlib.sha256(debian_cloud_kernel.read_bytes()).hexdigest()
    checked = 0
    for version in sorted(set(PEERS.values())):
        cases: list[tuple[str, dict[str, Any]]] = []
        for group in (g for g in published if PEERS[g["mode"]] == version):
            assert group["firmware_sha256"] == hashlib.sha256(debian_amdsev.read_bytes()).hexdigest()
            assert group["firmware_nvram"]["state"] == "stateless"
            if group["boot"] is not None:
                assert (group["kernel_sha256"], group["initrd_sha256"]) == (kernel_sha256, None)
                assert group["cmdline"] == "console=ttyS0 root=/dev/nvme0n1p1 ro"
            entries = dict(group["entries"])
            for vcpus in VCPUS if group["mode"] != "sev" else (1,):
                config: dict[str, Any] = {
                    "mode": group["mode"],
                    "vcpus": vcpus,
                    "cpu_signature": int(group["cpu_signature"] or "0x0", 16),
                    "firmware": str(debian_amdsev),
                }
                if group["mode"] == "sev-snp":
                    config["guest_features"] = int(group["guest_features"], 16)
                if group["boot"] is not None:
                    config |= {"kernel": str(debian_cloud_kernel), "cmdline": group["cmdline"]}
                cases.append((entries[vcpus if group["mode"] != "sev" else None], config))  # SEV: no VMSA
        answer = run_peer(version, [config for _, config in cases])["results"]
        mismatches = [(c, p, d) for (d, c), p in zip(cases, answer, strict=True) if p != d]
        assert mismatches == [], mismatches[:3]
        checked += len(cases)
    assert checked > 4 * len(VCPUS)
