"""``sevref completion bash|zsh|fish``: the scripts, loaded into the real shells (``make shells`` installs them).

What each script must complete is read from sevref's own parsers here too, so
a command or option added later is checked without a change to this file.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from sevref._cli import COMMANDS, main
from sevref._cli.completion import SHELLS, Command, command_parsers, command_tree
from tests.conftest import missing


def script(shell: str) -> str:
    out = io.StringIO()
    assert main(["completion", shell], out=out) == 0
    return out.getvalue()


def program(name: str) -> str:
    """The shell's path; missing (a failure under make test) when it is not installed."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} is not installed (make shells)")
    return found


def quiet_home(tmp_path: Path) -> dict[str, str]:
    """An environment whose shells read and write nothing of the user's."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "LANG": "C.UTF-8",
    }


def a_folder_to_complete_in(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    (folder / "site").mkdir(parents=True)
    (folder / "manifests.d").mkdir()
    for name in ("matrix.yaml", "firmware.yaml", "key.pem"):
        (folder / name).write_text("x\n")
    return folder


def test_completion_names_the_shells_it_knows_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, found in ((["completion", "tcsh"], "unknown shell 'tcsh'"), (["completion"], "no shell")):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err == f"sevref: error: completion: {found}: name one of bash, zsh, fish\n"


def test_the_tree_is_every_command_of_the_parsers() -> None:
    root = command_tree()
    assert [c.name for c in root.commands] == [name for name, _, _ in COMMANDS]
    parsers = command_parsers()
    for command in root.commands:
        flags = {f for a in parsers[command.name]._actions for f in a.option_strings}
        assert {f for option in command.options for f in option.flags} == flags
    key = next(c for c in root.commands if c.name == "key")
    assert [c.name for c in key.commands] == ["key generate", "key chain", "key pin", "key reencrypt"]


# ---- bash ----

BASH_CASES = {
    # the words typed (the last is being completed): the words bash offers
    "sevref ver": ["verify"],
    "sevref verify --pub": ["--publication", "--publisher"],
    "sevref verify --publication s": ["site"],  # folders only
    "sevref verify --publication=s": ["site"],
    "sevref verify --snp-report ": ["firmware.yaml", "key.pem", "manifests.d", "matrix.yaml", "site"],
    "sevref build m": ["manifests.d", "matrix.yaml"],
    "sevref build matrix.yaml f": ["firmware.yaml"],  # MANIFEST...: every argument
    "sevref export --format c": ["corim"],
    "sevref export --format=": ["=corim", "=trustee", "=virt-qemu-sev-validate"],  # the word is the '='
    "sevref key ": ["chain", "generate", "pin", "reencrypt"],
    "sevref key generate --algorithm ed": ["ed25519"],
    "sevref key pin --": ["--help", "--keys", "--out"],  # key pin's, not pin's
    "sevref pin --download-timeout 3 --": ["--download-timeout", "--help", "--id", "--url"],
    "sevref completion ": ["bash", "fish", "zsh"],
    "sevref completion bash ": [],
    "sevref --v": ["--version"],
    "sevref digest --vcpus ": [],  # a number: nothing to offer
}


def bash_replies(tmp_path: Path, lines: list[str]) -> list[list[str]]:
    """What the script's completion function offers for each line, run in bash as bash runs it on TAB."""
    (tmp_path / "sevref.bash").write_text(script("bash"))
    program_lines = ["source ../sevref.bash"]
    for line in lines:
        words = shlex.split(line.replace("=", " = ")) + ([""] if line.endswith(" ") else [])
        program_lines += [
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}",
            f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}; COMPREPLY=()",
            "_sevref; printf '%s\\n' \"${COMPREPLY[@]}\" | LC_ALL=C sort; echo '<end>'",
        ]
    blocks = completion_blocks([program("bash"), "--norc", "--noprofile", "-c", "\n".join(program_lines)], tmp_path)
    return [[w for w in block.split("\n") if w] for block in blocks]


