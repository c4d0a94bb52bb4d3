"""The verifier's memory between runs: what it has seen, so that nothing can be rolled back.

A JSON file, replaced atomically: the highest serial seen per
publisher/product/stream, and the newest keys document seen per publisher.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sevref.edge.files import read_bytes, write_atomic
from sevref.errors import ConfigError
from sevref.limits import MAX_STATE_BYTES

__all__ = ["VerifierState", "read_state", "state_key", "write_state"]


def state_key(publisher: str, product: str, stream: str) -> str:
    """The state's name of a stream of releases.

    Args:
        publisher: publisher id.
        product: product id.
        stream: stream id.

    Returns:
        ``publisher/product/stream``.
    """
    return f"{publisher}/{product}/{stream}"


@dataclass(frozen=True)
class VerifierState:
    """What a verifier remembers between runs, so that nothing can be rolled back."""

    serials: Mapping[str, int]
    """The highest serial seen, by ``publisher/product/stream``."""
    keys: Mapping[str, int]
    """The newest keys document seen, by publisher: a shorter chain withholds a rotation or revocation."""


def read_state(path: Path | None) -> VerifierState:
    """Read the verifier's state file.

    Args:
        path: the state file (missing: nothing seen yet).

    Returns:
        The state.

    Raises:
        ConfigError: a state file that is not sevref's.
    """
    if path is None or not path.exists():
        return VerifierState({}, {})
    try:
        data = json.loads(read_bytes(path, "state file", MAX_STATE_BYTES))
        if not isinstance(data, dict) or set(data) - {"serials", "keys"}:
            raise ValueError('expected {"serials": {name: integer}, "keys": {publisher: integer}}')
        tables = [data.get("serials", {}), data.get("keys", {})]
        for table in tables:
            if not isinstance(table, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in table.values()
            ):
                raise ValueError('expected {"serials": {name: integer}, "keys": {publisher: integer}}')
        return VerifierState(dict(tables[0]), dict(tables[1]))
    except (ValueError, KeyError) as error:
        raise ConfigError(f"state file {path}: {error}") from error


def write_state(path: Path, state: VerifierState) -> None:
    """Replace the verifier's state atomically (write a new file, then rename it over the old).

    Args:
        path: the state file.
        state: what to keep.
    """
    document = {"keys": dict(sorted(state.keys.items())), "serials": dict(sorted(state.serials.items()))}
    write_atomic(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
