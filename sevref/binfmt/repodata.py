"""RPM repository metadata (rpm-md): ``repodata/repomd.xml`` and the primary metadata it names.

A repository root holds ``repodata/repomd.xml``, whose ``<data type="primary">``
gives the primary metadata's ``<location href>`` and ``<checksum type>``
(of the compressed file). The primary metadata lists every ``<package>`` with
its ``<name>``, ``<arch>``, ``<version ver rel epoch>``, ``<checksum type>``
(of the .rpm) and ``<location href [xml:base]>`` (createrepo_c's
``src/xml_dump_primary.c``; the format of yum's and dnf's repositories).

Both are parsed with expat, fed piece by piece (the primary metadata of a
whole distribution unpacks to hundreds of MiB and is never held whole). A
document type declaration is refused outright, so no entity can be declared
or expanded (no "billion laughs", no external entities).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from xml.parsers import expat

from sevref.errors import FetchError, FirmwareFormatError

__all__ = ["Metadata", "PackageEntry", "find_package", "primary_metadata"]

_SEPARATOR = " "
_MAX_TEXT = 4096
"""The longest text of an element this reader keeps (a name, an architecture, a checksum)."""


@dataclass(frozen=True)
class Metadata:
    """Where the primary metadata is, as ``repomd.xml`` says."""

    href: str
    """Its location, relative to the repository root (or to ``base``)."""
    checksum_type: str
    """The checksum's algorithm (``sha256``)."""
    checksum: str
    """The checksum of the file as stored (compressed), in lowercase hex."""
    base: str | None = None
    """``xml:base`` of the location, if any."""


@dataclass
class PackageEntry:
    """One ``<package>`` of the primary metadata."""

    name: str = ""
    """``<name>``."""
    arch: str = ""
    """``<arch>``."""
    version: str = ""
    """``ver-rel`` of ``<version>``."""
    epoch: str = ""
    """``epoch`` of ``<version>``."""
    checksum_type: str = ""
    """``type`` of ``<checksum>``."""
    checksum: str = ""
    """``<checksum>`` of the .rpm, lowercase hex."""
    href: str = ""
    """``href`` of ``<location>``."""
    base: str | None = None
    """``xml:base`` of ``<location>``, if any."""
    texts: dict[str, list[str]] = field(default_factory=dict)
    """Text being collected, by element."""


def _local(name: str) -> str:
    return name.rsplit(_SEPARATOR, 1)[-1]


def _refuse_dtd(what: str) -> Callable[..., None]:
    def refuse(*_: object) -> None:
        raise FirmwareFormatError(f"{what}: has a document type declaration; expected none (rpm-md has none)")

    return refuse


