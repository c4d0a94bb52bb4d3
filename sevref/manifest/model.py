"""The manifest model: what a vendor's manifests describe, as frozen values.

Built by :mod:`sevref.manifest.reader` from schema-valid documents; read by the
expansion and the edge. Paths stay paths: nothing here reads a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sevref.digest import Mode
from sevref.errors import ManifestError
from sevref.hosts import HostStack
from sevref.records import EntryStatus, Store
from sevref.values import format_time, parse_time

__all__ = [
    "ANY_POLICY",
    "NO_POLICY",
    "BootSpec",
    "CpuSpec",
    "DebianSource",
    "Expected",
    "FirmwareSpec",
    "Lifecycle",
    "Manifest",
    "Matrix",
    "Pattern",
    "Publication",
    "RpmSource",
    "Source",
]


@dataclass(frozen=True)
class DebianSource:
    """A file inside a Debian binary package."""

    package: str
    """Package name."""
    version: str
    """Exact package version."""
    architecture: str
    """Package architecture (``all`` for OVMF)."""
    path: str
    """The file's installed path, without a leading /."""
    deb_sha256: bytes | None
    """Pin of the .deb itself, if given (required with ``url`` or ``mirror``)."""
    url: str | None = None
    """The .deb's own URL (a pool path, a snapshot archive), instead of ``apt-get download``."""
    mirror: str | None = None
    """An archive root whose pool holds the .deb, instead of ``apt-get download``."""
    source_package: str | None = None
    """The source package, when its name is not the binary package's (it names the pool folder)."""
    origin: str = ""
    """``file:line:column`` of the ``debian`` mapping in its manifest."""
    fallback: tuple[str, ...] = ()
    """URLs of the same .deb, tried in order when apt-get download, ``url`` or ``mirror`` cannot obtain it."""
    suite: str | None = None
    """Another Debian suite (``trixie``, ``sid``) whose lists apt-get download uses (:mod:`sevref.edge.apt`)."""

    @property
    def file_name(self) -> str:
        """The .deb's name in a Debian pool: ``<package>_<version without epoch>_<architecture>.deb``."""
        return f"{self.package}_{self.version.split(':', 1)[-1]}_{self.architecture}.deb"

    def pool_path(self) -> str:
        """Where a Debian archive keeps the .deb, below its root.

        ``pool/main/<prefix>/<source package>/<file>``: the prefix is the
        source package's first letter, or its first four for ``lib*`` packages
        (``pool/main/libp/libpaper/``), as the archive software lays it out.

        Returns:
            The path, without a leading /.
        """
        source = self.source_package or self.package
        prefix = source[:4] if source.startswith("lib") and len(source) > 3 else source[:1]
        return f"pool/main/{prefix}/{source}/{self.file_name}"

    @property
    def deb_url(self) -> str | None:
        """The URL the .deb is downloaded from: ``url``, or ``mirror`` and the pool path; None: apt-get download."""
        if self.url is not None:
            return self.url
        if self.mirror is not None:
            return f"{self.mirror.rstrip('/')}/{self.pool_path().replace(':', '%3A')}"
        return None


@dataclass(frozen=True)
class RpmSource:
    """A file inside an RPM package."""

    package: str
    """Package name (the header's NAME)."""
    version: str
    """``VERSION-RELEASE`` (the header's VERSION and RELEASE)."""
    architecture: str
    """Package architecture (the header's ARCH: ``noarch`` for edk2-ovmf)."""
    path: str
    """The file's installed path, without a leading /."""
    rpm_sha256: bytes
    """Pin of the .rpm itself."""
    url: str | None = None
    """The .rpm's own URL."""
    mirror: str | None = None
    """A repository root: the package is found through ``repodata/repomd.xml`` and its primary metadata."""
    origin: str = ""
    """``file:line:column`` of the ``rpm`` mapping in its manifest."""

    @property
    def file_name(self) -> str:
        """The .rpm's conventional name: ``<name>-<version>-<release>.<arch>.rpm``."""
        return f"{self.package}-{self.version}.{self.architecture}.rpm"


