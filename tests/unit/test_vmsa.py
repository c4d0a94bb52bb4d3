"""The VMSA layout, the checked builder, CPU models and VMSA pages."""

from __future__ import annotations

import ctypes
import hashlib
import json
from pathlib import Path

import pytest

from sevref.binfmt._struct import LEStruct, check_layout
from sevref.binfmt.vmsa import (
    BSP_RESET_EIP,
    CPU_MODELS,
    SPEC_OFFSETS,
    SevEsSaveArea,
    VmcbSeg,
    Vmm,
    VmsaProfile,
    build_vmsa,
    cpu_signature,
    lookup_cpu_model,
)
from sevref.errors import ConfigError, LayoutError

PAGES = json.loads((Path(__file__).parent.parent / "vectors" / "vmsa_pages.json").read_text())["pages"]


def test_every_reserved_field_sits_at_its_offset() -> None:
    names = [name for name in SevEsSaveArea.field_names() if name.startswith("reserved_0x")]
    assert len(names) == 11
    for name in names:
        assert getattr(SevEsSaveArea, name).offset == int(name.removeprefix("reserved_"), 16), name
    assert ctypes.sizeof(SevEsSaveArea) == 4096


@pytest.mark.parametrize(
    ("name", "offset"),
    [("rip", 0x178), ("sev_features", 0x3B0), ("rdx", 0x310), ("mxcsr", 0x408), ("x87_fcw", 0x410), ("g_pat", 0x268)],
)
def test_spec_offsets(name: str, offset: int) -> None:
    assert SPEC_OFFSETS[name] == offset
    assert getattr(SevEsSaveArea, name).offset == offset


def test_check_layout_catches_a_misdeclared_reserved_field() -> None:
    class Bad(LEStruct):
        _fields_ = [("a", ctypes.c_uint32), ("reserved_0x8", ctypes.c_uint8 * 4)]

    with pytest.raises(LayoutError, match=r"Bad.reserved_0x8: expected at 0x8, declared at 0x4"):
        check_layout(Bad, 8)
    with pytest.raises(LayoutError, match="Bad: expected 16 bytes, declared 8"):
        check_layout(Bad, 16)


def test_builder_refuses_unknown_fields() -> None:
    # sev-snp-measure's VMSA_SVSM passes fcw= where the field is x87_fcw.
    with pytest.raises(LayoutError, match="SevEsSaveArea has no field 'fcw'"):
        SevEsSaveArea.build(fcw=0x37F)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"x87_fcw": 0x1_0000}, r"SevEsSaveArea.x87_fcw: expected 0 <= value < 0x10000, found 0x10000"),
        ({"rip": -1}, "SevEsSaveArea.rip: expected 0 <= value"),
        ({"rip": True}, "expected an integer, found bool"),
        ({"fpreg_x87": b"\0" * 79}, "SevEsSaveArea.fpreg_x87: expected 80 bytes, found 79 bytes"),
        ({"cs": 5}, "SevEsSaveArea.cs: expected a VmcbSeg, found int"),
    ],
)
def test_builder_refuses_values_that_do_not_fit(values: dict[str, object], message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        SevEsSaveArea.build(**values)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: f"{p['source']}-{p['cpu_signature']}-{p['profile']}-{p['eip']}")
def test_known_pages(page: dict[str, str]) -> None:
    data = build_vmsa(
        eip=int(page["eip"], 16),
        vmm=Vmm.QEMU,
        profile=VmsaProfile(page["profile"]),
        cpu_signature=int(page["cpu_signature"], 16),
        sev_features=0,
    )
    assert len(data) == 4096
    assert hashlib.sha256(data).hexdigest().startswith(page["sha256"])


def test_bsp_and_ap_differ_only_in_cs_base_and_rip() -> None:
    kwargs = {"vmm": Vmm.QEMU, "profile": VmsaProfile.INIT2, "cpu_signature": 0xA00F11, "sev_features": 0}
    bsp = build_vmsa(eip=BSP_RESET_EIP, **kwargs)
    ap = build_vmsa(eip=0x80B004, **kwargs)
    differing = {i for i in range(4096) if bsp[i] != ap[i]}
    assert differing <= set(range(0x18, 0x20)) | set(range(0x178, 0x180))
    assert int.from_bytes(ap[0x178:0x180], "little") == 0xB004
    assert int.from_bytes(ap[0x18:0x20], "little") == 0x800000
    assert int.from_bytes(bsp[0x18:0x20], "little") == 0xFFFF0000


def _u(page: bytes, offset: int, size: int) -> int:
    return int.from_bytes(page[offset : offset + size], "little")


