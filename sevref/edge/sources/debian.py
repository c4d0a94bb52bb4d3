"""Source kind ``debian``: a file inside a Debian binary package.

The .deb is downloaded from its own URL or a mirror's pool (pinned by
``deb_sha256``), or obtained with ``apt-get download`` (of another Debian suite
with ``suite``, through the build host's archive: :mod:`sevref.edge.apt`), and else from its
``fallback`` URLs (:func:`sevref.edge.debian.fetch_deb`);
its control file must name the package, version and architecture the manifest
gives, and the file is streamed out of ``data.tar`` (:mod:`sevref.binfmt.deb`).
For a firmware file, the package's QEMU firmware descriptors are read too
(:mod:`sevref.edge.descriptors`), and the one that names the file is returned with it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from sevref.binfmt.archive import Extracted
from sevref.binfmt.deb import DebArchive
from sevref.binfmt.descriptor import Finding
from sevref.edge.debian import fetch_deb, identify_deb
from sevref.edge.descriptors import deb_descriptors
from sevref.edge.sources.kind import Context, SourceKind
from sevref.errors import ConfigError
from sevref.manifest.model import DebianSource, Source

__all__ = ["DebianFile"]


class DebianFile(SourceKind):
    """``source: {debian: {package, version, architecture, path, url | mirror | suite, deb_sha256, fallback}}``."""

    def origin(self, source: Source) -> str:
        """The position of the ``debian`` mapping.

        Args:
            source: the source.

        Returns:
            ``file:line:column``.
        """
        return source.debian.origin if source.debian is not None and source.debian.origin else source.origin

    def read(self, source: Source, what: str, limit: int, context: Context) -> Extracted:
        """Obtain the package and stream the file out of it (:meth:`SourceKind.read`).

        Args:
            source: the source.
            what: how to name the file.
            limit: the largest size accepted.
            context: the cache, time limit and packages already indexed.

        Returns:
            The bytes and their SHA-256, computed as the file was streamed out of the package.

        Raises:
            SevrefError: not obtained, not the package named, no such file, too large, or damaged.
        """
        return self._obtain(source, what, limit, context)[0]

    def read_firmware(self, source: Source, what: str, limit: int, context: Context) -> tuple[Extracted, Finding]:
        """The file, and the descriptor of its package that names it (:meth:`SourceKind.read_firmware`).

        Args:
            source: the source.
            what: how to name the file.
            limit: the largest size accepted.
            context: the cache, time limit and packages already indexed.

        Returns:
            The bytes and their SHA-256, and what the package's descriptors say of the file.

        Raises:
            SevrefError: as :meth:`read`, or a descriptor is damaged.
        """
        extracted, deb, debian = self._obtain(source, what, limit, context)
        described = deb_descriptors(deb, debian.file_name, f"{debian.package} {debian.version}")
        return extracted, Finding(read=True, described=described.describing(debian.path))

    @staticmethod
    def _obtain(source: Source, what: str, limit: int, context: Context) -> tuple[Extracted, Path, DebianSource]:
        """The file, the .deb it came out of, and the manifest's ``debian`` mapping."""
        debian = source.debian
        if debian is None:  # pragma: no cover - the table chose this kind for a package
            raise ConfigError(f"{source.origin}: {what}: no Debian package")
        deb = fetch_deb(debian, context.cache, context.deadline)  # url, mirror or apt-get; then its fallbacks
        extracted = context.packages.read(
            deb,
            debian.file_name,
            debian.path,
            limit=limit,
            what=what,
            open_archive=DebArchive,
            identify=partial(
                identify_deb, package=debian.package, version=debian.version, architecture=debian.architecture
            ),
        )
        return extracted, deb, debian
