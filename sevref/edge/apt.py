"""Another Debian suite's packages, through the build host's own archive.

A manifest's ``debian: {suite: trixie}`` asks for a package of a suite the
build host does not use. sevref then runs ``apt-get update`` and ``apt-get
download`` under a private ``APT_CONFIG`` whose lists, cache and sources live
in its cache folder (``CACHE/apt/<suite>/``). The sources are the build host's:
the entries of its apt sources (``/etc/apt/sources.list`` and
``/etc/apt/sources.list.d/*.list`` and ``*.sources``, one-line and deb822
formats, sources.list(5)) whose suite is the host's own Debian release
(``VERSION_CODENAME`` in ``/etc/os-release``), with their URIs, components and
``Signed-By`` keyring, and that suite replaced by the manifest's. No archive
host is named here or in a manifest: whatever archive (or mirror) the build
host trusts serves the other suite too, and apt checks its signatures with the
host's keyring as it does for the host's own packages.

The lists are refreshed at most once a run (a process) and reused while they
are fresh (:data:`FRESH_SECONDS`); a package the reused lists do not know makes
:func:`sevref.edge.debian.obtain_deb` refresh them once and try again.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil

# apt-get runs with a fixed program and checked arguments.
import subprocess  # nosec B404
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sevref.errors import ConfigError, FetchError

__all__ = [
    "FRESH_SECONDS",
    "HOST_ETC",
    "ArchiveSource",
    "SuiteApt",
    "apt_problem",
    "host_archive",
    "parse_sources",
    "suite_apt",
]

HOST_ETC = Path("/etc")
"""Where the build host keeps ``apt/`` and ``os-release`` (a test points it at a folder of its own)."""

FRESH_SECONDS = 24 * 3600
"""Lists updated less than this long ago are reused without ``apt-get update`` (a refresh at most once a run)."""

SUITE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
"""A Debian suite or codename as the archive names it (``trixie``, ``sid``, ``trixie-backports``)."""

_UPDATED: set[Path] = set()
"""The suites' folders whose lists this process has updated: never twice a run."""


@dataclass(frozen=True)
class ArchiveSource:
    """One entry of apt's sources, as much of it as sevref carries over."""

    types: tuple[str, ...]
    """``deb``, ``deb-src``."""
    uris: tuple[str, ...]
    """The archive roots."""
    suites: tuple[str, ...]
    """The suites (or codenames) it names."""
    components: tuple[str, ...]
    """``main`` and the like."""
    signed_by: str | None
    """The keyring (a file, or a key block inline in a deb822 file), as written."""
    enabled: bool = True
    """False for a deb822 stanza with ``Enabled: no``."""


