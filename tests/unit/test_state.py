"""sevref.state: the format of the verifier's memory and the rules that keep it from going backwards."""

from __future__ import annotations

import pytest

from sevref.errors import Check, ConfigError, TrustError
from sevref.records import Previous
from sevref.state import (
    STATE_SCHEMA,
    ChainLink,
    PublisherState,
    StreamState,
    TrustedKey,
    VerifierState,
    check_chain,
    check_history,
    check_stream,
    remember,
)

SHA = ["0" * 63 + str(n) for n in range(10)]
KEY = TrustedKey("a" * 64, "ed25519", "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n", ("release",))


def chain(*versions: int, fork: int | None = None, revoked: frozenset[str] = frozenset()) -> PublisherState:
    links = tuple(ChainLink(v, SHA[v] if v != fork else "f" * 64) for v in versions)
    return PublisherState(links, (KEY,), revoked)


def test_the_state_round_trips_through_its_schema() -> None:
    state = VerifierState({"p": chain(2, 3, revoked=frozenset({"b" * 64}))}, {"p/q/r": StreamState(4, SHA[1])})
    data = state.to_bytes()
    assert data.endswith(b"}\n") and b'"schema":"urn:sevref:schema:state:1"' in data
    assert VerifierState.from_bytes(data, "state") == state
    assert VerifierState.from_bytes(VerifierState().to_bytes(), "state") == VerifierState()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"serials": {}, "keys": {}}', "a state of sevref before"),
        (b'{"schema": "urn:sevref:schema:state:9", "publishers": {}, "streams": {}}', "written by a newer sevref"),
        (b"[]", "schema is None"),
        (
            b'{"schema": "'
            + STATE_SCHEMA.encode()
            + b'", "publishers": {}, "streams": {"x": {"serial": 1, "index_sha256": "'
            + SHA[0].encode()
            + b'"}}}',
            "/streams: expected text matching ^[a-z0-9]",
        ),
        (
            b'{"schema": "'
            + STATE_SCHEMA.encode()
            + b'", "publishers": {"p": {"chain": [{"version": 1, "sha256": "'
            + SHA[1].encode()
            + b'"}, {"version": 3, "sha256": "'
            + SHA[3].encode()
            + b'"}], "active": [], "revoked": []}}, "streams": {}}',
            "chain version 3 follows 1; expected consecutive versions",
        ),
        (b'{"schema": "' + STATE_SCHEMA.encode() + b'", "extra": 1, "publishers": {}, "streams": {}}', "extra"),
    ],
)
def test_a_damaged_state_is_named(data: bytes, problem: str) -> None:
    with pytest.raises(ConfigError, match="^state file s: ") as raised:
        VerifierState.from_bytes(data, "state file s")
    assert problem in str(raised.value)


def test_a_fork_is_another_document_under_a_trusted_version() -> None:
    check_chain("p", None, chain(1, 2, fork=2))  # nothing remembered: nothing to hold it to
    check_chain("p", chain(1, 2), chain(1, 2, 3))
    check_chain("p", chain(2, 3), chain(2, 3))
    with pytest.raises(
        TrustError, match="^not trusted: keys: fork at version 2: keys/2.dsse.json signs a document with sha256 f{64}; "
    ):
        check_chain("p", chain(1, 2, 3), chain(1, 2, fork=2))


def test_a_shorter_chain_withholds_a_document() -> None:
    with pytest.raises(TrustError, match="not trusted: rollback: the newest keys document is keys/2.dsse.json; keys/3"):
        check_chain("p", chain(1, 2, 3), chain(1, 2))
    with pytest.raises(TrustError, match="not trusted: rollback: the newest keys document is keys/0.dsse.json"):
        check_chain("p", chain(1), PublisherState((), ()))


def test_serials_only_rise_and_name_one_release() -> None:
    check_stream("s", None, StreamState(1, SHA[1]))
    check_stream("s", StreamState(2, SHA[2]), StreamState(2, SHA[2]))
    check_stream("s", StreamState(2, SHA[2]), StreamState(3, SHA[3]))
    with pytest.raises(TrustError, match="^not trusted: rollback: serial 1 is lower than 2, the last one seen$"):
        check_stream("s", StreamState(2, SHA[2]), StreamState(1, SHA[1]))
    with pytest.raises(TrustError, match="^not trusted: rollback: serial 2 of s was trusted with index.json sha256"):
        check_stream("s", StreamState(2, SHA[2]), StreamState(2, SHA[3]))


