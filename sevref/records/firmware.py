"""A firmware build as published (``firmware/<id>.json``): provenance, layout facts, supported modes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sevref.records._common import hex_or_none, int_or_none

__all__ = ["DebianRef", "FirmwareRecord", "KernelHashesRecord", "SnpSection"]


@dataclass(frozen=True)
class DebianRef:
    """The Debian package a file came from."""

    package: str
    """Package name."""
    version: str
    """Exact version."""
    architecture: str
    """Architecture."""
    path: str
    """The file's installed path, without a leading /."""
    deb_sha256: str | None
    """The .deb's pin, if the manifest gave one."""
    url: str | None = None
    """Where the .deb was downloaded from (the manifest's url, or its mirror's pool path); None: apt-get download."""

    @property
    def deb_file(self) -> str:
        """The .deb's file name as a pool holds it: ``<package>_<version without epoch>_<architecture>.deb``."""
        return f"{self.package}_{self.version.split(':', 1)[-1]}_{self.architecture}.deb"

    @property
    def label(self) -> str:
        """``name version``, e.g. ``ovmf 2022.11-6+deb12u2``."""
        return f"{self.package} {self.version}"

    @property
    def file_name(self) -> str:
        """The installed file's name."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class KernelHashesRecord:
    """A firmware's kernel-hashes table area."""

    supported: bool
    """Whether the image has one (measured direct boot works)."""
    base: int | None
    """Its guest-physical address."""
    size: int | None
    """Its size."""


@dataclass(frozen=True)
class SnpSection:
    """One SEV-SNP metadata section of a firmware."""

    gpa: int
    """Guest-physical address."""
    size: int
    """Size in bytes."""
    type: str
    """Section type name (or its number in hex, if unknown)."""


@dataclass(frozen=True)
class FirmwareRecord:
    """A firmware build as ``firmware/<id>.json`` describes it (without its candidate list)."""

    id: str
    """Firmware id."""
    description: str
    """Free text."""
    sha256: str
    """The image's SHA-256."""
    sha384: str
    """The image's SHA-384."""
    size: int
    """The image's size."""
    debian: DebianRef | None
    """The Debian package it came from, or None for a local file."""
    file: str | None
    """The local file's name, when not from a package."""
    ap_reset_eip: int | None
    """The SEV-ES AP reset address."""
    reset_block: str | None
    """footer-table or legacy-block."""
    kernel_hashes: KernelHashesRecord
    """The kernel-hashes table area."""
    snp_metadata: tuple[SnpSection, ...] | None
    """SEV-SNP metadata sections, if any."""
    snp_prefix: str | None
    """The SEV-SNP chain over the firmware pages alone."""
    modes: Mapping[str, str]
    """Mode -> "supported" or why not."""
    url: str | None = None
    """Where the image was downloaded from, when the manifest gave a URL (then ``file`` is its name)."""

    @property
    def file_name(self) -> str:
        """The image's file name, as a user has it after unpacking."""
        if self.debian is not None:
            return self.debian.file_name
        return self.file or f"{self.id}.fd"

    @property
    def package(self) -> str | None:
        """``name version`` of its package, if any."""
        return None if self.debian is None else self.debian.label

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        d = self.debian
        # "url" appears only where a URL was used, so that the records of packages
        # obtained with apt-get download and of local files are as they were.
        source: dict[str, object]
        if d is None:
            source = {"file": self.file} if self.url is None else {"url": self.url, "file": self.file}
        else:
            debian = {
                "package": d.package,
                "version": d.version,
                "architecture": d.architecture,
                "path": d.path,
                "deb_sha256": d.deb_sha256,
            }
            source = {"debian": debian if d.url is None else {**debian, "url": d.url}}
        area = self.kernel_hashes
        return {
            "id": self.id,
            "description": self.description,
            "sha256": self.sha256,
            "sha384": self.sha384,
            "size": self.size,
            "source": source,
            "ap_reset_eip": hex_or_none(self.ap_reset_eip),
            "reset_block": self.reset_block,
            "kernel_hashes": {
                "supported": area.supported,
                "base": hex_or_none(area.base),
                "size": hex_or_none(area.size),
            },
            "snp_metadata": None
            if self.snp_metadata is None
            else [{"gpa": hex_or_none(s.gpa), "size": hex_or_none(s.size), "type": s.type} for s in self.snp_metadata],
            "snp_prefix": self.snp_prefix,
            "modes": dict(self.modes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FirmwareRecord:
        """Read the JSON form.

        Args:
            data: a mapping valid against the firmware schema's ``firmware`` member.

        Returns:
            The record.
        """
        debian = data["source"].get("debian")
        area = data["kernel_hashes"]
        sections = data["snp_metadata"]
        return cls(
            id=data["id"],
            description=data["description"],
            sha256=data["sha256"],
            sha384=data["sha384"],
            size=data["size"],
            debian=None if debian is None else DebianRef(**debian),
            file=data["source"].get("file"),
            url=data["source"].get("url"),
            ap_reset_eip=int_or_none(data["ap_reset_eip"]),
            reset_block=data["reset_block"],
            kernel_hashes=KernelHashesRecord(area["supported"], int_or_none(area["base"]), int_or_none(area["size"])),
            snp_metadata=None
            if sections is None
            else tuple(SnpSection(int(s["gpa"], 16), int(s["size"], 16), s["type"]) for s in sections),
            snp_prefix=data["snp_prefix"],
            modes=dict(data["modes"]),
        )
