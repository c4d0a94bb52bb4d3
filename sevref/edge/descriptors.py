"""QEMU firmware descriptors read out of the package a firmware comes from.

A package's descriptors (``/usr/share/qemu/firmware/*.json``, QEMU
``docs/interop/firmware.json``) are read in one pass over its files, each
bounded by :data:`~sevref.limits.MAX_DESCRIPTOR_BYTES` and parsed strictly
(:mod:`sevref.strictjson`, :mod:`sevref.binfmt.descriptor`). The descriptor
that describes a firmware is the one whose mapping names the firmware's
path, following the package's links both ways (Debian's
``OVMF_CODE_4M.ms.fd`` is a link to ``OVMF_CODE_4M.secboot.fd``). When
several do, the first by file name wins, as the specification tells
management software to choose ("sort the list by filename ... choose the
first").
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

from sevref import strictjson
from sevref.binfmt.archive import Body, Caps, Entry, EntryKind, Index, normal_path
from sevref.binfmt.deb import DebArchive
from sevref.binfmt.descriptor import DESCRIPTOR_FOLDER, Described, Descriptor, parse_descriptor
from sevref.binfmt.rpm import RpmArchive
from sevref.edge.packages import package_caps
from sevref.errors import FetchError, FirmwareFormatError, JSONFormatError
from sevref.limits import MAX_DESCRIPTOR_BYTES, MAX_DESCRIPTORS

__all__ = ["PackageDescriptors", "deb_descriptors", "read_descriptors", "rpm_descriptors"]

_A = TypeVar("_A", DebArchive, RpmArchive)


@dataclass
class PackageDescriptors:
    """A package's descriptors and links."""

    package: str
    """The package's ``name version``."""
    descriptors: list[Descriptor] = field(default_factory=list)
    """Every descriptor, by file name."""
    index: Index = field(default_factory=lambda: Index(""))
    """The package's files and links (to resolve the paths descriptors name)."""

    def resolve(self, path: str) -> str:
        """The file a path names, following the package's links.

        Args:
            path: an installed path.

        Returns:
            The normalized path of the file it leads to (the path itself if it leads nowhere in the package).
        """
        try:
            return self.index.resolve(path)
        except FetchError:
            return normal_path(path)

    def describing(self, path: str) -> Described | None:
        """The descriptor whose mapping names a file of the package.

        Args:
            path: the file's installed path (a leading / is optional).

        Returns:
            The first descriptor by file name that names it (through links), or None.
        """
        wanted = self.resolve(path)
        for descriptor in self.descriptors:
            if self.resolve(descriptor.executable) == wanted:
                return Described(descriptor, self.package)
        return None


def _collect(entries: Iterable[tuple[Entry, Body]], package: str, what: str, caps: Caps) -> PackageDescriptors:
    found = PackageDescriptors(package, index=Index(package))
    raw: dict[str, bytes] = {}
    for count, (entry, body) in enumerate(entries, start=1):
        if count > caps.entries:
            raise FirmwareFormatError(f"{what}: more than {caps.entries} entries; expected at most that")
        found.index.add(entry)
        if posixpath.dirname(entry.path) != DESCRIPTOR_FOLDER or not entry.path.endswith(".json"):
            continue
        if entry.kind is not EntryKind.FILE:
            continue
        if entry.size > MAX_DESCRIPTOR_BYTES:
            raise FetchError(
                f"{what}: firmware descriptor {entry.path} is {entry.size} bytes; expected at most "
                f"{MAX_DESCRIPTOR_BYTES}; nothing was unpacked"
            )
        if len(raw) >= MAX_DESCRIPTORS:
            raise FetchError(f"{what}: more than {MAX_DESCRIPTORS} firmware descriptors; expected at most that")
        raw[entry.path] = b"".join(body.chunks())
    paths = set(raw)
    # A descriptor may be a link to another (in the same folder): it says the same under its own name.
    for path in found.index.links:
        if posixpath.dirname(path) == DESCRIPTOR_FOLDER and path.endswith(".json"):
            target = found.resolve(path)
            if target in raw and path not in paths:
                raw[path] = raw[target]
    for path in sorted(raw, key=posixpath.basename):
        if not raw[path]:
            continue  # a zero-length file hides a descriptor (docs/interop/firmware.json); it describes nothing
        where = f"{package}: {path}"
        try:
            document = strictjson.loads(raw[path], where)
        except JSONFormatError as error:
            raise FirmwareFormatError(error.diagnostic()) from error
        found.descriptors.append(parse_descriptor(document, where, path))
    return found


def read_descriptors(
    file: Path,
    name: str,
    package: str,
    *,
    open_archive: Callable[[BinaryIO, str, Caps], _A],
    entries: Callable[[_A], Iterable[tuple[Entry, Body]]],
) -> PackageDescriptors:
    """Read every firmware descriptor of a package file, in one pass.

    Args:
        file: the package file.
        name: how to name it in errors (its URL or pool file name).
        package: its ``name version`` (already checked against the manifest).
        open_archive: opens the package (``DebArchive``, ``RpmArchive``).
        entries: walks its installed files.

    Returns:
        The descriptors, sorted by file name, and the package's links.

    Raises:
        FetchError: a descriptor larger than :data:`~sevref.limits.MAX_DESCRIPTOR_BYTES`,
            a damaged package, or a descriptor that is not strict JSON or not
            a QEMU ``Firmware`` (one line naming the package and the descriptor).
    """
    caps = package_caps(MAX_DESCRIPTOR_BYTES, "a firmware descriptor")
    try:
        with file.open("rb") as handle:
            archive = open_archive(handle, name, caps)
            return _collect(entries(archive), package, name, caps)
    except FirmwareFormatError as error:
        raise FetchError(error.diagnostic()) from error
    except OSError as error:
        raise FetchError(f"{name}: cannot read {file} ({error.strerror or error})") from error


def deb_descriptors(file: Path, name: str, package: str) -> PackageDescriptors:
    """Read the descriptors of a .deb (from ``data.tar``).

    Args:
        file: the .deb.
        name: how to name it in errors.
        package: its ``name version``.

    Returns:
        Its descriptors.

    Raises:
        FetchError: see :func:`read_descriptors`.
    """
    return read_descriptors(file, name, package, open_archive=DebArchive, entries=lambda a: a.walk("data.tar"))


def rpm_descriptors(file: Path, name: str, package: str) -> PackageDescriptors:
    """Read the descriptors of an RPM (from its payload).

    Args:
        file: the .rpm.
        name: how to name it in errors.
        package: its ``name version``.

    Returns:
        Its descriptors.

    Raises:
        FetchError: see :func:`read_descriptors`.
    """
    return read_descriptors(file, name, package, open_archive=RpmArchive, entries=lambda a: a.walk())
