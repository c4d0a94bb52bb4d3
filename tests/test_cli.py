"""The command line, run in-process through ``main`` (and once as a real process)."""

from __future__ import annotations

import base64
import hashlib
import importlib
import io
import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sevref import __version__
from sevref._cli import COMMANDS, _parser, main
from sevref._cli._common import Exit, Parser
from sevref.binfmt.ovmf import SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_RV_GUID
from sevref.edge import files, inputs
from tests.images import ovmf_image, snp_image
from tests.unit.test_digest import spec_measurement
from tests.unit.test_snp import HOSTILE, MEASURE_ERRORS, SECTIONS

U32 = struct.Struct("<I").pack


def run(args: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None) -> tuple[int, str, str]:
    out = io.StringIO()
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        status = main(args, out=out)
    finally:
        sys.stdin = sys.__stdin__
    return status, out.getvalue(), capsys.readouterr().err


@pytest.fixture()
def fw(tmp_path: Path) -> Path:
    path = tmp_path / "fw.fd"
    path.write_bytes(
        ovmf_image(
            [(SEV_HASH_TABLE_RV_GUID, U32(0x810C00) + U32(0x400)), (SEV_ES_RESET_BLOCK_GUID, U32(0x80B004))], size=16384
        )
    )
    return path


@pytest.fixture()
def kernel(tmp_path: Path) -> Path:
    path = tmp_path / "vmlinuz"
    path.write_bytes(b"kernel" * 1000)
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"sevref {__version__}\n"


def test_digest_prints_one_hex_line(fw: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["digest", "--mode", "sev", "--firmware", str(fw)], capsys)
    assert (status, err) == (0, "")
    assert out == hashlib.sha256(fw.read_bytes()).hexdigest() + "\n"


