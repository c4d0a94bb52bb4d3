"""sevref.validate: the JSON Schema and the long-list checkers split the work without a gap.

tests/test_properties.py holds each checker to its item schema on random items;
this file checks how check_document combines them on real files (the golden
publication's): a defect anywhere in a long list is found, with its path, where
the schema validator sees only the list's first item, and everything else still
goes to the schema.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from sevref.errors import LayoutError
from sevref.serialize import canonical
from sevref.validate import KINDS, LONG_LISTS, WRITTEN, check_document, check_group, describe_error, validator
from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden" / "publication"


def golden(path: str) -> Any:
    return json.loads((GOLDEN / path).read_bytes())


def last_key(mapping: dict[str, Any]) -> str:
    return list(mapping)[-1]


Change = Callable[[Any], None]
DEFECTS: dict[str, tuple[str, str, Change, str]] = {
    # name: (kind, golden file, change, message)
    "a bad digest in a group's last entry": (
        "groups",
        "groups/4.json",
        lambda d: d["groups"][0]["entries"].append([5, "x"]),
        "/groups/0: /entries/3: digest 'x': expected 64 or 96 lowercase hex digits",
    ),
    "a vCPU count past 4096 in the first entry": (
        "groups",
        "groups/4.json",
        lambda d: d["groups"][1]["entries"][0].__setitem__(0, 4097),
        "/groups/1: /entries/0: vcpus 4097: expected null or 1..4096",
    ),
    "entries that are no list go to the schema": (
        "groups",
        "groups/1.json",
        lambda d: d["groups"][0].__setitem__("entries", {}),
        "/groups/0: /entries: expected a list, found an empty mapping",
    ),
    "the rest of the last group goes to the schema": (
        "groups",
        "groups/1.json",
        lambda d: d["groups"][-1].__setitem__("mode", "sev-xl"),
        '/groups/<last>: /mode: expected one of "sev", "sev-es", "sev-snp", found "sev-xl"',
    ),
    "an unknown member": (
        "groups",
        "groups/1.json",
        lambda d: d.__setitem__("extra", 1),
        "/: unknown key 'extra'; expected one of groups, release, schema, shard",
    ),
    "a digest key that is not a digest": (
        "digests",
        "digests/0.json",
        lambda d: d["digests"].__setitem__("ABC", ["x"]),
        "/digests/ABC: key 'ABC': expected 64 or 96 lowercase hex digits",
    ),
    "the last digest without entries": (
        "digests",
        "digests/0.json",
        lambda d: d["digests"].__setitem__(last_key(d["digests"]), []),
        "/digests/<last key>: expected a non-empty list of entry ids",
    ),
    "a path out of the publication in the index": (
        "index",
        "index.json",
        lambda d: d["files"][5].__setitem__("path", "../x"),
        "/files/5: path '../x': expected a relative path of lowercase names",
    ),
    "a negative size": (
        "index",
        "index.json",
        lambda d: d["files"][-1].__setitem__("size", -1),
        "/files/<last>: size -1: expected an integer >= 0",
    ),
    "an SEV-SNP candidate": (
        "firmware",
        "firmware/tiny.json",
        lambda d: d["candidates"][3].__setitem__(1, "sev-snp"),
        "/candidates/3: mode 'sev-snp': expected sev or sev-es",
    ),
    "a candidate with a bad entry id": (
        "firmware",
        "firmware/tiny.json",
        lambda d: d["candidates"][-1].__setitem__(0, "x"),
        "/candidates/<last>: entry id 'x': expected a group id with an optional -NNNN",
    ),
}


@pytest.mark.parametrize("name", DEFECTS)
def test_defects_anywhere_are_found_with_their_path(name: str) -> None:
    kind, path, change, message = DEFECTS[name]
    data = golden(path)
    check_document(kind, data, path)  # the golden file itself is valid
    changed = copy.deepcopy(data)
    change(changed)
    with pytest.raises(LayoutError) as raised:
        check_document(kind, changed, path)
    items = data.get("files") or data.get("candidates") or data.get("groups") or []
    expected = message.replace("<last key>", last_key(data.get("digests", {"": 0}))).replace(
        "<last>", str(len(items) - 1)
    )
    assert str(raised.value) == f"{path}: {expected}"


@pytest.mark.parametrize("name", [name for name, defect in DEFECTS.items() if defect[0] in WRITTEN])
def test_defects_in_a_long_list_as_written_are_named_alike(name: str) -> None:
    # A build checks a long list as the bytes it writes (WRITTEN): the same defect, the same words.
    kind, path, change, message = DEFECTS[name]
    member = LONG_LISTS[kind][0]
    data = golden(path)
    empty = {**data, member: type(data[member])()}
    check_document(kind, empty, path, canonical(data[member]))
    changed = copy.deepcopy(data)
    change(changed)
    with pytest.raises(LayoutError) as raised:
        check_document(kind, empty, path, canonical(changed[member]))
    expected = message.replace("<last key>", last_key(data.get("digests", {"": 0}))).replace(
        "<last>", str(len(data[member]) - 1)
    )
    assert str(raised.value) == f"{path}: {expected}"


def test_a_group_s_entries_as_written() -> None:
    record = golden("groups/1.json")["groups"][0]
    what = f"group {record['id']}"
    check_group(record, canonical(record["entries"]))
    bad = [*record["entries"], [5, "x"]]
    with pytest.raises(LayoutError) as raised:
        check_group(record, canonical(bad))
    assert str(raised.value) == f"{what}: /entries/{len(bad) - 1}: digest 'x': expected 64 or 96 lowercase hex digits"
    spaced = canonical(record["entries"]).replace(b",", b", ")  # the same items, not as canonical JSON writes them
    with pytest.raises(LayoutError) as raised:
        check_group(record, spaced)
    assert str(raised.value) == f"{what}: /entries: not in canonical JSON form"
    with pytest.raises(LayoutError) as raised:
        check_group(record, b"[[1,")
    assert str(raised.value).startswith(f"{what}: /entries: not JSON (")


def test_check_group_names_the_group() -> None:
    record = golden("groups/1.json")["groups"][0]
    check_group(record)
    with pytest.raises(LayoutError) as raised:
        check_group({**record, "status": "gone"})
    assert (
        str(raised.value)
        == f'group {record["id"]}: /status: expected one of "active", "deprecated", "revoked", found "gone"'
    )


def test_every_long_list_has_its_member_in_the_schema() -> None:
    assert set(LONG_LISTS) == {"group", "firmware", "digests", "index"}
    for kind, (member, _) in LONG_LISTS.items():
        schema = validator(kind).schema
        assert isinstance(schema, dict) and member in schema["properties"], kind
    for kind in KINDS:
        schema = validator(kind).schema
        assert isinstance(schema, dict) and schema["type"] == "object", kind


SAID: dict[str, tuple[dict[str, Any], Any, str]] = {
    # name: (schema, instance, the sentence)
    "a bound with its unit, plural": ({"maxItems": 2}, [1, 2, 3], "expected at most 2 items, found a list of 3"),
    "a bound with its unit, singular": ({"minLength": 1}, "", 'expected at least 1 character, found ""'),
    "a bound without a unit": ({"exclusiveMinimum": 0}, 0, "expected more than 0, found 0"),
    "a pattern with a newline": ({"pattern": "^a\nb$"}, "x", 'expected text matching ^a\\nb$, found "x"'),
    "forms told apart by a key, none given": (
        {"oneOf": [{"required": ["path"]}, {"required": ["url"]}]},
        {"sha256": "0"},
        "expected one of path, url, found none of them",
    ),
    "forms told apart by a key, two given": (
        {"oneOf": [{"required": ["path"]}, {"required": ["url"]}]},
        {"path": "a", "url": "b"},
        "expected one of path, url, found path and url",
    ),
    "forms by type": ({"oneOf": [{"type": "null"}, {"type": "string"}]}, 5, "expected null or text, found 5"),
    "the form of the value's type": (
        {"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 2}]},
        "abc",
        'expected at most 2 characters, found "abc"',
    ),
    "a form that fails further in": (
        {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"a": {"enum": [1, 2]}}}]},
        {"a": 3},
        "expected one of 1, 2, found 3",
    ),
    "more than one form matched": (
        {"oneOf": [{"type": "integer"}, {"minimum": 0}]},
        1,
        "expected a value of exactly one of 2 forms, found 1, which fits more than one",
    ),
    "an unknown key": (
        {"properties": {"b": {}, "a": {}}, "additionalProperties": False},
        {"a": 1, "z": 2},
        "unknown key 'z'; expected one of a, b",
    ),
}


@pytest.mark.parametrize("name", SAID)
def test_a_schema_error_is_said_as_expected_then_found(name: str) -> None:
    schema, instance, sentence = SAID[name]
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(instance))
    assert error is not None and describe_error(error) == sentence
