"""Reading a publication: from a folder, a ``file://`` URL, or over HTTP(S).

A reader takes a path relative to the publication's root and returns the
file's bytes, or raises :class:`~sevref.errors.FetchError`; it never reads
outside the publication.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from sevref.edge.files import read_bytes
from sevref.errors import ConfigError, FetchError
from sevref.limits import MAX_FETCH_BYTES
from sevref.trust import Fetch

__all__ = ["reader"]


def reader(location: str) -> Fetch:
    """A function that reads a publication's files by relative path.

    Args:
        location: a folder, ``file://`` URL, or ``http(s)://`` URL.

    Returns:
        The reader; it raises FetchError for a missing file.

    Raises:
        ConfigError: another URL scheme.
    """
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme in ("http", "https"):
        base = location if location.endswith("/") else location + "/"
        return lambda path: _http_get(base + urllib.parse.quote(path))
    if parsed.scheme not in ("", "file"):
        raise ConfigError(f"--publication {location}: expected a folder, file://, http:// or https:// URL")
    root = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else location).resolve()

    def read(path: str) -> bytes:
        """Read one file of the folder, never one outside it."""
        target = (root / path).resolve()
        if root not in target.parents:
            raise FetchError(f"{path}: outside the publication")
        if not target.is_file():
            raise FetchError(f"{path}: not found in {root}")
        return read_bytes(target, "published file", MAX_FETCH_BYTES)

    return read


def _http_get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310  # nosec B310 - http(s) only, checked above
            data: bytes = response.read(MAX_FETCH_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise FetchError(f"{url}: HTTP {error.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise FetchError(f"{url}: {getattr(error, 'reason', error)}") from None
    if len(data) > MAX_FETCH_BYTES:
        raise FetchError(f"{url}: larger than {MAX_FETCH_BYTES} bytes")
    return data
