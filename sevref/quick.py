"""One launch digest with nothing but ``hashlib`` and ``struct``: the common ``sevref digest``.

A verifier's script runs ``sevref digest --mode sev-snp --firmware F --cpu C
--vcpus N`` once per launch. The measuring itself takes a few milliseconds;
loading the full path (argparse, dataclasses, enum, ctypes, the request and
digest modules) takes several times that. This module answers that common
case from plain values, before any of it is imported.

It vouches only for what it checks completely and returns None for anything
else, which the full path (:mod:`sevref.request`, :mod:`sevref.digest`) then
computes or refuses with its own words: QEMU launches of an OVMF image with a
footer table, firmware-only boot, no firmware prefix. Every check of the full
path that can refuse such a launch is made here too, or the launch is left to
the full path. ``tests/unit/test_quick.py`` checks it against the full path
on every CPU model, both VMSA profiles, random signatures, features, vCPU
counts and firmware images, well-formed and malformed.

This module does no I/O: it takes bytes and returns values.
"""

from __future__ import annotations

import hashlib
import itertools
import struct

__all__ = ["CPU_SIGNATURES", "Launch", "check", "launch_digest", "vmsa_page"]

_MAX_VCPUS = 4096  # sevref.digest.MAX_VCPUS
_PROFILES = ("legacy", "init2", "init2-ap-fpu-zero")  # sevref.binfmt.vmsa.VmsaProfile
_BSP_EIP = 0xFFFF_FFF0  # sevref.binfmt.vmsa.BSP_RESET_EIP
_PAGE = 4096
_FOUR_GIB = 1 << 32
_ENTRY_HEADER = 18  # u16 size + GUID
_AFTER_TABLE = 32  # reset vector code after the footer
_ASEV_HEADER = 16
_ASEV_DESCRIPTOR = 12
_SNP_VMSA_GPA = 0xFFFF_FFFF_F000
_ZERO48 = bytes(48)
_PAGE_INFO = struct.Struct("<48s48sHBBBBBBQ")  # SNP ABI 8.17.2 Table 67, as in sevref.digest
_NORMAL, _VMSA, _ZERO, _SECRETS, _CPUID = 1, 2, 3, 5, 6  # PageType
_SEC_MEM, _SNP_SECRETS, _SNP_CPUID, _SVSM_CAA, _KERNEL_HASHES = 1, 2, 3, 4, 0x10  # SectionType
_BLANK_SECTIONS = {_SEC_MEM: _ZERO, _SVSM_CAA: _ZERO, _KERNEL_HASHES: _ZERO, _SNP_SECRETS: _SECRETS, _SNP_CPUID: _CPUID}
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U32X3 = struct.Struct("<III")


def _guid(text: str) -> bytes:
    """A GUID's bytes in UEFI order (:func:`sevref.binfmt._struct.guid_bytes`)."""
    a, b, c, d, e = text.split("-")
    return bytes.fromhex(a)[::-1] + bytes.fromhex(b)[::-1] + bytes.fromhex(c)[::-1] + bytes.fromhex(d + e)


