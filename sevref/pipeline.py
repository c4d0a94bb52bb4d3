"""The pipeline edge: the only module that reads or writes files or runs programs.

It opens the files a configuration names (each distinct file once per run),
checks their sha256 pins, hands bytes to the measuring core and collects
results. It also obtains Debian packages the way a vendor pipeline does:
``apt-get download`` into a cache, then reading the .deb without dpkg.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import stat

# apt-get runs with a fixed program and checked arguments (obtain_deb).
import subprocess  # nosec B404
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

from sevref._resources import resource
from sevref.binfmt.deb import DebPackage
from sevref.digest import Firmware, KernelBoot, LaunchConfig, Mode, launch_digests
from sevref.errors import (
    ConfigError,
    DigestMismatchError,
    FetchError,
    FirmwareFormatError,
    RenderError,
    SevrefError,
    SignatureError,
)
from sevref.expand import DEFAULT_MAX_ENTRIES, AxisReport, Expansion, Group, expand
from sevref.manifest import (
    MAX_MANIFEST_BYTES,
    DigestRequest,
    Manifest,
    Source,
    format_time,
    load_manifests,
    parse_time,
    parse_yaml,
    request_from_mapping,
)
from sevref.records import (
    CALCULATOR,
    SCHEMAS,
    FileRef,
    Index,
    Release,
    catalog_order,
    catalog_record,
    catalog_row,
    firmware_record,
    group_record,
    publication_record,
    shard_width,
)
from sevref.render import Renderer, Site
from sevref.serialize import canonical, canonical_frame, canonical_row
from sevref.sign import (
    INDEX_PAYLOAD_TYPE,
    INTOTO_PAYLOAD_TYPE,
    KEYS_PAYLOAD_TYPE,
    Algorithm,
    KeyEntry,
    KeysDocument,
    KeySigner,
    PublicKey,
    Signer,
    envelope,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    private_pem,
    public_pem,
    sign_file,
    statement,
)
from sevref.trust import Expected, Fetch, TrustedPublication, establish, verify_chain
from sevref.validate import check_document, check_group

__all__ = [
    "MAX_FIRMWARE_BYTES",
    "BuildSummary",
    "DigestOutcome",
    "Inputs",
    "Prepared",
    "Sources",
    "build",
    "compute_digests",
    "default_cache",
    "issue_time",
    "load_manifest",
    "obtain_deb",
    "parse_batch",
    "prepare",
    "read_bytes",
    "read_deb_file",
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
        # O_NONBLOCK: a FIFO or device named as a file must not hang the build.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise FetchError(f"{what} {path}: not a regular file; expected a file")
            if status.st_size > limit:
                raise FetchError(f"{what} {path}: {status.st_size} bytes; expected at most {limit}")
            # Ask for what fstat says (plus one, to notice growth): read(limit) would
            # reserve the whole limit up front.
            data = handle.read(status.st_size + 1)
    except OSError as error:
        raise FetchError(f"{what} {path}: {error.strerror or error}") from error
    if len(data) != status.st_size:
        raise FetchError(
            f"{what} {path}: changed size while read ({status.st_size} to {len(data)}+ bytes); expected a still file"
        )
    return data


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


def obtain_deb(name: str, version: str, architecture: str, sha256: bytes | None, cache: Path) -> Path:
    """Download a Debian package with ``apt-get download`` into a cache.

    A cached file is used when it is there (and matches the pin, if one is
    given); otherwise the package is downloaded into a temporary folder, checked
    against the pin, and moved into place.

    Args:
        name: the package name, e.g. ``ovmf``.
        version: the exact version, e.g. ``2022.11-6+deb12u2``.
        architecture: the package architecture, e.g. ``all``.
        sha256: the pin of the .deb file, if any.
        cache: the folder that keeps downloaded packages.

    Returns:
        The path of the .deb in the cache.

    Raises:
        ConfigError: a name or version that is not one.
        FetchError: apt-get is missing or fails.
        DigestMismatchError: the .deb does not match the pin.
    """
    for part, label in ((name, "package name"), (version, "package version"), (architecture, "architecture")):
        if not part or part.startswith("-") or any(c in part for c in "/= \t\n"):
            raise ConfigError(f"{label}: expected a Debian {label}, found {part!r}")
    target = cache / f"{name}_{version.replace(':', '%3a')}_{architecture}.deb"
    if target.is_file() and (sha256 is None or file_sha256(target, "package") == sha256):
        return target
    apt = shutil.which("apt-get")
    if apt is None:
        raise FetchError(f"{name}={version}: apt-get is not installed; expected a Debian-based system")
    cache.mkdir(parents=True, exist_ok=True)
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
        if debs[0].name != target.name:
            raise FetchError(f"apt-get download {name}={version}: got {debs[0].name}; expected {target.name}")
        found = file_sha256(debs[0], "package")
        if sha256 is not None and found != sha256:
            raise DigestMismatchError(f"{debs[0].name}: sha256 is {found.hex()}, expected {sha256.hex()} (the pin)")
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


# --------------------------------------------------------------------------- manifests and build


def default_cache() -> Path:
    """Where downloaded packages are kept: ``$SEVREF_CACHE``, else the XDG cache folder.

    Returns:
        The folder (not created).
    """
    if os.environ.get("SEVREF_CACHE"):
        return Path(os.environ["SEVREF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sevref"


def load_manifest(paths: Sequence[Path]) -> Manifest:
    """Read, parse and check manifest files.

    Args:
        paths: the files, in the order given.

    Returns:
        The merged manifest.

    Raises:
        SevrefError: a file cannot be read, or a problem in the manifests.
    """
    if not paths:
        raise ConfigError("expected at least one manifest file")
    documents = []
    for path in paths:
        data = read_bytes(path, "manifest", MAX_MANIFEST_BYTES)
        documents.append(parse_yaml(data, str(path), path.parent))
    return load_manifests(documents)


class Sources:
    """Reads the files a manifest pins, each once, checking every pin."""

    def __init__(self, cache: Path, allow: Sequence[Path] = ()) -> None:
        """Start with nothing read.

        Args:
            cache: where downloaded packages go.
            allow: folders outside a manifest's own from which it may name files
                (``--allow-path``).
        """
        self.cache = cache
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
            SevrefError: unreadable, not in its package, or not matching its pin.
        """
        if source.path is not None:
            try:
                data = read_bytes(self._inside(source, what), what, limit)
            except FetchError as error:
                raise FetchError(f"{source.origin}: {error.diagnostic()}") from error
        else:
            debian = source.debian
            if debian is None:  # pragma: no cover - the schema requires one of them
                raise ConfigError(f"{source.origin}: {what}: no path and no Debian package")
            deb = obtain_deb(
                debian.package, debian.version, debian.architecture, debian.deb_sha256, self.cache / "debs"
            )
            if deb not in self._debs:
                self._debs[deb] = DebPackage.from_bytes(read_bytes(deb, "package", 1 << 30), deb.name)
            package = self._debs[deb]
            control = package.control
            found = (control.get("Package"), control.get("Version"), control.get("Architecture"))
            if found != (debian.package, debian.version, debian.architecture):
                raise FetchError(
                    f"{source.origin}: {deb.name}: its control file says {' '.join(map(str, found))}; "
                    f"expected {debian.package} {debian.version} {debian.architecture}"
                )
            data = package.read(debian.path)
            if len(data) > limit:
                raise FetchError(f"{source.origin}: {what}: {len(data)} bytes; expected at most {limit}")
        found_hash = hashlib.sha256(data).digest()
        if found_hash != source.sha256:
            raise DigestMismatchError(
                f"{source.origin}: {what} {source.label()}: sha256 is {found_hash.hex()}, "
                f"expected {source.sha256.hex()} (the pin)"
            )
        return data


