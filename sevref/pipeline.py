"""The pipeline edge: the only module that reads or writes files or runs programs.

It opens the files a configuration names (each distinct file once per run),
checks their sha256 pins, hands bytes to the measuring core and collects
results. It also obtains Debian packages the way a vendor pipeline does:
``apt-get download`` into a cache, then reading the .deb without dpkg.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

# apt-get runs with a fixed program and checked arguments (obtain_deb).
import subprocess  # nosec B404
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sevref.binfmt.deb import DebPackage
from sevref.digest import Firmware, KernelBoot, LaunchConfig, launch_digests
from sevref.errors import ConfigError, DigestMismatchError, FetchError, SevrefError
from sevref.manifest import DigestRequest, request_from_mapping

__all__ = [
    "MAX_FIRMWARE_BYTES",
    "DigestOutcome",
    "Inputs",
    "compute_digests",
    "obtain_deb",
    "parse_batch",
    "read_bytes",
]

MAX_FIRMWARE_BYTES = 256 << 20
"""Firmware images larger than this are refused (real ones are 2 to 4 MiB)."""
_CHUNK = 1 << 20


def read_bytes(path: Path, what: str, limit: int) -> bytes:
    """Read a whole file, refusing one larger than ``limit``.

    Args:
        path: the file.
        what: how to name it in errors.
        limit: the largest size accepted.

    Returns:
        The contents.

    Raises:
        FetchError: the file cannot be read or is too large.
    """
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise FetchError(f"{what} {path}: {size} bytes; expected at most {limit}")
            return handle.read(limit + 1)
    except OSError as error:
        raise FetchError(f"{what} {path}: {error.strerror or error}") from error


def file_sha256(path: Path, what: str) -> bytes:
    """Hash a file without holding it in memory.

    Args:
        path: the file.
        what: how to name it in errors.

    Returns:
        The 32-byte SHA-256.

    Raises:
        FetchError: the file cannot be read.
    """
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").digest()
    except OSError as error:
        raise FetchError(f"{what} {path}: {error.strerror or error}") from error


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


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ConfigError(f"key {key!r} appears twice; expected each key once")
        result[key] = value
    return result


def _no_constants(text: str) -> object:
    raise ConfigError(f"expected JSON numbers to be integers, found {text}")


def parse_batch(lines: Iterable[str], base: Path) -> list[DigestRequest | SevrefError]:
    """Read ``sevref digest --batch`` input: one JSON object a line.

    Args:
        lines: the lines, without their line ends.
        base: the folder relative paths are resolved against.

    Returns:
        A request per line, or the error found in that line.
    """
    results: list[DigestRequest | SevrefError] = []
    for line in lines:
        try:
            if not line.strip():
                raise ConfigError("empty line; expected a JSON object")
            try:
                value = json.loads(
                    line,
                    object_pairs_hook=_no_duplicates,
                    parse_float=_no_constants,
                    parse_constant=_no_constants,
                )
            except json.JSONDecodeError as error:
                raise ConfigError(f"not JSON: {error.msg} at column {error.colno}") from error
            if not isinstance(value, dict):
                raise ConfigError(f"expected a JSON object, found {type(value).__name__}")
            results.append(request_from_mapping(value, base))
        except SevrefError as error:
            results.append(error)
    return results


def obtain_deb(name: str, version: str, sha256: bytes, cache: Path) -> Path:
    """Download a Debian package with ``apt-get download`` into a cache, pinned.

    A cached file is used when its sha256 matches the pin; otherwise the package
    is downloaded into a temporary folder, checked, and moved into place.

    Args:
        name: the package name, e.g. ``ovmf``.
        version: the exact version, e.g. ``2022.11-6+deb12u2``.
        sha256: the pin of the .deb file.
        cache: the folder that keeps downloaded packages.

    Returns:
        The path of the verified .deb in the cache.

    Raises:
        FetchError: apt-get is missing or fails.
        DigestMismatchError: the downloaded file does not match the pin.
    """
    for part, label in ((name, "package name"), (version, "package version")):
        if not part or part.startswith("-") or any(c in part for c in "/= \t\n"):
            raise ConfigError(f"{label}: expected a Debian {label}, found {part!r}")
    cache.mkdir(parents=True, exist_ok=True)
    cached = sorted(cache.glob(f"{name}_*.deb"))
    for path in cached:
        if file_sha256(path, "package") == sha256:
            return path
    apt = shutil.which("apt-get")
    if apt is None:
        raise FetchError(f"{name}={version}: apt-get is not installed; expected a Debian-based system")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as folder:
        run = subprocess.run(  # noqa: S603  # nosec B603
            [apt, "download", f"{name}={version}"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
        debs = sorted(Path(folder).glob("*.deb"))
        if run.returncode != 0 or len(debs) != 1:
            lines = [line for line in run.stderr.splitlines() if line.startswith("E:")] or run.stderr.splitlines()
            reason = lines[-1] if lines else f"exit status {run.returncode}"
            raise FetchError(
                f"apt-get download {name}={version} failed: {reason} (are the package lists current? "
                f"run apt-get update)"
            )
        found = file_sha256(debs[0], "package")
        if found != sha256:
            raise DigestMismatchError(f"{debs[0].name}: sha256 is {found.hex()}, expected {sha256.hex()} (the pin)")
        target = cache / debs[0].name
        os.replace(debs[0], target)
    return target


def read_deb_file(deb: Path, member: str) -> tuple[bytes, dict[str, str]]:
    """Read one file out of a .deb.

    Args:
        deb: the package file.
        member: the file's installed path, e.g. ``usr/share/OVMF/OVMF_CODE.fd``.

    Returns:
        The file's bytes and the package's control fields.

    Raises:
        SevrefError: the package cannot be read or lacks the file.
    """
    package = DebPackage.from_bytes(read_bytes(deb, "package", 1 << 30), deb.name)
    return package.read(member), package.control
