"""Every check of the report signature is one a test would miss: delete it, and some test must fail.

As tests/test_mutants.py does for the publication's checks: each ``raise
EvidenceError(...)`` and ``raise CertificateFormatError(...)`` of
sevref/snp/verify.py becomes ``pass`` in turn, and the SEV-SNP tests must
notice. The mutant is executed into the module before the tests import it.
"""

from __future__ import annotations

import ast
import concurrent.futures
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

MODULE = "sevref.snp.verify"
ERRORS = {"EvidenceError", "CertificateFormatError"}
TESTS = ["tests/test_snp_verify.py", "tests/test_snp_cli.py", "tests/test_snp_validate.py"]
RUNNER = (
    "import importlib, sys\n"
    "name, path = sys.argv[1], sys.argv[2]\n"
    "module = importlib.import_module(name)\n"
    "exec(compile(open(path, encoding='utf-8').read(), module.__file__, 'exec'), module.__dict__)\n"
    "import pytest\n"
    "sys.exit(pytest.main(sys.argv[3:]))\n"
)


def mutants() -> list[tuple[int, str]]:
    """(line, source with that raise replaced by pass), for every raise of the module's two errors."""
    source = (REPO / (MODULE.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Raise)
            and isinstance(node.exc, ast.Call)
            and isinstance(node.exc.func, ast.Name)
            and node.exc.func.id in ERRORS
        ):
            end = node.end_lineno or node.lineno
            indent = lines[node.lineno - 1][: node.col_offset]
            changed = [*lines[: node.lineno - 1], f"{indent}pass\n", *["\n"] * (end - node.lineno), *lines[end:]]
            found.append((node.lineno, "".join(changed)))
    return sorted(found)


def survives(line: int, source: str, folder: Path) -> bool:
    path = folder / f"verify.{line}.py"
    path.write_text(source, encoding="utf-8")
    args = ["-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *TESTS]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, MODULE, str(path), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode in (0, 1), f"line {line}: pytest exited {done.returncode}\n{done.stdout[-3000:]}"
    return done.returncode == 0


def test_the_mutants_can_be_made() -> None:
    found = mutants()
    assert len(found) >= 20
    for line, source in found:
        compile(source, f"verify.{line}", "exec")


@pytest.mark.slow
def test_no_check_of_the_report_signature_can_be_deleted_unnoticed(tmp_path: Path) -> None:
    every = mutants()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        lived = list(pool.map(lambda m: survives(m[0], m[1], tmp_path), every))
    alive = [line for (line, _), alive in zip(every, lived, strict=True) if alive]
    assert alive == [], f"lines of {MODULE} whose check no test notices when deleted: {alive}"
