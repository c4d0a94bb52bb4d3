"""Shared fixtures: the project's known-answer inputs and prerequisites.

Three kinds of inputs:
- ``../shared/vectors`` (next to the clone): known-answer vectors and the AmdSev
  firmware tail. A clone without it skips those tests with the reason shown.
- Debian's ``ovmf`` package, obtained with sevref's own pipeline
  (``apt-get download``, pinned by sha256) into ``.cache/``.
- The peers ``sev-snp-measure`` 0.0.9 and 0.0.13, installed by ``make peers``
  into ``.peers/``.
- Debian's ``chromium`` at /usr/bin/chromium (``make browser``) and Playwright
  (a development dependency) for the site's tests in a real browser.

``make test`` sets ``SEVREF_STRICT=1``: then a prerequisite the Makefile is
responsible for (Debian firmware, peers, the browser) that is missing fails the test
instead of skipping it, so CI cannot pass by skipping.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sevref.edge.debian import obtain_deb, read_deb_file
from sevref.edge.keys import generate_key_files
from sevref.errors import SevrefError
from sevref.sign import Algorithm

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SEVREF_SHARED", REPO.parent / "shared"))
VECTORS = SHARED / "vectors"
STRICT = os.environ.get("SEVREF_STRICT") == "1"
CACHE = REPO / ".cache"

OVMF_DEB = ("ovmf", "2022.11-6+deb12u2", "e73d3d1a8799f7f6fc16b73501d913edcdd86237556fbff30693e747e6dc262e")
"""Debian bookworm's ovmf package the vectors use (shared/vectors/README.md)."""
OVMF_FILES = {
    # path in the package: sha256 (research/sev-snp-measure-oracle.md §3)
    "usr/share/OVMF/OVMF_CODE.fd": "d9b568def24088c92f34b5479e0ed7e44d0a4d4cea8a0f5716719180bba48106",
    "usr/share/OVMF/OVMF_CODE.secboot.fd": "6ee6a5db7a1443d17594f1e00e3cf2a2250bc1c95c8f9101bc49c9977ce11a68",
    "usr/share/OVMF/OVMF_CODE_4M.fd": "b157d97b1f69729514feb7f201d2cbe4957f23ab77920e361fe9f822ba49ca4c",
    "usr/share/ovmf/OVMF.fd": "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773",
    "usr/share/OVMF/OVMF_VARS.fd": "6ed987af3a3c155be71665f510eae3e007eda9b8b94afd59d45e91c4a11565cc",  # measured here, not in the research
}

GENERATED: dict[str, tuple[Callable[[int], int], int, str]] = {
    # name: (formula, size, sha256 from research/sev-snp-measure-oracle.md §4.1)
    "kernel.bin": (
        lambda i: (7 * i + 3) & 0xFF,
        1048583,
        "d66748f132ea9164919c3bc3f127603f3216ea88a1df2f6f250e362dc5379d13",
    ),
    "kernel_small.bin": (lambda i: 0x4B, 4097, "a63f24b76a1211819e3b07643469749190b2d3b4508521537c8661aa0994dc20"),
    "initrd.bin": (
        lambda i: (13 * i + 1) & 0xFF,
        300000,
        "c31dc907f3840c0f9a8e1db43dc9da74f6765437693c2d726e21b7a683d188d3",
    ),
    "empty.bin": (lambda i: 0, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
}


def need_shared() -> Path:
    """Return ../shared/vectors, or skip: a clone without it cannot run these."""
    if not (VECTORS / "known-answers.jsonl").is_file():
        pytest.skip(f"no known-answer vectors at {VECTORS} (set SEVREF_SHARED to the shared folder)")
    return VECTORS


def missing(reason: str) -> None:
    """Fail under ``make test`` (strict), skip otherwise."""
    if STRICT:
        pytest.fail(f"prerequisite missing: {reason}")
    pytest.skip(reason)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve a folder on 127.0.0.1 at a free port.

    Args:
        folder: the site.

    Yields:
        Its base URL, ending in ``/``.
    """
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kernel/initrd fixtures, regenerated from their formulas and checked."""
    folder = tmp_path_factory.mktemp("generated")
    for name, (formula, size, sha256) in GENERATED.items():
        data = bytes(formula(i) for i in range(size))
        assert hashlib.sha256(data).hexdigest() == sha256, name
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="session")
def debian_ovmf() -> Path:
    """Debian's ovmf 2022.11-6+deb12u2, unpacked as ``<root>/usr/share/...``."""
    name, version, sha256 = OVMF_DEB
    root = CACHE / "debian" / f"{name}_{version}_all"
    if all((root / path).is_file() for path in OVMF_FILES):
        return root
    try:
        deb = obtain_deb(name, version, "all", bytes.fromhex(sha256), CACHE / "debs")
        for path, expected in OVMF_FILES.items():
            data, control = read_deb_file(deb, path)
            assert control["Version"] == version
            assert hashlib.sha256(data).hexdigest() == expected, path
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
    except SevrefError as error:
        missing(f"Debian firmware: {error.diagnostic()}")
    return root


