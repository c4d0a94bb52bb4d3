"""SEV-SNP attestation reports: the 1184-byte ATTESTATION_REPORT structure.

Layout: SEV Secure Nested Paging Firmware ABI Specification (AMD 56860),
Table 23 "ATTESTATION_REPORT Structure"; report version 2 (ABI 1.55), 3 (adds
the CPUID family, model and stepping at 0x188, ABI 1.57) and 5 (adds the
mitigation vectors at 0x1f8, ABI 1.58). The signature covers bytes
0x000..0x29f (:func:`signed_bytes`); r and s sit at 0x2a0 and 0x2e8 as 72-byte
little-endian integers (:func:`signature_rs`). This module only reads bytes:
checking the signature against AMD's key chain is :mod:`sevref.snp.verify`'s
job, judging the policy :mod:`sevref.snp.validate`'s (go-sev-guest's split of
``abi``, ``verify`` and ``validate``).

The certificate table of an extended report (:func:`parse_cert_table`) is read
here too: the GHCB specification (AMD 56421) gives its layout.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sevref.binfmt._struct import LEStruct, check_layout
from sevref.errors import ReportFormatError

__all__ = [
    "ARK_GUID",
    "ASK_GUID",
    "CERT_GUIDS",
    "REPORT_SIZE",
    "SIGNED_SIZE",
    "SIGNING_KEY_NONE",
    "SIGNING_KEY_VCEK",
    "SIGNING_KEY_VLEK",
    "VCEK_GUID",
    "VLEK_GUID",
    "AttestationReport",
    "Tcb",
    "decode_report",
    "is_turin",
    "parse_cert_table",
    "parse_report",
    "parse_tcb",
    "signature_rs",
    "signed_bytes",
    "signing_key",
]

REPORT_SIZE = 0x4A0
"""Every attestation report is 1184 bytes."""
_KNOWN_VERSIONS = range(2, 6)
_U8, _U32, _U64 = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint64


class AttestationReport(LEStruct):
    """ATTESTATION_REPORT (SNP ABI Table 23)."""

    _fields_ = [
        ("version", _U32),
        ("guest_svn", _U32),
        ("policy", _U64),
        ("family_id", _U8 * 16),
        ("image_id", _U8 * 16),
        ("vmpl", _U32),
        ("signature_algo", _U32),
        ("current_tcb", _U64),
        ("platform_info", _U64),
        ("signer_info", _U32),
        ("reserved_0x4c", _U8 * 4),
        ("report_data", _U8 * 64),
        ("measurement", _U8 * 48),
        ("host_data", _U8 * 32),
        ("id_key_digest", _U8 * 48),
        ("author_key_digest", _U8 * 48),
        ("report_id", _U8 * 32),
        ("report_id_ma", _U8 * 32),
        ("reported_tcb", _U64),
        ("cpuid_fam_id", _U8),
        ("cpuid_mod_id", _U8),
        ("cpuid_step", _U8),
        ("reserved_0x18b", _U8 * 21),
        ("chip_id", _U8 * 64),
        ("committed_tcb", _U64),
        ("current_build", _U8),
        ("current_minor", _U8),
        ("current_major", _U8),
        ("reserved_0x1eb", _U8),
        ("committed_build", _U8),
        ("committed_minor", _U8),
        ("committed_major", _U8),
        ("reserved_0x1ef", _U8),
        ("launch_tcb", _U64),
        ("launch_mit_vector", _U64),
        ("current_mit_vector", _U64),
        ("reserved_0x208", _U8 * 152),
        ("signature_r", _U8 * 72),
        ("signature_s", _U8 * 72),
        ("reserved_0x330", _U8 * 368),
    ]


SPEC_OFFSETS: Mapping[str, int] = MappingProxyType(
    {
        "version": 0x00,
        "policy": 0x08,
        "family_id": 0x10,
        "image_id": 0x20,
        "vmpl": 0x30,
        "signature_algo": 0x34,
        "current_tcb": 0x38,
        "platform_info": 0x40,
        "signer_info": 0x48,
        "report_data": 0x50,
        "measurement": 0x90,
        "host_data": 0xC0,
        "id_key_digest": 0xE0,
        "author_key_digest": 0x110,
        "report_id": 0x140,
        "report_id_ma": 0x160,
        "reported_tcb": 0x180,
        "cpuid_fam_id": 0x188,
        "chip_id": 0x1A0,
        "committed_tcb": 0x1E0,
        "current_build": 0x1E8,
        "committed_build": 0x1EC,
        "launch_tcb": 0x1F0,
        "launch_mit_vector": 0x1F8,
        "current_mit_vector": 0x200,
        "signature_r": 0x2A0,
        "signature_s": 0x2E8,
    }
)
"""Field offsets by the specification, checked against the declaration at import."""

check_layout(AttestationReport, REPORT_SIZE, dict(SPEC_OFFSETS))

_POLICY_BITS = {
    # SNP ABI Table 9 "Guest Policy Structure".
    16: "smt",
    18: "migrate_ma",
    19: "debug",
    20: "single_socket",
    21: "cxl_allow",
    22: "mem_aes_256_xts",
    23: "rapl_dis",
    24: "ciphertext_hiding_dram",
    25: "page_swap_disable",
}
_PLATFORM_BITS = {
    # SNP ABI Table 23, PLATFORM_INFO.
    0: "smt_enabled",
    1: "tsme_enabled",
    2: "ecc_enabled",
    3: "rapl_disabled",
    4: "ciphertext_hiding_dram_enabled",
    5: "alias_check_complete",
    7: "tio_enabled",
}
SIGNING_KEY_VCEK = 0
"""SIGNER_INFO.SIGNING_KEY (bits 4:2, SNP ABI Table 23): the report is signed with the chip's VCEK."""
SIGNING_KEY_VLEK = 1
"""SIGNING_KEY: signed with a VLEK, a key AMD issued to a cloud provider (its chain ends in the ASVK)."""
SIGNING_KEY_NONE = 7
"""SIGNING_KEY: the report is not signed."""
_SIGNING_KEYS = {SIGNING_KEY_VCEK: "VCEK", SIGNING_KEY_VLEK: "VLEK", SIGNING_KEY_NONE: "none"}
_SIGNATURE_ALGOS = {1: "ECDSA P-384 with SHA-384"}
_TURIN_FAMILY = 0x1A
SIGNED_SIZE = 0x2A0
"""The signature covers bytes 0x000..0x29f (SNP ABI Table 23; go-sev-guest ``abi.SignedComponent``)."""
_RS_SIZE = 72