def test_cpu_forms_agree(fw: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["digest", "--mode", "sev-es", "--firmware", str(fw), "--vcpus", "3"]
    outs = {
        run([*base, *form], capsys)[1]
        for form in (
            ["--cpu", "EPYC-Genoa"],
            ["--cpu-signature", "0xa10f10"],
            ["--cpu-signature", "A10F10"],
            ["--cpu-family", "25", "--cpu-model", "17", "--cpu-stepping", "0"],
        )
    }
    assert len(outs) == 1 and len(outs.pop()) == 65


def test_json_round_trips_through_batch(fw: Path, kernel: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "digest",
        "--mode",
        "sev-es",
        "--firmware",
        str(fw),
        "--cpu",
        "epyc-milan",
        "--vcpus",
        "4",
        "--kernel",
        str(kernel),
        "--cmdline",
        "quiet",
        "--json",
    ]
    status, out, _ = run(args, capsys)
    assert status == 0
    result = json.loads(out)
    assert result["config"] == {
        "mode": "sev-es",
        "firmware": str(fw),
        "firmware_sha256": hashlib.sha256(fw.read_bytes()).hexdigest(),
        "vcpus": 4,
        "cpu": "EPYC-Milan",
        "cpu_signature": "0xa00f11",
        "vmm": "qemu",
        "vmsa_profile": "legacy",
        "sev_features": "0x0",
        "guest_features": None,
        "kernel": str(kernel),
        "initrd": None,
        "cmdline": "quiet",
        "firmware_prefix": None,
    }
    assert result["inputs"] == {
        "firmware_size": 16384,
        "ap_reset_eip": "0x80b004",
        "kernel_sha256": hashlib.sha256(kernel.read_bytes()).hexdigest(),
        "initrd_sha256": None,
    }
    status, out, _ = run(["digest", "--batch", "-"], capsys, stdin=json.dumps(result["config"]) + "\n")
    assert (status, json.loads(out)) == (0, {"digest": result["digest"]})


def test_batch_resolves_paths_against_its_folder(
    fw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    (sub / "batch.jsonl").write_text(json.dumps({"mode": "sev", "firmware": "../fw.fd"}) + "\n")
    monkeypatch.chdir(sub.parent.parent)
    status, out, _ = run(["digest", "--batch", str(sub / "batch.jsonl")], capsys)
    assert (status, json.loads(out)) == (0, {"digest": hashlib.sha256(fw.read_bytes()).hexdigest()})


def test_bad_batch_lines_do_not_stop_the_others(
    fw: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(fw.parent)
    good = json.dumps({"mode": "sev", "firmware": "fw.fd"})
    lines = [
        good,
        "{not json",
        json.dumps({"mode": "sev", "firmware": "fw.fd", "vcpu": 2}),
        '{"mode": "sev", "mode": "sev-es", "firmware": "fw.fd"}',
        json.dumps({"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "vcpus": 1.5}).replace("1.5", "1.5"),
        "",
        json.dumps({"mode": "sev", "firmware": "missing.fd"}),
        json.dumps({"mode": "sev", "firmware": "fw.fd", "firmware_sha256": "00" * 32}),
        json.dumps({"mode": "sev-es", "firmware": "fw.fd", "cpu": "EPYC", "cpu_signature": "0xa00f11"}),
        "[1, 2]",
        good,
    ]
    status, out, err = run(["digest", "--batch", "-"], capsys, stdin="\n".join(lines) + "\n")
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == len(lines)
    assert status == 1 and err == "sevref: 9 of 11 batch lines failed\n"
    assert results[0] == results[-1] == {"digest": hashlib.sha256(fw.read_bytes()).hexdigest()}
    expected = [
        "line 2: not JSON: Expecting property name enclosed in double quotes at column 2",
        "line 3: unknown key 'vcpu'; expected keys from mode, firmware",
        "line 4: key 'mode' appears twice in one object; expected each key once",
        "line 5: the number 1.5 is not an integer; expected integers only",
        "line 6: empty line; expected a JSON object",
        "line 7: firmware missing.fd: No such file or directory",
        f"line 8: firmware fw.fd: sha256 is {hashlib.sha256(fw.read_bytes()).hexdigest()}, expected {'00' * 32} (the pin)",
        "line 9: cpu_signature: 0xa00f11 contradicts cpu EPYC, whose signature is 0x800f12",
        "line 10: expected a JSON object, found a list",
    ]
    for result, message in zip(results[1:-1], expected, strict=True):
        assert result["error"].startswith(message), (result, message)


def test_batch_reads_each_file_once(
    fw: Path, kernel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"i" * 5000)
    reads: list[Path] = []
    real_read, real_hash = files.read_bytes, files.file_sha256

    def read(path: Path, what: str, limit: int) -> bytes:
        reads.append(path)
        return real_read(path, what, limit)

    def sha256(path: Path, what: str) -> bytes:
        reads.append(path)
        return real_hash(path, what)

    monkeypatch.setattr(inputs, "read_bytes", read)
    monkeypatch.setattr(inputs, "file_sha256", sha256)
    rng = random.Random(3)
    lines = [
        json.dumps(
            {
                "mode": rng.choice(["sev", "sev-es"]),
                "firmware": str(fw),
                "cpu": rng.choice(["EPYC", "EPYC-Milan"]),
                "vcpus": rng.randint(1, 64),
                "kernel": str(kernel),
                "initrd": str(initrd),
                "cmdline": rng.choice(["a", "b"]),
            }
        )
        for _ in range(200)
    ]
    status, out, _ = run(["digest", "--batch", "-"], capsys, stdin="\n".join(lines))
    assert status == 0 and len(out.splitlines()) == 200
    assert sorted(map(str, reads)) == sorted(map(str, [fw, kernel, initrd]))


USAGE = {
    "no command": ([], "required: COMMAND"),
    "batch and options": (
        ["digest", "--batch", "-", "--mode", "sev"],
        "--batch takes the configuration from its lines; drop --mode",
    ),
    "no mode": (["digest", "--firmware", "x"], "--mode and --firmware are required"),
    "two cpu forms": (
        ["digest", "--mode", "sev-es", "--firmware", "x", "--cpu", "EPYC", "--cpu-signature", "0"],
        "give the CPU once",
    ),
    "partial family": (["digest", "--mode", "sev-es", "--firmware", "x", "--cpu-family", "25"], "go together"),
    "bad mode": (["digest", "--mode", "snp", "--firmware", "x"], "invalid choice: 'snp'"),
    "measurement without nonce": (
        [
            "measurement",
            "--digest",
            "00",
            "--api-major",
            "1",
            "--api-minor",
            "0",
            "--build",
            "0",
            "--policy",
            "0",
            "--tik",
            "t",
        ],
        "one of the arguments --nonce --check is required",
    ),
}


@pytest.mark.parametrize("name", USAGE)
def test_usage_errors_exit_2(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    args, message = USAGE[name]
    status, out, err = run(args, capsys)
    assert (status, out) == (2, "")
    assert message in err


def hostile_images() -> dict[str, tuple[bytes, list[str], str]]:
    rng = random.Random(11)
    base0 = ovmf_image([(SEV_HASH_TABLE_RV_GUID, U32(0) + U32(0)), (SEV_ES_RESET_BLOCK_GUID, U32(0x80B004))])
    return {
        "empty": (b"", [], "firmware image is empty"),
        "10 bytes": (b"0123456789", [], "firmware image is 10 bytes; expected a non-zero multiple of 4096"),
        "4 KiB of zeros": (bytes(4096), [], "at offset 0xfd0, found 00000000000000000000000000000000"),
        "random bytes": (rng.randbytes(65536), [], "no OVMF footer table"),
        "footer past the start": (
            ovmf_image([], table_size=0x2000),
            [],
            "OVMF footer table at offset 0xfce: size field is 0x2000",
        ),
        "entry past the table": (
            ovmf_image([(SEV_ES_RESET_BLOCK_GUID, U32(1))], table_size=0x26),
            [],
            "size field is 0x16; expected 0x12..0x14",
        ),
        "hash table base 0 with a kernel": (
            base0,
            ["--kernel", "k"],
            "firmware cannot measure a kernel: its kernel-hashes table area (7255371f-3a3b-4b04-927b-1da6efa8d454) has base 0x0 size 0x0",
        ),
    }


@pytest.mark.parametrize("name", hostile_images())
def test_hostile_firmware_gives_one_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    image, extra, message = hostile_images()[name]
    monkeypatch.chdir(tmp_path)
    Path("fw.fd").write_bytes(image)
    Path("k").write_bytes(b"k")
    status, out, err = run(["digest", "--mode", "sev-es", "--cpu", "EPYC", "--firmware", "fw.fd", *extra], capsys)
    assert (status, out) == (1, "")
    assert err.count("\n") == 1 and err.startswith("sevref: error: firmware fw.fd: ")
    assert message in err


def test_a_real_process_shows_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "fw.fd").write_bytes(bytes(4096))
    done = subprocess.run(
        [sys.executable, "-m", "sevref", "digest", "--mode", "sev", "--firmware", "fw.fd"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert (
        done.stderr.startswith("sevref: error: firmware fw.fd: no OVMF footer table") and "Traceback" not in done.stderr
    )


MEASURE = [
    "measurement",
    "--digest",
    "4c55bc8b9c7804ec80940258127e2aae37f818436a54c55cebe89542bd6dc63f",
    "--api-major",
    "1",
    "--api-minor",
    "55",
    "--build",
    "21",
    "--policy",
    "0x5",
]


@pytest.fixture()
def tik(tmp_path: Path) -> Path:
    path = tmp_path / "tek_tik.bin"
    path.write_bytes(bytes(range(32)))  # TEK || TIK: the TIK is 0x10..0x1f
    return path


def test_measurement(tik: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nonce = bytes(range(16))
    ld = bytes.fromhex(MEASURE[2])
    expected = spec_measurement(ld, 1, 55, 21, 5, nonce, bytes(range(16, 32)))
    status, out, _ = run([*MEASURE, "--tik", str(tik), "--nonce", nonce.hex()], capsys)
    assert (status, out) == (0, expected.hex() + "\n")
    status, out, _ = run([*MEASURE, "--tik", str(tik), "--nonce", nonce.hex(), "--json"], capsys)
    assert json.loads(out) == {
        "measurement": expected.hex(),
        "nonce": nonce.hex(),
        "launch_measure": base64.b64encode(expected + nonce).decode(),
    }
    blob = base64.b64encode(expected + nonce).decode()
    status, out, err = run([*MEASURE, "--tik", str(tik), "--check", blob], capsys)
    assert (status, out, err) == (0, f"match: {expected.hex()}\n", "")
    other = base64.b64encode(bytes(32) + nonce).decode()
    status, out, err = run([*MEASURE, "--tik", str(tik), "--check", other], capsys)
    assert (status, out) == (1, "")
    assert (
        err
        == f"sevref: measurement does not match: the digest gives {expected.hex()}, the launch measurement holds {'00' * 32}\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nonce", "00" * 15], "--nonce: expected 32 hex characters (16 bytes), found '"),
        (["--check", "AAAA"], "launch measurement: expected 48 bytes"),
        (["--nonce", "00" * 16, "--api-major", "256"], "api_major: expected 0..0xff, found 256"),
    ],
)
def test_measurement_bad_input(args: list[str], message: str, tik: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run([*MEASURE, "--tik", str(tik), *args], capsys)
    assert status == 1 and err.startswith("sevref: error: ") and message in err


def test_measurement_bad_tik(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tik").write_bytes(bytes(20))
    status, _, err = run([*MEASURE, "--tik", str(tmp_path / "tik"), "--nonce", "00" * 16], capsys)
    assert status == 1 and "TIK file" in err and "found 20" in err


def test_snp_digest_and_firmware_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fw = tmp_path / "snp.fd"
    fw.write_bytes(snp_image(SECTIONS))
    other = tmp_path / "other.fd"
    other.write_bytes(snp_image(SECTIONS, size=8 * 4096))
    base = ["digest", "--mode", "sev-snp", "--cpu", "EPYC-Genoa", "--vcpus", "8", "--guest-features", "0x21"]
    status, full, _ = run([*base, "--firmware", str(fw)], capsys)
    assert status == 0 and len(full.strip()) == 96
    status, prefix, _ = run(["digest", "--mode", "sev-snp-firmware", "--firmware", str(fw)], capsys)
    assert status == 0 and len(prefix.strip()) == 96
    status, seeded, _ = run([*base, "--firmware", str(other), "--firmware-prefix", prefix.strip()], capsys)
    assert (status, seeded) == (0, full)
    status, default_features, _ = run([*base[:-2], "--firmware", str(fw)], capsys)
    assert status == 0 and default_features != full
    status, out, _ = run([*base[:-2], "--guest-features", "0x1", "--firmware", str(fw), "--json"], capsys)
    config = json.loads(out)["config"]
    assert json.loads(out)["digest"] == default_features.strip()
    assert (config["guest_features"], config["sev_features"], config["vmsa_profile"]) == ("0x1", None, "init2")


SNP_INPUT_ERRORS = {
    "sev_features with sev-snp": (
        ["--sev-features", "0x1"],
        "--sev-features: does not apply to mode sev-snp; its VMSA field is set by --guest-features",
    ),
    "guest_features with sev-es": (
        ["--mode", "sev-es", "--guest-features", "0x1"],
        "--guest-features: does not apply to mode sev-es; its VMSA field is set by --sev-features",
    ),
    "legacy profile": (["--vmsa-profile", "legacy"], "SEV-SNP guests are always launched with KVM_SEV_INIT2"),
    "cpu on gce": (["--vmm", "gce"], "vmm gce fixes RDX itself: cpu_signature does not apply"),
    "short prefix": (["--firmware-prefix", "00" * 32], "--firmware-prefix: expected 96 hex characters (48 bytes)"),
    "prefix with sev-es": (
        ["--mode", "sev-es", "--firmware-prefix", "00" * 48],
        "--firmware-prefix: applies to mode sev-snp only",
    ),
}


@pytest.mark.parametrize("name", SNP_INPUT_ERRORS)
def test_snp_input_errors(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fw = tmp_path / "snp.fd"
    fw.write_bytes(snp_image(SECTIONS))
    extra, message = SNP_INPUT_ERRORS[name]
    args = ["digest", "--mode", "sev-snp", "--firmware", str(fw), "--cpu", "EPYC", *extra]
    if "--mode" in extra:
        args = ["digest", "--firmware", str(fw), "--cpu", "EPYC", *extra]
    status, out, err = run(args, capsys)
    assert (status, out) == (1, "")
    assert err.count("\n") == 1 and message in err


def metadata_cases() -> dict[str, tuple[bytes, str]]:
    cases = {name: (image, message) for name, (image, message) in HOSTILE.items()}
    cases.update(
        {name: (image, message) for name, (image, config, _, message) in MEASURE_ERRORS.items() if config.boot is None}
    )
    return cases


@pytest.mark.parametrize("name", metadata_cases())
def test_hostile_snp_metadata_gives_one_line(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, message = metadata_cases()[name]
    (tmp_path / "fw.fd").write_bytes(image)
    status, out, err = run(
        ["digest", "--mode", "sev-snp", "--cpu", "EPYC", "--firmware", str(tmp_path / "fw.fd")], capsys
    )
    assert (status, out) == (1, "")
    assert err.count("\n") == 1 and err.startswith(f"sevref: error: firmware {tmp_path / 'fw.fd'}: ") and message in err


def _eager_parser() -> Parser:
    """The parser as it was built before commands were loaded lazily: every module's register, in order."""
    parser = Parser(
        prog="sevref",
        description="Compute, publish and verify expected AMD SEV, SEV-ES and SEV-SNP launch digests.",
    )
    parser.add_argument("--version", action="version", version=f"sevref {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for module in dict.fromkeys(module for _, module, _ in COMMANDS):
        importlib.import_module(f"sevref._cli.{module}").register(commands)
    return parser


def test_the_command_list_is_what_each_module_registers() -> None:
    eager = _eager_parser()
    assert eager.format_help() == _parser().format_help()
    listed = [(action.dest, action.help) for action in eager._subparsers._group_actions[0]._choices_actions]  # type: ignore[union-attr]
    assert listed == [(name, help_text) for name, _, help_text in COMMANDS]


@pytest.mark.parametrize("command", [name for name, _, _ in COMMANDS])
@pytest.mark.parametrize("rest", [["--help"], ["--no-such-option"], []])
def test_each_command_loaded_lazily_is_the_same(
    command: str, rest: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        parsed = _eager_parser().parse_args([command, *rest])
    except Exit as stop:
        eager = (stop.status, *capsys.readouterr())
        assert (main([command, *rest]), *capsys.readouterr()) == eager
    else:
        assert vars(_parser().parse_args([command, *rest])) == vars(parsed)
