"""The verifier's workflow: read a publication, check it, remember what was trusted.

This is the verifier side's composition, as :mod:`sevref.pipeline` is the
build's: it loads the pinned keys, reads the state, runs every check of
:mod:`sevref.trust` on the publication (a folder or a URL) and records what it
trusted. It imports nothing of the build side.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sevref.edge.keys import load_public
from sevref.edge.remote import reader
from sevref.edge.state import VerifierState, read_state, state_key, write_state
from sevref.trust import TrustAnchor, TrustedPublication, establish

__all__ = ["trust"]


def trust(
    location: str,
    keys: Sequence[Path],
    identity: tuple[str, str, str],
    at: datetime,
    state: Path | None,
    check_all_files: bool = True,
) -> TrustedPublication:
    """Check a publication and record its serial and key chain version in the state file.

    Args:
        location: folder or URL.
        keys: pinned public key files.
        identity: (publisher, product, stream) expected.
        at: when to check validity.
        state: the verifier's state file, if any.
        check_all_files: check every listed file now.

    Returns:
        The trusted publication.

    Raises:
        TrustError: a check failed.
        SevrefError: the keys or the state cannot be read.
    """
    publisher, product, stream = identity
    seen = read_state(state)
    name = state_key(publisher, product, stream)
    expected = TrustAnchor(
        [load_public(k) for k in keys],
        publisher,
        product,
        stream,
        at,
        seen.serials.get(name),
        check_all_files,
        seen.keys.get(publisher),
    )
    publication = establish(reader(location), expected)
    serial, version = publication.index.release.serial, publication.keys_version
    if state is not None and (serial > seen.serials.get(name, 0) or version > seen.keys.get(publisher, 0)):
        serials = {**seen.serials, name: max(serial, seen.serials.get(name, 0))}
        versions = {**seen.keys, publisher: max(version, seen.keys.get(publisher, 0))}
        write_state(state, VerifierState(serials, versions))
    return publication
