"""One HTTP(S) fetcher for the verifier and for build downloads, bounded in size and time by construction.

The model is python-tuf's ngclient fetcher: :class:`Fetcher`, the base class,
enforces every rule, and an implementation only fetches bytes. Its
:meth:`~Fetcher._open` sends one GET and returns an :class:`Answer` whose
:meth:`~Answer.read` gives the body piece by piece; both take ``until``, the
moment (``time.monotonic``) by which they must return or raise
:class:`TimeoutError`. :class:`HttpFetcher` speaks HTTP/1.1 over the
standard library; the tests hold an in-memory one to the same rules
(``tests/test_fetch.py``), as python-tuf's tests do with their simulator.

The rules, the same for ``sevref verify`` (:mod:`sevref.edge.remote`) and for
the downloads of a build (:mod:`sevref.edge.download`):

* **time**: each file must arrive whole within ``timeout`` seconds (name
  resolution, connection, TLS, redirects and every byte included), and every
  file of a run within the run's ``deadline`` (:class:`Bounds`). The base class
  compares the clock with that moment before every request and every piece,
  so a server that drips a byte a second, with or without ``Content-Length``,
  chunked or not, gains nothing; :class:`HttpFetcher` gives every blocking
  socket call the time left as its timeout (its sockets refuse to wait once
  it is spent) and resolves names in a helper thread that it waits for no
  longer than that.
* **length**: the body is read in pieces of at most :data:`CHUNK_BYTES`, to
  the limit and one byte; nothing is reserved from ``Content-Length``.
  :meth:`Fetcher.read` returns those ``limit + 1`` bytes at most (the
  verifier names a file that is too long itself); :meth:`Fetcher.chunks`
  refuses a file larger than the limit, before reading when the server
  announces its size.
* **redirects** (301, 302, 303, 307, 308) are followed at most
  :data:`~sevref.limits.MAX_REDIRECTS` times, only to ``http://`` or
  ``https://`` URLs, never from https down to http (:func:`follow_redirect`).
* **proxies** come from the environment as ``urllib`` reads it
  (``http_proxy``, ``https_proxy``, ``no_proxy``): plain HTTP through the proxy,
  HTTPS through a ``CONNECT`` tunnel, so TLS still ends at the server. The
  proxy itself is spoken to in plain HTTP and without credentials; loopback
  addresses (``localhost``, 127.0.0.0/8, ``::1``) are always reached directly.
* **certificates** are checked against the system's authorities (or
  ``SSL_CERT_FILE``).
* **connections** are kept open (HTTP keep-alive) and used again for the next
  file from the same server, once the previous answer was read whole; a kept
  connection the server has closed meanwhile is replaced once.

Every failure is one :class:`~sevref.errors.FetchError` line naming the URL,
what was found and what was expected; HTTP 404 is a
:class:`~sevref.errors.NotFoundError`.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import http
import http.client
import ipaddress
import math
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from sevref import __version__
from sevref.errors import ConfigError, FetchError, NotFoundError
from sevref.limits import MAX_REDIRECTS

__all__ = [
    "CHUNK_BYTES",
    "Answer",
    "Bounds",
    "Fetcher",
    "HttpFetcher",
    "follow_redirect",
]

CHUNK_BYTES = 64 << 10
"""The most bytes asked of the network at a time."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_LONGEST_WAIT = 86_400.0
"""The longest single socket wait: a socket timeout must fit the operating system's."""
_DRAIN_BYTES = 64 << 10
"""An unread rest of an answer up to this size is read, so that its connection can serve the next file."""
_T = TypeVar("_T")


@dataclass(frozen=True)
class Bounds:
    """The time limits of a fetcher: each file, and the whole run."""

    timeout: float
    """Seconds within which each file must arrive whole."""
    timeout_option: str = "--timeout"
    """The option that sets :attr:`timeout`, named in errors."""
    deadline: float | None = None
    """Seconds within which every file of the run must have arrived (None: no such bound)."""
    deadline_option: str = "--deadline"
    """The option that sets :attr:`deadline`, named in errors."""

    def __post_init__(self) -> None:
        """Refuse limits that are not positive, finite numbers of seconds.

        Raises:
            ConfigError: a limit that is zero, negative, infinite or not a number.
        """
        for option, seconds in ((self.timeout_option, self.timeout), (self.deadline_option, self.deadline)):
            if seconds is not None and not 0 < seconds < math.inf:
                raise ConfigError(f"{option}: expected a positive number of seconds, found {seconds:g}")


