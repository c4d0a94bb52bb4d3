"""Debian packages: obtained the way a vendor pipeline does, read without dpkg.

``apt-get download`` fetches an exact version into a cache, pinned by sha256
(or the manifest names the .deb's URL or a mirror); a package of another
Debian suite (``suite: trixie``) is downloaded through a private apt
configuration over the build host's own archive (:mod:`sevref.edge.apt`).
The .deb is then read
directly and streamed (ar + tar members, :mod:`sevref.binfmt.deb`, through
:mod:`sevref.edge.packages`). A pinned version leaves the archive at the next
point release, so a manifest may name fallback URLs of the same .deb (a
snapshot archive's): :func:`fetch_deb` tries them in order when the first way
fails, through the one downloader (:mod:`sevref.edge.download`), and keeps
only bytes whose sha256 is the pin.
"""

from __future__ import annotations

import os
import shutil

# apt-get runs with a fixed program and checked arguments (obtain_deb).
import subprocess  # nosec B404
import tempfile
from contextlib import nullcontext
from pathlib import Path

from sevref.binfmt.deb import DebArchive
from sevref.edge.apt import SuiteApt, suite_apt
from sevref.edge.download import cached, download
from sevref.edge.files import file_sha256
from sevref.edge.packages import PackageFiles
from sevref.errors import ConfigError, DigestMismatchError, FetchError
from sevref.limits import MAX_DEB_BYTES, MAX_FIRMWARE_BYTES
from sevref.manifest.model import DebianSource

__all__ = ["fetch_deb", "identify_deb", "obtain_deb", "read_deb_file"]


def fetch_deb(debian: DebianSource, cache: Path, seconds: float) -> Path:
    """Obtain the .deb a manifest names: from ``url`` or ``mirror``, else with apt-get download; then its fallbacks.

    A .deb already in the cache under its pin is used as it is. When the first
    way fails to obtain the package (apt no longer has the version, apt is not
    installed, the server is gone), each ``fallback`` URL is tried in turn;
    bytes that are not the pin's are never kept, from any source. A first way
    that brings other bytes than the pin is refused at once: that is no
    missing package but a changed one.

    Args:
        debian: the manifest's ``debian`` source.
        cache: the cache folder (``sha256/<pin>`` for downloads, ``debs/`` for apt-get's).
        seconds: the time limit of each download.

    Returns:
        The path of the .deb, whose sha256 is the pin (when there is one).

    Raises:
        FetchError: no source gave the package; the message names each one tried, why it failed and what to do.
        DigestMismatchError: a source gave other bytes than the pin, and no fallback gave the pinned ones.
        ConfigError: a name, version or time limit that is not one.
    """
    pin = debian.deb_sha256
    if pin is not None and debian.fallback:
        found = cached(cache, pin)  # what a fallback brought last time
        if found is not None:
            return found
    try:
        url = debian.deb_url
        if url is not None:
            if pin is None:  # pragma: no cover - the schema requires it
                raise ConfigError(f"{url}: a package by URL needs deb_sha256")
            return download(url, pin, limit=MAX_DEB_BYTES, cache=cache, seconds=seconds)
        return obtain_deb(
            debian.package,
            debian.version,
            debian.architecture,
            pin,
            cache / "debs",
            advice=not debian.fallback,
            suite=debian.suite,
        )
    except DigestMismatchError:
        raise
    except FetchError as error:
        if not debian.fallback or pin is None:
            raise
        failures = [error.diagnostic()]
    mismatch = False
    for url in debian.fallback:
        try:
            return download(url, pin, limit=MAX_DEB_BYTES, cache=cache, seconds=seconds)
        except DigestMismatchError as error:
            mismatch = True
            failures.append(f"fallback {error.diagnostic()}")
        except FetchError as error:
            failures.append(f"fallback {url}: {error.diagnostic()}")
    message = (
        f"{'; '.join(failures)}; expected {debian.file_name} with sha256 {pin.hex()} (the pin) from one of them: "
        "name a URL that still serves it (a snapshot archive keeps every version)"
    )
    raise (DigestMismatchError if mismatch else FetchError)(message)