@dataclass(frozen=True)
class Prepared:
    """A manifest with its inputs read and checked, and its expansion."""

    manifest: Manifest
    """The manifest."""
    firmware: Mapping[str, Firmware]
    """Prepared firmware by id (those the matrices use)."""
    expansion: Expansion
    """The groups."""


def prepare(
    paths: Sequence[Path], cache: Path, max_entries: int = DEFAULT_MAX_ENTRIES, allow: Sequence[Path] = ()
) -> Prepared:
    """Load manifests, read and check every pinned input, and expand the matrix.

    This is all of ``sevref build`` except computing and writing, and what
    ``sevref validate`` runs.

    Args:
        paths: the manifest files.
        cache: where downloaded packages go.
        max_entries: refuse larger matrices.
        allow: folders outside the manifests' own that may hold their files.

    Returns:
        The prepared publication.

    Raises:
        SevrefError: the first problem found.
    """
    manifest = load_manifest(paths)
    sources = Sources(cache, allow)
    used = {fw for matrix in manifest.matrices for fw in matrix.firmware}
    firmware: dict[str, Firmware] = {}
    for ident, spec in manifest.firmware.items():
        if ident in used:
            try:
                firmware[ident] = Firmware.from_bytes(
                    sources.read(spec.source, f"firmware {ident}", MAX_FIRMWARE_BYTES)
                )
            except FirmwareFormatError as error:
                raise FirmwareFormatError(f"{spec.origin}: firmware {ident}: {error.diagnostic()}") from error
    for boot in manifest.boots.values():
        for source, what in ((boot.kernel, "kernel"), (boot.initrd, "initrd")):
            if source is not None:
                sources.read(source, f"boot {boot.id} {what}", MAX_BOOT_FILE_BYTES)
    expansion = expand(manifest, {ident: fw.info for ident, fw in firmware.items()}, max_entries)
    return Prepared(manifest, firmware, expansion)


