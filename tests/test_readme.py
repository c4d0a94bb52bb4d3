"""Every command the README shows, run as written (issue 16).

The shell blocks (```sh, ```shell, ```bash, ```console) are read from README.md.
Each block runs in a fresh folder of its own, set up with what a reader would
have at that point (``SETUPS``, by the block's first command; the bundled
manifests otherwise), one command at a time through bash, as written, except for
the few placeholders ``SUBSTITUTIONS`` names (``…``, ``ID``, a key id, the
publisher's URL). Exported variables and the working folder carry over from one
command of a block to the next, as in a terminal. Every command must exit 0;
where a console block shows output, the output must be that (``NORMALISE`` lists
what may differ: nothing yet).

``make …`` lines run as ``make -n …`` in the clone: the targets run elsewhere
(tests/test_demo.py runs ``make demo`` and compares what it prints with the
README's sample of it; CI runs ``make test``), so here they only have to exist
and parse.

A block that cannot run here says why in a marker right above it,
``<!-- readme-test: skip (reason) -->``; ``EXEMPT`` is the complete list, so a
new block cannot go untested unnoticed. A new block runs with the default set-up;
if it needs more, add a set-up to ``SETUPS`` (and a placeholder to
``SUBSTITUTIONS``), never change what the block says to suit the test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sevref.digest import LaunchMeasureInputs, sev_launch_measurement
from sevref.edge.keys import load_public
from sevref.sign import key_id
from tests.conftest import CACHE, OVMF_FILES, REPO, missing, serve
from tests.packages import build_deb, build_rpm, descriptor

pytestmark = pytest.mark.slow

README = REPO / "README.md"
SHELL_LANGUAGES = {"sh", "shell", "bash", "console"}
OTHER_LANGUAGES = {"text", "yaml", "json", "python"}  # python: tests/test_api.py reads it
MARKER = re.compile(r"^<!-- readme-test: skip \((.+)\) -->$")
EXEMPT = {
    # a skipped block's first command: the reason its marker gives
    "git clone https://github.com/tianocore/edk2 && cd edk2 && git submodule update --init": (
        "needs the internet: clones edk2 and builds it from source"
    ),
    "mkdir -p apt/lists/partial apt/cache/archives/partial": (
        "needs the internet: apt-get update from a snapshot archive"
    ),
}

PASSPHRASE = "readme test passphrase, no secret"
PIN, SO_PIN = "12345678", "87654321"
SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")
VALIDATOR = Path("/usr/bin/virt-qemu-sev-validate")
OVMF_CODE = "usr/share/OVMF/OVMF_CODE.fd"

RPM_URL = "https://rpms.example.org/fedora/Packages/e/edk2-ovmf-20240813-1.fc41.noarch.rpm"
DEB_URL = "https://debs.example.org/ubuntu/pool/main/e/edk2/ovmf_2024.02-2_all.deb"
"""The packages the README pins with sevref pin: built here (rpmbuild, dpkg-deb -Zzstd) and served on 127.0.0.1."""

SUBSTITUTIONS = {
    # placeholder in the README: what the test puts there ({name}: a fact of the block's folder, see FACTS)
    "SEVREF_KEY_PASSPHRASE=…": f"SEVREF_KEY_PASSPHRASE='{PASSPHRASE}'",
    "SEVREF_NEW_KEY_PASSPHRASE=…": f"SEVREF_NEW_KEY_PASSPHRASE='{PASSPHRASE}'",
    "SEVREF_PKCS11_PIN=…": f"SEVREF_PKCS11_PIN={PIN}",
    "--so-pin …": f"--so-pin {SO_PIN}",
    "<old key id>": "{release_key_id}",
    "<hex from the CI log>": "{index_sha256}",
    "https://example.org/sevref/": "{url}",
    RPM_URL: "{rpm_url}",
    DEB_URL: "{deb_url}",
    "--entry ID": "--entry {entry}",
    "MEASUREMENT=…": "MEASUREMENT={measurement}",
    "<base64 from query-sev-launch-measure>": "{measurement}",
    "API_MAJOR=… API_MINOR=… BUILD_ID=…": "API_MAJOR={api_major} API_MINOR={api_minor} BUILD_ID={build}",
}
PLACEHOLDER = re.compile(r"…|<[a-z][a-z ]*>")
NORMALISE: list[tuple[str, str]] = [
    # (pattern, replacement) applied to the output shown and the output found, for what must vary
]


# ---- the README's blocks ----


@dataclass(frozen=True)
class Command:
    """One command of a block, as written."""

    line: int
    text: str
    output: str | None = None  # a console block's output for it


@dataclass(frozen=True)
class Block:
    """A fenced block of shell commands."""

    line: int
    language: str
    commands: tuple[Command, ...]
    skip: str | None

    @property
    def first(self) -> str:
        return self.commands[0].text.split("\n")[0] if self.commands else ""


def _commands(lines: list[tuple[int, str]]) -> tuple[Command, ...]:
    """A shell block's commands: comment and blank lines left out, continued lines (``\\``) joined."""
    commands: list[Command] = []
    current: list[str] = []
    start = 0
    for number, line in lines:
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not current:
            start = number
        current.append(line)
        if not line.endswith("\\"):
            commands.append(Command(start, "\n".join(current)))
            current = []
    return tuple(commands)


