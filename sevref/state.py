"""The verifier's memory: what it trusted before, and the rules that keep it from going backwards.

A verifier that remembers nothing can be shown any release that was ever
valid, under any key chain its pinned key ever started. The state (one JSON
file, ``--state``; format ``urn:sevref:schema:state:1``, see
``schema/state.schema.json``) remembers, as python-tuf's trusted metadata
set does:

* per publisher, the **key chain** it trusted: each accepted keys document's
  version and the sha256 of what its ``keys/<n>.dsse.json`` signs (the
  payload, not the envelope as served: a mirror that writes the same signed
  document out again must neither poison the state nor read as a fork; a
  state written before remembered envelopes, and those still match), the
  active keys of the newest, and every key the chain has revoked;
* per publisher/product/stream, the **newest release**: its serial and the
  sha256 of its ``index.json``.

The rules, each a :class:`~sevref.errors.TrustError`:

* another keys document under a version already trusted is a **fork**
  (``keys: fork at version N``): someone holding an old key wrote a chain
  of their own;
* a chain shorter than the one trusted **withholds** a document, perhaps a
  revocation (``rollback``);
* a serial lower than the one trusted is a **rollback**, and the same serial
  with another index is an **equivocation** (``rollback``);
* a later release that names the trusted serial as its ``previous`` must name
  the trusted index's sha256, and one that names an older serial skips the
  trusted release (``history``: a release dropped or replaced); one that names
  a later serial, or none, is a **gap**, allowed and reported.

:func:`remember` applies them and merges what a run trusted into the state,
monotonically: it is run again under the state file's lock, against the file
as it is then, so that verifiers sharing a state never lose an update.

This module does no I/O; :mod:`sevref.edge.state` reads, locks and writes the file.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sevref import strictjson
from sevref.errors import Check, ConfigError, JSONFormatError, LayoutError, TrustError
from sevref.records import Previous
from sevref.serialize import canonical
from sevref.validate import check_document

__all__ = [
    "STATE_SCHEMA",
    "ChainLink",
    "PublisherState",
    "StreamState",
    "TrustedKey",
    "VerifierState",
    "check_chain",
    "check_history",
    "check_stream",
    "remember",
    "stream_name",
]

STATE_SCHEMA = "urn:sevref:schema:state:1"
"""The ``schema`` value of a state file (and the ``$id`` of its JSON Schema)."""


def stream_name(publisher: str, product: str, stream: str) -> str:
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
class ChainLink:
    """One accepted keys document."""

    version: int
    """Its version (and file number)."""
    sha256: str
    """The sha256 of the document ``keys/<version>.dsse.json`` signs (its payload)."""
    served: str | None = field(default=None, compare=False)
    """The sha256 of the envelope as this run was served it: not remembered, only matched against a state
    written before states remembered payloads."""

    def matches(self, remembered: str) -> bool:
        """Tell whether this is the document a state remembers by ``remembered``.

        Args:
            remembered: the state's sha256 of this version: of its payload, or, in a state written before,
                of its envelope.

        Returns:
            True when either matches.
        """
        return remembered in (self.sha256, self.served)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {"version": self.version, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChainLink:
        """Read the JSON form.

        Args:
            data: a schema-valid mapping.

        Returns:
            The link.
        """
        return cls(data["version"], data["sha256"])


@dataclass(frozen=True)
class TrustedKey:
    """An active key of the newest trusted keys document."""

    keyid: str
    """Its id."""
    algorithm: str
    """Its algorithm."""
    public_key: str
    """PEM SubjectPublicKeyInfo."""
    roles: tuple[str, ...]
    """What it may sign (``release``, ``timestamp``), sorted."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "keyid": self.keyid,
            "algorithm": self.algorithm,
            "public_key": self.public_key,
            "roles": list(self.roles),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrustedKey:
        """Read the JSON form.

        Args:
            data: a schema-valid mapping.

        Returns:
            The key.
        """
        return cls(data["keyid"], data["algorithm"], data["public_key"], tuple(sorted(data["roles"])))