MAX_BOOT_FILE_BYTES = 1 << 30
"""Kernels and initrds larger than this are refused."""


def issue_time(manifest: Manifest, flag: str | None) -> str:
    """The release's issue time: the manifest's, ``--issued``, or SOURCE_DATE_EPOCH.

    sevref never reads the clock unless asked to with ``--issued now``.

    Args:
        manifest: the manifest.
        flag: the ``--issued`` value, if given.

    Returns:
        RFC 3339 UTC.

    Raises:
        ConfigError: no time given, or a malformed one.
    """
    if manifest.publication.issued is not None:
        if flag is not None:
            raise ConfigError(f"--issued: the manifest already sets issued {manifest.publication.issued}")
        return manifest.publication.issued
    if flag == "now":
        return format_time(datetime.now(UTC))
    if flag is not None:
        return format_time(parse_time(flag))
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        if not epoch.isdigit():
            raise ConfigError(f"SOURCE_DATE_EPOCH: expected seconds since 1970, found {epoch!r}")
        return format_time(datetime.fromtimestamp(int(epoch), UTC))
    raise ConfigError(
        "no issue time: set publication.issued in the manifest, pass --issued TIME (or --issued now), "
        "or set SOURCE_DATE_EPOCH; sevref does not read the clock on its own"
    )


class _Tree:
    """Writes a publication's files under a folder, hashing as it goes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[FileRef] = []
        self.unlisted: list[tuple[str, int]] = []

    def write(self, path: str, data: bytes) -> None:
        self._put(path, data)
        self.files.append(FileRef(path, hashlib.sha256(data).hexdigest(), len(data)))

    def write_unlisted(self, path: str, data: bytes) -> None:
        self._put(path, data)
        self.unlisted.append((path, len(data)))

    def _put(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def open(self, path: str, head: bytes, tail: bytes) -> _Stream:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        return _Stream(self, path, target, head, tail)


class _Stream:
    """One file whose list member is appended to as it is computed."""

    def __init__(self, tree: _Tree, path: str, target: Path, head: bytes, tail: bytes) -> None:
        self.tree, self.path, self.tail = tree, path, tail
        self.handle = target.open("wb")
        self.hash = hashlib.sha256()
        self.size = 0
        self.count = 0
        self._put(head + b"[")

    def _put(self, data: bytes) -> None:
        self.handle.write(data)
        self.hash.update(data)
        self.size += len(data)

    def add(self, item: bytes) -> None:
        self._put(b"," + item if self.count else item)
        self.count += 1

    def close(self) -> None:
        self._put(b"]" + self.tail)
        self.handle.close()
        self.tree.files.append(FileRef(self.path, self.hash.hexdigest(), self.size))


class _DigestIndex:
    """Digest -> entry ids, spilled to disk in 16 buckets so memory stays bounded."""

    _FLUSH = 250_000

    def __init__(self, folder: Path, width: int) -> None:
        self.folder, self.width = folder, width
        folder.mkdir()
        self.pending: dict[str, list[str]] = {}
        self.count = 0

    def add(self, digest: str, entry: str) -> None:
        self.pending.setdefault(digest[0], []).append(f"{digest} {entry}\n")
        self.count += 1
        if self.count >= self._FLUSH:
            self.flush()

    def flush(self) -> None:
        for bucket, lines in self.pending.items():
            with (self.folder / bucket).open("a", encoding="ascii") as handle:
                handle.writelines(lines)
        self.pending, self.count = {}, 0

    def shards(self) -> Iterator[tuple[str, dict[str, list[str]]]]:
        """Yield (shard name, digest -> sorted entry ids), by shard name."""
        self.flush()
        for bucket in sorted(self.folder.iterdir()):
            shards: dict[str, dict[str, list[str]]] = {}
            for line in bucket.read_text(encoding="ascii").splitlines():
                digest, entry = line.split(" ")
                shards.setdefault(digest[: self.width], {}).setdefault(digest, []).append(entry)
            bucket.unlink()
            for name in sorted(shards):
                table = shards[name]
                for entries in table.values():
                    entries.sort()
                yield name, table


# Worker state for --jobs: set in the parent before the pool forks.
_WORK: dict[str, Any] = {}


def _compute(index: int) -> tuple[bytes, list[bytes], bytes, dict[str, object]]:
    """Compute one group: its checked canonical record, digests, page and catalog row."""
    group: Group = _WORK["groups"][index]
    firmware: Firmware = _WORK["firmware"][group.firmware]
    counts = group.vcpus or (1,)
    by_count = launch_digests(firmware, group.config, counts)
    digests = [by_count[count] for count in counts]
    record = group_record(group, digests, _WORK["sources"][group.firmware])
    check_group(record)
    renderer: Renderer = _WORK["renderer"]
    _, page = renderer.entry(record)
    return canonical(record), digests, page, catalog_row(record)


@dataclass(frozen=True)
class BuildSummary:
    """What a build produced."""

    out: Path
    """The publication's folder."""
    entries: int
    """Published entries."""
    groups: int
    """Published groups."""
    firmware: int
    """Firmware builds covered."""
    files: int
    """Files written: the index, what it lists, and the signatures."""
    size: int
    """Bytes written."""
    seconds: float
    """Wall time."""
    reports: tuple[AxisReport, ...]
    """Per-matrix axis sizes."""
    largest: tuple[str, int]
    """The largest file and its size."""
    pages: int
    """HTML pages of the site."""
    largest_page: tuple[str, int]
    """The largest page and its size."""


