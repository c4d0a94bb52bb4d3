"""Host-stack knowledge (sevref/hosts.py): every rule, valid and invalid, through the manifest reader and expansion.

Each case is a one-host-stack manifest read and expanded as ``sevref validate``
does; an invalid case names the fragment its one-line error must contain. The
rules and their sources are in sevref/hosts.py and docs/host-stacks.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from sevref import _cli
from sevref.binfmt.ovmf import parse_ovmf
from sevref.binfmt.vmsa import CPU_MODELS, EC2_LEGACY_RDX, EC2_RDX, Vmm, VmsaProfile
from sevref.digest import Firmware, LaunchConfig, Mode, launch_digest
from sevref.errors import ConfigError, ManifestError
from sevref.expand import Expansion, expand
from sevref.hosts import (
    CPU_MODEL_SINCE,
    DEBUG_SWAP,
    LINUX_SINCE,
    MAX_VCPUS,
    NEWEST_QEMU,
    QEMU_SINCE,
    DebugSwap,
    QemuFix,
    debian_qemu_fixes,
    debug_swap,
)
from sevref.manifest.loader import parse_yaml
from sevref.manifest.reader import load_manifests
from sevref.values import Version
from tests.conftest import CACHE, REPO
from tests.images import snp_image
from tests.test_peers import run_peer

TINY = REPO / "tests" / "golden" / "inputs" / "tiny.fd"  # SEV-SNP metadata and a kernel-hashes area

BASE = """\
sevref: 1
publication:
  publisher: {id: t, name: test, contact: t@example.org}
  product: p
  stream: s
  release: "1"
  serial: 1
firmware:
  - {id: fw, source: {path: fw.fd, sha256: @FWSHA@}}
host_stacks:
  - {id: h, @HOST@}
boots:
  - {id: direct, kernel: {path: vmlinuz, sha256: @KSHA@}@BOOTEXTRA@}
matrices:
  - id: m
    modes: @MODES@
    firmware: [fw]
    host_stacks: [h]
    cpus: @CPUS@
    vcpus: @VCPUS@
    boots: @BOOTS@
    expected: @EXPECTED@
"""


@dataclass(frozen=True)
class Case:
    """One host stack and the launches a matrix asks of it."""

    host: str
    """The host stack's keys, as the inside of a YAML flow mapping."""
    error: str | None = None
    """A fragment of the error, or None when the manifest is valid."""
    modes: str = "[sev-es]"
    cpus: str = "[EPYC]"
    vcpus: str = "[1-2]"
    boots: str = "[null]"
    boot_extra: str = ""


def text_of(case: Case) -> str:
    """The case's manifest."""
    replacements = {
        "@HOST@": case.host,
        "@MODES@": case.modes,
        "@CPUS@": case.cpus,
        "@VCPUS@": case.vcpus,
        "@BOOTS@": case.boots,
        "@BOOTEXTRA@": case.boot_extra,
        "@EXPECTED@": "{" + ", ".join(f"{m.strip()}: {{policy: any}}" for m in case.modes.strip("[]").split(",")) + "}",
        "@FWSHA@": hashlib.sha256(TINY.read_bytes()).hexdigest(),
        "@KSHA@": "ab" * 32,
    }
    text = BASE
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text


SECTIONS_TINY = [(0x800000, 0x2000, 1), (0x802000, 0x1000, 2), (0x803000, 0x1000, 3), (0x804000, 0x1000, 0x10)]
"""tiny.fd's SEV-SNP metadata sections (tests/golden/make_inputs.py), for images of other sizes."""


def check(text: str, image: bytes | None = None) -> Expansion:
    """Read and expand a manifest the way ``sevref validate`` does (the firmware is tiny.fd, or ``image``)."""
    document = parse_yaml(text.encode("utf-8"), "m.yaml", Path("."))
    return expand(
        load_manifests([document]), {"fw": parse_ovmf(TINY.read_bytes() if image is None else image)}, found={}
    )


Q72 = 'vmm: qemu, qemu: {version: "7.2", machine: pc-q35-7.2}'
Q80 = 'vmm: qemu, qemu: {version: "8.0", machine: pc-q35-8.0}'
Q81 = 'vmm: qemu, qemu: {version: "8.1", machine: pc-q35-8.1}'
Q91 = 'vmm: qemu, qemu: {version: "9.1", machine: pc-q35-9.1}'
Q100 = 'vmm: qemu, qemu: {version: "10.0", machine: pc-q35-10.0}'
Q101 = 'vmm: qemu, qemu: {version: "10.1", machine: pc-q35-10.1}'
INIT2 = 'vmm: qemu, qemu: {version: "9.1", machine: pc-q35-9.1, legacy_vm_type: "off"}'
TURIN_ADDED = "cpu EPYC-Turin: QEMU {} does not have this CPU model (QEMU 10.1 added it)"

