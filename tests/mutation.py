"""The mutation tests' fork server: collect the tests once, then run them against each mutant in a forked child.

``python -m tests.mutation SPEC`` reads a JSON file ``{"mutants": [[module, first line, last line, path of
the mutant's source], ...], "jobs": N, "timeout": seconds, "results": path, "args": [pytest arguments]}``, imports and
collects the tests once (``pytest.main(args)``) and runs them once without a mutant (they must pass),
tracing which lines of the mutated modules each test runs. Then, for each mutant, it forks: the child
puts the mutant into the live module and runs every collected test, those that ran the changed lines
first and then the others in order, stopping at the first failure (``-x``); up to ``jobs`` children
run at once. The results file gets, for each mutant's name
(``module:line``), ``{"status": "killed" | "survived" | "error", "detail": ...}``: killed names the
first test that failed.

The mutant is put in by code object: both the module's source and the mutant's are compiled, and each
function or method whose code differs gets the mutant's code assigned to its ``__code__``. The function
objects stay the ones every other module imported (``from sevref.trust import ...`` sees the mutant
too), and the module's classes and errors keep their identity. A mutant whose change is not inside a
function found this way (a statement at module or class level) is an error, never silently skipped.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

KILLED, SURVIVED, ERROR = 1, 0, 3
"""The child's exit codes."""


CO_OPTIMIZED = 0x1
"""The flag of a function's code (fast locals); a class body's code has not got it."""


def _functions_of(code: types.CodeType) -> Iterator[types.CodeType]:
    """The code of every function defined at module level or in a class body (at any depth of classes)."""
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from (_functions_of(const) if _is_class_body(const) else [const])


def _is_class_body(code: types.CodeType) -> bool:
    """A class body's code rather than a function's."""
    return not code.co_flags & CO_OPTIMIZED


def _key(code: types.CodeType) -> tuple[str, int]:
    """What finds a function's code in the module's and the mutant's: its qualified name and first line."""
    return code.co_qualname, code.co_firstlineno


def _live_functions(module: types.ModuleType) -> Iterator[types.FunctionType]:
    """Every function object of a module's namespace and of its classes, unwrapped."""
    seen: set[int] = set()
    stack: list[Any] = list(vars(module).values())
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, types.FunctionType):
            yield value
            if hasattr(value, "__wrapped__"):  # functools.wraps
                stack.append(value.__wrapped__)
        elif isinstance(value, type) and value.__module__ == module.__name__:
            stack.extend(vars(value).values())
        elif isinstance(value, staticmethod | classmethod):
            stack.append(value.__func__)
        elif isinstance(value, property):
            stack.extend(f for f in (value.fget, value.fset, value.fdel) if f is not None)
        elif hasattr(value, "__wrapped__") and callable(value):  # functools.lru_cache, cache
            stack.append(value.__wrapped__)


def put_in(module_name: str, mutant_source: str) -> list[str]:
    """Give the live functions of a module the code of a mutant of its source.

    Args:
        module_name: the module (imported if it is not yet).
        mutant_source: its source with one statement changed (the same lines otherwise).

    Returns:
        The qualified names of the functions changed.

    Raises:
        RuntimeError: the change is not inside a function that can be found, or nothing changed.
    """
    module = importlib.import_module(module_name)
    path = module.__file__
    assert path is not None
    original = compile(Path(path).read_text(encoding="utf-8"), path, "exec")
    mutant = compile(mutant_source, path, "exec")
    old = {_key(code): code for code in _functions_of(original)}
    new = {_key(code): code for code in _functions_of(mutant)}
    if old.keys() != new.keys() or len(old) != len(list(_functions_of(original))):
        raise RuntimeError(f"{module_name}: the mutant changes which functions there are, or two share a line")
    if _without_functions(original) != _without_functions(mutant):
        raise RuntimeError(f"{module_name}: the mutant changes code outside a function")
    changed = [key for key in old if old[key] != new[key]]
    if not changed:
        raise RuntimeError(f"{module_name}: the mutant changes no function")
    live = list(_live_functions(module))
    for key in changed:
        targets = [f for f in live if _key(f.__code__) == key and f.__code__.co_filename == path]
        if not targets or any(f.__code__ != old[key] for f in targets):
            raise RuntimeError(f"{module_name}: no live function {key[0]} (line {key[1]}) with the module's code")
        for function in targets:
            function.__code__ = new[key]
    return [name for name, _ in changed]


def put_in_and_out(module_name: str, mutant_source: str) -> list[str]:
    """Check that a mutant can be put into the live module (:func:`put_in`), then put the module's code back.

    Returns:
        The qualified names of the functions the mutant changes.
    """
    saved = {function: function.__code__ for function in _live_functions(importlib.import_module(module_name))}
    try:
        return put_in(module_name, mutant_source)
    finally:
        for function, code in saved.items():
            function.__code__ = code


def _without_functions(code: types.CodeType) -> Any:
    """The module's code with every function's code left out (class bodies looked into)."""
    consts = tuple(
        (_without_functions(c) if _is_class_body(c) else "function") if isinstance(c, types.CodeType) else c
        for c in code.co_consts
    )
    return (code.co_code, consts, code.co_names)