@pytest.fixture(scope="session")
def vector_root(tmp_path_factory: pytest.TempPathFactory, generated: Path, debian_ovmf: Path) -> Path:
    """A folder laid out like ../shared/vectors, so vector paths resolve in it.

    ``fixtures/`` holds the regenerated kernels plus the shared AmdSev tail;
    ``debian/`` holds the firmware obtained from Debian.
    """
    shared = need_shared()
    root = tmp_path_factory.mktemp("vectors")
    (root / "fixtures").mkdir()
    for name in GENERATED:
        (root / "fixtures" / name).symlink_to(generated / name)
    (root / "fixtures" / "ovmf_AmdSev_suffix.bin").symlink_to(shared / "fixtures" / "ovmf_AmdSev_suffix.bin")
    (root / "debian").mkdir()
    (root / "debian" / debian_ovmf.name).symlink_to(debian_ovmf)
    return root


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory, debian_ovmf: Path) -> Path:
    """The bundled example publication, built from manifests/ with the Debian firmware (unsigned)."""
    out = tmp_path_factory.mktemp("demo") / "site"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1764115200"}
    manifests = sorted(str(p) for p in (REPO / "manifests").glob("*.yaml"))
    subprocess.run(
        [sys.executable, "-m", "sevref", "build", *manifests, "--out", str(out), "--cache", str(CACHE)],
        env=env,
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def signed_demo(tmp_path_factory: pytest.TempPathFactory, debian_ovmf: Path) -> tuple[Path, str]:
    """The example publication signed with a fresh key and issued now, as ``make demo`` makes it.

    Returns:
        (the site, the signing key's id).
    """
    folder = tmp_path_factory.mktemp("signed-demo")
    passphrase = b"site-test-passphrase"
    keyid = generate_key_files(folder / "key", Algorithm.ECDSA_P256, passphrase)
    env = {**os.environ, "SEVREF_KEY_PASSPHRASE": passphrase.decode()}
    manifests = sorted(str(p) for p in (REPO / "manifests").glob("*.yaml"))
    command = [sys.executable, "-m", "sevref", "build", *manifests, "--out", str(folder / "site")]
    command += ["--cache", str(CACHE), "--issued", "now", "--signing-key", str(folder / "key.pem")]
    subprocess.run(command, env=env, check=True, capture_output=True)
    return folder / "site", keyid


@pytest.fixture()
def amdsev_tail() -> bytes:
    """The last 4 KiB of an edk2-stable202405 AmdSevX64 build (shared/vectors/fixtures)."""
    return (need_shared() / "fixtures" / "ovmf_AmdSev_suffix.bin").read_bytes()


@pytest.fixture(autouse=True)
def _no_stray_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run every test in its own folder so nothing is written into the clone."""
    monkeypatch.chdir(tmp_path)
    yield
