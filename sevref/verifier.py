"""The verifier's workflow: read a publication, check it, remember what was trusted.

This is the verifier side's composition, as :mod:`sevref.pipeline` is the
build's: it loads the pinned keys, reads the state, runs every check of
:mod:`sevref.trust` on the publication (a folder or a URL) and records what it
trusted in the state, under its lock (:mod:`sevref.edge.state`). It imports
nothing of the build side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sevref.edge.keys import load_public
from sevref.edge.remote import reader
from sevref.edge.state import read_state, record
from sevref.limits import DEFAULT_FETCH_TIMEOUT
from sevref.state import stream_name
from sevref.trust import TrustAnchor, TrustedPublication, establish

__all__ = ["Request", "trust"]


@dataclass(frozen=True)
class Request:
    """What a verifier asks: which publication, pinned to what, checked how."""

    location: str
    """A folder or URL."""
    keys: Sequence[Path]
    """Pinned public key files."""
    identity: tuple[str, str, str]
    """(publisher, product, stream) expected."""
    at: datetime
    """When to check validity."""
    state: Path | None = None
    """The verifier's state file, if any."""
    check_all_files: bool = True
    """Check every listed file now (else only those read later)."""
    timeout: float = DEFAULT_FETCH_TIMEOUT
    """Seconds within which each file must arrive whole."""
    require_timestamp: bool = False
    """Refuse a release without a valid timestamp."""
    max_age: timedelta | None = None
    """Refuse a timestamp older than this."""


def trust(request: Request) -> TrustedPublication:
    """Check a publication and record its key chain and release in the state file.

    Args:
        request: what to check.

    Returns:
        The trusted publication.

    Raises:
        TrustError: a check failed (also when the state, re-read under its
            lock, remembers something newer than what this run trusted).
        SevrefError: the keys or the state cannot be read.
    """
    publisher, product, stream = request.identity
    seen = read_state(request.state)
    name = stream_name(publisher, product, stream)
    expected = TrustAnchor(
        keys=[load_public(k) for k in request.keys],
        publisher=publisher,
        product=product,
        stream=stream,
        at=request.at,
        check_all_files=request.check_all_files,
        known_chain=seen.publishers.get(publisher),
        known_release=seen.streams.get(name),
        require_timestamp=request.require_timestamp,
        max_age=request.max_age,
    )
    publication = establish(reader(request.location, request.timeout), expected)
    if request.state is not None:
        record(request.state, publisher, publication.chain, name, publication.release_state)
    return publication