def _one_line(line: str, where: str) -> ArchiveSource | None:
    """Parse a one-line-style entry: ``deb [opt=value ...] URI suite [component ...]``."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    options: dict[str, str] = {}
    match = re.match(r"^(\S+)\s+\[([^\]]*)\]\s*(.*)$", text)
    if match:
        kind, raw, rest = match.groups()
        for option in raw.split():
            name, _, value = option.partition("=")
            options[name.rstrip("+-").lower()] = value
    else:
        kind, _, rest = text.partition(" ")
    words = rest.split()
    if kind not in ("deb", "deb-src") or len(words) < 2:
        raise FetchError(f"{where}: expected 'deb [options] URI suite [component ...]', found {line.strip()!r}")
    return ArchiveSource(
        types=(kind,),
        uris=(words[0],),
        suites=(words[1],),
        components=tuple(words[2:]),
        signed_by=options.get("signed-by") or None,
    )


def _deb822(text: str, where: str) -> Iterator[ArchiveSource]:
    """Parse deb822-style stanzas (fields folded over continuation lines; ``#`` lines are comments)."""
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        name = ""
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and name:
                fields[name] += "\n" + line
                continue
            name, colon, value = line.partition(":")
            name = name.strip().lower()
            if not colon or not name:
                if line.strip():
                    raise FetchError(f"{where}: expected 'Field: value', found {line.strip()!r}")
                name = ""
                continue
            fields[name] = value.strip()
        if not fields:
            continue
        yield ArchiveSource(
            types=tuple(fields.get("types", "").split()),
            uris=tuple(fields.get("uris", "").split()),
            suites=tuple(fields.get("suites", "").split()),
            components=tuple(fields.get("components", "").split()),
            signed_by=fields.get("signed-by") or None,
            enabled=fields.get("enabled", "yes").strip().lower() not in ("no", "false", "0"),
        )


def parse_sources(etc: Path) -> list[ArchiveSource]:
    """Read every entry of the host's apt sources, in the order apt reads them.

    Args:
        etc: the folder holding ``apt/`` (``/etc``).

    Returns:
        The entries of ``apt/sources.list`` and ``apt/sources.list.d/*.list`` and
        ``*.sources`` (files of other names are ignored, as apt ignores them).

    Raises:
        FetchError: a file that cannot be read or is in neither format.
    """
    found: list[ArchiveSource] = []
    files = [etc / "apt" / "sources.list"]
    parts = etc / "apt" / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    for path in files:
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            raise FetchError(f"{path}: cannot read the build host's apt sources: {error.strerror}") from error
        if path.suffix == ".sources":
            found += _deb822(text, str(path))
        else:
            found += [e for n, line in enumerate(text.splitlines(), 1) if (e := _one_line(line, f"{path}:{n}"))]
    return found


def _release(etc: Path) -> tuple[str, tuple[str, ...]]:
    """The host's distribution id and the suite names its own release's archive entries use."""
    fields: dict[str, str] = {}
    path = etc / "os-release"
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            raise FetchError(f"{path}: cannot read: {error.strerror}") from error
        for line in text.splitlines():
            name, _, value = line.partition("=")
            fields[name.strip()] = value.strip().strip("\"'")
    codename = fields.get("VERSION_CODENAME", "")
    names: tuple[str, ...] = (codename,) if codename else ()
    if "VERSION_ID" not in fields:  # testing and unstable have no version (os-release(5), Debian's base-files)
        names += ("testing", "unstable", "sid")
    return fields.get("ID", ""), names


def host_archive(etc: Path | None = None) -> list[ArchiveSource]:
    """The host's Debian archive: the enabled ``deb`` entries of its own release's main suite.

    Args:
        etc: the folder holding ``apt/`` and ``os-release`` (:data:`HOST_ETC` if None).

    Returns:
        One entry per URI and keyring, with that release's suite (the others of
        the same entry, ``-updates`` say, are not carried over).

    Raises:
        FetchError: the host is not Debian, or its sources name no archive for its release.
    """
    etc = HOST_ETC if etc is None else etc
    distribution, names = _release(etc)
    if distribution != "debian":
        raise FetchError(
            f"the build host is {distribution or 'of unknown distribution'} ({etc / 'os-release'}); "
            "expected Debian, whose apt sources name the Debian archive"
        )
    kept: dict[tuple[str, str | None, tuple[str, ...]], ArchiveSource] = {}
    for entry in parse_sources(etc):
        suite = next((s for s in entry.suites if s in names), None)
        if not entry.enabled or "deb" not in entry.types or suite is None:
            continue
        for uri in entry.uris:
            key = (uri, entry.signed_by, entry.components)
            kept.setdefault(key, ArchiveSource(("deb",), (uri,), (suite,), entry.components, entry.signed_by))
    if not kept:
        raise FetchError(
            f"the build host's apt sources ({etc / 'apt' / 'sources.list'}, {etc / 'apt' / 'sources.list.d'}) name "
            f"no Debian archive for its release ({', '.join(names) or 'no VERSION_CODENAME'}); expected a deb entry "
            "with that suite"
        )
    return list(kept.values())


def _stanza(entry: ArchiveSource, suite: str) -> str:
    """A deb822 stanza of ``entry`` with ``suite``; a keyring given inline keeps its continuation lines."""
    lines = ["Types: deb", f"URIs: {entry.uris[0]}", f"Suites: {suite}"]
    lines.append(f"Components: {' '.join(entry.components) or 'main'}")
    if entry.signed_by is not None:
        lines.append(f"Signed-By: {entry.signed_by}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class SuiteApt:
    """A private apt configuration for one suite, in the cache."""

    suite: str
    """The suite, e.g. ``trixie``."""
    folder: Path
    """``CACHE/apt/<suite>``."""

    @property
    def config(self) -> Path:
        """The file ``APT_CONFIG`` names."""
        return self.folder / "apt.conf"

    def env(self) -> dict[str, str]:
        """The environment apt-get runs in: the caller's with ``APT_CONFIG``.

        Returns:
            The environment.
        """
        return {**os.environ, "APT_CONFIG": str(self.config)}

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the suite's folder for one sevref process at a time (apt's lists have one writer).

        Yields:
            Nothing; the lock is released on leaving.
        """
        with open(self.folder / ".sevref-lock", "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def fresh(self) -> bool:
        """Whether the lists were updated by this process or recently enough to reuse.

        Returns:
            True when ``apt-get update`` need not run.
        """
        stamp = self.folder / "updated"
        if self.folder in _UPDATED:
            return True
        return stamp.is_file() and time.time() - stamp.stat().st_mtime < FRESH_SECONDS

    def updated_this_run(self) -> bool:
        """Whether this process already ran ``apt-get update`` for the suite.

        Returns:
            True after :meth:`update`.
        """
        return self.folder in _UPDATED

    def update(self, what: str) -> None:
        """Run ``apt-get update`` under the private configuration (at most once a process).

        Args:
            what: how errors name the package (``ovmf=2025.02-8+deb13u1``).

        Raises:
            FetchError: apt-get is missing or the update fails.
        """
        if self.folder in _UPDATED:
            return
        apt = shutil.which("apt-get")
        if apt is None:
            raise FetchError(f"{what} (suite {self.suite}): apt-get is not installed; expected a Debian-based system")
        run = subprocess.run(  # noqa: S603  # nosec B603
            [apt, "update"], env=self.env(), capture_output=True, text=True, check=False
        )
        if run.returncode != 0 or any(line.startswith("E:") for line in run.stderr.splitlines()):
            raise FetchError(
                f"apt-get update of suite {self.suite} for {what} failed: {apt_problem(run.stderr, run.returncode)}"
            )
        (self.folder / "updated").touch()
        _UPDATED.add(self.folder)


def apt_problem(stderr: str, status: int) -> str:
    """Apt's own last error line, or its exit status.

    Args:
        stderr: what apt-get printed on standard error.
        status: its exit status.

    Returns:
        One line.
    """
    lines = [line for line in stderr.splitlines() if line.startswith("E:")] or stderr.splitlines()
    return " ".join(lines[-1].split()) if lines else f"exit status {status}"


def suite_apt(suite: str, cache: Path, etc: Path | None = None) -> SuiteApt:
    """Write the private apt configuration of ``suite`` into the cache (lists not updated).

    ``CACHE/apt/<suite>/`` holds ``apt.conf`` (what ``APT_CONFIG`` names),
    ``sources.list.d/debian.sources`` (the host's archive with ``suite``),
    ``lists/`` and ``cache/``. The host's own sources, preferences and lists
    are not read (``Dir::Etc::SourceList`` and the preferences point nowhere);
    its ``apt.conf.d`` and keyrings are, so signatures are checked as for the
    host's own packages.

    Args:
        suite: the suite, e.g. ``trixie``.
        cache: sevref's cache folder.
        etc: the folder holding the host's ``apt/`` and ``os-release`` (:data:`HOST_ETC` if None).

    Returns:
        The configuration.

    Raises:
        ConfigError: a suite that is not one.
        FetchError: the host's sources name no Debian archive for its release.
    """
    if not SUITE.match(suite):
        raise ConfigError(f"suite: expected a Debian suite such as trixie or sid, found {suite!r}")
    folder = cache.resolve() / "apt" / suite  # absolute: apt-get download runs in a folder of its own
    if any(c in str(folder) for c in '"\n;{}'):  # apt.conf(5) quotes values; these would end one
        raise ConfigError(f"cache folder {str(folder)!r}: expected a path without quotes, braces, ';' or newlines")
    sources = "\n".join(_stanza(entry, suite) for entry in host_archive(etc))
    for sub in ("lists/partial", "cache/archives/partial", "sources.list.d"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    nowhere = folder / "none"  # never created: apt reads nothing from it
    config = "".join(
        f'{key} "{value}";\n'
        for key, value in (
            ("Dir::State::Lists", folder / "lists"),
            ("Dir::Cache", folder / "cache"),
            ("Dir::Etc::SourceList", nowhere / "sources.list"),
            ("Dir::Etc::SourceParts", folder / "sources.list.d"),
            ("Dir::Etc::Preferences", nowhere / "preferences"),
            ("Dir::Etc::PreferencesParts", nowhere),
        )
    )
    for path, text in ((folder / "sources.list.d" / "debian.sources", sources), (folder / "apt.conf", config)):
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            (folder / "updated").unlink(missing_ok=True)  # other sources: the lists are stale
    return SuiteApt(suite, folder)