def parse_report(data: bytes) -> AttestationReport:
    """Read an attestation report.

    Args:
        data: the report as the guest's /dev/sev-guest returns it (1184 bytes).

    Returns:
        The report.

    Raises:
        ReportFormatError: wrong size, or a report version sevref does not know.
    """
    if len(data) != REPORT_SIZE:
        raise ReportFormatError(
            f"attestation report is {len(data)} bytes; expected {REPORT_SIZE} (SNP ABI ATTESTATION_REPORT)"
        )
    report = AttestationReport.from_buffer_copy(data)
    if report.version not in _KNOWN_VERSIONS:
        raise ReportFormatError(
            f"attestation report at offset 0x0: version is {report.version}; expected "
            f"{_KNOWN_VERSIONS.start}..{_KNOWN_VERSIONS.stop - 1}"
        )
    return report


def _hex64(value: int) -> str:
    return f"{value:#018x}"


def _flags(value: int, names: Mapping[int, str]) -> dict[str, object]:
    decoded: dict[str, object] = {name: bool(value >> bit & 1) for bit, name in names.items()}
    decoded["value"] = _hex64(value)
    return decoded


def _tcb(value: int, turin: bool) -> dict[str, object]:
    """TCB_VERSION (SNP ABI Table 3): Turin moves the fields and adds FMC."""
    return {**parse_tcb(value, turin).parts(), "value": _hex64(value)}


def _amd_int(data: bytes) -> str:
    """AMD stores ECDSA r and s as little-endian integers."""
    return f"{int.from_bytes(data, 'little'):x}"


