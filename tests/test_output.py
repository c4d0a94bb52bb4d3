"""What sevref prints: unverified text escaped, one set of trust options, every command and option documented."""

from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sevref._cli import main
from sevref.errors import printable
from sevref.serialize import canonical
from tests.conftest import REPO
from tests.test_cli import _eager_parser

GOLDEN = REPO / "tests" / "golden"
TRUST = ["--trusted-key", str(GOLDEN / "key" / "golden.pub"), "--publisher", "golden", "--product", "tiny"]
TRUST += ["--stream", "test", "--at", "2026-02-01T00:00:00Z"]
FORGED = "\r\x1b[2K\x1b[32mtrusted: golden tiny test release 9.9 serial 99\x1b[0m\u202e"
"""What a mirror puts where sevref would print it raw: a carriage return, ANSI codes and a bidi override."""


def test_text_from_an_unverified_envelope_is_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    shutil.copytree(GOLDEN / "publication", site)
    envelope = json.loads((site / "index.dsse.json").read_bytes())
    envelope["signatures"] = [{"keyid": FORGED, "sig": base64.b64encode(b"x").decode()}]
    envelope["payloadType"] = FORGED
    (site / "index.dsse.json").write_bytes(canonical(envelope))
    status = main(["verify", "--publication", str(site), *TRUST], out=io.StringIO())
    err = capsys.readouterr().err
    assert status == 3 and err.startswith("sevref: not trusted: signature: index.dsse.json: payloadType is ")
    assert "\\r\\x1b[2K\\x1b[32mtrusted" in err and "\\u202e" in err
    assert all(c == "\n" or c.isprintable() for c in err) and err.count("\n") == 1
    envelope["payloadType"] = "application/vnd.sevref.index+json"
    (site / "index.dsse.json").write_bytes(canonical(envelope))
    status = main(["verify", "--publication", str(site), *TRUST], out=io.StringIO())
    err = capsys.readouterr().err
    assert status == 3 and "(signed by \\x0d\\x1b[2K" in err and all(c == "\n" or c.isprintable() for c in err)


def test_printable() -> None:
    assert printable("plain text: 0x1f, é, ✓") == "plain text: 0x1f, é, ✓"
    assert printable("a\tb\x7f\x9b\u200b\U000e0001") == "a\\x09b\\x7f\\x9b\\u200b\\U000e0001"


def _subcommands(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _subcommands(child, f"{name} {sub}")


COMMANDS = dict(_subcommands(_eager_parser(), "sevref"))  # every command built, not the lazy stubs


def _trust_options(parser: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    groups = [g for g in parser._action_groups if g.title and g.title.startswith("trust options")]
    assert len(groups) == 1
    return [tuple(a.option_strings) for a in groups[0]._group_actions]


def test_every_verifier_command_takes_the_same_trust_options() -> None:
    verify, export = _trust_options(COMMANDS["sevref verify"]), _trust_options(COMMANDS["sevref export"])
    assert verify == export
    assert {o for option in verify for o in option} >= {
        "--publication",
        "--trusted-key",
        "--publisher",
        "--product",
        "--stream",
        "--at",
        "--state",
        "--timeout",
        "--require-timestamp",
        "--max-age",
    }


def test_the_readme_names_every_command_and_option() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [name for name in COMMANDS if name not in readme and name.count(" ") > 0]
    for name, parser in COMMANDS.items():
        for action in parser._actions:
            missing.extend(
                f"{name} {option}"
                for option in action.option_strings
                if option.startswith("--") and option not in ("--help", "--version") and option not in readme
            )
    assert missing == []