def _attach(lines: list[tuple[int, str]]) -> tuple[Command, ...]:
    """A console block's commands (``$ ``), each with the output shown after it."""
    commands: list[Command] = []
    text: list[str] = []
    output: list[str] = []
    start = 0
    for number, line in lines:
        if line.startswith("$ ") and not (text and text[-1].endswith("\\")):
            if text:
                commands.append(Command(start, "\n".join(text), "".join(output)))
            start, text, output = number, [line[2:]], []
        elif text and text[-1].endswith("\\") and not output:
            text.append(line)
        elif text:
            output.append(line + "\n")
    if text:
        commands.append(Command(start, "\n".join(text), "".join(output)))
    return tuple(commands)


def read_blocks(path: Path = README) -> tuple[list[Block], list[str]]:
    """The README's shell blocks, and its problems (unknown languages, markers next to no block)."""
    blocks, problems = [], []
    lines = path.read_text(encoding="utf-8").split("\n")
    fence: tuple[int, str] | None = None
    body: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        if fence is None and line.startswith("```"):
            fence, body = (number, line[3:].strip()), []
            language = fence[1]
            if language not in SHELL_LANGUAGES | OTHER_LANGUAGES:
                problems.append(f"README.md:{number}: a block tagged {language!r}: tag it as one of {SHELL_LANGUAGES}")
        elif fence is not None and line.startswith("```"):
            start, language = fence
            before = lines[start - 2] if start >= 2 else ""
            marker = MARKER.match(before)
            if language in SHELL_LANGUAGES:
                commands = _attach(body) if language == "console" else _commands(body)
                blocks.append(Block(start, language, commands, marker.group(1) if marker else None))
            elif marker:
                problems.append(f"README.md:{start - 1}: a skip marker above a {language} block")
            fence = None
        elif fence is not None:
            body.append((number, line))
        elif line.startswith("<!-- readme-test") and not MARKER.match(line):
            problems.append(f"README.md:{number}: {line} is not <!-- readme-test: skip (reason) -->")
        elif line.startswith("<!-- readme-test") and not (number < len(lines) and lines[number].startswith("```")):
            problems.append(f"README.md:{number}: {line} is not right above a block")
    return blocks, problems


BLOCKS, PROBLEMS = read_blocks()
TESTED = [b for b in BLOCKS if b.skip is None]


# ---- the folders the blocks run in ----


@dataclass
class Workspace:
    """A block's fresh folder, its environment, and the facts its set-up knows."""

    path: Path
    env: dict[str, str]
    given: dict[str, str] = field(default_factory=dict)
    closing: ExitStack = field(default_factory=ExitStack)  # what the set-up started (servers), closed after the block


@dataclass(frozen=True)
class Shared:
    """What several set-ups copy: keys, a key chain and signed publications, built once a module."""

    signed: Path  # release-key.pem/.pub, keys/ (one key), site/: the demo signed with that chain
    demo_url: str  # the demo again, its chain extended by a timestamp key, timestamped, served
    export_url: str  # a small SEV/SEV-ES publication of OVMF_CODE.fd as a local file, served
    export: Path  # its folder: site/, OVMF_CODE.fd


