"""The standard benchmark matrix: manifests and inputs, generated deterministically.

About 100,000 entries at scale 1, about 1,000,000 at scale 10, about 10,000,000 at scale 100:

* firmware (6): Debian 12's OVMF_CODE.fd (2 MiB), OVMF.fd (2 MiB unified),
  OVMF_CODE_4M.fd (3.5 MiB), a synthetic 2 MiB AmdSev-like image with a
  kernel-hashes table and an SNP_KERNEL_HASHES section (generated here: Debian
  packages none), and two more such images for SEV-SNP only. Debian 12's
  images cannot boot as SEV-SNP guests (sevref.hosts.firmware), so the two
  extra images stand in for the SEV-SNP entries the first two had, one for
  one: the matrix keeps its size.
* host stacks (4), all QEMU 10.1 (the first with EPYC-Turin): legacy (QEMU's
  default legacy-vm-type=auto) on Linux 6.1; the same on Linux 6.6 with
  DebugSwap (sev_features 0x20); legacy-vm-type=off (init2) on Linux 6.11; the
  same with guest features 0x21. SEV-SNP runs on the last two. (With QEMU 8.2
  and 9.1, as before, the host-stack checks refuse EPYC-Turin; the digests are
  the same.)
* CPUs (12 × scale): the five EPYC generations, then host signatures.
* vCPUs 1–256.
* modes: sev, sev-es, sev-snp.
* boots: firmware only on every image; on the synthetic one also a 1 MiB
  kernel with a 300 kB initrd and three command lines.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from sevref.binfmt._struct import guid_bytes
from sevref.binfmt.ovmf import FOOTER_GUID, SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_RV_GUID, SEV_METADATA_GUID

MODELS = ["EPYC", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa", "EPYC-Turin"]
DEBIAN = {
    "ovmf-code": ("usr/share/OVMF/OVMF_CODE.fd", "d9b568def24088c92f34b5479e0ed7e44d0a4d4cea8a0f5716719180bba48106"),
    "ovmf-unified": ("usr/share/ovmf/OVMF.fd", "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773"),
    "ovmf-code-4m": (
        "usr/share/OVMF/OVMF_CODE_4M.fd",
        "b157d97b1f69729514feb7f201d2cbe4957f23ab77920e361fe9f822ba49ca4c",
    ),
}
DEB = "e73d3d1a8799f7f6fc16b73501d913edcdd86237556fbff30693e747e6dc262e"


SNP_ONLY = ("amdsev-b", "amdsev-c")
"""The synthetic images that take the SEV-SNP entries of Debian 12's two images with SNP metadata."""


def amdsev_like(size: int = 2 << 20, seed: bytes = b"sevref bench firmware") -> bytes:
    """A synthetic AmdSev-like image: pseudo-random code, a footer table and SNP metadata."""
    body = bytearray()
    while len(body) < size:
        seed = hashlib.sha256(seed).digest()
        body += seed * 128
    image = bytearray(body[:size])
    sections = [
        (0x800000, 0x9000, 1),
        (0x80A000, 0x3000, 1),
        (0x80D000, 0x1000, 2),
        (0x80E000, 0x1000, 3),
        (0x810000, 0x1000, 0x10),
        (0x811000, 0xF000, 1),
    ]
    meta = (
        b"ASEV"
        + struct.pack("<III", 16 + 12 * len(sections), 1, len(sections))
        + b"".join(struct.pack("<III", *s) for s in sections)
    )
    start = size - 0x1000
    image[start : start + len(meta)] = meta

    def entry(guid: str, data: bytes) -> bytes:
        return data + struct.pack("<H", len(data) + 18) + guid_bytes(guid)

    table = entry(SEV_METADATA_GUID, struct.pack("<I", 0x1000)) + entry(
        SEV_HASH_TABLE_RV_GUID, struct.pack("<II", 0x810C00, 0x400)
    )
    table += entry(SEV_ES_RESET_BLOCK_GUID, struct.pack("<I", 0x80B004))
    tail = table + struct.pack("<H", len(table) + 18) + guid_bytes(FOOTER_GUID) + b"\x90" * 32
    image[size - len(tail) :] = tail
    return bytes(image)