class Answer(abc.ABC):
    """One answer of a server to one GET: its head, and its body to read."""

    status: int
    """The HTTP status."""
    location: str | None
    """The ``Location`` header, if any."""
    length: int | None
    """The ``Content-Length`` announced, if any."""

    @abc.abstractmethod
    def read(self, size: int, until: float) -> bytes:
        """The next piece of the body.

        Args:
            size: the most bytes to return.
            until: return or raise by this moment (``time.monotonic``).

        Returns:
            At least one byte, or nothing at the end of the body.

        Raises:
            TimeoutError: ``until`` passed.
            OSError: the body could not be read.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the answer: its connection serves the next file if the body was read whole, else it is closed."""


def follow_redirect(current: str, location: str | None) -> str:
    """Where a redirect leads, if sevref follows it.

    Args:
        current: the URL that answered with a redirect.
        location: its ``Location`` header.

    Returns:
        The absolute URL to ask next.

    Raises:
        FetchError: no Location, a scheme other than http or https (``ftp:``,
            ``file:``...), or a step from https down to http.
    """
    if not location:
        raise FetchError(f"{current}: a redirect without a Location; expected one")
    target = urllib.parse.urljoin(current, location.strip())
    scheme = urllib.parse.urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(f"{current}: redirected to {target}; expected an http:// or https:// URL")
    if urllib.parse.urlsplit(current).scheme.lower() == "https" and scheme == "http":
        raise FetchError(f"{current}: redirected from https down to http ({target}); expected an https:// URL")
    return target


def _describe(error: OSError) -> str:
    """What went wrong, in the operating system's or TLS's words."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, socket.gaierror):
        return f"host name not resolved ({error.strerror})"
    reason = getattr(error, "reason", None) or error.strerror or str(error)
    return str(reason) or type(error).__name__


class Fetcher(abc.ABC):
    """Fetches files by URL, each bounded in size and time: the rules live here, the bytes come from ``_open``.

    A fetcher keeps its connections for the next file; :meth:`close` (or
    leaving a ``with`` block) closes them.
    """

    def __init__(self, bounds: Bounds) -> None:
        """Start the run's clock.

        Args:
            bounds: the time limits.
        """
        self.bounds = bounds
        self._run_end = None if bounds.deadline is None else time.monotonic() + bounds.deadline

    @abc.abstractmethod
    def _open(self, url: str, until: float) -> Answer:
        """Send one GET (no redirect followed) and return the answer's head.

        Args:
            url: an ``http://`` or ``https://`` URL.
            until: return or raise by this moment (``time.monotonic``).

        Returns:
            The answer, its body not read yet.

        Raises:
            TimeoutError: ``until`` passed.
            OSError: no answer (refused, reset, a TLS or protocol error...).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connections kept for the next file."""

    def __enter__(self) -> Fetcher:
        """Use the fetcher in a ``with`` block.

        Returns:
            The fetcher.
        """
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Close the connections."""
        self.close()

    def read(self, url: str, limit: int) -> bytes:
        """A file's first ``limit + 1`` bytes at most: enough for the caller to see it is too large, never more.

        Args:
            url: an ``http://`` or ``https://`` URL.
            limit: the most bytes the caller accepts.

        Returns:
            The body, or its first ``limit + 1`` bytes.

        Raises:
            NotFoundError: HTTP 404.
            FetchError: anything else: another status, a redirect sevref does
                not follow, too many, a body shorter than announced, a
                connection or TLS failure, or a time limit passed.
        """
        return b"".join(self._get(url, limit, strict=False))

    def chunks(self, url: str, limit: int) -> Iterator[bytes]:
        """A file's body, piece by piece, refused beyond ``limit`` bytes.

        Args:
            url: an ``http://`` or ``https://`` URL.
            limit: the most bytes accepted.

        Yields:
            The pieces of the body, at most :data:`CHUNK_BYTES` each.

        Raises:
            NotFoundError: HTTP 404.
            FetchError: as :meth:`read`, and a body (or a ``Content-Length``)
                larger than ``limit``.
        """
        yield from self._get(url, limit, strict=True)

    def _until(self) -> tuple[float, bool]:
        """When the file that starts now must have arrived, and whether the run's deadline is what says so."""
        end = time.monotonic() + self.bounds.timeout
        if self._run_end is not None and self._run_end <= end:
            return self._run_end, True
        return end, False

    def _late(self, url: str, by_run: bool) -> FetchError:
        """The error of a file that did not arrive in time."""
        bounds = self.bounds
        if by_run and bounds.deadline is not None:
            option = bounds.deadline_option
            return FetchError(
                f"{url}: not fetched within the run's deadline of {bounds.deadline:g} s ({option}); "
                f"expected a faster server, or a longer {option}"
            )
        option = bounds.timeout_option
        return FetchError(
            f"{url}: no complete answer within {bounds.timeout:g} s ({option}); "
            f"expected a faster server, or a longer {option}"
        )

    def _guard(self, url: str, until: float, by_run: bool, step: Callable[[], _T]) -> _T:
        """Run one step of a fetch if there is time left, and say its failure in one line."""
        if time.monotonic() >= until:
            raise self._late(url, by_run)
        try:
            return step()
        except TimeoutError:
            raise self._late(url, by_run) from None
        except OSError as error:
            if time.monotonic() >= until:  # a connection cut at the deadline
                raise self._late(url, by_run) from None
            raise FetchError(f"{url}: {_describe(error)}; expected the file") from None

    def _get(self, url: str, limit: int, *, strict: bool) -> Iterator[bytes]:
        """The body of the file at ``url`` (redirects followed), within the limits."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"URL {url}: expected an http:// or https:// URL")
        until, by_run = self._until()
        for _ in range(MAX_REDIRECTS + 1):
            answer = self._guard(url, until, by_run, functools.partial(self._open, url, until))
            try:
                if answer.status in _REDIRECTS:
                    url = follow_redirect(url, answer.location)
                    continue
                if answer.status == 404:
                    raise NotFoundError(f"{url}: HTTP 404 (Not Found); expected 200 OK")
                if answer.status != 200:
                    raise FetchError(f"{url}: HTTP {answer.status} ({_phrase(answer.status)}); expected 200 OK")
                yield from self._body(url, answer, limit, strict, (until, by_run))
                return
            finally:
                answer.close()
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects; expected the file")

    def _body(self, url: str, answer: Answer, limit: int, strict: bool, when: tuple[float, bool]) -> Iterator[bytes]:
        """The pieces of a 200 answer's body: to ``limit + 1`` bytes, or refused beyond ``limit`` (``strict``)."""
        until, by_run = when
        if strict and answer.length is not None and answer.length > limit:
            raise FetchError(f"{url}: {answer.length} bytes (Content-Length); expected at most {limit}")
        received = 0
        while received <= limit:
            size = min(CHUNK_BYTES, limit + 1 - received)
            piece = self._guard(url, until, by_run, functools.partial(answer.read, size, until))
            if not piece:
                break
            received += len(piece)
            if strict and received > limit:
                raise FetchError(f"{url}: more than {limit} bytes; expected at most {limit}")
            yield piece
        else:
            return  # limit + 1 bytes: the caller sees the file is too large
        if time.monotonic() >= until:  # a connection cut at the deadline ends like a short file
            raise self._late(url, by_run)
        if answer.length is not None and received != answer.length:
            raise FetchError(f"{url}: {received} bytes arrived; expected {answer.length} (Content-Length)")