def sevref(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "sevref", *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"sevref {' '.join(args)}: {done.stderr}"
    return done.stdout


def base_env(bin_dir: Path, home: Path) -> dict[str, str]:
    """The environment of a terminal: sevref on PATH (and nothing else of the virtual environment)."""
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != venv_bin]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEVREF_", "SOFTHSM")) and k != "VIRTUAL_ENV"}
    return {**env, "PATH": os.pathsep.join([str(bin_dir), *path]), "HOME": str(home), "SEVREF_CACHE": str(CACHE)}


EXPORT_MANIFEST = f"""\
sevref: 1
publication:
  publisher: {{id: example-cvm, name: Example confidential-VM images, contact: security@example.org}}
  product: debian-ovmf
  stream: debian
  release: "readme"
  serial: 1
  valid_for_days: 30
firmware:
  - id: ovmf-code
    source: {{path: OVMF_CODE.fd, sha256: {OVMF_FILES[OVMF_CODE]}}}
host_stacks:
  - id: debian12-qemu7.2
    vmm: qemu
    qemu: {{version: "7.2", machine: pc-q35-7.2}}
    host_linux: "6.1"
matrices:
  - id: qemu
    modes: [sev, sev-es]
    firmware: [ovmf-code]
    host_stacks: [debian12-qemu7.2]
    cpus: [EPYC-Milan]
    vcpus: [1, 4]
    expected:
      sev: {{policy: "0x3"}}
      sev-es: {{policy: "0x7"}}
"""


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, debian_ovmf: Path) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("readme-shared")
    env = {**os.environ, "SEVREF_KEY_PASSPHRASE": PASSPHRASE, "SEVREF_NEW_KEY_PASSPHRASE": PASSPHRASE}
    signed = root / "signed"
    shutil.copytree(REPO / "manifests", signed / "manifests")
    sevref(env, signed, "key", "generate", "--out", "release-key")
    sevref(
        env, signed, "key", "chain", "--keys", "keys", "--publisher", "example-cvm", "--signing-key", "release-key.pem"
    )
    build = ["build", *sorted(str(p) for p in (signed / "manifests").glob("*.yaml")), "--issued", "now"]
    sevref(env, signed, *build, "--out", "site", "--signing-key", "release-key.pem", "--keys", "keys")
    demo = root / "demo"
    shutil.copytree(signed, demo)
    sevref(env, demo, "key", "generate", "--out", "timestamp-key")
    chain = ["key", "chain", "--keys", "keys", "--publisher", "example-cvm", "--signing-key", "release-key.pem"]
    sevref(env, demo, *chain, "--add", "timestamp-key.pem", "--role", "timestamp")
    sevref(env, demo, "sign", "site", "--keys", "keys", "--signing-key", "release-key.pem", "--resign")
    sevref(env, demo, "timestamp", "site", "--signing-key", "timestamp-key.pem", "--valid-for", "1d")
    export = root / "export"
    export.mkdir()
    shutil.copy(debian_ovmf / OVMF_CODE, export / "OVMF_CODE.fd")
    (export / "manifest.yaml").write_text(EXPORT_MANIFEST)
    key = str(signed / "release-key.pem")
    sevref(env, export, "build", "manifest.yaml", "--out", "site", "--issued", "now", "--signing-key", key)
    with ExitStack() as stack:
        yield Shared(
            signed, stack.enter_context(serve(demo / "site")), stack.enter_context(serve(export / "site")), export
        )


def groups(site: Path) -> list[dict[str, Any]]:
    index = json.loads((site / "index.json").read_bytes())
    shards = [f["path"] for f in index["files"] if f["path"].startswith("groups/") and f["path"].endswith(".json")]
    return [g for shard in shards for g in json.loads((site / shard).read_bytes())["groups"]]


# Set-ups: each gives a block's folder what a reader would have made before it.


def manifests(w: Workspace, shared: Shared) -> None:
    shutil.copytree(REPO / "manifests", w.path / "manifests")


def release_key(w: Workspace, shared: Shared) -> None:
    manifests(w, shared)
    for name in ("release-key.pem", "release-key.pub"):
        shutil.copy2(shared.signed / name, w.path / name)
    w.env["SEVREF_KEY_PASSPHRASE"] = PASSPHRASE  # export SEVREF_KEY_PASSPHRASE=… (README, Signing)


