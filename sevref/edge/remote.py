"""Reading a publication: from a folder, a ``file://`` URL, or over HTTP(S), each file bounded in size and time.

A reader takes a path relative to the publication's root and the most bytes
the verifier will read of it (:mod:`sevref.limits`), and returns at most one
byte more than that: enough for the caller to see that a file is too large,
never the rest of it. It raises :class:`~sevref.errors.NotFoundError` when a
file is not there (a missing file, HTTP 404) and
:class:`~sevref.errors.FetchError` for anything else, naming the full path or
URL: the verifier tells a withheld file from a broken mirror.

Over HTTP(S), one :class:`~sevref.edge.fetch.HttpFetcher` reads every file
of the run, so the rules of :mod:`sevref.edge.fetch` hold (python-tuf's
fetcher and its attack list are the model):

* **slow retrieval**: each file must arrive whole, name resolution, TLS and
  redirects included, within ``--timeout`` seconds (default
  :data:`~sevref.limits.DEFAULT_FETCH_TIMEOUT`), and every file of the run
  within ``--deadline`` seconds from the start (default
  :data:`~sevref.limits.DEFAULT_DEADLINE`): a mirror that drips a byte a
  second, or answers each file just in time, gains nothing;
* **endless data**: the body is read in pieces of at most 64 KiB until the
  limit plus one byte, whatever ``Content-Length`` says; nothing is reserved
  in advance, so memory follows the bytes actually read;
* **redirects** are followed only to http or https, never from https to
  http, at most :data:`~sevref.limits.MAX_REDIRECTS` times;
* certificates are checked against the system's authorities (or
  ``SSL_CERT_FILE``); proxies come from ``http_proxy``/``https_proxy``/``no_proxy``;
  connections are kept open from one file to the next.
"""

from __future__ import annotations

import os
import stat
import urllib.parse
from pathlib import Path

from sevref.edge.fetch import Bounds, HttpFetcher
from sevref.errors import ConfigError, FetchError, NotFoundError
from sevref.limits import DEFAULT_DEADLINE, DEFAULT_FETCH_TIMEOUT
from sevref.trust import Fetch

__all__ = ["reader"]


def reader(location: str, timeout: float = DEFAULT_FETCH_TIMEOUT, deadline: float = DEFAULT_DEADLINE) -> Fetch:
    """A function that reads a publication's files by relative path, each within a size limit.

    Args:
        location: a folder, ``file://`` URL, or ``http(s)://`` URL.
        timeout: seconds within which each file must arrive whole over HTTP(S).
        deadline: seconds within which every file must have arrived over HTTP(S), counted from now.

    Returns:
        The reader.

    Raises:
        ConfigError: another URL scheme, or a timeout or deadline that is not a
            positive, finite number of seconds.
    """
    bounds = Bounds(timeout, "--timeout", deadline, "--deadline")
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme in ("http", "https"):
        base = location if location.endswith("/") else location + "/"
        fetcher = HttpFetcher(bounds)
        return lambda path, limit: fetcher.read(base + urllib.parse.quote(path), limit)
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
