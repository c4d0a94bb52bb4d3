"""What a host kernel's KVM can launch: releases from upstream, or facts a distribution states.

Upstream Linux is judged by its version: :data:`LINUX_SINCE` holds the first
release of each KVM feature sevref checks, :data:`DEBUG_SWAP` what the legacy
``KVM_SEV_ES_INIT`` does with DebugSwap, release by release. A distribution
kernel that carries backports (RHEL 9's 5.14 runs SEV-SNP guests) cannot be
judged by its version: its host stack states :class:`KvmFacts` instead, and
every rule then reads the stated fact, never the version. The publication
records which facts were stated.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sevref.errors import ConfigError
from sevref.hosts.qemu import Since
from sevref.values import Version

__all__ = [
    "DEBUG_SWAP",
    "LINUX_SINCE",
    "DebugSwap",
    "KvmFacts",
    "KvmFeature",
    "debug_swap",
]


class KvmFeature(enum.StrEnum):
    """A KVM capability a launch needs from the host kernel."""

    SEV_ES = "sev-es"
    """SEV-ES guests (``KVM_SEV_ES_INIT``)."""
    INIT2 = "init2"
    """``KVM_SEV_INIT2``: the VM types that carry the FPU state into the VMSA."""
    SEV_SNP = "sev-snp"
    """SEV-SNP guests (``KVM_X86_SNP_VM``)."""


LINUX_SINCE: Mapping[KvmFeature, Since] = MappingProxyType(
    {
        KvmFeature.SEV_ES: Since(
            (5, 11),
            "Tom Lendacky's 'SEV-ES hypervisor support' series (v4 2020-11-17; 376c6d285017 'KVM: SVM: Provide "
            "support for SEV-ES vCPU creation/loading', ad73109ae7ec 'KVM: SVM: Provide support to launch and run "
            "an SEV-ES guest'), merged for 5.11: arch/x86/kvm/svm/sev.c KVM_SEV_ES_INIT",
        ),
        KvmFeature.INIT2: Since((6, 10), "4f5defae7089 'KVM: SEV: introduce KVM_SEV_INIT2 operation' (6.10)"),
        KvmFeature.SEV_SNP: Since(
            (6, 11),
            "KVM_X86_SNP_VM and KVM_SEV_SNP_LAUNCH_* (1dfe571c12cf, 136d8bc931c8; arch/x86/kvm/svm/sev.c, 6.11)",
        ),
    }
)
"""The first upstream Linux release of each KVM feature sevref checks."""


class DebugSwap(enum.Enum):
    """What a host kernel's legacy KVM_SEV_ES_INIT does with DebugSwap (SEV_FEATURES bit 5)."""

    ABSENT = "has no DebugSwap"
    """Before 6.6: SEV_FEATURES is 0."""
    DEFAULT_ON = "sets DebugSwap by default on CPUs with DEBUG_SWAP and NO_NESTED_DATA_BP"
    """It depends on the CPU: the manifest must state it."""
    DEFAULT_OFF = "sets DebugSwap only with kvm_amd.debug_swap=1"
    """0 by default; 0x20 is possible."""
    NEVER = "never sets DebugSwap (KVM_SEV_ES_INIT passes vmsa_features 0)"
    """0x20 is impossible on the legacy path."""

    @property
    def key(self) -> str:
        """The name a manifest states it by: absent, default-on, default-off or never."""
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True)
class _DebugSwapRow:
    first: tuple[int, int, int]
    state: DebugSwap
    source: str


DEBUG_SWAP: tuple[_DebugSwapRow, ...] = (
    _DebugSwapRow((0, 0, 0), DebugSwap.ABSENT, "d1f85fbe836e 'KVM: SEV: Enable data breakpoints in SEV-ES' is in 6.6"),
    _DebugSwapRow(
        (6, 6, 0),
        DebugSwap.DEFAULT_ON,
        "d1f85fbe836e (6.6): sev_es_debug_swap_enabled = true; sev_hardware_setup clears it without "
        "X86_FEATURE_DEBUG_SWAP and X86_FEATURE_NO_NESTED_DATA_BP",
    ),
    _DebugSwapRow((6, 6, 24), DebugSwap.DEFAULT_OFF, "4577036353fa, the 6.6.y backport of 5abf6dceb066 (6.6.24)"),
    _DebugSwapRow((6, 7, 0), DebugSwap.DEFAULT_ON, "d1f85fbe836e, as in 6.6"),
    _DebugSwapRow((6, 7, 12), DebugSwap.DEFAULT_OFF, "the 6.7.y backport of 5abf6dceb066 (6.7.12, 2024-04-03)"),
    _DebugSwapRow((6, 8, 0), DebugSwap.DEFAULT_OFF, "5abf6dceb066 'SEV: disable SEV-ES DebugSwap by default' (6.8)"),
    _DebugSwapRow(
        (6, 10, 0),
        DebugSwap.NEVER,
        "4f5defae7089 (6.10): sev_guest_init passes struct kvm_sev_init { .vmsa_features = 0 }",
    ),
)
"""DebugSwap on the legacy path, by host kernel release: the last row at or before a version applies."""


