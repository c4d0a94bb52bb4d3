"""The ids of published things, and the shards that hold them.

* A **group** is a configuration without its vCPU count. Its id is the first
  20 hex digits (80 bits: no collision expected below 2**40 groups) of the
  SHA-256 of its identity in canonical JSON.
* An **entry** is a group at one vCPU count: ``<group id>-<vCPUs, 4 digits>``,
  zero-padded so that ids sort numerically; SEV entries, whose digest does not
  depend on the vCPU count, are the group id alone.
* Groups live in ``groups/<first N hex digits of the id>.json`` and digests in
  ``digests/<first N hex digits of the digest>.json``; N is chosen per release
  so that shards stay small, and the index records it.

Every module that writes or reads these forms uses this one; nothing else
formats or parses them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

from sevref.errors import ConfigError

__all__ = [
    "ENTRY_ID",
    "GROUP_ID_HEX",
    "GROUP_ID_PATTERN",
    "VCPU_DIGITS",
    "entry_id",
    "group_id",
    "parse_entry_id",
    "shard_width",
]

GROUP_ID_HEX = 20
"""Hex digits of a group id."""
VCPU_DIGITS = 4
"""Digits of the vCPU count in an entry id (vCPU counts go up to 4096)."""
GROUP_ID_PATTERN = f"[0-9a-f]{{{GROUP_ID_HEX}}}"
"""A group id as a regular expression (common.schema.json #/$defs/group_id)."""
ENTRY_ID = re.compile(f"{GROUP_ID_PATTERN}(-[0-9]{{{VCPU_DIGITS}}})?")
"""An entry id (common.schema.json #/$defs/entry_id)."""


def group_id(identity: Mapping[str, object]) -> str:
    """The id of a group: a hash of the fields that make it what it is.

    Args:
        identity: ASCII keys to strings or None (no other values).

    Returns:
        :data:`GROUP_ID_HEX` lowercase hex digits.
    """
    # Keys are fixed ASCII and values strings or null: this is the RFC 8785 form.
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:GROUP_ID_HEX]


def entry_id(group: str, vcpus: int | None) -> str:
    """An entry's id: its group's id, and the vCPU count zero-padded so ids sort numerically.

    Args:
        group: the group id.
        vcpus: the count, or None for SEV.

    Returns:
        E.g. ``3f2a9c1b7e5d4a3b2c1d-0004``.
    """
    return group if vcpus is None else f"{group}-{vcpus:0{VCPU_DIGITS}d}"


def parse_entry_id(text: str) -> tuple[str, int | None]:
    """Split an entry id into its group id and vCPU count.

    Args:
        text: the entry id.

    Returns:
        (group id, vCPU count or None).

    Raises:
        ConfigError: not an entry id.
    """
    if not isinstance(text, str) or not ENTRY_ID.fullmatch(text):
        raise ConfigError(
            f"entry {text!r}: expected an entry id, {GROUP_ID_HEX} lowercase hex digits and for SEV-ES and "
            f"SEV-SNP -{'N' * VCPU_DIGITS}, the vCPU count"
        )
    if len(text) == GROUP_ID_HEX:
        return text, None
    return text[:GROUP_ID_HEX], int(text[GROUP_ID_HEX + 1 :])


def shard_width(count: int, per_shard: int) -> int:
    """Hex digits of shard names so that shards hold about ``per_shard`` items or fewer.

    Args:
        count: the number of items.
        per_shard: the target.

    Returns:
        1 to 4.
    """
    width = 1
    while width < 4 and count > per_shard * 16**width:
        width += 1
    return width
