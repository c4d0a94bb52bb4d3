"""sevref's command line: argv to a pipeline call to an exit code.

Exit codes: 0 success, 1 bad input or no match (one line on stderr), 2 usage,
3 publication not trusted (verify, export). Only
:class:`~sevref.errors.SevrefError` is caught; anything else is a bug and keeps
its traceback.

Each command's module is imported, and its parser built, only when the command
runs: ``sevref --version`` and ``--help`` load argparse and this module alone,
and ``sevref digest`` of a common configuration is answered by
:mod:`sevref._cli._quick` before argparse is even imported.
"""

from __future__ import annotations

import os
import sys

from sevref import __version__

TYPE_CHECKING = False  # typing costs milliseconds at startup; mypy reads this name as typing's
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TextIO

    from sevref._cli._common import Parser

__all__ = ["main"]

COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("digest", "digest", "compute the launch digest of one configuration or a batch"),
    ("measurement", "digest", "compute or check the SEV launch measurement (HMAC keyed by the TIK)"),
    ("build", "build", "build a publication from manifests"),
    ("validate", "build", "check manifests without computing"),
    ("pin", "pin", "print the manifest source stanza for a firmware inside a package"),
    ("diff", "diff", "what changed from one release to the next"),
    ("sign", "sign", "sign a publication built unsigned (on an offline machine, or with a key on an HSM)"),
    ("key", "keys", "make signing keys and the publisher's key chain"),
    ("verify", "verify", "check a publication and match a guest's evidence against it"),
    ("export", "export", "export a verified publication for other verifiers"),
    ("timestamp", "stamp", "sign a short-lived timestamp over a publication's index (freshness)"),
    ("report", "report", "read SEV-SNP attestation reports"),
    ("completion", "completion", "print a completion script for bash, zsh or fish"),
)
"""Each command, the module under ``sevref._cli`` whose ``register`` adds it, and its one-line help.

``sevref --help`` lists them from here; a test checks that each module's own
``register`` says the same."""


def _parser() -> Parser:
    from sevref._cli._common import LazyCommands, Parser

    parser = Parser(
        prog="sevref",
        description="Compute, publish and verify expected AMD SEV, SEV-ES and SEV-SNP launch digests.",
    )
    parser.add_argument("--version", action="version", version=f"sevref {__version__}")
    commands = LazyCommands.attach(parser, dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for name, module, help_text in COMMANDS:
        commands.add_lazy(name, f"sevref._cli.{module}", help_text)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run sevref.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        out: where results go (default: standard output).

    Returns:
        The exit code.
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        if arguments[:1] == ["digest"]:
            from sevref._cli._quick import quick_digest

            answer = quick_digest(arguments[1:])
            if answer is not None:
                print(answer, file=out or sys.stdout)
                return 0
        return _run(arguments, out or sys.stdout)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(arguments: list[str], out: TextIO) -> int:
    from sevref._cli._common import Exit, Usage
    from sevref.errors import OptionError, SevrefError

    try:
        args = _parser().parse_args(arguments)
        status: int = args.handler(args, out)
        return status
    except Exit as stop:
        return stop.status
    except Usage as usage:
        print(f"sevref: error: {usage}", file=sys.stderr)
        return 2
    except OptionError as error:  # options the API refuses: a usage error too
        print(f"sevref: error: {error.diagnostic()}", file=sys.stderr)
        return 2
    except SevrefError as error:
        print(f"sevref: error: {error.diagnostic()}", file=sys.stderr)
        return 1
