"""Regenerate ``tests/vectors/known-answers.jsonl`` from the peers (``make vectors`` runs this).

Every expected digest is computed by sev-snp-measure, never by sevref:
0.0.9 for SEV-ES with legacy VMSAs (KVM_SEV_ES_INIT: MXCSR and x87 FCW 0),
0.0.13 for SEV-ES with KVM_SEV_INIT2 VMSAs, SEV-SNP and SEV. Both are the
package ``sevsnpmeasure``, so each runs in its own process with
``.peers/<version>`` on PYTHONPATH (``make peers``), through
``tests/peers/peer_digest.py``. CPU model names are resolved to signatures
with sev-snp-measure 0.0.13's own table.

The configurations are fixed lists (see :func:`configurations`); where a
value is arbitrary (a raw CPU signature, guest features, a firmware prefix)
it is derived from SHAKE-256 of a fixed label, so the output is the same
bytes on every run and machine: one JSON object a line, keys sorted, ASCII.

Usage: ``python -m tests.vectors.make_vectors [--check]`` (``--check`` compares
instead of writing, and fails if the committed file differs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import CACHE, OVMF_DEB, REPO, SYNTHETIC, lay_out_inputs, unpack_debian_ovmf

HERE = Path(__file__).resolve().parent
KNOWN_ANSWERS = HERE / "known-answers.jsonl"
PEERS = REPO / ".peers"
PEER_SCRIPT = REPO / "tests" / "peers" / "peer_digest.py"
TOOL = "sev-snp-measure"
LEGACY, CURRENT = "0.0.9", "0.0.13"
"""The peer versions: 0.0.9 builds legacy VMSAs, 0.0.13 KVM_SEV_INIT2 ones."""
COMPOSED = f"{CURRENT} with {LEGACY}'s AP VMSA"
"""The vectors of QEMU 10.1 and later on the KVM_SEV_INIT2 path (``init2-ap-fpu-zero``), which no peer models:
0.0.13 measures, with its own BSP page (MXCSR 0x1f80, FCW 0x037f) and 0.0.9's AP page (MXCSR and FCW 0)."""

_DEBIAN = "debian/{}_{}_all/".format(*OVMF_DEB[:2])
CODE = _DEBIAN + "usr/share/OVMF/OVMF_CODE.fd"
SECBOOT = _DEBIAN + "usr/share/OVMF/OVMF_CODE.secboot.fd"
CODE_4M = _DEBIAN + "usr/share/OVMF/OVMF_CODE_4M.fd"  # AP reset address 0x808004, no SEV-SNP metadata
UNIFIED = _DEBIAN + "usr/share/ovmf/OVMF.fd"  # code and variable store in one image
AMDSEV = "fixtures/" + next(iter(SYNTHETIC))  # the only image with a kernel-hashes table
FIRMWARE = (CODE, SECBOOT, CODE_4M, UNIFIED, AMDSEV)
SNP_FIRMWARE = (CODE, SECBOOT, UNIFIED, AMDSEV)

