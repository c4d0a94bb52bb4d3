"""The release index (``index.json``) and the identity every published file carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sevref import __version__
from sevref.errors import SignatureError
from sevref.ids import shard_width
from sevref.records._common import SCHEMA_IDS, SCHEMAS, VERSIONS, schema_version
from sevref.values import format_time, parse_time

__all__ = ["Counts", "FileRef", "Index", "Layout", "Previous", "Release", "Signing"]


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileRef:
        """Read the JSON form.

        Args:
            data: a schema-valid mapping.

        Returns:
            The reference.
        """
        return cls(data["path"], data["sha256"], data["size"])


@dataclass(frozen=True)
class Counts:
    """How much a release holds."""

    entries: int
    """Entries: one digest each."""
    groups: int
    """Configurations."""
    firmware: int
    """Firmware builds."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {"entries": self.entries, "groups": self.groups, "firmware": self.firmware}


@dataclass(frozen=True)
class Layout:
    """How many hex digits name the shards of groups and digests."""

    groups_shard_hex: int
    """``groups/<first N hex digits of the group id>.json``."""
    digests_shard_hex: int
    """``digests/<first N hex digits of the digest>.json``."""

    @classmethod
    def for_counts(cls, groups: int, entries: int) -> Layout:
        """The layout that keeps shards small: about 64 groups or 512 digests a shard.

        Args:
            groups: the release's configurations.
            entries: its entries.

        Returns:
            The layout.
        """
        return cls(shard_width(groups, 64), shard_width(entries, 512))

    def group_shard(self, group: str) -> str:
        """The shard name of a group id.

        Args:
            group: the group id.

        Returns:
            Its first digits.
        """
        return group[: self.groups_shard_hex]

    def digest_shard(self, digest: str) -> str:
        """The shard name of a digest.

        Args:
            digest: lowercase hex.

        Returns:
            Its first digits.
        """
        return digest[: self.digests_shard_hex]

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {"groups_shard_hex": self.groups_shard_hex, "digests_shard_hex": self.digests_shard_hex}


@dataclass(frozen=True)
class Signing:
    """Which key signs the index, as the index itself says."""

    keyid: str
    """The key's id."""
    algorithm: str
    """Its algorithm (ecdsa-p256, ecdsa-p384 or ed25519)."""
    keys_version: int
    """The keys document that lists it."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {"keyid": self.keyid, "algorithm": self.algorithm, "keys_version": self.keys_version}


@dataclass(frozen=True)
class Previous:
    """The release an index follows (``previous``): its serial and the SHA-256 of its ``index.json``."""

    serial: int
    """Its serial, lower than the index's own."""
    sha256: str
    """The SHA-256 of its ``index.json``."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {"serial": self.serial, "sha256": self.sha256}


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
    issued: datetime
    """Issue time."""
    expires: datetime
    """Expiry: verifiers refuse the release afterwards."""
    counts: Counts
    """entries, groups, firmware."""
    layout: Layout
    """Hex digits of the group and digest shard names."""
    files: tuple[FileRef, ...]
    """Every other published file, sorted by path."""
    signing: Signing | None = None
    """The key that signs the release, or None: unsigned."""
    sevref: str = __version__
    """The sevref version that built the release."""
    previous: Previous | None = None
    """The release this one follows (``sevref build --previous``), or None: none named."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        previous = {} if self.previous is None else {"previous": self.previous.to_dict()}
        return {
            "schema": SCHEMAS["index"],
            **self.release.to_dict(),
            **previous,
            "publisher_name": self.publisher_name,
            "contact": self.contact,
            "url": self.url,
            "issued": format_time(self.issued),
            "expires": format_time(self.expires),
            "sevref": self.sevref,
            "counts": self.counts.to_dict(),
            "layout": self.layout.to_dict(),
            "files": [f.to_dict() for f in self.files],
            "signing": None if self.signing is None else self.signing.to_dict(),
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
        version = schema_version(data.get("schema"))
        if version is None or version[:2] != ("index", VERSIONS["index"][0]):
            raise SignatureError(f"index.json: schema is {data.get('schema')!r}; expected {SCHEMA_IDS['index']}")
        signing, previous = data["signing"], data.get("previous")
        return cls(
            release=Release.from_dict(data),
            publisher_name=data["publisher_name"],
            contact=data["contact"],
            url=data["url"],
            issued=parse_time(data["issued"]),
            expires=parse_time(data["expires"]),
            counts=Counts(**data["counts"]),
            layout=Layout(**data["layout"]),
            files=tuple(FileRef.from_dict(f) for f in data["files"]),
            signing=None if signing is None else Signing(**signing),
            sevref=data["sevref"],
            previous=None if previous is None else Previous(previous["serial"], previous["sha256"]),
        )