def release_key_and_chain(w: Workspace, shared: Shared) -> None:
    release_key(w, shared)
    shutil.copytree(shared.signed / "keys", w.path / "keys")


def signed_site(w: Workspace, shared: Shared) -> None:
    release_key_and_chain(w, shared)
    shutil.copytree(shared.signed / "site", w.path / "site")


def softhsm(w: Workspace, shared: Shared) -> None:
    """A SoftHSM2 configuration of the folder's own, so that no token of the machine is touched."""
    for program in ("softhsm2-util", "pkcs11-tool"):
        if shutil.which(program) is None or not SOFTHSM.is_file():
            missing(f"{program} or {SOFTHSM} is not installed: run make hsm")
    release_key_and_chain(w, shared)
    (w.path / "tokens").mkdir()
    conf = w.path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {w.path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    w.env["SOFTHSM2_CONF"] = str(conf)


def token_in_chain(w: Workspace, shared: Shared) -> None:
    """After "Keys on an HSM": the token, its key, and keys/2 adding it; the pinned .deb in .cache (CI's cache)."""
    softhsm(w, shared)
    w.env |= {"SEVREF_PKCS11_MODULE": str(SOFTHSM), "SEVREF_PKCS11_PIN": PIN}
    init = ["softhsm2-util", "--init-token", "--free", "--label", "release", "--pin", PIN, "--so-pin", SO_PIN]
    keygen = ["--keypairgen", "--key-type", "EC:prime256v1", "--label", "sevref-2026", "--id", "01"]
    login = ["pkcs11-tool", "--module", str(SOFTHSM), "--token-label", "release", "--login", "--pin", PIN]
    for argv in (init, [*login, *keygen]):
        subprocess.run(argv, env=w.env, cwd=w.path, check=True, capture_output=True)
    chain = ["key", "chain", "--keys", "keys", "--publisher", "example-cvm", "--signing-key", "release-key.pem"]
    sevref(w.env, w.path, *chain, "--add", "pkcs11:token=release;object=sevref-2026")
    (w.path / ".cache" / "debs").mkdir(parents=True)
    for deb in (CACHE / "debs").glob("*.deb"):
        shutil.copy(deb, w.path / ".cache" / "debs" / deb.name)


def served_demo(w: Workspace, shared: Shared) -> None:
    """The publisher's URL serves the demo (timestamped); the guest's launch measurement matches an SEV-ES entry."""
    shutil.copy2(shared.signed / "release-key.pub", w.path / "release-key.pub")
    w.given["url"] = shared.demo_url
    group = next(g for g in groups(shared.signed / "site") if g["mode"] == "sev-es" and g["status"] == "active")
    _, digest = group["entries"][-1]
    assert (group["policy"], group["min_api"]) == ("0x5", "0.17")  # what the README's command gives
    tik, nonce = os.urandom(16), os.urandom(16)
    (w.path / "tik.bin").write_bytes(tik)
    blob = sev_launch_measurement(bytes.fromhex(digest), LaunchMeasureInputs(1, 55, 21, 0x5), nonce, tik) + nonce
    w.given["measurement"] = base64.b64encode(blob).decode()


def served_export(w: Workspace, shared: Shared) -> None:
    """The publisher's URL serves SEV-ES entries of OVMF_CODE.fd; a guest launched from one, its owner's keys."""
    if not VALIDATOR.is_file():
        missing(f"{VALIDATOR} (Debian's libvirt-clients-qemu): run make libvirt")
    shutil.copy2(shared.signed / "release-key.pub", w.path / "release-key.pub")
    shutil.copy(shared.export / "OVMF_CODE.fd", w.path / "OVMF_CODE.fd")
    group = next(g for g in groups(shared.export / "site") if g["mode"] == "sev-es")
    vcpus, digest = group["entries"][-1]
    tik, tek, nonce = os.urandom(16), os.urandom(16), os.urandom(16)
    (w.path / "tik.bin").write_bytes(tik)
    (w.path / "tek.bin").write_bytes(tek)
    inputs = LaunchMeasureInputs(1, 55, 21, int(group["policy"], 16))
    blob = sev_launch_measurement(bytes.fromhex(digest), inputs, nonce, tik) + nonce
    w.given |= {
        "url": shared.export_url,
        "entry": f"{group['id']}-{vcpus:04d}",
        "measurement": base64.b64encode(blob).decode(),
        "api_major": "1",
        "api_minor": "55",
        "build": "21",
    }


def firmware(w: Workspace, shared: Shared) -> None:
    shutil.copy(shared.export / "OVMF_CODE.fd", w.path / "OVMF_CODE.fd")


def pinned_packages(w: Workspace, shared: Shared) -> None:
    """The README's pinned.yaml as it shows it, and a Fedora-like RPM and an Ubuntu-like zstd .deb, served.

    Each package holds the golden test firmware where the real one has its image, and a QEMU firmware
    descriptor: memory (-bios) with every SEV feature for the RPM, split flash with amd-sev and
    amd-sev-es for the .deb, as Fedora's and Ubuntu's do.
    """
    text = README.read_text(encoding="utf-8")
    found = re.search(r"```yaml\n(# pinned\.yaml:.*?)```", text, re.DOTALL)
    assert found is not None, "README.md: no yaml block starting with # pinned.yaml"
    (w.path / "pinned.yaml").write_text(found.group(1), encoding="utf-8")
    www, tiny = w.path.parent / "www", (REPO / "tests" / "golden" / "inputs" / "tiny.fd").read_bytes()
    www.mkdir()
    amdsev = {"60-edk2-ovmf-x64-amdsev.json": descriptor()}
    rpm = build_rpm(w.path.parent, tiny, "zstd", version="20240813", release="1.fc41", descriptors=amdsev)
    code = "/usr/share/OVMF/OVMF_CODE_4M.fd"
    split = {"60-edk2-x86_64.json": descriptor(device="flash", features=("amd-sev", "amd-sev-es"), filename=code)}
    deb = build_deb(w.path.parent, tiny, "zstd", version="2024.02-2", descriptors=split, firmware_path=code[1:])
    shutil.copy(rpm, www / RPM_URL.rsplit("/", 1)[1])
    shutil.copy(deb, www / DEB_URL.rsplit("/", 1)[1])
    base = w.closing.enter_context(serve(www))
    w.given |= {"rpm_url": base + RPM_URL.rsplit("/", 1)[1], "deb_url": base + DEB_URL.rsplit("/", 1)[1]}


SETUPS: dict[str, Callable[[Workspace, Shared], None]] = {
    # the start of a block's first command: its set-up (default: manifests)
    "sevref key reencrypt release-key.pem": release_key,
    "SEVREF_KEY_PASSPHRASE=… sevref key generate --out new-key": release_key_and_chain,
    "SEVREF_KEY_PASSPHRASE=… sevref key generate --out timestamp-key": signed_site,
    "openssl dgst -sha256 -verify release-key.pub": signed_site,
    "export SEVREF_PKCS11_MODULE=": softhsm,
    "sevref build manifests/*.yaml --out site --cache .cache": token_in_chain,
    "sevref verify --publication https://example.org/sevref/": served_demo,
    "export MEASUREMENT=…": served_export,
    "sevref digest --mode": firmware,
    "sevref pin https://rpms.example.org/": pinned_packages,
}

FACTS: dict[str, Callable[[Workspace], str]] = {
    # facts a substitution may name, read when the command runs (after the commands before it)
    "release_key_id": lambda w: key_id(load_public(w.path / "release-key.pub")),
    "index_sha256": lambda w: hashlib.sha256((w.path / "site" / "index.json").read_bytes()).hexdigest(),
}


class _Facts(dict[str, str]):
    def __init__(self, w: Workspace) -> None:
        super().__init__(w.given)
        self.workspace = w

    def __missing__(self, name: str) -> str:
        return FACTS[name](self.workspace)


def substitute(command: Command, w: Workspace) -> str:
    text = command.text
    for placeholder, value in SUBSTITUTIONS.items():
        if placeholder in text:
            text = text.replace(placeholder, value.format_map(_Facts(w)))
    # A placeholder in a comment is prose (e.g. "BUILD=… will do too"): only code must be filled in.
    left = PLACEHOLDER.findall("\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.split("\n")))
    assert not left, f"README.md:{command.line}: placeholder {left} has no substitution in tests/test_readme.py"
    return text


def run(text: str, w: Workspace, state: Path, merge: bool) -> subprocess.CompletedProcess[str]:
    """Run one command in bash as written; variables and the folder carry over through ``state``."""
    script = (
        f'[ -f "{state}" ] && . "{state}"\n{text}\n__status=$?\n'
        f'{{ export -p; printf "cd %q\\n" "$PWD"; }} > "{state}"\nexit $__status\n'
    )
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script],
        cwd=w.path,
        env=w.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge else subprocess.PIPE,
        text=True,
        timeout=600,
        check=False,
    )


