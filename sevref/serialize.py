"""The one place where sevref writes JSON.

Published files are canonical JSON (RFC 8785, the JSON Canonicalization
Scheme): keys sorted, no insignificant whitespace, UTF-8, ECMAScript string
escaping. sevref's data keeps to the part of JSON where Python's encoder
produces exactly those bytes: objects with ASCII keys, strings, integers of at
most 2**53-1 in magnitude, booleans and null; no floats. :func:`canonical`
checks that, and the tests compare it with the ``rfc8785`` package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from sevref.errors import LayoutError

__all__ = ["canonical", "canonical_frame", "canonical_pairs", "canonical_rows", "canonical_table", "json_line"]

_MAX_SAFE = (1 << 53) - 1
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"))


_PLAIN = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")  # printable ASCII but " and \\: written as is


def _plain(value: object) -> bool:
    """Whether ``value`` is in canonical JSON's domain: :func:`_check` without building paths."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return -_MAX_SAFE <= value <= _MAX_SAFE  # type: ignore[operator]
    if kind is list:
        for item in value:  # type: ignore[attr-defined]  # noqa: SIM110  # a loop: all() of a generator is slower
            if type(item) is not str and not _plain(item):
                return False
        return True
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str or not key.isascii() or (type(item) is not str and not _plain(item)):
                return False
        return True
    return False


def _check(value: object, path: str) -> None:
    """Raise with the path of the first value outside canonical JSON's domain."""
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return
    if kind is int:
        if not -_MAX_SAFE <= value <= _MAX_SAFE:  # type: ignore[operator]
            raise LayoutError(f"{path or '/'}: integer {value} is outside +-(2**53-1); write it as a hex string")
        return
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str or not key.isascii():
                raise LayoutError(f"{path or '/'}: key {key!r} is not ASCII text")
            if type(item) is not str:
                _check(item, f"{path}/{key}")
        return
    if kind is list:
        for index, item in enumerate(value):  # type: ignore[arg-type]
            if type(item) is not str:
                _check(item, f"{path}/{index}")
        return
    raise LayoutError(f"{path or '/'}: {kind.__name__} has no canonical JSON form")


def canonical(value: object) -> bytes:
    """Return the canonical JSON bytes of ``value``.

    Args:
        value: dicts with ASCII keys, lists, strings, safe integers, booleans, None.

    Returns:
        UTF-8 bytes.

    Raises:
        LayoutError: a value outside that domain (a float, a set, a big integer...).
    """
    if not _plain(value):
        _check(value, "")  # raises, naming where
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError as error:
        raise LayoutError(f"text with a lone surrogate has no canonical JSON form: {error}") from error


def _require_plain(values: Iterable[str], joined: Callable[[], str]) -> None:
    r"""Raise unless every value is a plain string: one match over ``joined()`` (all of them), else the first named."""
    try:
        if _PLAIN.fullmatch(joined()) is not None:  # a class of characters: the whole is plain iff each part is
            return
    except TypeError:  # an item that is no string
        pass
    for value in values:
        if type(value) is not str or not _PLAIN.fullmatch(value):
            raise LayoutError(f"{value!r}: not a plain string; expected printable ASCII without quotes or backslashes")


def canonical_rows(rows: Sequence[Sequence[str]]) -> bytes:
    r"""Canonical JSON of a list of lists of plain strings (a firmware's candidates), quickly.

    Args:
        rows: lists of printable ASCII strings without ``"`` or ``\\`` (ids, hex digests, mode names).

    Returns:
        The same bytes as :func:`canonical` of the list.

    Raises:
        LayoutError: a string outside that set (use :func:`canonical`).
    """
    if not set(map(type, rows)) <= {list, tuple}:
        raise LayoutError("rows must be lists of plain strings")
    _require_plain((value for row in rows for value in row), lambda: "".join(map("".join, rows)))
    return ("[" + ",".join(['["' + '","'.join(row) + '"]' if row else "[]" for row in rows]) + "]").encode("ascii")


def canonical_pairs(pairs: Sequence[tuple[int | None, str]]) -> bytes:
    r"""Canonical JSON of a list of [count or null, plain string] pairs (a group's entries), quickly.

    Args:
        pairs: (a safe integer or None, printable ASCII without ``"`` or ``\\``).

    Returns:
        The same bytes as :func:`canonical` of the list of pairs.

    Raises:
        LayoutError: a value outside that domain (use :func:`canonical`).
    """
    if not set(map(type, pairs)) <= {list, tuple} or not set(map(len, pairs)) <= {2}:
        raise LayoutError("pairs must be [integer or null, plain string]")
    counts = [count for count, _ in pairs]
    numbers = [count for count in counts if count is not None]
    if not set(map(type, numbers)) <= {int} or (
        numbers and not -_MAX_SAFE <= min(numbers) <= max(numbers) <= _MAX_SAFE
    ):
        raise LayoutError("pairs must be [integer or null, plain string]; an integer within +-(2**53-1)")
    texts = [text for _, text in pairs]
    _require_plain(texts, lambda: "".join(texts))
    rows = [f'[{"null" if count is None else count},"{text}"]' for count, text in pairs]
    return ("[" + ",".join(rows) + "]").encode("ascii")


def canonical_table(table: Mapping[str, list[str]]) -> bytes:
    r"""Canonical JSON of an object of plain strings to lists of plain strings (a digest shard's table), quickly.

    Args:
        table: keys and list items printable ASCII without ``"`` or ``\\``; the lists keep their order.

    Returns:
        The same bytes as :func:`canonical` of the object.

    Raises:
        LayoutError: a key or item outside that set (use :func:`canonical`).
    """
    keys = list(table)
    _require_plain(keys, lambda: "".join(keys))
    keys.sort()  # RFC 8785 sorts by UTF-16 code units: for ASCII, as Python does
    if not set(map(type, table.values())) <= {list}:
        raise LayoutError("a table's values must be lists of plain strings")
    _require_plain((item for key in keys for item in table[key]), lambda: "".join(map("".join, table.values())))
    rows = ('"' + key + '":[' + ('"' + '","'.join(table[key]) + '"' if table[key] else "") + "]" for key in keys)
    return ("{" + ",".join(rows) + "}").encode("ascii")


def canonical_frame(value: Mapping[str, object], key: str) -> tuple[bytes, bytes]:
    """Split the canonical JSON of an object around one member's list, to write that list as it grows.

    ``head + b"[" + b",".join(items) + b"]" + tail`` equals
    ``canonical({**value, key: items})`` when every item is already canonical.

    Args:
        value: the object's other members.
        key: the member that holds the list.

    Returns:
        (head, tail): head ends with ``"key":``, tail starts after the list.
    """
    keys = sorted([*value, key])
    position = keys.index(key)
    head = b"{" + b",".join(canonical(name) + b":" + canonical(value[name]) for name in keys[:position])
    head += (b"," if position else b"") + canonical(key) + b":"
    rest = keys[position + 1 :]
    tail = b"".join(b"," + canonical(name) + b":" + canonical(value[name]) for name in rest) + b"}"
    return head, tail


def json_line(value: object) -> str:
    """Render a JSON value on one line with sorted keys, as the command line prints it.

    Args:
        value: dicts, lists, strings, integers, booleans and None only.

    Returns:
        The text, without a trailing newline.
    """
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)
