"""The pure parts of sevref.export (the exports themselves run libvirt's tool in tests/test_export.py)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref.binfmt.vmsa import CPU_MODELS, cpu_signature
from sevref.export import TrusteeEncoding, cpu_fms

# CPUID Fn0000_0001 EAX of QEMU's models (target/i386/cpu.c builtin_x86_defs gives
# family, model and stepping in decimal; x86_cpuid_version_set_family puts families
# above 0xf as 0xf plus an extended family, and the model's high nibble in the
# extended model).
KNOWN_SIGNATURES = {
    "EPYC": (0x800F12, (23, 1, 2)),
    "EPYC-Rome": (0x830F10, (23, 49, 0)),
    "EPYC-Milan": (0xA00F11, (25, 1, 1)),
    "EPYC-Genoa": (0xA10F10, (25, 17, 0)),
    "EPYC-Turin": (0xB00F00, (26, 0, 0)),
}


@pytest.mark.parametrize("name", KNOWN_SIGNATURES)
def test_known_signatures(name: str) -> None:
    signature, fms = KNOWN_SIGNATURES[name]
    assert CPU_MODELS[name].signature == signature
    assert cpu_fms(signature) == fms


@pytest.mark.parametrize("name", sorted(CPU_MODELS))
def test_every_named_model_splits_back_into_qemus_family_model_and_stepping(name: str) -> None:
    model = CPU_MODELS[name]
    assert cpu_fms(model.signature) == (model.family, model.model, model.stepping)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFF + 0xF), st.integers(0, 0xFF), st.integers(0, 0xF))
def test_cpu_fms_inverts_qemus_composition(family: int, model: int, stepping: int) -> None:
    assert cpu_fms(cpu_signature(family, model, stepping)) == (family, model, stepping)


def test_trustee_encodings() -> None:
    digest = bytes(range(48))
    assert TrusteeEncoding.HEX.write(digest) == digest.hex()
    assert TrusteeEncoding.BASE64.write(digest) == base64.b64encode(digest).decode("ascii")
    assert TrusteeEncoding.BASE64.write(b"\xff" * 3) == "////"  # the standard alphabet, not the URL-safe one