def normalise(text: str) -> str:
    for pattern, replacement in NORMALISE:
        text = re.sub(pattern, replacement, text)
    return text


def setup_of(block: Block) -> Callable[[Workspace, Shared], None]:
    return next((setup for start, setup in SETUPS.items() if block.first.startswith(start)), manifests)


@pytest.fixture()
def sevref_on_path(tmp_path: Path) -> Path:
    """sevref first on PATH, and python3 Debian's own, as on the Debian machine the README is written for.

    (libvirt's validator, which an exported command runs, is ``#!/usr/bin/env python3`` and needs
    Debian's python3-libvirt and python3-lxml.)
    """
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "sevref").symlink_to(Path(sys.executable).parent / "sevref")
    (folder / "python3").symlink_to("/usr/bin/python3")
    return folder


@pytest.mark.parametrize(
    "block", TESTED, ids=[f"line{b.line}-{re.sub('[^a-z0-9]+', '-', b.first.lower())[:40]}" for b in TESTED]
)
def test_the_readme_block_runs_as_written(block: Block, shared: Shared, tmp_path: Path, sevref_on_path: Path) -> None:
    w = Workspace(tmp_path / "work", base_env(sevref_on_path, tmp_path / "work"))
    w.path.mkdir()
    with w.closing:
        setup_of(block)(w, shared)
        _run_block(block, w, tmp_path / "shell-state")


