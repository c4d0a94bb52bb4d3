"""The publishers' CI recipes in docs/ci/, run job by job as GitHub Actions and GitLab CI would (issue 25).

Each recipe is read with PyYAML and its jobs run in the order its ``needs``
(GitHub) or ``stages`` (GitLab) give, which must be build, sign, publish,
verify. Each job runs in a fresh folder of its own, as on a fresh runner,
holding the repository's files: a tiny manifest on the golden publication's
64 KiB firmware (nothing to download), the key chain and the pin file. Every
shell command runs as written, with ``bash -euo pipefail``, but for one
substitution (``PIP_INSTALL``): the line that installs sevref from the package
index is left out, and the virtual environment's sevref is on ``PATH``
instead. What the CI service does by itself is emulated, each in a line or two,
and nothing else: the GitHub actions of ``ACTIONS`` (checkout, artifacts, the
verifier's cache, Pages) and GitLab's artifacts, dotenv reports, cache and
Pages (``run_gitlab``). The variables the recipes name are given as the service
would give them: the publication's URL, the PKCS#11 module and the key's URI
to every job, the PIN only to a job of the ``release`` environment, and the
token (``SOFTHSM2_CONF``) only to a job on the runner labelled ``hsm``.

The key is a P-256 key that ``pkcs11-tool`` made on a SoftHSM2 token
(``tests/test_hsm.py``'s fixture: under ``SEVREF_STRICT=1`` a missing SoftHSM2
fails); the publication is served on 127.0.0.1. A first release is built,
signed on the token, published and verified from its URL; a byte flipped in the
served publication fails the verify stage; a second release names the first
and the verifier's state, cached between runs, takes it; an unsigned artifact
replaced between build and sign is refused by the signing job; and the first
release served again fails the verify stage as a rollback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

import sevref
from sevref.sign import Algorithm
from tests.conftest import REPO, missing, serve
from tests.test_hsm import PIN, SOFTHSM, Token, softhsm

__all__ = ["softhsm"]  # the fixture, used by name

RECIPES = REPO / "docs" / "ci"
FIRMWARE = REPO / "tests" / "golden" / "inputs" / "tiny.fd"
ORDER = ["build", "sign", "publish", "verify"]
IDENTITY = ("example-cvm", "debian-ovmf", "debian")  # the recipes' SEVREF_PUBLISHER, _PRODUCT, _STREAM
SHELL = "bash -euo pipefail {0}"

PIP_INSTALL = re.compile(r'python -m pip install "sevref(\[hsm\])?==\$\{SEVREF_VERSION\}"')
"""The one substitution: this line is left out, and the virtual environment's sevref is on PATH."""

MANIFEST = f"""\
sevref: 1
publication:
  publisher: {{id: example-cvm, name: Example confidential-VM images, contact: security@example.org}}
  product: debian-ovmf
  stream: debian
  release: "ci"
  serial: 1
  valid_for_days: 30
firmware:
  - id: tiny
    source: {{path: tiny.fd, sha256: {hashlib.sha256(FIRMWARE.read_bytes()).hexdigest()}}}
host_stacks:
  - id: qemu9.1-init2
    vmm: qemu
    qemu: {{version: "9.1.2", machine: q35, legacy_vm_type: "off"}}
    host_linux: "6.12"
matrices:
  - id: snp
    modes: [sev-snp]
    firmware: [tiny]
    host_stacks: [qemu9.1-init2]
    cpus: [EPYC-Milan]
    vcpus: [1-2]
    expected:
      sev-snp: {{policy: "0x30000", min_api: "1.51"}}
"""