@dataclass(frozen=True)
class PublisherState:
    """A publisher's key chain as the verifier trusted it."""

    chain: tuple[ChainLink, ...]
    """The accepted keys documents, consecutive versions, oldest first."""
    active: tuple[TrustedKey, ...]
    """The active keys of the newest one, by id."""
    revoked: frozenset[str] = field(default_factory=frozenset)
    """Every key id the trusted chain has revoked."""

    @property
    def newest(self) -> int:
        """The newest trusted version (0 when the chain is empty)."""
        return self.chain[-1].version if self.chain else 0

    def sha256(self, version: int) -> str | None:
        """The remembered sha256 of a version.

        Args:
            version: a keys document's version.

        Returns:
            The sha256, or None when the version is not in the chain.
        """
        first = self.chain[0].version if self.chain else 1
        position = version - first
        return self.chain[position].sha256 if 0 <= position < len(self.chain) else None

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "chain": [link.to_dict() for link in self.chain],
            "active": [key.to_dict() for key in sorted(self.active, key=lambda k: k.keyid)],
            "revoked": sorted(self.revoked),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], what: str) -> PublisherState:
        """Read the JSON form.

        Args:
            data: a schema-valid mapping.
            what: how to name it in errors.

        Returns:
            The publisher's state.

        Raises:
            ConfigError: versions that do not follow one another.
        """
        chain = tuple(ChainLink.from_dict(link) for link in data["chain"])
        for before, after in itertools.pairwise(chain):
            if after.version != before.version + 1:
                raise ConfigError(
                    f"{what}: chain version {after.version} follows {before.version}; expected consecutive versions"
                )
        active = tuple(TrustedKey.from_dict(key) for key in data["active"])
        return cls(chain, active, frozenset(data["revoked"]))


