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

from sevref.binfmt.deb import DebArchive
from sevref.edge.debian import fetch_deb, identify_deb
from sevref.edge.descriptors import PackageDescriptors, deb_descriptors
from sevref.edge.sources.kind import Context, PackageKind, Unpacked
from sevref.errors import ConfigError
from sevref.manifest.model import Source

__all__ = ["DebianFile"]


class DebianFile(PackageKind):
    """``source: {debian: {package, version, architecture, path, url | mirror | suite, deb_sha256, fallback}}``."""

    def origin(self, source: Source) -> str:
        """The position of the ``debian`` mapping.

        Args:
            source: the source.

        Returns:
            ``file:line:column``.
        """
        return source.debian.origin if source.debian is not None and source.debian.origin else source.origin

    def unpack(self, source: Source, what: str, limit: int, context: Context) -> Unpacked:
        """Obtain the .deb, check its control file, and stream the file out of ``data.tar`` (:meth:`PackageKind.unpack`)."""
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
        return Unpacked(extracted, deb, debian.file_name, f"{debian.package} {debian.version}", debian.path)

    def descriptors(self, package: Path, name: str, label: str) -> PackageDescriptors:
        """The QEMU firmware descriptors in the .deb's ``data.tar`` (:meth:`PackageKind.descriptors`)."""
        return deb_descriptors(package, name, label)
