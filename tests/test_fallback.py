"""Sources that outlive the archive: a pinned .deb's fallback URLs, tried when apt-get download cannot obtain it.

apt is made to fail as it does once a point release replaces the version (an
``apt-get`` first on PATH that says "was not found" and exits 100), or is not
there at all; the .deb is served on 127.0.0.1 (tests/test_sources.py's
server). Nothing here reaches the internet.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CACHE, REPO, missing
from tests.test_sources import DEB, DEB_SHA256, TINY, TINY_SHA256, VERSION, make_deb, manifest, run, server

PACKAGE = "usr/share/OVMF/OVMF_CODE.fd"
OTHER = make_deb("ovmf", VERSION, {PACKAGE: TINY[:-1] + b"\x01"})
"""The same package name and version, other bytes: what a wrong or tampered fallback serves."""
NOT_FOUND = f"E: Version '{VERSION}' for 'ovmf' was not found"
"""What apt-get download says once the archive no longer has the version."""


def source(fallback: list[str] | None = None) -> str:
    """The firmware's source: the package by apt-get download, pinned, with these fallback URLs."""
    tail = "" if fallback is None else ", fallback: [" + ", ".join(f'"{u}"' for u in fallback) + "]"
    return (
        f"{{sha256: {TINY_SHA256}, debian: {{package: ovmf, version: '{VERSION}', deb_sha256: {DEB_SHA256}, "
        f"path: {PACKAGE}{tail}}}}}"
    )


