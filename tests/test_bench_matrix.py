"""The benchmark matrix (``make bench``) is a manifest the host-stack rules accept, as the bundled ones are."""

from __future__ import annotations

import io
from pathlib import Path

from sevref._cli import main
from tests.bench.matrix import write
from tests.conftest import CACHE


def test_the_benchmark_matrix_validates(debian_ovmf: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    manifests = [str(p) for p in write(tmp_path / "bench", 1)]
    assert main(["validate", *manifests, "--cache", str(CACHE)], out=out) == 0
    assert out.getvalue().startswith("ok: ")
