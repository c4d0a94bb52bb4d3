"""Deprecation as docs/compatibility.md promises it: a deprecated option or manifest field keeps working,
says so once on standard error, and is recorded in the frozen command line so that it can be removed later.

Nothing in sevref 0.1.0 is deprecated, so these tests mark a real option and a real manifest field for
the length of a test and run the real command line on the golden manifest.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path

import pytest

import sevref._cli.build
from sevref._cli import main
from sevref._cli._common import Parser, deprecate
from sevref._cli._manpage import render_pages
from sevref.errors import Deprecation
from sevref.manifest import reader
from sevref.manifest.loader import parse_yaml
from tests.conftest import REPO
from tests.unit.test_compat import cli_surface

GOLDEN = REPO / "tests" / "golden" / "manifest.yaml"
LATER = Deprecation("0.2", "1.0", "--new-way")


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(args, out=out)
    return status, out.getvalue(), capsys.readouterr().err


@pytest.mark.parametrize(
    ("add", "given", "value"),
    [
        (
            lambda p: p.add_argument("--old", action="append", help="an old way"),
            ["--old", "a", "--old", "b"],
            ["a", "b"],
        ),
        (lambda p: p.add_argument("--old", action="store_true", help="an old way"), ["--old", "--old"], True),
        (lambda p: p.add_argument("--old", type=int, help="an old way"), ["--old=7"], 7),
    ],
)
def test_a_deprecated_option_works_as_before_and_warns_once_a_run(
    add: Callable[[argparse.ArgumentParser], argparse.Action],
    given: list[str],
    value: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def parser() -> Parser:
        made = Parser(prog="sevref try")
        deprecate(add(made), LATER)
        made.add_argument("--other")
        return made

    assert parser().parse_args(given).old == value
    assert capsys.readouterr().err == "sevref: warning: --old is deprecated since 0.2 and goes in 1.0; use --new-way\n"
    assert parser().parse_args(given).old == value  # the next run says it again
    assert capsys.readouterr().err.count("warning") == 1
    assert parser().parse_args(["--other", "x"]).old in (None, False)  # not given: not a word
    assert capsys.readouterr().err == ""
    text = " ".join(parser().format_help().split())
    assert "an old way (deprecated since 0.2, goes in 1.0: use --new-way)" in text


@pytest.fixture
def allow_path_deprecated(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sevref validate --allow-path`` marked deprecated, as a later release would mark it."""
    register = sevref._cli.build.register

    def marked(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        register(commands)
        validate = commands.choices["validate"]
        deprecate(next(a for a in validate._actions if "--allow-path" in a.option_strings), LATER)

    monkeypatch.setattr(sevref._cli.build, "register", marked)


@pytest.mark.usefixtures("allow_path_deprecated")
def test_a_deprecated_option_of_a_real_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = run(["validate", str(GOLDEN), "--allow-path", str(tmp_path), "--cache", str(tmp_path)], capsys)
    assert (status, err) == (0, f"sevref: warning: {LATER.warning('--allow-path')}\n")
    assert out.startswith("ok: ")
    # The frozen command line of the release that marks it records it; that is what lets a later one remove it.
    assert cli_surface()["validate"]["deprecated"] == {"--allow-path": "0.2"}
    assert cli_surface()["build"]["deprecated"] == {}
    page = render_pages((REPO / "CHANGELOG.md").read_text(encoding="utf-8"))["sevref-validate.1"]
    assert "deprecated since 0.2, goes in 1.0: use \\-\\-new\\-way" in page


def test_a_deprecated_manifest_field_reads_as_before_and_is_named_where_it_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    before = run(["validate", str(GOLDEN), "--cache", str(tmp_path)], capsys)
    assert before[2] == ""
    monkeypatch.setattr(reader, "DEPRECATED_FIELDS", {"/firmware/*/description": Deprecation("0.2", "1.0", "notes")})
    status, out, err = run(["validate", str(GOLDEN), "--cache", str(tmp_path)], capsys)
    assert (status, out) == before[:2]
    written = "    description: Synthetic OVMF-like image with a kernel-hashes table and SEV-SNP metadata."
    line = GOLDEN.read_text(encoding="utf-8").splitlines().index(written) + 1
    column = written.index("Synthetic") + 1  # the value's place, as every manifest error names it
    assert err == (
        f"sevref: warning: {GOLDEN}:{line}:{column}: /firmware/0/description is deprecated since 0.2 and goes in 1.0; "
        "use notes\n"
    )
    status, _, built = run(["build", str(GOLDEN), "--out", str(tmp_path / "site"), "--cache", str(tmp_path)], capsys)
    assert status == 0 and built.splitlines()[0] == err.strip()  # build says it too, before anything else


def test_deprecated_fields_are_matched_by_pointer_in_file_order() -> None:
    """Each use is named at its value, as every manifest error is."""
    text = b"a: {x: 1, y: 2}\nb: [{x: 3}, {z: 4}, {x: 5}]\nc: {x: {x: 6}}\n"
    document = parse_yaml(text, "m.yaml", Path())
    fields = {"/b/*/x": Deprecation("0.2", "1.0", "y"), "/a/x": Deprecation("0.3", "1.0", "w")}
    assert reader.deprecated_uses(document, fields) == [
        "m.yaml:1:8: /a/x is deprecated since 0.3 and goes in 1.0; use w",
        "m.yaml:2:9: /b/0/x is deprecated since 0.2 and goes in 1.0; use y",
        "m.yaml:2:25: /b/2/x is deprecated since 0.2 and goes in 1.0; use y",
    ]
    assert reader.deprecated_uses(document, {"/c/*/x": LATER}) == [
        "m.yaml:3:12: /c/x/x is deprecated since 0.2 and goes in 1.0; use --new-way"
    ]
    assert reader.deprecated_uses(document, {"/b/1/x": LATER, "/a/x/y": LATER, "/d": LATER}) == []
    assert reader.deprecated_uses(document) == []  # nothing in sevref 0.1.0 is deprecated
