"""sevref under attack and accident: hostile manifests, killed builds, racing builds, secrets, reproducibility.

Hostile inputs run in a subprocess with an address-space limit and a timeout,
so "bounded time and memory" is enforced by the operating system rather than
by timing assertions.
"""

from __future__ import annotations

import base64
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from sevref.edge.keys import generate_key_files, load_signer
from sevref.sign import Algorithm
from tests.test_build import BASE, GOLDEN, manifest

pytestmark = pytest.mark.slow

MEMORY = 1 << 30  # address space of a hostile-input run
TIMEOUT = 60


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def sevref(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI with bounded memory and time."""
    return subprocess.run(
        [sys.executable, "-m", "sevref", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=_limit,
        check=False,
    )


def one_error(done: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exactly one line on standard error and no traceback; return it."""
    assert done.returncode == 1, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sevref: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0].removeprefix("sevref: error: ")


# --------------------------------------------------------------------------- manifest hazards


def billion_laughs() -> str:
    lines = ['lol: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"lol{level}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return BASE + "\n".join(lines) + "\n"


HAZARDS: dict[str, tuple[Callable[[], str | bytes], str]] = {
    # name: (manifest text or bytes, the error it must give)
    "alias bomb": (billion_laughs, r"m\.yaml:{n1}:11: a YAML alias \(\*a\); expected every value written out"),
    "deep nesting": (
        lambda: BASE + "extra: " + "[" * 100_000 + "]" * 100_000 + "\n",
        r"m\.yaml:{n}:39: nested more than 32 levels deep; expected at most 32",
    ),
    "deep mappings": (
        lambda: BASE + "extra: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n",
        r"m\.yaml:{n}:\d+: nested more than 32 levels deep",
    ),
    "huge decimal integer": (
        lambda: BASE.replace("serial: 1", "serial: " + "9" * 100_000),
        r"m\.yaml:7:11: an integer written with 100000 characters; expected at most 32 \(64 bits\)",
    ),
    "huge hex integer": (
        lambda: BASE.replace("serial: 1", "serial: 0x" + "f" * 100_000),
        r"m\.yaml:7:11: an integer written with 100002 characters",
    ),
    "integer above the schema": (
        lambda: BASE.replace("serial: 1", "serial: 99999999999999999999"),
        r"m\.yaml:7:11: /publication/serial: expected at most 9007199254740991, found 99999999999999999999",
    ),
    "duplicate key": (
        lambda: BASE.replace("  serial: 1\n", "  serial: 1\n  serial: 2\n"),
        r"m\.yaml:8:3: key 'serial' appears twice \(first at 7:3\); expected each key once",
    ),
    "not UTF-8": (
        lambda: BASE.encode().replace(b"product: p", b"product: \xff"),
        r"m\.yaml:4: byte \d+ \(0xff\) is not UTF-8; expected UTF-8 text",
    ),
    "object tag": (
        lambda: BASE + "extra: !!python/object/apply:os.system [echo pwned]\n",
        r"m\.yaml:{n}:8: invalid YAML: could not determine a constructor for the tag "
        r"'tag:yaml\.org,2002:python/object/apply:os\.system'",
    ),
    "too many nodes": (
        lambda: BASE + "extra: [" + ", ".join(["1"] * 250_000) + "]\n",
        r"m\.yaml:{n}:\d+: more than 200000 YAML nodes; expected a smaller manifest",
    ),
    "too large": (
        lambda: BASE + "# " + "x" * (4 << 20) + "\n",
        r"m\.yaml: \d+ bytes; expected at most 4194304",
    ),
}


@pytest.mark.parametrize("name", list(HAZARDS))
def test_hostile_manifests_fail_clearly_in_bounded_time_and_memory(name: str, tmp_path: Path) -> None:
    make, pattern = HAZARDS[name]
    text = make()
    path = manifest(tmp_path, "")
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    for command in (["validate", str(path)], ["build", str(path), "--out", str(tmp_path / "site")]):
        message = one_error(sevref(command, tmp_path))
        appended = BASE.count("\n") + 1  # the first line a hazard appends to BASE
        expected = pattern.replace("{n}", str(appended)).replace("{n1}", str(appended + 1))
        assert re.fullmatch(f"(manifest )?{re.escape(str(tmp_path))}/{expected}.*", message), message
    assert not (tmp_path / "site").exists()


def test_files_must_stay_in_the_manifests_folder(tmp_path: Path) -> None:
    folder = tmp_path / "vendor"
    folder.mkdir()
    path = manifest(folder, BASE)  # fw.fd and vmlinuz beside it: fine
    assert sevref(["validate", str(path)], tmp_path).returncode == 0
    secret = tmp_path / "secret.fd"
    secret.write_bytes((folder / "fw.fd").read_bytes())
    text = path.read_text()
    cases = {
        "dot-dot": "../secret.fd",
        "absolute": str(secret),
        "symlink out": "link.fd",
    }
    (folder / "link.fd").symlink_to(secret)
    for name, value in cases.items():
        path.write_text(text.replace("path: fw.fd", f"path: {value}"))
        message = one_error(sevref(["validate", str(path)], tmp_path))
        assert (
            ": firmware fw " in message and f"outside {folder}; expected a file inside the manifest's folder" in message
        )
        assert message.endswith("or allow its folder with --allow-path DIR"), (name, message)
        if name == "symlink out":
            assert f"(which resolves to {secret})" in message
        # Explicitly allowed, the same manifest is fine.
        assert sevref(["validate", str(path), "--allow-path", str(tmp_path)], tmp_path).returncode == 0, name
    # A symlink that stays inside is fine.
    (folder / "inner.fd").symlink_to(folder / "fw.fd")
    path.write_text(text.replace("path: fw.fd", "path: inner.fd"))
    assert sevref(["validate", str(path)], tmp_path).returncode == 0


def test_special_and_oversized_files_are_refused(tmp_path: Path) -> None:
    path = manifest(tmp_path, BASE)
    text = path.read_text()
    os.mkfifo(tmp_path / "pipe.fd")  # opening it for reading would block forever
    path.write_text(text.replace("path: fw.fd", "path: pipe.fd"))
    message = one_error(sevref(["validate", str(path)], tmp_path))
    assert message.endswith(f"m.yaml:11:22: firmware fw {tmp_path}/pipe.fd: not a regular file; expected a file"), (
        message
    )
    path.write_text(text.replace("path: fw.fd", "path: /dev/zero"))
    message = one_error(sevref(["validate", str(path), "--allow-path", "/dev"], tmp_path))
    assert message.endswith("m.yaml:11:22: firmware fw /dev/zero: not a regular file; expected a file"), message
    with (tmp_path / "huge.fd").open("wb") as handle:  # sparse: costs no disk
        handle.truncate((256 << 20) + 1)
    path.write_text(text.replace("path: fw.fd", "path: huge.fd"))
    message = one_error(sevref(["validate", str(path)], tmp_path))
    assert message.endswith(
        f"m.yaml:11:22: firmware fw {tmp_path}/huge.fd: 268435457 bytes; expected at most 268435456"
    ), message


# --------------------------------------------------------------------------- killed and racing builds

_CPUS = ", ".join(["EPYC", "EPYC-Rome", "EPYC-Milan"] + [f'"{0xA00F00 + n:#x}"' for n in range(60)])
BIG = (
    BASE.replace("vcpus: [1-4]", "vcpus: [1-512]")
    .replace("cpus: [EPYC]", f"cpus: [{_CPUS}]")
    .replace("serial: 1", "serial: 2")
)
PASSPHRASE = "hardening-test-passphrase"


def big_manifest(tmp_path: Path) -> Path:
    """BIG beside the files that manifest() writes: a build that takes seconds."""
    path = manifest(tmp_path, BIG)
    return path.rename(tmp_path / "big.yaml")


def signed_build(manifest_path: Path, out: Path, key: Path, cwd: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "sevref", "build", str(manifest_path), "--out", str(out)]
    command += ["--signing-key", str(key), "--jobs", "2"]
    env = {**os.environ, "SEVREF_KEY_PASSPHRASE": PASSPHRASE}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def verify(out: Path, key: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    identity = ["--publisher", "t", "--product", "p", "--stream", "s", "--at", "2026-01-02T00:00:00Z"]
    return sevref(["verify", "--publication", str(out), "--trusted-key", str(key), *identity], cwd)


def litter(out: Path) -> list[str]:
    """What a build may leave beside --out while it runs: scratch folders and its lock."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith((f".{out.name}.tmp-", f".{out.name}.lock")))


MILESTONES = {
    # what the killed build had got to: a path inside its scratch folder (or None: the scratch folder itself)
    "started": None,
    "pages written": "entry",
    "digests written": "digests",
    "index written": "index.json",
    "signed": "index.dsse.json",
}


@pytest.mark.parametrize("milestone", list(MILESTONES))
def test_a_killed_build_leaves_the_previous_publication_intact(milestone: str, tmp_path: Path) -> None:
    generate_key_files(tmp_path / "key", Algorithm.ECDSA_P256, PASSPHRASE.encode())
    big = big_manifest(tmp_path)  # first: manifest() always writes m.yaml
    small = manifest(tmp_path, BASE)
    out = tmp_path / "site"
    first = signed_build(small, out, tmp_path / "key.pem", tmp_path)
    assert first.wait(TIMEOUT) == 0, first.communicate()
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    build = signed_build(big, out, tmp_path / "key.pem", tmp_path)
    target = MILESTONES[milestone]
    deadline = time.monotonic() + TIMEOUT
    killed = False
    while time.monotonic() < deadline and build.poll() is None:
        scratch = [p for p in tmp_path.glob(".site.tmp-*") if p.name != ".site.tmp-old"]
        if scratch and (target is None or any((s / target).exists() for s in scratch)):
            build.send_signal(signal.SIGKILL)
            killed = True
            break
    build.wait(TIMEOUT)
    build.communicate()
    if not killed:
        pytest.fail(f"the build ended before reaching {milestone!r}; make BIG bigger")
    # --out holds a whole publication that verifies: the previous one, untouched, or (when the kill
    # came after the swap, while the old one was being removed) the new one, complete.
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before or json.loads(after[Path("index.json")])["serial"] == 2
    assert verify(out, tmp_path / "key.pub", tmp_path).returncode == 0
    # The next build cleans up what the killed one left, and succeeds.
    again = signed_build(big, out, tmp_path / "key.pem", tmp_path)
    assert again.wait(TIMEOUT * 4) == 0, again.communicate()
    assert litter(out) == []
    assert json.loads((out / "index.json").read_bytes())["serial"] == 2
    assert verify(out, tmp_path / "key.pub", tmp_path).returncode == 0


def children(pid: int) -> set[int]:
    """The processes ``pid`` started (of every thread of it)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, waiting only to be reaped, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_the_workers_of_a_killed_build_die_with_it(tmp_path: Path) -> None:
    # A build killed with SIGKILL runs no clean-up of its own. Its workers must not go on writing
    # into the abandoned scratch folder, which the next build clears away: the kernel kills them.
    generate_key_files(tmp_path / "key", Algorithm.ECDSA_P256, PASSPHRASE.encode())
    build = signed_build(big_manifest(tmp_path), tmp_path / "site", tmp_path / "key.pem", tmp_path)
    deadline = time.monotonic() + TIMEOUT
    workers: set[int] = set()
    while time.monotonic() < deadline and build.poll() is None and len(workers) < 2:
        if any((s / "entry").exists() for s in tmp_path.glob(".site.tmp-*")):  # the workers are writing
            workers = children(build.pid)
    assert len(workers) == 2, "the build ended before its two workers wrote; make BIG bigger"
    build.send_signal(signal.SIGKILL)
    build.wait(TIMEOUT)
    left = scratch_files(tmp_path)  # before communicate(): it waits for every holder of the pipes, workers too
    time.sleep(1)  # longer than a task takes: a worker that outlived the build would finish its task and write
    assert scratch_files(tmp_path) == left
    assert not any(alive(pid) for pid in workers)
    build.communicate()


def scratch_files(folder: Path) -> dict[str, int]:
    """The files in the scratch folders of ``folder/site``, with their sizes."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.glob(".site.tmp-*/**/*") if p.is_file()}


def test_two_builds_at_once_one_wins(tmp_path: Path) -> None:
    generate_key_files(tmp_path / "key", Algorithm.ECDSA_P256, PASSPHRASE.encode())
    big = big_manifest(tmp_path)
    out = tmp_path / "site"
    # Two identical builds: each spends the same time before taking the lock, then holds it for seconds.
    builds = [signed_build(big, out, tmp_path / "key.pem", tmp_path) for _ in range(2)]
    results = [(b.wait(TIMEOUT * 4), *b.communicate()) for b in builds]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, _, err in results if code == 1)
    assert loser.strip() == (f"sevref: error: --out {out}: another sevref build is writing it; try again when it ends")
    assert verify(out, tmp_path / "key.pub", tmp_path).returncode == 0
    assert litter(out) == []


# --------------------------------------------------------------------------- secrets


def test_key_material_never_leaves_the_key_file(tmp_path: Path) -> None:
    passphrase = "correct horse battery staple 8b1f"
    env = {"SEVREF_KEY_PASSPHRASE": passphrase}
    outputs: list[str] = []

    def run(args: list[str], expect: int = 0) -> None:
        done = sevref(args, tmp_path, env)
        assert done.returncode == expect, (args, done.stderr)
        outputs.extend([done.stdout, done.stderr])

    run(["key", "generate", "--out", str(tmp_path / "key")])
    assert os.stat(tmp_path / "key.pem").st_mode & 0o777 == 0o600
    private_pem = (tmp_path / "key.pem").read_bytes()
    key = load_signer(tmp_path / "key.pem", passphrase.encode())._key
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
    run(
        [
            "key",
            "chain",
            "--keys",
            str(tmp_path / "chain"),
            "--publisher",
            "t",
            "--signing-key",
            str(tmp_path / "key.pem"),
        ]
    )
    path = manifest(tmp_path, BASE)
    site = tmp_path / "site"
    run(
        [
            "build",
            str(path),
            "--out",
            str(site),
            "--signing-key",
            str(tmp_path / "key.pem"),
            "--keys",
            str(tmp_path / "chain"),
        ]
    )
    identity = ["--publisher", "t", "--product", "p", "--stream", "s", "--at", "2026-01-02T00:00:00Z"]
    run(["verify", "--publication", str(site), "--trusted-key", str(tmp_path / "key.pub"), *identity, "--json"])
    # Failures name the key file, never what is in it or the passphrase.
    wrong = sevref(
        ["build", str(path), "--out", str(site), "--signing-key", str(tmp_path / "key.pem")],
        tmp_path,
        {"SEVREF_KEY_PASSPHRASE": passphrase + "x"},
    )
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    outputs.extend([wrong.stdout, wrong.stderr])
    (tmp_path / "notakey.pem").write_bytes(private_pem[:200])
    broken = sevref(
        ["build", str(path), "--out", str(site), "--signing-key", str(tmp_path / "notakey.pem")], tmp_path, env
    )
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    outputs.extend([broken.stdout, broken.stderr])

    secrets = {
        "passphrase": passphrase.encode(),
        "private PEM body": b"".join(private_pem.splitlines()[1:-1])[:64],
        "private key DER": der,
        "private scalar": scalar,
        "private scalar hex": scalar.hex().encode(),
        "private scalar base64": base64.b64encode(scalar),
    }
    published = [p.read_bytes() for p in site.rglob("*") if p.is_file()]
    logs = [text.encode() for text in outputs]
    assert len(published) > 20
    for name, secret in secrets.items():
        for blob in published + logs:
            assert secret not in blob, name
        for line in private_pem.splitlines()[1:-1]:
            for blob in published + logs:
                assert line not in blob


# --------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("algorithm", [Algorithm.ECDSA_P256, Algorithm.ED25519])
def test_signed_builds_are_byte_identical_anywhere(algorithm: Algorithm, tmp_path: Path) -> None:
    """SOURCE_DATE_EPOCH fixes the time; nothing else of the machine shows in the bytes."""
    generate_key_files(tmp_path / "key", algorithm, PASSPHRASE.encode())
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    text = (GOLDEN / "manifest.yaml").read_text(encoding="utf-8")
    text = text.replace(
        '  issued: "2026-01-01T00:00:00Z"\n  expires: "2026-07-01T00:00:00Z"\n', "  valid_for_days: 90\n"
    )
    assert "issued" not in text
    for name in ("tiny.fd", "vmlinuz", "initrd.img"):
        (inputs / name).write_bytes((GOLDEN / "inputs" / name).read_bytes())
    (tmp_path / "m.yaml").write_text(text, encoding="utf-8")
    trees = []
    for index, (tz, lang, seed, jobs) in enumerate(
        [("UTC", "C.UTF-8", "0", "1"), ("Pacific/Chatham", "C", "4242", "2")]
    ):
        cwd = tmp_path / f"elsewhere{index}" / "deeper"
        cwd.mkdir(parents=True)
        env = {"TZ": tz, "LANG": lang, "LC_ALL": lang, "PYTHONHASHSEED": seed, "SOURCE_DATE_EPOCH": "1767225600"}
        env["SEVREF_KEY_PASSPHRASE"] = PASSPHRASE
        args = [
            "build",
            str(tmp_path / "m.yaml"),
            "--out",
            "site",
            "--jobs",
            jobs,
            "--signing-key",
            str(tmp_path / "key.pem"),
        ]
        done = sevref(args, cwd, env)
        assert done.returncode == 0, done.stderr
        site = cwd / "site"
        trees.append({str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()})
    assert trees[0] == trees[1]
    assert json.loads(trees[0]["index.json"])["issued"] == "2026-01-01T00:00:00Z"
    assert "index.dsse.json" in trees[0] and "index.json.sig" in trees[0]
