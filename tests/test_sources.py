"""Sources that outlive the archive and the build host: files and Debian packages by URL or mirror.

A local HTTP server on 127.0.0.1 serves plain files and a Debian pool, and
misbehaves on request (a wrong file, a huge or slow one, a 404, redirects to
other schemes); nothing here reaches the internet. The slow server is bounded
by the download's deadline; the test itself by the operating system (a
subprocess with a timeout), not by measuring time.
"""

from __future__ import annotations

import functools
import hashlib
import html
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sevref._cli import main
from sevref.edge.download import download
from sevref.edge.sources import KINDS
from sevref.errors import DigestMismatchError, FetchError
from sevref.manifest.model import DebianSource
from tests.conftest import REPO, missing

INPUTS = REPO / "tests" / "golden" / "inputs"
TINY = (INPUTS / "tiny.fd").read_bytes()
TINY_SHA256 = hashlib.sha256(TINY).hexdigest()
KERNEL_SHA256 = hashlib.sha256((INPUTS / "vmlinuz").read_bytes()).hexdigest()
INITRD_SHA256 = hashlib.sha256((INPUTS / "initrd.img").read_bytes()).hexdigest()
VERSION = "1:2099.02-1"
"""With an epoch: the pool's file name leaves it out."""
POOL = "pool/main/e/edk2/ovmf_2099.02-1_all.deb"
"""Where an archive keeps the binary package ovmf of the source package edk2."""


