"""Downloads of pinned files over HTTP(S): bounded, checked, cached by sha256.

A manifest may name a file by URL (``source: {url: …, sha256: …}``) or a
Debian package by its own URL or an archive root (``debian: {…, url: …}``,
``mirror: …``). Nothing but the pin authenticates what comes back. The bytes
come through the verifier's fetcher (:mod:`sevref.edge.fetch`), so its rules
hold here too: ``http://`` and ``https://`` only, redirects only to them (never
from https down to http, at most :data:`~sevref.limits.MAX_REDIRECTS`),
proxies from the environment, and one time limit for the whole download,
redirects and every byte included (``--download-timeout``: a server that
sends one byte a second is stopped at the limit, not after it). Then:

* at most ``limit`` bytes (a larger ``Content-Length`` is refused before
  anything is read);
* the bytes are hashed as they arrive and kept only if their sha256 is the pin
  (a mismatch names both hashes), written under a temporary name and renamed
  into ``CACHE/sha256/<pin>``, so a cache entry is whole or absent;
* a cached file is used again when its sha256 is still the pin.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.parse
from pathlib import Path

from sevref.edge.fetch import Bounds, HttpFetcher
from sevref.edge.files import file_sha256
from sevref.errors import DigestMismatchError, FetchError
from sevref.limits import MAX_REDIRECTS

__all__ = ["MAX_REDIRECTS", "cached", "download"]


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
        seconds: the time limit of the whole download, redirects included.

    Returns:
        The cached file, whose sha256 is the pin.

    Raises:
        FetchError: not an http(s) URL, a redirect elsewhere or too many, an
            HTTP status other than 200, too large, past the time limit, or a
            connection problem.
        DigestMismatchError: the bytes are not the pin's.
        ConfigError: a time limit that is not a positive, finite number of seconds.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"URL {url}: expected an http:// or https:// URL")
    bounds = Bounds(seconds, "--download-timeout")
    found = cached(cache, sha256)
    if found is not None:
        return found
    folder = cache / "sha256"
    folder.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".download-", delete=False)  # noqa: SIM115
    temporary = Path(handle.name)
    try:
        hasher = hashlib.sha256()
        with HttpFetcher(bounds) as fetcher:
            for chunk in fetcher.chunks(url, limit):
                hasher.update(chunk)
                handle.write(chunk)
        handle.close()
        if hasher.digest() != sha256:
            raise DigestMismatchError(f"{url}: sha256 is {hasher.hexdigest()}, expected {sha256.hex()} (the pin)")
        target = folder / sha256.hex()
        os.replace(temporary, target)
        return target
    finally:
        handle.close()
        temporary.unlink(missing_ok=True)
