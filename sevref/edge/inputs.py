"""The file cache and the engine of ``sevref digest``: each input read once, all shared work shared.

:class:`Inputs` reads and hashes each distinct firmware, kernel and initrd
once per run. :func:`compute_digests` measures many requests: those that share
a firmware and configuration form one group, measured in one pass whatever
their vCPU counts (:func:`sevref.digest.launch_digests`: the firmware hashed
once, its SEV-SNP pages chained once, the VMSA pages built once and hashed
incrementally per count). :func:`measure_batch` does the same for a batch
read by :func:`sevref.request.read_batch`, whose lines share their requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sevref.digest import Firmware, KernelBoot, LaunchConfig, launch_digests
from sevref.edge.files import file_sha256, read_bytes
from sevref.errors import DigestMismatchError, FetchError, SevrefError
from sevref.limits import MAX_FIRMWARE_BYTES

if TYPE_CHECKING:
    from pathlib import Path

    from sevref.request import DigestRequest

__all__ = ["DigestOutcome", "Inputs", "compute_digests", "measure_batch"]


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


_Group = tuple["Path", LaunchConfig, bytes | None]


def measure_batch(
    items: Sequence[tuple[DigestRequest, int] | SevrefError], inputs: Inputs | None = None
) -> list[bytes | SevrefError]:
    """Measure many requests, each with its vCPU count, sharing every piece of work they have in common.

    Items that share a request object share its inputs and checks: the
    request's firmware, boot files and configuration are resolved once per
    request object, and requests with the same firmware and configuration
    are measured in one pass over all their vCPU counts.

    Args:
        items: (request, vCPU count) pairs, or errors already found for their
            lines (passed through); the count is ignored where the mode does
            not measure vCPUs.
        inputs: the file cache to use (a new one by default).

    Returns:
        One digest or error per item, in order.
    """
    inputs = inputs or Inputs()
    results: list[bytes | SevrefError] = []
    members_of: dict[int, list[tuple[int, int]] | SevrefError] = {}  # by request object
    groups: dict[_Group, tuple[Firmware, list[tuple[int, int]]]] = {}
    for index, item in enumerate(items):
        if isinstance(item, SevrefError):
            results.append(item)
            continue
        request, vcpus = item
        members = members_of.get(id(request))
        if members is None:
            members = members_of[id(request)] = _join(request, inputs, groups)
        if isinstance(members, SevrefError):
            results.append(members)
            continue
        members.append((index, vcpus))
        results.append(b"")  # filled in below
    for (path, config, seed), (firmware, members) in groups.items():
        try:
            digests = launch_digests(firmware, config, {vcpus for _, vcpus in members}, seed=seed)
        except SevrefError as error:
            located = type(error)(f"firmware {path}: {error.diagnostic()}")
            for index, _ in members:
                results[index] = located
            continue
        for index, vcpus in members:
            results[index] = digests[vcpus]
    return results


def _join(
    request: DigestRequest, inputs: Inputs, groups: dict[_Group, tuple[Firmware, list[tuple[int, int]]]]
) -> list[tuple[int, int]] | SevrefError:
    """The members of the group a request joins (created if new), or the error its inputs give."""
    try:
        firmware = inputs.firmware(request.firmware, request.firmware_sha256)
        config = request.launch_config(inputs.boot(request))
    except SevrefError as error:
        return error
    return groups.setdefault((request.firmware, config, request.firmware_prefix), (firmware, []))[1]


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
    items = [request if isinstance(request, SevrefError) else (request, request.vcpus or 1) for request in requests]
    return [
        DigestOutcome(None, result) if isinstance(result, SevrefError) else DigestOutcome(result, None)
        for result in measure_batch(items, inputs)
    ]