class _Progress:
    """A progress line on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self.stream = stream if stream is not None and stream.isatty() else None
        self.total, self.done = total, 0
        self.start = self.last = time.monotonic()

    def step(self, entries: int) -> None:
        self.done += entries
        now = time.monotonic()
        if self.stream is None or now - self.last < 0.2:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate else 0.0
        self.stream.write(f"\r{self.done:>10,} / {self.total:,} entries  {rate:,.0f}/s  ETA {eta:.0f}s ")
        self.stream.flush()

    def end(self) -> None:
        if self.stream is not None:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def build(
    paths: Sequence[Path],
    out: Path,
    *,
    cache: Path,
    jobs: int | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    issued: str | None = None,
    progress: TextIO | None = None,
    signer: Signer | None = None,
    keys: Sequence[bytes] = (),
    allow: Sequence[Path] = (),
) -> BuildSummary:
    """Build a publication from manifests into ``out``, atomically.

    Everything is written into a temporary folder next to ``out`` and swapped
    into place at the end, so ``out`` always holds either the previous
    publication or the new one, complete. A lock next to ``out`` keeps two
    builds from writing it at once.

    Args:
        paths: the manifest files.
        out: the publication's folder.
        cache: where downloaded packages go.
        jobs: worker processes (default: all cores for large matrices).
        max_entries: refuse larger matrices.
        issued: ``--issued`` (a time or ``now``), if given.
        progress: where to show progress when it is a terminal.
        signer: the release key; without one the publication is unsigned.
        keys: the publisher's key chain (DSSE keys documents, oldest first);
            without one a chain of one document naming ``signer`` is made.
        allow: folders outside the manifests' own that may hold their files.

    Returns:
        The summary.

    Raises:
        SevrefError: any problem; ``out`` is then untouched.
    """
    started = time.monotonic()
    prepared = prepare(paths, cache, max_entries, allow)
    manifest, expansion = prepared.manifest, prepared.expansion
    issued_at, expires = manifest.publication.validity(issue_time(manifest, issued))
    chain = _release_keys(signer, keys, manifest.publication.publisher_id)
    pub = manifest.publication
    release = Release.of(pub)
    signing: dict[str, object] | None = None
    shown: dict[str, object] | None = None  # what the pages say about the key
    if signer is not None:
        signing = {"keyid": signer.keyid, "algorithm": str(signer.algorithm), "keys_version": len(chain)}
        shown = {**signing, **_key_facts(signer, chain)}
    site = Site(
        release=release.to_dict(),
        publisher_name=pub.publisher_name,
        contact=pub.contact,
        url=pub.url,
        description=pub.description,
        issued=issued_at,
        expires=expires,
        signing=shown,
        calculator=CALCULATOR,
    )
    with _locked(out) as scratch:
        tree = _Tree(scratch)
        _write(tree, prepared, jobs, progress, site)
        groups = expansion.groups
        index = Index(
            release=release,
            publisher_name=pub.publisher_name,
            contact=pub.contact,
            url=pub.url,
            issued=issued_at,
            expires=expires,
            counts={"entries": expansion.entries, "groups": len(groups), "firmware": len(prepared.firmware)},
            layout=_layout(expansion),
            files=tuple(sorted(tree.files, key=lambda f: f.path)),
            signing=signing,
        )
        data = index.to_dict()
        check_document("index", data, "index.json")
        listed = list(tree.files)
        tree.write("index.json", canonical(data))
        _check_tree(tree)
        if signer is not None:
            _sign(tree, signer, chain, index, listed)
        _install(scratch, out)
    largest = max(tree.files, key=lambda f: f.size)
    pages = [f for f in tree.files if f.path.endswith(".html")]
    page = max(pages, key=lambda f: f.size)
    return BuildSummary(
        out=out,
        entries=expansion.entries,
        groups=len(groups),
        firmware=len(prepared.firmware),
        files=len(tree.files) + len(tree.unlisted),
        size=sum(f.size for f in tree.files) + sum(size for _, size in tree.unlisted),
        seconds=time.monotonic() - started,
        reports=expansion.reports,
        largest=(largest.path, largest.size),
        pages=len(pages),
        largest_page=(page.path, page.size),
    )


def _key_facts(signer: Signer, chain: Sequence[bytes]) -> dict[str, object]:
    """The release key's label in the published chain and its PEM, for the home page."""
    document = verify_chain(chain)
    entry = document.entry(signer.keyid)
    return {"label": None if entry is None else entry.label, "public_pem": signer.public_pem().decode("ascii")}


