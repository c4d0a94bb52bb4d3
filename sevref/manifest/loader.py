"""The hardened YAML loader: a manifest file's bytes to a :class:`Document`.

YAML allows much that a manifest must not contain. This loader refuses
non-UTF-8 text, aliases (the "billion laughs"), nesting deeper than 32 levels,
more than 200,000 nodes, duplicate keys, integers longer than 64 bits need,
tags that construct objects, and files above 4 MiB; it reads YAML 1.2 booleans
and integers, and never makes a date. It records the line and column of every
node, so that every later error can name its place.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sevref.errors import ManifestError
from sevref.limits import MAX_MANIFEST_BYTES

__all__ = ["Document", "json_pointer", "parse_yaml"]

_MAX_DEPTH = 32
_MAX_NODES = 200_000
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_MAX_INT_TEXT = 32  # any 64-bit value fits, with a sign or 0x


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, no implicit timestamps, no aliases and bounded nesting.

    YAML 1.1 reads ``off`` as false and ``2026-11-26`` as a date; manifests mean
    the text (``legacy_vm_type: off``, times are strings in the schema).
    Aliases are refused where they are written, before anything is expanded
    (the "billion laughs"), and nesting is refused beyond 32 levels before
    PyYAML's recursive composer can exhaust the stack.
    """

    document_name = "manifest"
    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """Compose one node, refusing aliases and deep nesting.

        Args:
            parent: the enclosing node.
            index: its key or position.

        Returns:
            The node.

        Raises:
            ManifestError: an alias, or nesting deeper than 32 levels.
        """
        event = self.peek_event()  # type: ignore[no-untyped-call]
        where = f"{self.document_name}:{event.start_mark.line + 1}:{event.start_mark.column + 1}"
        if isinstance(event, yaml.AliasEvent):
            raise ManifestError(f"{where}: a YAML alias (*{event.anchor}); expected every value written out")
        if self._depth >= _MAX_DEPTH:
            raise ManifestError(f"{where}: nested more than {_MAX_DEPTH} levels deep; expected at most {_MAX_DEPTH}")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_TIMESTAMP, _BOOL, _INT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# YAML 1.2 integers: decimal without leading zeros, and 0x hex. YAML 1.1 would also
# read 010 as octal, 1_000 and 0b1 as numbers and 190:20:30 as 685230.
_Loader.add_implicit_resolver(_INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"), list("-+0123456789"))


def _no_json_value(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    """Refuse tags whose values JSON has not (bytes, dates, sets, ordered pairs)."""
    name = getattr(loader, "document_name", "manifest")
    where = f"{name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
    tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
    raise ManifestError(f"{where}: the YAML tag {tag} makes a value JSON has not; expected plain YAML values")


for _tag in ("binary", "timestamp", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _no_json_value)


@dataclass(frozen=True)
class Document:
    """One parsed manifest file."""

    name: str
    """How to name the file in messages."""
    data: Any
    """The parsed value."""
    positions: Mapping[str, tuple[int, int]]
    """JSON pointer to 1-based (line, column) of each node."""
    sha256: bytes
    """SHA-256 of the file's bytes."""
    folder: Path
    """Relative paths in the file are relative to this folder."""

    def where(self, pointer: str) -> str:
        """Name a place in the file: ``name:line:column``, or the nearest enclosing node's.

        Args:
            pointer: a JSON pointer such as ``/matrices/0/vcpus/2``.

        Returns:
            The location.
        """
        while pointer not in self.positions and pointer:
            pointer = pointer.rsplit("/", 1)[0]
        line, column = self.positions.get(pointer, (1, 1))
        return f"{self.name}:{line}:{column}"


def pointer_to(parent: str, key: object) -> str:
    """Extend a JSON pointer by one key or index (RFC 6901 escaping).

    Args:
        parent: the pointer so far.
        key: the next key or index.

    Returns:
        The longer pointer.
    """
    return f"{parent}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _walk(document: str, node: yaml.Node, pointer: str, positions: dict[str, tuple[int, int]]) -> None:
    """Record positions; refuse too many nodes, duplicate keys and overlong integers."""
    where = f"{document}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
    if len(positions) >= _MAX_NODES:
        raise ManifestError(f"{where}: more than {_MAX_NODES} YAML nodes; expected a smaller manifest")
    positions[pointer] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        keys: dict[object, str] = {}
        for key_node, value_node in node.value:
            here = f"{document}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}"
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
                raise ManifestError(f"{here}: mapping key {shown!r} is not text; expected text keys (quote it)")
            key = key_node.value
            _check_text(here, key)
            if key in keys:
                raise ManifestError(f"{here}: key {key!r} appears twice (first at {keys[key]}); expected each key once")
            keys[key] = here.split(":", 1)[1]
            _walk(document, value_node, pointer_to(pointer, key), positions)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(document, item, pointer_to(pointer, index), positions)
    else:
        _check_text(where, node.value)
        if node.tag == _INT and len(node.value) > _MAX_INT_TEXT:
            raise ManifestError(
                f"{where}: an integer written with {len(node.value)} characters; expected at most {_MAX_INT_TEXT} (64 bits)"
            )


def _check_text(where: str, text: str) -> None:
    """Refuse text with a lone surrogate, which a double-quoted YAML escape can make and UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ManifestError(
            f"{where}: {text[error.start]!r} is a lone surrogate, which UTF-8 cannot encode; expected Unicode text"
        ) from error


def parse_yaml(data: bytes, name: str, folder: Path) -> Document:
    """Parse one manifest file's bytes.

    Refuses what YAML allows but a manifest must not contain: non-UTF-8 text,
    aliases (the "billion laughs"), nesting deeper than 32, duplicate keys,
    integers longer than 64 bits need, tags that construct objects, and files
    above 4 MiB.

    Args:
        data: the file's bytes.
        name: how to name the file in messages.
        folder: the folder relative paths in it are relative to.

    Returns:
        The document.

    Raises:
        ManifestError: with ``name:line:column``.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{name}: {len(data)} bytes; expected at most {MAX_MANIFEST_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ManifestError(
            f"{name}:{line}: byte {error.start} ({data[error.start]:#04x}) is not UTF-8; expected UTF-8 text"
        ) from error
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        loader.document_name = name
        node = loader.get_single_node()
        if node is None:
            raise ManifestError(f"{name}:1:1: the file is empty; expected a mapping with `sevref: 1`")
        positions: dict[str, tuple[int, int]] = {}
        _walk(name, node, "", positions)
        value = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise ManifestError(f"{where}: invalid YAML: {error.problem or error.context}") from error
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        character = error.character if isinstance(error.character, int) else ord(error.character)
        raise ManifestError(
            f"{name}:{line}:{column}: character {character:#04x} is not allowed in YAML; expected printable text"
        ) from error
    except yaml.YAMLError as error:
        raise ManifestError(f"{name}: {error}") from error
    finally:
        if loader is not None:
            loader.dispose()
    return Document(name, value, positions, hashlib.sha256(data).digest(), folder)


def json_pointer(path: object) -> str:
    """A JSON pointer for a path of keys and indexes.

    Args:
        path: the keys and indexes, outermost first.

    Returns:
        E.g. ``/matrices/0/vcpus``.
    """
    pointer = ""
    for part in path:  # type: ignore[attr-defined]
        pointer = pointer_to(pointer, part)
    return pointer
