"""Sources: the files a manifest pins, one module per kind (:mod:`~sevref.edge.sources.kind`).

:class:`Sources` reads what a manifest names, each once, and checks every
sha256 pin; with a firmware file it returns the QEMU firmware descriptor its
package has for it. Its errors start with the manifest's ``file:line:column``.
Which kind reads a source is chosen by the manifest key in one table, :data:`KINDS`:

* ``path`` (:mod:`~sevref.edge.sources.local`): a local file inside the manifest's folder;
* ``url`` (:mod:`~sevref.edge.sources.url`): a file by URL;
* ``debian`` (:mod:`~sevref.edge.sources.debian`): a file inside a Debian package, by
  ``apt-get download``, its URL or a mirror;
* ``rpm`` (:mod:`~sevref.edge.sources.rpm`): a file inside an RPM, by its URL or a
  repository's metadata.

Packages are streamed and bounded (:mod:`sevref.edge.packages`). The file cache
of ``sevref digest`` is :mod:`sevref.edge.inputs`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sevref.binfmt.archive import Extracted
from sevref.binfmt.descriptor import Finding
from sevref.edge.sources.debian import DebianFile
from sevref.edge.sources.kind import Context, SourceKind
from sevref.edge.sources.local import LocalFile
from sevref.edge.sources.rpm import RpmFile
from sevref.edge.sources.url import UrlFile
from sevref.errors import DigestMismatchError, FetchError
from sevref.limits import DOWNLOAD_SECONDS
from sevref.manifest.model import Source

__all__ = ["KINDS", "Sources", "default_cache"]

KINDS: Mapping[str, SourceKind] = {
    "path": LocalFile(),
    "url": UrlFile(),
    "debian": DebianFile(),
    "rpm": RpmFile(),
}
"""Each source kind by the manifest key that selects it (:attr:`Source.kind <sevref.manifest.model.Source.kind>`)."""


def default_cache() -> Path:
    """Where downloaded packages are kept: ``$SEVREF_CACHE``, else the XDG cache folder.

    Returns:
        The folder (not created).
    """
    if os.environ.get("SEVREF_CACHE"):
        return Path(os.environ["SEVREF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sevref"


class Sources:
    """Reads the files a manifest pins, each once, checking every pin."""

    def __init__(self, cache: Path, allow: Sequence[Path] = (), deadline: float = DOWNLOAD_SECONDS) -> None:
        """Start with nothing read.

        Args:
            cache: where downloaded packages and files go.
            allow: folders outside a manifest's own from which it may name files
                (``--allow-path``).
            deadline: seconds a whole download may take.
        """
        self.context = Context(cache, deadline, [folder.resolve() for folder in allow])

    def read(self, source: Source, what: str, limit: int) -> bytes:
        """Return a pinned file's bytes.

        Args:
            source: where the file comes from.
            what: how to name it ("boot direct kernel").
            limit: the largest size accepted.

        Returns:
            The bytes, whose sha256 is the pin.

        Raises:
            SevrefError: unreadable, not obtained, not in its package, or not
                matching its pin; the message starts with the source's
                ``file:line:column``.
        """
        kind = KINDS[source.kind]
        return self._checked(source, what, limit, lambda: (kind.read(source, what, limit, self.context), Finding()))[0]

    def read_firmware(self, source: Source, what: str, limit: int) -> tuple[bytes, Finding]:
        """Return a pinned firmware file's bytes, and what its package says about it.

        Args:
            source: where the file comes from.
            what: how to name it ("firmware ovmf-code").
            limit: the largest size accepted.

        Returns:
            The bytes, whose sha256 is the pin, and the QEMU firmware descriptor
            its package has for it (:meth:`~sevref.edge.sources.kind.SourceKind.read_firmware`).

        Raises:
            SevrefError: as :meth:`read`, or its package's descriptors are damaged.
        """
        kind = KINDS[source.kind]
        return self._checked(source, what, limit, lambda: kind.read_firmware(source, what, limit, self.context))

    def _checked(
        self, source: Source, what: str, limit: int, obtain: Callable[[], tuple[Extracted, Finding]]
    ) -> tuple[bytes, Finding]:
        """Run a kind's ``obtain`` and hold its bytes to the size limit and the pin, naming the source."""
        kind = KINDS[source.kind]
        # Errors name the manifest's file:line:column, and the input unless the kind already did.
        origin = kind.origin(source)
        where = origin if kind.names_itself else f"{origin}: {what}"
        try:
            found, finding = obtain()
            if len(found.data) > limit:
                raise FetchError(f"{len(found.data)} bytes; expected at most {limit}")
        except (FetchError, DigestMismatchError) as error:
            raise type(error)(f"{where}: {error.diagnostic()}") from error
        if found.sha256 != source.sha256:
            raise DigestMismatchError(
                f"{source.origin}: {what} {source.label()}: sha256 is {found.sha256.hex()}, "
                f"expected {source.sha256.hex()} (the pin)"
            )
        return found.data, finding
