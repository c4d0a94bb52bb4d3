"""sevref.ids: group and entry ids, and the widths of shard names."""

from __future__ import annotations

import hashlib
import random
import re

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref.errors import ConfigError
from sevref.ids import ENTRY_ID, GROUP_ID_HEX, GROUP_ID_PATTERN, entry_id, group_id, parse_entry_id, shard_width

GROUP = "0123456789abcdef0123"
group_ids = st.text(alphabet="0123456789abcdef", min_size=GROUP_ID_HEX, max_size=GROUP_ID_HEX)
counts = st.none() | st.integers(1, 9999)


@settings(max_examples=200, deadline=None)
@given(group_ids, counts)
def test_entry_id_round_trips(group: str, vcpus: int | None) -> None:
    text = entry_id(group, vcpus)
    assert ENTRY_ID.fullmatch(text)
    assert parse_entry_id(text) == (group, vcpus)


@settings(max_examples=100, deadline=None)
@given(group_ids, st.lists(st.integers(1, 4096), min_size=2, max_size=8, unique=True))
def test_entry_ids_of_a_group_sort_by_vcpu_count(group: str, vcpus: list[int]) -> None:
    assert sorted(entry_id(group, n) for n in vcpus) == [entry_id(group, n) for n in sorted(vcpus)]


def test_entry_id_forms() -> None:
    assert entry_id(GROUP, None) == GROUP  # SEV: the digest does not depend on the vCPU count
    assert entry_id(GROUP, 4) == GROUP + "-0004"
    assert entry_id(GROUP, 4096) == GROUP + "-4096"


INVALID_IDS: dict[str, object] = {
    "empty": "",
    "uppercase hex": GROUP.upper(),
    "19 hex digits": GROUP[:-1],
    "21 hex digits": GROUP + "0",
    "a dash without a count": GROUP + "-",
    "three digits": GROUP + "-004",
    "five digits": GROUP + "-00004",
    "a letter in the count": GROUP + "-000a",
    "a sign in the count": GROUP + "-+004",
    "non-ASCII digits in the count": GROUP + "-\u0660\u0660\u0660\u0664",
    "not hex": "g" * 20,
    "a trailing newline": GROUP + "\n",
    "a trailing space": GROUP + "-0004 ",
    "not text": None,
    "an integer": 12345,
}


@pytest.mark.parametrize("name", INVALID_IDS)
def test_invalid_entry_ids(name: str) -> None:
    text = INVALID_IDS[name]
    with pytest.raises(ConfigError) as raised:
        parse_entry_id(text)  # type: ignore[arg-type]
    assert str(raised.value) == (
        f"entry {text!r}: expected an entry id, 20 lowercase hex digits and for SEV-ES and SEV-SNP -NNNN, "
        f"the vCPU count"
    )


def test_patterns_agree_with_the_schema() -> None:
    # common.schema.json #/$defs/group_id and #/$defs/entry_id
    assert GROUP_ID_PATTERN == "[0-9a-f]{20}"
    assert ENTRY_ID.pattern == "[0-9a-f]{20}(-[0-9]{4})?"


SHARD_WIDTHS: dict[str, tuple[int, int, int]] = {
    # name: (count, per shard, width)
    "nothing": (0, 64, 1),
    "one shard's worth in each of 16": (64 * 16, 64, 1),
    "one more": (64 * 16 + 1, 64, 2),
    "256 full shards": (64 * 16**2, 64, 2),
    "one more again": (64 * 16**2 + 1, 64, 3),
    "4096 full shards": (64 * 16**3, 64, 3),
    "then four digits": (64 * 16**3 + 1, 64, 4),
    "never more than four": (10**12, 64, 4),
    "digests, 512 a shard": (512 * 16 + 1, 512, 2),
}


@pytest.mark.parametrize("name", SHARD_WIDTHS)
def test_shard_width(name: str) -> None:
    count, per_shard, width = SHARD_WIDTHS[name]
    assert shard_width(count, per_shard) == width


def test_group_id_known_answer() -> None:
    # Computed by hand from the definition (SHA-256 of the identity as canonical JSON:
    # keys sorted, no spaces, UTF-8; first 20 hex digits):
    #   printf '%s' '{"cmdline":null,"firmware_sha256":"00","mode":"sev"}' | sha256sum | cut -c1-20
    #   printf '%s' '{"cmdline":"ünï ✓","mode":"sev-es"}' | sha256sum | cut -c1-20
    assert group_id({"mode": "sev", "firmware_sha256": "00", "cmdline": None}) == "d4f0ed63cd2f7c2fed4d"
    assert group_id({"mode": "sev-es", "cmdline": "ünï ✓"}) == "4a503322bd2f18b17303"


identities = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12),
    st.none() | st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=16),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(identities, st.randoms(use_true_random=False))
def test_group_id_is_the_rfc8785_hash_whatever_the_key_order(
    identity: dict[str, str | None], rng: random.Random
) -> None:
    items = list(identity.items())
    rng.shuffle(items)
    expected = hashlib.sha256(rfc8785.dumps(identity)).hexdigest()[:GROUP_ID_HEX]
    assert group_id(dict(items)) == expected
    assert re.fullmatch(GROUP_ID_PATTERN, expected)
