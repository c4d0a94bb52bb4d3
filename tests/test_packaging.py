"""What a distribution gets: the sdist, the wheel, the man pages and the completions (README: Packaging).

The man pages in man/ are made from the parsers (``make man``) and must be what
the generator makes now. The slow tests build the sdist and the wheel from a
clean copy of the repository, install the wheel into a virtual environment
outside it, and run the man pages through ``man`` and the completion through
``bash``; then they run tests from the unpacked sdist.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from sevref import __version__
from sevref._cli import COMMANDS
from sevref._cli._manpage import page_date, render_pages, roff
from sevref._cli.completion import command_tree
from tests.conftest import REPO, missing

MAN = REPO / "man"
CHANGELOG = REPO / "CHANGELOG.md"
LEFT_OUT = {".git", ".venv", ".cache", ".peers", "site", "build", "dist", ".pytest_cache", ".mypy_cache"}
LEFT_OUT |= {".ruff_cache", ".hypothesis", "__pycache__"}
"""What a clean copy of the repository does not have (when git cannot say which files are tracked)."""


def test_the_committed_man_pages_are_what_the_parsers_make() -> None:
    made = render_pages(CHANGELOG.read_text(encoding="utf-8"))
    committed = {path.name: path.read_text(encoding="utf-8") for path in MAN.glob("*.1")}
    assert sorted(committed) == sorted(made), "run make man"
    assert [name for name in made if committed[name] != made[name]] == [], "run make man"
    assert sorted(made) == sorted(["sevref.1", *(f"sevref-{name}.1" for name, _, _ in COMMANDS)])


def test_each_page_names_every_option_of_its_command_and_the_date_is_the_changelogs() -> None:
    commands = {command.name: command for command in command_tree().commands}
    for name, _, help_text in COMMANDS:
        page = (MAN / f"sevref-{name}.1").read_text(encoding="utf-8")
        assert f"\n.SH NAME\n{roff('sevref-' + name)} \\- {roff(help_text)}\n" in page
        flags = {f for command in commands[name].walk() for option in command.options for f in option.flags}
        assert [f for f in sorted(flags) if f"\\fB{roff(f)}\\fR" not in page] == [], name
    date = page_date(CHANGELOG.read_text(encoding="utf-8"))
    top = (MAN / "sevref.1").read_text(encoding="utf-8")
    assert f'.TH SEVREF 1 "{date}" "sevref {__version__}" "sevref Manual"\n' in top
    assert [name for name, _, _ in COMMANDS if f"\\fB{roff('sevref-' + name)}\\fR(1)" not in top] == []


def test_the_date_comes_from_the_changelog_and_never_the_clock() -> None:
    assert page_date(f"# Changelog\n\n## {__version__} (2027-01-31)\n\n## 0.0.1 (2026-01-01)\n") == "2027-01-31"
    assert page_date(f"## {__version__} (unreleased)\n") == "unreleased"
    assert page_date(f"## {__version__}\n") == ""
    with pytest.raises(ValueError, match=r"newest heading is 9\.9\.9"):
        page_date("## 9.9.9 (2027-01-31)\n")


def test_roff_keeps_options_whole_and_no_line_a_request() -> None:
    assert roff("see --launch-measurement, SEV-SNP and -h") == "see \\-\\-launch\\-measurement, SEV-SNP and \\-h"
    assert roff(".hidden") == "\\&.hidden"
    assert roff("a \\ b") == "a \\e b"


# ---- the sdist and the wheel, built and installed ----


def clean_copy(folder: Path) -> Path:
    """The repository's files as a fresh clone has them (with files not yet committed, but none ignored)."""
    git = shutil.which("git")
    listed = None
    if git and (REPO / ".git").exists():
        done = subprocess.run(
            [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        listed = [name for name in done.stdout.decode().split("\0") if name and (REPO / name).is_file()]
    if listed is None:  # an unpacked sdist: no git, nothing ignored to leave out but what LEFT_OUT names
        shutil.copytree(REPO, folder, ignore=lambda _, names: [n for n in names if n in LEFT_OUT])
        return folder
    for name in listed:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist and the wheel, built by python -m build from a clean copy: the wheel is built from the sdist.

    --no-isolation builds with the hatchling of the dev extra (pinned in pyproject.toml), offline and the same
    on every machine; an isolated build would download hatchling into a fresh environment.
    """
    for module in ("build", "hatchling"):
        if importlib.util.find_spec(module) is None:
            missing(f"{module} is not installed in this environment (make dev)")
    root = tmp_path_factory.mktemp("packaging")
    source = clean_copy(root / "source")
    out = root / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Building wheel from sdist" in done.stdout + done.stderr
    (sdist,) = out.glob("sevref-*.tar.gz")
    (wheel,) = out.glob("sevref-*.whl")
    return sdist, wheel


@pytest.mark.slow
def test_the_sdist_carries_what_a_distribution_needs_to_build_and_test(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    assert sdist.name == f"sevref-{__version__}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    top = ["LICENSE", "CHANGELOG.md", "README.md", "SECURITY.md", "ARCHITECTURE.md", "Makefile", "pyproject.toml"]
    assert [name for name in top if name not in names] == []
    needed = ["tests/conftest.py", "tests/vectors/known-answers.jsonl", "tests/golden/manifest.yaml", "man/sevref.1"]
    needed += [f"manifests/{p.name}" for p in (REPO / "manifests").glob("*.yaml")]
    needed += [f"schema/{p.name}" for p in (REPO / "schema").glob("*.json")]
    needed += [
        f"tests/data/{p.relative_to(REPO / 'tests' / 'data')}" for p in (REPO / "tests/data").rglob("*") if p.is_file()
    ]
    needed += [f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")] + ["templates/base.html.j2"]
    assert [name for name in needed if name not in names] == []
    assert {n.split("/")[0] for n in names} & {".venv", ".cache", ".peers", "site", ".git", "dist"} == set()
    assert [n for n in names if "__pycache__" in n or n.endswith(".pyc")] == []


@pytest.fixture(scope="module")
def installed(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment outside the repository with the wheel installed (no index, no dependencies).

    Its dependencies come from this environment's site-packages through a .pth file (which adds the folder
    alone: the editable install of the clone there is not read).
    """
    _, wheel = built
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "sevref-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index"]
    subprocess.run([*pip, str(wheel)], capture_output=True, check=True)
    return venv


def run_installed(venv: Path, *argv: str) -> str:
    """Run the installed sevref from a folder outside the repository; its standard output."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    done = subprocess.run(
        [str(venv / "bin" / "sevref"), *argv], cwd=venv, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def imported_sevref(python: Path, folder: Path, env: dict[str, str] | None = None) -> Path:
    """The file of the sevref package that ``python`` imports when run in ``folder``."""
    found = subprocess.run(
        [python, "-c", "import sevref; print(sevref.__file__)"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return Path(found.strip())


@pytest.mark.slow
def test_the_installed_wheel_runs_from_its_own_files(installed: Path) -> None:
    newest = re.search(r"^## (\S+)", CHANGELOG.read_text(encoding="utf-8"), re.MULTILINE)
    assert newest is not None
    assert run_installed(installed, "--version") == f"sevref {newest.group(1)}\n"
    assert imported_sevref(installed / "bin" / "python", installed).is_relative_to(
        installed
    )  # the wheel's sevref, not the clone's


@pytest.mark.slow
def test_man_renders_the_installed_pages(installed: Path) -> None:
    man = shutil.which("man")
    col = shutil.which("col")
    if man is None or col is None:
        missing("man (man-db) or col (bsdextrautils) is not installed (make shells)")
    pages = installed / "share" / "man" / "man1"
    assert sorted(p.name for p in pages.iterdir()) == sorted(p.name for p in MAN.glob("*.1"))
    env = {**os.environ, "MANWIDTH": "80", "LANG": "C.UTF-8", "MAN_KEEP_FORMATTING": "0"}
    shown = {}
    for name in ("sevref.1", "sevref-verify.1"):
        rendered = subprocess.run([man, "-l", pages / name], env=env, capture_output=True, text=True, check=True)
        assert rendered.stderr == ""
        done = subprocess.run([col, "-b"], input=rendered.stdout, capture_output=True, text=True, check=True)
        shown[name] = re.sub(r"[ \t]+", " ", done.stdout)  # justified: words apart by any spaces
    assert re.search(r"^NAME\n\s+sevref - launch digests", shown["sevref.1"], re.MULTILINE)
    assert re.search(r"^\s+sevref verify\n\s+Check a publication", shown["sevref.1"], re.MULTILINE)
    assert re.search(r"^EXIT STATUS\n\s+0\s", shown["sevref.1"], re.MULTILINE)
    verify = shown["sevref-verify.1"]
    assert re.search(r"^NAME\n\s+sevref-verify - check a publication", verify, re.MULTILINE)
    assert re.search(r"^\s+--publication DIR\|URL\n\s+A folder, file://", verify, re.MULTILINE)
    assert re.search(r"^\s+--require-stateless\n\s+Refuse a match", verify, re.MULTILINE)
    assert re.search(r"^ +trust options \(the same for every command that verifies\)\n", verify, re.MULTILINE)
    assert re.search(r"^SYNOPSIS\n\s+sevref verify \[-h\] --publication DIR\|URL", verify, re.MULTILINE)
    assert f"sevref {__version__}" in verify.splitlines()[-1]


@pytest.mark.slow
def test_bash_sources_the_installed_completion(installed: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    script = run_installed(installed, "completion", "bash")
    program = "source /dev/stdin; complete -p sevref; COMP_WORDS=(sevref ver); COMP_CWORD=1; _sevref; echo $COMPREPLY"
    done = subprocess.run([bash, "--norc", "-c", program], input=script, capture_output=True, text=True, check=True)
    assert (done.stdout, done.stderr) == ("complete -F _sevref sevref\nverify\n", "")


@pytest.mark.slow
def test_the_tests_run_from_the_unpacked_sdist(built: tuple[Path, Path], tmp_path: Path) -> None:
    sdist, _ = built
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (root,) = tmp_path.iterdir()
    env = {k: v for k, v in os.environ.items() if k not in {"SEVREF_STRICT", "PYTHONPATH"}}
    assert imported_sevref(Path(sys.executable), root, env).is_relative_to(
        root
    )  # the sdist's own sevref, not the clone's
    chosen = [
        "tests/unit/test_changelog.py",  # CHANGELOG.md
        "tests/unit/test_validate.py",  # schema/
        "tests/unit/test_manifest.py",
        "tests/test_packaging.py::test_the_committed_man_pages_are_what_the_parsers_make",  # man/ and the parsers
        "tests/test_completion.py",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *chosen],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert re.search(r"\b\d{2,} passed\b", summary) and "failed" not in summary and "error" not in summary, summary


@pytest.mark.slow
def test_the_wheel_puts_the_man_pages_in_share_man(built: tuple[Path, Path]) -> None:
    _, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    data = f"sevref-{__version__}.data/data/share/man/man1"
    assert {f"{data}/{p.name}" for p in MAN.glob("*.1")} <= names
    assert {"sevref/schema/index.schema.json", "sevref/templates/base.html.j2"} <= names