_FOOTER = _guid("96b582de-1fb2-45f7-baea-a366c55a082d")
_RESET_BLOCK = _guid("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
_METADATA = _guid("dc886566-984a-4798-a75e-5585a7bf67cc")
_MIN_DATA = {
    _RESET_BLOCK: 4,
    _guid("7255371f-3a3b-4b04-927b-1da6efa8d454"): 8,  # kernel-hashes table area
    _guid("4c2eb361-7d9b-4cc3-8081-127c90d3d294"): 8,  # launch secret area
    _METADATA: 4,
}


def _signature(family: int, model: int, stepping: int) -> int:
    """CPUID Fn0000_0001 EAX (:func:`sevref.binfmt.vmsa.cpu_signature`)."""
    base, extended = (0xF, family - 0xF) if family > 0xF else (family, 0)
    return (extended << 20) | ((model >> 4) << 16) | (base << 8) | ((model & 0xF) << 4) | stepping


def _cpu_signatures() -> dict[str, int]:
    bases = {
        "EPYC": ((23, 1, 2), 5),
        "EPYC-Rome": ((23, 49, 0), 5),
        "EPYC-Milan": ((25, 1, 1), 3),
        "EPYC-Genoa": ((25, 17, 0), 2),
        "EPYC-Turin": ((26, 0, 0), 1),
    }
    table = {}
    for base, (fms, versions) in bases.items():
        names = [base, *(f"{base}-v{v}" for v in range(1, versions + 1))]
        names += ["EPYC-IBPB"] if base == "EPYC" else []
        table.update(dict.fromkeys((name.lower() for name in names), _signature(*fms)))
    return table


CPU_SIGNATURES = _cpu_signatures()
"""QEMU CPU model names, lowercase, to their signatures (:data:`sevref.binfmt.vmsa.CPU_MODELS`)."""


class Launch:
    """A checked launch: what the digest depends on besides the firmware."""

    __slots__ = ("features", "mode", "pin", "profile", "signature", "vcpus")

    def __init__(self, mode: str, pin: bytes | None, vcpus: int, signature: int, profile: str, features: int) -> None:
        """Hold the values :func:`check` read.

        Args:
            mode: sev, sev-es, sev-snp or sev-snp-firmware.
            pin: the firmware's SHA-256, if pinned.
            vcpus: 1..4096 (1 for sev and sev-snp-firmware).
            signature: the guest CPU's signature (SEV-ES, SEV-SNP).
            profile: legacy, init2 or init2-ap-fpu-zero (SEV-ES, SEV-SNP).
            features: the VMSA's SEV_FEATURES (SEV-ES, SEV-SNP).
        """
        self.mode = mode
        self.pin = pin
        self.vcpus = vcpus
        self.signature = signature
        self.profile = profile
        self.features = features


def _hex(text: str, bits: int) -> int | None:
    """:func:`sevref.values.parse_hex` of a string, or None where it would refuse."""
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if not digits or not digits.isascii() or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    number = int(digits, 16)
    return number if number < 1 << bits else None


def check(options: dict[str, str]) -> Launch | None:
    """Read ``sevref digest``'s options as the full path would, if this module can vouch for them.

    Args:
        options: option key (``mode``, ``vcpus``, ``cpu``, ...) to its text on
            the command line; ``mode`` and ``firmware`` are present.

    Returns:
        The launch, or None: an option this module does not take, a value the
        full path would refuse or word differently, or a launch it leaves to
        the full path.
    """
    mode = options["mode"]
    pin_text = options.get("firmware_sha256")
    pin = None
    if pin_text is not None:
        if len(pin_text) != 64 or _hex(pin_text, 256) is None or pin_text[:2] in ("0x", "0X"):
            return None
        pin = bytes.fromhex(pin_text)
    others = set(options) - {"mode", "firmware", "firmware_sha256"}
    if mode in ("sev", "sev-snp-firmware"):
        return None if others else Launch(mode, pin, 1, 0, "", 0)
    snp = mode == "sev-snp"
    features_key = "guest_features" if snp else "sev_features"
    if mode not in ("sev-es", "sev-snp") or others - {
        "vcpus",
        "cpu",
        "cpu_signature",
        "vmm",
        "vmsa_profile",
        features_key,
    }:
        return None
    vcpus_text = options.get("vcpus", "1")
    if not vcpus_text.isascii() or not vcpus_text.isdigit() or not 1 <= int(vcpus_text) <= _MAX_VCPUS:
        return None
    if options.get("vmm", "qemu") != "qemu" or ("cpu" in options) == ("cpu_signature" in options):
        return None
    signature = CPU_SIGNATURES.get(options["cpu"].lower()) if "cpu" in options else _hex(options["cpu_signature"], 32)
    profile = options.get("vmsa_profile", "init2" if snp else "legacy")
    features = _hex(options[features_key], 64) if features_key in options else int(snp)
    if signature is None or features is None or profile not in _PROFILES:
        return None
    if snp and (profile == "legacy" or not features & 1):
        return None
    if not snp and (features & 1 or (profile == "legacy" and features not in (0x0, 0x20))):
        return None
    return Launch(mode, pin, int(vcpus_text), signature, profile, features)


def vmsa_page(eip: int, signature: int, profile: str, features: int) -> bytes:
    """Build a QEMU vCPU's initial VMSA page (:func:`sevref.binfmt.vmsa.build_vmsa` with vmm qemu).

    Args:
        eip: the reset address (0xfffffff0 for the boot CPU).
        signature: the guest CPU's signature, in RDX.
        profile: legacy, init2 or init2-ap-fpu-zero (MXCSR and x87 FCW).
        features: SEV_FEATURES.

    Returns:
        4096 bytes.
    """
    page = bytearray(_PAGE)
    segment = struct.Struct("<HHIQ")  # selector, attrib, limit, base
    for offset in (0x00, 0x30, 0x40, 0x50):  # es, ds, fs, gs
        segment.pack_into(page, offset, 0, 0x93, 0xFFFF, 0)
    segment.pack_into(page, 0x10, 0xF000, 0x9B, 0xFFFF, eip & 0xFFFF_0000)  # cs
    segment.pack_into(page, 0x20, 0, 0x93, 0xFFFF, 0)  # ss
    segment.pack_into(page, 0x60, 0, 0, 0xFFFF, 0)  # gdtr
    segment.pack_into(page, 0x70, 0, 0x82, 0xFFFF, 0)  # ldtr
    segment.pack_into(page, 0x80, 0, 0, 0xFFFF, 0)  # idtr
    segment.pack_into(page, 0x90, 0, 0x8B, 0xFFFF, 0)  # tr
    u64 = struct.Struct("<Q")
    for offset, value in (
        (0x0D0, 0x1000),  # efer
        (0x148, 0x40),  # cr4
        (0x158, 0x10),  # cr0
        (0x160, 0x400),  # dr7
        (0x168, 0xFFFF_0FF0),  # dr6
        (0x170, 0x2),  # rflags
        (0x178, eip & 0xFFFF),  # rip
        (0x268, 0x0007_0406_0007_0406),  # g_pat
        (0x310, signature),  # rdx
        (0x3B0, features),  # sev_features
        (0x3E8, 0x1),  # xcr0
    ):
        u64.pack_into(page, offset, value)
    # init2-ap-fpu-zero: QEMU 10.1 and later give every AP FCW and MXCSR 0 (VmsaProfile.INIT2_AP_FPU_ZERO).
    if profile == "init2" or (profile == "init2-ap-fpu-zero" and eip == _BSP_EIP):
        _U32.pack_into(page, 0x408, 0x1F80)  # mxcsr
        _U16.pack_into(page, 0x410, 0x037F)  # x87_fcw
    return bytes(page)


def _table(data: bytes) -> dict[bytes, bytes] | None:
    """The footer table's entries by GUID, checked as :func:`sevref.binfmt.ovmf.parse_ovmf` checks them."""
    size = len(data)
    if size < _PAGE or size % _PAGE or data[size - _AFTER_TABLE - 16 : size - _AFTER_TABLE] != _FOOTER:
        return None
    footer = size - _AFTER_TABLE - 16 - 2
    (total,) = _U16.unpack_from(data, footer)
    if total < _ENTRY_HEADER or total - _ENTRY_HEADER > footer:
        return None
    entries: dict[bytes, bytes] = {}
    end, remaining = footer, total - _ENTRY_HEADER
    while remaining > 0:
        if remaining < _ENTRY_HEADER:
            return None
        header = end - _ENTRY_HEADER
        (length,) = _U16.unpack_from(data, header)
        guid = data[header + 2 : end]
        if length < _ENTRY_HEADER or length > remaining or guid in entries:
            return None
        start = end - length
        entries[guid] = data[start:header]
        if len(entries[guid]) < _MIN_DATA.get(guid, 0):
            return None
        end, remaining = start, remaining - length
    return entries


def _sections(data: bytes, entries: dict[bytes, bytes]) -> list[tuple[int, int, int]] | None:
    """The SEV-SNP metadata sections as (gpa, size, type), checked; [] when the image has none; None if malformed."""
    if _METADATA not in entries:
        return []
    size = len(data)
    start = size - _U32.unpack_from(entries[_METADATA])[0]
    if start < 0 or start + _ASEV_HEADER > size or data[start : start + 4] != b"ASEV":
        return None
    length, version, count = _U32X3.unpack_from(data, start + 4)
    if version != 1 or not _ASEV_HEADER <= length <= size - start or _ASEV_HEADER + count * _ASEV_DESCRIPTOR > length:
        return None
    sections = [_U32X3.unpack_from(data, start + _ASEV_HEADER + i * _ASEV_DESCRIPTOR) for i in range(count)]
    for gpa, section_size, _ in sections:
        if gpa % _PAGE or section_size % _PAGE or section_size == 0 or gpa + section_size > _FOUR_GIB:
            return None
    ordered = sorted(sections)
    if any(low[0] + low[1] > high[0] for low, high in itertools.pairwise(ordered)):
        return None
    return sections


def _extend(digest: bytes, page_type: int, gpa: int, contents: bytes) -> bytes:
    return hashlib.sha384(_PAGE_INFO.pack(digest, contents, 0x70, page_type, 0, 0, 0, 0, 0, gpa)).digest()


def _snp_firmware(data: bytes) -> bytes:
    """The SEV-SNP chain over the firmware pages (:attr:`sevref.digest.Firmware.snp_prefix`)."""
    digest, view, gpa = _ZERO48, memoryview(data), _FOUR_GIB - len(data)
    sha384, pack, size = hashlib.sha384, _PAGE_INFO.pack, _PAGE_INFO.size
    for offset in range(0, len(data), _PAGE):
        page = sha384(view[offset : offset + _PAGE]).digest()
        digest = sha384(pack(digest, page, size, _NORMAL, 0, 0, 0, 0, 0, gpa + offset)).digest()
    return digest


def launch_digest(data: bytes, launch: Launch) -> bytes | None:
    """Compute the launch digest of ``launch`` with the firmware image ``data``.

    Args:
        data: the firmware image.
        launch: from :func:`check`.

    Returns:
        The digest, as :func:`sevref.digest.launch_digest` computes it; or None
        when the image is one this module leaves to the full path (no footer
        table, malformed, not matching the pin, lacking what the launch needs).
    """
    entries = _table(data)
    sections = None if entries is None else _sections(data, entries)
    if entries is None or sections is None:
        return None
    state = hashlib.sha256(data) if launch.pin is not None or launch.mode in ("sev", "sev-es") else None
    if state is not None and launch.pin is not None and state.digest() != launch.pin:
        return None
    if state is not None and launch.mode == "sev":
        return state.digest()
    if launch.mode == "sev-snp-firmware":
        return _snp_firmware(data)
    reset = entries.get(_RESET_BLOCK)
    eip = 0 if reset is None else _U32.unpack_from(reset)[0]
    if eip == 0:
        return None
    bsp = vmsa_page(_BSP_EIP, launch.signature, launch.profile, launch.features)
    ap = vmsa_page(eip, launch.signature, launch.profile, launch.features)
    if state is not None and launch.mode == "sev-es":
        state.update(bsp)
        state.update(ap * (launch.vcpus - 1))
        return state.digest()
    if not sections or any(kind not in _BLANK_SECTIONS for _, _, kind in sections):
        return None
    if any(kind in (_SNP_SECRETS, _SNP_CPUID) and size != _PAGE for _, size, kind in sections):
        return None
    digest = _snp_firmware(data)
    for gpa, size, kind in sections:
        for offset in range(0, size, _PAGE):
            digest = _extend(digest, _BLANK_SECTIONS[kind], gpa + offset, _ZERO48)
    digest = _extend(digest, _VMSA, _SNP_VMSA_GPA, hashlib.sha384(bsp).digest())
    ap_sha384 = hashlib.sha384(ap).digest()
    for _ in range(launch.vcpus - 1):
        digest = _extend(digest, _VMSA, _SNP_VMSA_GPA, ap_sha384)
    return digest