@pytest.fixture()
def www(tmp_path: Path) -> Iterator[str]:
    """The .deb at /ovmf.deb, other bytes at /other.deb; nothing at any other path (404)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "ovmf.deb").write_bytes(DEB)
    (root / "other.deb").write_bytes(OTHER)
    with server(root) as url:
        yield url


@pytest.fixture()
def apt_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An apt-get first on PATH that cannot find the version; returns the file it logs its calls to."""
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "apt-calls"
    script = folder / "apt-get"
    script.write_text(f'#!/bin/sh\necho "$@" >> \'{log}\'\necho "{NOT_FOUND}" >&2\nexit 100\n', encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    return log


def digests(site: Path) -> list[tuple[str, str]]:
    """(entry, digest) of every entry a publication lists."""
    index = json.loads((site / "index.json").read_bytes())
    found = []
    for ref in index["files"]:
        if ref["path"].startswith("groups/"):
            for group in json.loads((site / ref["path"]).read_bytes())["groups"]:
                found += [(f"{group['id']}-{vcpus}", digest) for vcpus, digest in group["entries"]]
    return sorted(found)


def build(folder: Path, firmware_source: str, cache: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    folder.mkdir(parents=True, exist_ok=True)
    path = manifest(folder, firmware_source)
    status, _, err = run(["build", str(path), "--out", str(folder / "site"), "--cache", str(cache)], capsys)
    return status, err


def test_when_apt_no_longer_has_the_version_the_fallback_gives_the_same_digests(
    www: str, apt_fails: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = build(tmp_path / "a", source([f"{www}/gone.deb", f"{www}/ovmf.deb"]), tmp_path / "c", capsys)
    assert (status, err) == (0, ""), err
    assert apt_fails.read_text(encoding="utf-8") == f"download ovmf={VERSION}\n"  # apt first, as without a fallback
    assert (tmp_path / "c" / "sha256" / DEB_SHA256).read_bytes() == DEB
    # The same package by its own URL: the same entries, the same digests.
    by_url = f"{{sha256: {TINY_SHA256}, debian: {{package: ovmf, version: '{VERSION}', deb_sha256: {DEB_SHA256}, "
    by_url += f'path: {PACKAGE}, url: "{www}/ovmf.deb"}}}}'
    assert build(tmp_path / "b", by_url, tmp_path / "other-cache", capsys) == (0, "")
    assert digests(tmp_path / "a" / "site") == digests(tmp_path / "b" / "site") != []


def test_the_fallback_is_used_when_apt_is_not_installed_and_then_kept(
    www: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    status, err = build(tmp_path / "a", source([f"{www}/ovmf.deb"]), tmp_path / "c", capsys)
    assert (status, err) == (0, ""), err
    # The server gone: the cached .deb is used again, without apt and without the network.
    with server(tmp_path / "empty") as gone:
        status, err = build(tmp_path / "b", source([f"{gone}/ovmf.deb"]), tmp_path / "c", capsys)
    assert (status, err) == (0, ""), err
    assert digests(tmp_path / "a" / "site") == digests(tmp_path / "b" / "site")


def test_a_fallback_that_serves_other_bytes_is_refused_naming_the_pin(
    www: str, apt_fails: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = build(tmp_path / "a", source([f"{www}/other.deb"]), tmp_path / "c", capsys)
    other = hashlib.sha256(OTHER).hexdigest()
    assert status == 1 and err.count("\n") == 1, err
    assert err.startswith(f"sevref: error: {tmp_path / 'a' / 'm.yaml'}:12:")
    assert f"firmware fw: apt-get download ovmf={VERSION} failed: the archive no longer has this version" in err
    assert f"; fallback {www}/other.deb: sha256 is {other}, expected {DEB_SHA256} (the pin)" in err
    assert f"expected ovmf_2099.02-1_all.deb with sha256 {DEB_SHA256} (the pin) from one of them" in err
    assert not (tmp_path / "c" / "sha256" / DEB_SHA256).exists()
    assert [p.name for p in (tmp_path / "c" / "sha256").iterdir()] == []  # nothing kept, not even a temporary file


def test_every_fallback_failing_names_each(
    www: str, apt_fails: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = build(tmp_path / "a", source([f"{www}/gone.deb", f"{www}/also-gone.deb"]), tmp_path / "c", capsys)
    assert status == 1 and err.count("\n") == 1, err
    assert f"; fallback {www}/gone.deb: " in err and f"; fallback {www}/also-gone.deb: " in err
    assert "404" in err


def test_apt_failing_without_a_fallback_says_what_to_do(
    apt_fails: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = build(tmp_path / "a", source(), tmp_path / "c", capsys)
    assert status == 1 and err.count("\n") == 1, err
    assert err == (
        f"sevref: error: {tmp_path / 'a' / 'm.yaml'}:12:{err.split(':12:', 1)[1].split(':', 1)[0]}: firmware fw: "
        f"apt-get download ovmf={VERSION} failed: the archive no longer has this version, or apt's lists are "
        f"another release's ({NOT_FOUND}); add debian.fallback: [the .deb's URL in a snapshot archive or a mirror] "
        "(with deb_sha256), or give debian.url (the .deb's URL, e.g. in a snapshot archive) or debian.mirror (an "
        "archive root), or point APT_CONFIG at lists that have it\n"
    )


def test_apt_not_installed_without_a_fallback_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    status, err = build(tmp_path / "a", source(), tmp_path / "c", capsys)
    assert status == 1 and err.count("\n") == 1, err
    assert f"firmware fw: ovmf={VERSION}: apt-get is not installed; expected a Debian-based system, or add " in err
    assert "add debian.fallback: [the .deb's URL in a snapshot archive or a mirror] (with deb_sha256)" in err


def test_a_fallback_needs_the_pin_of_the_deb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unpinned = f"{{sha256: {TINY_SHA256}, debian: {{package: ovmf, version: '1', path: x, fallback: ['http://a.example.org/a.deb']}}}}"
    manifest(tmp_path, unpinned)
    status, _, err = run(["validate", str(tmp_path / "m.yaml")], capsys)
    assert status == 1 and "/debian: deb_sha256 is missing; expected it with fallback" in err, err


POOL = "/archive/debian/20250201T000000Z/pool/main/e/edk2/ovmf_2022.11-6+deb12u2_all.deb"
"""Where a snapshot archive keeps the bundled manifests' .deb; the test serves it there on 127.0.0.1."""


@pytest.mark.slow  # multi-second subprocesses or whole-demo builds: make test runs it
def test_the_bundled_manifests_build_the_demo_from_their_fallback_once_apt_has_no_longer_the_version(
    demo: Path, apt_fails: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``make demo`` after the next point release: apt fails, the first fallback is gone, the second serves the .deb.

    The other suites' packages (trixie.yaml, amdsev.yaml) get fallbacks too, served by their pins.
    """
    deb = CACHE / "debs" / "ovmf_2022.11-6+deb12u2_all.deb"
    if not deb.is_file():
        missing("Debian's ovmf .deb is not in the cache (make demo)")
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    by_pin = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in (CACHE / "debs").glob("*.deb")}
    (tmp_path / "www" / "file").mkdir(parents=True)
    for pin, path in by_pin.items():
        shutil.copy(path, tmp_path / "www" / "file" / pin)
    firmware = tmp_path / "manifests" / "firmware.yaml"
    text = firmware.read_text(encoding="utf-8")
    (tmp_path / "www" / POOL.lstrip("/")).parent.mkdir(parents=True)
    shutil.copy(deb, tmp_path / "www" / POOL.lstrip("/"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764115200")
    with server(tmp_path / "www") as url:
        # What the README tells a publisher to add: a fallback for each pinned .deb (the first one gone).
        pinned = re.compile(r"^(\s+)deb_sha256: ([0-9a-f]{64})$", re.MULTILINE)
        fallback = f"\\1deb_sha256: \\2\n\\1fallback: [{url}/file/gone, {url}{POOL}]"
        added, count = pinned.subn(fallback, text)
        assert count == 3, text
        firmware.write_text(added, encoding="utf-8")
        for other in ("trixie.yaml", "amdsev.yaml"):
            path = tmp_path / "manifests" / other
            text = path.read_text(encoding="utf-8")
            if any(pin not in by_pin for _, pin in pinned.findall(text)):
                missing(f"a .deb {other} pins is not in the cache (make demo)")
            path.write_text(pinned.sub(f"\\1deb_sha256: \\2\n\\1fallback: [{url}/file/\\2]", text), encoding="utf-8")
        manifests = sorted(str(p) for p in (tmp_path / "manifests").glob("*.yaml"))
        cache = tmp_path / "cache"
        status, _, err = run(["build", *manifests, "--out", str(tmp_path / "site"), "--cache", str(cache)], capsys)
    assert (status, err) == (0, ""), err
    assert apt_fails.read_text(encoding="utf-8").count("download ovmf=2022.11-6+deb12u2") == 1  # once a package
    assert hashlib.sha256(deb.read_bytes()).hexdigest() in [p.name for p in (cache / "sha256").iterdir()]
    assert len(list((cache / "sha256").iterdir())) == 4  # bookworm's ovmf, trixie's, ovmf-amdsev, the kernel
    assert digests(tmp_path / "site") == digests(demo)