@dataclass(frozen=True)
class Source:
    """Where a file comes from, pinned by sha256."""

    sha256: bytes
    """The file's pin."""
    path: Path | None = None
    """A local file (absolute after loading)."""
    debian: DebianSource | None = None
    """A file inside a Debian package."""
    url: str | None = None
    """A file downloaded from this http(s) URL."""
    origin: str = ""
    """``file:line:column`` of the source in its manifest."""
    root: Path | None = None
    """The folder of the manifest that names a local file: the file must be inside it."""
    rpm: RpmSource | None = None
    """A file inside an RPM package."""

    @property
    def kind(self) -> str:
        """Which kind of source this is: ``path``, ``url``, ``debian`` or ``rpm`` (the manifest's key)."""
        if self.path is not None:
            return "path"
        if self.url is not None:
            return "url"
        return "rpm" if self.rpm is not None else "debian"

    def debian_package(self) -> tuple[str, str] | None:
        """The Debian package the file comes from, if any.

        Returns:
            (package, version), or None.
        """
        return None if self.debian is None else (self.debian.package, self.debian.version)

    def label(self) -> str:
        """Describe the source in one line.

        Returns:
            E.g. ``ovmf 2022.11-6+deb12u2 (all): usr/share/OVMF/OVMF_CODE.fd``.
        """
        if self.debian is not None:
            d = self.debian
            return f"{d.package} {d.version} ({d.architecture}): {d.path}"
        if self.rpm is not None:
            r = self.rpm
            return f"{r.package} {r.version} ({r.architecture}): {r.path}"
        return str(self.path) if self.url is None else self.url


@dataclass(frozen=True)
class FirmwareSpec:
    """A firmware build the publication covers."""

    id: str
    """Its id in the manifests."""
    description: str
    """Free text."""
    source: Source
    """Where its image comes from."""
    origin: str
    """``file:line:column``."""
    nvram: Store | None = None
    """Where the publisher says it keeps its UEFI variables (``nvram``), if it says."""
    nvram_origin: str = ""
    """``file:line:column`` of ``nvram``."""
    modes_beyond_descriptor: frozenset[Mode] = frozenset()
    """Modes published although the package's QEMU firmware descriptor does not list them (a publisher's statement)."""
    modes_beyond_origin: str = ""
    """``file:line:column`` of ``modes_beyond_descriptor``."""


@dataclass(frozen=True)
class BootSpec:
    """A measured direct boot: kernel, optional initrd, one or more command lines."""

    id: str
    """Its id in the manifests."""
    description: str
    """Free text."""
    kernel: Source
    """The kernel image."""
    initrd: Source | None
    """The initrd, if any."""
    cmdlines: tuple[str | None, ...]
    """The command lines (None: no -append)."""
    origin: str
    """``file:line:column``."""


@dataclass(frozen=True, order=True)
class CpuSpec:
    """A guest CPU: a QEMU model name, or a bare signature (``-cpu host``)."""

    signature: int
    """CPUID Fn0000_0001 EAX."""
    name: str | None = None
    """The QEMU model's canonical name, if given by name."""

    def label(self) -> str:
        """Return the name, or the signature in hex.

        Returns:
            A short label.
        """
        return self.name or f"{self.signature:#x}"


ANY_POLICY = "any"
"""A matrix's ``expected.<mode>.policy`` that states no particular policy (none is published)."""

NO_POLICY = (
    'no guest policy; expected one (e.g. {policy: "0x30000"} for SEV-SNP) or {policy: any} to publish none, '
    "which verifiers then report"
)
"""Why a mode without a stated policy is refused. A verifier that finds no published policy cannot refuse a
guest that allows debugging (SEV-SNP policy bit 19 DEBUG, SNP ABI Table 9; SEV bit 0 NODBG, SEV API Table 2),
so every mode a matrix lists says which policy to expect, or that any will do."""


@dataclass(frozen=True)
class Expected:
    """What verifiers should expect beside the digest, for one mode."""

    policy: int | None = None
    """The guest policy (None: ``policy: any``)."""
    min_api: tuple[int, int] | None = None
    """The minimum SEV firmware API version (major, minor)."""


@dataclass(frozen=True)
class Pattern:
    """Matches combinations: each axis given must match (None: any)."""

    modes: frozenset[Mode] | None = None
    """Modes."""
    firmware: frozenset[str] | None = None
    """Firmware ids."""
    host_stacks: frozenset[str] | None = None
    """Host stack ids."""
    boots: frozenset[str | None] | None = None
    """Boot ids (None: firmware-only)."""
    cpus: frozenset[CpuSpec] | None = None
    """CPUs; one given by signature alone matches every model with that signature."""
    vcpus: frozenset[int] | None = None
    """vCPU counts."""
    origin: str = ""
    """``file:line:column``."""

    def matches_cpu(self, cpu: CpuSpec | None) -> bool:
        """Tell whether the pattern's CPU axis matches ``cpu``.

        Args:
            cpu: the combination's CPU (None where the CPU does not apply).

        Returns:
            True when it matches.
        """
        if self.cpus is None:
            return True
        if cpu is None:
            return False
        return any(p.signature == cpu.signature and (p.name is None or p.name == cpu.name) for p in self.cpus)


