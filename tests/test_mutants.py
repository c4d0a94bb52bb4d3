"""Every check of the verifier is one a test would miss: delete it, and some test must fail.

A review once deleted four checks of ``trust.py`` (the release identity in
every JSON file, the keys document's publisher, its version against its file
number, the in-toto statement's types) and 499 tests still passed. This test
deletes each ``raise TrustError(...)`` of the verifier's modules in turn (the
statement becomes ``pass``), runs the in-process tests of the verifier
against that mutant, and requires each mutant to fail them.

The tests are collected once, by one interpreter (the fork server of
tests/mutation.py); each mutant then runs in a child forked from it, which
gives the changed function the mutant's code (every module that imported it
sees the mutant) and runs the tests with ``-x``, ordered so that the
conformance cases (fast, and each aimed at one check) come first; tests that
start ``sevref`` in a subprocess would not see the mutant and are left out.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.mutation import put_in_and_out

MODULES = ("sevref.trust", "sevref.state", "sevref.keychain", "sevref.timestamp", "sevref.match")
"""The verifier's checks: the trust stages, the state's rules, the key chain, freshness, lookups."""
TESTS = [
    "tests/unit/test_trust.py",
    "tests/unit/test_keychain.py",
    "tests/unit/test_match.py",
    "tests/test_conformance.py",
    "tests/unit/test_state.py",
    "tests/test_memory.py",
    "tests/test_freshness.py",
    "tests/test_verify.py",
    "tests/test_output.py",
    "tests/test_fuzz.py",
    "tests/test_history.py",
]
"""The in-process tests of the verifier, fastest and most aimed first."""
DESELECT = ["tests/test_memory.py::test_verifiers_racing_on_one_state_lose_nothing"]  # subprocesses only


@dataclass(frozen=True)
class Mutant:
    """One check deleted."""

    module: str
    """The module."""
    line: int
    """The line of the deleted ``raise``."""
    end: int
    """Its last line."""
    source: str
    """The module's source with that ``raise`` replaced by ``pass``."""

    @property
    def name(self) -> str:
        """Where the deleted check was."""
        return f"{self.module}:{self.line}"


def _path(module: str) -> Path:
    return REPO / (module.replace(".", "/") + ".py")


def mutants(module: str, errors: frozenset[str] = frozenset({"TrustError"})) -> list[Mutant]:
    """Every ``raise E(...)`` of a module, for each error ``E`` named, each deleted in turn."""
    source = _path(module).read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Raise)
            and isinstance(node.exc, ast.Call)
            and isinstance(node.exc.func, ast.Name)
            and node.exc.func.id in errors
        ):
            end = node.end_lineno or node.lineno
            indent = lines[node.lineno - 1][: node.col_offset]
            # The same number of lines, so that tracebacks and the other lines stay where they are.
            changed = [*lines[: node.lineno - 1], f"{indent}pass\n", *["\n"] * (end - node.lineno), *lines[end:]]
            found.append(Mutant(module, node.lineno, end, "".join(changed)))
    return sorted(found, key=lambda m: m.line)


def survivors(
    every: Sequence[Mutant], folder: Path, tests: Sequence[str] = TESTS, deselect: Sequence[str] = DESELECT
) -> list[Mutant]:
    """Run tests (the verifier's by default) against each mutant; the mutants under which they all pass (unnoticed)."""
    sources = []
    for mutant in every:
        path = folder / f"{mutant.name}.py"
        path.write_text(mutant.source, encoding="utf-8")
        sources.append([mutant.module, mutant.line, mutant.end, str(path)])
    args = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=", "--capture=sys"]
    args += ["--basetemp", str(folder / "basetemp"), *tests, *(f"--deselect={test}" for test in deselect)]
    spec = {"mutants": sources, "jobs": max(1, min(4, os.cpu_count() or 1)), "timeout": 900, "args": args}
    spec["results"] = str(folder / "results.json")
    (folder / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "tests.mutation", str(folder / "spec.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert done.returncode == 0, (
        f"the fork server exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert "(no mutant)" not in results, results.get("(no mutant)")  # the tests must pass before any mutant
    assert results.keys() == {m.name for m in every}, "a mutant was not run"
    errors = {name: r["detail"] for name, r in results.items() if r["status"] == "error"}
    assert errors == {}, f"mutants that could not be run: {errors}"
    return [m for m in every if results[m.name]["status"] == "survived"]


def test_mutants_can_be_made() -> None:
    counts = {module: len(mutants(module)) for module in MODULES}
    assert counts["sevref.trust"] >= 40 and all(counts.values()), counts
    for module in MODULES:
        for mutant in mutants(module):
            compile(mutant.source, mutant.name, "exec")  # every mutant is still Python
            assert len(put_in_and_out(module, mutant.source)) == 1, mutant.name  # and changes one function


@pytest.mark.slow
def test_no_check_of_the_verifier_can_be_deleted_unnoticed(tmp_path: Path) -> None:
    every = [m for module in MODULES for m in mutants(module)]
    alive = [m.name for m in survivors(every, tmp_path)]
    assert alive == [], f"checks no test notices when deleted: {alive}"
