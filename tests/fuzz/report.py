"""Fuzz target: SEV-SNP attestation reports, parsed, decoded and printed as ``sevref report show --json`` does."""

from __future__ import annotations

import random

from sevref.binfmt.report import AttestationReport, decode_report, parse_report
from sevref.digest import Mode
from sevref.errors import SevrefError
from sevref.match import Match, snp_notes
from sevref.records import Basis, EntryStatus, GroupRecord, Nvram, Store
from sevref.serialize import json_line

_GROUP = GroupRecord(
    id="0" * 20,
    mode=Mode.SEV_SNP,
    digest_algorithm="sha384",
    digest_quantity="MEASUREMENT",
    firmware="fw",
    firmware_sha256="0" * 64,
    firmware_package=None,
    firmware_nvram=Nvram(Store.UNKNOWN, Basis.ASSUMED),
    host_stack="host",
    vmm="qemu",
    qemu_version="9.1",
    machine=None,
    legacy_vm_type=None,
    host_linux=None,
    vmsa_profile="init2",
    cpu="EPYC-Milan",
    cpu_signature=0xA00F11,
    sev_features=None,
    guest_features=0x1,
    boot=None,
    kernel_sha256=None,
    initrd_sha256=None,
    cmdline=None,
    cmdline_sha256=None,
    policy=0x30000,
    min_api=(1, 51),
    status=EntryStatus.ACTIVE,
    status_reason=None,
    successor=None,
    status_since=None,
    matrix="m",
    calculator="sevref",
    entries=((1, "0" * 96),),
)
"""A published SEV-SNP entry, to check a report's policy and platform against."""


def report(version: int, family: int, seed: int) -> bytes:
    """A valid report with random contents.

    Args:
        version: the report version (2, 3 or 5).
        family: the CPUID family (0x19 Milan and Genoa, 0x1a Turin).
        seed: for the random fields.

    Returns:
        1184 bytes.
    """
    rng = random.Random(seed)
    fields: dict[str, object] = {
        "version": version,
        "guest_svn": rng.randrange(1 << 32),
        "policy": 0x30000 | rng.randrange(1 << 16),
        "signature_algo": 1,
        "current_tcb": rng.randrange(1 << 64),
        "platform_info": rng.randrange(1 << 8),
        "signer_info": rng.randrange(1 << 5),
        "cpuid_fam_id": family,
        "current_major": 1,
        "current_minor": 55,
        "launch_mit_vector": rng.randrange(1 << 64),
    }
    for name, size in (("family_id", 16), ("report_data", 64), ("measurement", 48), ("chip_id", 64)):
        fields[name] = rng.randbytes(size)
    fields["signature_r"] = rng.randbytes(48) + bytes(24)
    fields["signature_s"] = rng.randbytes(48) + bytes(24)
    return AttestationReport.build(**fields).to_bytes()


def seeds() -> list[bytes]:
    """Valid reports of each version sevref reads.

    Returns:
        Reports of versions 2, 3 (Genoa and Turin) and 5.
    """
    return [report(2, 0x19, 1), report(3, 0x19, 2), report(3, 0x1A, 3), report(5, 0x1A, 4)]


def one_input(data: bytes) -> None:
    """Parse, decode, print and check a report; any exception that escapes is a bug.

    Args:
        data: the report's bytes.
    """
    try:
        parsed = parse_report(data)
    except SevrefError:
        return
    json_line(decode_report(parsed))
    match = Match("0" * 20 + "-0001", 1, bytes(parsed.measurement).hex(), _GROUP)
    snp_notes([match], parsed)