@pytest.mark.parametrize("vmm", [Vmm.EC2, Vmm.GCE])
def test_cloud_vmms(vmm: Vmm) -> None:
    # research/sev-snp-measure-oracle.md §2.2, vmm table.
    bsp = build_vmsa(eip=BSP_RESET_EIP, vmm=vmm, profile=None, cpu_signature=None, sev_features=1)
    ap = build_vmsa(eip=0x80B004, vmm=vmm, profile=None, cpu_signature=None, sev_features=1)
    assert _u(bsp, 0x310, 8) == 0x600  # RDX
    assert _u(bsp, 0x408, 4) == 0 and _u(bsp, 0x410, 2) == 0  # no FPU state
    assert _u(bsp, 0x3B0, 8) == 1
    cs_bsp, cs_ap, ss, tr = _u(bsp, 0x12, 2), _u(ap, 0x12, 2), _u(bsp, 0x22, 2), _u(bsp, 0x92, 2)
    if vmm is Vmm.EC2:
        assert (cs_bsp, cs_ap, ss, tr) == (0x9A, 0x9B, 0x92, 0x83)
        assert _u(bsp, 0x268, 8) == 0x0007040600070406
    else:
        assert (cs_bsp, cs_ap, ss, tr) == (0x9B, 0x9B, 0x93, 0x8B)
        assert _u(bsp, 0x268, 8) == 0x00070106


def test_profile_and_signature_belong_to_qemu() -> None:
    with pytest.raises(ConfigError, match="vmm ec2: vmsa_profile applies to vmm qemu only"):
        build_vmsa(eip=BSP_RESET_EIP, vmm=Vmm.EC2, profile=VmsaProfile.LEGACY, cpu_signature=None, sev_features=0)
    with pytest.raises(ConfigError, match="vmm qemu: a VMSA needs both"):
        build_vmsa(eip=BSP_RESET_EIP, vmm=Vmm.QEMU, profile=None, cpu_signature=0, sev_features=0)


@pytest.mark.parametrize(
    ("family", "model", "stepping", "signature"),
    [
        (23, 1, 2, 0x800F12),  # EPYC
        (23, 49, 0, 0x830F10),  # EPYC-Rome
        (25, 1, 1, 0xA00F11),  # EPYC-Milan
        (25, 17, 0, 0xA10F10),  # EPYC-Genoa
        (25, 17, 1, 0xA10F11),  # a Genoa B1 host (-cpu host)
        (26, 0, 0, 0xB00F00),  # EPYC-Turin
        (14, 1, 2, 0x0E12),  # upstream sev-snp-measure tests/test_vcpu_types.py
        (0, 0, 0, 0),
        (0x10E, 0xFF, 0xF, 0xFFF0FFF),
    ],
)
def test_cpu_signature(family: int, model: int, stepping: int, signature: int) -> None:
    assert cpu_signature(family, model, stepping) == signature


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0x10F, 0, 0), "cpu family: expected 0..270, found 271"),
        ((25, 256, 0), "cpu model"),
        ((25, 1, 16), "cpu stepping"),
        ((-1, 0, 0), "family"),
    ],
)
def test_cpu_signature_ranges(args: tuple[int, int, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cpu_signature(*args)


def test_cpu_models() -> None:
    expected = {
        "EPYC": 0x800F12,
        "EPYC-Rome": 0x830F10,
        "EPYC-Milan": 0xA00F11,
        "EPYC-Genoa": 0xA10F10,
        "EPYC-Turin": 0xB00F00,
    }
    for name, model in CPU_MODELS.items():
        base = next(b for b in sorted(expected, key=len, reverse=True) if name.startswith(b))
        assert model.signature == expected[base], name
    for name in ("EPYC-v1", "EPYC-v4", "EPYC-IBPB", "EPYC-Rome-v4", "EPYC-Milan-v3", "EPYC-Genoa-v1", "EPYC-Turin"):
        assert name in CPU_MODELS
    assert lookup_cpu_model("epyc-milan-v2").name == "EPYC-Milan-v2"
    with pytest.raises(ConfigError, match="cpu: unknown CPU model 'EPYC-Bergamo'; expected one of EPYC, EPYC-v1"):
        lookup_cpu_model("EPYC-Bergamo")


def test_vmcb_seg_layout() -> None:
    seg = VmcbSeg.build(selector=0xF000, attrib=0x9B, limit=0xFFFF, base=0xFFFF0000)
    assert seg.to_bytes() == bytes.fromhex("00f09b00ffff00000000ffff00000000")
