r"""Debian binary packages (.deb): read files out of one without dpkg.

A .deb is an ``ar`` archive (``!<arch>\\n``, then 60-byte member headers) holding
``debian-binary``, ``control.tar.*`` and ``data.tar.*`` (deb(5)). Files are read
into memory by name; nothing in the archive decides where anything is written.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from dataclasses import dataclass

from sevref.errors import FetchError, FirmwareFormatError

__all__ = ["DebPackage"]

_MAGIC = b"!<arch>\n"
_HEADER = 60
_MAX_LINKS = 16


def _members(data: bytes, what: str) -> dict[str, bytes]:
    if not data.startswith(_MAGIC):
        raise FirmwareFormatError(f"{what}: expected an ar archive starting {_MAGIC!r}, found {data[:8]!r}")
    members: dict[str, bytes] = {}
    offset = len(_MAGIC)
    while offset < len(data):
        if offset + _HEADER > len(data):
            raise FirmwareFormatError(
                f"{what}: member header at offset {offset:#x} runs past the end ({len(data)} bytes)"
            )
        header = data[offset : offset + _HEADER]
        if header[58:60] != b"`\n":
            raise FirmwareFormatError(
                f"{what}: member header at offset {offset:#x}: expected terminator b'`\\n', found {header[58:60]!r}"
            )
        name = header[0:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as error:
            raise FirmwareFormatError(
                f"{what}: member {name!r} at offset {offset:#x}: size field {header[48:58]!r} is not a number"
            ) from error
        start = offset + _HEADER
        if start + size > len(data):
            raise FirmwareFormatError(
                f"{what}: member {name!r} at offset {offset:#x} claims {size} bytes; only {len(data) - start} remain"
            )
        members[name] = data[start : start + size]
        offset = start + size + (size & 1)
    return members


def _tar(members: dict[str, bytes], stem: str, what: str) -> tarfile.TarFile:
    for name, blob in members.items():
        if name == stem or name.startswith(stem + "."):
            if name.endswith(".zst"):
                raise FirmwareFormatError(
                    f"{what}: {name} is zstd-compressed, which Python 3.11 cannot read; "
                    f"expected {stem}.xz, .gz, .bz2 or an uncompressed {stem}"
                )
            try:
                return tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")
            except (tarfile.TarError, EOFError, OSError) as error:
                raise FirmwareFormatError(f"{what}: {name} is not a readable tar archive ({error})") from error
    raise FirmwareFormatError(f"{what}: no {stem}.* member; found {', '.join(members) or 'none'}")


def _normal(path: str) -> str:
    # Not path.lstrip("./"), which strips the dot of a dot file too: "./.x" is "/.x".
    return posixpath.normpath("/" + path.lstrip("/"))


@dataclass(frozen=True)
class DebPackage:
    """The contents of a .deb, indexed by absolute path."""

    control: dict[str, str]
    """The fields of the package's ``control`` file (Package, Version, ...)."""
    files: dict[str, bytes]
    """Regular files by absolute path, e.g. ``/usr/share/OVMF/OVMF_CODE.fd``."""
    links: dict[str, str]
    """Symbolic and hard links by absolute path, to their absolute target."""

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "package") -> DebPackage:
        """Read a .deb.

        Args:
            data: the whole .deb file.
            what: how to name it in errors.

        Returns:
            The package's control fields and files.

        Raises:
            FirmwareFormatError: not a .deb, or a member cannot be read.
        """
        members = _members(data, what)
        files: dict[str, bytes] = {}
        links: dict[str, str] = {}
        control: dict[str, str] = {}
        try:
            with _tar(members, "control.tar", what) as tar:
                for info in tar:
                    if info.isfile() and _normal(info.name) == "/control":
                        handle = tar.extractfile(info)
                        text = handle.read().decode("utf-8") if handle else ""
                        control = _control_fields(text)
            with _tar(members, "data.tar", what) as tar:
                for info in tar:
                    path = _normal(info.name)
                    if info.isfile():
                        handle = tar.extractfile(info)
                        files[path] = handle.read() if handle else b""
                    elif info.issym():
                        links[path] = posixpath.normpath(posixpath.join(posixpath.dirname(path), info.linkname))
                    elif info.islnk():
                        links[path] = _normal(info.linkname)
        except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as error:
            raise FirmwareFormatError(f"{what}: cannot read its archives ({error})") from error
        return cls(control=control, files=files, links=links)

    def read(self, path: str) -> bytes:
        """Return a file's bytes, following links inside the package.

        Args:
            path: the file's path in the installed system, e.g.
                ``usr/share/OVMF/OVMF_CODE.fd`` (a leading / is optional).

        Returns:
            The file's contents.

        Raises:
            FetchError: no such file in the package.
        """
        current = _normal(path)
        for _ in range(_MAX_LINKS):
            if current in self.files:
                return self.files[current]
            if current not in self.links:
                break
            current = self.links[current]
        package = self.control.get("Package", "package")
        similar = sorted(
            p for p in (*self.files, *self.links) if posixpath.splitext(p)[1] == posixpath.splitext(path)[1]
        )
        hint = f"; it has {', '.join(similar[:12])}" if similar else ""
        raise FetchError(f"{package} {self.control.get('Version', '')}: no file {_normal(path)}{hint}")


def _control_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    return fields
