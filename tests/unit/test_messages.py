"""Every message sevref can print, proof-read: no doubled words, no unfilled fields, no stray spaces.

The templates are read from the code: every string and f-string inside a
``raise`` statement (including the arguments of helpers such as ``fail`` or
``_refuse`` that build the error) and every message printed to standard error.
An f-string's fields become ``{}``.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

DOUBLED = re.compile(r"\b([A-Za-z]{2,})\s+\1\b", re.IGNORECASE)
FIELD = re.compile(r"(?<!\{)\{[A-Za-z_][A-Za-z0-9_.]*(?:![rsa])?(?::[^{}\s][^{}]*)?\}(?!\})")
"""A ``{name}`` that only an f-string or str.format fills."""
GARBLED = ("not in it in", " ,", " ;", " :", "  ")


def template(node: ast.expr) -> str | None:
    """The text of a string expression, fields as ``{}``; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                parts.append("{}")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = template(node.left), template(node.right)
        if left is not None and right is not None:
            return left + right
    return None


def plain_strings(node: ast.AST) -> Iterator[ast.Constant]:
    """String constants that are not part of an f-string (an f-string's pieces are not templates)."""
    inside = {id(v) for n in ast.walk(node) if isinstance(n, ast.JoinedStr) for v in ast.walk(n) if v is not n}
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str) and id(child) not in inside:
            yield child


def messages() -> Iterator[tuple[str, int, str, bool]]:
    """(file, line, template, whether it is a plain string) of every message."""
    for path in sorted((REPO / "sevref").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        roots: list[ast.AST] = [n for n in ast.walk(tree) if isinstance(n, ast.Raise) and n.exc is not None]
        roots += [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)
            and n.func.id == "print"
            and any(k.arg == "file" and "stderr" in ast.unparse(k.value) for k in n.keywords)
        ]
        name = str(path.relative_to(REPO))
        for root in roots:
            for node in ast.walk(root):
                if isinstance(node, (ast.JoinedStr, ast.BinOp)):
                    text = template(node)
                    if text is not None:
                        yield name, node.lineno, text, False
            for constant in plain_strings(root):
                yield name, constant.lineno, str(constant.value), True


@functools.cache
def all_messages() -> list[tuple[str, int, str, bool]]:
    """:func:`messages`, read once a test process, when a test first asks (not while the tests are collected)."""
    return list(messages())


def test_there_are_messages_to_read() -> None:
    assert len(all_messages()) > 300  # the walk finds the code's messages (a broken walk would find none)


@pytest.mark.parametrize(
    ("text", "plain", "problem"),
    [
        ("the the file", False, "doubled"),
        ("{path}: not found", True, "field"),
        ("--signing-key {}: not in it in keys/1", False, "garbled"),
        ("expected  a folder", False, "garbled"),
        ("{}: expected a folder", False, None),
        ("exclude: [{{mode: sev}}]", True, None),
    ],
)
def test_the_proof_reader_catches_what_it_should(text: str, plain: bool, problem: str | None) -> None:
    assert problems(text, plain) == ([] if problem is None else [problem])


def problems(text: str, plain: bool) -> list[str]:
    found = []
    if DOUBLED.search(text.replace("{}", " § ")):
        found.append("doubled")
    if plain and FIELD.search(text):
        found.append("field")
    if any(g in text for g in GARBLED):
        found.append("garbled")
    return found


def test_every_message_reads_well() -> None:
    bad = [f"{file}:{line}: {problems(text, plain)}: {text!r}" for file, line, text, plain in all_messages()]
    bad = [b for (file, line, text, plain), b in zip(all_messages(), bad, strict=True) if problems(text, plain)]
    assert bad == []


def test_messages_are_one_line() -> None:
    multi = [f"{file}:{line}: {text!r}" for file, line, text, _ in all_messages() if "\n" in text.strip("\n")]
    assert multi == []


def test_it_reads_the_code_it_claims_to() -> None:
    texts = {text for _, _, text, _ in all_messages()}
    assert (
        "--out {}: a mount point; expected a folder on the same filesystem as {}, since the publication is renamed into place"
        in texts
    )
    assert any(t.startswith("sevref: not accepted: ") for t in texts)  # printed to stderr, not raised
    assert Path(REPO / "sevref" / "edge" / "files.py").is_file()
