"""Every check of the verifier is one a test would miss: delete it, and some test must fail.

A review once deleted four checks of ``trust.py`` (the release identity in
every JSON file, the keys document's publisher, its version against its file
number, the in-toto statement's types) and 499 tests still passed. This test
deletes each ``raise TrustError(...)`` of the verifier's modules in turn (the
statement becomes ``pass``), runs the in-process tests of the verifier
against that mutant, and requires each mutant to fail them.

Each mutant runs in its own interpreter: the mutated source is executed into
the module before anything else imports it, then pytest runs. The tests run
with ``-x``, ordered so that the conformance cases (fast, and each aimed at
one check) come first; tests that start ``sevref`` in a subprocess would not
see the mutant and are left out.
"""

from __future__ import annotations

import ast
import concurrent.futures
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

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
            found.append(Mutant(module, node.lineno, "".join(changed)))
    return sorted(found, key=lambda m: m.line)


RUNNER = (
    "import importlib, sys\n"
    "name, path = sys.argv[1], sys.argv[2]\n"
    "module = importlib.import_module(name)\n"
    "exec(compile(open(path, encoding='utf-8').read(), module.__file__, 'exec'), module.__dict__)\n"
    "import pytest\n"
    "sys.exit(pytest.main(sys.argv[3:]))\n"
)


def survives(mutant: Mutant, folder: Path, tests: Sequence[str] = TESTS, deselect: Sequence[str] = DESELECT) -> bool:
    """Run tests (the verifier's by default) against a mutant; True when they all pass (the deletion went unnoticed)."""
    path = folder / f"{mutant.module}.{mutant.line}.py"
    path.write_text(mutant.source, encoding="utf-8")
    args = ["-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    args += [f"--deselect={test}" for test in deselect]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, mutant.module, str(path), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode in (0, 1), f"{mutant.name}: pytest exited {done.returncode}\n{done.stdout[-3000:]}"
    return done.returncode == 0


def test_mutants_can_be_made() -> None:
    counts = {module: len(mutants(module)) for module in MODULES}
    assert counts["sevref.trust"] >= 40 and all(counts.values()), counts
    for module in MODULES:
        for mutant in mutants(module):
            compile(mutant.source, mutant.name, "exec")  # every mutant is still Python


@pytest.mark.slow
def test_no_check_of_the_verifier_can_be_deleted_unnoticed(tmp_path: Path) -> None:
    every = [m for module in MODULES for m in mutants(module)]
    workers = max(1, min(4, os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        alive = [
            m.name for m, lived in zip(every, pool.map(lambda m: survives(m, tmp_path), every), strict=True) if lived
        ]
    assert alive == [], f"checks no test notices when deleted: {alive}"
