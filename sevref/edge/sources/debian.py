"""Source kind ``debian``: a file inside a Debian binary package.

The .deb is downloaded from its own URL or a mirror's pool (pinned by
``deb_sha256``), or obtained with ``apt-get download`` (:mod:`sevref.edge.debian`);
its control file must name the package, version and architecture the manifest
gives, and the file is streamed out of ``data.tar`` (:mod:`sevref.binfmt.deb`).
"""

from __future__ import annotations

from functools import partial

from sevref.binfmt.archive import Extracted
from sevref.binfmt.deb import DebArchive
from sevref.edge.debian import identify_deb, obtain_deb
from sevref.edge.download import download
from sevref.edge.sources.kind import Context, SourceKind
from sevref.errors import ConfigError
from sevref.limits import MAX_DEB_BYTES
from sevref.manifest.model import Source

__all__ = ["DebianFile"]


class DebianFile(SourceKind):
    """``source: {debian: {package, version, architecture, path, url | mirror, deb_sha256}}``."""

    def origin(self, source: Source) -> str:
        """The position of the ``debian`` mapping.

        Args:
            source: the source.

        Returns:
            ``file:line:column``.
        """
        return source.debian.origin if source.debian is not None and source.debian.origin else source.origin

    def read(self, source: Source, what: str, limit: int, context: Context) -> Extracted:
        """Obtain the package and stream the file out of it.

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
        debian = source.debian
        if debian is None:  # pragma: no cover - the table chose this kind for a package
            raise ConfigError(f"{source.origin}: {what}: no Debian package")
        url = debian.deb_url
        if url is not None:
            if debian.deb_sha256 is None:  # pragma: no cover - the schema requires it
                raise ConfigError(f"{source.origin}: {what}: a package by URL needs deb_sha256")
            deb = download(url, debian.deb_sha256, limit=MAX_DEB_BYTES, cache=context.cache, seconds=context.deadline)
        else:
            deb = obtain_deb(
                debian.package, debian.version, debian.architecture, debian.deb_sha256, context.cache / "debs"
            )
        return context.packages.read(
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
