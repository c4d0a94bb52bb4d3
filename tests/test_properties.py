"""Property tests (hypothesis): canonical JSON, the fast list checkers, and expansion order."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest
import rfc8785
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref.binfmt.ovmf import parse_ovmf
from sevref.errors import LayoutError
from sevref.expand import expand
from sevref.manifest.loader import parse_yaml
from sevref.manifest.reader import load_manifests
from sevref.serialize import canonical, canonical_frame, canonical_pairs, canonical_rows, canonical_table
from sevref.validate import LONG_LISTS, WRITTEN, validator
from tests.conftest import REPO

SAFE = (1 << 53) - 1
text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)
scalars = st.none() | st.booleans() | st.integers(-SAFE, SAFE) | text
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127), max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@given(documents)
def test_canonical_is_rfc8785(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


@given(
    st.dictionaries(st.sampled_from(["a", "b", "list", "z", "schema"]), documents, max_size=4),
    st.lists(documents, max_size=6),
)
def test_frame_equals_whole(value: dict[str, Any], items: list[Any]) -> None:
    value.pop("list", None)
    head, tail = canonical_frame(value, "list")
    streamed = head + b"[" + b",".join(canonical(i) for i in items) + b"]" + tail
    assert streamed == canonical({**value, "list": items})


printable = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=10)


def _quick_or_refused(write: Any, value: Any, strings: list[str]) -> None:
    """The quick writer gives canonical()'s bytes, or refuses because a string is not plain."""
    try:
        assert write(value) == canonical(value)
    except LayoutError:
        assert any('"' in s or "\\" in s for s in strings)


@given(st.lists(st.lists(printable, max_size=4), max_size=4))
def test_rows_equal_canonical_or_refuse(rows: list[list[str]]) -> None:
    _quick_or_refused(canonical_rows, rows, [s for row in rows for s in row])


@given(st.lists(st.tuples(st.none() | st.integers(-SAFE, SAFE), printable), max_size=4))
def test_pairs_equal_canonical_or_refuse(pairs: list[tuple[int | None, str]]) -> None:
    try:
        assert canonical_pairs(pairs) == canonical([list(pair) for pair in pairs])
    except LayoutError:
        assert any('"' in s or "\\" in s for _, s in pairs)


@given(st.dictionaries(printable, st.lists(printable, max_size=3), max_size=4))
def test_table_equals_canonical_or_refuses(table: dict[str, list[str]]) -> None:
    _quick_or_refused(canonical_table, table, [*table, *(s for items in table.values() for s in items)])


@pytest.mark.parametrize("value", [1.5, float("nan"), {1: "a"}, {"é": 1}, 1 << 53, {1, 2}, (1, 2), b"x", "\udc80"])
def test_canonical_refuses_values_outside_its_domain(value: Any) -> None:
    with pytest.raises(LayoutError):
        canonical(value)


def _item_schema(kind: str) -> jsonschema.Draft202012Validator:
    """The schema of one item of a kind's long list, from the inlined validator."""
    schema = cast(dict[str, Any], validator(kind).schema)
    member = LONG_LISTS[kind][0]
    part = schema["properties"][member]
    if kind == "digests":
        wrapped = {
            "type": "object",
            "propertyNames": part["propertyNames"],
            "additionalProperties": part["additionalProperties"],
        }
        return jsonschema.Draft202012Validator(wrapped)
    return jsonschema.Draft202012Validator(part["items"])


HEX = "0123456789abcdef"
hexes = st.text(alphabet=HEX + "ABx-", min_size=60, max_size=100)
ids = st.one_of(
    st.text(alphabet=HEX, min_size=20, max_size=20),
    st.builds(lambda g, n: f"{g}-{n:04d}", st.text(alphabet=HEX, min_size=20, max_size=20), st.integers(0, 9999)),
    st.text(max_size=30),
)
digests = st.one_of(
    st.text(alphabet=HEX, min_size=64, max_size=64), st.text(alphabet=HEX, min_size=96, max_size=96), hexes
)
anything = st.none() | st.booleans() | st.integers(-5, 5000) | st.text(max_size=5)


@settings(max_examples=400)
@given(
    st.one_of(
        st.lists(st.one_of(st.none(), st.integers(-2, 5000), st.booleans(), digests, anything), max_size=3), anything
    )
)
def test_entry_checker_agrees_with_the_schema(item: Any) -> None:
    checker = LONG_LISTS["group"][1]
    assert (checker(item) is None) == _item_schema("group").is_valid(item)


@settings(max_examples=400)
@given(
    st.one_of(
        st.lists(st.one_of(ids, st.sampled_from(["sev", "sev-es", "sev-snp"]), digests, anything), max_size=4), anything
    )
)
def test_candidate_checker_agrees_with_the_schema(item: Any) -> None:
    checker = LONG_LISTS["firmware"][1]
    assert (checker(item) is None) == _item_schema("firmware").is_valid(item)


