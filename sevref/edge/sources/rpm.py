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

from sevref.binfmt.rpm import TAG_ARCH, TAG_NAME, TAG_RELEASE, TAG_VERSION, RpmArchive
from sevref.edge.descriptors import PackageDescriptors, rpm_descriptors
from sevref.edge.download import cached, download
from sevref.edge.repo import locate_rpm
from sevref.edge.sources.kind import Context, PackageKind, Unpacked
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


class RpmFile(PackageKind):
    """``source: {rpm: {package, version, architecture, path, url | mirror, rpm_sha256}}``."""

    def origin(self, source: Source) -> str:
        """The position of the ``rpm`` mapping.

        Args:
            source: the source.

        Returns:
            ``file:line:column``.
        """
        return source.rpm.origin if source.rpm is not None and source.rpm.origin else source.origin

    def unpack(self, source: Source, what: str, limit: int, context: Context) -> Unpacked:
        """Obtain the .rpm, check its header, and stream the file out of its payload (:meth:`PackageKind.unpack`)."""
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
        return Unpacked(extracted, package, url or rpm.file_name, f"{rpm.package} {rpm.version}", rpm.path)

    def descriptors(self, package: Path, name: str, label: str) -> PackageDescriptors:
        """The QEMU firmware descriptors in the RPM's payload (:meth:`PackageKind.descriptors`)."""
        return rpm_descriptors(package, name, label)
