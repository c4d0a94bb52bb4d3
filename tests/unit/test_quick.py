"""sevref.quick and ``sevref digest``'s quick path: the same digests as the full path, or none.

The quick path may decline anything (the full path then answers), but whatever
it answers must be exactly what the full path prints, and it must decline
whatever the full path refuses. Hypothesis draws command lines (well-formed and
not) over firmware images real, synthetic and mutated, and runs each through
both paths.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from sevref import quick
from sevref._cli import _quick, main
from sevref._cli._quick import quick_digest
from sevref.binfmt._struct import guid_bytes
from sevref.binfmt.ovmf import (
    FOOTER_GUID,
    SEV_ES_RESET_BLOCK_GUID,
    SEV_HASH_TABLE_RV_GUID,
    SEV_METADATA_GUID,
    SEV_SECRET_GUID,
)
from sevref.binfmt.vmsa import BSP_RESET_EIP, CPU_MODELS, Vmm, VmsaProfile, build_vmsa
from sevref.digest import MAX_VCPUS
from tests.images import amdsev_image, legacy_image, ovmf_image, snp_image
from tests.unit.test_snp import HOSTILE, MEASURE_ERRORS, SECTIONS


def test_the_cpu_table_is_binfmts() -> None:
    assert {name.lower(): model.signature for name, model in CPU_MODELS.items()} == quick.CPU_SIGNATURES


def test_the_guids_are_binfmts() -> None:
    for guid in (FOOTER_GUID, SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_RV_GUID, SEV_METADATA_GUID, SEV_SECRET_GUID):
        assert quick._guid(guid) == guid_bytes(guid)


@settings(max_examples=300)
@given(
    eip=st.one_of(st.just(BSP_RESET_EIP), st.integers(0, 0xFFFF_FFFF)),
    signature=st.integers(0, 0xFFFF_FFFF),
    profile=st.sampled_from(VmsaProfile),
    features=st.integers(0, (1 << 64) - 1),
)
def test_vmsa_pages_are_binfmts(eip: int, signature: int, profile: VmsaProfile, features: int) -> None:
    expected = build_vmsa(eip=eip, vmm=Vmm.QEMU, profile=profile, cpu_signature=signature, sev_features=features)
    assert quick.vmsa_page(eip, signature, str(profile), features) == expected


def _mutated(image: bytes, edits: list[tuple[int, int]]) -> bytes:
    """The image with bytes replaced near its end, where the footer table and the metadata sit."""
    data = bytearray(image)
    for back, value in edits:
        data[len(data) - 1 - back] = value
    return bytes(data)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, debian_ovmf: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("quick")
    made = {
        "amdsev": amdsev_image(64 * 4096),
        "snp": snp_image(SECTIONS, size=16 * 4096),
        "es only": ovmf_image([(SEV_ES_RESET_BLOCK_GUID, (0x80B004).to_bytes(4, "little"))], size=8192),
        "reset address 0": ovmf_image([(SEV_ES_RESET_BLOCK_GUID, bytes(4))], size=8192),
        "no metadata sections": snp_image([]),
        "legacy": legacy_image(0x80B004),
        "zeros": bytes(8192),
        "odd size": b"\x01" * 5000,
        **{f"hostile {name}": image for name, (image, _) in HOSTILE.items()},
        **{f"measure {name}": image for name, (image, *_) in MEASURE_ERRORS.items()},
    }
    paths = {}
    for number, (name, image) in enumerate(made.items()):
        paths[name] = folder / f"{number}.fd"
        paths[name].write_bytes(image)
    for name in ("OVMF_CODE.fd", "OVMF_CODE_4M.fd"):
        paths[name] = debian_ovmf / "usr" / "share" / "OVMF" / name
    paths["missing"] = folder / "missing.fd"
    paths["a folder"] = folder
    return paths


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(argv, out=out)
    captured = capsys.readouterr()
    return status, out.getvalue() + captured.out, captured.err


@pytest.fixture()
def full_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run ``sevref digest`` without its quick path."""
    monkeypatch.setattr(_quick, "quick_digest", lambda arguments: None)
    yield


