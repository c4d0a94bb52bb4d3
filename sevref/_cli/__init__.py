"""sevref's command line: argv to a pipeline call to an exit code.

Exit codes: 0 success, 1 bad input or no match (one line on stderr), 2 usage,
3 publication not trusted (verify, export). Only
:class:`~sevref.errors.SevrefError` is caught; anything else is a bug and keeps
its traceback. Each command's module imports what the command needs when it
runs, so that ``sevref --version`` and ``sevref digest`` load only their part.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TextIO

from sevref import __version__
from sevref._cli import build, diff, digest, keys, report, sign, stamp, verify
from sevref._cli._common import Exit, Parser, Usage
from sevref.errors import SevrefError

__all__ = ["main"]


def _parser() -> Parser:
    parser = Parser(
        prog="sevref",
        description="Compute, publish and verify expected AMD SEV, SEV-ES and SEV-SNP launch digests.",
    )
    parser.add_argument("--version", action="version", version=f"sevref {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for module in (digest, build, diff, sign, keys, stamp, verify, report):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run sevref.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        out: where results go (default: standard output).

    Returns:
        The exit code.
    """
    try:
        args = _parser().parse_args(argv)
        status: int = args.handler(args, out or sys.stdout)
        return status
    except Exit as stop:
        return stop.status
    except Usage as usage:
        print(f"sevref: error: {usage}", file=sys.stderr)
        return 2
    except SevrefError as error:
        print(f"sevref: error: {error.diagnostic()}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
