"""Source kind ``rpm``: a file inside an RPM package.

The .rpm is downloaded from its own URL, or from a repository root through its
``repodata/repomd.xml`` and primary metadata (:mod:`sevref.edge.repo`), pinned by
``rpm_sha256`` either way; its header must say the NAME, VERSION-RELEASE and
ARCH the manifest gives, and the file is streamed out of its cpio payload
(:mod:`sevref.binfmt.rpm`). For a firmware file, the package's QEMU firmware descriptors are
read too (:mod:`sevref.edge.descriptors`), and the one that names the file is returned with it.
"""

from __future__ import annotations

from pathlib import Path

from sevref.binfmt.archive import Extracted
from sevref.binfmt.descriptor import Finding
from sevref.binfmt.rpm import TAG_ARCH, TAG_NAME, TAG_RELEASE, TAG_VERSION, RpmArchive
from sevref.edge.descriptors import rpm_descriptors
from sevref.edge.download import cached, download
from sevref.edge.repo import locate_rpm
from sevref.edge.sources.kind import Context, SourceKind
from sevref.errors import ConfigError, FetchError
from sevref.limits import MAX_RPM_BYTES
from sevref.manifest.model import RpmSource, Source

__all__ = ["RpmFile", "identify_rpm"]


def identify_rpm(archive: RpmArchive, rpm: RpmSource) -> str:
    """Check an RPM's header against the manifest.

    Args:
        archive: the open package.
        rpm: the manifest's ``rpm`` mapping.

    Returns:
        ``name version-release``.

    Raises:
        FetchError: NAME, VERSION-RELEASE or ARCH differs; the message names the tag.
    """
    facts = archive.facts()
    found_version = f"{facts['version']}-{facts['release']}"
    for field, tag, found, expected in (
        ("NAME", TAG_NAME, facts["name"], rpm.package),
        ("VERSION-RELEASE", f"{TAG_VERSION}, {TAG_RELEASE}", found_version, rpm.version),
        ("ARCH", TAG_ARCH, facts["arch"], rpm.architecture),
    ):
        if found != expected:
            raise FetchError(
                f"{archive.what}: its header's {field} (tag {tag}) is {found!r}; expected {expected!r} "
                "(the manifest's rpm mapping)"
            )
    return f"{rpm.package} {rpm.version}"


class RpmFile(SourceKind):
    """``source: {rpm: {package, version, architecture, path, url | mirror, rpm_sha256}}``."""

    def origin(self, source: Source) -> str:
        """The position of the ``rpm`` mapping.

        Args:
            source: the source.

        Returns:
            ``file:line:column``.
        """
        return source.rpm.origin if source.rpm is not None and source.rpm.origin else source.origin

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
        extracted, package, name, rpm = self._obtain(source, what, limit, context)
        described = rpm_descriptors(package, name, f"{rpm.package} {rpm.version}")
        return extracted, Finding(read=True, described=described.describing(rpm.path))

    @staticmethod
    def _obtain(source: Source, what: str, limit: int, context: Context) -> tuple[Extracted, Path, str, RpmSource]:
        """The file, the .rpm it came out of and how to name that, and the manifest's ``rpm`` mapping."""
        rpm = source.rpm
        if rpm is None:  # pragma: no cover - the table chose this kind for a package
            raise ConfigError(f"{source.origin}: {what}: no RPM package")
        package = cached(context.cache, rpm.rpm_sha256)
        url = rpm.url
        if package is None:
            if url is None and rpm.mirror is not None:
                url = locate_rpm(rpm, cache=context.cache, seconds=context.deadline)
            if url is None:  # pragma: no cover - the schema requires url or mirror
                raise ConfigError(f"{source.origin}: {what}: an RPM needs url or mirror")
            package = download(url, rpm.rpm_sha256, limit=MAX_RPM_BYTES, cache=context.cache, seconds=context.deadline)
        extracted = context.packages.read(
            package,
            url or rpm.file_name,
            rpm.path,
            limit=limit,
            what=what,
            open_archive=RpmArchive,
            identify=lambda archive: identify_rpm(archive, rpm),
        )
        return extracted, package, url or rpm.file_name, rpm
