"""The verifier's workflow: read a publication, check it, remember what was trusted.

This is the verifier side's composition, as :mod:`sevref.pipeline` is the
build's: it loads the pinned keys, reads the state, runs every check of
:mod:`sevref.trust` on the publication (a folder or a URL) and records what it
trusted in the state, under its lock (:mod:`sevref.edge.state`). It imports
nothing of the build side.

It also reads a release for its history (:func:`snapshot`): what
``sevref diff`` compares and ``sevref build --previous`` links to, trusted
through :func:`trust` or read unverified (:func:`read_release`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sevref.edge.keys import load_pin
from sevref.edge.remote import reader
from sevref.edge.state import read_state, record
from sevref.errors import Check, ConfigError, TrustError
from sevref.history import Snapshot, states_of
from sevref.keychain import read_unverified, signed_sha256, verify_chain
from sevref.limits import DEFAULT_DEADLINE, DEFAULT_FETCH_TIMEOUT
from sevref.records import GroupRecord
from sevref.sign import PublicKey
from sevref.state import VerifierState, stream_name
from sevref.trust import TrustAnchor, TrustedPublication, establish, open_unverified

__all__ = ["Request", "previous_release", "read_release", "snapshot", "trust"]


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
    deadline: float = DEFAULT_DEADLINE
    """Seconds within which every file of the run must have arrived."""
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
        keys=_pinned(request.keys, publisher),
        publisher=publisher,
        product=product,
        stream=stream,
        at=request.at,
        check_all_files=request.check_all_files,
        known_chain=seen.publishers.get(publisher),
        keys_of_others=_keys_of_others(seen, publisher),
        known_release=seen.streams.get(name),
        require_timestamp=request.require_timestamp,
        max_age=request.max_age,
    )
    publication = establish(reader(request.location, request.timeout, request.deadline), expected)
    if request.state is not None:
        record(request.state, publisher, publication.chain, name, publication.release_state, publication.index.previous)
    return publication


def _pinned(paths: Sequence[Path], publisher: str) -> list[PublicKey]:
    """The pinned keys; a pin file bound to another publisher is refused."""
    keys: list[PublicKey] = []
    for path in paths:
        pin = load_pin(path)
        if pin.publisher is not None and pin.publisher != publisher:
            raise ConfigError(
                f"--trusted-key {path}: pins the keys of publisher {pin.publisher!r}; expected a pin for "
                f"--publisher {publisher!r}"
            )
        keys.extend(pin.keys)
    return keys


def _keys_of_others(seen: VerifierState, publisher: str) -> dict[str, str]:
    """Key id to publisher, for every key the state trusts (active or revoked) in another publisher's chain."""
    found: dict[str, str] = {}
    for other, chain in sorted(seen.publishers.items()):
        if other != publisher:
            for keyid in [*(key.keyid for key in chain.active), *sorted(chain.revoked)]:
                found.setdefault(keyid, other)
    return found


def read_release(
    location: str, timeout: float = DEFAULT_FETCH_TIMEOUT, deadline: float = DEFAULT_DEADLINE
) -> TrustedPublication:
    """Read a publication without checking who wrote it (each file is still held to its index).

    Args:
        location: a folder or URL.
        timeout: seconds within which each file must arrive whole.
        deadline: seconds within which every file read must have arrived, counted from now.

    Returns:
        The publication, marked unverified.

    Raises:
        TrustError: no index there, or a file that is not what the index says.
    """
    return open_unverified(reader(location, timeout, deadline))


def previous_release(
    location: str,
    chain: Sequence[bytes],
    timeout: float = DEFAULT_FETCH_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
) -> TrustedPublication:
    """The release a build follows (``sevref build --previous``), checked against the publisher's own key chain.

    The publisher holds its key chain (``--keys``), so the release it names as
    the one before is verified as a verifier pinned to the chain's first keys
    would: its signature, its own key chain (which must agree with the
    publisher's, document by document), its identity and every file. It is
    checked as of its own issue time: a release that has expired since is still
    the one a new release follows. A release signed by a key the publisher's
    chain has revoked since is refused: it may be what a stolen key wrote.

    Args:
        location: a folder or URL.
        chain: the publisher's keys documents, oldest first (not empty).
        timeout: seconds within which each file must arrive whole.
        deadline: seconds within which every file read must have arrived.

    Returns:
        The trusted publication.

    Raises:
        TrustError: the release is not the publisher's, as its chain says.
        SevrefError: the publisher's chain does not hold.
    """
    own = verify_chain(chain)
    root = verify_chain(chain[:1])
    index = read_release(location, timeout, deadline).index
    release = index.release
    anchor = TrustAnchor(
        keys=list(root.active().values()),
        publisher=own.publisher,
        product=release.product,
        stream=release.stream,
        at=index.issued,
    )
    publication = establish(reader(location, timeout, deadline), anchor)
    for link in publication.chain.chain:
        if link.version <= len(chain):
            mine = signed_sha256(chain[link.version - 1], link.version)
            if not link.matches(mine):
                raise TrustError(
                    Check.KEYS,
                    f"fork at version {link.version}: the release's keys/{link.version}.dsse.json signs a document "
                    f"with sha256 {link.sha256}; --keys holds {mine}",
                )
    revoked = frozenset().union(*(read_unverified(data, n).revoked() for n, data in enumerate(chain, start=1)))
    if publication.keyid in revoked:
        raise TrustError(
            Check.KEYS,
            f"signed by key {publication.keyid}, which the key chain in --keys revokes; expected a release "
            "signed by a key the publisher has not revoked",
        )
    return publication


def snapshot(publication: TrustedPublication) -> Snapshot:
    """What a release holds, as its history compares it: fields, firmware, host stacks and every entry's state.

    Args:
        publication: the release, trusted or read unverified.

    Returns:
        The snapshot.

    Raises:
        TrustError: a file that is not what the index says.
    """
    described = publication.read("publication.json")
    groups = {}
    for path in sorted(p for p in publication.files if p.startswith("groups/") and p.endswith(".json")):
        for item in publication.read(path)["groups"]:
            record = GroupRecord.from_dict(item)
            groups[record.id] = states_of(record)
        publication.forget(path)  # a release can be large: keep the states, not the records
    return Snapshot(
        index=publication.index,
        index_sha256=publication.index_sha256,
        description=described["description"],
        firmware={item["id"]: item["sha256"] for item in described["firmware"]},
        host_stacks=tuple(sorted(item["id"] for item in described["host_stacks"])),
        groups=groups,
    )
