"""A firmware build as published (``firmware/<id>.json``): provenance, layout facts, supported modes."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sevref.binfmt.descriptor import Descriptor
from sevref.records._common import hex_or_none, int_or_none

__all__ = ["Basis", "DebianRef", "FirmwareRecord", "KernelHashesRecord", "Nvram", "SnpSection", "State", "Store"]


class State(enum.StrEnum):
    """Whether a firmware keeps UEFI variables between boots (QEMU's "stateless firmware")."""

    STATELESS = "stateless"
    """No variable store: every boot starts from the measured image."""
    STATEFUL = "stateful"
    """A variable store the host keeps: the firmware uses state the measurement does not vouch for."""


class Store(enum.StrEnum):
    """Where a firmware keeps its UEFI variables (the manifest's ``firmware[].nvram``)."""

    EMBEDDED = "embedded"
    """In a variable store inside the image, on the flash file the host keeps (a unified OVMF.fd)."""
    SEPARATE = "separate"
    """In a second flash file beside the image (OVMF_VARS, pflash unit 1), which QEMU does not measure."""
    NONE = "none"
    """Nowhere between boots: in guest memory only (an AmdSevX64 build launched with -bios)."""
    UNKNOWN = "unknown"
    """Neither the image nor the manifest says."""


class Basis(enum.StrEnum):
    """How sevref knows where the variables are kept."""

    IMAGE = "image"
    """Read from the image: the firmware volume it starts with."""
    MANIFEST = "manifest"
    """Stated by the publisher (``nvram``), and checked against the image as far as it tells."""
    ASSUMED = "assumed"
    """Neither says: assumed stateful."""
    LAUNCH = "launch"
    """How the host launches it says: QEMU gives an SEV-SNP guest its firmware with -bios and no OVMF_VARS."""
    DESCRIPTOR = "descriptor"
    """Its package's QEMU firmware descriptor says how QEMU maps it (the record's ``descriptor``)."""


_EXPLAIN = {
    Store.NONE: (
        "The firmware keeps no UEFI variables between boots: they live in guest memory and start from the "
        "measured image on every boot, so the host cannot hand it variables of its choosing."
    ),
    Store.SEPARATE: (
        "UEFI variables are outside the measurement: the host can change boot order and Secure Boot keys "
        "without changing this digest. This image has no variable store of its own; its variables are in a "
        "separate flash file (OVMF_VARS, pflash unit 1) that the host supplies and QEMU does not measure."
    ),
    Store.EMBEDDED: (
        "The image carries its own UEFI variable store, and the firmware writes its variables back into it, "
        "in the flash file the host keeps and can rewrite between boots. This digest covers the store only "
        "as published: a guest whose variables have changed no longer matches it, and what the firmware "
        "reads there is state from the host's file."
    ),
    Store.UNKNOWN: (
        "sevref cannot tell from the image where the firmware keeps its UEFI variables, and the publisher "
        "does not say. If they live outside the measurement, the host can change boot order and Secure Boot "
        "keys without changing this digest."
    ),
}
_HOW = {
    Basis.IMAGE: "read from the image",
    Basis.MANIFEST: "stated by the publisher",
    Basis.ASSUMED: "assumed: nothing says otherwise",
    Basis.LAUNCH: "an SEV-SNP launch: -bios, no OVMF_VARS",
    Basis.DESCRIPTOR: "its package's QEMU firmware descriptor maps it so",
}
_WHERE = {
    Store.EMBEDDED: "variable store inside the image",
    Store.SEPARATE: "variables in a separate, unmeasured OVMF_VARS file",
    Store.NONE: "no variable store",
    Store.UNKNOWN: "variable store unknown",
}


@dataclass(frozen=True)
class Nvram:
    """Where a firmware keeps its UEFI variables, and so whether it is stateless."""

    store: Store
    """Where the variables are kept."""
    basis: Basis
    """How sevref knows."""

    @property
    def state(self) -> State:
        """Stateless only when there is no store at all; an unknown store counts as stateful."""
        return State.STATELESS if self.store is Store.NONE else State.STATEFUL

    def label(self) -> str:
        """A short label for tables.

        Returns:
            E.g. ``stateful (variables in a separate, unmeasured OVMF_VARS file; read from the image)``.
        """
        return f"{self.state} ({_WHERE[self.store]}; {_HOW[self.basis]})"

    def explain(self) -> str:
        """What it means for a verifier, in words a reader understands.

        Returns:
            One or more sentences.
        """
        return _EXPLAIN[self.store]

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {"state": str(self.state), "store": str(self.store), "basis": str(self.basis)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Nvram:
        """Read the JSON form (its ``state`` follows from ``store``; the schema holds them together).

        Args:
            data: a mapping valid against the firmware schema's ``nvram`` member.

        Returns:
            The record.
        """
        return cls(Store(data["store"]), Basis(data["basis"]))


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
    nvram: Nvram
    """Where the firmware keeps its UEFI variables: stateless or stateful."""
    url: str | None = None
    """Where the image was downloaded from, when the manifest gave a URL (then ``file`` is its name)."""
    descriptor: Descriptor | None = None
    """The QEMU firmware descriptor its package ships for it (how QEMU maps it, its features), if any."""
    package_name: str | None = None
    """``name version`` of the package it came from (any kind), when it has a descriptor."""

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
        # "descriptor" appears only where the package has one, so that other records are as they were.
        described = (
            {}
            if self.descriptor is None
            else {"descriptor": {**self.descriptor.to_dict(), "package": self.package_name}}
        )
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
            "nvram": self.nvram.to_dict(),
            **described,
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
            nvram=Nvram.from_dict(data["nvram"]),
            descriptor=None if "descriptor" not in data else Descriptor.from_dict(data["descriptor"]),
            package_name=None if "descriptor" not in data else data["descriptor"]["package"],
        )
