"""Source kind ``url``: a file downloaded over HTTP(S), pinned and cached by sha256 (:mod:`sevref.edge.download`)."""

from __future__ import annotations

import hashlib

from sevref.binfmt.archive import Extracted
from sevref.edge.download import download
from sevref.edge.files import read_bytes
from sevref.edge.sources.kind import Context, SourceKind
from sevref.errors import ConfigError
from sevref.manifest.model import Source

__all__ = ["UrlFile"]


class UrlFile(SourceKind):
    """``source: {url: …}``."""

    def read(self, source: Source, what: str, limit: int, context: Context) -> Extracted:
        """Download the file (or take it from the cache).

        Args:
            source: the source.
            what: how to name the file.
            limit: the largest size accepted.
            context: the cache and time limit.

        Returns:
            The bytes and their SHA-256.

        Raises:
            SevrefError: not downloaded, too large, or not the pinned bytes.
        """
        if source.url is None:  # pragma: no cover - the table chose this kind for a URL
            raise ConfigError(f"{source.origin}: {what}: no URL")
        path = download(source.url, source.sha256, limit=limit, cache=context.cache, seconds=context.deadline)
        data = read_bytes(path, what, limit)
        return Extracted(data, hashlib.sha256(data).digest())