def decode_report(report: AttestationReport) -> dict[str, object]:
    """Decode every field of a report into JSON-ready values.

    Byte strings become lowercase hex, 64-bit values "0x…" strings, bit fields
    named booleans.

    Args:
        report: from :func:`parse_report`.

    Returns:
        Field name to decoded value, in the report's own order.
    """
    turin = report.version >= 3 and report.cpuid_fam_id == _TURIN_FAMILY
    policy = report.policy
    signer = report.signer_info
    decoded: dict[str, object] = {
        "version": report.version,
        "guest_svn": report.guest_svn,
        "policy": {
            "abi_minor": policy & 0xFF,
            "abi_major": policy >> 8 & 0xFF,
            **_flags(policy, _POLICY_BITS),
            "reserved_bit17_set": bool(policy >> 17 & 1),
        },
        "family_id": bytes(report.family_id).hex(),
        "image_id": bytes(report.image_id).hex(),
        "vmpl": report.vmpl,
        "signature_algo": {
            "value": report.signature_algo,
            "name": _SIGNATURE_ALGOS.get(report.signature_algo, "unknown"),
        },
        "current_tcb": _tcb(report.current_tcb, turin),
        "platform_info": _flags(report.platform_info, _PLATFORM_BITS),
        "signer_info": {
            "author_key_en": bool(signer & 1),
            "mask_chip_key": bool(signer >> 1 & 1),
            "signing_key": _SIGNING_KEYS.get(signer >> 2 & 7, f"reserved ({signer >> 2 & 7})"),
        },
        "report_data": bytes(report.report_data).hex(),
        "measurement": bytes(report.measurement).hex(),
        "host_data": bytes(report.host_data).hex(),
        "id_key_digest": bytes(report.id_key_digest).hex(),
        "author_key_digest": bytes(report.author_key_digest).hex(),
        "report_id": bytes(report.report_id).hex(),
        "report_id_ma": bytes(report.report_id_ma).hex(),
        "reported_tcb": _tcb(report.reported_tcb, turin),
        "cpuid": (
            {"family": report.cpuid_fam_id, "model": report.cpuid_mod_id, "stepping": report.cpuid_step}
            if report.version >= 3
            else None
        ),
        "chip_id": bytes(report.chip_id).hex(),
        "committed_tcb": _tcb(report.committed_tcb, turin),
        "current_version": f"{report.current_major}.{report.current_minor}.{report.current_build}",
        "committed_version": f"{report.committed_major}.{report.committed_minor}.{report.committed_build}",
        "launch_tcb": _tcb(report.launch_tcb, turin),
        "launch_mit_vector": _hex64(report.launch_mit_vector) if report.version >= 5 else None,
        "current_mit_vector": _hex64(report.current_mit_vector) if report.version >= 5 else None,
        "signature": {"r": _amd_int(bytes(report.signature_r)), "s": _amd_int(bytes(report.signature_s))},
    }
    return decoded


def signed_bytes(data: bytes) -> bytes:
    """The bytes of a report that its signature covers.

    Args:
        data: the whole report (1184 bytes).

    Returns:
        Bytes 0x000..0x29f.

    Raises:
        ReportFormatError: not a whole report.
    """
    if len(data) != REPORT_SIZE:
        raise ReportFormatError(
            f"attestation report is {len(data)} bytes; expected {REPORT_SIZE} (SNP ABI ATTESTATION_REPORT)"
        )
    return data[:SIGNED_SIZE]


def signature_rs(report: AttestationReport) -> tuple[int, int]:
    """The ECDSA signature of a report as integers.

    AMD stores r (at 0x2a0) and s (at 0x2e8) as 72-byte little-endian,
    zero-padded integers (SNP ABI Table 140 "ECDSA Signature Format"; go-sev-guest
    ``abi.ReportToSignatureDER``, ``ecdsaGetR``/``ecdsaGetS``).

    Args:
        report: from :func:`parse_report`.

    Returns:
        (r, s).
    """
    return (
        int.from_bytes(bytes(report.signature_r)[:_RS_SIZE], "little"),
        int.from_bytes(bytes(report.signature_s)[:_RS_SIZE], "little"),
    )


def signing_key(report: AttestationReport) -> int:
    """SIGNER_INFO.SIGNING_KEY: which key signed the report.

    Args:
        report: from :func:`parse_report`.

    Returns:
        :data:`SIGNING_KEY_VCEK`, :data:`SIGNING_KEY_VLEK`, :data:`SIGNING_KEY_NONE`
        or a reserved value (2..6), which the caller refuses.
    """
    return int(report.signer_info) >> 2 & 7


def is_turin(report: AttestationReport) -> bool:
    """Tell whether a report says it comes from a Turin (family 1Ah) processor.

    Only reports of version 3 or later carry the CPUID family (at 0x188); a
    version 2 report cannot say, and a verifier takes the product from the
    VCEK instead.

    Args:
        report: from :func:`parse_report`.

    Returns:
        True for family 1Ah.
    """
    return int(report.version) >= 3 and int(report.cpuid_fam_id) == _TURIN_FAMILY


@dataclass(frozen=True)
class Tcb:
    """A TCB_VERSION's security patch levels (SNP ABI Table 3)."""

    bootloader: int
    """BOOT_LOADER SPL."""
    tee: int
    """TEE SPL."""
    snp: int
    """SNP firmware SPL."""
    microcode: int
    """MICROCODE SPL."""
    fmc: int | None
    """FMC SPL: Turin (family 1Ah) only, None before."""

    def parts(self) -> dict[str, int]:
        """The levels by name, FMC only where the layout has it.

        Returns:
            Name to level, in the layout's byte order.
        """
        head = {} if self.fmc is None else {"fmc": self.fmc}
        return {**head, "bootloader": self.bootloader, "tee": self.tee, "snp": self.snp, "microcode": self.microcode}