@settings(max_examples=400)
@given(digests, st.one_of(st.lists(st.one_of(ids, anything), max_size=3), anything))
def test_digest_row_checker_agrees_with_the_schema(key: str, value: Any) -> None:
    checker = LONG_LISTS["digests"][1]
    assert (checker(key, value) is None) == _item_schema("digests").is_valid({key: value})


paths = st.text(alphabet="abz09._-/A ", max_size=12)
sha256s = st.text(alphabet=HEX, min_size=64, max_size=64) | hexes


@settings(max_examples=400)
@given(
    st.one_of(
        st.fixed_dictionaries(
            {"path": st.one_of(paths, anything), "sha256": st.one_of(sha256s, anything), "size": st.integers(-2, 5)},
            optional={"extra": anything},
        ),
        st.dictionaries(st.sampled_from(["path", "sha256", "size"]), anything, max_size=3),
        anything,
    )
)
def test_file_checker_agrees_with_the_schema(item: Any) -> None:
    checker = LONG_LISTS["index"][1]
    assert (checker(item) is None) == _item_schema("index").is_valid(item)


def _written_agrees(kind: str, items: Any) -> None:
    """WRITTEN[kind] accepts the canonical JSON of a long list exactly when its checker accepts every item."""
    try:
        written = canonical(items)
    except LayoutError:
        return  # no canonical form: never written
    checker = LONG_LISTS[kind][1]
    if isinstance(items, dict):
        accepted = all(checker(key, value) is None for key, value in items.items())
    else:
        accepted = all(checker(item) is None for item in items)
    assert (WRITTEN[kind].fullmatch(written) is not None) == accepted, written


entry_pairs = st.lists(st.one_of(st.none(), st.integers(-2, 5000), st.booleans(), digests, anything), max_size=3)


@settings(max_examples=400)
@given(st.lists(st.one_of(entry_pairs, st.tuples(st.none() | st.integers(0, 4097), digests).map(list)), max_size=4))
def test_written_entries_agree_with_their_checker(items: list[Any]) -> None:
    _written_agrees("group", items)


def test_written_entries_take_exactly_the_vcpu_counts_the_checker_takes() -> None:
    # _VCPUS spells 1..MAX_VCPUS as a regular expression: every count from 0 to past the limit
    for count in range(-1, 10_001):
        _written_agrees("group", [[count, "ab" * 32]])


@settings(max_examples=400)
@given(
    st.lists(
        st.one_of(
            st.lists(st.one_of(ids, st.sampled_from(["sev", "sev-es", "sev-snp"]), digests, anything), max_size=4),
            st.tuples(ids, st.sampled_from(["sev", "sev-es", "sev-snp", "SEV"]), digests).map(list),
        ),
        max_size=4,
    )
)
def test_written_candidates_agree_with_their_checker(items: list[Any]) -> None:
    _written_agrees("firmware", items)


@settings(max_examples=400)
@given(st.dictionaries(digests, st.one_of(st.lists(st.one_of(ids, anything), max_size=3), anything), max_size=4))
def test_written_digest_tables_agree_with_their_checker(table: dict[str, Any]) -> None:
    _written_agrees("digests", table)


GOLDEN = REPO / "tests" / "golden"


@settings(max_examples=25, deadline=None)
@given(st.randoms(use_true_random=False))
def test_expansion_does_not_depend_on_order(rng: random.Random) -> None:
    original = yaml.safe_load((GOLDEN / "manifest.yaml").read_text())
    shuffled = copy.deepcopy(original)
    for key in ("host_stacks", "matrices", "boots"):
        rng.shuffle(shuffled[key])
    for matrix in shuffled["matrices"]:
        for axis in ("modes", "host_stacks", "cpus", "vcpus", "exclude"):
            if axis in matrix:
                rng.shuffle(matrix[axis])
    firmware = {"tiny": parse_ovmf((GOLDEN / "inputs" / "tiny.fd").read_bytes())}
    results = []
    for data in (original, shuffled):
        document = parse_yaml(json.dumps(data).encode(), "m.json", GOLDEN)
        expansion = expand(load_manifests([document]), firmware, found={})
        results.append([(g.id, g.vcpus, g.matrix) for g in expansion.groups])
    assert results[0] == results[1]
    assert len(results[0]) == 35


def test_group_ids_do_not_depend_on_labels(tmp_path: Path) -> None:
    data = yaml.safe_load((GOLDEN / "manifest.yaml").read_text())
    text = json.dumps(data).replace('"qemu9.1-init2"', '"renamed-stack"').replace('"tiny"', '"renamed-fw"')
    firmware = parse_ovmf((GOLDEN / "inputs" / "tiny.fd").read_bytes())
    original = expand(
        load_manifests([parse_yaml(json.dumps(data).encode(), "a", GOLDEN)]), {"tiny": firmware}, found={}
    )
    renamed = expand(load_manifests([parse_yaml(text.encode(), "b", GOLDEN)]), {"renamed-fw": firmware}, found={})
    assert [g.id for g in original.groups] == [g.id for g in renamed.groups]
