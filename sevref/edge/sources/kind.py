"""The interface of a source kind: one module per kind of place a pinned file comes from.

A manifest's ``source`` names its file in one of several ways (``path``,
``url``, ``debian``, ``rpm``): each is a :class:`SourceKind` in a module of
this package, listed once in :data:`sevref.edge.sources.KINDS` under the
manifest key that selects it. A kind only obtains bytes (and, for a firmware
file, what its package says about it); the checks every kind shares (the pin,
the size limit, errors that start with the manifest's ``file:line:column``) are
:class:`~sevref.edge.sources.Sources`'s. Adding a kind (an OCI artifact, say)
is a module here, a line in the table, its model in :mod:`sevref.manifest.model`
and its stanza in the manifest schema. A kind that takes its file out of a
package is a :class:`PackageKind`: it says how to unpack the package and read
its QEMU firmware descriptors, and reads like every other package kind.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

from sevref.binfmt.archive import Extracted
from sevref.binfmt.descriptor import Finding
from sevref.edge.descriptors import PackageDescriptors
from sevref.edge.packages import PackageFiles
from sevref.manifest.model import Source

__all__ = ["Context", "PackageKind", "SourceKind", "Unpacked"]


@dataclass
class Context:
    """What every kind may use: the cache, the time limits, the allowed folders, packages already indexed."""

    cache: Path
    """Where downloads are kept (``CACHE/sha256/<pin>``; apt-get's in ``CACHE/debs``)."""
    deadline: float
    """Seconds one whole download may take (``--download-timeout``)."""
    allow: list[Path] = field(default_factory=list)
    """Resolved folders outside a manifest's own from which it may name files (``--allow-path``)."""
    packages: PackageFiles = field(default_factory=PackageFiles)
    """Package files read this run, each indexed once."""


class SourceKind(abc.ABC):
    """One way of obtaining a pinned file."""

    def origin(self, source: Source) -> str:
        """The ``file:line:column`` that errors about this source start with.

        Args:
            source: the source.

        Returns:
            The source's own position (a kind with a nested mapping may name that).
        """
        return source.origin

    names_itself: bool = False
    """True when the kind's errors already name the input (a local file's path), so the caller does not."""

    @abc.abstractmethod
    def read(self, source: Source, what: str, limit: int, context: Context) -> Extracted:
        """Obtain the file's bytes, hashed as they are read.

        Args:
            source: the manifest's source.
            what: how to name the file (``firmware ovmf-code``).
            limit: the largest size accepted.
            context: the cache, time limits and memory of this run.

        Returns:
            At most ``limit`` bytes and their SHA-256; the caller compares it with the pin.

        Raises:
            SevrefError: not obtained, not readable, too large, or not in its package.
        """

    def read_firmware(self, source: Source, what: str, limit: int, context: Context) -> tuple[Extracted, Finding]:
        """Obtain a firmware file's bytes, and what its package says about it.

        A kind that reads packages returns the QEMU firmware descriptor that
        names the file (:mod:`sevref.edge.descriptors`); any other kind has no
        package to read.

        Args:
            source: the manifest's source.
            what: how to name the file (``firmware ovmf-code``).
            limit: the largest size accepted.
            context: the cache, time limits and memory of this run.

        Returns:
            What :meth:`read` returns, and the finding (not read: no package).

        Raises:
            SevrefError: as :meth:`read`, or its package's descriptors are damaged.
        """
        return self.read(source, what, limit, context), Finding()


@dataclass(frozen=True)
class Unpacked:
    """A file taken out of a package, and the package it came from."""

    extracted: Extracted
    """The file's bytes and SHA-256, computed as it was streamed out."""
    package: Path
    """The package file (in the cache)."""
    name: str
    """How to name the package in errors (its URL or file name)."""
    label: str
    """The package's ``name version``."""
    path: str
    """The file's path inside the package (what a descriptor names)."""


class PackageKind(SourceKind):
    """A kind that takes the file out of a package (a .deb, an RPM), which may say how QEMU launches it.

    A package format is :meth:`unpack` and :meth:`descriptors` (its QEMU
    firmware descriptors: :mod:`sevref.edge.descriptors`); reading a file, and
    a firmware file with the descriptor that names it, is the same for each.
    """

    def read(self, source: Source, what: str, limit: int, context: Context) -> Extracted:
        """Obtain the package and stream the file out of it (:meth:`SourceKind.read`, by :meth:`unpack`)."""
        return self.unpack(source, what, limit, context).extracted

    def read_firmware(self, source: Source, what: str, limit: int, context: Context) -> tuple[Extracted, Finding]:
        """The file, and the descriptor of its package that names it (:meth:`SourceKind.read_firmware`)."""
        unpacked = self.unpack(source, what, limit, context)
        described = self.descriptors(unpacked.package, unpacked.name, unpacked.label)
        return unpacked.extracted, Finding(read=True, described=described.describing(unpacked.path))

    @abc.abstractmethod
    def unpack(self, source: Source, what: str, limit: int, context: Context) -> Unpacked:
        """Obtain the package, check it is the one the manifest names, and stream the file out of it.

        Args:
            source: the source.
            what: how to name the file.
            limit: the largest size accepted.
            context: the cache, time limit and packages already indexed.

        Returns:
            The file, and the package it came from.

        Raises:
            SevrefError: not obtained, not the package named, no such file, too large, or damaged.
        """

    @abc.abstractmethod
    def descriptors(self, package: Path, name: str, label: str) -> PackageDescriptors:
        """Read a package's QEMU firmware descriptors.

        Args:
            package: the package file.
            name: how to name it in errors.
            label: its ``name version``.

        Returns:
            Its descriptors, and its links to resolve the paths they name.

        Raises:
            SevrefError: a descriptor is damaged or too large.
        """