def _debug_swap(first: tuple[int, int, int]) -> _DebugSwapRow:
    return [row for row in DEBUG_SWAP if row.first <= first][-1]


def debug_swap(linux: Version) -> DebugSwap | None:
    """What upstream host Linux ``linux`` does with DebugSwap on the legacy path.

    Args:
        linux: the host kernel's version.

    Returns:
        The behaviour, or None when it depends on a micro version not given
        (6.6 or 6.7 without the stable release).
    """
    if linux.micro is not None:
        return _debug_swap((linux.major, linux.minor, linux.micro)).state
    low = _debug_swap((linux.major, linux.minor, 0)).state
    high = _debug_swap((linux.major, linux.minor, 999)).state
    return low if low is high else None


@dataclass(frozen=True)
class KvmFacts:
    """What a distribution kernel's KVM does, as its host stack states it instead of deriving it from the version."""

    features: frozenset[KvmFeature]
    """The capabilities the kernel has; those not listed it lacks."""
    debug_swap: DebugSwap | None = None
    """What its legacy KVM_SEV_ES_INIT does with DebugSwap, when stated (else SEV-ES needs sev_features)."""

    def to_dict(self) -> dict[str, object]:
        """Return the facts as a manifest states them and the publication records them.

        Returns:
            ``sev_es``, ``init2`` and ``sev_snp`` as booleans, ``debug_swap`` as its key or None.
        """
        facts: dict[str, object] = {str(f).replace("-", "_"): f in self.features for f in KvmFeature}
        facts["debug_swap"] = None if self.debug_swap is None else self.debug_swap.key
        return facts

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> KvmFacts:
        """Read the facts from a manifest's (or a record's) mapping.

        Args:
            data: ``sev_es``, ``init2``, ``sev_snp`` (booleans) and ``debug_swap`` (optional).

        Returns:
            The facts.

        Raises:
            ConfigError: a fact missing or of the wrong kind.
        """
        features = set()
        for feature in KvmFeature:
            key = str(feature).replace("-", "_")
            value = data.get(key)
            if not isinstance(value, bool):
                raise ConfigError(f"host_kvm {key}: expected true or false, found {value!r}")
            if value:
                features.add(feature)
        swap = data.get("debug_swap")
        states = {state.key: state for state in DebugSwap}
        if swap is not None and swap not in states:
            raise ConfigError(f"host_kvm debug_swap: expected one of {', '.join(states)}, found {swap!r}")
        return cls(frozenset(features), None if swap is None else states[str(swap)])


def has(linux: Version | None, facts: KvmFacts | None, feature: KvmFeature) -> bool | None:
    """Tell whether a host kernel has a KVM capability: from stated facts first, else from its release.

    Args:
        linux: the kernel's version, if known.
        facts: the facts its host stack states, if any.
        feature: the capability.

    Returns:
        True or False, or None when neither is known.
    """
    if facts is not None:
        return feature in facts.features
    if linux is None:
        return None
    return linux.at_least(*LINUX_SINCE[feature].release)


def describe(linux: Version | None, facts: KvmFacts | None) -> str:
    """Name a host kernel in a message, saying whether its facts were stated.

    Args:
        linux: the kernel's version, if known.
        facts: the facts its host stack states, if any.

    Returns:
        E.g. ``host Linux 6.9`` or ``host Linux 5.14 (host_kvm as stated)``.
    """
    name = "host Linux" if linux is None else f"host Linux {linux}"
    return f"{name} (host_kvm as stated)" if facts is not None else name


def legacy_debug_swap(linux: Version | None, facts: KvmFacts | None) -> DebugSwap | None:
    """What the legacy KVM_SEV_ES_INIT of a host kernel does with DebugSwap.

    Args:
        linux: the kernel's version, if known.
        facts: the facts its host stack states, if any.

    Returns:
        The behaviour, or None when it is not known (the manifest must then state ``sev_features``).
    """
    if facts is not None:
        return facts.debug_swap
    return None if linux is None else debug_swap(linux)