def _run_child(items: list[pytest.Item], module: str, source_path: str, report: Path) -> int:
    """In the forked child: put the mutant in, run the tests with ``-x``; the exit code says what happened."""
    try:
        put_in(module, Path(source_path).read_text(encoding="utf-8"))
        for index, item in enumerate(items):
            following = items[index + 1] if index + 1 < len(items) else None
            reports = runtestprotocol(item, nextitem=following, log=False)
            failed = [r for r in reports if r.failed]
            if failed:
                report.write_text(f"{item.nodeid} ({failed[0].when})", encoding="utf-8")
                return KILLED
        return SURVIVED
    except BaseException:  # everything is reported, nothing raised out of the fork
        report.write_text(traceback.format_exc()[-3000:], encoding="utf-8")
        return ERROR


class _Tracer:
    """Records which lines of some files run while it is entered (``with tracer as lines``), in every thread."""

    def __init__(self, files: set[str]) -> None:
        """Trace the lines of these files (paths as their code objects name them)."""
        self.files = files
        self.lines: set[tuple[str, int]] = set()

    def _call(self, frame: types.FrameType, event: str, arg: object) -> Any:
        return self._line if frame.f_code.co_filename in self.files else None

    def _line(self, frame: types.FrameType, event: str, arg: object) -> Any:
        if event == "line":
            self.lines.add((frame.f_code.co_filename, frame.f_lineno))
        return self._line

    def __enter__(self) -> set[tuple[str, int]]:
        """Start recording into a new set."""
        self.lines = set()
        threading.settrace(self._call)
        sys.settrace(self._call)
        return self.lines

    def __exit__(self, *exc: object) -> None:
        """Stop recording."""
        sys.settrace(None)
        threading.settrace(None)


class ForkServer:
    """The plugin that replaces pytest's run of the collected tests by one run a mutant."""

    def __init__(self, spec: dict[str, Any]) -> None:
        """Keep the specification (see the module's docstring)."""
        self.spec = spec
        self.results: dict[str, dict[str, str]] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        """Fork a child for each mutant, ``jobs`` at a time; record each outcome."""
        items = list(session.items)
        session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]  # made once, before any fork
        folder = Path(self.spec["results"]).parent
        # Once without a mutant: the tests must pass, and what they make once (session fixtures, cached
        # keys) is made here, before the forks, rather than in every child. Which lines of the mutated
        # modules each test runs is traced, so that each mutant runs the tests that reach its line first.
        tracer = _Tracer({str(Path(importlib.import_module(m).__file__ or "")) for m, *_ in self.spec["mutants"]})
        reached: list[set[tuple[str, int]]] = []
        for index, item in enumerate(items):
            following = items[index + 1] if index + 1 < len(items) else session  # keeps the session's fixtures
            with tracer as lines:
                reports = runtestprotocol(item, nextitem=following, log=False)  # type: ignore[arg-type]
            reached.append(lines)
            failed = [r for r in reports if r.failed]
            if failed:
                self.results["(no mutant)"] = {"status": "error", "detail": f"{item.nodeid} fails without a mutant"}
                Path(self.spec["results"]).write_text(json.dumps(self.results, indent=1), encoding="utf-8")
                return True
        pending = []
        for module, line, end, source in self.spec["mutants"]:
            path = str(Path(importlib.import_module(module).__file__ or ""))
            mutated = {(path, n) for n in range(line, end + 1)}
            first = [item for item, lines in zip(items, reached, strict=True) if lines & mutated]
            chosen = {id(item) for item in first}
            pending.append((f"{module}:{line}", module, source, first + [i for i in items if id(i) not in chosen]))
        running: dict[int, tuple[str, float]] = {}
        sys.stdout.flush()
        sys.stderr.flush()
        while pending or running:
            while pending and len(running) < self.spec["jobs"]:
                name, module, source, order = pending.pop(0)
                report = folder / f"{name}.report"
                pid = os.fork()
                if pid == 0:  # the child
                    code = _run_child(order, module, source, report)
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
                running[pid] = (name, time.monotonic())
            ended = {}  # only this server's children are waited for, never a process a test started
            for child in running:
                pid, status = os.waitpid(child, os.WNOHANG)
                if pid:
                    ended[child] = status
            if not ended:
                for child, (name, started) in running.items():
                    if time.monotonic() - started > self.spec["timeout"] and name not in self.results:
                        os.kill(child, signal.SIGKILL)
                        self.results[name] = {"status": "error", "detail": f"timed out after {self.spec['timeout']} s"}
                time.sleep(0.02)
            for child, status in ended.items():
                name, started = running.pop(child)
                if name in self.results:  # timed out and killed
                    continue
                code = os.waitstatus_to_exitcode(status)
                report = folder / f"{name}.report"
                detail = report.read_text(encoding="utf-8") if report.exists() else ""
                outcome = {KILLED: "killed", SURVIVED: "survived"}.get(code, "error")
                self.results[name] = {"status": outcome, "detail": detail or f"exit code {code}"}
                self.results[name]["seconds"] = f"{time.monotonic() - started:.2f}"
        Path(self.spec["results"]).write_text(json.dumps(self.results, indent=1), encoding="utf-8")
        return True


def main(spec_path: str) -> int:
    """Run the fork server of a specification file; pytest's exit code (0 once every mutant ran)."""
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    return int(pytest.main(spec["args"], plugins=[ForkServer(spec)]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
