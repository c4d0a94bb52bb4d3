"""Packages of another Debian suite (``debian: {suite: trixie}``), through the build host's own archive.

sevref writes a private apt configuration into its cache (``CACHE/apt/<suite>/``)
whose sources are the build host's Debian archive entries with the suite
replaced, then runs ``apt-get update`` and ``apt-get download`` under it. Here
the host is a folder the test writes (``os-release`` and ``apt/``, pointed at
by :data:`sevref.edge.apt.HOST_ETC`) and apt-get is a script first on PATH that
logs its ``APT_CONFIG`` and arguments and serves a .deb the test made; nothing
here reaches the internet. The archive URIs below are the test's own
(``.example.org``): sevref invents none.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import pytest

from sevref.edge import apt
from sevref.edge.apt import ArchiveSource, host_archive, parse_sources
from sevref.errors import FetchError
from tests.test_fallback import OTHER, PACKAGE
from tests.test_sources import DEB, DEB_SHA256, TINY_SHA256, VERSION, manifest, run

KEY = "/usr/share/keyrings/example-archive-keyring.gpg"
DEB822 = f"""Types: deb
# a comment inside the stanza
URIs: http://archive.example.org/debian
Suites: bookworm bookworm-updates
Components: main contrib
Trusted: yes
Signed-By: {KEY}

Types: deb
URIs: http://archive.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: {KEY}

Types: deb-src
URIs: http://archive.example.org/debian
Suites: bookworm trixie sid
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example.org/debian
Suites: bookworm
Components: main
"""
"""The host's deb822 sources: its release and -updates, security, sources, and a disabled stanza.

``Trusted: yes`` here and ``trusted=yes`` below are not carried over: the suite's signatures are checked."""
ONE_LINE = """# the host's one-line sources
deb [arch=amd64 trusted=yes signed-by=/etc/apt/keyrings/mirror.gpg] http://mirror.example.org/debian bookworm main
deb http://other.example.org/debian bookworm-backports main
"""
EXPECTED_SOURCES = f"""Types: deb
URIs: http://mirror.example.org/debian
Suites: trixie
Components: main
Signed-By: /etc/apt/keyrings/mirror.gpg

Types: deb
URIs: http://archive.example.org/debian
Suites: trixie
Components: main contrib
Signed-By: {KEY}
"""
"""What sevref writes for suite trixie: the two entries of the host's release (sources.list first, as apt reads)."""
NOT_FOUND = f"E: Version '{VERSION}' for 'ovmf' was not found"