def test_remember_merges_monotonically() -> None:
    state = remember(VerifierState(), "p", chain(1, 2), "p/q/r", StreamState(3, SHA[3]))
    # A run that entered the chain later (a newer pinned key) keeps what was remembered before it.
    state = remember(state, "p", chain(2, 3, revoked=frozenset({"b" * 64})), "p/q/r", StreamState(4, SHA[4]))
    assert [link.version for link in state.publishers["p"].chain] == [1, 2, 3]
    assert state.publishers["p"].revoked == {"b" * 64}
    # Revocations are never forgotten, even when a later document no longer lists the key.
    state = remember(state, "p", chain(1, 2, 3, 4), "p/q/r", StreamState(4, SHA[4]))
    assert state.publishers["p"].revoked == {"b" * 64} and state.publishers["p"].newest == 4
    # A run whose chain starts after a gap does not leave versions that do not follow.
    state = remember(state, "other", chain(1), "other/q/r", StreamState(1, SHA[1]))
    state = remember(state, "other", chain(5, 6), "other/q/r", StreamState(1, SHA[1]))
    assert [link.version for link in state.publishers["other"].chain] == [5, 6]
    assert VerifierState.from_bytes(state.to_bytes(), "state") == state
    with pytest.raises(TrustError, match="rollback: serial 3 is lower than 4"):
        remember(state, "p", chain(1, 2, 3, 4), "p/q/r", StreamState(3, SHA[3]))
    with pytest.raises(TrustError, match="keys: fork at version 4"):
        remember(state, "p", chain(1, 2, 3, 4, fork=4), "p/q/r", StreamState(5, SHA[5]))


KNOWN = StreamState(5, "5" * 64)


@pytest.mark.parametrize(
    ("serial", "previous", "gap"),
    [
        (6, Previous(5, "5" * 64), None),  # the next release, linked to the one trusted
        (9, Previous(5, "5" * 64), None),  # a later one, linked to it all the same
        (5, None, None),  # the same release again: check_stream's business
        (6, None, "gap: serial 6 of a/b/c names no previous release"),
        (8, Previous(7, "7" * 64), "gap: serial 8 of a/b/c follows serial 7; serial 5 was the last trusted: 2"),
    ],
)
def test_history_allows_a_link_to_the_trusted_release_and_reports_gaps(
    serial: int, previous: Previous | None, gap: str | None
) -> None:
    found = check_history("a/b/c", KNOWN, serial, previous)
    assert (found is None) == (gap is None)
    assert gap is None or (found is not None and found.startswith(gap))
    assert check_history("a/b/c", None, serial, previous) is None  # nothing trusted: nothing to hold it to


@pytest.mark.parametrize(
    ("serial", "previous", "message"),
    [
        (6, Previous(5, "6" * 64), "names serial 5 with index.json sha256 666"),
        (6, Previous(4, "4" * 64), "serial 5, trusted before, is not in its history"),
        (9, Previous(3, "3" * 64), "serial 5, trusted before, is not in its history"),
        (6, Previous(6, "6" * 64), "names serial 6 as its previous; expected a lower one"),
    ],
)
def test_history_refuses_a_link_that_drops_or_forks_the_trusted_release(
    serial: int, previous: Previous, message: str
) -> None:
    with pytest.raises(TrustError) as raised:
        check_history("a/b/c", KNOWN, serial, previous)
    assert raised.value.check is Check.HISTORY and message in str(raised.value)


def test_remember_holds_the_link_under_the_lock_too() -> None:
    state = remember(VerifierState(), "a", chain(1), "a/b/c", KNOWN)
    with pytest.raises(TrustError) as raised:
        remember(state, "a", chain(1), "a/b/c", StreamState(6, "6" * 64), Previous(5, "0" * 64))
    assert raised.value.check is Check.HISTORY
    after = remember(state, "a", chain(1), "a/b/c", StreamState(6, "6" * 64), Previous(5, "5" * 64))
    assert after.streams["a/b/c"] == StreamState(6, "6" * 64)
