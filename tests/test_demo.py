"""``make demo``, the README's first command, as a new user runs it: years after the last commit.

The demo is issued when ``make demo`` runs, unless SOURCE_DATE_EPOCH fixes the
time (the reproducible-builds convention), so a fresh clone's demo never
expires on its own. Debian's ``faketime`` moves the clock of the real
``make demo`` (``make faketime`` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import REPO, missing

pytestmark = pytest.mark.slow


def last_commit() -> datetime:
    """The time of the last commit, or now outside a git checkout."""
    done = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        return datetime.now(UTC)
    return datetime.fromtimestamp(int(done.stdout), UTC)


def make_demo(when: datetime, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``make demo`` into ``tmp_path`` with the clock at ``when``."""
    if shutil.which("faketime") is None:
        missing("faketime is not installed: run make faketime")
    environment = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "MAKEFLAGS", "MAKELEVEL")}
    environment.update(env)
    # An offset, not "@time": with "@time" every process (build, then verify) starts its clock afresh at
    # that time, so verify could run before the moment the build issued the publication.
    offset = round((when - datetime.now(UTC)).total_seconds())
    command = ["faketime", "-f", f"{offset:+d}", "make", "--no-print-directory", "demo"]
    command += [f"DEMO_OUT={tmp_path / 'site'}", f"DEMO_KEYS={tmp_path / 'keys'}"]
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=600, check=False)


def test_make_demo_passes_two_years_after_the_last_commit(tmp_path: Path) -> None:
    later = last_commit() + timedelta(days=730)
    done = make_demo(later, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    trusted = next(line for line in done.stdout.splitlines() if line.startswith("trusted: example-cvm"))
    expires = datetime.strptime(trusted.rsplit("expires ", 1)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert later < expires <= later + timedelta(days=181), trusted
    again = make_demo(later + timedelta(days=1), tmp_path)  # a second run starts afresh
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_demo_issued_at_the_last_commit_would_have_expired(tmp_path: Path) -> None:
    # What make demo did before: SOURCE_DATE_EPOCH fixes the issue time, and the clock moves on.
    commit = last_commit()
    done = make_demo(commit + timedelta(days=730), tmp_path, SOURCE_DATE_EPOCH=str(int(commit.timestamp())))
    assert done.returncode != 0 and "not trusted: expiry: expired at" in done.stderr, done.stdout + done.stderr