def completion_blocks(command: list[str], tmp_path: Path) -> list[str]:
    """Run a shell's completion program in the folder to complete in; what it printed before each ``<end>``."""
    done = subprocess.run(
        command,
        cwd=a_folder_to_complete_in(tmp_path),
        env=quiet_home(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr == ""
    return done.stdout.split("<end>\n")[:-1]


def test_bash_sources_the_script_and_registers_it(tmp_path: Path) -> None:
    (tmp_path / "sevref.bash").write_text(script("bash"))
    done = subprocess.run(
        [program("bash"), "--norc", "--noprofile", "-c", "source sevref.bash && complete -p sevref"],
        cwd=tmp_path,
        env=quiet_home(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    assert (done.stdout, done.stderr) == ("complete -F _sevref sevref\n", "")


def test_bash_completes_commands_options_choices_and_paths(tmp_path: Path) -> None:
    replies = bash_replies(tmp_path, list(BASH_CASES))
    assert dict(zip(BASH_CASES, replies, strict=True)) == BASH_CASES


def test_bash_offers_every_option_of_every_command(tmp_path: Path) -> None:
    commands = [c for c in command_tree().walk() if c.path and not c.commands]
    replies = bash_replies(tmp_path, [f"sevref {c.name} -" for c in commands])
    for command, offered in zip(commands, replies, strict=True):
        assert sorted(offered) == sorted(f for option in command.options for f in option.flags), command.name


# ---- zsh ----


def zsh_function(command: Command) -> str:
    return "_sevref" + "".join("_" + word.replace("-", "_") for word in command.path)


def test_zsh_parses_the_script_and_compinit_binds_it(tmp_path: Path) -> None:
    zsh = program("zsh")
    path = tmp_path / "_sevref"
    path.write_text(script("zsh"))
    assert path.read_text().startswith("#compdef sevref\n")
    checked = subprocess.run([zsh, "-n", str(path)], capture_output=True, text=True, check=False)
    assert (checked.returncode, checked.stderr) == (0, "")
    functions = [zsh_function(c) for c in command_tree().walk()]
    loaded = run_zsh(
        tmp_path,
        f"autoload -Uz compinit && compinit -u -D && source {path} && "
        f"print -r -- $_comps[sevref] && whence -w {' '.join(functions)}",
    )
    assert loaded.splitlines() == ["_sevref", *(f"{name}: function" for name in functions)]


def run_zsh(tmp_path: Path, program_text: str) -> str:
    """Run a zsh program (no startup files) in ``tmp_path``; it must succeed silently on standard error."""
    done = subprocess.run(
        [program("zsh"), "-f", "-c", program_text],
        cwd=tmp_path,
        env=quiet_home(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    return done.stdout


def test_zsh_autoloads_it_from_fpath(tmp_path: Path) -> None:
    folder = tmp_path / "functions"
    folder.mkdir()
    (folder / "_sevref").write_text(script("zsh"))
    loaded = run_zsh(
        tmp_path,
        f"fpath=({folder} $fpath); autoload -Uz compinit && compinit -u -D && "
        "print -r -- $_comps[sevref] && autoload +X _sevref && functions _sevref",
    )
    # compinit read #compdef; the file is _sevref's body: on its first call it defines every function, then completes
    assert loaded.startswith("_sevref\n_sevref () {\n")
    assert "\t_sevref_verify () {\n" in loaded and '\t\t_sevref "$@"\n' in loaded


# ---- fish ----


def fish_complete(tmp_path: Path, lines: list[str]) -> list[list[str]]:
    """What fish's ``complete -C`` offers for each line, with the script loaded (words only, sorted)."""
    (tmp_path / "sevref.fish").write_text(script("fish"))
    body = "; ".join(f"complete -C {shlex.quote(line)}; echo '<end>'" for line in lines)
    blocks = completion_blocks([program("fish"), "--no-config", "-c", f"source ../sevref.fish; {body}"], tmp_path)
    return [sorted(line.split("\t")[0] for line in block.splitlines()) for block in blocks]


def test_fish_parses_the_script(tmp_path: Path) -> None:
    path = tmp_path / "sevref.fish"
    path.write_text(script("fish"))
    checked = subprocess.run([program("fish"), "-n", str(path)], capture_output=True, text=True, check=False)
    assert (checked.returncode, checked.stderr) == (0, "")


FISH_CASES = {
    "sevref ver": ["verify"],
    "sevref verify --pub": ["--publication", "--publisher"],
    "sevref verify --publication s": ["site/"],
    "sevref build m": ["manifests.d/", "matrix.yaml"],
    "sevref export --format c": ["corim"],
    "sevref key ": ["chain", "generate", "pin", "reencrypt"],
    "sevref key pin --": ["--help", "--keys", "--out"],
    "sevref completion ": list(SHELLS),
}


def test_fish_completes_commands_options_choices_and_paths(tmp_path: Path) -> None:
    replies = fish_complete(tmp_path, list(FISH_CASES))
    assert dict(zip(FISH_CASES, replies, strict=True)) == {k: sorted(v) for k, v in FISH_CASES.items()}


def test_fish_offers_every_long_option_of_every_command(tmp_path: Path) -> None:
    commands = [c for c in command_tree().walk() if c.path and not c.commands]
    replies = fish_complete(tmp_path, [f"sevref {c.name} --" for c in commands])
    for command, offered in zip(commands, replies, strict=True):
        expected = sorted(f for option in command.options for f in option.flags if f.startswith("--"))
        assert offered == expected, command.name
