"""``make bench``: the commands people run directly, timed as whole processes against their references.

* one digest: ``sevref digest`` against sev-snp-measure 0.0.13's command line
  for the same digest (SEV-SNP and SEV-ES, 4 vCPUs, EPYC-Milan, Debian 12's
  OVMF_CODE.fd), median of alternating runs; goal: at most 0.5x.
* ``sevref --version`` and ``--help``: goal under 100 ms; ``sevref verify`` of
  the demo publication (built and signed here): goal under 1 s.
* the batch: ``sevref digest --batch`` over 36,864 lines (24 CPUs x vCPUs
  1-512 x {legacy SEV-ES, init2 SEV-ES, SEV-SNP}), whole process, against the
  hashing floor of its distinct bytes (goal: within 5x) and against
  sev-snp-measure 0.0.13's library time per entry on a sample of the same
  lines, after checking it gives the same digests (goal: at least 200x).

Every process is the installed console script (``.venv/bin/sevref``, the
peer's ``sev-snp-measure`` script) run by this Python, with sevref's bytecode
compiled first as an installation compiles it.
"""

from __future__ import annotations

import compileall
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sevref.binfmt.vmsa import CPU_MODELS
from sevref.digest import Firmware
from tests.conftest import unpack_debian_ovmf

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
PEER = REPO / ".peers" / "0.0.13"
SEVREF = Path(sys.executable).parent / "sevref"
NAMED_CPUS = ["EPYC", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa", "EPYC-Turin"]
HOST_SIGNATURES = [f"0x{0xB10F00 + i:x}" for i in range(19)]
"""Further CPUs given by signature, none of them a named model's (whose VMSA pages would be shared)."""
PROFILES = [
    {"mode": "sev-es", "vmsa_profile": "legacy"},
    {"mode": "sev-es", "vmsa_profile": "init2"},
    {"mode": "sev-snp"},
]


def load() -> str:
    """The machine's load averages and core count, for the record."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def show(label: str, value: str, comparison: str = "", goal: str = "", met: bool | None = None) -> None:
    """Print one figure: what, how much, its ratio to its reference, and its goal."""
    verdict = "" if met is None else ("  met" if met else "  NOT MET")
    print(f"  {label:<40} {value:>12}  {comparison:<44} {goal}{verdict}".rstrip())


def firmware_path() -> Path:
    """Debian 12's OVMF_CODE.fd, obtained and unpacked as the tests do."""
    return unpack_debian_ovmf(CACHE) / "usr" / "share" / "OVMF" / "OVMF_CODE.fd"


def peer_env() -> dict[str, str]:
    """The environment that runs sev-snp-measure 0.0.13 from its own folder."""
    if not (PEER / "sevsnpmeasure").is_dir():
        raise SystemExit("sev-snp-measure 0.0.13 is not installed: run make peers")
    return {**os.environ, "PYTHONPATH": str(PEER)}


def prepare() -> None:
    """Compile sevref's bytecode, as installing it does (the peer's was compiled by pip)."""
    compileall.compile_dir(REPO / "sevref", quiet=1)


def wall(argv: Sequence[str], env: dict[str, str] | None = None, out: Path | None = None) -> float:
    """Seconds one whole process takes."""
    with open(out or os.devnull, "wb") as sink:
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=sink, check=True)
        return time.perf_counter() - start


