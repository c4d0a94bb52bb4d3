"""``sevref pin``: the manifest source stanza for a file inside a package (.deb or .rpm).

The package is a local file or a URL; a URL is downloaded through the one
fetcher (:mod:`sevref.edge.fetch`: http(s) only, bounded in size and time)
into a temporary file, hashed as it arrives. The package's kind is read from
its first bytes (``!<arch>`` for a .deb, the RPM lead's magic), its identity
from its metadata (a .deb's control file, an RPM's header), the file is
streamed out of it and hashed (:mod:`sevref.edge.packages`), and its QEMU
firmware descriptor, if it ships one, is read too (:mod:`sevref.edge.descriptors`).
Nothing is judged here: the build checks the stanza when it reads the manifest.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sevref.binfmt.deb import DebArchive
from sevref.binfmt.descriptor import Described
from sevref.binfmt.rpm import LEAD_MAGIC, RpmArchive
from sevref.edge.descriptors import deb_descriptors, rpm_descriptors
from sevref.edge.fetch import Bounds, HttpFetcher
from sevref.edge.packages import PackageFiles, package_caps
from sevref.errors import FetchError, FirmwareFormatError
from sevref.limits import MAX_DEB_BYTES, MAX_FIRMWARE_BYTES

__all__ = ["Pin", "pin"]

_AR_MAGIC = b"!<arch>\n"


@dataclass(frozen=True)
class Pin:
    """What a manifest needs to pin a file inside a package."""

    kind: str
    """``debian`` or ``rpm``: the manifest key of the source."""
    package_sha256: str
    """The package file's SHA-256."""
    sha256: str
    """The file's SHA-256."""
    size: int
    """The file's size."""
    package: str
    """Package name."""
    version: str
    """Debian version, or an RPM's VERSION-RELEASE."""
    architecture: str
    """Package architecture."""
    path: str
    """The file's installed path, without a leading /."""
    url: str | None
    """Where the package is downloaded from, if known."""
    described: Described | None
    """The QEMU firmware descriptor that names the file, if the package has one."""

    def stanza(self, ident: str | None = None) -> str:
        """The YAML to paste into a manifest.

        Args:
            ident: a firmware id: print a whole firmware entry (``- id: ...``,
                under ``firmware:``); None: the ``source:`` mapping alone.

        Returns:
            YAML text, with the descriptor's facts as comments.
        """
        pad = "    " if ident else ""
        lines = [f"# {self.package} {self.version} ({self.architecture}): /{self.path}, {self.size} bytes"]
        lines += _descriptor_comments(self.described)
        if ident:
            lines.append(f"  - id: {ident}")
        pin_key = "deb_sha256" if self.kind == "debian" else "rpm_sha256"
        lines += [
            f"{pad}source:",
            f"{pad}  sha256: {self.sha256}",
            f"{pad}  {self.kind}:",
            f"{pad}    package: {json.dumps(self.package)}",
            f"{pad}    version: {json.dumps(self.version)}",
            f"{pad}    architecture: {json.dumps(self.architecture)}",
            f"{pad}    path: {json.dumps(self.path)}",
        ]
        if self.url is not None:
            lines.append(f"{pad}    url: {json.dumps(self.url)}")
        elif self.kind == "rpm":
            lines.append(f"{pad}    # url: (the .rpm's own URL) or mirror: (a repository root) is required")
        else:
            lines.append(f"{pad}    # url: or mirror: (an archive root); without either, apt-get download gets it")
        lines.append(f"{pad}    {pin_key}: {self.package_sha256}")
        return "\n".join(lines) + "\n"


def _descriptor_comments(described: Described | None) -> list[str]:
    if described is None:
        return ["# its package ships no QEMU firmware descriptor naming it (/usr/share/qemu/firmware/*.json)"]
    d = described.descriptor
    machines = "; ".join(f"{t.architecture} {', '.join(t.machines)}" for t in d.targets) or "none"
    lines = [
        f"# QEMU firmware descriptor {d.path}: {d.description}",
        f"#   mapping: {d.mapping_label()}" + (f", NVRAM template {d.nvram_template}" if d.nvram_template else ""),
        f"#   features: {', '.join(d.features) or 'none'}",
        f"#   machine types: {machines}",
    ]
    modes = [mode for mode in ("sev", "sev-es", "sev-snp") if d.lists(mode)]
    lines.append(
        f"#   sevref publishes only the modes it lists ({', '.join(modes) or 'none'}) unless the firmware entry "
        "says modes_beyond_descriptor"
    )
    return lines


