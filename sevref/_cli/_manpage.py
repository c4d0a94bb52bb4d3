"""sevref's man pages, made from its own parsers: ``sevref.1`` and one ``sevref-COMMAND.1`` a command.

Each page is built from the parser that ``sevref COMMAND --help`` prints, as
:class:`~sevref._cli._common.LazyCommands` builds it (each module's
``register``), so the pages cannot say other than the command line does. The
pages are committed in ``man/`` (so that building a wheel needs none of
sevref's dependencies); ``make man`` runs this module to remake them, and a
test fails when the committed pages differ from what it makes now.

The output depends on nothing but the parsers, the version and the newest
heading of CHANGELOG.md: its date, or what it says in place of one
("unreleased"), is the pages' date, never the clock.

Run as ``python -m sevref._cli._manpage --changelog CHANGELOG.md --out man``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sevref import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

EXIT_STATUS = (
    ("0", "success: the result is printed (for verify, a match, or a trusted publication when no evidence is given)"),
    ("1", "bad input, a failed check of the input, or no acceptable match (one line on standard error)"),
    ("2", "usage: an unknown command or option, or options that do not go together"),
    ("3", "verify and export: the publication is not trusted, or an SEV-SNP report's signature does not hold"),
)
"""sevref's exit statuses (``sevref._cli``'s docstring, and each command's description, say them too)."""
SECTION = "1"
MANUAL = "sevref Manual"
_OPTION = re.compile(r"(?<![\w-])--?\w[\w-]*")
_HEADING = re.compile(r"^## (\S+)(?: \(([^)]*)\))?", re.MULTILINE)


def page_date(changelog: str) -> str:
    """The pages' date: what the newest heading of CHANGELOG.md says in parentheses.

    Args:
        changelog: CHANGELOG.md's text.

    Returns:
        ``2026-12-01`` for ``## 0.1.0 (2026-12-01)``, ``unreleased`` for ``## 0.1.0 (unreleased)``,
        empty when the heading says nothing.

    Raises:
        ValueError: the newest heading is not the version sevref says it is.
    """
    heading = _HEADING.search(changelog)
    if heading is None or heading.group(1) != __version__:
        found = heading.group(1) if heading else "no heading"
        raise ValueError(f"CHANGELOG.md's newest heading is {found}; sevref is {__version__}")
    return heading.group(2) or ""


def roff(text: str) -> str:
    """Text as roff prints it: backslashes escaped, hyphens of options kept ASCII, no line read as a request.

    Args:
        text: plain text, one paragraph.

    Returns:
        One line of roff.
    """
    escaped = " ".join(text.split()).replace("\\", "\\e")
    # Options (-h, --launch-measurement) are typed as written: ASCII hyphens, never broken at the end of a line.
    escaped = _OPTION.sub(lambda option: option.group().replace("-", "\\-"), escaped)
    return "\\&" + escaped if escaped.startswith((".", "'")) else escaped


def _bold(text: str) -> str:
    return f"\\fB{roff(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{roff(text)}\\fR"


def _quoted(text: str) -> str:
    """An argument of a roff request, in double quotes."""
    return '"' + roff(text).replace('"', "\\(dq") + '"'


def _value(action: argparse.Action) -> str:
    """What follows an option, or a positional argument, in the synopsis: its metavar with its nargs."""
    if isinstance(action.metavar, str):
        name = action.metavar
    elif action.choices is not None and not action.option_strings:
        name = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        name = action.dest if not action.option_strings else action.dest.upper()
    one = _italic(name)
    return {
        "?": f"[{one}]",
        "*": f"[{one} ...]",
        "+": f"{one} [{one} ...]",
    }.get(str(action.nargs), one)


def _usage_item(action: argparse.Action) -> str:
    """One option as the synopsis shows it, without brackets."""
    if not action.option_strings:
        return _value(action)
    return _bold(action.option_strings[0]) + ("" if action.nargs == 0 else " " + _value(action))


def synopsis(parser: argparse.ArgumentParser) -> list[str]:
    """The items of a command's synopsis, as argparse's usage lists them: options first, then arguments.

    Args:
        parser: the command's parser.

    Returns:
        One roff line an item; mutually exclusive options in one item.
    """
    groups = {a: g for g in parser._mutually_exclusive_groups for a in g._group_actions}
    items: list[str] = []
    shown: set[int] = set()
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        group = groups.get(action)
        if group is None:
            item = _usage_item(action)
            items.append(item if action.required else f"[{item}]")
        elif id(group) not in shown:
            shown.add(id(group))
            item = " | ".join(_usage_item(a) for a in group._group_actions)
            items.append(f"({item})" if group.required else f"[{item}]")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            items.append(f"{_italic('COMMAND')} [{_italic('ARGUMENTS')} ...]")
        elif not action.option_strings:
            items.append(_value(action))
    return items


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """An argument's help, with the facts its help text leaves out: required, the choices, the default."""
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    notes = []
    if action.option_strings and action.required:
        notes.append("Required.")
    if action.choices is not None and not isinstance(action.metavar, str) and action.option_strings:
        notes.append("One of: " + ", ".join(map(str, action.choices)) + ".")
    meaningful = action.default not in (None, False, [], argparse.SUPPRESS) and action.nargs != 0
    if meaningful and "default" not in text:
        notes.append(f"Default: {action.default}.")
    text = text[:1].upper() + text[1:]
    return " ".join(filter(None, [text if not text or text.endswith(".") else text + ".", *notes]))


