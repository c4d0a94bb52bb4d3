"""The verifier's memory between runs: the state file, read, locked, merged and replaced.

The format and the rules are :mod:`sevref.state`'s. This module reads the
file (a missing file is an empty state; a damaged one is a one-line error
naming it) and records what a run trusted: under an exclusive lock on a
lock file beside it (``.<name>.lock``), it reads the file again, merges the
run into what it holds now (:func:`sevref.state.remember`, which may still
refuse the run: another verifier may have trusted something newer in the
meantime) and replaces it atomically. Verifiers sharing a state file thus
never lose an update, and a killed one leaves the previous file whole.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sevref.edge.files import read_bytes, write_atomic
from sevref.errors import ConfigError, FetchError
from sevref.limits import MAX_STATE_BYTES
from sevref.records import Previous
from sevref.state import PublisherState, StreamState, VerifierState, remember

__all__ = ["read_state", "record"]


def read_state(path: Path | None) -> VerifierState:
    """Read the verifier's state file.

    Args:
        path: the state file, or a symbolic link to it (None or missing: nothing seen yet).

    Returns:
        The state.

    Raises:
        ConfigError: a state file that cannot be read or is not valid, naming it.
    """
    if path is None:
        return VerifierState()
    path = Path(os.path.realpath(path))  # a link names the file that holds the state (see record)
    if not os.path.lexists(path):
        return VerifierState()
    try:
        data = read_bytes(path, "state file", MAX_STATE_BYTES)
    except FetchError as error:
        raise ConfigError(error.diagnostic()) from error
    return VerifierState.from_bytes(data, f"state file {path}")


def record(
    path: Path,
    publisher: str,
    chain: PublisherState,
    name: str,
    release: StreamState,
    previous: Previous | None = None,
) -> VerifierState:
    """Merge what a run trusted into the state file, under its lock.

    Args:
        path: the state file.
        publisher: the publisher.
        chain: the key chain the run trusted.
        name: the stream (``publisher/product/stream``).
        release: the release the run trusted.
        previous: the release it names as its previous, if any.

    Returns:
        The state as written.

    Raises:
        TrustError: the file, as it is now, remembers something that refuses the run.
        ConfigError: the file or its lock cannot be read or written.
    """
    # A state kept elsewhere and named through a symbolic link: the file it names is replaced, not the link.
    path = Path(os.path.realpath(path))
    lock = path.with_name(f".{path.name}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        raise ConfigError(f"state file lock {lock}: {error.strerror or error}") from error
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        merged = remember(read_state(path), publisher, chain, name, release, previous)
        try:
            write_atomic(path, merged.to_bytes())
        except FetchError as error:
            raise ConfigError(error.diagnostic()) from error
        return merged
    finally:
        os.close(descriptor)  # closing releases the lock
