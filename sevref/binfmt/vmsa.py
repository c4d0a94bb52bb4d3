"""The SEV-ES/SEV-SNP VM save area (VMSA): one 4096-byte page per vCPU.

Layout: AMD APM Vol. 2, Table B-4 ("VMSA Layout, State Save Area for SEV-ES"),
as Linux declares it in ``struct sev_es_save_area`` (``arch/x86/include/asm/svm.h``).
Initial register values: QEMU ``x86_cpu_reset`` plus what KVM adds
(``sev_es_sync_vmsa``), cross-checked byte for byte against the two VMSA pages
Dov Murik dumped from a real EPYC-Rome host (qemu-devel, 2021-12-16).

BSP and AP pages differ in CS.base and RIP: the BSP starts at the reset
vector 0xfffffff0, APs at the address the firmware's SEV-ES reset block names.
From QEMU 10.1 on the INIT2 path they differ in MXCSR and x87 FCW too
(:attr:`VmsaProfile.INIT2_AP_FPU_ZERO`).
"""

from __future__ import annotations

import ctypes
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from sevref.binfmt._struct import LEStruct, check_layout
from sevref.errors import ConfigError

__all__ = [
    "BSP_RESET_EIP",
    "CPU_MODELS",
    "EC2_LEGACY_RDX",
    "EC2_RDX",
    "VMSA_SIZE",
    "CpuModel",
    "SevEsSaveArea",
    "VmcbSeg",
    "Vmm",
    "VmsaProfile",
    "build_vmsa",
    "cpu_signature",
    "lookup_cpu_model",
]

VMSA_SIZE = 4096
"""Every VMSA is one 4 KiB page."""
BSP_RESET_EIP = 0xFFFF_FFF0
"""The x86 reset vector: CS.base 0xffff0000, IP 0xfff0."""

u8, u16, u32, u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64


class VmcbSeg(LEStruct):
    """A segment register: ``struct vmcb_seg`` (16 bytes)."""

    _fields_ = [("selector", u16), ("attrib", u16), ("limit", u32), ("base", u64)]


class SevEsSaveArea(LEStruct):
    """The VMSA page (APM Vol. 2 Table B-4; Linux ``struct sev_es_save_area``)."""

    _fields_ = [
        ("es", VmcbSeg),
        ("cs", VmcbSeg),
        ("ss", VmcbSeg),
        ("ds", VmcbSeg),
        ("fs", VmcbSeg),
        ("gs", VmcbSeg),
        ("gdtr", VmcbSeg),
        ("ldtr", VmcbSeg),
        ("idtr", VmcbSeg),
        ("tr", VmcbSeg),
        ("vmpl0_ssp", u64),
        ("vmpl1_ssp", u64),
        ("vmpl2_ssp", u64),
        ("vmpl3_ssp", u64),
        ("u_cet", u64),
        ("reserved_0xc8", u8 * 2),
        ("vmpl", u8),
        ("cpl", u8),
        ("reserved_0xcc", u8 * 4),
        ("efer", u64),
        ("reserved_0xd8", u8 * 104),
        ("xss", u64),
        ("cr4", u64),
        ("cr3", u64),
        ("cr0", u64),
        ("dr7", u64),
        ("dr6", u64),
        ("rflags", u64),
        ("rip", u64),
        ("dr0", u64),
        ("dr1", u64),
        ("dr2", u64),
        ("dr3", u64),
        ("dr0_addr_mask", u64),
        ("dr1_addr_mask", u64),
        ("dr2_addr_mask", u64),
        ("dr3_addr_mask", u64),
        ("reserved_0x1c0", u8 * 24),
        ("rsp", u64),
        ("s_cet", u64),
        ("ssp", u64),
        ("isst_addr", u64),
        ("rax", u64),
        ("star", u64),
        ("lstar", u64),
        ("cstar", u64),
        ("sfmask", u64),
        ("kernel_gs_base", u64),
        ("sysenter_cs", u64),
        ("sysenter_esp", u64),
        ("sysenter_eip", u64),
        ("cr2", u64),
        ("reserved_0x248", u8 * 32),
        ("g_pat", u64),
        ("dbgctl", u64),
        ("br_from", u64),
        ("br_to", u64),
        ("last_excp_from", u64),
        ("last_excp_to", u64),
        ("reserved_0x298", u8 * 80),
        ("pkru", u32),
        ("tsc_aux", u32),
        ("reserved_0x2f0", u8 * 24),
        ("rcx", u64),
        ("rdx", u64),
        ("rbx", u64),
        ("reserved_0x320", u64),
        ("rbp", u64),
        ("rsi", u64),
        ("rdi", u64),
        ("r8", u64),
        ("r9", u64),
        ("r10", u64),
        ("r11", u64),
        ("r12", u64),
        ("r13", u64),
        ("r14", u64),
        ("r15", u64),
        ("reserved_0x380", u8 * 16),
        ("guest_exit_info_1", u64),
        ("guest_exit_info_2", u64),
        ("guest_exit_int_info", u64),
        ("guest_nrip", u64),
        ("sev_features", u64),
        ("vintr_ctrl", u64),
        ("guest_exit_code", u64),
        ("virtual_tom", u64),
        ("tlb_id", u64),
        ("pcpu_id", u64),
        ("event_inj", u64),
        ("xcr0", u64),
        ("reserved_0x3f0", u8 * 16),
        ("x87_dp", u64),
        ("mxcsr", u32),
        ("x87_ftw", u16),
        ("x87_fsw", u16),
        ("x87_fcw", u16),
        ("x87_fop", u16),
        ("x87_ds", u16),
        ("x87_cs", u16),
        ("x87_rip", u64),
        ("fpreg_x87", u8 * 80),
        ("fpreg_xmm", u8 * 256),
        ("fpreg_ymm", u8 * 256),
        ("reserved_0x670", u8 * 2448),
    ]


