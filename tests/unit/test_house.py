"""The house rules, checked on the code as it is (ARCHITECTURE.md).

* No module above 700 lines; no function above 80 lines unless a ``# long:``
  comment on its ``def`` line says why.
* Dependencies point down: ``binfmt`` imports only ``errors``; nothing imports
  the command line; only the edge, the two compositions (``pipeline``,
  ``verifier``) and the command line import modules that touch the operating
  system; the verifier side imports nothing of the build side, directly or
  through another module.
* ``sevref verify`` loads neither ``yaml`` nor ``jinja2``, nor any module of the
  build side.
* ``sevref --version`` and ``--help`` load argparse and the command line alone;
  a common ``sevref digest`` loads neither argparse nor the full path; any
  ``sevref digest`` loads nothing of the build but the request and its engine.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "sevref"
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80

EDGE = {
    "sevref.edge",
    "sevref.pipeline",
    "sevref.verifier",
    "sevref.freshness",
    "sevref.api",
    "sevref._cli",
    "sevref.__main__",
}
"""Prefixes of the modules that may do I/O: the edge, the three compositions, the API over them and the command line."""
OS_MODULES = {
    "os",
    "subprocess",
    "shutil",
    "tempfile",
    "fcntl",
    "socket",
    "urllib",
    "http",
    "multiprocessing",
    "ctypes",
}
"""Standard modules that touch the operating system (ctypes: binfmt uses its structures, checked apart)."""
BUILD_SIDE = {
    "sevref.manifest",
    "sevref.expand",
    "sevref.hosts",
    "sevref.render",
    "sevref.assemble",
    "sevref.pipeline",
    "sevref.request",
    "sevref.edge.publish",
    "sevref.edge.signing",
    "sevref.edge.sources",
    "sevref.edge.inputs",
    "sevref.edge.debian",
    "sevref.edge.apt",
    "sevref.edge.download",
    "sevref.edge.packages",
    "sevref.edge.repo",
    "sevref.edge.descriptors",
    "sevref.edge.pin",
    "sevref.excludes",
}
VERIFIER_SIDE = {
    "sevref.trust",
    "sevref.state",
    "sevref.timestamp",
    "sevref.match",
    "sevref.export",
    "sevref.verifier",
    "sevref.keychain",
    "sevref.edge.remote",
    "sevref.edge.fetch",
    "sevref.edge.state",
    "sevref.edge.keys",
    "sevref.snp",
    "sevref.corim",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def within(name: str, prefixes: set[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


@cache
def imports(name: str) -> frozenset[str]:
    """Every module a module imports, at its top or inside a function (relative imports resolved)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(f for f in found if f in MODULES or not f.startswith("sevref"))