def medians(commands: dict[str, tuple[list[str], dict[str, str] | None]], runs: int) -> dict[str, float]:
    """The median wall time of each command, the commands run in turn ``runs`` times."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv, env) in commands.items():
            times[name].append(wall(argv, env))
    return {name: statistics.median(values) for name, values in times.items()}


def output(argv: list[str], env: dict[str, str] | None = None) -> str:
    """What a command prints."""
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout.strip()


def one_digest(runs: int) -> None:
    """``sevref digest`` against sev-snp-measure's command line, whole processes, alternating."""
    firmware = str(firmware_path())
    env = peer_env()
    print(f"one digest: Debian 12 OVMF_CODE.fd, EPYC-Milan, 4 vCPUs; median of {runs} alternating runs ({load()})")
    for mode, peer_mode, extra in (("sev-snp", "snp", []), ("sev-es", "seves", ["--vmsa-profile", "init2"])):
        ours = [str(SEVREF), "digest", "--mode", mode, "--firmware", firmware, "--cpu", "EPYC-Milan", "--vcpus", "4"]
        ours += extra
        theirs = [sys.executable, str(PEER / "bin" / "sev-snp-measure"), "--mode", peer_mode, "--vcpus", "4"]
        theirs += ["--vcpu-type", "EPYC-Milan", "--ovmf", firmware]
        if output(ours) != output(theirs, env):
            raise SystemExit(f"sevref and sev-snp-measure disagree on {mode}: {output(ours)} {output(theirs, env)}")
        times = medians({"sevref": (ours, None), "peer": (theirs, env)}, runs)
        ratio = times["sevref"] / times["peer"]
        show(
            f"sevref digest --mode {mode}",
            f"{times['sevref'] * 1e3:.1f} ms",
            f"sev-snp-measure CLI {times['peer'] * 1e3:.1f} ms: {ratio:.2f}x",
            "goal <= 0.5x",
            ratio <= 0.5,
        )