def write(folder: Path, scale: int = 1) -> list[Path]:
    """Write the inputs and manifests into ``folder``; return the manifest paths."""
    folder.mkdir(parents=True, exist_ok=True)
    firmware = amdsev_like()
    snp_only = {ident: amdsev_like(seed=f"sevref bench firmware {ident}".encode()) for ident in SNP_ONLY}
    kernel = bytes((7 * i + 3) & 0xFF for i in range(1 << 20))
    initrd = bytes((13 * i + 1) & 0xFF for i in range(300_000))
    inputs = [("amdsev.fd", firmware), ("vmlinuz", kernel), ("initrd.img", initrd)]
    for name, data in [*inputs, *((f"{ident}.fd", data) for ident, data in snp_only.items())]:
        (folder / name).write_bytes(data)

    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    cpus = MODELS + [f"0x{0xA00F00 + i:x}" for i in range(12 * scale - len(MODELS))]
    lines = [
        "sevref: 1",
        "publication:",
        "  publisher: {id: bench, name: sevref benchmark, contact: bench@example.org}",
        "  product: bench",
        "  stream: standard",
        f"  release: scale-{scale}",
        "  serial: 1",
        "  issued: 2026-11-26T00:00:00Z",
        "  valid_for_days: 30",
        "firmware:",
        f"  - {{id: amdsev, source: {{path: amdsev.fd, sha256: {sha(firmware)}}}}}",
        *(
            f"  - {{id: {ident}, source: {{path: {ident}.fd, sha256: {sha(data)}}}}}"
            for ident, data in snp_only.items()
        ),
    ]
    for ident, (path, digest) in DEBIAN.items():
        # As manifests/firmware.yaml states it: Debian 12's descriptor for OVMF_CODE_4M.fd lists amd-sev only,
        # though the image boots SEV-ES guests; the publisher vouches for that mode itself.
        beyond = ", modes_beyond_descriptor: [sev-es]" if path.endswith("OVMF_CODE_4M.fd") else ""
        lines.append(
            f"  - {{id: {ident}, source: {{sha256: {digest}, debian: {{package: ovmf, version: 2022.11-6+deb12u2, "
            f"deb_sha256: {DEB}, path: {path}}}}}{beyond}}}"
        )
    lines += [
        "host_stacks:",
        '  - {id: legacy, vmm: qemu, qemu: {version: "10.1.0", machine: pc-q35-10.1}, host_linux: "6.1"}',
        '  - {id: legacy-debugswap, vmm: qemu, qemu: {version: "10.1.0", machine: pc-q35-10.1}, host_linux: "6.6", sev_features: "0x20"}',
        '  - {id: init2, vmm: qemu, qemu: {version: "10.1.0", machine: pc-q35-10.1, legacy_vm_type: "off"}, host_linux: "6.11"}',
        '  - {id: init2-debugswap, vmm: qemu, qemu: {version: "10.1.0", machine: pc-q35-10.1, legacy_vm_type: "off"}, host_linux: "6.11", guest_features: "0x21"}',
        "boots:",
        f"  - id: direct\n    kernel: {{path: vmlinuz, sha256: {sha(kernel)}}}\n    initrd: {{path: initrd.img, sha256: {sha(initrd)}}}",
        '    cmdlines: ["console=ttyS0", "console=ttyS0 root=/dev/vda1 ro", "quiet"]',
        "matrices:",
    ]
    # A matrix lists at most 1,000 CPUs (the manifest schema): larger scales take more matrices.
    for number, start in enumerate(range(0, len(cpus), 1000)):
        lines += [
            f"  - id: standard{'' if number == 0 else f'-{number + 1}'}",
            "    modes: [sev, sev-es, sev-snp]",
            f"    firmware: [amdsev, {', '.join(DEBIAN)}, {', '.join(SNP_ONLY)}]",
            "    host_stacks: [legacy, legacy-debugswap, init2, init2-debugswap]",
            f"    cpus: [{', '.join(cpus[start : start + 1000])}]",
            "    vcpus: [1-256]",
            "    boots: [null, direct]",
            '    expected: {sev: {policy: "0x1"}, sev-es: {policy: "0x5"}, sev-snp: {policy: "0x30000"}}',
            "    exclude:",
            "      - {mode: sev-snp, host_stack: [legacy, legacy-debugswap]}",
            f"      - {{mode: sev-snp, firmware: [{', '.join(DEBIAN)}]}}",
            f"      - {{mode: [sev, sev-es], firmware: [{', '.join(SNP_ONLY)}]}}",
            f"      - {{boot: direct, firmware: [{', '.join([*DEBIAN, *SNP_ONLY])}]}}",
        ]
    manifest = folder / "bench.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    return [manifest]
