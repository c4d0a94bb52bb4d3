"""``sevref completion bash|zsh|fish``: a completion script made from sevref's own parsers.

The commands, their options and the values those take are read from the
parsers each command module's ``register`` builds: the parsers ``sevref COMMAND
--help`` prints and the man pages (:mod:`sevref._cli._manpage`) are made from,
so a completion cannot drift from the command line. An option or argument whose
metavar names a file or a folder (``FILE``, ``PEM``, ``DIR``...) completes
paths; one with choices completes them; any other completes nothing.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, TextIO

from sevref import __version__
from sevref._cli._common import Parser, Usage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sevref._cli._common import Commands

SHELLS = ("bash", "zsh", "fish")
FILE_METAVARS = frozenset({"FILE", "PEM", "PATH", "MANIFEST", "PREFIX", "SO", "PEM|URI", "PACKAGE-FILE|URL"})
"""Metavars of values that are (or may be) a file: they complete file names."""
DIR_METAVARS = frozenset({"DIR", "DIR|URL", "OLD", "NEW"})
"""Metavars of values that are (or may be) a folder: they complete folder names."""


class _Offered(tuple[str, ...]):
    """The shells, shown as the argument's choices, that argparse lets through.

    The command says itself, in one line, that it does not know a shell
    (``sevref: error: ...``, exit 2), rather than argparse's usage and message.
    """

    __slots__ = ()

    def __contains__(self, item: object) -> bool:
        return True


def register(commands: Commands) -> None:
    """Add ``completion``.

    Args:
        commands: the subcommands of ``sevref``.
    """
    completion = commands.add_parser(
        "completion",
        help="print a completion script for bash, zsh or fish",
        description=(
            "Print a script that completes sevref's commands, their options and the values they take in SHELL. "
            "bash: source <(sevref completion bash), or save it as "
            "/usr/share/bash-completion/completions/sevref. zsh: save it as _sevref in a folder of $fpath, or "
            "source it after compinit. fish: save it as ~/.config/fish/completions/sevref.fish, or "
            "sevref completion fish | source."
        ),
    )
    completion.add_argument(
        "shell", nargs="?", choices=_Offered(SHELLS), metavar="SHELL", help="the shell: bash, zsh or fish"
    )
    completion.set_defaults(handler=_completion)


def _completion(args: argparse.Namespace, out: TextIO) -> int:
    if args.shell not in SHELLS:
        given = "no shell" if args.shell is None else f"unknown shell {args.shell!r}"
        raise Usage(f"completion: {given}: name one of {', '.join(SHELLS)}")
    print(SCRIPTS[args.shell](command_tree()), end="", file=out)
    return 0


# ---- sevref's commands, as a completion sees them ----


@dataclass(frozen=True)
class Argument:
    """An option or a positional argument of a command."""

    flags: tuple[str, ...]
    """The option strings; none for a positional argument."""
    help: str
    metavar: str
    """What the value is called; empty when the option takes none."""
    choices: tuple[str, ...]
    completes: str
    """``choices``, ``files``, ``dirs`` or empty (nothing to complete)."""
    many: bool
    """A repeatable option, or a positional argument that takes one or more values."""
    optional: bool
    """A positional argument that may be left out."""
    excludes: tuple[str, ...]
    """The flags of the options it is mutually exclusive with."""
    deprecated: str = ""
    """The release that deprecated it (:func:`~sevref._cli._common.deprecate`); empty when it is not."""


@dataclass(frozen=True)
class Command:
    """A command, its arguments and its own commands."""

    path: tuple[str, ...]
    """The words after ``sevref`` that name it; none for sevref itself."""
    help: str
    arguments: tuple[Argument, ...]
    commands: tuple[Command, ...]

    @property
    def name(self) -> str:
        """The words that name it, space-separated (empty for sevref itself)."""
        return " ".join(self.path)

    @property
    def options(self) -> tuple[Argument, ...]:
        """Its options."""
        return tuple(a for a in self.arguments if a.flags)

    @property
    def positionals(self) -> tuple[Argument, ...]:
        """Its positional arguments, in order."""
        return tuple(a for a in self.arguments if not a.flags)

    def walk(self) -> Iterator[Command]:
        """This command and every command under it, depth first.

        Yields:
            Each command.
        """
        yield self
        for command in self.commands:
            yield from command.walk()


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, built as :class:`~sevref._cli._common.LazyCommands` builds it when chosen.

    Returns:
        Each command's parser, in the order of ``sevref._cli.COMMANDS``.
    """
    from sevref._cli import COMMANDS

    scratch = Parser(prog="sevref").add_subparsers(prog="sevref", parser_class=Parser)
    for module in dict.fromkeys(module for _, module, _ in COMMANDS):
        import_module(f"sevref._cli.{module}").register(scratch)
    return {name: scratch.choices[name] for name, _, _ in COMMANDS}