BASE_MODELS = ("EPYC", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa", "EPYC-Turin")
VCPUS = (1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 1024, 4096)
SNP_VCPUS = (1, 2, 3, 4, 8, 16, 32, 63, 64, 65, 128, 255, 256, 512)
VCPU_CYCLE = (1, 2, 4, 3, 64, 8, 255, 16, 65)
AP_VCPUS = (1, 2, 3, 4, 8, 64, 255)  # 1: no AP, so the same digest as init2
VMMS = ("qemu", "ec2", "gce")
KERNELS = ("fixtures/kernel.bin", "fixtures/kernel_small.bin", "fixtures/empty.bin")
INITRDS = (None, "fixtures/initrd.bin", "fixtures/empty.bin")
CMDLINES = (
    None,
    "",
    "console=ttyS0 loglevel=7",
    "root=/dev/vda1 ro quiet",
    "console=ttyS0 label=ünïcödé ✓",
    'init=/bin/sh -c "echo \\"quoted\\" \\\\back\\\\slash"\ttab',
    "a" * 1000,
)


def _shake(label: str, size: int) -> bytes:
    return hashlib.shake_256(f"sevref known-answer vectors: {label}".encode()).digest(size)


RAW_SIGNATURES = (
    0x0,  # what -cpu host gives on a host that reports nothing, and the peers' default
    0x1,
    0x800F12,  # EPYC
    0xA00F11,  # EPYC-Milan
    0xA10F11,  # Genoa B1 under -cpu host (QEMU's EPYC-Genoa says 0xa10f10)
    0xA10F12,
    0xB00F21,
    0xFFFFFFFF,
    *(int.from_bytes(_shake(f"cpu signature {i}", 4), "little") for i in range(4)),
)
GUEST_FEATURES = (
    0x1,  # SNPActive
    0x21,  # SNPActive | DebugSwap (host Linux 6.6 and 6.7)
    0x3,
    0x5,
    0x9,
    0x41,
    0x81,
    0x101,
    0x201,
    0x8001,
    *(int.from_bytes(_shake(f"guest features {i}", 8), "little") | 1 for i in range(3)),
)


@dataclass(frozen=True)
class Planned:
    """One vector before its digest is known."""

    group: str
    """The id prefix: the mode, and the VMSA profile for SEV-ES."""
    version: str
    """The sev-snp-measure version that computes it."""
    input: dict[str, Any]
    """The configuration, in ``sevref digest --batch`` keys, paths relative to the inputs' root."""


class PeerError(Exception):
    """A peer is missing, is another version, or failed on a configuration."""


def _boots() -> Iterator[dict[str, Any]]:
    """Every kernel × initrd × command line (63 measured direct boots)."""
    for kernel in KERNELS:
        for initrd in INITRDS:
            for cmdline in CMDLINES:
                boot: dict[str, Any] = {"kernel": kernel}
                if initrd is not None:
                    boot["initrd"] = initrd
                if cmdline is not None:
                    boot["cmdline"] = cmdline
                yield boot


def _cpu(name: str, cpu_sigs: dict[str, int]) -> dict[str, Any]:
    return {"cpu": name, "cpu_signature": f"{cpu_sigs[name]:#x}"}


def configurations(cpu_sigs: dict[str, int]) -> list[Planned]:
    """Every configuration, in output order, each once.

    Args:
        cpu_sigs: sev-snp-measure 0.0.13's CPU table (name to signature).

    Returns:
        The planned vectors.
    """
    names = sorted(cpu_sigs)
    planned: list[Planned] = []

    # SEV (0.0.13): the firmware alone, then every measured direct boot on the synthetic image.
    for firmware in FIRMWARE:
        planned.append(Planned("sev", CURRENT, {"mode": "sev", "firmware": firmware}))
    for boot in _boots():
        planned.append(Planned("sev", CURRENT, {"mode": "sev", "firmware": AMDSEV, **boot}))

    # SEV-ES, the same configurations with each VMSA profile.
    for profile, version in (("legacy", LEGACY), ("init2", CURRENT)):
        group = f"sev-es-{profile}"
        es = {"mode": "sev-es", "vmm": "qemu", "vmsa_profile": profile}
        for i, firmware in enumerate(FIRMWARE):
            for j, name in enumerate(names):
                vcpus = VCPU_CYCLE[(i + j) % len(VCPU_CYCLE)]
                planned.append(
                    Planned(group, version, {**es, "firmware": firmware, "vcpus": vcpus, **_cpu(name, cpu_sigs)})
                )
        for firmware in FIRMWARE:
            for k, vcpus in enumerate(VCPUS):
                cpu = _cpu(BASE_MODELS[k % len(BASE_MODELS)], cpu_sigs)
                planned.append(Planned(group, version, {**es, "firmware": firmware, "vcpus": vcpus, **cpu}))
        for firmware in (CODE, CODE_4M, AMDSEV):
            for k, signature in enumerate(RAW_SIGNATURES):
                config = {**es, "firmware": firmware, "vcpus": (1, 2, 4)[k % 3], "cpu_signature": f"{signature:#x}"}
                planned.append(Planned(group, version, config))
        for k, boot in enumerate(_boots()):
            cpu = _cpu(BASE_MODELS[k % len(BASE_MODELS)], cpu_sigs)
            config = {**es, "firmware": AMDSEV, "vcpus": VCPU_CYCLE[k % len(VCPU_CYCLE)], **cpu, **boot}
            planned.append(Planned(group, version, config))

    # SEV-SNP (0.0.13).
    def snp(firmware: str, vmm: str, vcpus: int, features: int = 0x1, **more: Any) -> Planned:
        config = {
            "mode": "sev-snp",
            "firmware": firmware,
            "vmm": vmm,
            "vcpus": vcpus,
            "guest_features": f"{features:#x}",
        }
        return Planned("sev-snp", CURRENT, {**config, **more})

    for i, firmware in enumerate(SNP_FIRMWARE):
        for j, name in enumerate(names):
            planned.append(snp(firmware, "qemu", VCPU_CYCLE[(i + j) % len(VCPU_CYCLE)], **_cpu(name, cpu_sigs)))
    for firmware in SNP_FIRMWARE:
        for vmm in VMMS:
            for k, vcpus in enumerate(SNP_VCPUS):
                cpu = _cpu(BASE_MODELS[k % len(BASE_MODELS)], cpu_sigs) if vmm == "qemu" else {}
                planned.append(snp(firmware, vmm, vcpus, **cpu))
    for firmware in (CODE, AMDSEV):
        for k, features in enumerate(GUEST_FEATURES):
            vmm = VMMS[k % len(VMMS)]
            cpu = _cpu(BASE_MODELS[k % len(BASE_MODELS)], cpu_sigs) if vmm == "qemu" else {}
            planned.append(snp(firmware, vmm, (1, 2, 4, 64)[k % 4], features, **cpu))
        for k, signature in enumerate(RAW_SIGNATURES):
            planned.append(snp(firmware, "qemu", (1, 2, 4)[k % 3], cpu_signature=f"{signature:#x}"))
    for k, boot in enumerate(_boots()):
        vmm = VMMS[k % len(VMMS)]
        cpu = _cpu(BASE_MODELS[k % len(BASE_MODELS)], cpu_sigs) if vmm == "qemu" else {}
        planned.append(snp(AMDSEV, vmm, VCPU_CYCLE[k % len(VCPU_CYCLE)], **cpu, **boot))
    for firmware in (CODE, AMDSEV):
        for k, vmm in enumerate(VMMS):
            cpu = _cpu("EPYC-Milan", cpu_sigs) if vmm == "qemu" else {}
            prefix = _shake(f"firmware prefix {firmware} {vmm}", 48).hex()
            boot = {"kernel": KERNELS[0], "initrd": INITRDS[1], "cmdline": CMDLINES[2]} if firmware == AMDSEV else {}
            planned.append(snp(firmware, vmm, (1, 4, 64)[k], firmware_prefix=prefix, **cpu, **boot))

    # QEMU 10.1 and later on the KVM_SEV_INIT2 path: the APs' FPU 0 (COMPOSED), SEV-SNP and SEV-ES.
    for mode, images in (("sev-snp", SNP_FIRMWARE), ("sev-es", FIRMWARE)):
        group = f"{mode}-ap-fpu-zero"
        base: dict[str, Any] = {"mode": mode, "vmm": "qemu", "vmsa_profile": "init2-ap-fpu-zero"}
        if mode == "sev-snp":
            base["guest_features"] = "0x1"
        for i, firmware in enumerate(images):
            for j, name in enumerate(BASE_MODELS):
                vcpus = AP_VCPUS[(i + j) % len(AP_VCPUS)]
                planned.append(
                    Planned(group, COMPOSED, {**base, "firmware": firmware, "vcpus": vcpus, **_cpu(name, cpu_sigs)})
                )
        for k, boot in enumerate(list(_boots())[::9]):
            cpu = _cpu(BASE_MODELS[k % len(BASE_MODELS)], cpu_sigs)
            config = {**base, "firmware": AMDSEV, "vcpus": AP_VCPUS[k % len(AP_VCPUS)], **cpu, **boot}
            planned.append(Planned(group, COMPOSED, config))

    # The SEV-SNP digest over the firmware pages alone (what a firmware_prefix holds).
    for firmware in FIRMWARE:
        planned.append(Planned("sev-snp-firmware", CURRENT, {"mode": "sev-snp-firmware", "firmware": firmware}))

    # Where two sweeps meet in one configuration, keep its first vector.
    seen: set[str] = set()
    unique = []
    for plan in planned:
        key = json.dumps(plan.input, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(plan)
    return unique


def run_peer(version: str, configs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Run sev-snp-measure ``version`` over ``configs`` (the peer script's terms) in its own process.

    Args:
        version: "0.0.9" or "0.0.13", installed in ``.peers/<version>``.
        configs: configurations with absolute paths and integer signatures and features.

    Returns:
        The peer script's answer: ``results``, ``cpu_sigs``, ``version``, ``seconds``.

    Raises:
        PeerError: the peer is not installed or reports another version.
    """
    folder = PEERS / version
    if not (folder / "sevsnpmeasure").is_dir():
        raise PeerError(f"sev-snp-measure {version} is not installed in .peers/{version} (run make peers)")
    env = {**os.environ, "PYTHONPATH": str(folder)}
    done = subprocess.run(
        [sys.executable, str(PEER_SCRIPT)],
        input=json.dumps(list(configs)),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    if answer["version"] != version:
        raise PeerError(f".peers/{version} holds sev-snp-measure {answer['version']}; expected {version}")
    return answer


def compose(configs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The configurations of QEMU 10.1's rule in the peer's terms: 0.0.13's BSP page, 0.0.9's AP page.

    0.0.9's AP page is 0.0.13's with MXCSR and x87 FCW 0, the only fields the
    rule changes (checked here for every configuration, so that the pages the
    peer measures differ in nothing else).

    Args:
        configs: configurations in the peer's terms.

    Returns:
        The same, each with ``vmsa_pages`` for 0.0.13 to measure.

    Raises:
        PeerError: a peer failed, or 0.0.9's AP page differs from 0.0.13's elsewhere.
    """
    dumps = [{**config, "dump_vmsa": True} for config in configs]
    current, legacy = (run_peer(version, dumps)["results"] for version in (CURRENT, LEGACY))
    composed = []
    for config, (bsp, ap_current), (_, ap_legacy) in zip(configs, current, legacy, strict=True):
        new, old = bytes.fromhex(ap_current), bytes.fromhex(ap_legacy)
        differ = {i for i in range(len(new)) if new[i] != old[i]}
        if (
            not differ <= set(range(0x408, 0x40C)) | set(range(0x410, 0x412))
            or int.from_bytes(old[0x408:0x40C], "little")
            or int.from_bytes(old[0x410:0x412], "little")
        ):
            raise PeerError(f"0.0.9's AP VMSA differs from 0.0.13's beyond MXCSR and FCW for {config}")
        composed.append({**config, "vmsa_pages": [bsp, ap_legacy]})
    return composed


def for_peer(config: dict[str, Any], root: Path) -> dict[str, Any]:
    """A batch configuration in the peer script's terms: absolute paths, integers."""
    result = {key: value for key, value in config.items() if key not in ("cpu", "vmsa_profile", "firmware_sha256")}
    for key in ("firmware", "kernel", "initrd"):
        if key in result:
            result[key] = str(root / result[key])
    for key in ("cpu_signature", "guest_features"):
        if key in result:
            result[key] = int(result[key], 16)
    return result


def _files(config: dict[str, Any], sha256: dict[str, str]) -> dict[str, str]:
    return {config[key]: sha256[config[key]] for key in ("firmware", "kernel", "initrd") if key in config}


def generate(root: Path) -> bytes:
    """Compute every vector with the peers.

    Args:
        root: the inputs, laid out by :func:`tests.conftest.lay_out_inputs`.

    Returns:
        The contents of ``known-answers.jsonl``.

    Raises:
        PeerError: a peer is missing or failed on a configuration.
    """
    cpu_sigs = run_peer(CURRENT, [])["cpu_sigs"]
    planned = configurations(cpu_sigs)
    paths = {p.input[k] for p in planned for k in ("firmware", "kernel", "initrd") if k in p.input}
    sha256 = {path: hashlib.sha256((root / path).read_bytes()).hexdigest() for path in sorted(paths)}
    digests: list[str] = [""] * len(planned)
    for version in (LEGACY, CURRENT, COMPOSED):
        mine = [i for i, p in enumerate(planned) if p.version == version]
        configs = [for_peer(planned[i].input, root) for i in mine]
        if version == COMPOSED:
            configs = compose(configs)
        results = run_peer(CURRENT if version == COMPOSED else version, configs)["results"]
        for i, result in zip(mine, results, strict=True):
            if not isinstance(result, str):
                raise PeerError(f"sev-snp-measure {version} failed on {planned[i].input}: {result['error']}")
            digests[i] = result
    lines = []
    counters: dict[str, int] = {}
    for plan, digest in zip(planned, digests, strict=True):
        counters[plan.group] = counters.get(plan.group, 0) + 1
        given = {**plan.input, "firmware_sha256": sha256[plan.input["firmware"]]}
        vector = {
            "id": f"{plan.group}-{counters[plan.group]:04d}",
            "input": given,
            "expected": {"digest": digest},
            "source": {"tool": TOOL, "version": plan.version, "files": _files(plan.input, sha256)},
        }
        lines.append(json.dumps(vector, sort_keys=True) + "\n")
    return "".join(lines).encode("ascii")


def load(path: Path = KNOWN_ANSWERS) -> list[dict[str, Any]]:
    """The committed vectors, one dictionary each."""
    return [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]


def main(argv: list[str] | None = None) -> int:
    """Regenerate the vectors, or with ``--check`` compare them with the committed file.

    Args:
        argv: the arguments (default: the command line).

    Returns:
        The exit code: 0, or 1 when ``--check`` finds a difference.
    """
    parser = argparse.ArgumentParser(prog="python -m tests.vectors.make_vectors", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs; write nothing")
    parser.add_argument("--out", type=Path, default=KNOWN_ANSWERS, help="where to write (default: the committed file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        data = generate(lay_out_inputs(Path(folder), unpack_debian_ovmf(CACHE)))
    count = data.count(b"\n")
    if args.check:
        if args.out.read_bytes() != data:
            print(f"{args.out}: differs from the {count} vectors the peers give now", file=sys.stderr)
            return 1
        print(f"{args.out}: {count} vectors, as the peers give them")
        return 0
    args.out.write_bytes(data)
    print(f"wrote {count} vectors to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