def ar_member(name: str, data: bytes) -> bytes:
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}".encode() + b"`\n"
    return header + data + (b"\n" if len(data) % 2 else b"")


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_deb(package: str, version: str, files: dict[str, bytes]) -> bytes:
    """A minimal .deb (deb(5)): debian-binary, control.tar.gz, data.tar.gz."""
    control = f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\n"
    control += "Description: test package\n"
    return (
        b"!<arch>\n"
        + ar_member("debian-binary", b"2.0\n")
        + ar_member("control.tar.gz", tar_gz({"./control": control.encode()}))
        + ar_member("data.tar.gz", tar_gz({f"./{path}": data for path, data in files.items()}))
    )


DEB = make_deb("ovmf", VERSION, {"usr/share/OVMF/OVMF_CODE.fd": TINY})
DEB_SHA256 = hashlib.sha256(DEB).hexdigest()


class Handler(http.server.SimpleHTTPRequestHandler):
    """Files from a folder, and a few misbehaviours at fixed paths."""

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # the name http.server calls
        path = self.path.split("?")[0]
        if path in ("/slow.fd", "/slow-unannounced.fd"):  # one byte every 0.2 s, for at most 60 s
            self.send_response(200)
            if path == "/slow.fd":
                self.send_header("Content-Length", str(len(TINY)))
            else:  # the body ends with the connection
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            for byte in TINY[:300]:
                try:
                    self.wfile.write(bytes((byte,)))
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up: as it should
                time.sleep(0.2)
        elif path == "/huge.fd":  # announces 300 MiB
            self.send_response(200)
            self.send_header("Content-Length", str(300 << 20))
            self.end_headers()
        elif path == "/endless.fd":  # no Content-Length, more than any limit the test sets
            self.send_response(200)
            self.end_headers()
            try:
                self.wfile.write(b"\0" * 100_000)
            except OSError:
                return
        elif path == "/to-ftp.fd":
            self.redirect("ftp://127.0.0.1/tiny.fd")
        elif path == "/to-file.fd":
            self.redirect("file:///etc/passwd")
        elif path == "/loop.fd":
            self.redirect("/loop.fd")
        elif path == "/moved.fd":
            self.redirect("files/tiny.fd")
        else:
            super().do_GET()


@contextmanager
def server(folder: Path) -> Iterator[str]:
    """Serve ``folder`` (and the misbehaviours) on 127.0.0.1; yields the base URL without a trailing /."""
    handler = functools.partial(Handler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # shutdown() waits for serve_forever's next poll: 0.5 s by default.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture()
def archive(tmp_path: Path) -> Iterator[str]:
    """A web server with plain files under files/ and a Debian archive under debian/."""
    root = tmp_path / "www"
    (root / "files").mkdir(parents=True)
    for name in ("tiny.fd", "vmlinuz", "initrd.img"):
        shutil.copy(INPUTS / name, root / "files" / name)
    (root / "files" / "other.fd").write_bytes(TINY[:-1] + b"\x01")
    (root / "debian" / POOL).parent.mkdir(parents=True)
    (root / "debian" / POOL).write_bytes(DEB)
    with server(root) as url:
        yield url


def manifest(folder: Path, firmware_source: str, boot: str = "") -> Path:
    """A small publication of one firmware whose source is given as YAML flow text."""
    text = f"""sevref: 1
publication:
  publisher: {{id: t, name: Test, contact: t@example.org}}
  product: p
  stream: s
  release: "1"
  serial: 1
  issued: "2026-01-01T00:00:00Z"
  valid_for_days: 30
firmware:
  - id: fw
    source: {firmware_source}
host_stacks:
  - {{id: q, vmm: qemu, qemu: {{version: "9.1", machine: q35, legacy_vm_type: "off"}}, host_linux: "6.11"}}
{boot}matrices:
  - id: m
    modes: [sev, sev-es]
    firmware: [fw]
    host_stacks: [q]
    cpus: [EPYC-Milan]
    vcpus: [1, 2]
    boots: [null{", direct" if boot else ""}]
    expected: {{sev: {{policy: "0x1"}}, sev-es: {{policy: "0x5"}}}}
"""
    path = folder / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(args, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def firmware_source(site: Path) -> Any:
    return json.loads((site / "firmware" / "fw.json").read_bytes())["firmware"]["source"]


def reproduce(site: Path, tmp_path: Path, files: dict[str, Path] | None = None) -> None:
    """Run every entry page's commands as printed, in an empty folder, and compare the digests."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    pages = sorted((site / "entry").iterdir())
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        commands = html.unescape(re.findall(r"<pre><code>(.*?)</code></pre>", text, re.S)[-1])
        digest = re.findall(r'<code class="hash">([0-9a-f]{64})</code></td></tr>', text)[0]
        folder = tmp_path / "reproduce" / page.stem
        folder.mkdir(parents=True)
        for name, source in (files or {}).items():
            shutil.copy(source, folder / name)
        done = subprocess.run(
            ["sh", "-ec", commands], cwd=folder, env=env, capture_output=True, text=True, check=False, timeout=120
        )
        assert done.returncode == 0, (commands, done.stderr)
        assert done.stdout.splitlines()[-1] == digest, commands


def test_firmware_kernel_and_initrd_by_url_build_and_the_pages_fetch_them_so(
    archive: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = f"""boots:
  - id: direct
    kernel: {{url: "{archive}/files/vmlinuz", sha256: {KERNEL_SHA256}}}
    initrd: {{url: "{archive}/files/initrd.img", sha256: {INITRD_SHA256}}}
    cmdlines: ["console=ttyS0"]
"""
    path = manifest(tmp_path, f'{{url: "{archive}/files/tiny.fd", sha256: {TINY_SHA256}}}', boot)
    cache = tmp_path / "cache"
    status, _, err = run(["build", str(path), "--out", str(tmp_path / "site"), "--cache", str(cache)], capsys)
    assert (status, err) == (0, ""), err
    assert firmware_source(tmp_path / "site") == {"url": f"{archive}/files/tiny.fd", "file": "tiny.fd"}
    assert sorted(p.name for p in (cache / "sha256").iterdir()) == sorted([TINY_SHA256, KERNEL_SHA256, INITRD_SHA256])
    page = (tmp_path / "site" / "firmware" / "fw.html").read_text(encoding="utf-8")
    assert f"file <code>tiny.fd</code>, from <code>{archive}/files/tiny.fd</code>" in page
    # The firmware as the manifest fetches it; the kernel and initrd are the publisher's to hand out.
    reproduce(tmp_path / "site", tmp_path, {"vmlinuz": INPUTS / "vmlinuz", "initrd.img": INPUTS / "initrd.img"})
    first = (tmp_path / "site" / "entry").iterdir().__next__().read_text(encoding="utf-8")
    assert f"curl -fL -o tiny.fd {archive}/files/tiny.fd &amp;&amp; echo &#39;{TINY_SHA256}  tiny.fd&#39;" in first


def test_the_cache_outlives_the_server(archive: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, f'{{url: "{archive}/moved.fd", sha256: {TINY_SHA256}}}')  # a redirect, followed
    cache = tmp_path / "cache"
    assert run(["validate", str(path), "--cache", str(cache)], capsys)[0] == 0
    (cache / "sha256" / TINY_SHA256).write_bytes(b"damaged")
    assert run(["validate", str(path), "--cache", str(cache)], capsys)[0] == 0  # downloaded again
    assert (cache / "sha256" / TINY_SHA256).read_bytes() == TINY
    with server(tmp_path / "empty") as gone:
        moved = manifest(tmp_path, f'{{url: "{gone}/nothing-here.fd", sha256: {TINY_SHA256}}}')
        status, out, err = run(["validate", str(moved), "--cache", str(cache)], capsys)
    assert (status, err) == (0, "") and out.startswith("ok: ")
    assert [p.name for p in (cache / "sha256").iterdir()] == [TINY_SHA256]  # no temporary file left


@pytest.mark.parametrize("how", ["url", "mirror"])
def test_a_package_by_url_or_from_a_mirror_builds(
    how: str, archive: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = f'url: "{archive}/debian/{POOL}"' if how == "url" else f'mirror: "{archive}/debian/", source_package: edk2'
    source = (
        f"{{sha256: {TINY_SHA256}, debian: {{package: ovmf, version: '{VERSION}', {where}, "
        f"deb_sha256: {DEB_SHA256}, path: usr/share/OVMF/OVMF_CODE.fd}}}}"
    )
    path = manifest(tmp_path, source)
    status, _, err = run(["build", str(path), "--out", str(tmp_path / "site"), "--cache", str(tmp_path / "c")], capsys)
    assert (status, err) == (0, ""), err
    assert firmware_source(tmp_path / "site") == {
        "debian": {
            "package": "ovmf",
            "version": VERSION,
            "architecture": "all",
            "path": "usr/share/OVMF/OVMF_CODE.fd",
            "deb_sha256": DEB_SHA256,
            "url": f"{archive}/debian/{POOL}",
        }
    }
    if shutil.which("dpkg-deb") is None:
        missing("dpkg-deb is not installed")
    reproduce(tmp_path / "site", tmp_path)


@pytest.mark.parametrize(
    ("source", "package", "pool"),
    [
        ("edk2", "ovmf", "pool/main/e/edk2/ovmf_2022.11-6+deb12u2_all.deb"),
        (None, "libpaper1", "pool/main/libp/libpaper1/libpaper1_1.1.29_all.deb"),
        ("libpaper", "libpaper1", "pool/main/libp/libpaper/libpaper1_1.1.29_all.deb"),
        ("lib", "lib", "pool/main/l/lib/lib_1.1.29_all.deb"),
    ],
)
def test_pool_paths_are_laid_out_as_debian_does(source: str | None, package: str, pool: str) -> None:
    version = "2022.11-6+deb12u2" if package == "ovmf" else "2:1.1.29"  # an epoch is not in the file name
    debian = DebianSource(
        package, version, "all", "x", None, mirror="https://deb.example.org/debian/", source_package=source
    )
    assert debian.pool_path() == pool
    assert debian.deb_url == f"https://deb.example.org/debian/{pool}"


CASES = {
    "another file": ("/files/other.fd", "sha256 is"),
    "a 404": ("/files/missing.fd", "/files/missing.fd: HTTP 404 (Not Found); expected 200 OK"),
    "a huge file": ("/huge.fd", f"{300 << 20} bytes (Content-Length); expected at most {256 << 20}"),
    "a redirect to ftp": ("/to-ftp.fd", "redirected to ftp://127.0.0.1/tiny.fd; expected an http:// or https:// URL"),
    "a redirect to a file": ("/to-file.fd", "redirected to file:///etc/passwd; expected an http:// or https:// URL"),
    "a redirect loop": ("/loop.fd", "more than 5 redirects; expected the file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_downloads_are_one_line_naming_the_manifest(
    case: str, archive: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, message = CASES[case]
    manifest(tmp_path, f'{{url: "{archive}{path}", sha256: {TINY_SHA256}}}')
    cache = tmp_path / "cache"
    status, out, err = run(["validate", str(tmp_path / "m.yaml"), "--cache", str(cache)], capsys)
    assert (status, out) == (1, "")
    assert err.startswith(f"sevref: error: {tmp_path / 'm.yaml'}:12:13: firmware fw: ") and err.count("\n") == 1
    assert message in err, err
    if case == "another file":
        other = hashlib.sha256((INPUTS / "tiny.fd").read_bytes()[:-1] + b"\x01").hexdigest()
        assert f"sha256 is {other}, expected {TINY_SHA256} (the pin)" in err
    assert list((cache / "sha256").iterdir()) == []  # nothing kept, no temporary file left


def test_a_package_that_is_not_the_pinned_one_is_refused(
    archive: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = (
        f"{{sha256: {TINY_SHA256}, debian: {{package: ovmf, version: '{VERSION}', url: \"{archive}/debian/{POOL}\", "
        f"deb_sha256: {'0' * 64}, path: usr/share/OVMF/OVMF_CODE.fd}}}}"
    )
    manifest(tmp_path, source)
    status, _, err = run(["validate", str(tmp_path / "m.yaml"), "--cache", str(tmp_path / "c")], capsys)
    assert status == 1 and err.count("\n") == 1
    assert f"m.yaml:12:96: firmware fw: {archive}/debian/{POOL}: sha256 is {DEB_SHA256}, expected {'0' * 64}" in err


@pytest.mark.parametrize("path", ["slow.fd", "slow-unannounced.fd"])
def test_a_slow_server_is_cut_off_at_the_deadline(path: str, archive: str, tmp_path: Path) -> None:
    manifest(tmp_path, f'{{url: "{archive}/{path}", sha256: {TINY_SHA256}}}')
    command = [sys.executable, "-m", "sevref", "validate", "m.yaml", "--cache", "c", "--download-timeout", "0.5"]
    # The server would take an hour to send the file; the operating system ends the test at 60 s.
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"sevref: error: m.yaml:12:13: firmware fw: {archive}/{path}: no complete answer within 0.5 s "
        "(--download-timeout); expected a faster server, or a longer --download-timeout\n"
    )


def test_downloads_are_bounded_without_a_length_and_refuse_other_schemes(archive: str, tmp_path: Path) -> None:
    pin = bytes(32)
    with pytest.raises(FetchError, match=r"/endless.fd: more than 1000 bytes; expected at most 1000"):
        download(f"{archive}/endless.fd", pin, limit=1000, cache=tmp_path, seconds=30)
    with pytest.raises(FetchError, match=r"URL ftp://x/y: expected an http:// or https:// URL"):
        download("ftp://x/y", pin, limit=1000, cache=tmp_path, seconds=30)
    with pytest.raises(DigestMismatchError, match=f"sha256 is {TINY_SHA256}, expected {'00' * 32}"):
        download(f"{archive}/files/tiny.fd", pin, limit=1 << 20, cache=tmp_path, seconds=30)
    with server(tmp_path / "nothing") as gone:
        pass
    with pytest.raises(FetchError, match=r"Connection refused; expected the file"):
        download(f"{gone}/tiny.fd", pin, limit=1000, cache=tmp_path, seconds=30)
    assert list((tmp_path / "sha256").iterdir()) == []


def test_a_version_the_archive_no_longer_has_names_the_line_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("apt-get") is None:
        missing("apt-get is not installed")
    source = f"{{sha256: {TINY_SHA256}, debian: {{package: ovmf, version: 0.0-0, path: usr/share/OVMF/OVMF_CODE.fd}}}}"
    manifest(tmp_path, source)
    status, _, err = run(["validate", str(tmp_path / "m.yaml"), "--cache", str(tmp_path / "c")], capsys)
    assert status == 1 and err.count("\n") == 1
    assert err.startswith(
        f"sevref: error: {tmp_path / 'm.yaml'}:12:96: firmware fw: apt-get download ovmf=0.0-0 failed: "
    )
    assert "give debian.url (the .deb's URL, e.g. in a snapshot archive) or debian.mirror (an archive root)" in err


@pytest.mark.parametrize(
    ("debian", "message"),
    [
        ("url: 'https://deb.example.org/a.deb'", "/debian: deb_sha256 is missing; expected it with url (nothing else"),
        ("mirror: 'https://deb.example.org/'", "/debian: deb_sha256 is missing; expected it with mirror"),
        ("source_package: edk2", "/debian: mirror is missing; expected it with source_package"),
        (
            f"url: 'https://a.example.org/a.deb', mirror: 'https://deb.example.org/', deb_sha256: {'0' * 64}",
            "/debian: expected one of url, mirror, found both",
        ),
        (
            f"mirror: 'https://user:secret@deb.example.org/', deb_sha256: {'0' * 64}",
            "/debian/mirror: expected an http:// or https:// URL without a user name or password",
        ),
    ],
)
def test_source_forms_that_are_refused(
    debian: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"{{sha256: {TINY_SHA256}, debian: {{package: ovmf, version: '1', path: x, {debian}}}}}"
    manifest(tmp_path, source)
    status, _, err = run(["validate", str(tmp_path / "m.yaml")], capsys)
    assert status == 1 and message in err, err


def test_every_source_the_schema_allows_has_one_kind() -> None:
    schema = json.loads((REPO / "schema" / "manifest.schema.json").read_text(encoding="utf-8"))
    keys = {next(iter(choice["required"])) for choice in schema["$defs"]["source"]["oneOf"]}
    assert keys == set(KINDS) == {"path", "url", "debian", "rpm"}
