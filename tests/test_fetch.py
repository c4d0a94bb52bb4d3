"""The one fetcher of the verifier and of build downloads (``sevref/edge/fetch.py``).

One table of scripted answers runs against both implementations: the real one
(``HttpFetcher``, against a local server on 127.0.0.1 that plays each script
byte for byte) and the in-memory one (``MemoryFetcher``, defined here: it
only fetches bytes, as python-tuf's test simulator does): the base class holds
both to the same rules of length, time, status and redirects. Then what only
the real one does: connections kept, name resolution within the time limit,
proxies; and the command line's refusal of time limits that mean nothing.

Every server here stops by itself: each script is short (a drip lasts a few
seconds at most), and its thread ends when the client is gone.
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sevref._cli import main
from sevref.edge.download import download
from sevref.edge.fetch import CHUNK_BYTES, Answer, Bounds, Fetcher, HttpFetcher
from sevref.errors import ConfigError, FetchError, NotFoundError

# --------------------------------------------------------------------------- the in-memory fetcher


@dataclass(frozen=True)
class Scripted:
    """One answer as a test scripts it: for :class:`MemoryFetcher`, and for a test server that plays it."""

    body: bytes = b""
    """The body."""
    status: int = 200
    """The HTTP status."""
    location: str | None = None
    """The ``Location`` header (a redirect's target)."""
    announce: bool = True
    """Send ``Content-Length`` (else the body ends when the connection does, or with its last chunk)."""
    claimed: int | None = None
    """The ``Content-Length`` to announce instead of the body's true size (a lie)."""
    chunked: bool = False
    """Send the body in HTTP chunks, one a piece (a test server only: in memory, it changes nothing)."""
    delay: float = 0.0
    """Seconds before the answer's head."""
    pause: float = 0.0
    """Seconds before each piece of the body."""
    piece: int = CHUNK_BYTES
    """Bytes a piece."""

    def content_length(self) -> int | None:
        """The ``Content-Length`` announced.

        Returns:
            The size, or None when none is announced.
        """
        if not self.announce or self.chunked:
            return None
        return len(self.body) if self.claimed is None else self.claimed


def _wait(seconds: float, until: float) -> None:
    """Sleep ``seconds``, as a slow server makes a reader wait, but raise TimeoutError at ``until``."""
    if seconds <= 0:
        return
    left = until - time.monotonic()
    if seconds >= left:
        time.sleep(max(left, 0))
        raise TimeoutError("timed out")
    time.sleep(seconds)


class _MemoryAnswer(Answer):
    """A scripted answer, read as a socket would give it."""

    def __init__(self, script: Scripted) -> None:
        self.status, self.location, self.length = script.status, script.location, script.content_length()
        self._script = script
        # What a client reads: never beyond an announced length (a longer body is the next answer's garbage).
        self._body = script.body if self.length is None else script.body[: self.length]
        self._at = 0

    def read(self, size: int, until: float) -> bytes:
        """The next piece, after the script's pause (see :meth:`Answer.read`).

        Args:
            size: the most bytes to return.
            until: raise TimeoutError rather than wait past this moment.

        Returns:
            The piece, or nothing at the end.
        """
        if self._at >= len(self._body):
            return b""
        _wait(self._script.pause, until)
        piece = self._body[self._at : self._at + min(size, self._script.piece)]
        self._at += len(piece)
        return piece

    def close(self) -> None:
        """Nothing to release."""


class MemoryFetcher(Fetcher):
    """A fetcher of scripted answers, by URL, held to the same rules as the real one."""

    def __init__(self, answers: Mapping[str, Scripted], bounds: Bounds) -> None:
        """Take the script.

        Args:
            answers: the answer to each URL; any other URL is refused as by a host where nothing listens.
            bounds: the time limits.
        """
        super().__init__(bounds)
        self.answers = answers

    def _open(self, url: str, until: float) -> Answer:
        script = self.answers.get(url)
        if script is None:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        _wait(script.delay, until)
        return _MemoryAnswer(script)

    def close(self) -> None:
        """Nothing to close: no connection is kept."""


# --------------------------------------------------------------------------- one table, both fetchers


MEMORY = "http://memory.test"
"""Where the in-memory fetcher's answers live."""
DRIP = b"x" * 60
"""A body a drip sends a byte at a time: 6 s at 0.1 s a byte, far past any timeout here."""


@dataclass(frozen=True)
class Case:
    """One row of the table: the answers by path, what is asked of ``/f``, and what comes of it."""

    answers: dict[str, Scripted]
    """The server's script, by path."""
    expected: bytes | str
    """The body returned, or the error's text after ``<url>: `` (the URL is the one that failed)."""
    limit: int = 1000
    """The most bytes accepted."""
    strict: bool = False
    """Ask with ``chunks`` (refuse beyond the limit) rather than ``read`` (the limit and one byte)."""
    error: type[FetchError] = FetchError
    """The error expected, when ``expected`` is one."""
    failing: str = "/f"
    """The path of the URL the error names."""
    timeout: float = 5.0
    """The per-file time limit."""


LATE = "no complete answer within 0.5 s (--timeout); expected a faster server, or a longer --timeout"

CASES: dict[str, Case] = {
    "a whole body": Case({"/f": Scripted(b"x" * 100)}, b"x" * 100),
    "the limit and one byte": Case({"/f": Scripted(b"x" * 5000)}, b"x" * 11, limit=10),
    "the limit and one byte, unannounced": Case({"/f": Scripted(b"x" * 5000, announce=False)}, b"x" * 11, limit=10),
    "the limit and one byte, chunked": Case({"/f": Scripted(b"x" * 5000, chunked=True, piece=3)}, b"x" * 11, limit=10),
    "a chunked body": Case({"/f": Scripted(b"abc" * 100, chunked=True, piece=7)}, b"abc" * 100),
    "too long": Case(
        {"/f": Scripted(b"x" * 5000)}, "5000 bytes (Content-Length); expected at most 10", limit=10, strict=True
    ),
    "too long, unannounced": Case(
        {"/f": Scripted(b"x" * 5000, announce=False)}, "more than 10 bytes; expected at most 10", limit=10, strict=True
    ),
    "announced too long": Case(
        {"/f": Scripted(b"x" * 10, claimed=10**9)},
        "1000000000 bytes (Content-Length); expected at most 100",
        limit=100,
        strict=True,
    ),
    "shorter than announced": Case(
        {"/f": Scripted(b"x" * 10, claimed=20)}, "10 bytes arrived; expected 20 (Content-Length)"
    ),
    "a lie no memory is reserved for": Case(
        {"/f": Scripted(b"x" * 10, claimed=10**9)}, "10 bytes arrived; expected 1000000000 (Content-Length)"
    ),
    "a 404": Case({"/f": Scripted(b"gone", status=404)}, "HTTP 404 (Not Found); expected 200 OK", error=NotFoundError),
    "a 503": Case({"/f": Scripted(status=503)}, "HTTP 503 (Service Unavailable); expected 200 OK"),
    "redirects": Case(
        {
            "/f": Scripted(b"moved", status=302, location="/g"),
            "/g": Scripted(status=301, location="/h"),
            "/h": Scripted(b"here"),
        },
        b"here",
    ),
    "a redirect to ftp": Case(
        {"/f": Scripted(status=302, location="ftp://example.org/f")},
        "redirected to ftp://example.org/f; expected an http:// or https:// URL",
    ),
    "a redirect without a Location": Case({"/f": Scripted(status=307)}, "a redirect without a Location; expected one"),
    "a redirect loop": Case({"/f": Scripted(status=302, location="/f")}, "more than 5 redirects; expected the file"),
    "a 404 after a redirect": Case(
        {"/f": Scripted(status=308, location="/g"), "/g": Scripted(b"not here", status=404)},
        "HTTP 404 (Not Found); expected 200 OK",
        error=NotFoundError,
        failing="/g",
    ),
    "a drip": Case({"/f": Scripted(DRIP, pause=0.1, piece=1)}, LATE, timeout=0.5),
    "a drip, unannounced": Case({"/f": Scripted(DRIP, announce=False, pause=0.1, piece=1)}, LATE, timeout=0.5),
    "a drip, chunked": Case({"/f": Scripted(DRIP, chunked=True, pause=0.1, piece=1)}, LATE, timeout=0.5),
    "a drip, chunked, while refusing beyond the limit": Case(
        {"/f": Scripted(DRIP, chunked=True, pause=0.1, piece=1)}, LATE, strict=True, timeout=0.5
    ),
    "a slow head": Case({"/f": Scripted(b"x", delay=2.0)}, LATE, timeout=0.5),
    "redirects that are each in time, but not all": Case(
        {
            "/f": Scripted(status=302, location="/g", delay=0.3),
            "/g": Scripted(status=302, location="/h", delay=0.3),
            "/h": Scripted(b"late"),
        },
        LATE,
        failing="/g",
        timeout=0.5,
    ),
}


class Player(http.server.BaseHTTPRequestHandler):
    """Plays the server's script for each path, byte for byte."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Stage

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""

    def do_GET(self) -> None:  # the name http.server calls
        self.server.requests.append(self.path)
        script = self.server.answers.get(self.path.split("?")[0], Scripted(b"nothing here", status=404))
        time.sleep(script.delay)
        self.send_response(script.status)
        if script.location is not None:
            self.send_header("Location", script.location)
        length = script.content_length()
        if script.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            self.send_header("Content-Length", str(length))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        if (length is None and not script.chunked) or (length is not None and length != len(script.body)):
            self.close_connection = True  # the body ends with the connection (or a lie is cut short)
        try:
            for start in range(0, len(script.body), script.piece):
                time.sleep(script.pause)
                piece = script.body[start : start + script.piece]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if script.chunked else piece)
            if script.chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the client gave up: as it should
        if self.server.close_after:
            self.close_connection = True


class Stage(http.server.ThreadingHTTPServer):
    """A server on 127.0.0.1 that plays scripts and counts the connections it accepts."""

    daemon_threads = True

    def __init__(self, answers: dict[str, Scripted]) -> None:
        super().__init__(("127.0.0.1", 0), Player)
        self.answers = answers
        self.accepted = 0
        self.requests: list[str] = []
        self.close_after = False
        """Close each connection after one answer, without saying so (``Connection: close``)."""

    def get_request(self) -> tuple[Any, Any]:
        """Accept a connection, and count it."""
        self.accepted += 1
        return super().get_request()


@pytest.fixture()
def stage() -> Iterator[Stage]:
    """A server whose script each test sets (``stage.answers``)."""
    server = Stage({})
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)  # a quick shutdown
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _base(stage: Stage) -> str:
    return f"http://127.0.0.1:{stage.server_address[1]}"


@dataclass(frozen=True)
class Setting:
    """A fetcher of either kind, made for a script: its base URL and how to make it."""

    base: str
    make: Callable[[Bounds], Fetcher]


def _setting(kind: str, stage: Stage, answers: dict[str, Scripted]) -> Setting:
    if kind == "memory":
        by_url = {MEMORY + path: script for path, script in answers.items()}
        return Setting(MEMORY, lambda bounds: MemoryFetcher(by_url, bounds))
    stage.answers = answers
    return Setting(_base(stage), HttpFetcher)


def _ask(fetcher: Fetcher, url: str, limit: int, strict: bool) -> bytes:
    return b"".join(fetcher.chunks(url, limit)) if strict else fetcher.read(url, limit)


ROWS = [pytest.param(name, marks=pytest.mark.slow) if CASES[name].expected == LATE else name for name in sorted(CASES)]
"""The rows, those that wait for a time limit marked slow (half a second each)."""


@pytest.mark.parametrize("kind", ["memory", "http"])
@pytest.mark.parametrize("name", ROWS)
def test_both_fetchers_keep_the_same_rules(name: str, kind: str, stage: Stage) -> None:
    case = CASES[name]
    setting = _setting(kind, stage, case.answers)
    with setting.make(Bounds(case.timeout)) as fetcher:
        started = time.monotonic()
        if isinstance(case.expected, bytes):
            assert _ask(fetcher, setting.base + "/f", case.limit, case.strict) == case.expected
            return
        with pytest.raises(case.error) as raised:
            _ask(fetcher, setting.base + "/f", case.limit, case.strict)
        took = time.monotonic() - started
    assert str(raised.value) == f"{setting.base}{case.failing}: {case.expected}"
    if case.expected == LATE:  # ended at the time limit: not before, and not long after
        assert case.timeout <= took < case.timeout + 2, took


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["memory", "http"])
def test_a_run_that_answers_each_file_in_time_ends_at_its_deadline(kind: str, stage: Stage) -> None:
    answers = {f"/{name}": Scripted(name.encode(), delay=0.4) for name in "abc"}
    setting = _setting(kind, stage, answers)
    started = time.monotonic()  # the run's clock starts when its fetcher is made
    with setting.make(Bounds(1.0, deadline=1.0)) as fetcher:
        assert fetcher.read(setting.base + "/a", 10) == b"a"
        assert fetcher.read(setting.base + "/b", 10) == b"b"
        with pytest.raises(FetchError) as raised:
            fetcher.read(setting.base + "/c", 10)
        took = time.monotonic() - started
    assert str(raised.value) == (
        f"{setting.base}/c: not fetched within the run's deadline of 1 s (--deadline); "
        "expected a faster server, or a longer --deadline"
    )
    assert 1.0 <= took < 3.0, took


@pytest.mark.parametrize(
    ("timeout", "deadline", "message"),
    [
        (float("inf"), None, "--timeout: expected a positive number of seconds, found inf"),
        (float("nan"), None, "--timeout: expected a positive number of seconds, found nan"),
        (0.0, None, "--timeout: expected a positive number of seconds, found 0"),
        (1.0, -1.0, "--deadline: expected a positive number of seconds, found -1"),
        (1.0, float("inf"), "--deadline: expected a positive number of seconds, found inf"),
    ],
)
def test_bounds_that_mean_nothing_are_refused(timeout: float, deadline: float | None, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Bounds(timeout, deadline=deadline)
    assert str(raised.value) == message


# --------------------------------------------------------------------------- what only the real one does


def test_connections_are_kept_for_the_next_file(stage: Stage) -> None:
    stage.answers = {
        "/a": Scripted(b"a" * 100_000),
        "/moved": Scripted(b"see /a", status=301, location="/a"),
        "/chunked": Scripted(b"c" * 1000, chunked=True, piece=100),
    }
    base = _base(stage)
    with HttpFetcher(Bounds(5)) as fetcher:
        for _ in range(10):
            assert fetcher.read(f"{base}/a", 1 << 20) == b"a" * 100_000
            assert fetcher.read(f"{base}/moved", 1 << 20) == b"a" * 100_000
            assert fetcher.read(f"{base}/chunked", 1 << 20) == b"c" * 1000
            with pytest.raises(NotFoundError):
                fetcher.read(f"{base}/missing", 1 << 20)
    assert (stage.accepted, len(stage.requests)) == (1, 50)


def test_a_kept_connection_the_server_closed_is_replaced(stage: Stage) -> None:
    # No "Connection: close": the client keeps the connection, which the server then closes.
    stage.answers = {"/once": Scripted(b"x" * 10, claimed=10)}
    base = _base(stage)
    stage.close_after = True
    with HttpFetcher(Bounds(5)) as fetcher:
        assert [fetcher.read(f"{base}/once", 100) for _ in range(3)] == [b"x" * 10] * 3
    assert stage.accepted == 3


@pytest.mark.slow
def test_name_resolution_counts_against_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve = socket.getaddrinfo

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "slow.invalid":
            time.sleep(3)  # a resolver that does not answer (the helper thread ends after this)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    started = time.monotonic()
    with HttpFetcher(Bounds(0.5)) as fetcher, pytest.raises(FetchError) as raised:
        fetcher.read("http://slow.invalid/index.dsse.json", 10)
    assert str(raised.value) == f"http://slow.invalid/index.dsse.json: {LATE}"
    assert time.monotonic() - started < 2.0


def test_both_sides_go_through_the_environments_proxy(
    stage: Stage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The proxy is the stage: it is asked for the whole URL (absolute form) and answers itself.
    body = b"through the proxy"
    stage.answers = {"http://sevref.invalid/f": Scripted(body)}
    monkeypatch.setenv("http_proxy", _base(stage))
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with HttpFetcher(Bounds(5)) as fetcher:
        assert fetcher.read("http://sevref.invalid/f", 100) == body
    pinned = download("http://sevref.invalid/f", hashlib.sha256(body).digest(), limit=100, cache=tmp_path, seconds=5)
    assert pinned.read_bytes() == body
    assert stage.requests == ["http://sevref.invalid/f"] * 2
    # Loopback addresses are never proxied: this request goes to the stage as an ordinary one.
    stage.answers = {"/g": Scripted(b"direct")}
    with HttpFetcher(Bounds(5)) as fetcher:
        assert fetcher.read(f"{_base(stage)}/g", 100) == b"direct"
    assert stage.requests[-1] == "/g"


# --------------------------------------------------------------------------- the command line


TRUST = ["--publication", "http://127.0.0.1:9/", "--trusted-key", "k.pub", "--publisher", "p"]
TRUST += ["--product", "q", "--stream", "s"]


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["verify", *TRUST], "--timeout"),
        (["verify", *TRUST], "--deadline"),
        (["export", "--format", "trustee", *TRUST], "--timeout"),
        (["export", "--format", "trustee", *TRUST], "--deadline"),
        (["validate", "m.yaml"], "--download-timeout"),
    ],
)
def test_time_limits_that_mean_nothing_are_one_line_usage_errors(
    command: list[str], option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main([*command, option, value], out=io.StringIO())
    err = capsys.readouterr().err
    assert (status, err) == (2, f"sevref: error: {option}: expected a positive number of seconds, found {value}\n")