def command_line(runs: int, scratch: Path) -> None:
    """``sevref --version``, ``--help`` and ``verify`` of the demo publication."""
    print(f"command line: median of {runs} runs ({load()})")
    times = medians(
        {
            "python": ([sys.executable, "-c", "pass"], None),
            "version": ([str(SEVREF), "--version"], None),
            "help": ([str(SEVREF), "--help"], None),
        },
        runs,
    )
    show("python -c pass (the interpreter alone)", f"{times['python'] * 1e3:.1f} ms")
    for name in ("version", "help"):
        ratio = times[name] / 0.1
        show(f"sevref --{name}", f"{times[name] * 1e3:.1f} ms", f"{ratio:.2f}x the bound", "goal < 100 ms", ratio < 1)
    argv, files = demo_publication(scratch)
    seconds = medians({"verify": (argv, None)}, max(3, runs // 2))["verify"]
    show(
        f"sevref verify (demo, {files} files)",
        f"{seconds * 1e3:.0f} ms",
        f"{seconds:.2f}x the bound",
        "goal < 1 s",
        seconds < 1,
    )


def demo_publication(scratch: Path) -> tuple[list[str], int]:
    """Build and sign the bundled example publication as ``make demo`` does; return the verify command."""
    env = {**os.environ, "SEVREF_KEY_PASSPHRASE": "bench-key-not-a-secret"}
    key, chain, site = scratch / "key" / "bench", scratch / "key" / "chain", scratch / "demo"
    sevref = str(SEVREF)
    subprocess.run([sevref, "key", "generate", "--out", str(key)], env=env, check=True, capture_output=True)
    signing = ["--signing-key", f"{key}.pem"]
    chained = [sevref, "key", "chain", "--keys", str(chain), "--publisher", "example-cvm", *signing, "--label", "bench"]
    subprocess.run(chained, env=env, check=True, capture_output=True)
    manifests = sorted(str(path) for path in (REPO / "manifests").glob("*.yaml"))
    built = [sevref, "build", *manifests, "--out", str(site), "--cache", str(CACHE), "--issued", "now", *signing]
    subprocess.run([*built, "--keys", str(chain)], env=env, check=True, capture_output=True)
    argv = [sevref, "verify", "--publication", str(site), "--trusted-key", f"{key}.pub"]
    argv += ["--publisher", "example-cvm", "--product", "debian-ovmf", "--stream", "debian"]
    return argv, sum(1 for path in site.rglob("*") if path.is_file())


def batch_lines(firmware: Path) -> list[dict[str, object]]:
    """The 36,864 configurations: 24 CPUs x 3 profiles x vCPUs 1-512."""
    cpus = [("cpu", name) for name in NAMED_CPUS] + [("cpu_signature", sig) for sig in HOST_SIGNATURES]
    return [
        {**profile, "firmware": str(firmware), key: value, "vcpus": vcpus}
        for key, value in cpus
        for profile in PROFILES
        for vcpus in range(1, 513)
    ]


def hashing_floor(firmware: bytes, es_pages: int, snp_groups: int, snp_pages: int) -> float:
    """Seconds to hash what no implementation can avoid hashing, best of three.

    The firmware once (SHA-256, and SHA-384 page by page for SEV-SNP), one
    4 KiB VMSA page per SEV-ES entry, one finished SHA-384 of a 112-byte
    PAGE_INFO per SEV-SNP page measured (the metadata pages of each group and
    one VMSA page per entry) and the two VMSA pages of each SEV-SNP group.
    """
    page = b"\x5a" * 4096
    block = page * 64
    info = bytes(112)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        hashlib.sha256(firmware)
        view = memoryview(firmware)
        for offset in range(0, len(firmware), 4096):
            hashlib.sha384(view[offset : offset + 4096]).digest()
        state = hashlib.sha256()
        for _ in range(es_pages // 64):
            state.update(block)
        state.update(page * (es_pages % 64))
        state.digest()
        for _ in range(snp_pages):
            hashlib.sha384(info).digest()
        for _ in range(2 * snp_groups):
            hashlib.sha384(page).digest()
        best = min(best, time.perf_counter() - start)
    return best


def batch(runs: int, sample: int, scratch: Path) -> None:
    """``sevref digest --batch`` over the 36,864 lines: the hashing floor and sev-snp-measure per entry."""
    firmware = firmware_path()
    configs = batch_lines(firmware)
    path = scratch / "batch.jsonl"
    path.write_text("".join(json.dumps(config) + "\n" for config in configs))
    print(
        f"batch: {len(configs):,} lines (24 CPUs x vCPUs 1-512 x legacy SEV-ES, init2 SEV-ES, SEV-SNP; Debian 12 "
        f"OVMF_CODE.fd), whole process, median of {runs} ({load()})"
    )
    argv = [str(SEVREF), "digest", "--batch", str(path)]
    digests = [json.loads(line)["digest"] for line in output(argv).splitlines()]
    if len(digests) != len(configs):
        raise SystemExit(f"sevref digest --batch gave {len(digests)} lines for {len(configs)}")
    seconds = statistics.median(wall(argv, out=scratch / "batch.out") for _ in range(runs))
    info = Firmware.from_bytes(firmware.read_bytes()).info
    metadata = sum(s.size // 4096 if s.type in (1, 4, 0x10) else 1 for s in info.snp_sections or ())
    snp = [c for c in configs if c["mode"] == "sev-snp"]
    snp_groups = len({c.get("cpu", c.get("cpu_signature")) for c in snp})
    floor = hashing_floor(firmware.read_bytes(), len(configs) - len(snp), snp_groups, snp_groups * metadata + len(snp))
    per_entry = seconds / len(configs)
    peer_seconds = peer_library(configs, digests, sample)
    show(
        "sevref digest --batch",
        f"{seconds:.3f} s",
        f"floor {floor:.3f} s: {seconds / floor:.2f}x",
        "goal <= 5x",
        seconds / floor <= 5,
    )
    show(
        "  per entry",
        f"{per_entry * 1e6:.1f} us",
        f"sev-snp-measure {peer_seconds * 1e3:.2f} ms: {peer_seconds / per_entry:,.0f}x",
        "goal >= 200x",
        peer_seconds / per_entry >= 200,
    )


def peer_library(configs: list[dict[str, object]], digests: list[str], sample: int) -> float:
    """sev-snp-measure 0.0.13's library seconds per entry on a sample of the lines it models (init2, SNP)."""
    rng = random.Random(14)
    chosen = rng.sample([i for i, c in enumerate(configs) if c.get("vmsa_profile") != "legacy"], sample)
    requests = []
    for index in chosen:
        config = configs[index]
        cpu = config.get("cpu")
        signature = CPU_MODELS[str(cpu)].signature if cpu is not None else int(str(config["cpu_signature"]), 16)
        features = 1 if config["mode"] == "sev-snp" else 0
        requests.append(
            {
                "mode": config["mode"],
                "firmware": config["firmware"],
                "vcpus": config["vcpus"],
                "cpu_signature": signature,
                "guest_features": features,
            }
        )
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "peers" / "peer_digest.py")],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        env=peer_env(),
        check=True,
    )
    result = json.loads(done.stdout)
    wrong = [i for i, digest in zip(chosen, result["results"], strict=True) if digest != digests[i]]
    if wrong:
        raise SystemExit(
            f"sev-snp-measure disagrees on {len(wrong)} of {sample} sampled lines, e.g. {configs[wrong[0]]}"
        )
    seconds: float = result["seconds"] / sample
    return seconds