VALUES: dict[str, tuple[st.SearchStrategy[str], st.SearchStrategy[str]]] = {
    "--mode": (
        st.sampled_from(["sev-es", "sev-snp", "sev", "sev-snp-firmware"]),
        st.sampled_from(["snp", "SEV-ES", ""]),
    ),
    "--vcpus": (
        st.integers(1, MAX_VCPUS).map(str),
        st.one_of(st.integers(-2, 0).map(str), st.sampled_from(["4097", "04", "+4", " 4", "4.0", "٤", "", "x"])),
    ),
    "--cpu": (
        st.sampled_from(sorted(CPU_MODELS)),
        st.sampled_from(["epyc-milan", "EPYC-MILAN-V2", "EPYC-Milan-v9", "host", "", "EPYC "]),
    ),
    "--cpu-signature": (
        st.tuples(st.integers(0, 0xFFFF_FFFF), st.sampled_from(["{:#x}", "{:X}", "0X{:08x}"])).map(
            lambda pair: pair[1].format(pair[0])
        ),
        st.one_of(
            st.integers(1 << 32, 1 << 40).map(hex),
            st.sampled_from(["0x", "0x_1", "a00f11 ", "-1", "0x-1", "１", "0xg"]),
        ),
    ),
    "--vmm": (st.just("qemu"), st.sampled_from(["ec2", "gce", "QEMU"])),
    "--vmsa-profile": (
        st.sampled_from(["legacy", "init2", "init2-ap-fpu-zero"]),
        st.sampled_from(["INIT2", "", "init2-ap-fpu"]),
    ),
    "--sev-features": (
        st.sampled_from(["0", "0x0", "0x20", "20", "0x40", "0x60"]),
        st.one_of(
            st.sampled_from(["0x1", "0x21", "0x10000000000000000", "0x"]), st.integers(0, (1 << 64) - 1).map(hex)
        ),
    ),
    "--guest-features": (
        st.sampled_from(["0x1", "1", "0x21", "0x41"]),
        st.one_of(st.sampled_from(["0x0", "0x2", "0x10000000000000001", "0x"]), st.integers(0, (1 << 64) - 1).map(hex)),
    ),
    "--firmware-sha256": (st.just("00" * 32), st.sampled_from(["0x" + "00" * 31, "zz" * 32, "00"])),
    "--json": (st.just(""), st.just("")),
    "--cpu-family": (st.just("25"), st.just("x")),
    "--kernel": (st.just("missing-kernel"), st.just("")),
    "--help": (st.just(""), st.just("")),
}
"""Each option's values: (ones the full path takes, ones it refuses or reads otherwise)."""
COMMON = ["--vcpus", "--vmm", "--vmsa-profile", "--sev-features", "--guest-features"]


@st.composite
def command_lines(draw: st.DrawFn, images: dict[str, Path], odd: bool) -> list[str]:
    """``sevref digest``'s arguments: well-formed ones of the common options, or anything (``odd``)."""

    def value(flag: str) -> str:
        valid, other = VALUES[flag]
        return draw(st.one_of(valid, other) if odd else valid)

    good = [str(images[name]) for name in ("OVMF_CODE.fd", "amdsev", "snp", "es only")]
    firmware = draw(st.sampled_from(sorted(str(path) for path in images.values()) if odd else good))
    groups = [["--mode", value("--mode")], ["--firmware", firmware]]
    cpu = draw(st.sampled_from(["--cpu", "--cpu-signature", *(["", "--cpu-family"] if odd else [])]))
    groups += [[cpu, value(cpu)]] if cpu else []
    flags = st.sampled_from(sorted(VALUES) if odd else COMMON)
    for flag in draw(st.lists(flags, max_size=3, unique=not odd)):
        groups.append([flag] if flag in ("--json", "--help") else [flag, value(flag)])
    groups = draw(st.permutations(groups))
    return [token for group in groups for token in group]