def obtain_deb(
    name: str,
    version: str,
    architecture: str,
    sha256: bytes | None,
    cache: Path,
    *,
    advice: bool = True,
    suite: str | None = None,
) -> Path:
    """Download a Debian package with ``apt-get download`` into a cache.

    A cached file is used when it is there (and matches the pin, if one is
    given); otherwise the package is downloaded into a temporary folder, checked
    against the pin, and moved into place. With ``suite``, apt-get runs under
    the suite's private configuration (:func:`sevref.edge.apt.suite_apt`, in
    ``apt/<suite>`` beside ``cache``): its lists are updated first unless they
    are fresh, and once more when they do not know the version (at most once a
    run).

    Args:
        name: the package name, e.g. ``ovmf``.
        version: the exact version, e.g. ``2022.11-6+deb12u2``.
        architecture: the package architecture, e.g. ``all``.
        sha256: the pin of the .deb file, if any.
        cache: the folder that keeps downloaded packages.
        advice: end a failure with what the manifest can do about it (not when it names fallbacks).
        suite: another Debian suite than the build host's (``trixie``, ``sid``), or None for the host's lists.

    Returns:
        The path of the .deb in the cache.

    Raises:
        ConfigError: a name, version or suite that is not one.
        FetchError: apt-get is missing or fails, or the host has no Debian archive to take the suite from.
        DigestMismatchError: the .deb does not match the pin.
    """
    for part, label in ((name, "package name"), (version, "package version"), (architecture, "architecture")):
        if not part or part.startswith("-") or any(c in part for c in "/= \t\n"):
            raise ConfigError(f"{label}: expected a Debian {label}, found {part!r}")
    target = cache / f"{name}_{version.replace(':', '%3a')}_{architecture}.deb"
    if target.is_file() and (sha256 is None or file_sha256(target, "package") == sha256):
        return target
    label = f"{name}={version}" + (f" (suite {suite})" if suite is not None else "")
    apt = shutil.which("apt-get")
    if apt is None:
        raise FetchError(
            f"{label}: apt-get is not installed; expected a Debian-based system"
            + (f", or {_NEXT_STEP}" if advice else "")
        )
    private: SuiteApt | None = None
    if suite is not None:
        try:
            private = suite_apt(suite, cache.parent)
        except FetchError as error:
            raise FetchError(f"{label}: {error.diagnostic()}" + (f"; or {_NEXT_STEP}" if advice else "")) from error
    cache.mkdir(parents=True, exist_ok=True)
    with (
        private.locked() if private is not None else nullcontext(),
        tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as folder,
    ):
        if private is not None and not private.fresh():
            private.update(f"{name}={version}")
        run = _download(apt, name, version, folder, private)
        if run.returncode != 0 and private is not None and not private.updated_this_run():
            # Lists reused from an earlier run may predate the version: refresh them once.
            private.update(f"{name}={version}")
            run = _download(apt, name, version, folder, private)
        debs = sorted(Path(folder).glob("*.deb"))
        if run.returncode != 0 or len(debs) != 1:
            problem = _apt_problem(run.stderr, run.returncode, advice, suite)
            raise FetchError(f"apt-get download {label} failed: {problem}")
        if debs[0].name != target.name:
            raise FetchError(f"apt-get download {label}: got {debs[0].name}; expected {target.name}")
        found = file_sha256(debs[0], "package")
        if sha256 is not None and found != sha256:
            raise DigestMismatchError(f"{debs[0].name}: sha256 is {found.hex()}, expected {sha256.hex()} (the pin)")
        os.replace(debs[0], target)
    return target


def _download(
    apt: str, name: str, version: str, folder: str, private: SuiteApt | None
) -> subprocess.CompletedProcess[str]:
    """Run ``apt-get download NAME=VERSION`` in ``folder``, under the suite's configuration if there is one."""
    return subprocess.run(  # noqa: S603  # nosec B603
        [apt, "download", f"{name}={version}"],
        cwd=folder,
        env=private.env() if private is not None else None,
        capture_output=True,
        text=True,
        check=False,
    )


_NEXT_STEP = (
    "add debian.fallback: [the .deb's URL in a snapshot archive or a mirror] (with deb_sha256), or "
    "give debian.url (the .deb's URL, e.g. in a snapshot archive) or debian.mirror (an archive root)"
)


def _apt_problem(stderr: str, status: int, advice: bool = True, suite: str | None = None) -> str:
    """Say why apt-get download failed, and (with ``advice``) what the manifest can do about it."""
    lines = [line for line in stderr.splitlines() if line.startswith("E:")] or stderr.splitlines()
    said = lines[-1] if lines else f"exit status {status}"
    if suite is not None:  # lists just updated: the suite itself lacks the version or the package
        if "was not found" in said or "Unable to locate package" in said:
            said = f"suite {suite} of the host's Debian archive has no such package version ({said})"
        return said + (f"; check the version with apt-cache madison, or {_NEXT_STEP}" if advice else "")
    if "was not found" in said:  # E: Version '…' for '…' was not found
        return f"the archive no longer has this version, or apt's lists are another release's ({said})" + (
            f"; {_NEXT_STEP}, or point APT_CONFIG at lists that have it" if advice else ""
        )
    if "Unable to locate package" in said:
        return f"apt's lists do not know the package ({said})" + (
            f"; run apt-get update, or {_NEXT_STEP}" if advice else ""
        )
    return f"{said}" + (f" (are the package lists current? run apt-get update, or {_NEXT_STEP})" if advice else "")


def identify_deb(archive: DebArchive, package: str, version: str, architecture: str) -> str:
    """Check a .deb's control file against the manifest.

    Args:
        archive: the open package.
        package: the expected Package.
        version: the expected Version.
        architecture: the expected Architecture.

    Returns:
        ``package version``.

    Raises:
        FetchError: a field differs (the message names it, what was expected and what was found).
        FirmwareFormatError: no readable control file.
    """
    control = archive.control()
    for field, expected in (("Package", package), ("Version", version), ("Architecture", architecture)):
        if control.get(field) != expected:
            found = " ".join(str(control.get(f)) for f in ("Package", "Version", "Architecture"))
            raise FetchError(
                f"{archive.what}: its control file says {found}; expected {package} {version} {architecture} "
                f"({field} {control.get(field)!r}, expected {expected!r})"
            )
    return f"{package} {version}"


def read_deb_file(deb: Path, member: str, limit: int = MAX_FIRMWARE_BYTES) -> tuple[bytes, dict[str, str]]:
    """Read one file out of a .deb, streamed and bounded.

    Args:
        deb: the package file.
        member: the file's installed path, e.g. ``usr/share/OVMF/OVMF_CODE.fd``.
        limit: the largest file accepted.

    Returns:
        The file's bytes and the package's control fields.

    Raises:
        SevrefError: the package cannot be read or lacks the file.
    """
    control: dict[str, str] = {}

    def identify(archive: DebArchive) -> str:
        """Keep the control fields; the package is whatever it says it is."""
        control.update(archive.control())
        return f"{control.get('Package', deb.name)} {control.get('Version', '')}"

    found = PackageFiles().read(
        deb, deb.name, member, limit=limit, what=member, open_archive=DebArchive, identify=identify
    )
    return found.data, control
