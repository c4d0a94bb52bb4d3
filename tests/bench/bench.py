"""``make bench``: sevref against sev-snp-measure and against the hashing bound, in one run.

Usage: python -m tests.bench.bench [--quick | --parts P,...] [--runs N] [--scale N] [--large N] [--huge N] [--sample N]

Parts (all by default; ``--quick`` runs the first three, a few minutes less):

* ``digest``: one ``sevref digest`` against sev-snp-measure 0.0.13's command
  line (tests/bench/commands.py).
* ``cli``: ``sevref --version``, ``--help``, and ``verify`` of the demo
  publication, built and signed here.
* ``batch``: ``sevref digest --batch`` over 36,864 lines against the hashing
  floor of their distinct bytes and sev-snp-measure's library time per entry.
* ``matrix``: the standard matrix (tests/bench/matrix.py, scale 1: about
  100,000 entries) built with ``sevref build`` in a subprocess (wall time,
  entries/s, peak memory of the whole process tree); sevref's engine alone
  (every group's digests, nothing written); sev-snp-measure 0.0.13's library
  call ``calc_launch_digest`` in its own process on a random sample of the
  same entries (the ones it models: QEMU KVM_SEV_INIT2 launches), after
  checking that it gives the same digests; and the hashing that no
  implementation can avoid: each distinct firmware hashed once (SHA-256, and
  SHA-384 page by page where SEV-SNP needs it), one 4 KiB VMSA page per
  SEV-ES entry, one finished SHA-384 of a 112-byte PAGE_INFO per SEV-SNP page
  measured.
* ``large``: the large matrix (scale 10: about 1,000,000 entries): wall time
  against the hashing bound of the same matrix, peak memory of the process
  tree, bytes written per entry; goal 15 s and 1 GiB.
* ``huge``, only when asked (``--parts huge``; several minutes on 2 cores):
  the same at scale 100, about 10,000,000 entries; goal 150 s and 1 GiB.

Each figure is printed with its ratio to its reference, measured in the same
run, and its goal (issue 14) where it has one, with the machine's load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sevref.digest import Mode, launch_digests
from sevref.pipeline import prepare
from tests.bench import commands
from tests.bench.matrix import write

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, StopIteration, ValueError):
            continue
    return total


def run_build(manifests: list[Path], out: Path, jobs: int | None, *options: str) -> tuple[float, int, str]:
    """Build in a subprocess; return (seconds, peak tree RSS, summary)."""
    command = [sys.executable, "-m", "sevref", "build", *map(str, manifests), "--out", str(out), "--cache", str(CACHE)]
    command += options
    if jobs:
        command += ["--jobs", str(jobs)]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, stderr = process.communicate()
    sampler.join()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"sevref build failed: {stderr.strip()}")
    return seconds, peak, stdout.splitlines()[0]


def engine(manifests: list[Path]) -> tuple[int, float, object]:
    """Compute every digest in-process, nothing written; return (entries, seconds, prepared)."""
    prepared = prepare(manifests, CACHE)
    start = time.perf_counter()
    entries = 0
    for group in prepared.expansion.groups:
        counts = group.vcpus or (1,)
        entries += len(launch_digests(prepared.firmware[group.firmware], group.config, counts))
    return entries, time.perf_counter() - start, prepared


def peer(prepared, sample: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Time sev-snp-measure 0.0.13 on a sample of the entries it models; check its answers."""
    folder = REPO / ".peers" / "0.0.13"
    if not (folder / "sevsnpmeasure").is_dir():
        raise SystemExit("sev-snp-measure 0.0.13 is not installed: run make peers")
    rng = random.Random(1)
    pool = [g for g in prepared.expansion.groups if g.host.legacy_vm_type == "off" and g.config.sev_features in (0, 1)]
    configs, expected = [], []
    with tempfile.TemporaryDirectory() as scratch:
        files: dict[str, str] = {}
        for ident, fw in prepared.firmware.items():
            files[ident] = str(Path(scratch) / f"{ident}.fd")
            Path(files[ident]).write_bytes(fw.data)
        boots: dict[str, str] = {}
        for boot in prepared.manifest.boots.values():
            for name, source in (("kernel", boot.kernel), ("initrd", boot.initrd)):
                if source is not None and source.path is not None:
                    boots[f"{boot.id}-{name}"] = str(source.path)
        for _ in range(sample):
            group = rng.choice(pool)
            vcpus = rng.choice(group.vcpus) if group.vcpus else 1
            config = {"mode": str(group.mode), "firmware": files[group.firmware], "vcpus": vcpus}
            config["cpu_signature"] = group.config.cpu_signature or 0
            config["guest_features"] = group.config.sev_features
            if group.boot is not None:
                config["kernel"] = boots[f"{group.boot.id}-kernel"]
                config["initrd"] = boots.get(f"{group.boot.id}-initrd", "")
                config["cmdline"] = group.cmdline or ""
            configs.append(config)
            expected.append(launch_digests(prepared.firmware[group.firmware], group.config, [vcpus])[vcpus].hex())
        env = {**os.environ, "PYTHONPATH": str(folder)}
        done = subprocess.run(
            [sys.executable, str(REPO / "tests" / "peers" / "peer_digest.py")],
            input=json.dumps(configs),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    result = json.loads(done.stdout)
    wrong = [i for i, (a, b) in enumerate(zip(result["results"], expected, strict=True)) if a != b]
    if wrong:
        raise SystemExit(
            f"sev-snp-measure disagrees on {len(wrong)} of {sample} sampled entries, e.g. {configs[wrong[0]]}"
        )
    return sample, result["seconds"]


def bound(prepared) -> float:  # type: ignore[no-untyped-def]
    """Seconds to hash the bytes no implementation can avoid hashing."""
    groups = prepared.expansion.groups
    snp_firmware = {g.firmware for g in groups if g.mode is Mode.SEV_SNP}
    page = b"\x5a" * 4096
    block = page * 64
    start = time.perf_counter()
    for ident, fw in prepared.firmware.items():
        hashlib.sha256(fw.data)
        if ident in snp_firmware:
            view = memoryview(fw.data)
            for offset in range(0, len(fw.data), 4096):
                hashlib.sha384(view[offset : offset + 4096]).digest()
    es_pages = sum(len(g.vcpus) for g in groups if g.mode is Mode.SEV_ES)
    state = hashlib.sha256()
    for _ in range(es_pages // 64):
        state.update(block)
    state.update(page * (es_pages % 64))
    info = b"\0" * 112
    chain = 0
    for g in groups:
        if g.mode is Mode.SEV_SNP:
            sections = prepared.firmware[g.firmware].info.snp_sections or ()
            chain += sum(s.size // 4096 if s.kind and s.kind.value in (1, 4, 16) else 1 for s in sections) + len(
                g.vcpus
            )
            hashlib.sha384(page).digest()
            hashlib.sha384(page).digest()
    for _ in range(chain):
        hashlib.sha384(info).digest()  # finished: 112 bytes fit one buffer, so without .digest() nothing is hashed
    state.digest()
    return time.perf_counter() - start


def site_stats(folder: Path) -> str:
    """Files, bytes, pages and the largest page of a built publication."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    pages = [p for p in files if p.suffix == ".html"]
    largest = max(pages, key=lambda p: p.stat().st_size)
    return (
        f"{len(files):,} files, {sum(p.stat().st_size for p in files) / 2**20:,.1f} MiB; "
        f"{len(pages):,} pages, largest {largest.relative_to(folder)} ({largest.stat().st_size / 1024:,.1f} KiB), "
        f"home {(folder / 'index.html').stat().st_size / 1024:,.1f} KiB"
    )


PARTS = ("digest", "cli", "batch", "matrix", "large")
OPT_IN = ("huge",)
QUICK = ("digest", "cli", "batch")


def matrix(scale: int, large_scale: int, huge_scale: int, sample: int, parts: set[str]) -> None:
    """The standard matrix (build, engine, peer, bound) and the large build."""
    load = commands.load
    with tempfile.TemporaryDirectory(prefix="sevref-bench-") as scratch:
        if "matrix" in parts:
            print(f"standard matrix ({load()})")
            manifests = write(Path(scratch) / "standard", scale)
            build_seconds, build_peak, summary = run_build(manifests, Path(scratch) / "site", None)
            standard_site = site_stats(Path(scratch) / "site")
            entries, engine_seconds, prepared = engine(manifests)
            sampled, peer_seconds = peer(prepared, sample)
            bound_seconds = bound(prepared)
            report_standard(
                summary,
                standard_site,
                entries,
                (build_seconds, build_peak),
                engine_seconds,
                (sampled, peer_seconds),
                bound_seconds,
            )
        for part, size, goal in (("large", large_scale, 15), ("huge", huge_scale, 150)):
            if part in parts and size:
                large(Path(scratch) / part, size, goal)


GIB = 2**30
"""The goal of the large builds' peak memory, across processes."""


def large(folder: Path, scale: int, goal: float) -> None:
    """Build the matrix at ``scale`` once; print its time, memory and bytes per entry against the goal and the bound."""
    print(f"{'large' if scale <= 10 else 'huge'} matrix, scale {scale} ({commands.load()})")
    manifests = write(folder / "inputs", scale)
    seconds, peak, line = run_build(manifests, folder / "site", None, "--max-entries", str(200_000 * scale))
    print(f"  {line}")
    print(f"  site: {site_stats(folder / 'site')}")
    prepared = prepare(manifests, CACHE, 200_000 * scale)
    entries, bound_seconds = prepared.expansion.entries, bound(prepared)
    size = sum(p.stat().st_size for p in (folder / "site").rglob("*") if p.is_file())
    shutil.rmtree(folder)
    show = commands.show
    show(
        f"sevref build, {entries:,} entries",
        f"{seconds:.1f} s",
        f"{seconds / bound_seconds:.1f}x the bound ({bound_seconds:.2f} s)",
        f"goal <= {goal:.0f} s",
        seconds <= goal,
    )
    show("  entries/s", f"{entries / seconds:,.0f}")
    show(
        "  peak memory (process tree)",
        f"{peak / 2**20:,.0f} MiB",
        f"{peak / GIB:.2f}x 1 GiB",
        "goal < 1 GiB",
        peak < GIB,
    )
    show("  written", f"{size / 2**20:,.0f} MiB", f"{size / entries:.0f} bytes an entry")


def report_standard(  # type: ignore[no-untyped-def]
    summary: str, site: str, entries: int, build, engine_seconds: float, peer_run, bound_seconds: float
) -> None:
    """Print the standard matrix's figures with their ratios."""
    build_seconds, build_peak = build
    sampled, peer_seconds = peer_run
    engine_rate = entries / engine_seconds
    build_rate = entries / build_seconds
    peer_rate = sampled / peer_seconds
    print(f"  {summary}")
    print(f"  site: {site}")
    print(
        f"  sevref build                 {build_seconds:7.2f} s  {build_rate:>12,.0f} entries/s  "
        f"peak {build_peak / 2**20:,.0f} MiB (process tree)"
    )
    print(f"  sevref engine (no writing)   {engine_seconds:7.2f} s  {engine_rate:>12,.0f} entries/s")
    print(
        f"  sev-snp-measure 0.0.13       {peer_seconds:7.2f} s  {peer_rate:>12,.0f} calls/s on {sampled} sampled "
        "entries (same digests)"
    )
    print(f"  hashing bound                {bound_seconds:7.2f} s  (distinct bytes hashed once)")
    print(
        f"  ratios: engine/peer {engine_rate / peer_rate:,.0f}x, build/peer {build_rate / peer_rate:,.0f}x; "
        f"engine {engine_seconds / bound_seconds:.2f}x the bound, build {build_seconds / bound_seconds:.2f}x the bound"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"run only {', '.join(QUICK)}")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS + OPT_IN)}")
    parser.add_argument("--runs", type=int, default=11, help="runs of each timed command (odd: a true median)")
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--large", type=int, default=10, help="scale of the large build (0: skip)")
    parser.add_argument("--huge", type=int, default=100, help="scale of the huge build (part huge, only when asked)")
    parser.add_argument("--sample", type=int, default=300)
    args = parser.parse_args()
    parts = set(QUICK if args.quick else args.parts.split(","))
    if parts - set(PARTS + OPT_IN):
        unknown = sorted(parts - set(PARTS + OPT_IN))[0]
        parser.error(f"unknown part {unknown!r}; expected some of {', '.join(PARTS + OPT_IN)}")
    commands.prepare()
    print(f"sevref bench: {commands.load()}")
    with tempfile.TemporaryDirectory(prefix="sevref-bench-") as scratch:
        if "digest" in parts:
            commands.one_digest(args.runs)
        if "cli" in parts:
            commands.command_line(args.runs, Path(scratch))
        if "batch" in parts:
            commands.batch(max(5, args.runs // 2), args.sample, Path(scratch))
    matrix(args.scale, args.large, args.huge, args.sample, parts)
    print(f"done ({commands.load()})")


if __name__ == "__main__":
    main()
