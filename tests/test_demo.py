"""``make demo``, the README's first command, as a new user runs it: years after the last commit.

The demo is issued when ``make demo`` runs, unless SOURCE_DATE_EPOCH fixes the
time (the reproducible-builds convention), so a fresh clone's demo never
expires on its own. Debian's ``faketime`` moves the clock of the real
``make demo`` (``make faketime`` installs it).
"""

from __future__ import annotations

import json
import os
import re
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


def make_demo(when: datetime, tmp_path: Path, keys: str = "keys", **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``make demo`` into ``tmp_path`` (its demo key in ``keys`` there) with the clock at ``when``."""
    if shutil.which("faketime") is None:
        missing("faketime is not installed: run make faketime")
    environment = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "MAKEFLAGS", "MAKELEVEL")}
    environment.update(env)
    # An offset, not "@time": with "@time" every process (build, then verify) starts its clock afresh at
    # that time, so verify could run before the moment the build issued the publication.
    offset = round((when - datetime.now(UTC)).total_seconds())
    command = ["faketime", "-f", f"{offset:+d}", "make", "--no-print-directory", "demo"]
    command += [f"DEMO_OUT={tmp_path / 'site'}", f"DEMO_KEYS={tmp_path / keys}"]
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=600, check=False)


def test_make_demo_passes_two_years_after_the_last_commit(tmp_path: Path) -> None:
    later = last_commit() + timedelta(days=730)
    done = make_demo(later, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    trusted = next(line for line in done.stdout.splitlines() if line.startswith("trusted: example-cvm"))
    expires = datetime.strptime(trusted.rsplit("expires ", 1)[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert later < expires <= later + timedelta(days=181), trusted
    # What the README shows of make demo is what a first run prints, line for line, apart from what a
    # run cannot repeat: its folder, its time, its clock and the demo key made on first use.
    assert demo_lines(done.stdout) == demo_lines(README_DEMO)
    # The total size moves with the lengths of the run's ECDSA signatures (DER: 70 to 72 bytes each), so
    # it is held to the README's within 1 KiB (or the 0.1 MiB it is shown to) rather than to its last digit.
    tolerance = 102.4 if " MiB;" in README_DEMO else 1.0
    assert abs(total_kib(done.stdout) - total_kib(README_DEMO)) <= tolerance
    # A second run is the next release: numbered by its issue time, it names the first (verified against
    # the demo's key chain) and says what changed, so the state the first run's verify wrote takes it
    # with an unbroken history, and nothing on standard error.
    first = json.loads((tmp_path / "keys" / "verifier-state.json").read_text())["streams"][STREAM]
    again = make_demo(later + timedelta(days=1), tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stderr == "", again.stderr
    state = json.loads((tmp_path / "keys" / "verifier-state.json").read_text())["streams"][STREAM]
    assert abs(state["serial"] - (later + timedelta(days=1)).timestamp()) < 600  # numbered by its (faked) issue time
    follows = [line for line in again.stdout.splitlines() if line.startswith("  follows serial ")]
    assert follows == [
        f"  follows serial {first['serial']} (index.json sha256 {first['index_sha256']}, verified against --keys); "
        "what changed is in changes.json and changes.html (sevref diff shows it)"
    ]
    assert json.loads((tmp_path / "site" / "index.json").read_bytes())["previous"] == {
        "serial": first["serial"],
        "sha256": first["index_sha256"],
    }
    # Over a demo whose key is gone (deleted with .cache, say), a new demo key starts afresh.
    afresh = make_demo(later + timedelta(days=2), tmp_path, keys="other-keys")
    assert (afresh.returncode, afresh.stderr) == (0, ""), afresh.stdout + afresh.stderr
    assert "follows serial" not in afresh.stdout and "previous" not in json.loads(
        (tmp_path / "site" / "index.json").read_bytes()
    )


STREAM = "example-cvm/debian-ovmf/debian"


TOTAL = re.compile(r"^  \d+ files, ([0-9.]+) (KiB|MiB);", re.MULTILINE)


def total_kib(text: str) -> float:
    """The total size in KiB that the build's summary gives."""
    found = TOTAL.search(text)
    assert found is not None, text
    return float(found.group(1)) * (1024 if found.group(2) == "MiB" else 1)


README_DEMO = (REPO / "README.md").read_text(encoding="utf-8").split("```text\nbuilt ", 1)[1].split("```", 1)[0]
README_DEMO = "built " + README_DEMO
UNREPEATABLE = [
    (re.compile(r" into \S+ in [0-9.]+ s$"), " into <out> in <seconds> s"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<keyid>"),
    (re.compile(r"\b[0-9a-f]{16}\.\.\."), "<keyid>..."),
    (re.compile(r"expires \S+$"), "expires <time>"),
    (re.compile(r" serial \d+,"), " serial <issue time>,"),  # make demo numbers each release by its issue time
    (re.compile(r"^(  \d+ files, )[0-9.]+ (KiB|MiB);"), r"\1<total> \2;"),  # held apart (total_kib)
]


def demo_lines(text: str) -> list[str]:
    """sevref's lines from the build's summary to the verifier's verdict, with what a run cannot repeat replaced."""
    # The commands make echoes, and their continuation lines.
    lines = [line for line in text.splitlines() if not line.startswith((".venv/", "\t"))]
    start = next(i for i, line in enumerate(lines) if line.startswith("built "))
    end = next(i for i, line in enumerate(lines) if line.startswith("trusted: "))
    shown = lines[start : end + 1]
    for pattern, replacement in UNREPEATABLE:
        shown = [pattern.sub(replacement, line) for line in shown]
    return shown


def test_a_demo_issued_at_the_last_commit_would_have_expired(tmp_path: Path) -> None:
    # What make demo did before: SOURCE_DATE_EPOCH fixes the issue time, and the clock moves on.
    commit = last_commit()
    done = make_demo(commit + timedelta(days=730), tmp_path, SOURCE_DATE_EPOCH=str(int(commit.timestamp())))
    assert done.returncode != 0 and "not trusted: expiry: expired at" in done.stderr, done.stdout + done.stderr