class _Parser:
    """An expat parser that refuses DTDs and calls back on element starts, ends and text."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.parser = expat.ParserCreate(namespace_separator=_SEPARATOR)
        self.parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.parser.StartDoctypeDeclHandler = _refuse_dtd(what)
        self.parser.EntityDeclHandler = _refuse_dtd(what)
        self.parser.buffer_text = True

    def feed(self, pieces: Iterable[bytes]) -> None:
        try:
            for piece in pieces:
                self.parser.Parse(piece, False)
            self.parser.Parse(b"", True)
        except expat.ExpatError as error:
            raise FirmwareFormatError(
                f"{self.what}: not well-formed XML at line {error.lineno}, column {error.offset} "
                f"({expat.ErrorString(error.code)})"
            ) from error
        except (LookupError, ValueError) as error:  # an XML declaration naming an encoding Python lacks
            raise FirmwareFormatError(f"{self.what}: not readable XML ({error})") from error


def primary_metadata(data: bytes, what: str) -> Metadata:
    """Find the primary metadata in ``repomd.xml``.

    Args:
        data: the whole ``repomd.xml``.
        what: its URL, for errors.

    Returns:
        Where the primary metadata is and its checksum.

    Raises:
        FirmwareFormatError: not well-formed, or no ``<data type="primary">``
            with a location and a checksum.
    """
    parser = _Parser(what)
    stack: list[str] = []
    found: dict[str, str] = {}
    texts: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        """An element opens."""
        local = _local(name)
        stack.append(local)
        attributes = {_local(k): v for k, v in attrs.items()}
        if local == "data" and len(stack) == 2:
            found["type"] = attributes.get("type", "")
        if stack[1:2] == ["data"] and found.get("type") == "primary" and len(stack) == 3:
            if local == "location":
                found["href"] = attributes.get("href", "")
                if "base" in attributes:
                    found["base"] = attributes["base"]
            elif local == "checksum":
                found["checksum_type"] = attributes.get("type", "")
                texts.clear()

    def end(name: str) -> None:
        """An element closes."""
        if stack[1:] == ["data", "checksum"] and found.get("type") == "primary":
            found["checksum"] = "".join(texts).strip().lower()
        if stack[1:] == ["data"] and found.get("type") == "primary":
            found["done"] = "yes"
        stack.pop()
        if len(stack) == 1 and found.get("done") != "yes":
            found.pop("type", None)

    def text(data: str) -> None:
        """Text inside the current element."""
        if stack[1:] == ["data", "checksum"] and len(texts) < _MAX_TEXT:
            texts.append(data)

    parser.parser.StartElementHandler = start
    parser.parser.EndElementHandler = end
    parser.parser.CharacterDataHandler = text
    parser.feed([data])
    if found.get("done") != "yes" or not found.get("href") or not found.get("checksum"):
        raise FirmwareFormatError(
            f'{what}: no <data type="primary"> with a <location href> and a <checksum>; expected one (rpm-md)'
        )
    return Metadata(found["href"], found["checksum_type"], found["checksum"], found.get("base"))


def find_package(pieces: Iterable[bytes], what: str, name: str, version: str, arch: str) -> PackageEntry:
    """Find one package in primary metadata, reading it piece by piece.

    Args:
        pieces: the (decompressed) primary metadata.
        what: its URL, for errors.
        name: the package's name.
        version: its ``VERSION-RELEASE``.
        arch: its architecture.

    Returns:
        The package's entry.

    Raises:
        FetchError: the repository has no such package (the message lists the
            versions it has of that name).
        FirmwareFormatError: not well-formed XML, or a DTD.
    """
    parser = _Parser(what)
    stack: list[str] = []
    current: list[PackageEntry] = []
    matches: list[PackageEntry] = []
    others: list[str] = []

    def start(element: str, attrs: dict[str, str]) -> None:
        """An element opens."""
        local = _local(element)
        stack.append(local)
        attributes = {_local(k): v for k, v in attrs.items()}
        if len(stack) == 2 and local == "package":
            current[:] = [PackageEntry()]
        elif len(stack) == 3 and current:
            entry = current[0]
            if local == "version":
                entry.version = f"{attributes.get('ver', '')}-{attributes.get('rel', '')}"
                entry.epoch = attributes.get("epoch", "")
            elif local == "location":
                entry.href, entry.base = attributes.get("href", ""), attributes.get("base")
            elif local == "checksum":
                entry.checksum_type = attributes.get("type", "")
            if local in ("name", "arch", "checksum"):
                entry.texts[local] = []

    def end(_: str) -> None:
        """An element closes."""
        if len(stack) == 3 and current:
            entry, local = current[0], stack[-1]
            value = "".join(entry.texts.pop(local, [])).strip()
            if local == "name":
                entry.name = value
            elif local == "arch":
                entry.arch = value
            elif local == "checksum":
                entry.checksum = value.lower()
        elif len(stack) == 2 and current:
            entry = current.pop()
            if entry.name == name and entry.arch == arch and entry.version == version:
                matches.append(entry)
            elif entry.name == name and len(others) < 20:
                others.append(f"{entry.version} ({entry.arch})")
        stack.pop()

    def text(data: str) -> None:
        """Text inside the current element."""
        if len(stack) == 3 and current and stack[-1] in current[0].texts:
            kept = current[0].texts[stack[-1]]
            if sum(map(len, kept)) < _MAX_TEXT:
                kept.append(data)

    parser.parser.StartElementHandler = start
    parser.parser.EndElementHandler = end
    parser.parser.CharacterDataHandler = text
    parser.feed(pieces)
    if not matches:
        has = f"; it has {name} {', '.join(others)}" if others else f"; it has no package named {name}"
        raise FetchError(f"{what}: no package {name} {version} {arch}{has}")
    return matches[0]