def host(root: Path, os_release: str = 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n') -> Path:
    """A build host's /etc: os-release, sources.list, sources.list.d (with a file apt ignores)."""
    (root / "apt" / "sources.list.d").mkdir(parents=True)
    (root / "os-release").write_text(os_release, encoding="utf-8")
    (root / "apt" / "sources.list").write_text(ONE_LINE, encoding="utf-8")
    (root / "apt" / "sources.list.d" / "debian.sources").write_text(DEB822, encoding="utf-8")
    (root / "apt" / "sources.list.d" / "vendor.list.disabled").write_text(
        "deb http://vendor.example.org/apt bookworm main\n", encoding="utf-8"
    )
    return root


class FakeApt:
    """An apt-get alone on PATH (a Python script): logs ``APT_CONFIG`` and its arguments; ``download`` copies ``served`` here."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "bin").mkdir(parents=True)
        self.log = folder / "calls"
        self.served = folder / "served.deb"
        self.served.write_bytes(DEB)
        self.not_found = folder / "not-found"  # while it exists, download says the version is not found
        script = folder / "bin" / "apt-get"
        script.write_text(
            f"#!{sys.executable}\n"
            "import os, shutil, sys\n"
            f"with open({str(self.log)!r}, 'a') as log:\n"
            "    print(os.environ.get('APT_CONFIG', ''), *sys.argv[1:], file=log)\n"
            "if sys.argv[1] == 'download':\n"
            f"    if os.path.exists({str(self.not_found)!r}):\n"
            f"        sys.exit(print({NOT_FOUND!r}, file=sys.stderr) or 100)\n"
            f"    shutil.copy({str(self.served)!r}, 'ovmf_1%3a2099.02-1_all.deb')  # apt-get's name for an epoch\n",
            encoding="utf-8",
        )
        script.chmod(0o755)

    def calls(self) -> list[str]:
        """Each call's ``APT_CONFIG`` and arguments, and forget them."""
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return lines


@pytest.fixture()
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeApt:
    """The fake apt-get alone on PATH, a fresh run (no suite updated yet) and the test's host."""
    found = FakeApt(tmp_path / "apt-get")
    monkeypatch.setenv("PATH", str(found.folder / "bin"))
    monkeypatch.setattr(apt, "_UPDATED", set())
    monkeypatch.setattr(apt, "HOST_ETC", host(tmp_path / "etc"))
    return found


def source(suite: str = "trixie", pin: str = DEB_SHA256) -> str:
    return (
        f"{{sha256: {TINY_SHA256}, debian: {{package: ovmf, version: '{VERSION}', deb_sha256: {pin}, "
        f"path: {PACKAGE}, suite: {suite}}}}}"
    )


def build(folder: Path, cache: Path, capsys: pytest.CaptureFixture[str], text: str | None = None) -> tuple[int, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = manifest(folder, text or source())
    status, _, err = run(["build", str(path), "--out", str(folder / "site"), "--cache", str(cache)], capsys)
    return status, err


def test_a_suite_is_downloaded_under_a_private_apt_config_over_the_hosts_archive(
    fake: FakeApt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    status, err = build(tmp_path / "a", cache, capsys)
    assert (status, err) == (0, ""), err
    private = cache / "apt" / "trixie"
    config = private / "apt.conf"
    assert fake.calls() == [f"{config} update", f"{config} download ovmf={VERSION}"]
    assert (private / "sources.list.d" / "debian.sources").read_text(encoding="utf-8") == EXPECTED_SOURCES
    settings = dict(line.rstrip(";").split(" ", 1) for line in config.read_text(encoding="utf-8").splitlines())
    assert settings == {
        "Dir::State::Lists": f'"{private / "lists"}"',
        "Dir::Cache": f'"{private / "cache"}"',
        "Dir::Etc::SourceList": f'"{private / "none" / "sources.list"}"',  # the host's own sources are not read
        "Dir::Etc::SourceParts": f'"{private / "sources.list.d"}"',
        "Dir::Etc::Preferences": f'"{private / "none" / "preferences"}"',
        "Dir::Etc::PreferencesParts": f'"{private / "none"}"',
    }
    assert not (private / "none").exists()
    written = config.read_text(encoding="utf-8") + EXPECTED_SOURCES
    assert "trusted" not in written.lower()  # signatures are checked, with the host's keyrings
    assert (cache / "debs" / "ovmf_1%3a2099.02-1_all.deb").read_bytes() == DEB


def test_lists_are_updated_at_most_once_a_run_and_reused_while_fresh(
    fake: FakeApt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    config = cache / "apt" / "trixie" / "apt.conf"
    assert build(tmp_path / "a", cache, capsys) == (0, "")
    assert fake.calls() == [f"{config} update", f"{config} download ovmf={VERSION}"]
    assert build(tmp_path / "b", cache, capsys) == (0, "")
    assert fake.calls() == []  # the pinned .deb is in the cache: no apt at all
    (cache / "debs" / "ovmf_1%3a2099.02-1_all.deb").unlink()
    assert build(tmp_path / "c", cache, capsys) == (0, "")
    assert fake.calls() == [f"{config} download ovmf={VERSION}"]  # the same run: no second update
    monkeypatch.setattr(apt, "_UPDATED", set())  # a new run, lists updated an hour ago
    stamp = cache / "apt" / "trixie" / "updated"
    os.utime(stamp, (time.time() - 3600,) * 2)
    (cache / "debs" / "ovmf_1%3a2099.02-1_all.deb").unlink()
    assert build(tmp_path / "d", cache, capsys) == (0, "")
    assert fake.calls() == [f"{config} download ovmf={VERSION}"]
    monkeypatch.setattr(apt, "_UPDATED", set())  # a new run, lists older than FRESH_SECONDS
    os.utime(stamp, (time.time() - apt.FRESH_SECONDS - 1,) * 2)
    (cache / "debs" / "ovmf_1%3a2099.02-1_all.deb").unlink()
    assert build(tmp_path / "e", cache, capsys) == (0, "")
    assert fake.calls() == [f"{config} update", f"{config} download ovmf={VERSION}"]


def test_fresh_lists_that_lack_the_version_are_refreshed_once(
    fake: FakeApt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    config = cache / "apt" / "trixie" / "apt.conf"
    assert build(tmp_path / "a", cache, capsys) == (0, "")
    fake.calls()
    monkeypatch.setattr(apt, "_UPDATED", set())  # the next run: fresh lists, but the version is newer
    (cache / "debs" / "ovmf_1%3a2099.02-1_all.deb").unlink()
    fake.not_found.touch()
    status, err = build(tmp_path / "b", cache, capsys)
    assert fake.calls() == [
        f"{config} download ovmf={VERSION}",
        f"{config} update",
        f"{config} download ovmf={VERSION}",
    ]
    assert status == 1 and err.count("\n") == 1, err
    assert err.startswith(f"sevref: error: {tmp_path / 'b' / 'm.yaml'}:12:")
    assert err.endswith(
        f": firmware fw: apt-get download ovmf={VERSION} (suite trixie) failed: suite trixie of the host's Debian "
        f"archive has no such package version ({NOT_FOUND}); check the version with apt-cache madison, or add "
        "debian.fallback: [the .deb's URL in a snapshot archive or a mirror] (with deb_sha256), or give debian.url "
        "(the .deb's URL, e.g. in a snapshot archive) or debian.mirror (an archive root)\n"
    )


def test_the_deb_sha256_still_pins_the_bytes(fake: FakeApt, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake.served.write_bytes(OTHER)
    status, err = build(tmp_path / "a", tmp_path / "cache", capsys)
    assert status == 1 and err.count("\n") == 1, err
    other = hashlib.sha256(OTHER).hexdigest()
    assert f": firmware fw: ovmf_1%3a2099.02-1_all.deb: sha256 is {other}, expected {DEB_SHA256} (the pin)\n" in err
    assert not (tmp_path / "cache" / "debs" / "ovmf_1%3a2099.02-1_all.deb").exists()


def test_a_host_that_is_not_debian_is_refused_naming_the_package_and_suite(
    fake: FakeApt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    etc = host(tmp_path / "ubuntu", "ID=ubuntu\nVERSION_ID=24.04\nVERSION_CODENAME=noble\n")
    monkeypatch.setattr(apt, "HOST_ETC", etc)
    status, err = build(tmp_path / "a", tmp_path / "cache", capsys)
    assert status == 1 and err.count("\n") == 1, err
    assert ":12:" in err and f"firmware fw: ovmf={VERSION} (suite trixie): the build host is ubuntu (" in err
    assert "expected Debian, whose apt sources name the Debian archive; or add debian.fallback" in err
    assert fake.calls() == []


def test_a_host_whose_sources_lack_its_release_is_refused(
    fake: FakeApt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    etc = host(tmp_path / "trixie-host", 'ID=debian\nVERSION_ID="13"\nVERSION_CODENAME=trixie\n')
    monkeypatch.setattr(apt, "HOST_ETC", etc)
    status, err = build(tmp_path / "a", tmp_path / "cache", capsys)
    assert status == 1 and err.count("\n") == 1, err
    assert f"firmware fw: ovmf={VERSION} (suite trixie): the build host's apt sources (" in err
    assert "name no Debian archive for its release (trixie); expected a deb entry with that suite" in err


def test_a_suite_with_a_url_or_mirror_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = source().replace("suite: trixie", "suite: trixie, url: 'http://a.example.org/a.deb'")
    manifest(tmp_path, text)
    status, _, err = run(["validate", str(tmp_path / "m.yaml")], capsys)
    assert status == 1 and "/debian: expected one of suite, url, found both" in err, err
    manifest(tmp_path, source(suite="Trixie"))
    status, _, err = run(["validate", str(tmp_path / "m.yaml")], capsys)
    assert status == 1 and 'expected text matching ^[a-z][a-z0-9-]{0,63}$, found "Trixie"' in err, err


def test_both_formats_of_apt_sources_are_read(tmp_path: Path) -> None:
    etc = host(tmp_path / "etc")
    inline = "Types: deb\nURIs: http://inline.example.org/debian\nSuites: bookworm\nComponents: main\n"
    inline += "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGb\n -----END PGP PUBLIC KEY BLOCK-----\n"
    (etc / "apt" / "sources.list.d" / "inline.sources").write_text(inline, encoding="utf-8")
    entries = parse_sources(etc)
    assert [(e.types, e.uris[0], e.suites, e.enabled) for e in entries] == [
        (("deb",), "http://mirror.example.org/debian", ("bookworm",), True),
        (("deb",), "http://other.example.org/debian", ("bookworm-backports",), True),
        (("deb",), "http://archive.example.org/debian", ("bookworm", "bookworm-updates"), True),
        (("deb",), "http://archive.example.org/debian-security", ("bookworm-security",), True),
        (("deb-src",), "http://archive.example.org/debian", ("bookworm", "trixie", "sid"), True),
        (("deb",), "http://disabled.example.org/debian", ("bookworm",), False),
        (("deb",), "http://inline.example.org/debian", ("bookworm",), True),
    ]
    kept = host_archive(etc)
    assert [e.uris[0] for e in kept] == [
        "http://mirror.example.org/debian",
        "http://archive.example.org/debian",
        "http://inline.example.org/debian",
    ]
    assert kept[2].signed_by == (
        "\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGb\n -----END PGP PUBLIC KEY BLOCK-----"
    )
    assert kept[0] == ArchiveSource(
        ("deb",), ("http://mirror.example.org/debian",), ("bookworm",), ("main",), ("/etc/apt/keyrings/mirror.gpg")
    )


def test_a_testing_or_unstable_host_takes_those_suites(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "apt").mkdir(parents=True)
    (etc / "os-release").write_text("ID=debian\nVERSION_CODENAME=forky\n", encoding="utf-8")
    (etc / "apt" / "sources.list").write_text("deb http://archive.example.org/debian sid main\n", encoding="utf-8")
    assert [e.suites for e in host_archive(etc)] == [("sid",)]
    (etc / "apt" / "sources.list").write_text("deb http://archive.example.org/debian forky-updates main\n")
    with pytest.raises(FetchError, match=r"for its release \(forky, testing, unstable, sid\)"):
        host_archive(etc)


def test_a_source_line_apt_would_not_read_is_refused_naming_it(tmp_path: Path) -> None:
    etc = host(tmp_path / "etc")
    (etc / "apt" / "sources.list").write_text("# fine\ndeb http://archive.example.org/debian\n", encoding="utf-8")
    with pytest.raises(FetchError, match=r"sources\.list:2: expected 'deb \[options\] URI suite \[component \.\.\.\]'"):
        host_archive(etc)
