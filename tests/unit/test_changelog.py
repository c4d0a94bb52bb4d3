"""CHANGELOG.md: its newest heading is the version sevref says it is."""

from __future__ import annotations

import re

import pytest

from sevref import __version__
from sevref._cli import main
from tests.conftest import REPO


def test_the_newest_changelog_heading_is_the_version_sevref_prints(capsys: pytest.CaptureFixture[str]) -> None:
    headings = re.findall(r"^## (\S+)", (REPO / "CHANGELOG.md").read_text(encoding="utf-8"), re.MULTILINE)
    assert headings and headings[0] == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", headings[0])  # the scheme the changelog promises
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sevref {__version__}"
