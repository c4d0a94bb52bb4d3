"""sevref.request: the option table, request_from_mapping and ``--batch`` lines."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref.binfmt.vmsa import CPU_MODELS, Vmm, VmsaProfile
from sevref.digest import KernelBoot, LaunchConfig, Mode
from sevref.errors import ConfigError
from sevref.request import BATCH_KEYS, OPTIONS, DigestRequest, parse_batch, request_from_mapping

BASE = Path("/srv/batch")
SHA = "ab" * 32
PREFIX = "cd" * 48
MILAN = CPU_MODELS["EPYC-Milan"].signature  # family 25 model 1 stepping 1: 0xa00f11


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


# --------------------------------------------------------------------------- the option table


def test_every_option_is_named_once_and_has_help() -> None:
    keys = [option.key for option in OPTIONS]
    assert len(keys) == len(set(keys))
    for option in OPTIONS:
        assert option.help.strip(), option.key
        assert option.flag == flag(option.key)
        # an option shows either its choices or a placeholder, never both
        assert (option.choices is None) == (option.metavar is not None), option.key


def test_batch_keys_are_the_options_a_batch_line_takes() -> None:
    assert tuple(option.key for option in OPTIONS if option.batch) == BATCH_KEYS
    assert [option.key for option in OPTIONS if not option.batch] == ["cpu_family", "cpu_model", "cpu_stepping"]
    assert [option.key for option in OPTIONS if option.cpu] == [
        "cpu",
        "cpu_signature",
        "cpu_family",
        "cpu_model",
        "cpu_stepping",
    ]
    assert [option.key for option in OPTIONS if option.integer] == ["vcpus", "cpu_family", "cpu_model", "cpu_stepping"]


def test_choices_are_the_enums() -> None:
    choices = {option.key: option.choices for option in OPTIONS if option.choices is not None}
    assert choices == {
        "mode": tuple(m.value for m in Mode),
        "vmm": tuple(v.value for v in Vmm),
        "vmsa_profile": tuple(p.value for p in VmsaProfile),
    }


def test_to_dict_writes_exactly_the_batch_keys_in_order() -> None:
    request = request_from_mapping({"mode": "sev", "firmware": "fw.fd"}, BASE)
    assert tuple(request.to_dict()) == BATCH_KEYS


# --------------------------------------------------------------------------- defaults


def test_sev_es_defaults() -> None:
    request = request_from_mapping({"mode": "sev-es", "firmware": "fw.fd", "cpu": "epyc-milan"}, BASE)
    assert request == DigestRequest(
        mode=Mode.SEV_ES,
        firmware=BASE / "fw.fd",
        firmware_sha256=None,
        vcpus=1,
        cpu="EPYC-Milan",
        config=LaunchConfig(
            mode=Mode.SEV_ES, vmm=Vmm.QEMU, cpu_signature=MILAN, vmsa_profile=VmsaProfile.LEGACY, sev_features=0
        ),
        kernel=None,
        initrd=None,
        cmdline=None,
    )


def test_sev_snp_defaults_to_init2_and_snp_active() -> None:
    request = request_from_mapping({"mode": "sev-snp", "firmware": "/opt/fw.fd", "cpu_signature": "0xa00f11"}, BASE)
    assert request.firmware == Path("/opt/fw.fd")  # absolute paths stay as they are
    assert request.cpu is None  # given by signature, not by name
    assert request.config == LaunchConfig(
        mode=Mode.SEV_SNP, cpu_signature=MILAN, vmsa_profile=VmsaProfile.INIT2, sev_features=0x1
    )


def test_cloud_vmms_have_no_profile() -> None:
    request = request_from_mapping({"mode": "sev-snp", "firmware": "fw.fd", "vmm": "ec2"}, BASE)
    assert request.config == LaunchConfig(mode=Mode.SEV_SNP, vmm=Vmm.EC2, sev_features=0x1)


def test_sev_drops_what_it_does_not_measure() -> None:
    given = {"mode": "sev", "firmware": "fw.fd", "vcpus": 8, "cpu": "EPYC", "vmm": "gce", "vmsa_profile": "init2"}
    request = request_from_mapping(given, BASE)
    assert (request.vcpus, request.cpu, request.config) == (None, None, LaunchConfig(mode=Mode.SEV))


def test_null_is_absent() -> None:
    given: dict[str, object] = dict.fromkeys(BATCH_KEYS)
    given.update(mode="sev-es", firmware="fw.fd", cpu="EPYC-Milan")
    assert request_from_mapping(given, BASE) == request_from_mapping(
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC-Milan"}, BASE
    )


def test_boot_files_and_pins() -> None:
    given = {
        "mode": "sev-snp",
        "firmware": "fw.fd",
        "firmware_sha256": SHA,
        "cpu": "EPYC-Genoa",
        "kernel": "vmlinuz",
        "initrd": "/boot/initrd.img",
        "cmdline": "console=ttyS0",
        "firmware_prefix": PREFIX,
    }
    request = request_from_mapping(given, BASE)
    assert request.firmware_sha256 == bytes.fromhex(SHA)
    assert request.firmware_prefix == bytes.fromhex(PREFIX)
    assert (request.kernel, request.initrd, request.cmdline) == (
        BASE / "vmlinuz",
        Path("/boot/initrd.img"),
        "console=ttyS0",
    )
    assert request.config.boot is None  # until the edge has hashed the files
    boot = KernelBoot(bytes(32), None, "console=ttyS0")
    assert request.launch_config(boot) == LaunchConfig(
        mode=Mode.SEV_SNP,
        cpu_signature=CPU_MODELS["EPYC-Genoa"].signature,
        vmsa_profile=VmsaProfile.INIT2,
        sev_features=0x1,
        boot=boot,
    )


# --------------------------------------------------------------------------- refusals

MODES = "sev, sev-es, sev-snp, sev-snp-firmware"
INVALID: dict[str, tuple[dict[str, object], str]] = {
    "an unknown key": (
        {"mode": "sev", "firmware": "fw.fd", "cpus": "EPYC"},
        f"unknown key 'cpus'; expected keys from {', '.join(BATCH_KEYS)}",
    ),
    "family/model/stepping are for the command line only": (
        {"mode": "sev", "firmware": "fw.fd", "cpu_family": 25},
        f"unknown key 'cpu_family'; expected keys from {', '.join(BATCH_KEYS)}",
    ),
    "no mode": ({"firmware": "fw.fd"}, f"mode: expected one of {MODES}, found nothing"),
    "an unknown mode": ({"mode": "SEV", "firmware": "fw.fd"}, f"mode: expected one of {MODES}, found 'SEV'"),
    "no firmware": ({"mode": "sev"}, "firmware: expected a path, found nothing"),
    "an empty firmware path": ({"mode": "sev", "firmware": ""}, "firmware: expected a path, found ''"),
    "a firmware path that is no text": ({"mode": "sev", "firmware": 1}, "firmware: expected a path, found 1"),
    "a bad pin": (
        {"mode": "sev", "firmware": "fw.fd", "firmware_sha256": "abc"},
        "firmware_sha256: expected 64 hex characters (32 bytes), found 'abc'",
    ),
    "no vCPUs": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "vcpus": 0},
        "vcpus: expected an integer 1..4096, found 0",
    ),
    "too many vCPUs": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "vcpus": 4097},
        "vcpus: expected an integer 1..4096, found 4097",
    ),
    "vCPUs as a boolean": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "vcpus": True},
        "vcpus: expected an integer 1..4096, found True",
    ),
    "vCPUs as text": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "vcpus": "2"},
        "vcpus: expected an integer 1..4096, found '2'",
    ),
    "an unknown vmm": (
        {"mode": "sev-snp", "firmware": "fw.fd", "vmm": "kvm"},
        "vmm: expected one of qemu, ec2, gce, found 'kvm'",
    ),
    "a kernel path with a NUL byte": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "kernel": "\0"},
        "kernel: expected a path, found one with a NUL byte ('\\x00'), which no file name has",
    ),
    "a firmware path with a NUL byte": (
        {"mode": "sev", "firmware": "fw\0.fd"},
        "firmware: expected a path, found one with a NUL byte ('fw\\x00.fd'), which no file name has",
    ),
    "an unknown profile": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "vmsa_profile": "init3"},
        "vmsa_profile: expected one of legacy, init2, init2-ap-fpu-zero, found 'init3'",
    ),
    "a CPU that is no name": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": 25},
        "cpu: expected a CPU model name, found 25",
    ),
    "a CPU name and a signature that disagree": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC-Milan", "cpu_signature": "0xa00f10"},
        "cpu_signature: 0xa00f10 contradicts cpu EPYC-Milan, whose signature is 0xa00f11",
    ),
    "a signature wider than 32 bits": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu_signature": "0x100000000"},
        "cpu_signature: expected a 32-bit value, found 0x100000000",
    ),
    "SEV-ES without a CPU": (
        {"mode": "sev-es", "firmware": "fw.fd"},
        "mode sev-es with vmm qemu: expected the guest CPU (a model name, a signature, or family/model/stepping; "
        "for -cpu host, the host's signature)",
    ),
    "a CPU for a cloud, which fixes it": (
        {"mode": "sev-snp", "firmware": "fw.fd", "vmm": "gce", "cpu": "EPYC"},
        "vmm gce fixes RDX itself: cpu_signature does not apply",
    ),
    "guest features for SEV-ES": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "guest_features": "0x1"},
        "guest_features: does not apply to mode sev-es; its VMSA field is set by sev_features",
    ),
    "SEV-ES features for SEV-SNP": (
        {"mode": "sev-snp", "firmware": "fw.fd", "cpu": "EPYC", "sev_features": "0x20"},
        "sev_features: does not apply to mode sev-snp; its VMSA field is set by guest_features",
    ),
    "guest features for SEV": (
        {"mode": "sev", "firmware": "fw.fd", "guest_features": "0x1"},
        "guest_features: does not apply to mode sev",
    ),
    "SEV-SNP without SNPActive": (
        {"mode": "sev-snp", "firmware": "fw.fd", "cpu": "EPYC", "guest_features": "0x0"},
        "guest_features: bit 0 (SNPActive) must be set for SEV-SNP, found 0x0",
    ),
    "SEV-ES with SNPActive": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "sev_features": "0x1"},
        "sev_features: bit 0 (SNPActive) is for SEV-SNP guests only, found 0x1",
    ),
    "SEV-SNP with the legacy profile": (
        {"mode": "sev-snp", "firmware": "fw.fd", "cpu": "EPYC", "vmsa_profile": "legacy"},
        "vmsa_profile: SEV-SNP guests are always launched with KVM_SEV_INIT2 (init2, or init2-ap-fpu-zero from QEMU 10.1), found legacy",
    ),
    "a firmware prefix for SEV-ES": (
        {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "firmware_prefix": PREFIX},
        "firmware_prefix: applies to mode sev-snp only, found mode sev-es",
    ),
    "a firmware prefix of the wrong size": (
        {"mode": "sev-snp", "firmware": "fw.fd", "cpu": "EPYC", "firmware_prefix": SHA},
        f"firmware_prefix: expected 96 hex characters (48 bytes), found '{SHA}'",
    ),
    "an initrd without a kernel": (
        {"mode": "sev", "firmware": "fw.fd", "initrd": "initrd.img"},
        "initrd: given without kernel; QEMU measures them only with a kernel",
    ),
    "a command line without a kernel": (
        {"mode": "sev", "firmware": "fw.fd", "cmdline": "quiet"},
        "cmdline: given without kernel; QEMU measures them only with a kernel",
    ),
    "a command line that is no text": (
        {"mode": "sev", "firmware": "fw.fd", "kernel": "vmlinuz", "cmdline": 1},
        "cmdline: expected a string, found 1",
    ),
    "a kernel for the firmware-only chain": (
        {"mode": "sev-snp-firmware", "firmware": "fw.fd", "kernel": "vmlinuz"},
        "kernel: mode sev-snp-firmware measures the firmware only",
    ),
}


@pytest.mark.parametrize("name", INVALID)
def test_refusals(name: str) -> None:
    given, message = INVALID[name]
    with pytest.raises(ConfigError) as raised:
        request_from_mapping(given, BASE)
    assert str(raised.value) == message


def test_refusals_name_keys_as_the_caller_shows_them() -> None:
    given = {"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "cpu_signature": "0x1"}
    with pytest.raises(ConfigError) as raised:
        request_from_mapping(given, BASE, name=flag)
    assert str(raised.value) == "--cpu-signature: 0x1 contradicts --cpu EPYC, whose signature is 0x800f12"


# --------------------------------------------------------------------------- round trip through a batch line

cpus = st.sampled_from(sorted(CPU_MODELS)).map(lambda name: {"cpu": name}) | st.integers(0, 0xFFFF_FFFF).map(
    lambda signature: {"cpu_signature": f"{signature:#x}"}
)
boots: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {"kernel": st.just("vmlinuz")},
        optional={
            "initrd": st.just("/boot/initrd.img"),
            "cmdline": st.text(st.characters(exclude_characters="\0", exclude_categories=["Cs"])),
        },
    ),
)
requests = st.one_of(
    st.fixed_dictionaries({"mode": st.just("sev")}, optional={"vcpus": st.integers(1, 4096)}),
    st.fixed_dictionaries({"mode": st.just("sev-snp-firmware")}),
    st.builds(
        lambda cpu, rest: {"mode": "sev-es", **cpu, **rest},
        cpus,
        st.fixed_dictionaries(
            {},
            optional={
                "vcpus": st.integers(1, 4096),
                "vmsa_profile": st.just("init2"),
                "sev_features": st.sampled_from(["0x0", "0x20"]),
            },
        ),
    ),
    st.builds(
        lambda cpu, rest: {"mode": "sev-snp", **cpu, **rest},
        cpus,
        st.fixed_dictionaries(
            {},
            optional={"guest_features": st.sampled_from(["0x1", "0x21"]), "firmware_prefix": st.just(PREFIX)},
        ),
    ),
    st.fixed_dictionaries({"mode": st.just("sev-snp"), "vmm": st.sampled_from(["ec2", "gce"])}),
)


@settings(max_examples=150, deadline=None)
@given(requests, boots, st.sampled_from([{}, {"firmware_sha256": SHA}]))
def test_to_dict_fed_back_gives_the_same_request(
    given: dict[str, object], boot: dict[str, object], pin: dict[str, object]
) -> None:
    if given["mode"] == "sev-snp-firmware":
        boot = {}
    values: Mapping[str, object] = {"firmware": "fw.fd", **given, **boot, **pin}
    request = request_from_mapping(values, BASE)
    again = request_from_mapping(request.to_dict(), Path("/elsewhere"))  # paths are absolute by now
    assert again == request


# --------------------------------------------------------------------------- batch lines

BAD_LINES: dict[str, tuple[str, str]] = {
    "an empty line": ("", "empty line; expected a JSON object"),
    "a blank line": (" \t ", "empty line; expected a JSON object"),
    "not JSON": ("{", "not JSON: Expecting property name enclosed in double quotes at column 2"),
    "trailing text": ('{"mode": "sev"} x', "not JSON: Extra data at column 17"),
    "a list": ("[1]", "expected a JSON object, found a list of 1"),
    "text": ('"sev"', 'expected a JSON object, found "sev"'),
    "null": ("null", "expected a JSON object, found null"),
    "a float": (
        '{"mode": "sev", "firmware": "f", "vcpus": 1.0}',
        "the number 1.0 is not an integer; expected integers only",
    ),
    "an exponent": ('{"vcpus": 1e3}', "the number 1e3 is not an integer; expected integers only"),
    "NaN": ('{"vcpus": NaN}', "NaN is not JSON; expected integers only"),
    "Infinity": ('{"vcpus": -Infinity}', "-Infinity is not JSON; expected integers only"),
    "a duplicate key": (
        '{"mode": "sev", "mode": "sev-es"}',
        "key 'mode' appears twice in one object; expected each key once",
    ),
    "a duplicate key further in": (
        '{"x": {"a": 1, "a": 2}}',
        "key 'a' appears twice in one object; expected each key once",
    ),
    "a number longer than Python converts": (
        '{"vcpus": 1' + "0" * 5000 + "}",
        "not JSON: Exceeds the limit (4300 digits) for integer string conversion: value has 5001 digits; "
        "use sys.set_int_max_str_digits() to increase the limit",
    ),
    "nesting deeper than Python's stack": (
        "[" * 100_000,
        "not JSON: nested too deeply",
    ),
    "a bad value": ('{"mode": "sev"}', "firmware: expected a path, found nothing"),
}


@pytest.mark.parametrize("name", BAD_LINES)
def test_bad_batch_lines(name: str) -> None:
    line, message = BAD_LINES[name]
    [result] = parse_batch([line], BASE)
    assert isinstance(result, ConfigError)
    assert str(result) == message


def test_a_bad_line_does_not_stop_the_others() -> None:
    lines = ['{"mode": "sev", "firmware": "a.fd"}', "", '{"mode": "sev", "firmware": "/b.fd"}']
    first, second, third = parse_batch(lines, BASE)
    assert isinstance(first, DigestRequest) and first.firmware == BASE / "a.fd"
    assert isinstance(second, ConfigError)
    assert isinstance(third, DigestRequest) and third.firmware == Path("/b.fd")