def _release_keys(signer: Signer | None, keys: Sequence[bytes], publisher: str) -> list[bytes]:
    """The key chain to publish: the given one (checked), or one document naming the signer."""
    if signer is None:
        if keys:
            raise ConfigError("--keys needs --signing-key: a key chain is published only with a signed release")
        return []
    if not keys:
        document = KeysDocument(
            publisher, 1, (KeyEntry(signer.keyid, signer.algorithm, signer.public_pem().decode(), "active"),)
        )
        return [canonical(envelope(document.to_bytes(), KEYS_PAYLOAD_TYPE, [signer]))]
    last = verify_chain(keys)
    if last.publisher != publisher:
        raise ConfigError(
            f"--keys: the key chain belongs to publisher {last.publisher!r}; the manifest's is {publisher!r}"
        )
    entry = last.entry(signer.keyid)
    if entry is None or entry.status != "active":
        state = "not in it" if entry is None else f"{entry.status} ({entry.reason})"
        raise ConfigError(
            f"--signing-key {signer.keyid}: {state} in keys/{last.version}; sign with an active key of the chain"
        )
    return list(keys)


def _sign(tree: _Tree, signer: Signer, chain: Sequence[bytes], index: Index, listed: Sequence[FileRef]) -> None:
    """Write index.dsse.json, the key chain, the in-toto statement and a .sig beside every JSON file.

    Pages and assets get no .sig of their own: the signed index pins them, as
    the in-toto statement does.
    """
    index_bytes = (tree.root / "index.json").read_bytes()
    tree.write_unlisted("index.dsse.json", canonical(envelope(index_bytes, INDEX_PAYLOAD_TYPE, [signer])))
    for version, document in enumerate(chain, start=1):
        tree.write_unlisted(f"keys/{version}.dsse.json", document)
    subjects = [(f.path, f.sha256) for f in listed] + [("index.json", hashlib.sha256(index_bytes).hexdigest())]
    predicate = {
        "release": index.release.to_dict(),
        "issued": index.issued,
        "expires": index.expires,
        "index": {"path": "index.json", "sha256": hashlib.sha256(index_bytes).hexdigest()},
        "counts": dict(index.counts),
        "calculator": CALCULATOR,
    }
    statement_bytes = statement(subjects, predicate)
    tree.write_unlisted(
        "attestation.intoto.dsse.json", canonical(envelope(statement_bytes, INTOTO_PAYLOAD_TYPE, [signer]))
    )
    for ref in [*listed, FileRef("index.json", "", 0)]:
        if ref.path.endswith(".json"):
            tree.write_unlisted(f"{ref.path}.sig", sign_file(signer, (tree.root / ref.path).read_bytes()))


def _layout(expansion: Expansion) -> dict[str, int]:
    return {
        "groups_shard_hex": shard_width(len(expansion.groups), 64),
        "digests_shard_hex": shard_width(expansion.entries, 512),
    }


