"""Downloads of pinned files over HTTP(S): bounded, checked, cached by sha256.

A manifest may name a file by URL (``source: {url: …, sha256: …}``) or a
Debian package by its own URL or an archive root (``debian: {…, url: …}``,
``mirror: …``). Nothing but the pin authenticates what comes back, so:

* only ``http://`` and ``https://`` URLs, and redirects only to them (at most
  :data:`MAX_REDIRECTS`);
* the whole download, redirects included, has one deadline, enforced by a
  watchdog that shuts the connection down when it passes (a server that sends
  one byte a second is stopped at the deadline, not after it);
* at most ``limit`` bytes (a larger ``Content-Length`` is refused before
  anything is read);
* the bytes are hashed as they arrive and kept only if their sha256 is the pin
  (a mismatch names both hashes), written under a temporary name and renamed
  into ``CACHE/sha256/<pin>``, so a cache entry is whole or absent;
* a cached file is used again when its sha256 is still the pin.

sevref connects directly: it reads no proxy settings. Where the build host
needs a proxy, put the file into the cache yourself (its name is its sha256).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from types import TracebackType
from typing import IO

from sevref import __version__
from sevref.edge.files import file_sha256
from sevref.errors import ConfigError, DigestMismatchError, FetchError

__all__ = ["MAX_REDIRECTS", "cached", "download"]

MAX_REDIRECTS = 5
"""Redirects followed, at most."""
_CHUNK = 1 << 20
_REDIRECTS = (301, 302, 303, 307, 308)


class _Deadline:
    """One deadline for a whole download: it shuts the current connection down when it passes."""

    def __init__(self, url: str, seconds: float) -> None:
        self.url, self.seconds = url, seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._timer.cancel()

    def error(self) -> FetchError:
        return FetchError(
            f"{self.url}: not downloaded within {self.seconds:g} s (the whole download's deadline, "
            "--download-timeout); expected a faster server, or a longer deadline"
        )

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0 or self.expired:
            raise self.error()
        return left

    def watch(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.expired and sock is not None:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shut(self._sock)


def _shut(sock: socket.socket) -> None:
    """Shut a socket down from another thread: a blocked read then returns at once.

    The socket is shut down through a duplicate of its descriptor, which leaves
    the Python object (an SSL socket perhaps) to the thread that reads it.
    """
    try:
        duplicate = socket.socket(fileno=os.dup(sock.fileno()))
    except OSError:
        return  # already closed
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet, or already shut down
    finally:
        duplicate.close()


def _check_url(url: str, what: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{what} {url}: expected an http:// or https:// URL")
    return parts


def _connect(parts: urllib.parse.SplitResult, deadline: _Deadline) -> http.client.HTTPConnection:
    try:
        port = parts.port
    except ValueError:
        raise FetchError(f"{parts.geturl()}: the port is not a number; expected an http(s) URL") from None
    host, timeout = parts.hostname or "", deadline.remaining()
    if parts.scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    return http.client.HTTPConnection(host, port, timeout=timeout)


def _open(url: str, deadline: _Deadline) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, str]:
    """GET ``url``, following redirects to http(s) URLs; returns the connection, the 200 response and its URL."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = _check_url(url, "URL")
        connection = _connect(parts, deadline)
        try:
            connection.connect()
            deadline.watch(connection.sock)
            target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
            headers = {"User-Agent": f"sevref/{__version__}", "Accept-Encoding": "identity"}
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        if response.status == 200:
            return connection, response, url
        location = response.getheader("Location")
        connection.close()
        if response.status not in _REDIRECTS or location is None:
            raise FetchError(f"{url}: HTTP {response.status} {response.reason}; expected 200 OK")
        following = urllib.parse.urljoin(url, location)
        if urllib.parse.urlsplit(following).scheme not in ("http", "https"):
            raise FetchError(f"{url}: redirected to {following}; expected an http:// or https:// URL")
        url = following
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects; expected the file")


def _receive(response: http.client.HTTPResponse, url: str, limit: int, handle: IO[bytes], deadline: _Deadline) -> bytes:
    """Read the body into ``handle`` (a binary file), at most ``limit`` bytes; return its sha256."""
    announced = response.getheader("Content-Length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise FetchError(f"{url}: {int(announced)} bytes (Content-Length); expected at most {limit}")
    hasher, size = hashlib.sha256(), 0
    while True:
        deadline.remaining()
        chunk = response.read(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise FetchError(f"{url}: more than {limit} bytes; expected at most {limit}")
        hasher.update(chunk)
        handle.write(chunk)
    deadline.remaining()  # a connection shut down by the deadline ends like a short file
    if announced is not None and announced.isdigit() and size != int(announced):
        raise FetchError(f"{url}: {size} bytes arrived; the server announced {announced}")
    return hasher.digest()


def cached(cache: Path, sha256: bytes) -> Path | None:
    """The cached download with this sha256, if there is one and it still has that sha256.

    Args:
        cache: the cache folder.
        sha256: the pin.

    Returns:
        Its path, or None.
    """
    path = cache / "sha256" / sha256.hex()
    if path.is_file() and file_sha256(path, "cached download") == sha256:
        return path
    return None


def download(url: str, sha256: bytes, *, limit: int, cache: Path, seconds: float) -> Path:
    """Return the file a URL names, pinned by its sha256: from the cache, or downloaded into it.

    Args:
        url: an ``http://`` or ``https://`` URL.
        sha256: the pin: nothing else is accepted.
        limit: the largest size accepted, in bytes.
        cache: the cache folder (``CACHE/sha256/<pin>``).
        seconds: the deadline of the whole download, redirects included.

    Returns:
        The cached file, whose sha256 is the pin.

    Raises:
        FetchError: not an http(s) URL, a redirect elsewhere or too many, an
            HTTP status other than 200, too large, past the deadline, or a
            connection problem.
        DigestMismatchError: the bytes are not the pin's.
        ConfigError: a deadline that is not positive.
    """
    _check_url(url, "URL")
    if not seconds > 0:
        raise ConfigError(f"download deadline {seconds!r}: expected a positive number of seconds")
    found = cached(cache, sha256)
    if found is not None:
        return found
    folder = cache / "sha256"
    folder.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".download-", delete=False)  # noqa: SIM115
    temporary = Path(handle.name)
    try:
        with _Deadline(url, seconds) as deadline:
            try:
                connection, response, final = _open(url, deadline)
                try:
                    digest = _receive(response, final, limit, handle, deadline)
                finally:
                    connection.close()
            except (OSError, http.client.HTTPException, ValueError) as error:  # ValueError: a host name IDNA refuses
                if deadline.expired:
                    raise deadline.error() from None
                raise FetchError(f"{url}: {getattr(error, 'strerror', None) or error}; expected the file") from None
        handle.close()
        if digest != sha256:
            raise DigestMismatchError(f"{url}: sha256 is {digest.hex()}, expected {sha256.hex()} (the pin)")
        target = folder / sha256.hex()
        os.replace(temporary, target)
        return target
    finally:
        handle.close()
        temporary.unlink(missing_ok=True)