def load(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((RECIPES / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# ---- the world outside the pipeline: repository, token, web server, the service's stores ----


@dataclass
class World:
    """What outlives one pipeline run."""

    root: Path
    repo: Path  # what a checkout gives
    www: Path  # what the publication's URL serves
    url: str
    token_conf: str  # SOFTHSM2_CONF of the runner with the token
    variables: dict[str, str]  # the project's variables
    secrets: dict[str, str]  # the release environment's secrets
    cache: Path = field(init=False)  # the verifier's cache, kept between runs
    runs: int = 0

    def __post_init__(self) -> None:
        self.cache = self.root / "service-cache"

    def env(self, *, hsm: bool) -> dict[str, str]:
        """A runner's environment: nothing of this process's sevref settings; the token on the HSM runner only."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEVREF_", "SOFTHSM", "GITHUB_", "CI_"))}
        env.pop("VIRTUAL_ENV", None)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
        env["HOME"] = str(self.root / "home")
        if hsm:
            env["SOFTHSM2_CONF"] = self.token_conf
        return env


@dataclass
class Ran:
    """One job's run."""

    job: str
    stage: str
    status: int
    output: str  # its commands' standard output and error, in order
    env: frozenset[str]  # the variables it was given that are not empty
    pip: list[str]  # the install lines left out


def copy(source: Path, target: Path) -> None:
    """Replace ``target`` with a copy of ``source`` (a folder)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def deploy(source: Path, www: Path) -> None:
    """What a Pages deployment does: the served folder's content becomes ``source``'s, whole."""
    for child in www.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(source, www, dirs_exist_ok=True)


def shell(world: World, job: str, script: str, cwd: Path, env: dict[str, str], pip: list[str]) -> tuple[int, str]:
    """Run a job's script as the recipe's shell does, with the one substitution."""
    kept = []
    for line in script.split("\n"):
        if PIP_INSTALL.fullmatch(line.strip()):
            pip.append(line.strip())
        else:
            kept.append(line)
    text = "\n".join(kept)
    assert not re.search(r"\bpip\d?\b", text), f"{job}: an install the test does not substitute: {text}"
    path = world.root / "scripts" / f"{world.runs}-{job}-{len(list((world.root / 'scripts').glob('*')))}.sh"
    path.write_text(text + "\n", encoding="utf-8")
    done = subprocess.run(
        shlex.split(SHELL.replace("{0}", str(path))),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout


# ---- GitHub Actions ----

Hook = Callable[[str, Path], None]


def needs_of(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def github_order(workflow: dict[Any, Any]) -> list[str]:
    """The jobs in the order their needs allow (file order among those that are ready)."""
    jobs: dict[str, Any] = workflow["jobs"]
    done: list[str] = []
    while len(done) < len(jobs):
        ready = [n for n, j in jobs.items() if n not in done and all(d in done for d in needs_of(j))]
        assert ready, f"jobs whose needs never complete: {sorted(set(jobs) - set(done))}"
        done.append(ready[0])
    return done


EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


@dataclass
class Expressions:
    """The ``${{ … }}`` a job's env and outputs may hold, and nothing else."""

    world: World
    job: str
    environment: str | None
    needs: list[str]
    outputs: dict[str, dict[str, str]]  # of the jobs done
    steps: dict[str, dict[str, str]] = field(default_factory=dict)  # of this job's steps done

    def value(self, parts: tuple[str, ...]) -> str:
        match parts:
            case ("vars", variable):
                return self.world.variables[variable]
            case ("secrets", secret):  # an environment's secret: empty in a job of another environment
                return self.world.secrets[secret] if self.environment == "release" else ""
            case ("needs", other, "outputs", output):
                assert other in self.needs, (self.job, other)
                return self.outputs[other][output]
            case ("steps", step, "outputs", output):
                return self.steps[step][output]
        raise AssertionError(f"{self.job}: an expression the test does not emulate: {'.'.join(parts)}")

    def evaluate(self, mapping: dict[str, Any]) -> dict[str, str]:
        return {
            k: EXPRESSION.sub(lambda m: self.value(tuple(m.group(1).split("."))), str(v)) for k, v in mapping.items()
        }


@dataclass
class GitHubJob:
    """A job on its runner: its folder, and what the run around it holds."""

    world: World
    folder: Path
    artifacts: Path  # this run's artifacts, by name


ACTIONS: dict[str, Callable[[GitHubJob, dict[str, str]], object]] = {
    # action: what it does here (its with: inputs)
    "actions/checkout@v4": lambda job, w: shutil.copytree(job.world.repo, job.folder, dirs_exist_ok=True),
    "actions/setup-python@v5": lambda job, w: None,  # the virtual environment's Python is on PATH
    "actions/upload-artifact@v4": lambda job, w: copy(job.folder / w["path"], job.artifacts / w["name"]),
    "actions/download-artifact@v4": lambda job, w: copy(job.artifacts / w["name"], job.folder / w["path"]),
    "actions/cache/restore@v4": lambda job, w: (  # the newest entry (restore-keys), if there is one
        copy(job.world.cache / w["path"], job.folder / w["path"]) if (job.world.cache / w["path"]).exists() else None
    ),
    "actions/cache/save@v4": lambda job, w: copy(job.folder / w["path"], job.world.cache / w["path"]),
    "actions/upload-pages-artifact@v3": lambda job, w: copy(job.folder / w["path"], job.artifacts / "github-pages"),
    "actions/deploy-pages@v4": lambda job, w: deploy(job.artifacts / "github-pages", job.world.www),
}


def run_github(world: World, only: list[str] | None = None, after: Hook | None = None) -> list[Ran]:
    """Run the workflow's jobs (or ``only`` these) in order; stop at the first that fails.

    ``after`` is called after each job that passed with its name and its unsigned artifact, if it uploaded one.
    """
    workflow = load("github-actions.yml")
    world.runs += 1
    run = world.root / f"run-{world.runs}"
    (run / "artifacts").mkdir(parents=True)
    outputs: dict[str, dict[str, str]] = {}
    ran: list[Ran] = []
    for name in github_order(workflow):
        if only is not None and name not in only:
            continue
        job: dict[str, Any] = workflow["jobs"][name]
        environment = job.get("environment")
        environment = environment.get("name") if isinstance(environment, dict) else environment
        expressions = Expressions(world, name, environment, needs_of(job), outputs)
        evaluate = expressions.evaluate
        folder = run / name
        folder.mkdir()
        base = world.env(hsm="hsm" in job["runs-on"]) | evaluate(workflow.get("env", {})) | evaluate(job.get("env", {}))
        here = GitHubJob(world, folder, run / "artifacts")
        status, output = 0, ""
        pip: list[str] = []
        for step in job["steps"]:
            if "uses" in step:
                ACTIONS[step["uses"]](here, step.get("with", {}))
                continue
            files = {
                kind: run / f"{name}-{len(expressions.steps)}-{kind}"
                for kind in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")
            }
            env = base | evaluate(step.get("env", {})) | {kind: str(path) for kind, path in files.items()}
            for path in files.values():
                path.touch()
            status, text = shell(world, name, step["run"], folder, env, pip)
            output += text
            if status != 0:
                break
            lines = files["GITHUB_OUTPUT"].read_text(encoding="utf-8").splitlines()
            expressions.steps[step.get("id", f"step{len(expressions.steps)}")] = dict(x.split("=", 1) for x in lines)
        outputs[name] = evaluate(job.get("outputs", {})) if status == 0 else {}
        ran.append(Ran(name, name, status, output, frozenset(k for k, v in base.items() if v), pip))
        if status != 0:
            break
        if after is not None:
            after(name, run / "artifacts" / "unsigned-site")
    return ran


# ---- GitLab CI ----

KEYWORDS = {"stages", "variables", "default", "workflow", "include", "image", "services", "cache", "before_script"}


def gitlab_jobs(pipeline: dict[Any, Any]) -> list[str]:
    """The jobs in the order of their stages (file order within a stage)."""
    jobs = [name for name in pipeline if name not in KEYWORDS and not str(name).startswith(".")]
    return sorted(jobs, key=lambda name: pipeline["stages"].index(pipeline[name]["stage"]))


def run_gitlab(world: World, only: list[str] | None = None, after: Hook | None = None) -> list[Ran]:
    """Run the pipeline's jobs (or ``only`` these) in stage order; stop at the first that fails.

    ``after`` is called after each job that passed with its name and its artifact's ``site/``.
    """
    pipeline = load("gitlab-ci.yml")
    world.runs += 1
    run = world.root / f"run-{world.runs}"
    run.mkdir()
    artifacts: dict[str, Path] = {}
    dotenv: dict[str, dict[str, str]] = {}
    ran: list[Ran] = []
    order = gitlab_jobs(pipeline)
    for position, name in enumerate(order):
        if only is not None and name not in only:
            continue
        job: dict[str, Any] = pipeline[name]
        folder = run / name
        shutil.copytree(world.repo, folder)  # the runner clones the repository
        # Artifacts and dotenv variables: of the jobs it needs, else of those it names in
        # dependencies, else of every job of an earlier stage.
        sources = job["needs"] if "needs" in job else job.get("dependencies", order[:position])
        env = world.env(hsm="hsm" in job.get("tags", [])) | {k: str(v) for k, v in pipeline["variables"].items()}
        env |= world.variables  # the project's variables, which win over the file's
        if job.get("environment") == "release":  # variables whose environment scope is "release"
            env |= world.secrets
        for source in sources:
            shutil.copytree(artifacts[source], folder, dirs_exist_ok=True)
            env |= dotenv.get(source, {})
        cache = job.get("cache")
        if cache is not None and world.cache.exists():
            shutil.copytree(world.cache, folder, dirs_exist_ok=True)
        pip: list[str] = []
        script = "\n".join([*pipeline.get("before_script", []), *job.get("before_script", []), *job["script"]])
        status, output = shell(world, name, script, folder, env, pip)
        ran.append(Ran(name, job["stage"], status, output, frozenset(k for k, v in env.items() if v), pip))
        if status != 0:
            break
        kept = run / "artifacts" / name
        for path in job.get("artifacts", {}).get("paths", []):
            shutil.copytree(folder / path, kept / path)
        artifacts[name] = kept
        report = job.get("artifacts", {}).get("reports", {}).get("dotenv")
        if report is not None:
            lines = (folder / report).read_text(encoding="utf-8").splitlines()
            dotenv[name] = dict(line.split("=", 1) for line in lines)
        if cache is not None:  # when: on_success
            world.cache.mkdir(exist_ok=True)
            for path in cache["paths"]:
                shutil.copytree(folder / path, world.cache / path, dirs_exist_ok=True)
        if name == "pages":  # GitLab Pages serves the pages job's public/
            deploy(folder / "public", world.www)
        if after is not None:
            after(name, kept / "site")
    return ran


RUNNERS: dict[str, Callable[[World, list[str] | None, Hook | None], list[Ran]]] = {
    "github": run_github,
    "gitlab": run_gitlab,
}
STATE = "verifier-state/state.json"  # in the verifier's cache, as both recipes keep it


# ---- the recipes' structure ----


def test_the_github_workflow_is_a_workflow_of_four_jobs_in_order() -> None:
    workflow = load("github-actions.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(triggers, dict) and {"push", "workflow_dispatch"} <= set(triggers)
    jobs = workflow["jobs"]
    assert isinstance(jobs, dict) and workflow["defaults"]["run"]["shell"] == SHELL
    for name, job in jobs.items():
        assert job["runs-on"] and isinstance(job["steps"], list) and job["steps"], name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), (name, step)
            assert "uses" not in step or step["uses"] in ACTIONS, f"{name}: an action the test does not know: {step}"
            # Expressions only in env (never spliced into a script): the test resolves them there.
            assert "run" not in step or "${{" not in step["run"], (name, step["run"])
    assert github_order(workflow) == ORDER
    assert [needs_of(jobs[name]) for name in ORDER] == [[], ["build"], ["sign"], ["publish"]]
    assert workflow["env"]["SEVREF_VERSION"] == sevref.__version__
    # Only the signing job, on the HSM runner and in the approved environment, reads the PIN.
    sign = jobs["sign"]
    assert sign["environment"] == "release" and "hsm" in sign["runs-on"]
    assert [n for n, j in jobs.items() if "secrets." in json.dumps(j)] == ["sign"]
    assert [n for n, j in jobs.items() if "--pkcs11" in json.dumps(j)] == ["sign"]


def test_the_gitlab_pipeline_has_four_stages_and_its_jobs_are_in_them() -> None:
    pipeline = load("gitlab-ci.yml")
    assert pipeline["stages"] == ORDER
    jobs = gitlab_jobs(pipeline)
    for name in jobs:
        assert pipeline[name]["stage"] in pipeline["stages"], name
        assert isinstance(pipeline[name]["script"], list) and pipeline[name]["script"], name
        for needed in pipeline[name].get("needs", []):  # a job needs jobs of earlier stages only
            assert ORDER.index(pipeline[needed]["stage"]) < ORDER.index(pipeline[name]["stage"]), (name, needed)
    assert [pipeline[name]["stage"] for name in jobs] == ORDER
    assert jobs == ["build", "sign", "pages", "verify"]
    assert [pipeline[n].get("needs") for n in jobs] == [None, ["build"], ["sign"], None]
    assert pipeline["verify"]["dependencies"] == []  # stage order: after the whole publish stage, with nothing of it
    assert pipeline["variables"]["SEVREF_VERSION"] == sevref.__version__
    sign = pipeline["sign"]
    assert (sign["environment"], sign["when"], sign["allow_failure"], sign["tags"]) == (
        "release",
        "manual",
        False,
        ["hsm"],
    )
    assert [n for n in jobs if "--pkcs11" in json.dumps(pipeline[n])] == ["sign"]


def test_the_recipes_name_no_machine_and_no_package_index() -> None:
    # This machine's own folders (the clone, home, temporary files) and any home; no package index's host.
    machine = {f"{REPO.parent.as_posix()}/", f"{Path.home().as_posix()}/", f"{tempfile.gettempdir()}/", "/home/"}
    for path in sorted(RECIPES.iterdir()):
        text = path.read_text(encoding="utf-8")
        assert [folder for folder in sorted(machine) if folder in text] == [], path.name
        assert not re.search(r"pypi|pythonhosted", text), path.name


# ---- the recipes, run ----


@pytest.fixture()
def world(softhsm: Token, tmp_path: Path) -> Iterator[World]:
    """A publisher's repository with a key chain on the token, and an empty web folder served on 127.0.0.1."""
    if shutil.which("curl") is None:
        missing("curl is not installed (the recipes' build step asks the live publication with it)")
    key = softhsm.keys[Algorithm.ECDSA_P256]
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    (repo / "manifests" / "release.yaml").write_text(MANIFEST, encoding="utf-8")
    shutil.copy(FIRMWARE, repo / "manifests" / "tiny.fd")
    # The publisher's one-time set-up (README "Keys on an HSM"): the chain names the token's key; the pin file.
    env = {**os.environ, "SEVREF_PKCS11_MODULE": str(SOFTHSM), "SEVREF_PKCS11_PIN": PIN}
    for argv in (
        ["key", "chain", "--keys", "keys", "--publisher", IDENTITY[0], "--pkcs11", key.uri, "--label", "CI release"],
        ["key", "pin", "--keys", "keys", "--out", "example-cvm.pin"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "sevref", *argv], cwd=repo, env=env, capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr
    (tmp_path / "www").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "home").mkdir()
    with serve(tmp_path / "www") as url:
        yield World(
            root=tmp_path,
            repo=repo,
            www=tmp_path / "www",
            url=url,
            token_conf=str(softhsm.folder / "softhsm2.conf"),
            variables={
                "SEVREF_PUBLICATION_URL": url,
                "SEVREF_PKCS11_MODULE": str(SOFTHSM),
                "SEVREF_PKCS11_URI": key.uri,
            },
            secrets={"SEVREF_PKCS11_PIN": PIN},
        )


def passed(ran: list[Ran], jobs: list[str]) -> str:
    """Every job ran and exited 0; their output, joined."""
    assert [(r.job, r.status) for r in ran] == [(job, 0) for job in jobs], "\n".join(r.output for r in ran)
    return "\n".join(r.output for r in ran)


def served_index(world: World) -> dict[str, Any]:
    data = json.loads((world.www / "index.json").read_bytes())
    assert isinstance(data, dict)
    return data


@pytest.mark.slow  # three pipeline runs and two of the verify job, each sevref a process: 6 to 8 s a recipe
@pytest.mark.parametrize("service", ["github", "gitlab"])
def test_the_recipe_publishes_a_release_a_relying_party_verifies_and_protects_it(world: World, service: str) -> None:
    run = RUNNERS[service]
    jobs = ["build", "sign", "publish", "verify"] if service == "github" else ["build", "sign", "pages", "verify"]
    verify = [jobs[-1]]
    trusted = "trusted: example-cvm debian-ovmf debian release ci serial {}, signed by key "

    # The first release: nothing is served yet.
    first = run(world, None, None)
    passed(first, jobs)
    assert [r.stage for r in first] == ORDER
    assert "yet: this is the first" in first[0].output
    index = served_index(world)
    serial = index["serial"]
    assert index["signing"] is not None and "previous" not in index
    assert trusted.format(serial) in first[-1].output
    assert json.loads((world.cache / STATE).read_bytes())["streams"]["/".join(IDENTITY)]["serial"] == serial
    # sevref came from the virtual environment: each job's one install line was left out, and only that.
    assert [len(r.pip) for r in first] == [1, 1, 1, 1] and "sevref[hsm]" in first[1].pip[0]
    # Only the signing job had the token and its PIN, and nothing printed the PIN.
    assert [r.job for r in first if {"SOFTHSM2_CONF", "SEVREF_PKCS11_PIN"} & r.env] == ["sign"]
    assert {"SOFTHSM2_CONF", "SEVREF_PKCS11_PIN"} <= first[1].env
    assert all(PIN not in r.output for r in first)
    release1 = world.root / "release1"
    shutil.copytree(world.www, release1)

    # A byte flipped in the served publication: the verify stage fails.
    victim = sorted(world.www.glob("groups/*.json"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[:100] + bytes([data[100] ^ 0x01]) + data[101:])
    tampered = run(world, verify, None)
    assert [(r.job, r.status) for r in tampered] == [(verify[0], 3)]
    assert "sevref: not trusted: integrity: " in tampered[0].output and victim.name in tampered[0].output
    victim.write_bytes(data)  # put back (the next build job's diff verifies the live release again)

    # The next release follows the live one, and the verifier's state, kept in the cache, takes it.
    unsigned = world.root / "unsigned-2"

    def keep(job: str, site: Path) -> None:
        if job == "build":
            shutil.copytree(site, unsigned)

    time.sleep(max(0.0, serial + 1 - time.time()))  # the serial is the build's Unix time
    second = run(world, None, keep)
    out = passed(second, jobs)
    following = served_index(world)
    assert following["serial"] > serial
    assert following["previous"] == {
        "serial": serial,
        "sha256": hashlib.sha256((release1 / "index.json").read_bytes()).hexdigest(),
    }
    assert f"follows serial {serial} " in out and f"serial: {serial} -> {following['serial']}" in out
    assert "verified against --keys" in out and "read UNVERIFIED" not in out  # the CI build checked the live release
    assert trusted.format(following["serial"]) in second[-1].output
    state = json.loads((world.cache / STATE).read_bytes())
    assert state["streams"]["/".join(IDENTITY)]["serial"] == following["serial"]

    # The unsigned artifact replaced between build and sign by another consistent build (the last run's,
    # replayed): the signing job refuses it (--index-sha256), and nothing is published.
    def substitute(job: str, site: Path) -> None:
        if job == "build":
            copy(unsigned, site)

    live = (world.www / "index.json").read_bytes()
    time.sleep(max(0.0, following["serial"] + 1 - time.time()))  # so that the build itself would pass
    swapped = run(world, None, substitute)
    assert [(r.job, r.status) for r in swapped] == [("build", 0), ("sign", 1)]
    assert "(--index-sha256): not the publication that was built" in swapped[1].output
    assert (world.www / "index.json").read_bytes() == live

    # A host that serves the first release again: the cached state refuses it.
    deploy(release1, world.www)
    rolled_back = run(world, verify, None)
    assert [(r.job, r.status) for r in rolled_back] == [(verify[0], 3)]
    assert "sevref: not trusted: rollback: " in rolled_back[0].output