CASES = {
    # CPU models by QEMU release (target/i386/cpu.c, CPU_MODEL_SINCE).
    "EPYC-Turin on QEMU 7.2": Case(Q72, TURIN_ADDED.format("7.2"), cpus="[EPYC-Turin]"),
    "EPYC-Turin on QEMU 9.1": Case(Q91, TURIN_ADDED.format("9.1"), cpus="[EPYC-Turin]"),
    "EPYC-Turin on QEMU 10.0": Case(Q100, TURIN_ADDED.format("10.0"), cpus="[EPYC-Turin]"),
    "EPYC-Turin on QEMU 10.1": Case(Q101, cpus="[EPYC-Turin]"),
    "EPYC-Turin SEV-SNP on QEMU 9.1": Case(
        INIT2 + ', host_linux: "6.11"', TURIN_ADDED.format("9.1"), modes="[sev-snp]", cpus="[EPYC-Turin]"
    ),
    "EPYC-Genoa on QEMU 8.0": Case(
        Q80, "cpu EPYC-Genoa: QEMU 8.0 does not have this CPU model (QEMU 8.1 added it)", cpus="[EPYC-Genoa]"
    ),
    "EPYC-Genoa on QEMU 8.1": Case(Q81, cpus="[EPYC-Genoa]"),
    "EPYC-Genoa on QEMU 7.2": Case(Q72, "QEMU 8.1 added it", cpus="[EPYC-Genoa]"),
    "EPYC-v4 on QEMU 8.0": Case(Q80, "cpu EPYC-v4: QEMU 8.0 does not have", cpus="[EPYC-v4]"),
    "EPYC-Rome-v4 on QEMU 8.1": Case(Q81, cpus="[EPYC-Rome-v4]"),
    "EPYC-Milan-v3 on QEMU 10.0": Case(Q100, "QEMU 10.1 added it", cpus="[EPYC-Milan-v3]"),
    "EPYC-Genoa-v2 on QEMU 10.1": Case(Q101, cpus="[EPYC-Genoa-v2]"),
    "EPYC-Rome-v2 on QEMU 6.0": Case('vmm: qemu, qemu: {version: "6.0", machine: pc-q35-6.0}', cpus="[EPYC-Rome-v2]"),
    "a bare signature is -cpu host": Case(Q72, cpus='["0xb00f00"]'),
    "SEV measures no CPU": Case(Q72, modes="[sev]", cpus="[EPYC-Turin]"),
    # Minimum QEMU per feature (QEMU_SINCE).
    "SEV-ES on QEMU 5.2": Case(
        'vmm: qemu, qemu: {version: "5.2", machine: pc-q35-5.2}',
        "mode sev-es: QEMU 5.2 cannot launch SEV-ES guests (added in 6.0)",
    ),
    "SEV on QEMU 5.2": Case('vmm: qemu, qemu: {version: "5.2", machine: pc-q35-5.2}', modes="[sev]"),
    "SEV-ES on QEMU 6.0": Case('vmm: qemu, qemu: {version: "6.0", machine: pc-q35-6.0}'),
    "kernel hashes on QEMU 6.1": Case(
        'vmm: qemu, qemu: {version: "6.1", machine: pc-q35-6.1}',
        "kernel hashes: QEMU 6.1 has no kernel-hashes=on (added in 6.2)",
        boots="[direct]",
    ),
    "kernel hashes on QEMU 6.2": Case('vmm: qemu, qemu: {version: "6.2", machine: pc-q35-6.2}', boots="[direct]"),
    "SEV-SNP on QEMU 9.0": Case(
        'vmm: qemu, qemu: {version: "9.0", machine: pc-q35-9.0}',
        "QEMU 9.0 cannot launch SEV-SNP guests (added in 9.1)",
        modes="[sev-snp]",
    ),
    "SEV-SNP on Linux 6.10": Case(
        INIT2 + ', host_linux: "6.10"', "host Linux 6.10 cannot run SEV-SNP guests (added in 6.11", modes="[sev-snp]"
    ),
    "SEV-SNP on QEMU 9.1 and Linux 6.11": Case(INIT2 + ', host_linux: "6.11"', modes="[sev-snp]"),
    "KVM_SEV_INIT2 on Linux 6.9": Case(
        INIT2 + ', host_linux: "6.9"', "needs KVM_SEV_INIT2, which host Linux 6.9 lacks"
    ),
    "vmsa_profile init2 on Linux 6.9": Case(
        'vmm: qemu, vmsa_profile: init2, host_linux: "6.9"', "vmsa_profile init2: needs KVM_SEV_INIT2"
    ),
    # DebugSwap (SEV_FEATURES bit 5) by host kernel (DEBUG_SWAP).
    "0x20 on Linux 6.1": Case(
        Q72 + ', host_linux: "6.1", sev_features: "0x20"',
        "sev_features 0x20: host Linux 6.1 has no DebugSwap (added in 6.6",
    ),
    "0x20 with the legacy profile on Linux 6.12": Case(
        Q91 + ', host_linux: "6.12", sev_features: "0x20"',
        "with the legacy KVM_SEV_ES_INIT, host Linux 6.12 never sets DebugSwap",
    ),
    "0x20 with a stated legacy profile on Linux 6.10": Case(
        'vmm: qemu, vmsa_profile: legacy, host_linux: "6.10", sev_features: "0x20"', "never sets DebugSwap"
    ),
    "0x20 with QEMU 9.1's KVM_SEV_INIT2": Case(
        INIT2 + ', host_linux: "6.12", sev_features: "0x20"',
        "QEMU 9.1 passes no VMSA features to KVM_SEV_INIT2",
    ),
    "0x20 with init2 from an unnamed VMM": Case(
        'vmm: qemu, vmsa_profile: init2, host_linux: "6.12", sev_features: "0x20"'
    ),
    "Linux 6.6.30 without sev_features": Case(Q91 + ', host_linux: "6.6.30"'),
    "Linux 6.6.10 without sev_features": Case(
        Q91 + ', host_linux: "6.6.10"', "host Linux 6.6.10 may set DebugSwap: 6.6.0-6.6.23 and 6.7.0-6.7.11"
    ),
    "Linux 6.6 without its stable release": Case(Q91 + ', host_linux: "6.6"', "or give the stable release"),
    "Linux 6.6.10 with 0x20": Case(Q91 + ', host_linux: "6.6.10", sev_features: "0x20"'),
    "Linux 6.6.10 with 0x0": Case(Q91 + ', host_linux: "6.6.10", sev_features: "0x0"'),
    "Linux 6.7.11 without sev_features": Case(Q91 + ', host_linux: "6.7.11"', "state sev_features (0x0 or 0x20)"),
    "Linux 6.7.12 without sev_features": Case(Q91 + ', host_linux: "6.7.12"'),
    "Linux 6.8 without sev_features": Case(Q91 + ', host_linux: "6.8"'),
    "Linux 6.9 with kvm_amd.debug_swap=1": Case(Q91 + ', host_linux: "6.9", sev_features: "0x20"'),
    "Linux 6.5 without sev_features": Case(Q91 + ', host_linux: "6.5"'),
    # vCPU limits by machine type (MAX_VCPUS).
    "289 vCPUs on pc-q35-8.0": Case(Q80, "machine pc-q35-8.0 allows at most 288 vCPUs", vcpus="[1, 289]"),
    "288 vCPUs on pc-q35-8.0": Case(Q80, vcpus="[288]"),
    "1024 vCPUs on pc-q35-8.1": Case(Q81, vcpus="[1024]"),
    "1025 vCPUs on pc-q35-8.2": Case(
        'vmm: qemu, qemu: {version: "9.1", machine: pc-q35-8.2}', "allows at most 1024 vCPUs", vcpus="[1025]"
    ),
    "4096 vCPUs on pc-q35-9.0": Case('vmm: qemu, qemu: {version: "9.0", machine: pc-q35-9.0}', vcpus="[4096]"),
    "289 vCPUs on the q35 alias of QEMU 8.0": Case(
        'vmm: qemu, qemu: {version: "8.0", machine: q35}', "machine q35 allows at most 288", vcpus="[289]"
    ),
    "256 vCPUs on pc-i440fx-9.1": Case(
        'vmm: qemu, qemu: {version: "9.1", machine: pc-i440fx-9.1}', "allows at most 255 vCPUs", vcpus="[256]"
    ),
    "256 vCPUs on pc-q35-2.7": Case(
        'vmm: qemu, qemu: {version: "6.0", machine: pc-q35-2.7}', "allows at most 255 vCPUs", vcpus="[256]"
    ),
    "SEV has no vCPU count": Case('vmm: qemu, qemu: {version: "9.1", machine: pc}', modes="[sev]", vcpus="[4096]"),
    # QEMU 10.2 is in the table (its sev_init2_required() is 10.1's); newer QEMU: the profile must be stated.
    "QEMU 10.2 SEV-ES with the default legacy-vm-type": Case('vmm: qemu, qemu: {version: "10.2", machine: q35}'),
    "QEMU 10.2 SEV-ES with a stated legacy profile": Case(
        'vmm: qemu, qemu: {version: "10.2", machine: q35}, vmsa_profile: legacy'
    ),
    "QEMU 10.2 stating init2 for auto": Case(
        'vmm: qemu, qemu: {version: "10.2", machine: q35}, vmsa_profile: init2',
        "vmsa_profile init2: contradicts QEMU 10.2 with legacy_vm_type auto, which produces legacy for SEV-ES",
    ),
    "QEMU 10.1 stating init2 for legacy-vm-type off": Case(
        'vmm: qemu, qemu: {version: "10.1", machine: q35, legacy_vm_type: "off"}, vmsa_profile: init2'
    ),
    "QEMU 10.1 stating init2-ap-fpu-zero": Case(
        'vmm: qemu, qemu: {version: "10.1", machine: q35, legacy_vm_type: "off"}, vmsa_profile: init2-ap-fpu-zero',
        "vmsa_profile init2-ap-fpu-zero: contradicts QEMU 10.1 with legacy_vm_type off, which produces init2 for "
        "SEV-ES",
    ),
    "QEMU 11.0 SEV-ES": Case(
        'vmm: qemu, qemu: {version: "11.0", machine: q35}',
        "QEMU 11.0 is newer than 10.2, the newest release whose choice between KVM_SEV_ES_INIT and KVM_SEV_INIT2",
    ),
    "QEMU 11.0 SEV-SNP": Case(
        'vmm: qemu, qemu: {version: "11.0", machine: q35}, host_linux: "6.12"',
        "mode sev-snp: SEV-SNP always uses KVM_SEV_INIT2 and QEMU 11.0 is newer than 10.2, the newest release "
        "whose APs' state sevref knows; state vmsa_profile init2",
        modes="[sev-snp]",
    ),
    "QEMU 11.0 SEV-SNP stating legacy": Case(
        'vmm: qemu, qemu: {version: "11.0", machine: q35}, host_linux: "6.12", vmsa_profile: legacy',
        "found vmsa_profile legacy",
        modes="[sev-snp]",
    ),
    "QEMU 11.0 SEV-SNP with a stated profile": Case(
        'vmm: qemu, qemu: {version: "11.0", machine: q35}, host_linux: "6.12", vmsa_profile: init2-ap-fpu-zero',
        modes="[sev-snp]",
    ),
    "QEMU 11.0 with init2 and 0x20": Case(
        'vmm: qemu, qemu: {version: "11.0", machine: q35}, vmsa_profile: init2, host_linux: "6.12", '
        'sev_features: "0x20"'
    ),
    "init2-ap-fpu-zero on Linux 6.9": Case(
        'vmm: qemu, vmsa_profile: init2-ap-fpu-zero, host_linux: "6.9"',
        "vmsa_profile init2-ap-fpu-zero: needs KVM_SEV_INIT2, which host Linux 6.9 lacks (added in 6.10",
    ),
    # SEV-ES needs KVM's SEV-ES support: Linux 5.11 (LINUX_SINCE).
    "SEV-ES on Linux 5.10": Case(
        Q72 + ', host_linux: "5.10"', "mode sev-es: host Linux 5.10 cannot run SEV-ES guests (added in 5.11"
    ),
    "SEV-ES on Linux 5.11": Case(Q72 + ', host_linux: "5.11"'),
    "SEV on Linux 5.10": Case(Q72 + ', host_linux: "5.10"', modes="[sev]"),
    # Machine types QEMU no longer registers, or does not have yet (MACHINE_DELETION).
    "pc-q35-4.1 on QEMU 10.1": Case(
        'vmm: qemu, qemu: {version: "10.1", machine: pc-q35-4.1}', "QEMU 10.1 no longer registers it"
    ),
    "pc-q35-4.2 on QEMU 10.1": Case('vmm: qemu, qemu: {version: "10.1", machine: pc-q35-4.2}'),
    "pc-q35-4.0 on QEMU 10.0": Case('vmm: qemu, qemu: {version: "10.0", machine: pc-q35-4.0}'),
    "pc-q35-2.4 on QEMU 10.0": Case('vmm: qemu, qemu: {version: "10.0", machine: pc-q35-2.4}'),
    "pc-q35-2.3 on QEMU 7.2": Case(
        Q72.replace("pc-q35-7.2", "pc-q35-2.3"), "qemu machine pc-q35-2.3: QEMU 7.2 no longer has it (its oldest"
    ),
    "pc-i440fx-2.3 on QEMU 9.1": Case(
        'vmm: qemu, qemu: {version: "9.1", machine: pc-i440fx-2.3}', "(its oldest pc-i440fx is 2.4: pc-i440fx-2.0"
    ),
    "pc-i440fx-2.3 on QEMU 9.0": Case('vmm: qemu, qemu: {version: "9.0", machine: pc-i440fx-2.3}'),
    "pc-q35-4.2 on QEMU 10.2": Case(
        'vmm: qemu, qemu: {version: "10.2", machine: pc-q35-4.2}',
        "qemu machine pc-q35-4.2: QEMU 10.2 no longer registers it",
    ),
    "pc-i440fx-4.0 on QEMU 10.2": Case(
        'vmm: qemu, qemu: {version: "10.2", machine: pc-i440fx-4.0}', "QEMU 10.2 no longer registers it"
    ),
    "pc-q35-3.1 on QEMU 10.2": Case(
        'vmm: qemu, qemu: {version: "10.2", machine: pc-q35-3.1}', "QEMU 10.2 no longer registers it"
    ),
    "pc-q35-5.0 on QEMU 10.2": Case('vmm: qemu, qemu: {version: "10.2", machine: pc-q35-5.0}'),
    "pc-q35-9.0 on QEMU 10.2": Case('vmm: qemu, qemu: {version: "10.2", machine: pc-q35-9.0}'),
    "pc-q35-10.2 on QEMU 10.1": Case(
        'vmm: qemu, qemu: {version: "10.1", machine: pc-q35-10.2}',
        "qemu machine pc-q35-10.2: newer than QEMU 10.1, which does not have it",
    ),
    # Distribution machine types and kernels: stated, and recorded as stated.
    "max_vcpus on an upstream machine type": Case(
        'vmm: qemu, qemu: {version: "9.1", machine: pc-q35-9.1, max_vcpus: 710}',
        "qemu max_vcpus: applies to a distribution's machine type (pc-q35-rhelX.Y.Z) only, found machine "
        "pc-q35-9.1, whose limit upstream QEMU sets (4096",
    ),
    "RHEL 10's stack": Case(
        'vmm: qemu, qemu: {version: "9.1", machine: pc-q35-rhel10.0.0}, host_linux: "6.12"',
        modes="[sev, sev-es, sev-snp]",
        vcpus="[1, 4096]",
    ),
    "RHEL 10's machine type on an older qemu-kvm": Case(
        'vmm: qemu, qemu: {version: "9.0", machine: pc-q35-rhel10.0.0}',
        "qemu machine pc-q35-rhel10.0.0: a qemu-kvm built on QEMU 9.0 does not have it (first in one built on 9.1",
    ),
    "711 vCPUs on pc-q35-rhel9.4.0": Case(
        'vmm: qemu, qemu: {version: "10.0", machine: pc-q35-rhel9.4.0}',
        "machine pc-q35-rhel9.4.0 allows at most 710 vCPUs",
        vcpus="[711]",
    ),
    "241 vCPUs on pc-i440fx-rhel7.6.0": Case(
        'vmm: qemu, qemu: {version: "10.1", machine: pc-i440fx-rhel7.6.0}', "allows at most 240 vCPUs", vcpus="[241]"
    ),
    "pc-q35-rhel9.6.0 without its limit": Case(
        'vmm: qemu, qemu: {version: "9.1", machine: pc-q35-rhel9.6.0}',
        "qemu machine pc-q35-rhel9.6.0: sevref knows no source for this distribution machine type's vCPU limit; "
        "state it (qemu max_vcpus",
    ),
    "pc-q35-rhel9.6.0 with its stated limit": Case(
        'vmm: qemu, qemu: {version: "9.1", machine: pc-q35-rhel9.6.0, max_vcpus: 4096}', vcpus="[4096]"
    ),
    "a stated limit that contradicts the known one": Case(
        'vmm: qemu, qemu: {version: "9.1", machine: pc-q35-rhel10.0.0, max_vcpus: 710}',
        "qemu max_vcpus 710: contradicts machine pc-q35-rhel10.0.0, whose limit is 4096",
    ),
    "a distribution machine type without a QEMU version": Case(
        "vmm: qemu, vmsa_profile: legacy, qemu: {machine: pc-q35-rhel10.0.0}", "qemu: 'version' is missing"
    ),
    "RHEL 9's 5.14 without host_kvm": Case(
        INIT2 + ', host_linux: "5.14"',
        "needs KVM_SEV_INIT2, which host Linux 5.14 lacks (added in 6.10; a distribution kernel that carries it "
        "as a backport states host_kvm)",
    ),
    "RHEL 9's 5.14 with host_kvm": Case(
        INIT2 + ', host_linux: "5.14", host_kvm: {sev_es: true, init2: true, sev_snp: true, debug_swap: never}',
        modes="[sev-es, sev-snp]",
    ),
    "a stated kernel without SEV-SNP": Case(
        INIT2 + ', host_linux: "5.14", host_kvm: {sev_es: true, init2: true, sev_snp: false}',
        "mode sev-snp: host Linux 5.14 (host_kvm as stated) cannot run SEV-SNP guests; if",
        modes="[sev-snp]",
    ),
    "a stated kernel without KVM_SEV_INIT2": Case(
        INIT2 + ', host_linux: "6.12", host_kvm: {sev_es: true, init2: false, sev_snp: false}',
        "qemu legacy_vm_type off: needs KVM_SEV_INIT2, which host Linux 6.12 (host_kvm as stated) lacks",
    ),
    "a stated kernel that does not say DebugSwap": Case(
        Q91 + ', host_linux: "5.14", host_kvm: {sev_es: true, init2: true, sev_snp: true}',
        "host Linux 5.14 (host_kvm as stated) does not say what its legacy KVM_SEV_ES_INIT does with DebugSwap",
    ),
    "a stated kernel with sev_features": Case(
        Q91 + ', host_linux: "5.14", sev_features: "0x0", host_kvm: {sev_es: true, init2: true, sev_snp: true}'
    ),
    "a stated kernel with DebugSwap absent and 0x20": Case(
        Q91 + ', host_linux: "5.14", sev_features: "0x20", '
        "host_kvm: {sev_es: true, init2: true, sev_snp: true, debug_swap: absent}",
        "sev_features 0x20: host Linux 5.14 (host_kvm as stated) has no DebugSwap",
    ),
    "a stated kernel without SEV-ES": Case(
        Q91 + ', host_linux: "6.12", host_kvm: {sev_es: false, init2: true, sev_snp: true, debug_swap: never}',
        "mode sev-es: host Linux 6.12 (host_kvm as stated) cannot run SEV-ES guests",
    ),
    "host_kvm without host_linux": Case(
        Q91 + ", host_kvm: {sev_es: true, init2: true, sev_snp: true}",
        "host_kvm: states the facts of a host kernel; expected host_linux",
    ),
    # QEMU 7.2.0's RNG seed, and Debian's package that reverts it (debian_qemu_fixes).
    "QEMU 7.2 with a kernel": Case(Q72, "QEMU 7.2 (7.2.0 or later 7.2.x?) with machine pc-q35-7.2", boots="[direct]"),
    "QEMU 7.2.0 with a kernel": Case(
        'vmm: qemu, qemu: {version: "7.2.0", machine: pc-q35-7.2}',
        "QEMU 7.2.0 with machine pc-q35-7.2 appends a random RNG seed",
        boots="[direct]",
    ),
    "QEMU 7.2.1 with a kernel": Case('vmm: qemu, qemu: {version: "7.2.1", machine: pc-q35-7.2}', boots="[direct]"),
    "QEMU 7.2 with machine 7.1": Case('vmm: qemu, qemu: {version: "7.2", machine: pc-q35-7.1}', boots="[direct]"),
    "Debian 12's package": Case(
        'vmm: qemu, qemu: {version: "7.2", package: "1:7.2+dfsg-7+deb12u18", machine: pc-q35-7.2}', boots="[direct]"
    ),
    "Debian 12's binNMU": Case(
        'vmm: qemu, qemu: {version: "7.2", package: "1:7.2+dfsg-7+deb12u18+b3", machine: pc-q35-7.2}',
        boots="[direct]",
    ),
    "Debian's 7.2+dfsg-5": Case(
        'vmm: qemu, qemu: {version: "7.2", package: "1:7.2+dfsg-5", machine: pc-q35-7.2}', boots="[direct]"
    ),
    "Debian's 7.2+dfsg-4": Case(
        'vmm: qemu, qemu: {version: "7.2", package: "1:7.2+dfsg-4", machine: pc-q35-7.2}',
        "appends a random RNG seed",
        boots="[direct]",
    ),
    "Debian's 7.2+dfsg-4 claiming the revert": Case(
        'vmm: qemu, qemu: {version: "7.2", package: "1:7.2+dfsg-4", fixes: [rng-seed-revert], machine: pc-q35-7.2}',
        "qemu fixes: 1:7.2+dfsg-4 does not carry rng-seed-revert (Debian picked it in 1:7.2+dfsg-5)",
    ),
    "another distribution's package": Case(
        'vmm: qemu, qemu: {version: "7.2", package: "1:7.2+dfsg-5ubuntu2", machine: pc-q35-7.2}',
        "appends a random RNG seed",
        boots="[direct]",
    ),
    "another distribution's package with its fixes": Case(
        'vmm: qemu, qemu: {version: "7.2", package: "1:7.2+dfsg-5ubuntu2", fixes: [rng-seed-revert], '
        "machine: pc-q35-7.2}",
        boots="[direct]",
    ),
    "a package of another QEMU": Case(
        'vmm: qemu, qemu: {version: "7.2", package: "1:8.2.2+ds-0ubuntu1", machine: pc-q35-7.2}',
        "qemu package 1:8.2.2+ds-0ubuntu1: is QEMU 8.2, but qemu version says 7.2",
    ),
    "a package version without the upstream one": Case(
        'vmm: qemu, qemu: {version: "7.2", package: "debian-7", machine: pc-q35-7.2}',
        "expected a package version that starts with QEMU's upstream version",
    ),
    "7.20 is not 7.2": Case(
        'vmm: qemu, qemu: {version: "7.2", package: "7.20-1", machine: pc-q35-7.2}', "is QEMU 7.20"
    ),
    # -dtb and IGVM: not modelled, refused.
    "IGVM on QEMU 10.1": Case(
        'vmm: qemu, qemu: {version: "10.1", machine: q35, igvm: true}',
        "qemu igvm: QEMU 10.1 takes the firmware and the VMSAs, their sev_features included, from the IGVM file",
    ),
    "IGVM on QEMU 9.1": Case(
        'vmm: qemu, qemu: {version: "9.1", machine: q35, igvm: true}',
        "QEMU 9.1 cannot launch from an IGVM file (added in 10.1)",
    ),
    "no IGVM": Case('vmm: qemu, qemu: {version: "10.1", machine: q35, igvm: false}'),
    "a DTB": Case(
        Q91,
        "dtb: QEMU appends the device tree to the kernel as setup_data before hashing it",
        boots="[direct]",
        boot_extra=", dtb: {path: board.dtb, sha256: " + "cd" * 32 + "}",
    ),
    # EC2's RDX, GCE's modes.
    "EC2's earlier RDX": Case('vmm: ec2, ec2_rdx: "0x0"', modes="[sev-snp]"),
    "EC2's current RDX stated": Case('vmm: ec2, ec2_rdx: "0x600"', modes="[sev-snp]"),
    "an unknown EC2 RDX": Case(
        'vmm: ec2, ec2_rdx: "0xa00f11"', "ec2_rdx: EC2 is known to have used 0x600 (today's, the default) and 0x0"
    ),
    "ec2_rdx on QEMU": Case(Q91 + ', ec2_rdx: "0x0"', "ec2_rdx: applies to vmm ec2 only, found vmm qemu"),
    "SEV-ES on EC2": Case("vmm: ec2", "mode sev-es: EC2 offers SEV-SNP guests only"),
    "SEV on GCE": Case(
        "vmm: gce", "mode sev: sevref supports SEV-SNP launches on GCE only (GCE also offers SEV", modes="[sev]"
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_host_stack_rules(name: str) -> None:
    case = CASES[name]
    if case.error is None:
        assert check(text_of(case)).entries >= 1
        return
    with pytest.raises(ManifestError) as caught:
        check(text_of(case))
    message = caught.value.diagnostic()
    assert case.error in message, message
    assert "\n" not in str(caught.value)


def test_refusal_through_sevref_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES["EPYC-Turin on QEMU 9.1"]
    (tmp_path / "fw.fd").write_bytes(TINY.read_bytes())
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    (tmp_path / "m.yaml").write_text(text_of(case).replace("ab" * 32, hashlib.sha256(b"kernel").hexdigest()))
    assert _cli.main(["validate", str(tmp_path / "m.yaml")], out=io.StringIO()) == 1
    assert TURIN_ADDED.format("9.1") in capsys.readouterr().err


def test_linux_6_6_30_publishes_sev_features_zero() -> None:
    (group,) = check(text_of(CASES["Linux 6.6.30 without sev_features"])).groups
    assert group.config.sev_features == 0


SUGGESTED = re.compile(r"leave (?:it|them) out with exclude: \[(\{.*\})\]$")


@pytest.mark.parametrize(
    ("name", "case", "left"),
    [
        # Refused: EPYC-Turin (QEMU 9.1 lacks it). Kept: EPYC with both boots.
        ("cpu", Case(Q91, cpus="[EPYC, EPYC-Turin]", boots="[null, direct]"), 4),
        # Refused: 289 vCPUs on pc-q35-8.0. Kept: the other counts, with both boots.
        ("vcpus", Case(Q80, vcpus="[1, 288, 289]", boots="[null, direct]"), 4),
        # Refused: a kernel on QEMU 7.2 (RNG seed). Kept: firmware-only boot, both CPUs.
        ("boot", Case(Q72, cpus="[EPYC, EPYC-Rome]", boots="[null, direct]"), 4),
        # Refused: SEV-ES on QEMU 5.2. Kept: plain SEV.
        ("mode", Case('vmm: qemu, qemu: {version: "5.2", machine: pc-q35-5.2}', modes="[sev, sev-es]"), 1),
    ],
)
def test_following_the_suggested_exclude_removes_only_the_refused(name: str, case: Case, left: int) -> None:
    text = text_of(case)
    rules: list[str] = []
    for _ in range(10):  # follow each suggestion until the manifest validates
        try:
            expansion = check(text + ("    exclude:\n" + "".join(f"      - {r}\n" for r in rules) if rules else ""))
            break
        except ManifestError as error:
            found = SUGGESTED.search(error.diagnostic())
            assert found is not None, error.diagnostic()
            rules.append(found.group(1))
    else:
        pytest.fail(f"still refused after {rules}")
    entries = sum(len(g.vcpus) or 1 for g in expansion.groups)
    assert entries == left, (name, rules, [(g.mode, g.cpu, g.boot, g.vcpus) for g in expansion.groups])


def test_every_cpu_model_has_its_release() -> None:
    assert set(CPU_MODEL_SINCE) == set(CPU_MODELS)
    assert {since.release for since in CPU_MODEL_SINCE.values()} == {(6, 0), (8, 1), (10, 1)}
    assert str(CPU_MODEL_SINCE["EPYC-Genoa"]) == "8.1" and str(CPU_MODEL_SINCE["EPYC-Turin"]) == "10.1"
    assert all(since.source for since in CPU_MODEL_SINCE.values())


def test_every_rule_cites_its_source() -> None:
    for table in (QEMU_SINCE, LINUX_SINCE):
        assert all(since.source and since.release for since in table.values())
    assert all(row.source for row in DEBUG_SWAP)
    assert [row.first for row in DEBUG_SWAP] == sorted(row.first for row in DEBUG_SWAP)
    for limits in MAX_VCPUS.values():
        assert [limit.machine for limit in limits] == sorted(limit.machine for limit in limits)
        assert all(limit.source for limit in limits)
    assert max(since.release for since in CPU_MODEL_SINCE.values()) <= NEWEST_QEMU


@pytest.mark.parametrize(
    ("linux", "state"),
    [
        (Version(5, 15, 100), DebugSwap.ABSENT),
        (Version(6, 1), DebugSwap.ABSENT),
        (Version(6, 5, 13), DebugSwap.ABSENT),
        (Version(6, 6, 0), DebugSwap.DEFAULT_ON),
        (Version(6, 6, 23), DebugSwap.DEFAULT_ON),
        (Version(6, 6, 24), DebugSwap.DEFAULT_OFF),
        (Version(6, 6), None),
        (Version(6, 7, 11), DebugSwap.DEFAULT_ON),
        (Version(6, 7, 12), DebugSwap.DEFAULT_OFF),
        (Version(6, 7), None),
        (Version(6, 8), DebugSwap.DEFAULT_OFF),
        (Version(6, 9, 12), DebugSwap.DEFAULT_OFF),
        (Version(6, 10), DebugSwap.NEVER),
        (Version(6, 12, 3), DebugSwap.NEVER),
    ],
)
def test_debug_swap_by_kernel(linux: Version, state: DebugSwap | None) -> None:
    assert debug_swap(linux) is state


@pytest.mark.parametrize(
    ("package", "fixes"),
    [
        ("1:7.2+dfsg-7+deb12u18", {QemuFix.RNG_SEED_REVERT}),
        ("1:7.2+dfsg-7+deb12u18+b3", {QemuFix.RNG_SEED_REVERT}),
        ("7.2+dfsg-5", {QemuFix.RNG_SEED_REVERT}),
        ("1:7.2+dfsg-4", set()),
        ("1:7.2+dfsg-1", set()),
        ("1:7.2+dfsg-5ubuntu2", None),
        ("1:8.2.2+ds-0ubuntu1", None),
    ],
)
def test_debian_qemu_fixes(package: str, fixes: set[QemuFix] | None) -> None:
    found = debian_qemu_fixes(package)
    assert (None if found is None else set(found)) == fixes


# sev-snp-measure 0.0.9 (.peers/0.0.9, make peers) builds EC2 VMSAs with RDX 0
# (vmsa.py: "rdx = 0"); 0.0.13 (commit 4a02bf0) with 0x600. SEV-SNP digests of
# EC2_IMAGE, computed with each; sevref must give the same.
EC2_SECTIONS = [(0x800000, 0x3000, 1), (0x803000, 0x1000, 2), (0x804000, 0x1000, 3), (0x808000, 0x2000, 1)]
EC2_IMAGE_SHA256 = "e6ac92b0da2851a899acdf37258f0b51e1a05711191de94d67db6c9c370fc704"
EC2_KAT = {
    # (RDX, vCPUs): digest
    (EC2_LEGACY_RDX, 1): "99d7e14bbf443f70b52e66d247fba62dc9676c2bd8ce567c"
    "9d4671133b34e51dcc213663e9fe601a021b0e9e3ff804a8",
    (EC2_LEGACY_RDX, 4): "8bfc4ee2e9fa91b03db028e4cdb58cd8f9ed6b55a46c2654"
    "9fa6be0d8f21ead62582bab16e132c460f0236032304cfe8",
    (EC2_RDX, 1): "69b3f2516d4c6094c583c4351f44f2740ea3d3b86569c323868c3813984fb4e9abc268cfbad191cae82412487d51e691",
    (EC2_RDX, 4): "2734151963f39f0bdfa163f7183090d522b47029d6a637418f8b00dbd38553682c1c41b9057d852d8439cf3fc76cc197",
}


@pytest.mark.parametrize(("rdx", "vcpus"), EC2_KAT)
def test_ec2_rdx_known_answers(rdx: int, vcpus: int) -> None:
    image = snp_image(EC2_SECTIONS)
    assert hashlib.sha256(image).hexdigest() == EC2_IMAGE_SHA256
    config = LaunchConfig(
        mode=Mode.SEV_SNP, vmm=Vmm.EC2, cpu_signature=None if rdx == EC2_RDX else rdx, sev_features=0x1
    )
    assert launch_digest(Firmware.from_bytes(image), config, vcpus).hex() == EC2_KAT[rdx, vcpus]


@pytest.mark.peers
def test_ec2_rdx_known_answers_come_from_sev_snp_measure(tmp_path: Path) -> None:
    (tmp_path / "ec2.fd").write_bytes(snp_image(EC2_SECTIONS))
    cases = [{"mode": "sev-snp", "vmm": "ec2", "vcpus": n, "firmware": str(tmp_path / "ec2.fd")} for n in (1, 4)]
    for version, rdx in (("0.0.9", EC2_LEGACY_RDX), ("0.0.13", EC2_RDX)):
        assert run_peer(version, cases)["results"] == [EC2_KAT[rdx, 1], EC2_KAT[rdx, 4]], version


def test_ec2_rdx_reaches_the_published_configuration() -> None:
    old = check(text_of(CASES["EC2's earlier RDX"]))
    today = check(text_of(Case("vmm: ec2", modes="[sev-snp]")))
    stated = check(text_of(CASES["EC2's current RDX stated"]))
    (group,) = old.groups
    assert group.config.cpu_signature == EC2_LEGACY_RDX and group.identity()["cpu_signature"] == "0x0"
    assert today.groups[0].id == stated.groups[0].id != group.id
    with pytest.raises(ConfigError, match="today's: leave cpu_signature out"):
        LaunchConfig(mode=Mode.SEV_SNP, vmm=Vmm.EC2, cpu_signature=EC2_RDX, sev_features=1)


def test_bundled_manifests_validate(debian_ovmf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifests = sorted(str(p) for p in (REPO / "manifests").glob("*.yaml"))
    out = io.StringIO()
    assert _cli.main(["validate", *manifests, "--cache", str(CACHE)], out=out) == 0, capsys.readouterr().err
    assert out.getvalue().startswith("ok: ")
    document = [parse_yaml(Path(m).read_bytes(), Path(m).name, Path(m).parent) for m in manifests]
    manifest = load_manifests(document)
    debian = manifest.host_stacks["debian12-qemu7.2"]
    assert debian.qemu_package is not None and debian.qemu_package.startswith("1:7.2+dfsg-7+deb12u")
    assert str(debian.host_linux) == "6.1" and debian.carries(QemuFix.RNG_SEED_REVERT)
    for matrix in manifest.matrices:
        for host_id in matrix.host_stacks:
            host = manifest.host_stacks[host_id]
            assert host.qemu_version is not None
            for cpu in matrix.cpus:
                since = CPU_MODEL_SINCE[cpu.name or ""]
                assert host.qemu_version.at_least(*since.release), (matrix.id, host_id, cpu.name)


@pytest.mark.parametrize(
    ("host", "mode", "profile"),
    [
        # QEMU 9.1-10.0 on the INIT2 path: every vCPU's FPU as at reset.
        (INIT2 + ', host_linux: "6.11"', "sev-snp", VmsaProfile.INIT2),
        ('vmm: qemu, qemu: {version: "10.0", machine: pc-q35-10.0}, host_linux: "6.12"', "sev-snp", VmsaProfile.INIT2),
        (INIT2 + ', host_linux: "6.11"', "sev-es", VmsaProfile.INIT2),
        # QEMU 10.1 and 10.2 on the INIT2 path: the APs' FCW and MXCSR 0 in QEMU never reach KVM (AP_CONTEXT).
        (Q101 + ', host_linux: "6.12"', "sev-snp", VmsaProfile.INIT2),
        ('vmm: qemu, qemu: {version: "10.2.2", machine: pc-q35-10.2}', "sev-snp", VmsaProfile.INIT2),
        (
            'vmm: qemu, qemu: {version: "10.1", machine: pc-q35-10.1, legacy_vm_type: "off"}, host_linux: "6.12"',
            "sev-es",
            VmsaProfile.INIT2,
        ),
        (
            'vmm: qemu, qemu: {version: "10.2", machine: pc-q35-10.2, legacy_vm_type: "off"}, host_linux: "6.12"',
            "sev-es",
            VmsaProfile.INIT2,
        ),
        # RHEL 10: qemu-kvm 9.1 on Linux 6.12.
        (
            'vmm: qemu, qemu: {version: "9.1", machine: pc-q35-rhel10.0.0}, host_linux: "6.12"',
            "sev-snp",
            VmsaProfile.INIT2,
        ),
        # The legacy path copies no FPU state: 10.1's change leaves it as it was.
        (Q101 + ', host_linux: "6.12"', "sev-es", VmsaProfile.LEGACY),
        ('vmm: qemu, qemu: {version: "10.2", machine: q35, legacy_vm_type: "on"}', "sev-es", VmsaProfile.LEGACY),
        # A stated profile where the QEMU version cannot tell.
        ('vmm: qemu, vmsa_profile: init2-ap-fpu-zero, host_linux: "6.12"', "sev-snp", VmsaProfile.INIT2_AP_FPU_ZERO),
        ('vmm: qemu, vmsa_profile: init2, host_linux: "6.12"', "sev-snp", VmsaProfile.INIT2),
    ],
)
def test_each_launch_gets_the_profile_its_qemu_makes(host: str, mode: str, profile: VmsaProfile) -> None:
    expansion = check(text_of(Case(host, modes=f"[{mode}]")))
    assert {group.config.vmsa_profile for group in expansion.groups} == {profile}


def test_a_rhel_stack_builds_and_is_published_as_stated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """RHEL 9.6's stack builds SEV-SNP entries; its stated machine limit and KVM facts are published as stated."""
    rhel = (
        'vmm: qemu, qemu: {version: "9.1", machine: pc-q35-rhel9.6.0, max_vcpus: 4096}, host_linux: "5.14", '
        "host_kvm: {sev_es: true, init2: true, sev_snp: true, debug_swap: never}"
    )
    (tmp_path / "fw.fd").write_bytes(TINY.read_bytes())
    (tmp_path / "vmlinuz").write_bytes(b"not booted")  # the manifest's boot, which the matrix does not use
    text = text_of(Case(rhel, modes="[sev-snp]")).replace("ab" * 32, hashlib.sha256(b"not booted").hexdigest())
    text = text.replace("  serial: 1\n", "  serial: 1\n  valid_for_days: 30\n")
    (tmp_path / "m.yaml").write_text(text, encoding="utf-8")
    status = _cli.main(
        [
            "build",
            str(tmp_path / "m.yaml"),
            "--out",
            str(tmp_path / "site"),
            "--cache",
            str(tmp_path),
            "--issued",
            "now",
        ]
    )
    assert status == 0, capsys.readouterr().err
    published = json.loads((tmp_path / "site" / "publication.json").read_bytes())
    (host,) = published["host_stacks"]
    assert host["machine"] == "pc-q35-rhel9.6.0" and host["host_linux"] == "5.14"
    assert host["max_vcpus"] == 4096
    assert host["host_kvm"] == {"sev_es": True, "init2": True, "sev_snp": True, "debug_swap": "never"}
    groups = [json.loads(path.read_bytes()) for path in sorted((tmp_path / "site" / "groups").glob("*.json"))]
    configs = [config for group in groups for config in group["groups"]]
    assert configs and {(c["mode"], c["vmsa_profile"]) for c in configs} == {("sev-snp", "init2")}


def test_an_upstream_stack_publishes_no_stated_facts() -> None:
    text = text_of(Case(Q91 + ', host_linux: "6.12"'))
    manifest = load_manifests([parse_yaml(text.encode("utf-8"), "m.yaml", Path("."))])
    host = manifest.host_stacks["h"]
    assert host.host_kvm is None and host.max_vcpus_stated is None
    assert host.max_vcpus() == (4096, MAX_VCPUS["q35"][-1].source)
