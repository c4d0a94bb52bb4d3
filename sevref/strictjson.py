"""Reading JSON strictly: the one JSON reader for publications, the verifier's state and evidence.

Python's ``json`` module is lenient where a verifier must not be:

* it keeps the last of two equal keys, so ``{"expires": A, "expires": B}``
  means B to sevref and perhaps A to another reader of the same signed bytes;
* it reads ``1.0`` (a float) where an integer is meant, and ``NaN`` and
  ``Infinity``, which are not JSON at all;
* given bytes, it guesses UTF-16 or UTF-32 from the first bytes.

:func:`loads` refuses all of that: the bytes must be UTF-8 (no byte order
mark), every object's keys distinct, every number an integer, and the nesting
shallower than Python's stack. sevref writes no floats (``serialize``), so a
number with a fraction or an exponent in a file it reads is an error.
"""

from __future__ import annotations

import json
from typing import Any

from sevref.errors import JSONFormatError

__all__ = ["Refused", "decode", "loads"]


class Refused(Exception):
    """A strict rule broken inside the decoder's hooks: a duplicate key, a number that is not an integer."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise Refused(f"key {key!r} appears twice in one object; expected each key once")
        value[key] = item
    return value


def _number(text: str) -> Any:
    raise Refused(f"the number {text[:40]} is not an integer; expected integers only")


def _constant(text: str) -> Any:
    raise Refused(f"{text} is not JSON; expected integers only")


def decode(text: str) -> Any:
    """Parse JSON text under sevref's strict rules, leaving the errors to the caller.

    Args:
        text: the JSON text.

    Returns:
        The value: dicts, lists, strings, integers, booleans and None.

    Raises:
        Refused: a duplicate key, or a number that is not an integer.
        RecursionError: nested deeper than Python's stack.
        ValueError: not JSON (a JSONDecodeError), or an integer longer than Python converts.
    """
    return json.loads(text, object_pairs_hook=_object, parse_float=_number, parse_constant=_constant)


def loads(data: bytes, what: str) -> Any:
    """Parse strict JSON.

    Args:
        data: UTF-8 bytes.
        what: how to name the document in errors (a path, a URL).

    Returns:
        The value: dicts, lists, strings, integers, booleans and None.

    Raises:
        JSONFormatError: not UTF-8, not JSON, a duplicate key, a number that
            is not an integer, or nested too deep.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JSONFormatError(f"{what}: byte {error.start} is not UTF-8; expected UTF-8 JSON") from None
    if text.startswith("\ufeff"):
        raise JSONFormatError(f"{what}: starts with a byte order mark; expected UTF-8 JSON without one")
    try:
        return decode(text)
    except Refused as error:
        raise JSONFormatError(f"{what}: {error}") from None
    except RecursionError:
        raise JSONFormatError(f"{what}: nested deeper than sevref reads; expected a flatter document") from None
    except ValueError as error:  # JSONDecodeError, and integers longer than Python converts
        raise JSONFormatError(f"{what}: not JSON ({error})") from None