def parse_tcb(value: int, turin: bool) -> Tcb:
    """Split a TCB_VERSION into its levels.

    SNP ABI Table 3: Milan and Genoa (family 19h) put BOOT_LOADER in byte 0,
    TEE in 1, SNP in 6 and MICROCODE in 7; Turin (family 1Ah) puts FMC in byte
    0, BOOT_LOADER in 1, TEE in 2, SNP in 3 and MICROCODE in 7.

    Args:
        value: the 64-bit TCB_VERSION.
        turin: the Turin layout.

    Returns:
        The levels.
    """
    raw = value.to_bytes(8, "little")
    if turin:
        return Tcb(bootloader=raw[1], tee=raw[2], snp=raw[3], microcode=raw[7], fmc=raw[0])
    return Tcb(bootloader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7], fmc=None)


# The certificate table of an extended report (GHCB specification, AMD 56421,
# section 4.1.8.1 "SNP Extended Guest Request"): entries of a 16-byte GUID, a
# u32 offset and a u32 length (little-endian), ended by an all-zero entry; the
# offsets count from the start of the table. GUIDs as go-sev-guest abi/abi.go
# (VcekGUID, VlekGUID, AskGUID, ArkGUID) names them, stored in the byte order
# of their text (go-sev-guest copies the 16 bytes into a uuid.UUID).
VCEK_GUID = "63da758d-e664-4564-adc5-f4b93be8accd"
"""The VCEK's entry of a certificate table."""
VLEK_GUID = "a8074bc2-a25a-483e-aae6-39c045a0b8a1"
"""The VLEK's entry."""
ASK_GUID = "4ab7b379-bbac-4fe4-a02f-05aef327c782"
"""The ASK's entry (or the ASVK's, for a VLEK)."""
ARK_GUID = "c0b406a4-a803-4952-9743-3fb6014cd0ae"
"""The ARK's entry."""
CERT_GUIDS: Mapping[str, str] = MappingProxyType(
    {VCEK_GUID: "VCEK", VLEK_GUID: "VLEK", ASK_GUID: "ASK", ARK_GUID: "ARK"}
)
"""The GUIDs sevref reads, with the key each names; others (e.g. go-sev-guest's extra platform info) are skipped."""
_ENTRY_SIZE = 24
_MAX_CERT_ENTRIES = 64


def _guid_text(raw: bytes) -> str:
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def parse_cert_table(data: bytes) -> tuple[tuple[str, bytes], ...]:
    """Read the certificate table of an extended report (SNP_GET_EXT_REPORT, snpguest's certificates).

    Args:
        data: the table and the certificates it points to.

    Returns:
        (GUID, certificate bytes) pairs, in table order.

    Raises:
        ReportFormatError: no terminating entry, an offset into the table
            itself or past the end, an empty entry, or a GUID given twice.
    """
    headers: list[tuple[str, int, int]] = []
    offset = 0
    while True:
        if offset + _ENTRY_SIZE > len(data):
            raise ReportFormatError(
                f"certificate table at offset {offset:#x}: {len(data) - offset} bytes left; expected a "
                f"{_ENTRY_SIZE}-byte entry (the table ends with an all-zero entry)"
            )
        raw = data[offset : offset + _ENTRY_SIZE]
        if raw == bytes(_ENTRY_SIZE):
            break
        if len(headers) == _MAX_CERT_ENTRIES:
            raise ReportFormatError(
                f"certificate table at offset {offset:#x}: more than {_MAX_CERT_ENTRIES} entries; expected the "
                "all-zero entry that ends the table"
            )
        guid = _guid_text(raw[:16])
        if any(guid == known for known, _, _ in headers):
            raise ReportFormatError(f"certificate table at offset {offset:#x}: GUID {guid} given twice; expected once")
        headers.append((guid, int.from_bytes(raw[16:20], "little"), int.from_bytes(raw[20:24], "little")))
        offset += _ENTRY_SIZE
    end_of_table = offset + _ENTRY_SIZE
    entries = []
    for number, (guid, start, length) in enumerate(headers):
        at = f"certificate table entry {number} ({CERT_GUIDS.get(guid, 'GUID ' + guid)})"
        if length == 0:
            raise ReportFormatError(f"{at}: length 0; expected a certificate")
        if start < end_of_table:
            raise ReportFormatError(
                f"{at}: offset {start:#x} points into the table; expected {end_of_table:#x} or more"
            )
        if start + length > len(data):
            raise ReportFormatError(f"{at}: bytes {start:#x}..{start + length:#x} end past the data ({len(data):#x})")
        entries.append((guid, data[start : start + length]))
    return tuple(entries)