def command_tree() -> Command:
    """sevref and every command under it, from the parsers.

    Returns:
        sevref itself.
    """
    from sevref._cli import COMMANDS, _parser

    parsers = command_parsers()
    children = tuple(_command(parsers[name], (name,), text) for name, _, text in COMMANDS)
    return _command(_parser(), (), "", children)


def _command(
    parser: argparse.ArgumentParser, path: tuple[str, ...], help_text: str, children: tuple[Command, ...] = ()
) -> Command:
    excluded: dict[argparse.Action, tuple[str, ...]] = {}
    for group in parser._mutually_exclusive_groups:
        for action in group._group_actions:
            others = (a for a in group._group_actions if a is not action)
            excluded[action] = tuple(flag for other in others for flag in other.option_strings)
    arguments = []
    commands = list(children)
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            arguments.append(_argument(action, excluded.get(action, ())))
        elif not children:
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            commands += [_command(sub, (*path, name), helps[name]) for name, sub in action.choices.items()]
    return Command(path, help_text, tuple(arguments), tuple(commands))


def _argument(action: argparse.Action, excludes: tuple[str, ...]) -> Argument:
    takes_value = action.nargs != 0
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if takes_value and not metavar:
        metavar = action.dest.upper() if action.option_strings else action.dest
    choices = tuple(str(choice) for choice in action.choices or ()) if takes_value else ()
    completes = "choices" if choices else ""
    if not choices and metavar in FILE_METAVARS:
        completes = "files"
    elif not choices and metavar in DIR_METAVARS:
        completes = "dirs"
    return Argument(
        flags=tuple(action.option_strings),
        help=" ".join((action.help or "").split()),
        metavar=metavar if takes_value else "",
        choices=choices,
        completes=completes,
        many=isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*"),
        optional=not action.option_strings and action.nargs in ("?", "*"),
        excludes=excludes,
        deprecated=getattr(getattr(action, "deprecation", None), "since", ""),
    )


def _header(shell: str, how: str) -> str:
    return (
        f"# {shell} completion for sevref {__version__}: made by `sevref completion {shell}` from sevref's own\n"
        f"# parsers (regenerate it rather than edit it). {how}\n"
    )


# ---- bash ----


def bash_script(root: Command) -> str:
    """A bash completion script for sevref.

    Args:
        root: sevref's commands (:func:`command_tree`).

    Returns:
        The script: ``source`` it, or install it as ``completions/sevref`` of bash-completion.
    """
    spec = []
    values = []
    for command in root.walk():
        valued = [flag for option in command.options if option.metavar for flag in option.flags]
        positionals = command.positionals
        spec += [
            f"    {shlex.quote(command.name)})",
            f"        _sevref_commands={shlex.quote(' '.join(c.path[-1] for c in command.commands))}",
            f"        _sevref_options={shlex.quote(' '.join(f for option in command.options for f in option.flags))}",
            f"        _sevref_valued={shlex.quote(' '.join(valued))}",
            f"        _sevref_positionals={len(positionals)}",
            f"        _sevref_many={int(bool(positionals) and positionals[-1].many)}",
            "        ;;",
        ]
        keys = [(flag, option) for option in command.options for flag in option.flags]
        keys += [(f"@{n}", positional) for n, positional in enumerate(positionals, 1)]
        for key, argument in keys:
            if argument.completes:
                words = f" _sevref_words={shlex.quote(' '.join(argument.choices))}" if argument.choices else ""
                values.append(
                    f"    {shlex.quote(f'{command.name} {key}')}) _sevref_kind={argument.completes};{words} ;;"
                )
    return _BASH.format(
        header=_header("bash", "Load it with: source <(sevref completion bash)"),
        spec="\n".join(spec),
        values="\n".join(values),
    )


