"""sevref.serialize: known answers and the exact refusals.

tests/test_properties.py holds canonical() to the ``rfc8785`` package on random
values, canonical_frame() to canonical(), and canonical_rows(), canonical_pairs() and
canonical_table() to canonical(); this
file adds hand-checked bytes and the messages of what has no canonical form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sevref.errors import LayoutError
from sevref.serialize import canonical, canonical_frame, canonical_pairs, canonical_rows, canonical_table, json_line

KNOWN: dict[str, tuple[object, bytes]] = {
    # RFC 8785 section 3.2: members sorted by key, no whitespace, integers as is,
    # strings escaped only where JSON must (" \\ and controls: \b \t \n \f \r short,
    # others \u00xx in lowercase), everything else written as UTF-8.
    "sorted members, nested": ({"b": 1, "a": {"d": True, "c": None}}, b'{"a":{"c":null,"d":true},"b":1}'),
    "controls": ("\b\t\n\f\r\x00\x1f", b'"\\b\\t\\n\\f\\r\\u0000\\u001f"'),
    "quote and backslash": ('"\\', b'"\\"\\\\"'),
    "DEL, non-ASCII and U+2028 as they are": ("\x7fé\u2028", '"\x7fé\u2028"'.encode()),
    "the largest safe integers": ([(1 << 53) - 1, -((1 << 53) - 1)], b"[9007199254740991,-9007199254740991]"),
    "an empty object and list": ({"a": [], "b": {}}, b'{"a":[],"b":{}}'),
}


@pytest.mark.parametrize("name", KNOWN)
def test_known_bytes(name: str) -> None:
    value, expected = KNOWN[name]
    assert canonical(value) == expected


class _Int(int):
    """An int subclass: its JSON text is whatever its __repr__ says, so it has no canonical form."""


REFUSED: dict[str, tuple[object, str]] = {
    "a float": (1.5, "/: float has no canonical JSON form"),
    "NaN": (float("nan"), "/: float has no canonical JSON form"),
    "an integer past 2**53-1, deep inside": (
        {"a": [1, {"b": 1 << 53}]},
        "/a/1/b: integer 9007199254740992 is outside +-(2**53-1); write it as a hex string",
    ),
    "a negative one": (
        {"a": -(1 << 53)},
        "/a: integer -9007199254740992 is outside +-(2**53-1); write it as a hex string",
    ),
    "a non-ASCII key": ({"é": 1}, "/: key 'é' is not ASCII text"),
    "a key that is no text": ({"a": {1: 2}}, "/a: key 1 is not ASCII text"),
    "a set": ([{1, 2}], "/0: set has no canonical JSON form"),
    "a tuple": ((1, 2), "/: tuple has no canonical JSON form"),
    "bytes": (b"x", "/: bytes has no canonical JSON form"),
    "an int subclass": ({"a": [True, 1, _Int(2)]}, "/a/2: _Int has no canonical JSON form"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_refusals_name_the_path(name: str) -> None:
    value, message = REFUSED[name]
    with pytest.raises(LayoutError) as raised:
        canonical(value)
    assert str(raised.value) == message


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(LayoutError) as raised:
        canonical({"a": ["\udc80"]})
    assert str(raised.value).startswith("text with a lone surrogate has no canonical JSON form: ")


NOT_PLAIN = ['a"b', "a\\b", "é", "a\n", "\x7f", 1]


@pytest.mark.parametrize("value", NOT_PLAIN)
def test_the_quick_writers_refuse_what_is_not_plain(value: object) -> None:
    expected = f"{value!r}: not a plain string; expected printable ASCII without quotes or backslashes"
    value_: Any = value
    writes: list[Callable[[], bytes]] = [
        lambda: canonical_rows([["fine"], ["fine", value_]]),
        lambda: canonical_pairs([(1, "fine"), (2, value_)]),
        lambda: canonical_table({"fine": ["fine", value_]}),
        lambda: canonical_table({value_: ["fine"]}),
    ]
    for write in writes:
        with pytest.raises(LayoutError) as raised:
            write()
        assert str(raised.value) == expected


@pytest.mark.parametrize(
    "pairs",
    [[(True, "a")], [(1.0, "a")], [(1 << 53, "a")], [(-(1 << 53), "a")], [("1", "a")], [(1,)], [(1, "a", "b")], ["ab"]],
)
def test_canonical_pairs_refuses_what_is_not_a_count_and_a_string(pairs: list[object]) -> None:
    with pytest.raises(LayoutError) as raised:
        canonical_pairs(pairs)  # type: ignore[arg-type]
    assert str(raised.value).startswith("pairs must be [integer or null, plain string]")


def test_the_quick_writers_refuse_other_containers() -> None:
    with pytest.raises(LayoutError, match="^rows must be lists of plain strings$"):
        canonical_rows(["ab"])  # a string is not a row, though it iterates as one
    with pytest.raises(LayoutError, match="^a table's values must be lists of plain strings$"):
        canonical_table({"a": "bc"})  # type: ignore[dict-item]


def test_the_quick_writers() -> None:
    ident, digest = "0123456789abcdef0123-0001", "ab" * 32
    assert canonical_rows([]) == b"[]"
    assert canonical_rows([[ident, "sev-es", digest], ("b", "c"), []]) == canonical(
        [[ident, "sev-es", digest], ["b", "c"], []]
    )
    assert canonical_pairs([]) == b"[]"
    assert canonical_pairs([(4, digest), (None, digest), (-3, "")]) == canonical(
        [[4, digest], [None, digest], [-3, ""]]
    )
    assert canonical_table({}) == b"{}"
    table = {"b": [ident, "a"], "a": [], "B": ["x"]}  # keys sorted as RFC 8785 does, lists kept in order
    assert canonical_table(table) == canonical(table) == b'{"B":["x"],"a":[],"b":["0123456789abcdef0123-0001","a"]}'


FRAMES: dict[str, tuple[dict[str, object], str, tuple[bytes, bytes]]] = {
    "alone": ({}, "list", (b'{"list":', b"}")),
    "first": ({"z": 1}, "a", (b'{"a":', b',"z":1}')),
    "in the middle": ({"b": 1, "z": "x"}, "list", (b'{"b":1,"list":', b',"z":"x"}')),
    "last": ({"a": 1}, "z", (b'{"a":1,"z":', b"}")),
}


@pytest.mark.parametrize("name", FRAMES)
def test_canonical_frame(name: str) -> None:
    value, key, frame = FRAMES[name]
    assert canonical_frame(value, key) == frame
    head, tail = frame
    assert head + b'["x",1]' + tail == canonical({**value, key: ["x", 1]})


def test_json_line_is_for_people() -> None:
    assert json_line({"b": [1, "é"], "a": None}) == '{"a": null, "b": [1, "é"]}'
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        json_line(float("inf"))