SPEC_OFFSETS: Mapping[str, int] = MappingProxyType(
    {
        # APM Vol. 2 Table B-4; the bold rows of research/sev-snp-measure-oracle.md §2.2.
        "es": 0x000,
        "cs": 0x010,
        "ss": 0x020,
        "ds": 0x030,
        "fs": 0x040,
        "gs": 0x050,
        "gdtr": 0x060,
        "ldtr": 0x070,
        "idtr": 0x080,
        "tr": 0x090,
        "vmpl": 0x0CA,
        "cpl": 0x0CB,
        "efer": 0x0D0,
        "xss": 0x140,
        "cr4": 0x148,
        "cr3": 0x150,
        "cr0": 0x158,
        "dr7": 0x160,
        "dr6": 0x168,
        "rflags": 0x170,
        "rip": 0x178,
        "rsp": 0x1D8,
        "rax": 0x1F8,
        "cr2": 0x240,
        "g_pat": 0x268,
        "pkru": 0x2E8,
        "tsc_aux": 0x2EC,
        "rcx": 0x308,
        "rdx": 0x310,
        "rbx": 0x318,
        "r15": 0x378,
        "sev_features": 0x3B0,
        "virtual_tom": 0x3C8,
        "xcr0": 0x3E8,
        "x87_dp": 0x400,
        "mxcsr": 0x408,
        "x87_ftw": 0x40C,
        "x87_fsw": 0x40E,
        "x87_fcw": 0x410,
        "fpreg_x87": 0x420,
        "fpreg_xmm": 0x470,
        "fpreg_ymm": 0x570,
    }
)
"""Field offsets by the specification, checked against the declaration at import."""

check_layout(SevEsSaveArea, VMSA_SIZE, dict(SPEC_OFFSETS))
check_layout(VmcbSeg, 16, {"selector": 0, "attrib": 2, "limit": 4, "base": 8})


class Vmm(enum.StrEnum):
    """The virtual machine monitor that builds the initial vCPU state."""

    QEMU = "qemu"
    """QEMU/KVM."""
    EC2 = "ec2"
    """Amazon EC2, which offers SEV-SNP instances only."""
    GCE = "gce"
    """Google Compute Engine; it offers SEV and SEV-SNP, sevref models its SEV-SNP launches."""