_BASH = """{header}
# _sevref_spec PATH: what the command PATH (its words after sevref) takes.
_sevref_spec() {{
    case $1 in
{spec}
    esac
}}

# _sevref_value PATH KEY PREFIX: complete the value of option KEY (or of positional argument @N) of PATH.
_sevref_value() {{
    local _sevref_kind='' _sevref_words=''
    case "$1 $2" in
{values}
    esac
    case $_sevref_kind in
    choices) mapfile -t COMPREPLY < <(compgen -W "$_sevref_words" -- "$3") ;;
    files)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$3")
        ;;
    dirs)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -d -- "$3")
        ;;
    esac
}}

_sevref() {{
    local -a words=()
    local i word path='' skip=0 given=0 option='' value
    local _sevref_commands _sevref_options _sevref_valued _sevref_positionals _sevref_many
    COMPREPLY=()
    # bash splits --option=value at the '=': join them again
    for ((i = 0; i <= COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        if ((i > 1)) && [[ $word == = || ${{COMP_WORDS[i - 1]}} == = ]]; then
            words[${{#words[@]}} - 1]+=$word
        else
            words+=("$word")
        fi
    done
    value=${{words[${{#words[@]}} - 1]}}
    _sevref_spec ''
    for ((i = 1; i < ${{#words[@]}} - 1; i++)); do
        word=${{words[i]}}
        if ((skip)); then
            skip=0
        elif [[ $word == -* ]]; then
            [[ $word != *=* && " $_sevref_valued " == *" $word "* ]] && skip=1
        elif [[ " $_sevref_commands " == *" $word "* ]]; then
            path=${{path:+$path }}$word
            given=0
            _sevref_spec "$path"
        else
            given=$((given + 1))
        fi
    done
    if ((skip)); then
        option=${{words[${{#words[@]}} - 2]}}
    elif [[ $value == -*=* ]]; then
        option=${{value%%=*}}
        value=${{value#*=}}
    elif [[ $value == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$_sevref_options" -- "$value")
        return
    elif [[ -n $_sevref_commands ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$_sevref_commands" -- "$value")
        return
    else
        given=$((given + 1))
        ((given > _sevref_positionals && _sevref_many)) && given=$_sevref_positionals
        option=@$given
    fi
    _sevref_value "$path" "$option" "$value"
    # the word being completed is the '=' itself: keep it
    if [[ ${{COMP_WORDS[COMP_CWORD]}} == = ]]; then
        COMPREPLY=("${{COMPREPLY[@]/#/=}}")
    fi
}}

complete -F _sevref sevref
"""


# ---- zsh ----


def _zq(text: str) -> str:
    """Quote for zsh: one single-quoted word."""
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_describe(text: str) -> str:
    """Help text as an ``_arguments`` description (inside ``[...]``) or a ``_describe`` item."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")


def _zsh_spec(argument: Argument) -> str:
    """One ``_arguments`` spec."""
    action = {"choices": f"({' '.join(argument.choices)})", "files": "_files", "dirs": "_files -/"}.get(
        argument.completes, " "
    )
    message = argument.metavar.replace(":", "\\:")
    if not argument.flags:
        prefix = "*" if argument.many else (":" if argument.optional else "")
        return _zq(f"{prefix}:{message}:{action}")
    excludes = " ".join((*argument.excludes, *argument.flags)) if len(argument.flags) > 1 or argument.excludes else ""
    head = _zq(f"({excludes})") if excludes else ""
    head += "*" if argument.many else ""
    flags = argument.flags[0] if len(argument.flags) == 1 else "{" + ",".join(argument.flags) + "}"
    value = f"=:{message}:{action}" if argument.metavar else ""
    return f"{head}{flags}{_zq(f'[{_zsh_describe(argument.help)}]{value}')}"


def _zsh_function(command: Command) -> list[str]:
    name = "_sevref" + "".join("_" + word.replace("-", "_") for word in command.path)
    specs = [_zsh_spec(argument) for argument in command.arguments]
    if not command.commands:
        return [f"{name}() {{", "    _arguments -S \\", *(f"        {s} \\" for s in specs), "        && return 0", "}"]
    items = [_zq(f"{c.path[-1]}:{_zsh_describe(c.help)}") for c in command.commands]
    cases = [f"        {c.path[-1]}) {name}_{c.path[-1].replace('-', '_')} && ret=0 ;;" for c in command.commands]
    return [
        f"{name}() {{",
        "    local curcontext=$curcontext state state_descr line ret=1",
        "    typeset -A opt_args",
        "    _arguments -C -S \\",
        *(f"        {s} \\" for s in specs),
        "        ': :->command' \\",
        "        '*:: :->argument' && ret=0",
        "    case $state in",
        "    command)",
        f"        local -a commands=({' '.join(items)})",
        "        _describe -t commands command commands && ret=0",
        "        ;;",
        "    argument)",
        f"        curcontext=${{curcontext%:*:*}}:sevref{''.join('-' + w for w in command.path)}-$words[1]:",
        "        case $words[1] in",
        *cases,
        "        esac",
        "        ;;",
        "    esac",
        "    return ret",
        "}",
    ]


def zsh_script(root: Command) -> str:
    """A zsh completion script for sevref: the function ``_sevref``.

    Args:
        root: sevref's commands (:func:`command_tree`).

    Returns:
        The script: autoload it as ``_sevref`` from a folder of ``$fpath``, or source it after ``compinit``.
    """
    lines = ["#compdef sevref", _header("zsh", "Save it as _sevref in a folder of $fpath.").rstrip("\n"), ""]
    for command in root.walk():
        lines += [*_zsh_function(command), ""]
    lines += [
        "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then",
        '    _sevref "$@"',
        "else",
        "    compdef _sevref sevref",
        "fi",
    ]
    return "\n".join(lines) + "\n"


# ---- fish ----


def _fq(text: str) -> str:
    """Quote for fish: one single-quoted word."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_lists(root: Command, name: str, pick: Callable[[Command], list[str]]) -> list[str]:
    """A fish function that prints, for a command path, the words ``pick`` gives, one a line."""
    lines = [f"function {name} --argument-names path", '    switch "$path"']
    for command in root.walk():
        if words := pick(command):
            lines += [f"        case {_fq(command.name)}", f"            printf '%s\\n' {' '.join(map(_fq, words))}"]
    return [*lines, "    end", "end", ""]


