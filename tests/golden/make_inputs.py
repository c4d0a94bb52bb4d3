"""Regenerate the golden publication's inputs (``make golden`` runs this, then rebuilds).

The inputs are small synthetic files, committed so the golden build needs
nothing from outside the repository: a 64 KiB OVMF-like image with a
kernel-hashes table and SEV-SNP metadata (tests/images.py lays it out as edk2
does), a 4 KiB "kernel" and a 1 KiB "initrd".
"""

from __future__ import annotations

from pathlib import Path

from tests.images import snp_image

HERE = Path(__file__).resolve().parent / "inputs"
SECTIONS = [
    (0x800000, 0x2000, 1),
    (0x802000, 0x1000, 2),
    (0x803000, 0x1000, 3),
    (0x804000, 0x1000, 0x10),
    (0x805000, 0x1000, 4),
]


def main() -> None:
    HERE.mkdir(exist_ok=True)
    # 64 KiB: QEMU loads an SEV-SNP guest's firmware with -bios only in whole 64 KiB (sevref.hosts.firmware).
    (HERE / "tiny.fd").write_bytes(snp_image(SECTIONS, size=16 * 4096, hash_table=(0x804C00, 0x400)))
    (HERE / "vmlinuz").write_bytes(bytes((5 * i + 1) & 0xFF for i in range(4096)))
    (HERE / "initrd.img").write_bytes(bytes((3 * i + 7) & 0xFF for i in range(1024)))


if __name__ == "__main__":
    main()