class VmsaProfile(enum.StrEnum):
    """The rule that decided a QEMU launch's VMSA pages: KVM's init API, and QEMU's AP state.

    Linux 6.10 added ``KVM_SEV_INIT2``; with it KVM copies the vCPU's FPU state
    (QEMU's reset values MXCSR 0x1f80, x87 FCW 0x037f) into each VMSA at
    ``LAUNCH_UPDATE_VMSA`` (Linux ``sev_es_sync_vmsa``, only when ``vm_type !=
    KVM_X86_DEFAULT_VM``). The legacy ``KVM_SEV_INIT``/``KVM_SEV_ES_INIT`` path
    leaves both 0 "to avoid breaking older measurements". QEMU's default
    ``legacy-vm-type=auto`` picks the legacy path for SEV and SEV-ES; SEV-SNP
    always uses INIT2 (QEMU ``sev_snp_kvm_type``).

    QEMU 10.1 changed what the APs start with: ``sev_es_save_reset_vector()``
    builds each AP's context with ``sev_es_set_ap_context()`` →
    ``initialize_vmsa()``, which zeroes the save area and never copies the x87
    FCW or MXCSR, and ``sev_apply_cpu_context()`` (called at every reset from
    ``kvm_arch_reset_vcpu()`` through ``sev_es_set_reset_vector()``) loads that
    context, FCW 0 and MXCSR 0 included, into every AP (QEMU 10.1.0 and 10.2.2
    ``target/i386/sev.c``; Roy Hopkins, "i386/sev: Refactor setting of reset
    vector and initial CPU state", pull for the 10.1 soft freeze, 2025-07-14).
    On the INIT2 path KVM then copies those zeros into the AP VMSAs, while the
    BSP keeps QEMU's reset values. On the legacy path KVM copies no FPU state,
    so the change leaves legacy VMSAs as they were. Derived from the sources;
    no SEV hardware has confirmed it yet (``docs/host-stacks.md``).
    """

    LEGACY = "legacy"
    """KVM_SEV_INIT / KVM_SEV_ES_INIT: MXCSR and FCW 0 in every VMSA."""
    INIT2 = "init2"
    """KVM_SEV_INIT2 from QEMU 9.1 to 10.0: MXCSR 0x1f80, FCW 0x037f in every VMSA."""
    INIT2_AP_FPU_ZERO = "init2-ap-fpu-zero"
    """KVM_SEV_INIT2 from QEMU 10.1: the BSP's MXCSR 0x1f80 and FCW 0x037f, every AP's 0 and 0."""

    @property
    def uses_init2(self) -> bool:
        """Whether the host initialised the guest with KVM_SEV_INIT2."""
        return self is not VmsaProfile.LEGACY


@dataclass(frozen=True)
class _VmmState:
    """Initial register values that differ between VMMs."""

    cs_attrib_bsp: int
    cs_attrib_ap: int
    ss_attrib: int
    tr_attrib: int
    g_pat: int
    fixed_rdx: int | None  # None: RDX is the guest CPU's signature


EC2_RDX = 0x600
"""RDX of every EC2 VMSA today: the x86 reset value (family 6), as EC2 sets it.

sev-snp-measure 0.0.13 (commit 4a02bf0 by John Berg of AWS, PR #60, April 2026):
"The rdx field in the VMSA used to be 0x0, but is now 0x600", checked against a
live c6a.xlarge launch. AWS did not say when EC2 changed; launches from before
have RDX :data:`EC2_LEGACY_RDX`.
"""
EC2_LEGACY_RDX = 0x0
"""RDX of EC2 VMSAs before the change to :data:`EC2_RDX` (sev-snp-measure 0.0.6 to 0.0.12 build it)."""