def options(parser: argparse.ArgumentParser, heading: str = ".SH") -> list[str]:
    """A command's arguments and options, each group under its own heading.

    Args:
        parser: the command's parser.
        heading: ``.SH`` on a command's own page; ``.SS`` for a command of a command.

    Returns:
        roff lines.
    """
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if not isinstance(a, argparse._SubParsersAction)]
        if not actions:
            continue
        title = {"positional arguments": "ARGUMENTS", "options": "OPTIONS"}.get(group.title or "", group.title or "")
        lines.append(f"{heading if title.isupper() else '.SS'} {_quoted(title)}")
        for action in actions:
            flags = ", ".join(_bold(flag) for flag in action.option_strings)
            term = _value(action) if not flags else flags + ("" if action.nargs == 0 else " " + _value(action))
            lines += [".TP", term, roff(_help(parser, action))]
    return lines


def _head(name: str, summary: str) -> list[str]:
    title = name.upper()
    return [
        ".\\\" Made by python -m sevref._cli._manpage from sevref's parsers: edit those, then run make man.",
        f".TH {title} {SECTION} {{date}} {_quoted('sevref ' + __version__)} {_quoted(MANUAL)}",
        ".nh",  # no hyphenation: options and metavars are copied as they are printed
        ".SH NAME",
        f"{roff(name)} \\- {roff(summary)}",
    ]


def _synopsis_lines(words: str, parser: argparse.ArgumentParser) -> list[str]:
    return [".PP", _bold(words), *synopsis(parser)]


def main_page(parser: argparse.ArgumentParser, commands: Sequence[tuple[str, str]]) -> list[str]:
    """``sevref.1``: the synopsis, the commands, the exit statuses.

    Args:
        parser: sevref's own parser.
        commands: each command and its one-line help, as ``sevref._cli.COMMANDS`` lists them.

    Returns:
        roff lines (``{date}`` in place of the date).
    """
    lines = [*_head("sevref", "launch digests of AMD SEV, SEV-ES and SEV-SNP confidential VMs"), ".SH SYNOPSIS"]
    lines += _synopsis_lines("sevref", parser)
    lines += [".SH DESCRIPTION", roff(parser.description or ""), *options(parser)]
    lines += [".SH COMMANDS"]
    for name, help_text in commands:
        summary = roff(help_text[:1].upper() + help_text[1:])
        lines += [".TP", _bold(f"sevref {name}"), f"{summary}: {_bold('sevref-' + name)}({SECTION})."]
    lines += [".SH EXIT STATUS"]
    for status, meaning in EXIT_STATUS:
        lines += [".TP", _bold(status), roff(meaning[:1].upper() + meaning[1:]) + "."]
    lines += [".SH SEE ALSO", ",\n".join(f"{_bold('sevref-' + name)}({SECTION})" for name, _ in commands)]
    return lines


def command_page(name: str, help_text: str, parser: argparse.ArgumentParser) -> list[str]:
    """``sevref-NAME.1``: a command's synopsis, description and options, and those of its own commands.

    Args:
        name: the command.
        help_text: its one-line help.
        parser: its parser, as its module's ``register`` builds it.

    Returns:
        roff lines (``{date}`` in place of the date).
    """
    lines = [*_head(f"sevref-{name}", help_text), ".SH SYNOPSIS"]
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subcommands:
        for sub_name, sub in action.choices.items():
            lines += _synopsis_lines(f"sevref {name} {sub_name}", sub)
    if not subcommands:
        lines += _synopsis_lines(f"sevref {name}", parser)
    lines += [".SH DESCRIPTION", roff(parser.description or help_text[:1].upper() + help_text[1:] + ".")]
    lines += options(parser)
    for action in subcommands:
        lines.append(".SH COMMANDS")
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for sub_name, sub in action.choices.items():
            lines += [f".SS {_quoted(f'sevref {name} {sub_name}')}", *_synopsis_lines(f"sevref {name} {sub_name}", sub)]
            lines += [".PP", roff(sub.description or helps[sub_name])]
            lines += [".RS", *options(sub, heading=".PP"), ".RE"]
    lines += [".SH SEE ALSO", f"{_bold('sevref')}({SECTION})"]
    return lines


def render_pages(changelog: str) -> dict[str, str]:
    """Every page, from sevref's parsers.

    Args:
        changelog: CHANGELOG.md's text (for the date: :func:`page_date`).

    Returns:
        Each page's file name and its text.
    """
    from sevref._cli import COMMANDS, _parser
    from sevref._cli.completion import command_parsers

    date = _quoted(page_date(changelog))
    parsers = command_parsers()
    pages = {f"sevref.{SECTION}": main_page(_parser(), [(name, text) for name, _, text in COMMANDS])}
    for name, _, text in COMMANDS:
        pages[f"sevref-{name}.{SECTION}"] = command_page(name, text, parsers[name])
    return {file: "\n".join(lines).replace("{date}", date, 1) + "\n" for file, lines in pages.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Write the pages into a folder, and remove the pages of commands that are gone.

    Args:
        argv: ``--changelog FILE --out DIR``.

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m sevref._cli._manpage", description=__doc__)
    parser.add_argument("--changelog", required=True, type=Path, help="CHANGELOG.md (its newest heading's date)")
    parser.add_argument("--out", required=True, type=Path, help="the folder of the pages (man/)")
    args = parser.parse_args(argv)
    pages = render_pages(args.changelog.read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in sorted(set(p.name for p in args.out.glob(f"sevref*.{SECTION}")) - set(pages)):
        (args.out / stale).unlink()
    for file, text in pages.items():
        (args.out / file).write_text(text, encoding="utf-8")
    print(f"wrote {len(pages)} man pages into {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
