"""RPM repositories: find a package's URL through ``repodata/repomd.xml`` and the primary metadata.

``repomd.xml`` is read fresh (at most :data:`~sevref.limits.MAX_REPOMD_BYTES`);
the primary metadata it names is downloaded pinned by the checksum it gives
(sha256) and cached like every download (:mod:`sevref.edge.download`), then
decompressed (gzip, xz, zstd, bzip2, or none: told by its first bytes) and
parsed as it is read (:mod:`sevref.binfmt.repodata`). The package's checksum
there must be the manifest's ``rpm_sha256``: a repository that lists other
bytes under that name and version is named, before anything more is fetched.
Nothing here is trusted beyond the pins: the .rpm itself is downloaded pinned.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from sevref.binfmt.archive import Compression, Stream, unpack
from sevref.binfmt.repodata import find_package, primary_metadata
from sevref.edge.download import download
from sevref.edge.fetch import Bounds, HttpFetcher
from sevref.edge.packages import package_caps
from sevref.errors import DigestMismatchError, FetchError, FirmwareFormatError
from sevref.limits import MAX_REPO_METADATA_BYTES, MAX_REPO_METADATA_UNPACKED, MAX_REPOMD_BYTES
from sevref.manifest.model import RpmSource

__all__ = ["locate_rpm"]

_MAGICS = (
    (b"\x1f\x8b", Compression.GZIP),
    (b"\xfd7zXZ\x00", Compression.XZ),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
    (b"BZh", Compression.BZIP2),
)
"""How compressed metadata starts: gzip (RFC 1952), xz (xz-file-format 2.1.1.1), zstd (RFC 8878), bzip2."""


def _join(base: str, href: str, what: str) -> str:
    """A location's URL: ``href`` below ``base``, which must stay http(s)."""
    url = urllib.parse.urljoin(base if base.endswith("/") else base + "/", href)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise FetchError(f"{what}: location {href!r} (base {base}) is {url}; expected an http:// or https:// URL")
    return url


def _pieces(path: Path, what: str) -> Iterator[bytes]:
    """The decompressed metadata, piece by piece."""
    caps = dataclasses.replace(package_caps(0, "repository metadata"), unpacked=MAX_REPO_METADATA_UNPACKED)
    with path.open("rb") as handle:
        start = handle.read(8)
        handle.seek(0)
        compression = next((kind for magic, kind in _MAGICS if start.startswith(magic)), Compression.NONE)
        stream = unpack(Stream(handle, what), compression, what, caps)
        while piece := stream.read(1 << 16):
            yield piece


def locate_rpm(rpm: RpmSource, *, cache: Path, seconds: float) -> str:
    """The URL of the .rpm the manifest names, from its repository's metadata.

    Args:
        rpm: the manifest's ``rpm`` mapping (with ``mirror``).
        cache: the download cache (the primary metadata is kept there by its checksum).
        seconds: the time limit of each download.

    Returns:
        The .rpm's URL.

    Raises:
        FetchError: the metadata cannot be fetched or read, or lacks the package.
        DigestMismatchError: the primary metadata is not what ``repomd.xml``
            says, or the package's checksum there is not the pin.
    """
    if rpm.mirror is None:  # pragma: no cover - callers check
        raise FetchError(f"{rpm.package}: no mirror")
    root = rpm.mirror if rpm.mirror.endswith("/") else rpm.mirror + "/"
    repomd_url = root + "repodata/repomd.xml"
    with HttpFetcher(Bounds(seconds, "--download-timeout")) as fetcher:
        text = fetcher.read(repomd_url, MAX_REPOMD_BYTES)
    if len(text) > MAX_REPOMD_BYTES:
        raise FetchError(f"{repomd_url}: more than {MAX_REPOMD_BYTES} bytes; expected at most that")
    try:
        primary = primary_metadata(text, repomd_url)
        if primary.checksum_type != "sha256":
            raise FetchError(
                f"{repomd_url}: the primary metadata's checksum is {primary.checksum_type!r}; expected 'sha256'"
            )
        try:
            pin = bytes.fromhex(primary.checksum)
        except ValueError as error:
            raise FetchError(f"{repomd_url}: checksum {primary.checksum!r} is not hex") from error
        primary_url = _join(primary.base or root, primary.href, repomd_url)
        try:
            path = download(primary_url, pin, limit=MAX_REPO_METADATA_BYTES, cache=cache, seconds=seconds)
        except DigestMismatchError as error:
            said = error.diagnostic().removesuffix(" (the pin)")
            raise DigestMismatchError(f"{said} (the checksum {repomd_url} gives)") from error
        entry = find_package(_pieces(path, primary_url), primary_url, rpm.package, rpm.version, rpm.architecture)
    except FirmwareFormatError as error:
        raise FetchError(error.diagnostic()) from error
    if entry.checksum_type == "sha256" and entry.checksum != rpm.rpm_sha256.hex():
        raise DigestMismatchError(
            f"{primary_url}: {rpm.package} {rpm.version} {rpm.architecture} has sha256 {entry.checksum}; "
            f"expected {rpm.rpm_sha256.hex()} (the pin)"
        )
    return _join(entry.base or root, entry.href, primary_url)