_FISH_PATH = """function __sevref_path --description 'the sevref command the cursor is in'
    set -l words (commandline -opc)
    set -e words[1]
    set -l path ''
    set -l skip 0
    for word in $words
        if test $skip = 1
            set skip 0
        else if string match -q -- '-*' $word
            if not string match -q -- '*=*' $word; and contains -- $word (__sevref_valued $path)
                set skip 1
            end
        else if contains -- $word (__sevref_commands $path)
            set path (string trim -- "$path $word")
        end
    end
    echo $path
end

function __sevref_at --description 'is the cursor in this sevref command'
    set -l path (__sevref_path)
    test "$path" = "$argv[1]"
end
"""


def _fish_complete(command: Command, argument: Argument) -> str:
    """The ``complete`` line of one argument of ``command``."""
    words = ["complete -c sevref -n", _fq(f"__sevref_at {shlex.quote(command.name)}")]
    for flag in argument.flags:
        words.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
    if argument.metavar and argument.flags:
        words.append("-r")
    if argument.completes == "files":
        words.append("-F")
    elif argument.completes == "dirs":
        words.append("-f -a '(__fish_complete_directories (commandline -ct))'")
    elif argument.choices:
        words.append(f"-f -a {_fq(' '.join(argument.choices))}")
    elif argument.flags:
        words.append("-f")
    else:
        return ""  # a positional argument with nothing to complete
    return " ".join([*words, "-d", _fq(argument.help)])


def fish_script(root: Command) -> str:
    """A fish completion script for sevref.

    Args:
        root: sevref's commands (:func:`command_tree`).

    Returns:
        The script: save it as ``completions/sevref.fish``, or source it.
    """
    lines = [_header("fish", "Save it as ~/.config/fish/completions/sevref.fish."), "complete -c sevref -f", ""]
    lines += _fish_lists(root, "__sevref_commands", lambda c: [s.path[-1] for s in c.commands])
    lines += _fish_lists(root, "__sevref_valued", lambda c: [f for o in c.options if o.metavar for f in o.flags])
    lines += [_FISH_PATH]
    for command in root.walk():
        at = _fq(f"__sevref_at {shlex.quote(command.name)}")
        lines += [f"complete -c sevref -n {at} -a {_fq(c.path[-1])} -d {_fq(c.help)}" for c in command.commands]
        lines += [line for argument in command.arguments if (line := _fish_complete(command, argument))]
        lines.append("")
    return "\n".join(lines)


SCRIPTS: dict[str, Callable[[Command], str]] = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}
"""The script of each shell, from sevref's commands."""
