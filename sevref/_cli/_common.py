"""What every command shares: the parser class, lazy subcommands, usage errors, deprecation, and the trust options."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

TYPE_CHECKING = False  # typing costs milliseconds at startup; mypy reads this name as typing's
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

    from sevref.errors import Deprecation
    from sevref.sign import KeySigner
    from sevref.trust import TrustedPublication


class Exit(Exception):
    """argparse wants to exit (help, version or a usage error) with this status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Usage(Exception):
    """A usage error found after parsing: exit status 2."""


def deprecate(action: argparse.Action, deprecation: Deprecation) -> argparse.Action:
    """Mark an option deprecated (docs/compatibility.md): it keeps working, and says it goes.

    Its help (and so its man page) gains ``(deprecated since 0.3, goes in 1.0:
    use ...)``; a run that gives it prints ``sevref: warning: --old is
    deprecated since 0.3 and goes in 1.0; use ...`` on standard error once,
    however often it is given, and then does what it always did. The frozen
    command line of each release (``tests/data/compat/<version>/cli.json``)
    records it, and an option may be removed only after a release that marked it.

    Args:
        action: what ``add_argument`` returned.
        deprecation: since when, until when, and what replaces it.

    Returns:
        The action, marked.
    """
    base = type(action)
    flags = "/".join(action.option_strings)

    def warn_then_act(self: argparse.Action, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        warned = parser.__dict__.setdefault("_deprecated_warned", set())  # the parser lives for one run
        if self.dest not in warned:
            warned.add(self.dest)
            print(f"sevref: warning: {deprecation.warning(option or flags)}", file=sys.stderr)
        base.__call__(self, parser, namespace, values, option)

    action.__class__ = type(f"Deprecated{base.__name__}", (base,), {"__call__": warn_then_act})
    action.deprecation = deprecation  # type: ignore[attr-defined]  # read by the frozen command line
    note = f"deprecated since {deprecation.since}, goes in {deprecation.goes}: use {deprecation.use}"
    note = note.replace("%", "%%")  # argparse formats help with %
    action.help = f"{action.help} ({note})" if action.help else note
    return action


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

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        # argparse reports unknown arguments with their values ("unrecognized arguments:
        # --passphrase hunter2"); name the options only, so that no value, a passphrase
        # typed by mistake included, is ever echoed.
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self.prog.count(" ") == 0:  # the top-level parser reports for every subcommand
            named = " ".join(sorted({e.split("=", 1)[0] for e in extras if e.startswith("-")}))
            hidden = "" if all(e.startswith("-") and "=" not in e for e in extras) else " (values not shown)"
            self.error(f"unrecognized arguments{': ' + named if named else ''}{hidden}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        from sevref.errors import printable

        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {printable(message)}\n")


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


def add_trust_options(parser: argparse.ArgumentParser, *, located: bool = True, required: bool = True) -> None:
    """The options that say which publication to trust: one definition for every verifier command.

    ``verify`` and ``export`` (and any later verifier command) take exactly
    these; a test holds them to that. ``diff`` names its two publications as
    arguments and trusts them only when asked to.

    Args:
        parser: the command's parser.
        located: take ``--publication`` (a command that names its publications otherwise does not).
        required: the key and the identity must be given (else the command checks
            them together, :func:`check_trust_given`).
    """
    from sevref.limits import DEFAULT_DEADLINE, DEFAULT_FETCH_TIMEOUT

    group = parser.add_argument_group("trust options (the same for every command that verifies)")
    if located:
        group.add_argument(
            "--publication", required=True, metavar="DIR|URL", help="a folder, file://, http:// or https:// URL"
        )
    group.add_argument(
        "--trusted-key", required=required, action="append", metavar="PEM", help="a pinned publisher key; repeatable"
    )
    group.add_argument("--publisher", required=required, metavar="ID", help="expected publisher id")
    group.add_argument("--product", required=required, metavar="ID", help="expected product id")
    group.add_argument("--stream", required=required, metavar="ID", help="expected stream id")
    group.add_argument("--at", metavar="TIME", help="check validity at this time (default: now)")
    group.add_argument(
        "--state",
        metavar="FILE",
        help="remembers the key chain and the newest release trusted: a fork, a withheld keys document, "
        "a lower serial or the same serial with other bytes is refused",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_FETCH_TIMEOUT,
        metavar="SECONDS",
        help=f"each file must arrive whole within this time (default {DEFAULT_FETCH_TIMEOUT:g})",
    )
    group.add_argument(
        "--deadline",
        type=float,
        default=DEFAULT_DEADLINE,
        metavar="SECONDS",
        help=f"every file must have arrived within this time from the start of the run (default {DEFAULT_DEADLINE:g})",
    )
    group.add_argument(
        "--require-timestamp",
        action="store_true",
        help="refuse a release without a valid timestamp.dsse.json (sevref timestamp)",
    )
    group.add_argument(
        "--max-age",
        metavar="DURATION",
        help="refuse a timestamp issued longer ago than this, e.g. 1d or 6h (implies --require-timestamp)",
    )


def check_trust_given(args: argparse.Namespace) -> bool:
    """Tell whether optional trust options were given, and given whole.

    Args:
        args: parsed options of a command that took ``add_trust_options(required=False)``.

    Returns:
        True when a key and the identity are given; False when none of them is.

    Raises:
        Usage: some but not all of them.
    """
    given = {
        "--trusted-key": args.trusted_key,
        "--publisher": args.publisher,
        "--product": args.product,
        "--stream": args.stream,
    }
    missing = [name for name, value in given.items() if not value]
    if missing and len(missing) < len(given):
        raise Usage(f"{', '.join(missing)}: needed with {', '.join(n for n in given if n not in missing)}")
    other = [
        name
        for name, value in (
            ("--at", args.at),
            ("--require-timestamp", args.require_timestamp),
            ("--max-age", args.max_age),
        )
        if value
    ]
    if missing and other:
        raise Usage(f"{other[0]} goes with --trusted-key (the publications are read unverified without it)")
    return not missing


def fetch_limits(args: argparse.Namespace) -> tuple[float, float]:
    """The time limits the trust options give: ``--timeout`` and ``--deadline``.

    Args:
        args: parsed options of a command that took :func:`add_trust_options`.

    Returns:
        (seconds for each file, seconds for the whole run).

    Raises:
        OptionError: a value that is not a positive, finite number of seconds.
    """
    from sevref.values import positive_seconds

    return positive_seconds(args.timeout, "--timeout"), positive_seconds(args.deadline, "--deadline")


def trusted(args: argparse.Namespace, check_all: bool, location: str | None = None) -> TrustedPublication:
    """Check the publication the trust options name.

    Args:
        args: parsed options of a command that took :func:`add_trust_options`.
        check_all: check every listed file now (else only those read later).
        location: the publication, for a command without ``--publication``.

    Returns:
        The trusted publication.

    Raises:
        OptionError: a time limit that is not a positive, finite number of seconds.
        TrustError: the publication is not trusted.
        SevrefError: a key or the state cannot be read.
    """
    from datetime import UTC, datetime
    from pathlib import Path

    from sevref.values import parse_duration, parse_time
    from sevref.verifier import Request, trust

    timeout, deadline = fetch_limits(args)
    return trust(
        Request(
            location=args.publication if location is None else location,
            keys=[Path(k) for k in args.trusted_key],
            identity=(args.publisher, args.product, args.stream),
            at=datetime.now(UTC) if args.at is None else parse_time(args.at),
            state=Path(args.state) if args.state else None,
            check_all_files=check_all,
            timeout=timeout,
            deadline=deadline,
            require_timestamp=args.require_timestamp,
            max_age=None if args.max_age is None else parse_duration(args.max_age, "--max-age"),
        )
    )


def load_signer(path: str, passphrase_file: str | None, env: str | None = None) -> KeySigner:
    """Read a private key with its passphrase, warning on standard error when its file is weakly encrypted.

    Args:
        path: the PEM file.
        passphrase_file: the passphrase file, if given (else the environment).
        env: the environment variable (default ``SEVREF_KEY_PASSPHRASE``).

    Returns:
        The signer.

    Raises:
        SevrefError: no passphrase, or a key it does not open.
    """
    from pathlib import Path

    from sevref.edge.keys import PASSPHRASE_ENV, read_passphrase
    from sevref.edge.keys import load_signer as load

    passphrase = read_passphrase(Path(passphrase_file) if passphrase_file else None, env or PASSPHRASE_ENV)
    signer = load(Path(path), passphrase)
    if signer.weak_protection is not None:
        print(f"sevref: warning: {path}: {signer.weak_protection}", file=sys.stderr)
    return signer


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
