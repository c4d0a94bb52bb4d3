"""Run the fuzz targets under atheris, one after another, and summarize.

``python -m tests.fuzz [--seconds N] [--min-execs N] [TARGET...]``: each target
runs in its own process for ``--seconds``, from a corpus of its seeds made
afresh in a temporary folder, with libFuzzer's per-input timeout and memory
limit; one still short of ``--min-execs`` then goes on from the corpus it grew
until it has them, for at most ``--max-seconds`` in all. One line per target gives executions, seconds, executions per second,
the final corpus size, the slowest input's time and the result. The exit
status is 1 when a target crashed (an exception other than a SevrefError, a
timeout, too much memory) or ran fewer than ``--min-execs`` inputs; crashing
inputs are kept under ``--artifacts``.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO
from tests.fuzz import TARGETS

TIMEOUT_SECONDS = 10
"""libFuzzer's limit on one input; slower is a hang."""
RSS_LIMIT_MB = 2048
"""libFuzzer's memory limit; more is unbounded memory."""
_STAT = re.compile(r"^stat::(\w+):\s*(\d+)$", re.MULTILINE)
_FAILURES = (
    ("Uncaught Python exception", "crash: uncaught exception"),
    ("libFuzzer: timeout", f"crash: an input ran over {TIMEOUT_SECONDS} s"),
    ("libFuzzer: out-of-memory", f"crash: an input used over {RSS_LIMIT_MB} MB"),
)


@dataclass(frozen=True)
class Outcome:
    """How one target's run went."""

    target: str
    """The target's name."""
    executions: int
    """Inputs run (libFuzzer's ``stat::number_of_executed_units``)."""
    seconds: float
    """Wall-clock time of the run."""
    corpus: int
    """Inputs in the corpus at the end: the seeds and what libFuzzer added."""
    slowest: int
    """Seconds the slowest input took (libFuzzer's ``stat::slowest_unit_time_sec``)."""
    problem: str | None
    """None when the run passed, else what went wrong."""
    log: str
    """libFuzzer's output."""

    def line(self) -> str:
        """Summarize the run on one line.

        Returns:
            Target, executions, seconds, executions per second, corpus size and result.
        """
        rate = self.executions / self.seconds if self.seconds else 0.0
        return (
            f"{self.target:<9} {self.executions:>10,} execs {self.seconds:7.1f} s {rate:8,.0f} exec/s "
            f"corpus {self.corpus:>5} slowest {self.slowest:>2} s  {self.problem or 'ok'}"
        )


def fuzz(target: str, seconds: int, max_seconds: int, min_execs: int, artifacts: Path) -> Outcome:
    """Fuzz one target in its own process, for longer if it is still short of ``min_execs``.

    Args:
        target: one of :data:`TARGETS`.
        seconds: how long to run.
        max_seconds: how long to run at most, to reach ``min_execs``.
        min_execs: fewer executions than this fail the run.
        artifacts: where libFuzzer writes crashing inputs.

    Returns:
        The outcome.
    """
    seeds = importlib.import_module(f"tests.fuzz.{target}").seeds()
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"sevref-fuzz-{target}-") as folder:
        corpus = Path(folder)
        for number, seed in enumerate(seeds):
            (corpus / f"seed-{number}").write_bytes(seed)
        started = time.monotonic()
        stats, problem, log = _libfuzzer(target, corpus, artifacts, f"-max_total_time={seconds}")
        executions, slowest = stats.get("number_of_executed_units", 0), stats.get("slowest_unit_time_sec", 0)
        left = int(max_seconds - (time.monotonic() - started))
        if problem is None and executions < min_execs and left > 0:
            limits = (f"-runs={min_execs - executions}", f"-max_total_time={left}")
            more, problem, second = _libfuzzer(target, corpus, artifacts, *limits)
            executions += more.get("number_of_executed_units", 0)
            slowest = max(slowest, more.get("slowest_unit_time_sec", 0))
            log += second
        elapsed = time.monotonic() - started
        size = sum(1 for _ in corpus.iterdir())
    if problem is None and executions < min_execs:
        problem = f"too few: {executions:,} executions in {elapsed:.0f} s; expected at least {min_execs:,}"
    return Outcome(target, executions, elapsed, size, slowest, problem, log)


def _libfuzzer(target: str, corpus: Path, artifacts: Path, *limits: str) -> tuple[dict[str, int], str | None, str]:
    """Run the harness once on ``corpus``, which libFuzzer grows: (final stats, crash or None, output)."""
    command = [
        sys.executable,
        "-m",
        "tests.fuzz._harness",
        target,
        *limits,
        f"-timeout={TIMEOUT_SECONDS}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/{target}-",
        str(corpus),
    ]
    run = subprocess.run(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", check=False
    )
    stats, problem = judge(run.stdout, run.returncode)
    return stats, problem, run.stdout


def judge(log: str, status: int) -> tuple[dict[str, int], str | None]:
    """Read libFuzzer's output.

    Args:
        log: what a run printed (``-print_final_stats=1`` adds the ``stat::`` lines).
        status: its exit status.

    Returns:
        (libFuzzer's final stats by name, None when nothing crashed or else what did).
    """
    stats = {name: int(value) for name, value in _STAT.findall(log)}
    problem = next((text for marker, text in _FAILURES if marker in log), None)
    if problem is None and status != 0:
        problem = f"crash: exit status {status}"
    return stats, problem


def main(argv: list[str] | None = None) -> int:
    """Fuzz the targets asked for, one at a time.

    Args:
        argv: the command line after the program name.

    Returns:
        0 when every target passed, else 1.
    """
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--seconds", type=int, default=120, help="time per target (default: 120)")
    parser.add_argument(
        "--max-seconds", type=int, help="time per target at most, to reach --min-execs (default: twice --seconds)"
    )
    parser.add_argument(
        "--min-execs", type=int, default=100_000, help="executions each target must reach (default: 100000)"
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=REPO / ".cache" / "fuzz",
        help="where crashing inputs are kept (default: .cache/fuzz)",
    )
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}; expected one of {', '.join(TARGETS)}")
    failed = False
    for target in args.targets or TARGETS:
        limit = args.max_seconds if args.max_seconds is not None else 2 * args.seconds
        outcome = fuzz(target, args.seconds, limit, args.min_execs, args.artifacts.resolve())
        print(outcome.line(), flush=True)
        if outcome.problem is not None:
            failed = True
            if outcome.problem.startswith("crash"):
                print(outcome.log[-6000:], file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