def _phrase(status: int) -> str:
    """The standard phrase of an HTTP status (never the server's own words, which could be anything)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "an unknown status"


# --------------------------------------------------------------------------- HTTP/1.1 on the standard library


def _bound(sock: _BoundedSocket | _BoundedSSLSocket) -> None:
    """Set a socket's timeout to the time left before its ``until``; raise TimeoutError when none is."""
    left = sock.until - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    sock.settimeout(min(left, _LONGEST_WAIT))


class _BoundedSocket(socket.socket):
    """A socket whose every blocking call waits only for the time left before :attr:`until`."""

    until = math.inf
    """The moment (``time.monotonic``) after which the socket refuses to wait."""

    def connect(self, address: Any) -> None:
        """Connect within the time left."""
        _bound(self)
        super().connect(address)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receive within the time left (http.client reads through this)."""
        _bound(self)
        return super().recv_into(buffer, nbytes, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send within the time left."""
        _bound(self)
        super().sendall(data, flags)


class _BoundedSSLSocket(ssl.SSLSocket):
    """A TLS socket whose every blocking call (handshake included) waits only for the time left."""

    until = math.inf
    """The moment (``time.monotonic``) after which the socket refuses to wait."""

    def do_handshake(self, block: bool = False) -> None:
        """Shake hands within the time left."""
        _bound(self)
        super().do_handshake(block)

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        """Receive within the time left (http.client reads through this)."""
        _bound(self)
        return super().recv_into(buffer, nbytes, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        """Send within the time left (``sendall`` sends through this)."""
        _bound(self)
        return super().send(data, flags)


def _resolve(host: str, port: int, until: float) -> list[Any]:
    """``getaddrinfo`` within the time left: in a helper thread, waited for no longer than that.

    A resolver cannot be interrupted; one that hangs is left behind (a daemon
    thread), and the fetch fails at its deadline.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # a literal address: nothing to wait for
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    found: list[Any] = []
    failed: list[OSError] = []

    def resolve() -> None:
        """Ask the system's resolver."""
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as error:
            failed.append(error)
        except ValueError as error:  # a name IDNA refuses, a NUL in it
            failed.append(OSError(f"host name {host!r} is not valid ({error})"))

    helper = threading.Thread(target=resolve, name=f"sevref-resolve-{host}", daemon=True)
    helper.start()
    helper.join(min(max(0.0, until - time.monotonic()), _LONGEST_WAIT))
    if helper.is_alive():
        raise TimeoutError(f"resolving {host} timed out")
    if failed:
        raise failed[0]
    return found


def _connect(host: str, port: int, until: float) -> _BoundedSocket:
    """A TCP connection to the first address of ``host`` that answers, within the time left."""
    last: OSError = OSError(f"no address for {host}")
    for family, kind, protocol, _, address in _resolve(host, port, until):
        sock = _BoundedSocket(family, kind, protocol)
        sock.until = until
        try:
            sock.connect(address)
        except TimeoutError:
            sock.close()
            raise
        except OSError as error:
            sock.close()
            last = error
            continue
        return sock
    raise last


class _Connection(http.client.HTTPConnection):
    """An HTTP/1.1 connection whose sockets are bounded in time, and which keeps its own reference to them.

    http.client hands the socket to the answer and forgets it when the answer
    will close the connection; :attr:`bounded` still holds it, so the time
    limit reaches every read however the server frames its answer.
    """

    _create_connection: Callable[..., socket.socket]

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, server_name: str, route: _Route) -> None:
        super().__init__(host, port)
        self._create_connection = self._bounded_connection
        self._tls, self._server_name = tls, server_name
        self.absolute = route.absolute
        """Requests name the whole URL (plain HTTP through a proxy), not only its path."""
        self._until = math.inf
        self.bounded: _BoundedSocket | _BoundedSSLSocket | None = None
        if route.tunnel is not None:
            self.set_tunnel(*route.tunnel)

    def bind(self, until: float) -> None:
        """Bound every wait of this connection, from now on, by ``until``.

        Args:
            until: the moment (``time.monotonic``) the current file must have arrived by.
        """
        self._until = until
        if self.bounded is not None:
            self.bounded.until = until

    def _bounded_connection(self, address: tuple[str, int], *_: Any) -> socket.socket:
        sock = _connect(address[0], address[1], self._until)
        self.bounded = sock
        return sock

    def connect(self) -> None:
        """Connect (through the proxy's tunnel, if any), then shake hands over TLS for https."""
        super().connect()
        if self._tls is None or not isinstance(self.bounded, _BoundedSocket):
            return
        _bound(self.bounded)
        secure = self._tls.wrap_socket(self.bounded, server_hostname=self._server_name, do_handshake_on_connect=False)
        if not isinstance(secure, _BoundedSSLSocket):  # pragma: no cover - HttpFetcher sets the class
            raise TypeError(f"expected a bounded TLS socket, found {type(secure).__name__}")
        secure.until = self._until
        self.bounded = self.sock = secure
        secure.do_handshake()

    def close(self) -> None:
        """Close the connection and the socket it kept a reference to."""
        super().close()
        if self.bounded is not None:
            self.bounded.close()
            self.bounded = None


