"""sevref's command line: argv to a pipeline call to an exit code.

Exit codes: 0 success, 1 bad input or no match (one line on stderr), 2 usage.
Only :class:`~sevref.errors.SevrefError` is caught; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO, cast

from sevref import __version__
from sevref.binfmt.report import decode_report, parse_report
from sevref.binfmt.vmsa import Vmm, VmsaProfile, cpu_signature
from sevref.digest import LaunchMeasureInputs, Mode, parse_launch_measure_blob, sev_launch_measurement, tik_from_bytes
from sevref.errors import ConfigError, FetchError, ReportFormatError, SevrefError
from sevref.expand import DEFAULT_MAX_ENTRIES
from sevref.manifest import parse_hex, parse_hex_bytes, parse_sha256, request_from_mapping
from sevref.pipeline import Inputs, build, compute_digests, default_cache, parse_batch, prepare, read_bytes
from sevref.serialize import json_line


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _Exit(status)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


_DIGEST_OPTIONS = (
    "mode",
    "firmware",
    "firmware_sha256",
    "vcpus",
    "cpu",
    "cpu_signature",
    "cpu_family",
    "cpu_model",
    "cpu_stepping",
    "vmm",
    "vmsa_profile",
    "sev_features",
    "guest_features",
    "kernel",
    "initrd",
    "cmdline",
    "firmware_prefix",
)


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="sevref",
        description="Compute, publish and verify expected AMD SEV, SEV-ES and SEV-SNP launch digests.",
    )
    parser.add_argument("--version", action="version", version=f"sevref {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    digest = commands.add_parser(
        "digest",
        help="compute the launch digest of one configuration or a batch",
        description=(
            "Compute the launch digest of a launch and print it as lowercase hex: GCTX.LD (SHA-256) "
            "for sev and sev-es, the attestation report's MEASUREMENT (SHA-384) for sev-snp, or the "
            "SEV-SNP digest over the firmware pages alone for sev-snp-firmware. With --batch, read one "
            "JSON object a line and write one result a line."
        ),
    )
    digest.add_argument("--mode", choices=[m.value for m in Mode], help="the kind of launch")
    digest.add_argument("--firmware", metavar="PATH", help="the firmware image (pflash unit 0 or -bios)")
    digest.add_argument("--firmware-sha256", metavar="HEX", help="refuse a firmware whose sha256 differs")
    digest.add_argument("--vcpus", type=int, metavar="N", help="vCPUs at launch (default 1; not measured by sev)")
    cpu = digest.add_argument_group("guest CPU (sev-es with vmm qemu: give exactly one form)")
    cpu.add_argument("--cpu", metavar="NAME", help="QEMU CPU model, e.g. EPYC-Milan")
    cpu.add_argument("--cpu-signature", metavar="HEX", help="CPUID signature, e.g. 0xa10f11 (-cpu host: the host's)")
    cpu.add_argument("--cpu-family", type=int, metavar="N", help="family, with --cpu-model and --cpu-stepping")
    cpu.add_argument("--cpu-model", type=int, metavar="N", help="model")
    cpu.add_argument("--cpu-stepping", type=int, metavar="N", help="stepping")
    digest.add_argument("--vmm", choices=[v.value for v in Vmm], help="who builds the vCPU state (default qemu)")
    digest.add_argument(
        "--vmsa-profile",
        choices=[p.value for p in VmsaProfile],
        help="the host's KVM init API: legacy (QEMU's default) or init2 (legacy-vm-type=off, Linux >= 6.10)",
    )
    digest.add_argument("--sev-features", metavar="HEX", help="sev-es: VMSA SEV_FEATURES (default 0; 0x20 DebugSwap)")
    digest.add_argument("--guest-features", metavar="HEX", help="sev-snp: VMSA SEV_FEATURES (default 0x1, SNPActive)")
    digest.add_argument(
        "--firmware-prefix", metavar="HEX", help="sev-snp: start from this sev-snp-firmware digest (96 hex digits)"
    )
    digest.add_argument("--kernel", metavar="PATH", help="kernel for measured direct boot (kernel-hashes=on)")
    digest.add_argument("--initrd", metavar="PATH", help="initrd (with --kernel)")
    digest.add_argument("--cmdline", metavar="STR", help="kernel command line, as given to -append (with --kernel)")
    digest.add_argument("--json", action="store_true", help="print the digest with the resolved configuration")
    digest.add_argument("--batch", metavar="FILE", help="read JSON lines from FILE (- for stdin)")
    digest.set_defaults(handler=_digest)

    measurement = commands.add_parser(
        "measurement",
        help="compute or check the SEV launch measurement (HMAC keyed by the TIK)",
        description=(
            "Compute HMAC-SHA256(0x04 || API_MAJOR || API_MINOR || BUILD || POLICY || GCTX.LD || MNONCE; TIK) "
            "and print it as hex, or with --check compare it with QMP query-sev-launch-measure data."
        ),
    )
    measurement.add_argument("--digest", required=True, metavar="HEX", help="the launch digest (GCTX.LD)")
    measurement.add_argument("--api-major", required=True, type=int, metavar="N", help="SEV API major version")
    measurement.add_argument("--api-minor", required=True, type=int, metavar="N", help="SEV API minor version")
    measurement.add_argument("--build", required=True, type=int, metavar="N", help="SEV firmware build")
    measurement.add_argument("--policy", required=True, metavar="HEX", help="guest policy")
    measurement.add_argument("--tik", required=True, metavar="FILE", help="TIK file: 16 bytes, or 32 bytes TEK||TIK")
    which = measurement.add_mutually_exclusive_group(required=True)
    which.add_argument("--nonce", metavar="HEX", help="the 16-byte MNONCE, as hex")
    which.add_argument("--check", metavar="BASE64", help="QMP launch-measure data (measurement || MNONCE)")
    measurement.add_argument("--json", action="store_true", help="print measurement, nonce and QMP blob as JSON")
    measurement.set_defaults(handler=_measurement)

    build = commands.add_parser(
        "build",
        help="build a publication from manifests",
        description=(
            "Expand the manifests into every combination, compute each expected digest, validate the "
            "result against the JSON Schemas and write the publication into --out: atomically, so that "
            "--out holds the previous publication until the new one is complete."
        ),
    )
    build.add_argument("manifests", nargs="+", metavar="MANIFEST", help="YAML manifest files forming one publication")
    build.add_argument("--out", required=True, metavar="DIR", help="the publication's folder (replaced as a whole)")
    build.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: all cores for large matrices)")
    build.add_argument(
        "--max-entries",
        type=int,
        default=DEFAULT_MAX_ENTRIES,
        metavar="N",
        help="refuse larger matrices (default 5000000)",
    )
    build.add_argument(
        "--issued",
        metavar="TIME",
        help="issue time, e.g. 2026-11-26T00:00:00Z, or now (default: the manifest's, or SOURCE_DATE_EPOCH)",
    )
    build.add_argument(
        "--cache", metavar="DIR", help="where downloaded packages are kept (default $SEVREF_CACHE or ~/.cache/sevref)"
    )
    build.set_defaults(handler=_build)

    validate = commands.add_parser(
        "validate",
        help="check manifests without computing",
        description=(
            "Check manifests against the schema and each other, read and check every pinned input, "
            "and expand the matrix, without computing digests or writing anything."
        ),
    )
    validate.add_argument(
        "manifests", nargs="+", metavar="MANIFEST", help="YAML manifest files forming one publication"
    )
    validate.add_argument(
        "--max-entries",
        type=int,
        default=DEFAULT_MAX_ENTRIES,
        metavar="N",
        help="refuse larger matrices (default 5000000)",
    )
    validate.add_argument("--cache", metavar="DIR", help="where downloaded packages are kept")
    validate.set_defaults(handler=_validate)

    report = commands.add_parser("report", help="read SEV-SNP attestation reports")
    report_commands = report.add_subparsers(dest="report_command", metavar="COMMAND", parser_class=_Parser)
    report_commands.required = True
    show = report_commands.add_parser(
        "show",
        help="print the fields of an attestation report",
        description=(
            "Decode a 1184-byte SEV-SNP attestation report (SNP ABI ATTESTATION_REPORT) and print its "
            "fields. Its signature is not checked."
        ),
    )
    show.add_argument("file", metavar="FILE", help="the report, as /dev/sev-guest returns it")
    show.add_argument("--json", action="store_true", help="print the fields as one JSON object")
    show.set_defaults(handler=_report_show)
    return parser


def _digest(args: argparse.Namespace, out: TextIO) -> int:
    given = [key for key in _DIGEST_OPTIONS if getattr(args, key) is not None]
    if args.batch is not None:
        if given or args.json:
            raise _Usage(
                f"--batch takes the configuration from its lines; drop {_flag(given[0]) if given else '--json'}"
            )
        return _digest_batch(args.batch, out)
    trio = [args.cpu_family, args.cpu_model, args.cpu_stepping]
    forms = sum((args.cpu is not None, args.cpu_signature is not None, any(v is not None for v in trio)))
    if forms > 1:
        raise _Usage("give the CPU once: --cpu, --cpu-signature, or --cpu-family/--cpu-model/--cpu-stepping")
    if any(v is not None for v in trio) and None in trio:
        raise _Usage("--cpu-family, --cpu-model and --cpu-stepping go together")
    if args.mode is None or args.firmware is None:
        raise _Usage("--mode and --firmware are required (or --batch FILE)")
    values = {key: getattr(args, key) for key in _DIGEST_OPTIONS if not key.startswith("cpu_")}
    values["cpu_signature"] = args.cpu_signature
    if args.cpu_family is not None:
        values["cpu_signature"] = cpu_signature(args.cpu_family, args.cpu_model, args.cpu_stepping)
    request = request_from_mapping(values, Path(), _flag)
    inputs = Inputs()
    digest = compute_digests([request], inputs)[0].unwrap()
    if not args.json:
        print(digest.hex(), file=out)
        return 0
    firmware = inputs.firmware(request.firmware, request.firmware_sha256)
    boot = inputs.boot(request)
    config = request.to_dict()
    config["firmware_sha256"] = firmware.sha256.hex()
    eip = firmware.info.sev_es_reset_eip
    measured = {
        "firmware_size": firmware.info.size,
        "ap_reset_eip": None if eip is None else f"{eip:#x}",
        "kernel_sha256": None if boot is None else boot.kernel_sha256.hex(),
        "initrd_sha256": None if boot is None or boot.initrd_sha256 is None else boot.initrd_sha256.hex(),
    }
    print(json_line({"digest": digest.hex(), "config": config, "inputs": measured}), file=out)
    return 0


def _digest_batch(source: str, out: TextIO) -> int:
    if source == "-":
        lines, base = sys.stdin.read().splitlines(), Path()
    else:
        path = Path(source)
        data = read_bytes(path, "batch file", 1 << 30)
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise FetchError(f"batch file {path}: byte {error.start} is not UTF-8") from error
        base = path.parent
    outcomes = compute_digests(parse_batch(lines, base))
    failed = 0
    for number, outcome in enumerate(outcomes, start=1):
        try:
            line = {"digest": outcome.unwrap().hex()}
        except SevrefError as error:
            failed += 1
            line = {"error": f"line {number}: {error.diagnostic()}"}
        print(json_line(line), file=out)
    if failed:
        print(f"sevref: {failed} of {len(outcomes)} batch lines failed", file=sys.stderr)
        return 1
    return 0


def _measurement(args: argparse.Namespace, out: TextIO) -> int:
    digest = parse_sha256(args.digest, "--digest")
    inputs = LaunchMeasureInputs(args.api_major, args.api_minor, args.build, parse_hex(args.policy, "--policy", 32))
    tik = _read_tik(Path(args.tik))
    if args.check is not None:
        blob_measurement, nonce = parse_launch_measure_blob(args.check)
    else:
        nonce, blob_measurement = parse_hex_bytes(args.nonce, "--nonce", 16), None
    value = sev_launch_measurement(digest, inputs, nonce, tik)
    if blob_measurement is not None and not hmac.compare_digest(value, blob_measurement):
        print(
            f"sevref: measurement does not match: the digest gives {value.hex()}, "
            f"the launch measurement holds {blob_measurement.hex()}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        blob = base64.b64encode(value + nonce).decode("ascii")
        print(json_line({"measurement": value.hex(), "nonce": nonce.hex(), "launch_measure": blob}), file=out)
    elif blob_measurement is not None:
        print(f"match: {value.hex()}", file=out)
    else:
        print(value.hex(), file=out)
    return 0


def _cache(args: argparse.Namespace) -> Path:
    return Path(args.cache) if args.cache else default_cache()


def _jobs(args: argparse.Namespace) -> int | None:
    if args.jobs is not None and args.jobs < 1:
        raise _Usage(f"--jobs: expected 1 or more, found {args.jobs}")
    return cast(int | None, args.jobs)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _build(args: argparse.Namespace, out: TextIO) -> int:
    summary = build(
        [Path(p) for p in args.manifests],
        Path(args.out),
        cache=_cache(args),
        jobs=_jobs(args),
        max_entries=args.max_entries,
        issued=args.issued,
        progress=sys.stderr,
    )
    print(
        f"built {summary.entries} entries ({summary.groups} configurations, {summary.firmware} firmware "
        f"build{'s' if summary.firmware != 1 else ''}) "
        f"into {summary.out} in {summary.seconds:.1f} s",
        file=out,
    )
    for report in summary.reports:
        print(f"  {report.describe()}", file=out)
    path, size = summary.largest
    print(f"  {summary.files} files, {_size(summary.size)}; largest {path} ({_size(size)})", file=out)
    return 0


def _validate(args: argparse.Namespace, out: TextIO) -> int:
    prepared = prepare([Path(p) for p in args.manifests], _cache(args), args.max_entries)
    expansion = prepared.expansion
    print(f"ok: {expansion.entries} entries in {len(expansion.groups)} configurations", file=out)
    for report in expansion.reports:
        print(f"  {report.describe()}", file=out)
    return 0


def _report_show(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.file)
    try:
        fields = decode_report(parse_report(read_bytes(path, "attestation report", 1 << 20)))
    except ReportFormatError as error:
        raise ReportFormatError(f"{path}: {error.diagnostic()}") from error
    if args.json:
        print(json_line(fields), file=out)
        return 0
    rows = list(_flatten(fields))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}", file=out)
    return 0


def _flatten(fields: dict[str, object], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for name, value in fields.items():
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{prefix}{name}."))
        else:
            rows.append(
                (prefix + name, "-" if value is None else str(value).lower() if isinstance(value, bool) else str(value))
            )
    return rows


def _read_tik(path: Path) -> bytes:
    try:
        return tik_from_bytes(read_bytes(path, "TIK file", 64))
    except ConfigError as error:
        raise ConfigError(f"TIK file {path}: {error.diagnostic()}") from error


class _Usage(Exception):
    pass


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run sevref.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        out: where results go (default: standard output).

    Returns:
        The exit code.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        status: int = args.handler(args, out or sys.stdout)
        return status
    except _Exit as stop:
        return stop.status
    except _Usage as usage:
        print(f"sevref: error: {usage}", file=sys.stderr)
        return 2
    except SevrefError as error:
        print(f"sevref: error: {error.diagnostic()}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
