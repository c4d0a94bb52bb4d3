"""What every command shares: the parser class, lazy subcommands, usage errors, and the trust options."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

TYPE_CHECKING = False  # typing costs milliseconds at startup; mypy reads this name as typing's
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any, NoReturn

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


class LazyCommands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands whose parsers are built only when chosen.

    Each command starts as a stub that carries its one-line help, which is all
    ``sevref --help`` shows. When argparse picks a command, the module that
    defines it is imported and its ``register`` builds the real parser, which
    replaces the stub; the other commands are never built.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._modules: dict[str, str] = {}

    @classmethod
    def attach(cls, parser: argparse.ArgumentParser, **kwargs: Any) -> LazyCommands:
        """Give ``parser`` lazy subcommands.

        Args:
            parser: the parser.
            **kwargs: as for ``add_subparsers``.

        Returns:
            The subcommands.
        """
        commands = parser.add_subparsers(action=cls, **kwargs)
        if not isinstance(commands, cls):  # pragma: no cover - argparse makes the action it is given
            raise TypeError(f"expected {cls.__name__}, found {type(commands).__name__}")
        return commands

    def add_lazy(self, name: str, module: str, help_text: str) -> None:
        """Add a command whose parser ``module.register`` builds when it is chosen.

        Args:
            name: the command.
            module: the module whose ``register(commands)`` adds it.
            help_text: its one-line help.
        """
        self.add_parser(name, help=help_text)
        self._modules[name] = module

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        name = values[0] if isinstance(values, list) else None
        module = self._modules.pop(name, None) if isinstance(name, str) else None
        if isinstance(name, str) and module is not None:
            scratch = Parser(prog=parser.prog).add_subparsers(prog=self._prog_prefix, parser_class=Parser)
            import_module(module).register(scratch)
            self._name_parser_map[name] = scratch.choices[name]
        super().__call__(parser, namespace, values, option_string)


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
    from pathlib import Path

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