@dataclass(frozen=True)
class StreamState:
    """The newest release of a stream the verifier trusted."""

    serial: int
    """Its serial."""
    index_sha256: str
    """The sha256 of its ``index.json``."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {"serial": self.serial, "index_sha256": self.index_sha256}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamState:
        """Read the JSON form.

        Args:
            data: a schema-valid mapping.

        Returns:
            The stream's state.
        """
        return cls(data["serial"], data["index_sha256"])


@dataclass(frozen=True)
class VerifierState:
    """Everything a verifier remembers."""

    publishers: Mapping[str, PublisherState] = field(default_factory=dict)
    """By publisher id."""
    streams: Mapping[str, StreamState] = field(default_factory=dict)
    """By ``publisher/product/stream``."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form.

        Returns:
            The mapping.
        """
        return {
            "schema": STATE_SCHEMA,
            "publishers": {name: self.publishers[name].to_dict() for name in sorted(self.publishers)},
            "streams": {name: self.streams[name].to_dict() for name in sorted(self.streams)},
        }

    def to_bytes(self) -> bytes:
        """The file's bytes: canonical JSON and a newline.

        Returns:
            UTF-8 bytes.
        """
        return canonical(self.to_dict()) + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, what: str) -> VerifierState:
        """Read a state file's bytes.

        Args:
            data: the bytes.
            what: how to name the file in errors.

        Returns:
            The state.

        Raises:
            ConfigError: not strict JSON, nested too deep, another format, or
                not valid against ``schema/state.schema.json``.
        """
        try:
            value = strictjson.loads(data, what)
        except JSONFormatError as error:
            raise ConfigError(str(error)) from None
        schema = value.get("schema") if isinstance(value, dict) else None
        if isinstance(value, dict) and schema is None and set(value) <= {"serials", "keys"}:
            raise ConfigError(
                f"{what}: a state of sevref before {STATE_SCHEMA} (serials and key chain lengths only); "
                "expected the current format: remove it and verify again to start from the pinned keys"
            )
        if schema != STATE_SCHEMA:
            raise ConfigError(f"{what}: schema is {schema!r}; expected {STATE_SCHEMA!r} (written by a newer sevref?)")
        try:
            check_document("state", value, what)
        except LayoutError as error:
            raise ConfigError(error.diagnostic()) from None
        publishers = {name: PublisherState.from_dict(p, f"{what}: {name}") for name, p in value["publishers"].items()}
        streams = {name: StreamState.from_dict(s) for name, s in value["streams"].items()}
        return cls(publishers, streams)


def check_chain(publisher: str, known: PublisherState | None, seen: PublisherState) -> None:
    """Hold a key chain a run trusted to the chain the state trusted.

    Args:
        publisher: the publisher.
        known: what the state remembers (None: nothing yet).
        seen: what the run trusted: the documents it read, by version and sha256.

    Raises:
        TrustError: ``keys`` for a fork (another document under a trusted
            version), ``rollback`` for a chain that ends before the trusted one.
    """
    if known is None:
        return
    for link in seen.chain:
        remembered = known.sha256(link.version)
        if remembered is not None and not link.matches(remembered):
            raise TrustError(
                Check.KEYS,
                f"fork at version {link.version}: keys/{link.version}.dsse.json signs a document with sha256 "
                f"{link.sha256}; the state trusted {remembered} for publisher {publisher!r} (another chain, written "
                f"with an old key?)",
            )
    if seen.newest < known.newest:
        raise TrustError(
            Check.ROLLBACK,
            f"the newest keys document is keys/{seen.newest}.dsse.json; keys/{known.newest}.dsse.json was "
            "seen before (a newer document, perhaps a revocation, is withheld)",
        )


def check_stream(name: str, known: StreamState | None, seen: StreamState) -> None:
    """Hold a release a run trusted to the newest one the state remembers of its stream.

    Args:
        name: the stream (``publisher/product/stream``).
        known: what the state remembers (None: nothing yet).
        seen: the release the run trusted.

    Raises:
        TrustError: ``rollback`` for a lower serial, or the same serial with another index.
    """
    if known is None:
        return
    if seen.serial < known.serial:
        raise TrustError(Check.ROLLBACK, f"serial {seen.serial} is lower than {known.serial}, the last one seen")
    if seen.serial == known.serial and seen.index_sha256 != known.index_sha256:
        raise TrustError(
            Check.ROLLBACK,
            f"serial {seen.serial} of {name} was trusted with index.json sha256 {known.index_sha256}; this one has "
            f"{seen.index_sha256} (one serial, two releases)",
        )


def check_history(name: str, known: StreamState | None, serial: int, previous: Previous | None) -> str | None:
    """Hold a release's link to the one before (``previous``) to the newest release the state remembers.

    Args:
        name: the stream (``publisher/product/stream``).
        known: what the state remembers (None: nothing yet).
        serial: the release's serial.
        previous: the release it names as its previous, if any.

    Returns:
        None when the link continues what the state trusted (or there is
        nothing to hold it to), else a note of the gap: releases between were
        not seen, or the release names no previous one.

    Raises:
        TrustError: ``history`` when the link names a serial not lower than
            the release's own, names the trusted serial with another index, or
            names an older one (the trusted release is not in its history).
    """
    if previous is not None and previous.serial >= serial:
        raise TrustError(
            Check.HISTORY, f"serial {serial} names serial {previous.serial} as its previous; expected a lower one"
        )
    if known is None or serial <= known.serial:
        return None  # nothing seen, or the same release (check_stream holds the rest)
    if previous is None:
        return (
            f"gap: serial {serial} of {name} names no previous release; serial {known.serial} was the last trusted, "
            "so whether releases between were dropped cannot be told"
        )
    if previous.serial == known.serial and previous.sha256 != known.index_sha256:
        raise TrustError(
            Check.HISTORY,
            f"serial {serial} of {name} names serial {previous.serial} with index.json sha256 {previous.sha256} as its "
            f"previous; the state trusted serial {known.serial} with {known.index_sha256} (another release under "
            "that serial: a forked history)",
        )
    if previous.serial < known.serial:
        raise TrustError(
            Check.HISTORY,
            f"serial {serial} of {name} names serial {previous.serial} as its previous; serial {known.serial}, "
            "trusted before, is not in its history (a release dropped or a forked history)",
        )
    if previous.serial > known.serial:
        return (
            f"gap: serial {serial} of {name} follows serial {previous.serial}; serial {known.serial} was the last "
            f"trusted: {previous.serial - known.serial} release(s) between were not seen"
        )
    return None


def remember(
    state: VerifierState,
    publisher: str,
    chain: PublisherState,
    name: str,
    release: StreamState,
    previous: Previous | None = None,
) -> VerifierState:
    """Merge what a run trusted into a state, after holding it to the state's rules.

    The merge is monotonic: the chain only grows, revocations are never
    forgotten, a serial only rises.

    Args:
        state: the state as it is now (under the file's lock).
        publisher: the publisher.
        chain: the key chain the run trusted.
        name: the stream.
        release: the release the run trusted.
        previous: the release it names as its previous, if any.

    Returns:
        The new state.

    Raises:
        TrustError: the run's chain or release breaks a rule against ``state``.
    """
    known = state.publishers.get(publisher)
    check_chain(publisher, known, chain)
    check_stream(name, state.streams.get(name), release)
    check_history(name, state.streams.get(name), release.serial, previous)
    # The state's older links stay when the run's chain continues them (a run that entered the chain
    # at a later pinned key may start after them; a gap would leave versions that do not follow).
    kept = known.chain if known and chain.chain and chain.chain[0].version <= known.newest + 1 else ()
    links = {link.version: link for link in (*kept, *chain.chain)}
    merged = PublisherState(
        tuple(links[v] for v in sorted(links)),
        chain.active,
        chain.revoked | (known.revoked if known else frozenset()),
    )
    return VerifierState({**state.publishers, publisher: merged}, {**state.streams, name: release})
