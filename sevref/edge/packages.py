"""Files read out of package files (.deb, .rpm), streamed, bounded, each package indexed once.

The formats are :mod:`sevref.binfmt.deb` and :mod:`sevref.binfmt.rpm`; this
module gives them their bounds from :mod:`sevref.limits`, opens the files, and
turns a damaged package into one :class:`~sevref.errors.FetchError` line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from sevref.binfmt.archive import Caps, Extracted, Index
from sevref.errors import FetchError, FirmwareFormatError
from sevref.limits import (
    MAX_ARCHIVE_ENTRIES,
    MAX_ARCHIVE_NAME_BYTES,
    MAX_DECOMPRESSOR_WINDOW,
    MAX_PACKAGE_METADATA_BYTES,
    MAX_UNPACKED_BYTES,
)

__all__ = ["Archive", "PackageFiles", "package_caps"]


def package_caps(limit: int, what: str) -> Caps:
    """The bounds of reading one file of at most ``limit`` bytes out of a package.

    Args:
        limit: the largest file accepted (:data:`~sevref.limits.MAX_FIRMWARE_BYTES`, ...).
        what: what the file is (``firmware ovmf-code``), to name the limit in errors.

    Returns:
        The bounds.
    """
    return Caps(
        member=limit,
        member_label=f"the limit for {what}",
        unpacked=MAX_UNPACKED_BYTES,
        entries=MAX_ARCHIVE_ENTRIES,
        names=MAX_ARCHIVE_NAME_BYTES,
        metadata=MAX_PACKAGE_METADATA_BYTES,
        window=MAX_DECOMPRESSOR_WINDOW,
    )


class Archive(Protocol):
    """An open package: :class:`~sevref.binfmt.deb.DebArchive` or :class:`~sevref.binfmt.rpm.RpmArchive`."""

    def index(self, label: str) -> Index:
        """Index its files (no contents)."""

    def read(self, index: Index, path: str) -> Extracted:
        """Read one file out of it."""


_A = TypeVar("_A", bound=Archive)


class PackageFiles:
    """Reads files out of package files; each package (and limit) is indexed once a run."""

    def __init__(self) -> None:
        """Start with no package indexed."""
        self._indexes: dict[tuple[Path, int], Index] = {}

    def read(
        self,
        file: Path,
        name: str,
        path: str,
        *,
        limit: int,
        what: str,
        open_archive: Callable[[BinaryIO, str, Caps], _A],
        identify: Callable[[_A], str],
    ) -> Extracted:
        """Read one file out of a package file, after checking which package it is.

        Args:
            file: the package file.
            name: how to name it in errors (its URL or pool file name).
            path: the file's installed path.
            limit: the largest file accepted.
            what: what the file is, for errors.
            open_archive: opens the package (``DebArchive``, ``RpmArchive``).
            identify: checks the package's name, version and architecture against
                the manifest and returns its ``name version``; raises FetchError
                naming the field.

        Returns:
            The file and its SHA-256.

        Raises:
            FetchError: not the package the manifest names, no such file, a file
                too large, or a damaged package (one line naming it and the offset).
        """
        caps = package_caps(limit, what)
        try:
            with file.open("rb") as handle:
                archive = open_archive(handle, name, caps)
                label = identify(archive)
                key = (file, limit)
                if key not in self._indexes:
                    self._indexes[key] = archive.index(label)
                return archive.read(self._indexes[key], path)
        except FirmwareFormatError as error:
            raise FetchError(error.diagnostic()) from error
        except OSError as error:
            raise FetchError(f"{name}: cannot read {file} ({error.strerror or error})") from error
