"""Inputs: the files a manifest pins, and the digest engine's file cache.

:class:`Sources` reads what a manifest names (a local file inside the
manifest's folder, a file by URL, or a file inside a Debian package obtained
with ``apt-get download`` or from its URL or a mirror), each once, and checks
every sha256 pin; its errors start with the manifest's ``file:line:column``. :class:`Inputs` is the file cache of ``sevref digest``: each
distinct path is read and hashed once per run, and :func:`compute_digests`
shares every piece of work requests have in common.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sevref.binfmt.deb import DebPackage
from sevref.digest import Firmware, KernelBoot, LaunchConfig, launch_digests
from sevref.edge.debian import obtain_deb, read_deb
from sevref.edge.download import download
from sevref.edge.files import file_sha256, read_bytes
from sevref.errors import ConfigError, DigestMismatchError, FetchError, SevrefError
from sevref.limits import DOWNLOAD_SECONDS, MAX_DEB_BYTES, MAX_FIRMWARE_BYTES
from sevref.manifest.model import Source
from sevref.request import DigestRequest

__all__ = ["DigestOutcome", "Inputs", "Sources", "compute_digests", "default_cache"]


class Inputs:
    """Input files of one run: each distinct path is read and hashed once."""

    def __init__(self) -> None:
        """Start with nothing read."""
        self._firmware: dict[Path, Firmware | SevrefError] = {}
        self._sha256: dict[Path, bytes | SevrefError] = {}

    def firmware(self, path: Path, pin: bytes | None) -> Firmware:
        """Return the prepared firmware at ``path``, checked against its pin.

        Args:
            path: the image.
            pin: the SHA-256 it must have, if any.

        Returns:
            The prepared firmware.

        Raises:
            SevrefError: unreadable, malformed, or not matching the pin.
        """
        if path not in self._firmware:
            try:
                data = read_bytes(path, "firmware", MAX_FIRMWARE_BYTES)
                self._firmware[path] = Firmware.from_bytes(data)
            except FetchError as error:
                self._firmware[path] = error
            except SevrefError as error:
                self._firmware[path] = type(error)(f"firmware {path}: {error.diagnostic()}")
        result = self._firmware[path]
        if isinstance(result, SevrefError):
            raise result
        if pin is not None and pin != result.sha256:
            raise DigestMismatchError(
                f"firmware {path}: sha256 is {result.sha256.hex()}, expected {pin.hex()} (the pin)"
            )
        return result

    def sha256(self, path: Path, what: str) -> bytes:
        """Return the SHA-256 of a kernel or initrd.

        Args:
            path: the file.
            what: "kernel" or "initrd", for errors.

        Returns:
            32 bytes.

        Raises:
            FetchError: the file cannot be read.
        """
        if path not in self._sha256:
            try:
                self._sha256[path] = file_sha256(path, what)
            except FetchError as error:
                self._sha256[path] = error
        result = self._sha256[path]
        if isinstance(result, SevrefError):
            raise result
        return result

    def boot(self, request: DigestRequest) -> KernelBoot | None:
        """Hash the request's kernel and initrd.

        Args:
            request: the request.

        Returns:
            The measured-boot inputs, or None without a kernel.

        Raises:
            SevrefError: a file cannot be read, or the command line is invalid.
        """
        if request.kernel is None:
            return None
        initrd = None if request.initrd is None else self.sha256(request.initrd, "initrd")
        return KernelBoot(self.sha256(request.kernel, "kernel"), initrd, request.cmdline)


@dataclass(frozen=True)
class DigestOutcome:
    """The result of one request: a digest or the error that prevented it."""

    digest: bytes | None
    """GCTX.LD, or None on error."""
    error: SevrefError | None
    """What went wrong, or None."""

    def unwrap(self) -> bytes:
        """Return the digest, or raise the error.

        Returns:
            The digest.

        Raises:
            SevrefError: the request failed.
        """
        if self.error is not None:
            raise self.error
        if self.digest is None:
            raise SevrefError("no digest was computed")
        return self.digest


def compute_digests(
    requests: Sequence[DigestRequest | SevrefError], inputs: Inputs | None = None
) -> list[DigestOutcome]:
    """Compute many digests, sharing every piece of work they have in common.

    Requests that differ only in their vCPU count are computed in one pass.

    Args:
        requests: requests, or errors already found for their lines (passed through).
        inputs: the file cache to use (a new one by default).

    Returns:
        One outcome per request, in order.
    """
    inputs = inputs or Inputs()
    outcomes: list[DigestOutcome | None] = [None] * len(requests)
    groups: dict[tuple[Path, LaunchConfig, bytes | None], list[tuple[int, int]]] = {}
    prepared: dict[tuple[Path, LaunchConfig, bytes | None], Firmware] = {}
    for index, request in enumerate(requests):
        if isinstance(request, SevrefError):
            outcomes[index] = DigestOutcome(None, request)
            continue
        try:
            firmware = inputs.firmware(request.firmware, request.firmware_sha256)
            boot = inputs.boot(request)
            config = request.launch_config(boot)
        except SevrefError as error:
            outcomes[index] = DigestOutcome(None, error)
            continue
        key = (request.firmware, config, request.firmware_prefix)
        prepared[key] = firmware
        groups.setdefault(key, []).append((index, request.vcpus or 1))
    for key, members in groups.items():
        path, config, seed = key
        try:
            digests = launch_digests(prepared[key], config, [vcpus for _, vcpus in members], seed=seed)
        except SevrefError as error:
            located = type(error)(f"firmware {path}: {error.diagnostic()}")
            for index, _ in members:
                outcomes[index] = DigestOutcome(None, located)
            continue
        for index, vcpus in members:
            outcomes[index] = DigestOutcome(digests[vcpus], None)
    return [outcome for outcome in outcomes if outcome is not None]


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
        self.cache = cache
        self.deadline = deadline
        self.allow = [folder.resolve() for folder in allow]
        self._debs: dict[Path, DebPackage] = {}

    def _inside(self, source: Source, what: str) -> Path:
        """The local file, resolved, if it lies in its manifest's folder or an allowed one.

        A manifest comes from a vendor's repository and is reviewed as data; a
        path that leaves its folder (``..``, an absolute path, a symlink) could
        make a build read and publish facts about any file of the build machine.
        """
        if source.path is None:  # pragma: no cover - callers check
            raise ConfigError(f"{source.origin}: {what}: not a local file")
        resolved = source.path.resolve()
        folders = [*([source.root.resolve()] if source.root is not None else []), *self.allow]
        if any(folder == resolved or folder in resolved.parents for folder in folders):
            return resolved
        shown = f"{source.path} (which resolves to {resolved})" if resolved != source.path else str(source.path)
        inside = source.root if source.root is not None else "the manifest's folder"
        raise ConfigError(
            f"{source.origin}: {what} {shown}: outside {inside}; expected a file inside the manifest's folder, "
            "or allow its folder with --allow-path DIR"
        )

    def read(self, source: Source, what: str, limit: int) -> bytes:
        """Return a pinned file's bytes.

        Args:
            source: where the file comes from.
            what: how to name it ("firmware ovmf-code").
            limit: the largest size accepted.

        Returns:
            The bytes, whose sha256 is the pin.

        Raises:
            SevrefError: unreadable, not obtained, not in its package, or not
                matching its pin; the message starts with the source's
                ``file:line:column``.
        """
        # Errors name the manifest's file:line:column, and the input unless the reader already did.
        origin = source.debian.origin if source.debian is not None and source.debian.origin else source.origin
        where = origin if source.path is not None else f"{origin}: {what}"
        try:
            if source.path is not None:
                data = read_bytes(self._inside(source, what), what, limit)
            elif source.url is not None:
                path = download(source.url, source.sha256, limit=limit, cache=self.cache, seconds=self.deadline)
                data = read_bytes(path, what, limit)
            else:
                data = self._from_package(source, what, limit)
        except (FetchError, DigestMismatchError) as error:
            raise type(error)(f"{where}: {error.diagnostic()}") from error
        found_hash = hashlib.sha256(data).digest()
        if found_hash != source.sha256:
            raise DigestMismatchError(
                f"{source.origin}: {what} {source.label()}: sha256 is {found_hash.hex()}, "
                f"expected {source.sha256.hex()} (the pin)"
            )
        return data

    def _from_package(self, source: Source, what: str, limit: int) -> bytes:
        """A file out of a Debian package: downloaded from its URL or mirror, else by apt-get download."""
        debian = source.debian
        if debian is None:  # pragma: no cover - the schema requires a path, a URL or a package
            raise ConfigError(f"{source.origin}: {what}: no path, URL or Debian package")
        url = debian.deb_url
        if url is not None:
            if debian.deb_sha256 is None:  # pragma: no cover - the schema requires it
                raise ConfigError(f"{source.origin}: {what}: a package by URL needs deb_sha256")
            deb = download(url, debian.deb_sha256, limit=MAX_DEB_BYTES, cache=self.cache, seconds=self.deadline)
        else:
            deb = obtain_deb(
                debian.package, debian.version, debian.architecture, debian.deb_sha256, self.cache / "debs"
            )
        if deb not in self._debs:
            self._debs[deb] = read_deb(deb)
        package = self._debs[deb]
        control = package.control
        found = (control.get("Package"), control.get("Version"), control.get("Architecture"))
        if found != (debian.package, debian.version, debian.architecture):
            raise FetchError(
                f"{deb.name}: its control file says {' '.join(map(str, found))}; "
                f"expected {debian.package} {debian.version} {debian.architecture}"
            )
        data = package.read(debian.path)
        if len(data) > limit:
            raise FetchError(f"{len(data)} bytes; expected at most {limit}")
        return data
