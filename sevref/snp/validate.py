"""What a verifier accepts of an SEV-SNP guest beyond its measurement: its policy and its platform's TCB.

A guest whose policy allows debugging (the hypervisor can read and write
its memory) or migration through a migration agent (its state can leave
the platform) is no confidential guest for most relying parties, whatever
it measured: both are refused unless the verifier allows them. A minimum
TCB refuses platforms whose firmware or microcode is older than the
verifier wants (go-sev-guest ``validate.Options.MinimumTCB``).

Findings are ``(text, blocking)`` pairs, as :class:`sevref.match.Match` notes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sevref.binfmt.report import parse_tcb
from sevref.errors import ConfigError

__all__ = ["DEBUG_BIT", "MIGRATE_MA_BIT", "Acceptance", "parse_min_tcb", "policy_findings", "tcb_findings"]

MIGRATE_MA_BIT = 18
"""Guest policy bit 18, MIGRATE_MA: association with a migration agent is allowed (SNP ABI Table 9)."""
DEBUG_BIT = 19
"""Guest policy bit 19, DEBUG: debugging is allowed (SNP ABI Table 9)."""
_PARTS = ("fmc", "bootloader", "tee", "snp", "microcode")


@dataclass(frozen=True)
class Acceptance:
    """What the verifier accepts beyond the published values."""

    allow_debug: bool = False
    """Accept a policy with DEBUG set."""
    allow_migration: bool = False
    """Accept a policy with MIGRATE_MA set."""
    min_tcb: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """The lowest level accepted of each TCB part named (:func:`parse_min_tcb`)."""


def parse_min_tcb(text: str) -> Mapping[str, int]:
    """Read ``--min-tcb``: comma-separated ``part=level`` pairs.

    Parts: ``bootloader``, ``tee``, ``snp``, ``microcode`` and, on Turin, ``fmc``
    (the names ``sevref report show`` prints); levels 0..255, decimal or ``0x`` hex.

    Args:
        text: e.g. ``bootloader=3,tee=0,snp=8,microcode=115``.

    Returns:
        Part to level.

    Raises:
        ConfigError: an unknown part, a level out of range, or a part twice.
    """
    found: dict[str, int] = {}
    for item in text.split(","):
        match = re.fullmatch(r"\s*([a-z]+)\s*=\s*(0x[0-9a-fA-F]{1,2}|[0-9]{1,3})\s*", item)
        if match is None or match[1] not in _PARTS:
            raise ConfigError(f"--min-tcb: {item.strip()!r}; expected PART=LEVEL with PART one of {', '.join(_PARTS)}")
        level = int(match[2], 0)
        if level > 255 or match[1] in found:
            raise ConfigError(f"--min-tcb: {item.strip()!r}; expected each part once, at a level of 0..255")
        found[match[1]] = level
    return MappingProxyType(found)


def policy_findings(policy: int, acceptance: Acceptance) -> list[tuple[str, bool]]:
    """Judge the guest policy bits every verifier cares about.

    Args:
        policy: the report's POLICY.
        acceptance: what the verifier allows.

    Returns:
        A blocking finding for DEBUG and for MIGRATE_MA unless allowed; a
        non-blocking one when allowed and set.
    """
    findings = []
    for bit, name, allowed, option in (
        (
            DEBUG_BIT,
            "DEBUG (bit 19): the host can read and change the guest's memory",
            acceptance.allow_debug,
            "--allow-debug",
        ),
        (
            MIGRATE_MA_BIT,
            "MIGRATE_MA (bit 18): a migration agent can take the guest's state elsewhere",
            acceptance.allow_migration,
            "--allow-migration",
        ),
    ):
        if policy >> bit & 1:
            verdict = f"accepted ({option})" if allowed else f"refused unless {option}"
            findings.append((f"policy {policy:#x} allows {name}; {verdict}", not allowed))
    return findings


def tcb_findings(reported_tcb: int, turin: bool, minimum: Mapping[str, int]) -> list[tuple[str, bool]]:
    """Compare REPORTED_TCB with a minimum, part by part.

    Args:
        reported_tcb: the report's REPORTED_TCB.
        turin: read it in the Turin layout (SNP ABI Table 3).
        minimum: part to lowest level accepted.

    Returns:
        One blocking finding naming every part below its minimum (none when all
        are at or above it); ``fmc`` asked of a layout without it is a finding too.
    """
    if not minimum:
        return []
    parts = parse_tcb(reported_tcb, turin).parts()
    low = []
    for part, level in minimum.items():
        have = parts.get(part)
        if have is None:
            low.append(f"{part} (not in this platform's TCB layout) expected at least {level}")
        elif have < level:
            low.append(f"{part} {have} below {level}")
    if not low:
        return []
    return [(f"REPORTED_TCB {reported_tcb:#018x}: {', '.join(low)} (--min-tcb)", True)]