@dataclass(frozen=True)
class Matrix:
    """One block of combinations: the product of its axes, minus exclusions."""

    id: str
    """Its id in the manifests."""
    description: str
    """Free text."""
    modes: tuple[Mode, ...]
    """Launch modes."""
    firmware: tuple[str, ...]
    """Firmware ids."""
    host_stacks: tuple[str, ...]
    """Host stack ids."""
    cpus: tuple[CpuSpec, ...]
    """Guest CPUs (empty when no QEMU SEV-ES/SNP combination needs one)."""
    vcpus: tuple[int, ...]
    """vCPU counts, sorted."""
    boots: tuple[str | None, ...]
    """Boot ids; None is firmware-only boot."""
    expected: Mapping[Mode, Expected]
    """Published metadata per mode."""
    include: tuple[Pattern, ...]
    """If any, a combination must match one."""
    exclude: tuple[Pattern, ...]
    """A combination matching one is left out."""
    origin: str
    """``file:line:column``."""


@dataclass(frozen=True)
class Lifecycle:
    """Marks the entries a pattern matches deprecated or revoked."""

    match: Pattern
    """Which entries."""
    status: EntryStatus
    """Deprecated or revoked."""
    reason: str
    """Why."""
    successor: str | None
    """What to use instead."""
    since: str | None
    """When, as RFC 3339 UTC."""
    origin: str
    """``file:line:column``."""


@dataclass(frozen=True)
class Publication:
    """Who publishes what: the identity every published file carries."""

    publisher_id: str
    """Short publisher id."""
    publisher_name: str
    """Publisher's name."""
    contact: str
    """Where to report problems."""
    url: str | None
    """Where the publication is hosted."""
    product: str
    """Product id."""
    stream: str
    """Stream id (e.g. a distribution release)."""
    release: str
    """This release."""
    serial: int
    """Monotonically increasing across the stream's releases."""
    description: str
    """Free text."""
    issued: str | None
    """Issue time from the manifest (RFC 3339 UTC), if any."""
    expires: str | None
    """Expiry from the manifest, if any."""
    valid_for_days: int | None
    """Expiry relative to the issue time, if any."""
    origin: str
    """``file:line:column``."""

    def validity(self, issued: str) -> tuple[str, str]:
        """Resolve issue and expiry times.

        Args:
            issued: the issue time to use (from the manifest, a flag or SOURCE_DATE_EPOCH).

        Returns:
            (issued, expires) as RFC 3339 UTC.

        Raises:
            ManifestError: no expiry, or an expiry not after the issue time.
        """
        if self.expires is not None:
            expires = self.expires
        elif self.valid_for_days is not None:
            expires = format_time(parse_time(issued) + timedelta(days=self.valid_for_days))
        else:
            raise ManifestError(f"{self.origin}: publication: expected expires or valid_for_days, found neither")
        if parse_time(expires) <= parse_time(issued):
            raise ManifestError(f"{self.origin}: publication: expires {expires} is not after issued {issued}")
        return issued, expires


@dataclass(frozen=True)
class Manifest:
    """A whole publication as its manifests describe it."""

    publication: Publication
    """The identity and validity."""
    firmware: Mapping[str, FirmwareSpec]
    """Firmware builds by id, in manifest order."""
    host_stacks: Mapping[str, HostStack]
    """Host stacks by id."""
    boots: Mapping[str, BootSpec]
    """Boots by id."""
    matrices: tuple[Matrix, ...]
    """The matrix blocks."""
    lifecycle: tuple[Lifecycle, ...]
    """Lifecycle rules."""
    documents: tuple[tuple[str, bytes], ...] = field(default=())
    """(name, sha256) of every manifest file: the publication's provenance."""
    warnings: tuple[str, ...] = ()
    """Each use of a deprecated field (:data:`~sevref.manifest.reader.DEPRECATED_FIELDS`), naming its place."""