def closure(name: str) -> set[str]:
    """The sevref modules a module needs, directly or through others (and the packages they sit in)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for imported in imports(current):
            if imported in MODULES:
                todo.append(imported)
                parent = imported.rpartition(".")[0]
                while parent:  # importing a.b runs a/__init__.py
                    todo.append(parent)
                    parent = parent.rpartition(".")[0]
    return seen


def test_modules_stay_small() -> None:
    long = {name: path.read_text().count("\n") for name, path in MODULES.items()}
    assert {name: n for name, n in long.items() if n > MAX_MODULE_LINES} == {}


def test_functions_fit_on_a_screen_or_say_why() -> None:
    offenders = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES and "# long:" not in lines[node.lineno - 1]:
                    offenders.append(f"{name}.{node.name}: {length} lines")
    assert offenders == []


def test_binfmt_imports_only_errors() -> None:
    for name in MODULES:
        if within(name, {"sevref.binfmt"}):
            own = {i for i in imports(name) if i.startswith("sevref")}
            assert own <= {"sevref.errors"} | {m for m in MODULES if within(m, {"sevref.binfmt"})}, name


def test_nothing_imports_the_command_line() -> None:
    for name in MODULES:
        if not within(name, {"sevref._cli"}) and name != "sevref.__main__":
            assert not any(within(i, {"sevref._cli"}) for i in imports(name)), name


def test_only_the_edge_touches_the_operating_system() -> None:
    for name in MODULES:
        if within(name, EDGE) or within(name, {"sevref.binfmt", "sevref._resources"}):
            continue
        touched = {i.split(".")[0] for i in imports(name)} & OS_MODULES
        assert touched == set(), f"{name} imports {sorted(touched)}"
        assert not any(within(i, EDGE) for i in imports(name)), f"{name} imports the edge"


def test_binfmt_uses_ctypes_for_layouts_only() -> None:
    for name in MODULES:
        if within(name, {"sevref.binfmt"}):
            assert {i.split(".")[0] for i in imports(name)} & (OS_MODULES - {"ctypes"}) == set(), name


@pytest.mark.parametrize("name", sorted(VERIFIER_SIDE))
def test_the_verifier_side_needs_nothing_of_the_build_side(name: str) -> None:
    needed = closure(name)
    assert {m for m in needed if within(m, BUILD_SIDE)} == set()
    third_party = {i.split(".")[0] for m in needed for i in imports(m)}
    assert third_party & {"yaml", "jinja2", "markupsafe"} == set()


def test_verify_loads_neither_yaml_nor_jinja2() -> None:
    golden = REPO / "tests" / "golden"
    argv = [
        "verify",
        "--publication",
        str(golden / "publication"),
        "--trusted-key",
        str(golden / "key" / "golden.pub"),
        *("--publisher", "golden", "--product", "tiny", "--stream", "test", "--at", "2026-02-01T00:00:00Z"),
    ]
    program = (
        "import io, sys\n"
        "from sevref._cli import main\n"
        f"status = main({argv!r}, out=io.StringIO())\n"
        f"print(status, sorted(m for m in {sorted(BUILD_SIDE | {'yaml', 'jinja2', 'markupsafe'})!r} "
        "if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == "0 []", done.stdout + done.stderr


def loaded_by(argv: list[str]) -> set[str]:
    """The modules ``sevref argv`` loads beyond those Python starts with, run in a fresh process."""
    program = (
        "import io, sys\n"
        "before = set(sys.modules)\n"
        "from sevref._cli import main\n"
        "out = io.StringIO()\n"
        "sys.stdout = io.StringIO()\n"
        f"status = main({argv!r}, out=out)\n"
        "sys.stdout = sys.__stdout__\n"
        "print(status, ' '.join(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, cwd=REPO)
    status, _, modules = done.stdout.strip().partition(" ")
    assert status == "0", done.stdout + done.stderr
    return set(modules.split())


HEAVY = {"dataclasses", "json", "pathlib", "typing", "ctypes", "uuid", "datetime", "subprocess", "tempfile", "http"}
"""Standard modules that take milliseconds to import and that the quick commands do without."""


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_help_load_argparse_and_the_command_line_alone(argv: list[str]) -> None:
    loaded = loaded_by(argv)
    assert {m for m in loaded if m.startswith("sevref")} <= {
        "sevref",
        "sevref._cli",
        "sevref._cli._common",
        "sevref.errors",
    }
    assert loaded & HEAVY == set()


def test_a_common_digest_loads_neither_argparse_nor_the_full_path(debian_ovmf: Path) -> None:
    firmware = debian_ovmf / "usr" / "share" / "OVMF" / "OVMF_CODE.fd"
    for mode in ("sev-snp", "sev-es"):
        loaded = loaded_by(
            ["digest", "--mode", mode, "--firmware", str(firmware), "--cpu", "EPYC-Milan", "--vcpus", "4"]
        )
        assert {m for m in loaded if m.startswith("sevref")} == {
            "sevref",
            "sevref._cli",
            "sevref._cli._quick",
            "sevref.limits",
            "sevref.quick",
        }
        assert loaded & (HEAVY | {"argparse", "enum", "re", "hashlib"}) == {"hashlib"}


def test_any_digest_loads_nothing_of_the_build_but_the_request(debian_ovmf: Path) -> None:
    firmware = debian_ovmf / "usr" / "share" / "OVMF" / "OVMF_CODE.fd"
    loaded = loaded_by(["digest", "--mode", "sev-snp", "--firmware", str(firmware), "--cpu", "EPYC-Milan", "--json"])
    assert {m for m in loaded if within(m, BUILD_SIDE)} == {"sevref.request", "sevref.edge.inputs"}
    assert {m for m in loaded if within(m, VERIFIER_SIDE)} == set()
    assert {m.split(".")[0] for m in loaded} & {
        "yaml",
        "jinja2",
        "jsonschema",
        "http",
        "urllib3",
        "ssl",
        "socket",
    } == set()