def _site_sources() -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    """The templates (name -> text) and the static assets (path, bytes)."""
    folder = resource("templates")
    try:
        templates = {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.html.j2"))}
        assets = [(f"assets/{path.name}", path.read_bytes()) for path in sorted((folder / "assets").iterdir())]
    except (OSError, UnicodeDecodeError) as error:
        raise RenderError(f"{folder}: cannot read the site's templates ({error})") from error
    return templates, assets


def _write(tree: _Tree, prepared: Prepared, jobs: int | None, progress: TextIO | None, site: Site) -> None:
    """Compute every group and write groups/, digests/, firmware/, catalog/, publication.json and the pages."""
    manifest, expansion = prepared.manifest, prepared.expansion
    release_identity = Release.of(manifest.publication)
    release = release_identity.to_dict()
    layout = _layout(expansion)
    gwidth, dwidth = layout["groups_shard_hex"], layout["digests_shard_hex"]
    groups = expansion.groups
    firmware = prepared.firmware
    sources = {ident: manifest.firmware[ident].source for ident in firmware}

    candidates: dict[str, _Stream] = {}
    records: list[dict[str, object]] = []
    for ident, fw in firmware.items():
        record = firmware_record(manifest.firmware[ident], fw, hashlib.sha384(fw.data).digest())
        records.append(record)
        head, tail = canonical_frame(
            {"schema": SCHEMAS["firmware"], "release": release, "firmware": record}, "candidates"
        )
        candidates[ident] = tree.open(f"firmware/{ident}.json", head, tail)
    templates, assets = _site_sources()
    renderer = Renderer(templates, site, records)
    digests = _DigestIndex(tree.root / ".digests", dwidth)
    catalog: dict[str, list[dict[str, object]]] = {ident: [] for ident in firmware}
    meter = _Progress(progress, expansion.entries)

    _WORK.update(groups=groups, firmware=firmware, sources=sources, renderer=renderer)
    workers = jobs if jobs is not None else (min(os.cpu_count() or 1, 8) if expansion.entries >= 20_000 else 1)
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(_compute, range(len(groups)), chunksize=8) if pool else map(_compute, range(len(groups)))
        shard: _Stream | None = None
        for group, (encoded, values, page, row) in zip(groups, results, strict=True):
            name = group.id[:gwidth]
            if shard is None or shard.path != f"groups/{name}.json":
                if shard is not None:
                    shard.close()
                head, tail = canonical_frame({"schema": SCHEMAS["groups"], "release": release, "shard": name}, "groups")
                shard = tree.open(f"groups/{name}.json", head, tail)
            shard.add(encoded)
            tree.write(f"entry/{group.id}.html", page)
            catalog[group.firmware].append(row)
            for ident, value in zip(group.entry_ids(), values, strict=True):
                text = value.hex()
                digests.add(text, ident)
                if group.mode in (Mode.SEV, Mode.SEV_ES):
                    candidates[group.firmware].add(canonical_row(ident, str(group.mode), text))
            meter.step(len(values))
        if shard is not None:
            shard.close()
    finally:
        if pool is not None:
            pool.terminate()
        _WORK.clear()
        meter.end()
    for stream in candidates.values():
        stream.close()
    for name, table in digests.shards():
        tree.write(
            f"digests/{name}.json",
            canonical({"schema": SCHEMAS["digests"], "release": release, "shard": name, "digests": table}),
        )
    shutil.rmtree(digests.folder)
    publication = publication_record(manifest, expansion.reports, firmware)
    check_document("publication", publication, "publication.json")
    tree.write("publication.json", canonical(publication))

    rows: dict[str, list[dict[str, object]]] = {}
    for record in records:
        ident = str(record["id"])
        rows[ident] = sorted(catalog[ident], key=catalog_order)
        tree.write(f"catalog/{ident}.json", canonical(catalog_record(release_identity, ident, rows[ident])))
        for path, page in renderer.firmware_pages(record, rows[ident]):
            tree.write(path, page)
    counts = {"entries": expansion.entries, "groups": len(groups), "firmware": len(firmware)}
    hosts = cast("list[dict[str, Any]]", publication["host_stacks"])
    for path, page in (renderer.home(counts, rows, hosts), renderer.search([h["id"] for h in hosts])):
        tree.write(path, page)
    for path, data in assets:
        tree.write(path, data)


def _check_tree(tree: _Tree) -> None:
    """Validate every written file against its schema, reading it back from disk."""
    for ref in tree.files:
        if not ref.path.endswith(".json"):
            continue  # pages and assets: rendered from the checked records
        kind = ref.path.split("/", 1)[0].removesuffix(".json")
        if kind == "groups":
            continue  # every record was checked as it was produced; see _compute
        data = json.loads((tree.root / ref.path).read_bytes())
        check_document(kind, data, ref.path)


@contextmanager
def _locked(out: Path) -> Iterator[Path]:
    """Hold the build lock of ``out`` and yield a fresh scratch folder beside it.

    Scratch folders left by killed builds are removed first; the scratch folder
    is removed on any error.
    """
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    lock_path = parent / f".{out.name}.lock"
    handle = lock_path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise FetchError(
                f"{out}: another sevref build is writing it (lock {lock_path}); try again when it ends"
            ) from error
        if out.exists() and not (out / "index.json").is_file() and any(out.iterdir()):
            raise ConfigError(
                f"--out {out}: not empty and not a sevref publication (no index.json); refusing to replace it"
            )
        for stale in parent.glob(f".{out.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
        scratch.chmod(0o755)  # a publication is for everyone to read
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        handle.close()


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return int(result) == 0


def _install(scratch: Path, out: Path) -> None:
    """Put the finished publication at ``out``; the old one (if any) ends up in ``scratch``."""
    if not out.exists():
        os.rename(scratch, out)
        return
    if _exchange(scratch, out):
        return
    old = out.with_name(f".{out.name}.tmp-old")
    os.rename(out, old)
    os.rename(scratch, out)
    os.rename(old, scratch)


# --------------------------------------------------------------------------- keys


PASSPHRASE_ENV = "SEVREF_KEY_PASSPHRASE"  # noqa: S105  # nosec B105
"""Where the key passphrase comes from when no passphrase file is given."""


def read_passphrase(path: Path | None, env: str = PASSPHRASE_ENV) -> bytes:
    """Read a key passphrase from a file (its first line) or the environment, never from arguments.

    Args:
        path: a passphrase file, if given.
        env: the environment variable to use otherwise.

    Returns:
        The passphrase.

    Raises:
        SignatureError: none given.
    """
    if path is not None:
        lines = read_bytes(path, "passphrase file", 4096).splitlines()
        return lines[0] if lines else b""
    value = os.environ.get(env)
    if value is None:
        raise SignatureError(f"no key passphrase: set {env} or give a passphrase file (never on the command line)")
    return value.encode("utf-8")


def write_private(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only (mode 0600), refusing to overwrite one.

    Args:
        path: the new file.
        data: its contents.

    Raises:
        FetchError: the file exists or cannot be created.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as error:
        raise FetchError(f"{path}: exists; refusing to overwrite a key") from error
    except OSError as error:
        raise FetchError(f"{path}: {error.strerror or error}") from error
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def generate_key_files(prefix: Path, algorithm: Algorithm, passphrase: bytes) -> str:
    """Write a new key pair: ``PREFIX.pem`` (encrypted, 0600) and ``PREFIX.pub``.

    Args:
        prefix: path prefix of the two files.
        algorithm: the key's algorithm.
        passphrase: encrypts the private key.

    Returns:
        The key id.

    Raises:
        SevrefError: a file exists or cannot be written, or a weak passphrase.
    """
    key = generate_key(algorithm)
    private = private_pem(key, passphrase)
    public_path = prefix.with_name(prefix.name + ".pub")
    if public_path.exists():
        raise FetchError(f"{public_path}: exists; refusing to overwrite a key")
    write_private(prefix.with_name(prefix.name + ".pem"), private)
    public_path.write_bytes(public_pem(key))
    return key_id(key)


def load_signer(path: Path, passphrase: bytes) -> KeySigner:
    """Read a private key file.

    Args:
        path: the PEM file.
        passphrase: its passphrase.

    Returns:
        The signer.

    Raises:
        SevrefError: unreadable, or not a key this passphrase opens.
    """
    return load_private_key(read_bytes(path, "private key", 1 << 16), passphrase, str(path))


def load_public(path: Path) -> PublicKey:
    """Read a public key file.

    Args:
        path: the PEM file.

    Returns:
        The key.

    Raises:
        SevrefError: unreadable or not a public key.
    """
    return load_public_key(read_bytes(path, "public key", 1 << 16), str(path))


def read_chain(folder: Path) -> list[bytes]:
    """Read a key chain folder: ``1.dsse.json``, ``2.dsse.json``, ... until one is missing.

    Args:
        folder: the folder.

    Returns:
        The documents, oldest first (empty when there is none).
    """
    chain: list[bytes] = []
    while (folder / f"{len(chain) + 1}.dsse.json").is_file():
        chain.append(read_bytes(folder / f"{len(chain) + 1}.dsse.json", "keys document", 1 << 20))
    return chain


def extend_chain(
    folder: Path,
    publisher: str,
    signer: Signer,
    added: Sequence[Signer],
    revoked: Mapping[str, str],
    label: str | None,
) -> tuple[int, Path]:
    """Write the next keys document of a chain (the first when the folder is empty).

    The new document is signed by ``signer`` (an active key of the previous
    document, or its own key for the first) and by every key it adds, which
    proves their holder agrees.

    Args:
        folder: the chain's folder.
        publisher: the publisher id.
        signer: an active key of the last document.
        added: new keys.
        revoked: key id to reason, for keys to revoke.
        label: a label for the keys added (and for ``signer`` in a new chain).

    Returns:
        (the new version, its path).

    Raises:
        SevrefError: a broken chain, an inactive signer, an unknown key to revoke.
    """
    chain = read_chain(folder)
    entries: dict[str, KeyEntry] = {}
    if chain:
        last = verify_chain(chain)
        if last.publisher != publisher:
            raise ConfigError(f"{folder}: the key chain belongs to publisher {last.publisher!r}, not {publisher!r}")
        current = last.entry(signer.keyid)
        if current is None or current.status != "active":
            raise SignatureError(
                f"{signer.keyid}: not an active key of {folder}/{last.version}.dsse.json; it cannot sign the next one"
            )
        entries = {k.keyid: k for k in last.keys}
    else:
        entries[signer.keyid] = KeyEntry(
            signer.keyid, signer.algorithm, signer.public_pem().decode(), "active", None, label
        )
    for key in added:
        entries[key.keyid] = KeyEntry(key.keyid, key.algorithm, key.public_pem().decode(), "active", None, label)
    for keyid, reason in revoked.items():
        if keyid not in entries:
            raise ConfigError(f"--revoke {keyid}: no such key in the chain")
        old = entries[keyid]
        entries[keyid] = KeyEntry(old.keyid, old.algorithm, old.public_key, "revoked", reason, old.label)
    version = len(chain) + 1
    document = KeysDocument(publisher, version, tuple(sorted(entries.values(), key=lambda k: k.keyid)))
    signers = {s.keyid: s for s in (signer, *added)}
    data = canonical(envelope(document.to_bytes(), KEYS_PAYLOAD_TYPE, list(signers.values())))
    verify_chain([*chain, data])
    path = folder / f"{version}.dsse.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return version, path


# --------------------------------------------------------------------------- verify


MAX_FETCH_BYTES = 1 << 30
"""No published file is read beyond this size."""


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


def _state_key(publisher: str, product: str, stream: str) -> str:
    return f"{publisher}/{product}/{stream}"


@dataclass(frozen=True)
class VerifierState:
    """What a verifier remembers between runs, so that nothing can be rolled back."""

    serials: Mapping[str, int]
    """The highest serial seen, by ``publisher/product/stream``."""
    keys: Mapping[str, int]
    """The newest keys document seen, by publisher: a shorter chain withholds a rotation or revocation."""


def read_state(path: Path | None) -> VerifierState:
    """Read the verifier's state file.

    Args:
        path: the state file (missing: nothing seen yet).

    Returns:
        The state.

    Raises:
        ConfigError: a state file that is not sevref's.
    """
    if path is None or not path.exists():
        return VerifierState({}, {})
    try:
        data = json.loads(read_bytes(path, "state file", 1 << 20))
        if not isinstance(data, dict) or set(data) - {"serials", "keys"}:
            raise ValueError('expected {"serials": {name: integer}, "keys": {publisher: integer}}')
        tables = [data.get("serials", {}), data.get("keys", {})]
        for table in tables:
            if not isinstance(table, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in table.values()
            ):
                raise ValueError('expected {"serials": {name: integer}, "keys": {publisher: integer}}')
        return VerifierState(dict(tables[0]), dict(tables[1]))
    except (ValueError, KeyError) as error:
        raise ConfigError(f"state file {path}: {error}") from error


def write_state(path: Path, state: VerifierState) -> None:
    """Replace the verifier's state atomically (write a new file, then rename it over the old).

    Args:
        path: the state file.
        state: what to keep.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    document = {"keys": dict(sorted(state.keys.items())), "serials": dict(sorted(state.serials.items()))}
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(temporary, path)


def trust(
    location: str,
    keys: Sequence[Path],
    identity: tuple[str, str, str],
    at: datetime,
    state: Path | None,
    check_all_files: bool = True,
) -> TrustedPublication:
    """Check a publication and record its serial and key chain version in the state file.

    Args:
        location: folder or URL.
        keys: pinned public key files.
        identity: (publisher, product, stream) expected.
        at: when to check validity.
        state: the verifier's state file, if any.
        check_all_files: check every listed file now.

    Returns:
        The trusted publication.

    Raises:
        TrustError: a check failed.
        SevrefError: the keys or the state cannot be read.
    """
    publisher, product, stream = identity
    seen = read_state(state)
    name = _state_key(publisher, product, stream)
    expected = Expected(
        [load_public(k) for k in keys],
        publisher,
        product,
        stream,
        at,
        seen.serials.get(name),
        check_all_files,
        seen.keys.get(publisher),
    )
    publication = establish(reader(location), expected)
    serial, version = publication.index.release.serial, publication.keys_version
    if state is not None and (serial > seen.serials.get(name, 0) or version > seen.keys.get(publisher, 0)):
        serials = {**seen.serials, name: max(serial, seen.serials.get(name, 0))}
        versions = {**seen.keys, publisher: max(version, seen.keys.get(publisher, 0))}
        write_state(state, VerifierState(serials, versions))
    return publication