@dataclass(frozen=True)
class _Route:
    """How a connection reaches its server: directly, or through a proxy."""

    absolute: bool = False
    """Plain HTTP through a proxy: each request names the whole URL."""
    tunnel: tuple[str, int] | None = None
    """HTTPS through a proxy: the server a ``CONNECT`` tunnel leads to."""


def _loopback(host: str) -> bool:
    """Whether a host is this machine: never reached through a proxy."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _protocol_error(error: Exception) -> OSError:
    """An http.client or URL error as the OSError the base class expects."""
    if isinstance(error, OSError):
        return error
    words = str(error) or type(error).__name__
    return OSError(f"{type(error).__name__}: {words}" if isinstance(error, http.client.HTTPException) else words)


class _HttpAnswer(Answer):
    """An http.client response, read within the file's time, whose connection goes back to the pool when done."""

    def __init__(
        self,
        fetcher: HttpFetcher,
        key: tuple[str, str, int],
        connection: _Connection,
        response: http.client.HTTPResponse,
    ) -> None:
        self.status, self.location = response.status, response.getheader("Location")
        self.length = None if response.chunked else response.length
        self._fetcher, self._key, self._connection, self._response = fetcher, key, connection, response

    def read(self, size: int, until: float) -> bytes:
        """The next piece (see :meth:`Answer.read`).

        Args:
            size: the most bytes to return.
            until: every socket wait ends by this moment.

        Returns:
            The piece, or nothing at the end (a short body ends early too: the base class compares the sizes).

        Raises:
            OSError: the body could not be read.
        """
        self._connection.bind(until)
        try:
            return self._response.read1(size)  # a body shorter than its Content-Length ends early, no error
        except http.client.IncompleteRead:  # a chunked body cut before its last chunk
            raise OSError("the connection closed before the last chunk of the body") from None
        except (http.client.HTTPException, ValueError) as error:
            raise _protocol_error(error) from None

    def close(self) -> None:
        """Keep the connection for the next file when the answer was read whole; else close it."""
        response, connection = self._response, self._connection
        if not response.isclosed() and response.length is not None and response.length <= _DRAIN_BYTES:
            # A redirect's or an error's short body: read it (in the file's time), so the connection serves again.
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                response.read()
        whole = response.isclosed() and not response.length  # a short body closes the answer too, length left
        if whole and not response.will_close and connection.sock is not None:
            self._fetcher.keep(self._key, connection)
            return
        response.close()
        connection.close()


