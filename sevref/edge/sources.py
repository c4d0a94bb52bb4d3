"""Sources: the files a manifest pins.

:class:`Sources` reads what a manifest names (a local file inside the
manifest's folder, a file by URL, or a file inside a Debian package obtained
with ``apt-get download`` or from its URL or a mirror), each once, and checks
every sha256 pin; its errors start with the manifest's ``file:line:column``.
The file cache of ``sevref digest`` is :mod:`sevref.edge.inputs`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from sevref.binfmt.deb import DebPackage
from sevref.edge.debian import obtain_deb, read_deb
from sevref.edge.download import download
from sevref.edge.files import read_bytes
from sevref.errors import ConfigError, DigestMismatchError, FetchError
from sevref.limits import DOWNLOAD_SECONDS, MAX_DEB_BYTES
from sevref.manifest.model import Source

__all__ = ["Sources", "default_cache"]


def default_cache() -> Path:
    """Where downloaded packages are kept: ``$SEVREF_CACHE``, else the XDG cache folder.

    Returns:
        The folder (not created).
    """
    if os.environ.get("SEVREF_CACHE"):
        return Path(os.environ["SEVREF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sevref"


class Sources:
    """Reads the files a manifest pins, each once, checking every pin."""

    def __init__(self, cache: Path, allow: Sequence[Path] = (), deadline: float = DOWNLOAD_SECONDS) -> None:
        """Start with nothing read.

        Args:
            cache: where downloaded packages and files go.
            allow: folders outside a manifest's own from which it may name files
                (``--allow-path``).
            deadline: seconds a whole download may take.
        """
        self.cache = cache
        self.deadline = deadline
        self.allow = [folder.resolve() for folder in allow]
        self._debs: dict[Path, DebPackage] = {}

    def _inside(self, source: Source, what: str) -> Path:
        """The local file, resolved, if it lies in its manifest's folder or an allowed one.

        A manifest comes from a vendor's repository and is reviewed as data; a
        path that leaves its folder (``..``, an absolute path, a symlink) could
        make a build read and publish facts about any file of the build machine.
        """
        if source.path is None:  # pragma: no cover - callers check
            raise ConfigError(f"{source.origin}: {what}: not a local file")
        resolved = source.path.resolve()
        folders = [*([source.root.resolve()] if source.root is not None else []), *self.allow]
        if any(folder == resolved or folder in resolved.parents for folder in folders):
            return resolved
        shown = f"{source.path} (which resolves to {resolved})" if resolved != source.path else str(source.path)
        inside = source.root if source.root is not None else "the manifest's folder"
        raise ConfigError(
            f"{source.origin}: {what} {shown}: outside {inside}; expected a file inside the manifest's folder, "
            "or allow its folder with --allow-path DIR"
        )

    def read(self, source: Source, what: str, limit: int) -> bytes:
        """Return a pinned file's bytes.

        Args:
            source: where the file comes from.
            what: how to name it ("firmware ovmf-code").
            limit: the largest size accepted.

        Returns:
            The bytes, whose sha256 is the pin.

        Raises:
            SevrefError: unreadable, not obtained, not in its package, or not
                matching its pin; the message starts with the source's
                ``file:line:column``.
        """
        # Errors name the manifest's file:line:column, and the input unless the reader already did.
        origin = source.debian.origin if source.debian is not None and source.debian.origin else source.origin
        where = origin if source.path is not None else f"{origin}: {what}"
        try:
            if source.path is not None:
                data = read_bytes(self._inside(source, what), what, limit)
            elif source.url is not None:
                path = download(source.url, source.sha256, limit=limit, cache=self.cache, seconds=self.deadline)
                data = read_bytes(path, what, limit)
            else:
                data = self._from_package(source, what, limit)
        except (FetchError, DigestMismatchError) as error:
            raise type(error)(f"{where}: {error.diagnostic()}") from error
        found_hash = hashlib.sha256(data).digest()
        if found_hash != source.sha256:
            raise DigestMismatchError(
                f"{source.origin}: {what} {source.label()}: sha256 is {found_hash.hex()}, "
                f"expected {source.sha256.hex()} (the pin)"
            )
        return data

    def _from_package(self, source: Source, what: str, limit: int) -> bytes:
        """A file out of a Debian package: downloaded from its URL or mirror, else by apt-get download."""
        debian = source.debian
        if debian is None:  # pragma: no cover - the schema requires a path, a URL or a package
            raise ConfigError(f"{source.origin}: {what}: no path, URL or Debian package")
        url = debian.deb_url
        if url is not None:
            if debian.deb_sha256 is None:  # pragma: no cover - the schema requires it
                raise ConfigError(f"{source.origin}: {what}: a package by URL needs deb_sha256")
            deb = download(url, debian.deb_sha256, limit=MAX_DEB_BYTES, cache=self.cache, seconds=self.deadline)
        else:
            deb = obtain_deb(
                debian.package, debian.version, debian.architecture, debian.deb_sha256, self.cache / "debs"
            )
        if deb not in self._debs:
            self._debs[deb] = read_deb(deb)
        package = self._debs[deb]
        control = package.control
        found = (control.get("Package"), control.get("Version"), control.get("Architecture"))
        if found != (debian.package, debian.version, debian.architecture):
            raise FetchError(
                f"{deb.name}: its control file says {' '.join(map(str, found))}; "
                f"expected {debian.package} {debian.version} {debian.architecture}"
            )
        data = package.read(debian.path)
        if len(data) > limit:
            raise FetchError(f"{len(data)} bytes; expected at most {limit}")
        return data
