"""Reading a publication: from a folder, a ``file://`` URL, or over HTTP(S), each file bounded in size and time.

A reader takes a path relative to the publication's root and the most bytes
the verifier will read of it (:mod:`sevref.limits`), and returns at most one
byte more than that: enough for the caller to see that a file is too large,
never the rest of it. It raises :class:`~sevref.errors.NotFoundError` when a
file is not there (a missing file, HTTP 404) and
:class:`~sevref.errors.FetchError` for anything else, naming the full path or
URL: the verifier tells a withheld file from a broken mirror.

Over HTTP(S) (python-tuf's fetcher and its attack list are the model):

* **slow retrieval**: each file must arrive whole, redirects and TLS
  included, within one deadline (``--timeout``, default
  :data:`~sevref.limits.DEFAULT_FETCH_TIMEOUT` seconds); a watchdog closes
  the connection when it passes, so a mirror that drips a byte a second
  gains nothing;
* **endless data**: the body is read in pieces of at most 64 KiB until the
  limit plus one byte, whatever ``Content-Length`` says; nothing is reserved
  in advance, so memory follows the bytes actually read;
* **redirects** are followed only to http or https, never from https to
  http, at most :data:`~sevref.limits.MAX_REDIRECTS` times;
* certificates are checked against the system's authorities (or
  ``SSL_CERT_FILE``); proxies come from ``http_proxy``/``https_proxy``/``no_proxy``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import ssl
import stat
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from sevref import __version__
from sevref.errors import ConfigError, FetchError, NotFoundError
from sevref.limits import DEFAULT_FETCH_TIMEOUT, MAX_REDIRECTS
from sevref.trust import Fetch

__all__ = ["CHUNK_BYTES", "follow_redirect", "reader"]

CHUNK_BYTES = 64 << 10
"""The most bytes asked of the network at a time."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def reader(location: str, timeout: float = DEFAULT_FETCH_TIMEOUT) -> Fetch:
    """A function that reads a publication's files by relative path, each within a size limit.

    Args:
        location: a folder, ``file://`` URL, or ``http(s)://`` URL.
        timeout: seconds within which each file must arrive whole over HTTP(S).

    Returns:
        The reader.

    Raises:
        ConfigError: another URL scheme, or a timeout that is not positive.
    """
    if not timeout > 0:
        raise ConfigError(f"--timeout: expected a positive number of seconds, found {timeout}")
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme in ("http", "https"):
        base = location if location.endswith("/") else location + "/"
        return lambda path, limit: _http_get(base + urllib.parse.quote(path), limit, timeout)
    if parsed.scheme not in ("", "file"):
        raise ConfigError(f"--publication {location}: expected a folder, file://, http:// or https:// URL")
    root = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else location).resolve()
    return lambda path, limit: _read_file(root, path, limit)


def _read_file(root: Path, path: str, limit: int) -> bytes:
    """Read at most ``limit + 1`` bytes of one file of the folder, never one outside it."""
    if not root.is_dir():
        raise FetchError(f"{root}: no such folder")
    target = (root / path).resolve()
    if root not in target.parents:
        raise FetchError(f"{root / path}: outside the publication {root}")
    try:
        # O_NONBLOCK: a FIFO planted in the folder must not hang the verifier.
        descriptor = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFoundError(f"{target}: not found") from None
    except OSError as error:
        raise FetchError(f"{target}: {error.strerror or error}") from None
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise FetchError(f"{target}: not a regular file")
    with os.fdopen(descriptor, "rb") as handle:
        # Ask for what fstat says, within the limit: read(n) reserves n bytes up front.
        return handle.read(min(status.st_size, limit) + 1)


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
        raise FetchError(f"{current}: a redirect without a Location")
    target = urllib.parse.urljoin(current, location.strip())
    scheme = urllib.parse.urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(f"{current}: redirected to {target}; sevref follows redirects to http and https only")
    if urllib.parse.urlsplit(current).scheme.lower() == "https" and scheme == "http":
        raise FetchError(f"{current}: redirected from https to http ({target}); refused")
    return target


def _http_get(url: str, limit: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        status, location, data = _exchange(url, limit, deadline, timeout)
        if status in _REDIRECTS:
            url = follow_redirect(url, location)
            continue
        if status == 200:
            return data
        if status == 404:
            raise NotFoundError(f"{url}: HTTP 404 (not found)")
        raise FetchError(f"{url}: HTTP {status}")
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _connection(parts: urllib.parse.SplitResult, seconds: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection for a URL (through a proxy if the environment names one) and the request target."""
    host, port = parts.hostname or "", parts.port
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parts.scheme == "http":
            return http.client.HTTPConnection(via.hostname or "", via.port, timeout=seconds), parts.geturl()
        tunnel = http.client.HTTPSConnection(
            via.hostname or "", via.port, timeout=seconds, context=ssl.create_default_context()
        )
        tunnel.set_tunnel(host, port)
        return tunnel, target
    if parts.scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=seconds, context=ssl.create_default_context()), target
    return http.client.HTTPConnection(host, port, timeout=seconds), target


def _exchange(url: str, limit: int, deadline: float, timeout: float) -> tuple[int, str | None, bytes]:
    """One request: (status, Location, body of at most ``limit + 1`` bytes), all before ``deadline``."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError(f"{url}: no complete answer within {timeout:g} s")
    parts = urllib.parse.urlsplit(url)
    connection, target = _connection(parts, remaining)
    expired = threading.Event()

    def cut() -> None:
        """The deadline passed: end every read the connection is blocked in."""
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(remaining, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        headers = {"User-Agent": f"sevref/{__version__}", "Accept-Encoding": "identity"}
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        if response.status != 200:
            return response.status, response.getheader("Location"), b""
        data = bytearray()
        while len(data) <= limit:
            piece = response.read1(min(CHUNK_BYTES, limit + 1 - len(data)))
            if not piece:
                break
            data += piece
        if expired.is_set():
            raise FetchError(f"{url}: no complete answer within {timeout:g} s")
        return 200, None, bytes(data)
    except (OSError, http.client.HTTPException, ValueError) as error:
        if expired.is_set() or time.monotonic() >= deadline:
            raise FetchError(f"{url}: no complete answer within {timeout:g} s") from None
        if isinstance(error, ssl.SSLCertVerificationError):
            reason = f"certificate verify failed: {error.verify_message}"
        else:
            reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error)
            reason = reason or type(error).__name__
        raise FetchError(f"{url}: {reason}") from None
    finally:
        watchdog.cancel()
        connection.close()