_DEFAULT_PAT = 0x0007_0406_0007_0406  # PAT MSR reset value, APM Vol. 2 §A.3
_VMM_STATE = {
    # QEMU x86_cpu_reset: CS DESC_P|S|CS|R|A = 0x9b, data 0x93, TR type 11 = 0x8b.
    Vmm.QEMU: _VmmState(0x9B, 0x9B, 0x93, 0x8B, _DEFAULT_PAT, None),
    # EC2: sev-snp-measure 0.0.13 (PR #60, confirmed by AWS against a live c6a
    # launch): BSP CS not accessed (0x9a), SS 0x92, TR 0x83, RDX the reset value 0x600.
    Vmm.EC2: _VmmState(0x9A, 0x9B, 0x92, 0x83, _DEFAULT_PAT, EC2_RDX),
    # GCE: sev-snp-measure 0.0.12+ (PR #56): the hypervisor writes PAT 0x70106.
    Vmm.GCE: _VmmState(0x9B, 0x9B, 0x93, 0x8B, 0x0007_0106, 0x600),
}
_RESET_FPU = (0x1F80, 0x037F)  # QEMU x86_cpu_reset_hold: mxcsr 0x1f80, fpuc 0x37f
_ZERO_FPU = (0, 0)
_FPU_STATE = {
    # (MXCSR, x87 FCW) of the BSP, then of every AP.
    VmsaProfile.LEGACY: (_ZERO_FPU, _ZERO_FPU),
    VmsaProfile.INIT2: (_RESET_FPU, _RESET_FPU),
    VmsaProfile.INIT2_AP_FPU_ZERO: (_RESET_FPU, _ZERO_FPU),
}


@dataclass(frozen=True)
class CpuModel:
    """A QEMU ``-cpu`` model and the CPUID signature it puts in RDX."""

    name: str
    """QEMU's model name."""
    family: int
    """CPU family (decimal, as QEMU's builtin_x86_defs gives it)."""
    model: int
    """CPU model."""
    stepping: int
    """CPU stepping."""

    @property
    def signature(self) -> int:
        """CPUID Fn0000_0001 EAX for this model."""
        return cpu_signature(self.family, self.model, self.stepping)


def cpu_signature(family: int, model: int, stepping: int) -> int:
    """Encode family, model and stepping as CPUID Fn0000_0001 EAX.

    Families above 0xf put 0xf in the base family and the rest in the extended
    family (QEMU ``x86_cpuid_version_set_family``); the model's high nibble goes
    to the extended model.

    Args:
        family: 0..0x10e.
        model: 0..0xff.
        stepping: 0..0xf.

    Returns:
        The 32-bit signature.

    Raises:
        ConfigError: a value is outside what QEMU accepts.
    """
    for name, value, limit in (("family", family, 0xFF + 0xF), ("model", model, 0xFF), ("stepping", stepping, 0xF)):
        if not 0 <= value <= limit:
            raise ConfigError(f"cpu {name}: expected 0..{limit}, found {value}")
    base_family, ext_family = (0xF, family - 0xF) if family > 0xF else (family, 0)
    return (ext_family << 20) | ((model >> 4) << 16) | (base_family << 8) | ((model & 0xF) << 4) | stepping


def _models() -> dict[str, CpuModel]:
    # QEMU target/i386/cpu.c builtin_x86_defs. Versioned models (-vN) only change
    # features, cache info and model-id, never family/model/stepping; EPYC-IBPB
    # is an alias of EPYC-v2.
    bases = {
        "EPYC": ((23, 1, 2), 5),
        "EPYC-Rome": ((23, 49, 0), 5),
        "EPYC-Milan": ((25, 1, 1), 3),
        "EPYC-Genoa": ((25, 17, 0), 2),
        "EPYC-Turin": ((26, 0, 0), 1),
    }
    models: dict[str, CpuModel] = {}
    for base, ((family, model, stepping), versions) in bases.items():
        names = [base, *(f"{base}-v{v}" for v in range(1, versions + 1))]
        if base == "EPYC":
            names.append("EPYC-IBPB")
        for name in names:
            models[name] = CpuModel(name, family, model, stepping)
    return models


CPU_MODELS: Mapping[str, CpuModel] = MappingProxyType(_models())
"""QEMU CPU models by name."""


