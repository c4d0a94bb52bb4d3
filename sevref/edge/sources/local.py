"""Source kind ``path``: a local file inside its manifest's folder (or an ``--allow-path`` one)."""

from __future__ import annotations

import hashlib

from sevref.binfmt.archive import Extracted
from sevref.edge.files import read_bytes
from sevref.edge.sources.kind import Context, SourceKind
from sevref.errors import ConfigError
from sevref.manifest.model import Source

__all__ = ["LocalFile"]


class LocalFile(SourceKind):
    """``source: {path: …}``."""

    names_itself = True

    def read(self, source: Source, what: str, limit: int, context: Context) -> Extracted:
        """Read the file, if it lies inside its manifest's folder or an allowed one.

        A manifest comes from a vendor's repository and is reviewed as data; a
        path that leaves its folder (``..``, an absolute path, a symlink) could
        make a build read and publish facts about any file of the build machine.

        Args:
            source: the source.
            what: how to name the file.
            limit: the largest size accepted.
            context: the allowed folders.

        Returns:
            The bytes and their SHA-256.

        Raises:
            ConfigError: the file lies outside.
            SevrefError: unreadable or too large.
        """
        if source.path is None:  # pragma: no cover - the table chose this kind for a path
            raise ConfigError(f"{source.origin}: {what}: not a local file")
        resolved = source.path.resolve()
        folders = [*([source.root.resolve()] if source.root is not None else []), *context.allow]
        if any(folder == resolved or folder in resolved.parents for folder in folders):
            data = read_bytes(resolved, what, limit)
            return Extracted(data, hashlib.sha256(data).digest())
        shown = f"{source.path} (which resolves to {resolved})" if resolved != source.path else str(source.path)
        inside = source.root if source.root is not None else "the manifest's folder"
        raise ConfigError(
            f"{source.origin}: {what} {shown}: outside {inside}; expected a file inside the manifest's folder, "
            "or allow its folder with --allow-path DIR"
        )