def check_both_paths(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``sevref digest argv`` prints the same with and without the quick path; a quick answer is the full path's."""
    quick_answer = quick_digest(argv)
    with_quick = _run(["digest", *argv], capsys)
    with monkeypatch.context() as patch:
        patch.setattr(_quick, "quick_digest", lambda arguments: None)
        full = _run(["digest", *argv], capsys)
    assert with_quick == full
    event("answered quickly" if quick_answer is not None else f"full path, exit {full[0]}")
    if quick_answer is not None:
        assert full == (0, quick_answer + "\n", "")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
@example(data=None)
def test_well_formed_command_lines_print_what_the_full_path_prints(
    data: st.DataObject | None,
    images: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if data is None:
        fw = str(images["OVMF_CODE.fd"])
        argv = ["--mode", "sev-snp", "--firmware", fw, "--cpu", "EPYC-Milan", "--vcpus", "4"]
    else:
        argv = data.draw(command_lines(images, odd=False))
    check_both_paths(argv, capsys, monkeypatch)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_command_line_prints_what_the_full_path_prints(
    data: st.DataObject,
    images: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check_both_paths(data.draw(command_lines(images, odd=True)), capsys, monkeypatch)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, 0x900), st.integers(0, 255)), min_size=1, max_size=4),
    mode=st.sampled_from(["sev", "sev-es", "sev-snp", "sev-snp-firmware"]),
    vcpus=st.integers(1, 9),
)
def test_mutated_firmware_gives_the_full_paths_digest_or_none(
    edits: list[tuple[int, int]],
    mode: str,
    vcpus: int,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = snp_image(SECTIONS, size=16 * 4096) if edits[0][1] % 2 else amdsev_image(8 * 4096)
    path = tmp_path_factory.getbasetemp() / "mutated.fd"
    path.write_bytes(_mutated(base, edits))
    argv = ["--mode", mode, "--firmware", str(path)]
    if mode in ("sev-es", "sev-snp"):
        argv += ["--cpu", "EPYC-Genoa", "--vcpus", str(vcpus)]
    answer = quick_digest(argv)
    monkeypatch.setattr(_quick, "quick_digest", lambda arguments: None)
    status, out, err = _run(["digest", *argv], capsys)
    event("answered quickly" if answer is not None else f"full path, exit {status}")
    if answer is not None:
        assert (status, out, err) == (0, answer + "\n", "")


@pytest.mark.parametrize("mode", ["sev", "sev-es", "sev-snp", "sev-snp-firmware"])
def test_the_debian_image_is_answered_quickly(mode: str, images: dict[str, Path], full_only: None) -> None:
    argv = ["--mode", mode, "--firmware", str(images["OVMF_CODE.fd"])]
    if mode in ("sev-es", "sev-snp"):
        argv += ["--cpu-signature", "0xa10f11", "--vcpus", "64"]
    answer = quick_digest(argv)
    out = io.StringIO()
    assert main(["digest", *argv], out=out) == 0
    assert answer is not None and out.getvalue() == answer + "\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["--mode", "sev-es"],
        ["--mode", "sev-es", "--firmware"],
        ["--mode", "sev-es", "--firmware", "fw", "--cpu", "EPYC", "--cpu", "EPYC"],
        ["--mode", "sev-es", "--firmware", "fw", "--cpu=EPYC"],
        ["--mode", "sev-es", "--firmware", "fw", "--cpu", "-EPYC"],
        ["--mode", "sev-es", "--firmware", "", "--cpu", "EPYC"],
        ["--mode", "sev-es", "--firmware", "fw", "--cpu", "EPYC", "--json", "x"],
        ["--mode", "sev", "--firmware", "fw", "--vcpus", "2"],
        ["--mode", "sev-snp", "--firmware", "fw", "--cpu", "EPYC", "--vmm", "ec2"],
        ["--mode", "sev-snp", "--firmware", "fw", "--cpu", "EPYC", "--firmware-prefix", "00"],
    ],
)
def test_other_command_lines_go_to_the_full_path(argv: list[str]) -> None:
    assert _quick._options(argv) is None or quick.check(_quick._options(argv) or {}) is None


def test_the_quick_path_has_every_vmsa_profile() -> None:
    assert tuple(str(profile) for profile in VmsaProfile) == quick._PROFILES