def lookup_cpu_model(name: str) -> CpuModel:
    """Find a QEMU CPU model by name, ignoring case.

    Args:
        name: e.g. ``EPYC-Milan`` or ``epyc-milan-v2``.

    Returns:
        The model, with its canonical name.

    Raises:
        ConfigError: no such model.
    """
    for model in CPU_MODELS.values():
        if model.name.lower() == name.lower():
            return model
    raise ConfigError(
        f"cpu: unknown CPU model {name!r}; expected one of {', '.join(CPU_MODELS)} "
        f"(for -cpu host give the host's signature instead)"
    )


@lru_cache(maxsize=256)
def build_vmsa(
    *,
    eip: int,
    vmm: Vmm,
    profile: VmsaProfile | None,
    cpu_signature: int | None,
    sev_features: int,
) -> bytes:
    """Build the initial VMSA page of one vCPU.

    Args:
        eip: where the vCPU starts: :data:`BSP_RESET_EIP` for the boot CPU, the
            firmware's AP reset address for the others.
        vmm: who builds the initial state.
        profile: the rule for QEMU's VMSAs (QEMU only; None for EC2 and GCE).
        cpu_signature: the guest CPU's CPUID signature, which goes to RDX
            (QEMU); for EC2, None (its current RDX, :data:`EC2_RDX`) or
            :data:`EC2_LEGACY_RDX` for launches from before EC2 changed it;
            for GCE, None (GCE fixes RDX itself).
        sev_features: the SEV_FEATURES field.

    Returns:
        Exactly 4096 bytes.

    Raises:
        ConfigError: the arguments do not fit the VMM.
    """
    state = _VMM_STATE[vmm]
    if vmm is Vmm.QEMU:
        if profile is None or cpu_signature is None:
            raise ConfigError("vmm qemu: a VMSA needs both a vmsa_profile and a cpu_signature")
        rdx = cpu_signature
        bsp_fpu, ap_fpu = _FPU_STATE[profile]
        mxcsr, fcw = bsp_fpu if eip == BSP_RESET_EIP else ap_fpu
    else:
        if profile is not None:
            raise ConfigError(f"vmm {vmm}: vmsa_profile applies to vmm qemu only, found {profile}")
        rdx = state.fixed_rdx or 0
        if cpu_signature is not None:
            if vmm is not Vmm.EC2 or cpu_signature != EC2_LEGACY_RDX:
                raise ConfigError(
                    f"vmm {vmm}: RDX can only be set to EC2's earlier {EC2_LEGACY_RDX:#x}, found {cpu_signature:#x}"
                )
            rdx = cpu_signature
        mxcsr, fcw = 0, 0
    data = VmcbSeg.build(selector=0, attrib=0x93, limit=0xFFFF, base=0)
    page = SevEsSaveArea.build(
        es=data,
        cs=VmcbSeg.build(
            selector=0xF000,
            attrib=state.cs_attrib_bsp if eip == BSP_RESET_EIP else state.cs_attrib_ap,
            limit=0xFFFF,
            base=eip & 0xFFFF_0000,
        ),
        ss=VmcbSeg.build(attrib=state.ss_attrib, limit=0xFFFF),
        ds=data,
        fs=data,
        gs=data,
        gdtr=VmcbSeg.build(limit=0xFFFF),
        idtr=VmcbSeg.build(limit=0xFFFF),
        ldtr=VmcbSeg.build(attrib=0x82, limit=0xFFFF),
        tr=VmcbSeg.build(attrib=state.tr_attrib, limit=0xFFFF),
        efer=0x1000,  # EFER.SVME, set by KVM
        cr4=0x40,  # CR4.MCE, copied from the host by KVM svm_set_cr4
        cr0=0x10,  # CR0.ET; KVM clears CD/NW (KVM_X86_QUIRK_CD_NW_CLEARED)
        dr7=0x400,
        dr6=0xFFFF_0FF0,
        rflags=0x2,
        rip=eip & 0xFFFF,
        g_pat=state.g_pat,
        rdx=rdx,
        sev_features=sev_features,
        xcr0=0x1,
        mxcsr=mxcsr,
        x87_fcw=fcw,
    )
    return page.to_bytes()
