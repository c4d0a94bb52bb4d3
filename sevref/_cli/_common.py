"""What every command shares: the parser class, usage errors, and the trust options."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from sevref.trust import TrustedPublication


class Exit(Exception):
    """argparse wants to exit (help, version or a usage error) with this status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Usage(Exception):
    """A usage error found after parsing: exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, and takes no abbreviations."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: "--passphrase x" must not be read as "--passphrase-file x".
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise Exit(status)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


if TYPE_CHECKING:
    from typing import TypeAlias

    # argparse names no public type for the subcommands of a parser.
    Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_trust_options(parser: argparse.ArgumentParser) -> None:
    """The options that say which publication to trust: one definition for every verifier command.

    Args:
        parser: the command's parser.
    """
    parser.add_argument(
        "--publication", required=True, metavar="DIR|URL", help="a folder, file://, http:// or https:// URL"
    )
    parser.add_argument(
        "--trusted-key", required=True, action="append", metavar="PEM", help="a pinned publisher key; repeatable"
    )
    parser.add_argument("--publisher", required=True, metavar="ID", help="expected publisher id")
    parser.add_argument("--product", required=True, metavar="ID", help="expected product id")
    parser.add_argument("--stream", required=True, metavar="ID", help="expected stream id")
    parser.add_argument("--at", metavar="TIME", help="check validity at this time (default: now)")
    parser.add_argument("--state", metavar="FILE", help="remembers the highest serial seen; a lower one is refused")


def trusted(args: argparse.Namespace, check_all: bool) -> TrustedPublication:
    """Check the publication the trust options name.

    Args:
        args: parsed options of a command that took :func:`add_trust_options`.
        check_all: check every listed file now (else only those read later).

    Returns:
        The trusted publication.

    Raises:
        TrustError: the publication is not trusted.
        SevrefError: a key or the state cannot be read.
    """
    from datetime import UTC, datetime

    from sevref.values import parse_time
    from sevref.verifier import trust

    return trust(
        args.publication,
        [Path(k) for k in args.trusted_key],
        (args.publisher, args.product, args.stream),
        datetime.now(UTC) if args.at is None else parse_time(args.at),
        Path(args.state) if args.state else None,
        check_all,
    )


def size(count: int) -> str:
    """A byte count for people: ``512 B``, ``1.4 MiB``.

    Args:
        count: bytes.

    Returns:
        The text.
    """
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def read_tik(path: Path) -> bytes:
    """Read a TIK file: 16 bytes, or 32 bytes TEK || TIK.

    Args:
        path: the file.

    Returns:
        The 16-byte TIK.

    Raises:
        SevrefError: unreadable, or another size.
    """
    from sevref.digest import tik_from_bytes
    from sevref.edge.files import read_bytes
    from sevref.errors import ConfigError
    from sevref.limits import MAX_TIK_FILE_BYTES

    try:
        return tik_from_bytes(read_bytes(path, "TIK file", MAX_TIK_FILE_BYTES))
    except ConfigError as error:
        raise ConfigError(f"TIK file {path}: {error.diagnostic()}") from error
