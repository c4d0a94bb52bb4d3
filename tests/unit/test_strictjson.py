"""sevref.strictjson: JSON as a verifier must read it."""

from __future__ import annotations

import pytest

from sevref.errors import JSONFormatError
from sevref.strictjson import loads


def test_plain_json_is_read() -> None:
    assert loads(b'{"a": [1, -2, "\\u00e9", true, null], "b": {}}', "x") == {
        "a": [1, -2, "é", True, None],
        "b": {},
    }
    assert loads('"é"'.encode(), "x") == "é"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"a": 1, "a": 2}', "x: key 'a' appears twice in one object; expected each key once"),
        (b'[{"b": {"c": 1, "c": 1}}]', "key 'c' appears twice"),
        (b'{"serial": 1.0}', "x: the number 1.0 is not an integer; expected integers only"),
        (b"[1e3]", "the number 1e3 is not an integer"),
        (b"[NaN]", "x: NaN is not JSON"),
        (b"[-Infinity]", "-Infinity is not JSON"),
        (b"\xef\xbb\xbf{}", "x: starts with a byte order mark"),
        ('{"a": 1}'.encode("utf-16"), "x: byte 0 is not UTF-8; expected UTF-8 JSON"),
        (b'{"a": "\xff"}', "x: byte 7 is not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "x: nested deeper than sevref reads"),
        (b"[" + b"9" * 5000 + b"]", "x: not JSON ("),
        (b"{", "x: not JSON ("),
        (b"", "x: not JSON ("),
    ],
)
def test_lenient_json_is_refused(data: bytes, problem: str) -> None:
    with pytest.raises(JSONFormatError) as raised:
        loads(data, "x")
    assert problem in str(raised.value)