class HttpFetcher(Fetcher):
    """HTTP/1.1 on the standard library (http.client, ssl): connections kept open, every wait bounded."""

    def __init__(self, bounds: Bounds, context: ssl.SSLContext | None = None) -> None:
        """Read the proxy settings; no connection is opened yet.

        Args:
            bounds: the time limits.
            context: the TLS context (default: the system's authorities, or ``SSL_CERT_FILE``).
        """
        super().__init__(bounds)
        self._given = context
        self._context: ssl.SSLContext | None = None
        self._proxies = urllib.request.getproxies()
        self._idle: dict[tuple[str, str, int], _Connection] = {}

    def keep(self, key: tuple[str, str, int], connection: _Connection) -> None:
        """Keep a connection whose answer was read whole, for the next file from the same server.

        Args:
            key: (scheme, host, port) of the server.
            connection: the connection.
        """
        previous = self._idle.pop(key, None)
        if previous is not None:
            previous.close()
        self._idle[key] = connection

    def close(self) -> None:
        """Close the connections kept for the next file."""
        while self._idle:
            self._idle.popitem()[1].close()

    def _tls(self) -> ssl.SSLContext:
        """The TLS context, made when the first https URL is asked for (loading the authorities takes time)."""
        if self._context is None:
            self._context = self._given if self._given is not None else ssl.create_default_context()
            self._context.sslsocket_class = _BoundedSSLSocket
        return self._context

    def _connection(self, parts: urllib.parse.SplitResult, port: int) -> _Connection:
        """A new connection for a URL, through a proxy if the environment names one."""
        host = parts.hostname or ""
        tls = self._tls() if parts.scheme == "https" else None
        proxy = self._proxies.get(parts.scheme)
        if not proxy or _loopback(host) or urllib.request.proxy_bypass(host):
            return _Connection(host, port, tls, host, _Route())
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        route = _Route(absolute=True) if tls is None else _Route(tunnel=(host, port))
        return _Connection(via.hostname or "", via.port or 80, tls, host, route)

    def _open(self, url: str, until: float) -> Answer:
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            key = (parts.scheme, (parts.hostname or "").lower(), port)
            kept = self._idle.pop(key, None)
            if kept is not None:
                try:
                    return self._exchange(kept, key, url, until)
                except ConnectionError:
                    pass  # the server closed the kept connection meanwhile: once more on a new one
            return self._exchange(self._connection(parts, port), key, url, until)
        except (http.client.HTTPException, ValueError) as error:  # ValueError: a port that is no number...
            raise _protocol_error(error) from None

    def _exchange(self, connection: _Connection, key: tuple[str, str, int], url: str, until: float) -> Answer:
        """Send the GET on a connection and read the answer's head; the connection is closed if that fails."""
        parts = urllib.parse.urlsplit(url)
        target = url if connection.absolute else urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        headers = {"User-Agent": f"sevref/{__version__}", "Accept-Encoding": "identity"}
        connection.bind(until)
        try:
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        return _HttpAnswer(self, key, connection, response)
