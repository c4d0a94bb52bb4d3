"""Knowledge of host stacks: what a VMM, a QEMU release and a host kernel can launch.

One module a layer of the host: :mod:`sevref.hosts.qemu` (features, CPU
models, machine types and distribution packages by QEMU release),
:mod:`sevref.hosts.linux` (KVM features by Linux release, or as a distribution
kernel states them) and :mod:`sevref.hosts.stack` (a host stack as a manifest
describes it, and the VMSA profile each launch gets on it). Every rule is a row
of a table with the release it starts at and the commit or file that says so;
``docs/host-stacks.md`` lists them for people.
"""

from sevref.hosts.linux import DEBUG_SWAP, LINUX_SINCE, DebugSwap, KvmFacts, KvmFeature, debug_swap
from sevref.hosts.qemu import (
    CPU_MODEL_SINCE,
    MACHINE_DELETION,
    MAX_VCPUS,
    NEWEST_QEMU,
    QEMU_SINCE,
    Machine,
    QemuFix,
    Since,
    debian_qemu_fixes,
    parse_machine,
)
from sevref.hosts.stack import HostStack

__all__ = [
    "CPU_MODEL_SINCE",
    "DEBUG_SWAP",
    "LINUX_SINCE",
    "MACHINE_DELETION",
    "MAX_VCPUS",
    "NEWEST_QEMU",
    "QEMU_SINCE",
    "DebugSwap",
    "HostStack",
    "KvmFacts",
    "KvmFeature",
    "Machine",
    "QemuFix",
    "Since",
    "debian_qemu_fixes",
    "debug_swap",
    "parse_machine",
]