@contextmanager
def _local(location: str, seconds: float) -> Iterator[tuple[Path, str | None]]:
    """The package as a local file (downloaded into a temporary folder for a URL), and its URL if any."""
    parts = urllib.parse.urlsplit(location)
    if parts.scheme not in ("http", "https"):
        yield Path(location), None
        return
    if not parts.hostname:
        raise FetchError(f"URL {location}: expected an http:// or https:// URL")
    with tempfile.TemporaryDirectory(prefix="sevref-pin-") as folder:
        target = Path(folder) / "package"
        with target.open("wb") as handle, HttpFetcher(Bounds(seconds, "--download-timeout")) as fetcher:
            for chunk in fetcher.chunks(location, MAX_DEB_BYTES):
                handle.write(chunk)
        yield target, location


def _sha256(file: Path) -> tuple[str, bytes]:
    hasher = hashlib.sha256()
    with file.open("rb") as handle:
        head = handle.read(len(_AR_MAGIC))
        hasher.update(head)
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest(), head


def pin(location: str, path: str, *, seconds: float, url: str | None = None) -> Pin:
    """Pin a file inside a package.

    Args:
        location: a .deb or .rpm file, or its http(s) URL.
        path: the file's installed path (a leading / is optional).
        seconds: the time limit of a download.
        url: the URL to write in the stanza (default: ``location`` when it is one).

    Returns:
        The pins and facts.

    Raises:
        FetchError: not obtained, not a .deb or .rpm, damaged, no such file, too large,
            or a descriptor that is not a QEMU firmware descriptor (naming it).
    """
    relative = path.lstrip("/")
    with _local(location, seconds) as (file, fetched):
        name = fetched or file.name
        try:
            package_sha256, head = _sha256(file)
        except OSError as error:
            raise FetchError(f"{location}: cannot read it ({error.strerror or error})") from error
        caps = package_caps(MAX_FIRMWARE_BYTES, "the file")
        files = PackageFiles()
        try:
            if head == _AR_MAGIC:
                with file.open("rb") as handle:
                    control = DebArchive(handle, name, caps).control()
                package, version = control.get("Package", ""), control.get("Version", "")
                architecture, kind = control.get("Architecture", ""), "debian"
                extracted = files.read(
                    file, name, relative, limit=MAX_FIRMWARE_BYTES, what="the file", open_archive=DebArchive,
                    identify=lambda _: f"{package} {version}",
                )  # fmt: skip
                described = deb_descriptors(file, name, f"{package} {version}").describing(relative)
            elif head[:4] == LEAD_MAGIC:
                with file.open("rb") as handle:
                    facts = RpmArchive(handle, name, caps).facts()
                package, version = facts["name"], f"{facts['version']}-{facts['release']}"
                architecture, kind = facts["arch"], "rpm"
                extracted = files.read(
                    file, name, relative, limit=MAX_FIRMWARE_BYTES, what="the file", open_archive=RpmArchive,
                    identify=lambda _: f"{package} {version}",
                )  # fmt: skip
                described = rpm_descriptors(file, name, f"{package} {version}").describing(relative)
            else:
                raise FetchError(
                    f"{name}: starts with {head[:8].hex()}; expected a .deb (!<arch>) or an RPM ({LEAD_MAGIC.hex()})"
                )
        except FirmwareFormatError as error:
            raise FetchError(error.diagnostic()) from error
    return Pin(
        kind=kind,
        package_sha256=package_sha256,
        sha256=extracted.sha256.hex(),
        size=len(extracted.data),
        package=package,
        version=version,
        architecture=architecture,
        path=relative,
        url=url if url is not None else fetched,
        described=described,
    )