def _run_block(block: Block, w: Workspace, state: Path) -> None:
    for command in block.commands:
        text = substitute(command, w)
        if text.startswith("make "):  # the target runs elsewhere in the suite: here it must exist and parse
            done = subprocess.run(
                ["bash", "-c", f"make -n {text[5:]}"], cwd=REPO, capture_output=True, text=True, check=False
            )
        else:
            done = run(text, w, state, merge=command.output is not None)
        assert done.returncode == 0, (
            f"README.md:{command.line}: {text}\nexited {done.returncode}:\n{done.stdout}{done.stderr or ''}"
        )
        if command.output is not None:
            assert normalise(done.stdout) == normalise(command.output), f"README.md:{command.line}: {text}"


def test_the_exempt_blocks_are_exactly_the_expected_ones() -> None:
    assert PROBLEMS == []
    assert {b.first: b.skip for b in BLOCKS if b.skip is not None} == EXEMPT


def test_every_substitution_and_setup_is_used_and_the_readme_has_commands() -> None:
    written = "\n".join(c.text for b in TESTED for c in b.commands)
    assert [p for p in SUBSTITUTIONS if p not in written] == []
    assert [s for s in SETUPS if not any(b.first.startswith(s) for b in TESTED)] == []
    # The shapes the README uses: a console transcript with output, make lines, continued lines.
    assert any(c.output for b in TESTED for c in b.commands)
    assert any(c.text.startswith("make ") for b in TESTED for c in b.commands)
    assert any("\\\n" in c.text for b in TESTED for c in b.commands)


def test_the_reader_parses_blocks_markers_and_transcripts(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- readme-test: skip (needs the moon) -->\n```sh\n# a comment\necho a \\\n  b   # continued\n```\n"
        "```console\n$ echo x\nx\n$ true\n```\n```ruby\nputs 1\n```\n"
        "<!-- readme-test: skip (nothing below) -->\n\n```yaml\na: 1\n```\n<!-- readme-test: skipp -->\n"
    )
    blocks, problems = read_blocks(readme)
    assert [(b.line, b.language, b.skip) for b in blocks] == [(2, "sh", "needs the moon"), (7, "console", None)]
    assert blocks[0].commands == (Command(4, "echo a \\\n  b   # continued"),)
    assert blocks[1].commands == (Command(8, "echo x", "x\n"), Command(10, "true", ""))
    assert len(problems) == 3 and "'ruby'" in problems[0] and "is not right above a block" in problems[1]
    assert "is not <!-- readme-test: skip (reason) -->" in problems[2]
