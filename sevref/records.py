"""The published records: what every JSON file of a publication holds.

A publication (``sevref build --out DIR``) is::

    index.json               the release index: identity, validity, every file with sha256 and size
    publication.json         what the release covers: firmware, host stacks, boots, matrices, provenance
    groups/<hh>.json         configurations, each with its digests by vCPU count (sharded by id)
    digests/<hh>.json        digest -> entry ids (sharded by the digest's first hex digits)
    firmware/<id>.json       one firmware build: provenance, supported modes, and the
                             SEV/SEV-ES candidate list a verifier scans with its TIK
    catalog/<id>.json        one firmware build's configurations without digests, for the
                             site's search by mode, host stack, CPU and vCPU count

Every file carries the release identity, so a file of another release or
product is recognisable on its own; the index pins them all by hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sevref import __version__
from sevref.binfmt.ovmf import OvmfInfo
from sevref.binfmt.vmsa import VmsaProfile
from sevref.digest import Firmware, LaunchConfig, Mode, check_launch
from sevref.errors import ConfigError, FirmwareFormatError, SignatureError
from sevref.expand import AxisReport, Group
from sevref.manifest import FirmwareSpec, Manifest, Publication, Source

__all__ = [
    "CALCULATOR",
    "SCHEMAS",
    "FileRef",
    "Index",
    "Release",
    "catalog_order",
    "catalog_record",
    "catalog_row",
    "firmware_record",
    "group_record",
    "package_label",
    "publication_record",
    "shard_width",
    "vcpu_runs",
]

CALCULATOR = f"sevref {__version__}"
"""Who computed the digests, recorded in every group."""
SCHEMAS = {
    kind: f"urn:sevref:schema:{kind}:1" for kind in ("index", "publication", "groups", "digests", "firmware", "catalog")
}
"""The ``schema`` value of each kind of file (and the ``$id`` of its JSON Schema)."""
_QUANTITY = {
    Mode.SEV: ("sha256", "GCTX.LD"),
    Mode.SEV_ES: ("sha256", "GCTX.LD"),
    Mode.SEV_SNP: ("sha384", "MEASUREMENT"),
}


def _hex(value: int | None) -> str | None:
    return None if value is None else f"{value:#x}"


@dataclass(frozen=True)
class Release:
    """The identity of a release: what a verifier asked for must equal it."""

    publisher: str
    """Publisher id."""
    product: str
    """Product id."""
    stream: str
    """Stream id."""
    release: str
    """Release name."""
    serial: int
    """Monotonic serial."""

    @classmethod
    def of(cls, publication: Publication) -> Release:
        """Take the identity of a manifest's publication.

        Args:
            publication: from the manifest.

        Returns:
            The identity.
        """
        return cls(
            publication.publisher_id, publication.product, publication.stream, publication.release, publication.serial
        )

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "publisher": self.publisher,
            "product": self.product,
            "stream": self.stream,
            "release": self.release,
            "serial": self.serial,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Release:
        """Read the JSON form.

        Args:
            data: a schema-valid mapping.

        Returns:
            The identity.
        """
        return cls(data["publisher"], data["product"], data["stream"], data["release"], data["serial"])


@dataclass(frozen=True)
class FileRef:
    """A published file, pinned by the index."""

    path: str
    """Path relative to the publication's root, with / separators."""
    sha256: str
    """Lowercase hex SHA-256 of its bytes."""
    size: int
    """Its size in bytes."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class Index:
    """The release index (``index.json``): the file a publisher signs."""

    release: Release
    """The identity."""
    publisher_name: str
    """The publisher's name."""
    contact: str
    """Where to report problems."""
    url: str | None
    """Where the publication is hosted."""
    issued: str
    """Issue time (RFC 3339 UTC)."""
    expires: str
    """Expiry (RFC 3339 UTC): verifiers refuse the release afterwards."""
    counts: Mapping[str, int]
    """entries, groups, firmware."""
    layout: Mapping[str, int]
    """Hex digits of the group and digest shard names."""
    files: tuple[FileRef, ...]
    """Every other published file, sorted by path."""
    signing: Mapping[str, object] | None = None
    """The key that signs the release (keyid, algorithm, keys_version), or None: unsigned."""
    sevref: str = __version__
    """The sevref version that built the release."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "schema": SCHEMAS["index"],
            **self.release.to_dict(),
            "publisher_name": self.publisher_name,
            "contact": self.contact,
            "url": self.url,
            "issued": self.issued,
            "expires": self.expires,
            "sevref": self.sevref,
            "counts": dict(self.counts),
            "layout": dict(self.layout),
            "files": [f.to_dict() for f in self.files],
            "signing": None if self.signing is None else dict(self.signing),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Index:
        """Read the JSON form.

        Args:
            data: a mapping valid against the index schema.

        Returns:
            The index.

        Raises:
            SignatureError: not an index of a schema version sevref reads.
        """
        if data.get("schema") != SCHEMAS["index"]:
            raise SignatureError(f"index.json: schema is {data.get('schema')!r}; expected {SCHEMAS['index']}")
        return cls(
            release=Release.from_dict(data),
            publisher_name=data["publisher_name"],
            contact=data["contact"],
            url=data["url"],
            issued=data["issued"],
            expires=data["expires"],
            counts=dict(data["counts"]),
            layout=dict(data["layout"]),
            files=tuple(FileRef(f["path"], f["sha256"], f["size"]) for f in data["files"]),
            signing=data["signing"],
            sevref=data["sevref"],
        )


def shard_width(count: int, per_shard: int) -> int:
    """Hex digits of shard names so that shards hold about ``per_shard`` items or fewer.

    Args:
        count: the number of items.
        per_shard: the target.

    Returns:
        1 to 4.
    """
    width = 1
    while width < 4 and count > per_shard * 16**width:
        width += 1
    return width


def _source(source: Source) -> dict[str, object]:
    if source.debian is not None:
        d = source.debian
        return {
            "debian": {
                "package": d.package,
                "version": d.version,
                "architecture": d.architecture,
                "path": d.path,
                "deb_sha256": None if d.deb_sha256 is None else d.deb_sha256.hex(),
            }
        }
    return {"file": source.path.name if source.path else None}


def package_label(source: Source) -> str | None:
    """The package a file came from, as ``name version``.

    Args:
        source: the file's source.

    Returns:
        E.g. ``ovmf 2022.11-6+deb12u2``, or None for a local file.
    """
    return None if source.debian is None else f"{source.debian.package} {source.debian.version}"


def group_record(group: Group, digests: Sequence[bytes], source: Source) -> dict[str, object]:
    """The published record of a group.

    Args:
        group: the group.
        digests: one per vCPU count of the group (one for SEV).
        source: the firmware's source (for its package).

    Returns:
        A JSON-ready mapping.
    """
    config: LaunchConfig = group.config
    boot = config.boot
    host = group.host
    algorithm, quantity = _QUANTITY[group.mode]
    identity = group.identity()
    status = group.status
    counts: Sequence[int | None] = group.vcpus or (None,)
    return {
        "id": group.id,
        "mode": str(group.mode),
        "digest_algorithm": algorithm,
        "digest_quantity": quantity,
        "firmware": group.firmware,
        "firmware_sha256": group.firmware_sha256.hex(),
        "firmware_package": package_label(source),
        "host_stack": host.id,
        "vmm": str(host.vmm),
        "qemu_version": identity["qemu_version"],
        "machine": host.machine,
        "legacy_vm_type": host.legacy_vm_type,
        "host_linux": identity["host_linux"],
        "vmsa_profile": identity["vmsa_profile"],
        "cpu": identity["cpu"],
        "cpu_signature": identity["cpu_signature"],
        "sev_features": _hex(config.sev_features) if group.mode is Mode.SEV_ES else None,
        "guest_features": _hex(config.sev_features) if group.mode is Mode.SEV_SNP else None,
        "boot": None if group.boot is None else group.boot.id,
        "kernel_sha256": identity["kernel_sha256"],
        "initrd_sha256": identity["initrd_sha256"],
        "cmdline": None if boot is None else boot.cmdline,
        "cmdline_sha256": identity["cmdline_sha256"],
        "policy": _hex(group.expected.policy),
        "min_api": None if group.expected.min_api is None else "{}.{}".format(*group.expected.min_api),
        "status": "active" if status is None else status.status,
        "status_reason": None if status is None else status.reason,
        "successor": None if status is None else status.successor,
        "matrix": group.matrix,
        "calculator": CALCULATOR,
        "entries": [[count, digest.hex()] for count, digest in zip(counts, digests, strict=True)],
    }


# Firmware-only launches of each mode: what a firmware must offer for the mode at all.
_PROBES = {
    Mode.SEV: LaunchConfig(mode=Mode.SEV),
    Mode.SEV_ES: LaunchConfig(mode=Mode.SEV_ES, cpu_signature=0, vmsa_profile=VmsaProfile.INIT2),
    Mode.SEV_SNP: LaunchConfig(mode=Mode.SEV_SNP, cpu_signature=0, vmsa_profile=VmsaProfile.INIT2, sev_features=1),
}


def _support(info: OvmfInfo, mode: Mode) -> str:
    """Say "supported", or why the firmware cannot launch ``mode``."""
    try:
        check_launch(info, _PROBES[mode])
    except (ConfigError, FirmwareFormatError) as error:
        return error.diagnostic()
    return "supported"


def firmware_record(spec: FirmwareSpec, firmware: Firmware, sha384: bytes) -> dict[str, object]:
    """The published description of a firmware build (without its candidate list).

    Args:
        spec: its manifest entry.
        firmware: the prepared image.
        sha384: SHA-384 of the image.

    Returns:
        A JSON-ready mapping.
    """
    info = firmware.info
    area = info.hash_table
    sections = info.snp_sections
    snp = _support(info, Mode.SEV_SNP) == "supported"
    return {
        "id": spec.id,
        "description": spec.description,
        "sha256": firmware.sha256.hex(),
        "sha384": sha384.hex(),
        "size": info.size,
        "source": _source(spec.source),
        "ap_reset_eip": _hex(info.sev_es_reset_eip),
        "reset_block": None if info.reset_block_source is None else str(info.reset_block_source),
        "kernel_hashes": {
            "supported": info.kernel_hashes_supported(),
            "base": None if area is None else _hex(area.base),
            "size": None if area is None else _hex(area.size),
        },
        "snp_metadata": None
        if sections is None
        else [
            {"gpa": _hex(s.gpa), "size": _hex(s.size), "type": s.kind.name if s.kind else _hex(s.type)}
            for s in sections
        ],
        "snp_prefix": firmware.snp_prefix.hex() if snp else None,
        "modes": {str(mode): _support(info, mode) for mode in (Mode.SEV, Mode.SEV_ES, Mode.SEV_SNP)},
    }


def publication_record(
    manifest: Manifest, reports: Sequence[AxisReport], firmware: Mapping[str, Firmware]
) -> dict[str, object]:
    """What the release covers, for people and tools.

    Args:
        manifest: the manifest.
        reports: the expansion's axis reports.
        firmware: the prepared images by id.

    Returns:
        A JSON-ready mapping.
    """
    pub = manifest.publication
    return {
        "schema": SCHEMAS["publication"],
        "release": Release.of(pub).to_dict(),
        "description": pub.description,
        "firmware": [
            {
                "id": spec.id,
                "description": spec.description,
                "sha256": firmware[spec.id].sha256.hex(),
                "size": firmware[spec.id].info.size,
                "package": package_label(spec.source),
                "file": f"firmware/{spec.id}.json",
            }
            for spec in manifest.firmware.values()
            if spec.id in firmware
        ],
        "host_stacks": [
            {
                "id": host.id,
                "description": host.description,
                "vmm": str(host.vmm),
                "qemu_version": None if host.qemu_version is None else str(host.qemu_version),
                "machine": host.machine,
                "legacy_vm_type": host.legacy_vm_type,
                "host_linux": None if host.host_linux is None else str(host.host_linux),
                "vmsa_profile": None if host.vmsa_profile is None else str(host.vmsa_profile),
                "sev_features": _hex(host.sev_features),
                "guest_features": _hex(host.guest_features),
            }
            for host in manifest.host_stacks.values()
        ],
        "boots": [
            {
                "id": boot.id,
                "description": boot.description,
                "kernel_sha256": boot.kernel.sha256.hex(),
                "initrd_sha256": None if boot.initrd is None else boot.initrd.sha256.hex(),
                "cmdlines": list(boot.cmdlines),
            }
            for boot in manifest.boots.values()
        ],
        "matrices": [
            {"id": r.matrix, "axes": dict(r.axes), "combinations": r.product, "entries": r.entries} for r in reports
        ],
        "manifests": [{"name": name.rsplit("/", 1)[-1], "sha256": sha.hex()} for name, sha in manifest.documents],
        "calculator": CALCULATOR,
    }


def vcpu_runs(counts: Sequence[int]) -> list[list[int]]:
    """Sorted vCPU counts as inclusive ``[first, last]`` runs of consecutive counts.

    Args:
        counts: sorted, distinct counts.

    Returns:
        E.g. ``[[1, 4], [8, 8]]`` for 1, 2, 3, 4, 8.
    """
    runs: list[list[int]] = []
    for count in counts:
        if runs and runs[-1][1] == count - 1:
            runs[-1][1] = count
        else:
            runs.append([count, count])
    return runs


_MODE_ORDER = {str(mode): n for n, mode in enumerate((Mode.SEV, Mode.SEV_ES, Mode.SEV_SNP))}


def catalog_row(record: Mapping[str, Any]) -> dict[str, object]:
    """A group's line in its firmware's catalog: the configuration, without digests.

    Args:
        record: the group's record (:func:`group_record`).

    Returns:
        A JSON-ready mapping.
    """
    counts = [count for count, _ in record["entries"] if count is not None]
    return {
        "id": record["id"],
        "mode": record["mode"],
        "host_stack": record["host_stack"],
        "vmsa_profile": record["vmsa_profile"],
        "cpu": record["cpu"],
        "cpu_signature": record["cpu_signature"],
        "features": record["sev_features"] or record["guest_features"],
        "boot": record["boot"],
        "cmdline": record["cmdline"],
        "vcpus": vcpu_runs(counts) if counts else None,
        "status": record["status"],
    }


def catalog_order(row: Mapping[str, Any]) -> tuple[object, ...]:
    """The sort key of catalog rows: people read by mode, host stack, CPU, features, boot and command line.

    Args:
        row: a :func:`catalog_row` value.

    Returns:
        The key.
    """
    return (
        _MODE_ORDER[row["mode"]],
        row["host_stack"],
        row["cpu"] or "",
        int(row["cpu_signature"] or "0x0", 16),
        int(row["features"] or "0x0", 16),
        row["boot"] or "",
        row["cmdline"] or "",
        row["id"],
    )


def catalog_record(release: Release, firmware: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, object]:
    """The catalog of one firmware build.

    Args:
        release: the release identity.
        firmware: the firmware id.
        rows: its groups' :func:`catalog_row` values, sorted by :func:`catalog_order`.

    Returns:
        A JSON-ready mapping.
    """
    return {"schema": SCHEMAS["catalog"], "release": release.to_dict(), "firmware": firmware, "configurations": rows}
