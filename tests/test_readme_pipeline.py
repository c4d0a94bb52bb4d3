"""The README's release pipeline, run as written: on the bundled manifests, in a fresh folder.

The shell block under "### Release pipeline" is taken from README.md and run
with ``bash -e``; then the releases it made are checked: the second links the
first, and a verifier that trusted the first accepted the second.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CACHE, REPO

pytestmark = pytest.mark.slow


def pipeline_block() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Release pipeline", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found is not None
    return found.group(1)


def test_the_release_pipeline_runs_as_written(tmp_path: Path, debian_ovmf: Path) -> None:
    assert debian_ovmf.is_dir()  # the bundled manifests' Debian package is in the cache
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    (tmp_path / ".cache").symlink_to(CACHE)
    script = pipeline_block()
    assert "sevref diff live next" in script and "sevref sign next" in script
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SOURCE_DATE_EPOCH", None)
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    live, following = tmp_path / "live" / "index.json", json.loads((tmp_path / "next" / "index.json").read_bytes())
    assert following["previous"] == {"serial": 1, "sha256": hashlib.sha256(live.read_bytes()).hexdigest()}
    assert following["signing"] is not None and (tmp_path / "next" / "changes.json.sig").is_file()
    assert "read OLD verified (key " in done.stdout and "NEW UNVERIFIED (unsigned)" in done.stdout
    assert "serial: 1 -> 2" in done.stdout
    state = json.loads((tmp_path / "verifier-state.json").read_bytes())
    assert state["streams"]["example-cvm/debian-ovmf/debian"]["serial"] == 2
