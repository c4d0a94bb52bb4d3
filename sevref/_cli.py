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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO, cast

from sevref import __version__
from sevref.binfmt.report import decode_report, parse_report
from sevref.binfmt.vmsa import Vmm, VmsaProfile, cpu_signature
from sevref.digest import LaunchMeasureInputs, Mode, parse_launch_measure_blob, sev_launch_measurement, tik_from_bytes
from sevref.errors import ConfigError, FetchError, ReportFormatError, SevrefError
from sevref.expand import DEFAULT_MAX_ENTRIES
from sevref.export import trustee_message, virt_qemu_sev_validate
from sevref.manifest import parse_hex, parse_hex_bytes, parse_sha256, parse_time, request_from_mapping
from sevref.match import Match, lookup_digest, scan_launch_measurement, snp_notes
from sevref.pipeline import (
    Inputs,
    build,
    compute_digests,
    default_cache,
    extend_chain,
    generate_key_files,
    load_signer,
    parse_batch,
    prepare,
    read_bytes,
    read_chain,
    read_passphrase,
    trust,
)
from sevref.serialize import json_line
from sevref.sign import Algorithm, KeySigner
from sevref.trust import TrustedPublication, TrustError


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: "--passphrase x" must not be read as "--passphrase-file x".
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

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


_ALLOW_HELP = "a folder outside the manifests' own from which they may name files (repeatable)"


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
    build.add_argument("--allow-path", action="append", default=[], metavar="DIR", help=_ALLOW_HELP)
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
    build.add_argument(
        "--signing-key",
        metavar="PEM",
        help="sign the release with this key (passphrase: $SEVREF_KEY_PASSPHRASE or --passphrase-file)",
    )
    build.add_argument("--passphrase-file", metavar="FILE", help="file whose first line is the key's passphrase")
    build.add_argument(
        "--keys",
        metavar="DIR",
        help="the publisher's key chain (sevref key chain); default: one document naming the signing key",
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
    validate.add_argument("--allow-path", action="append", default=[], metavar="DIR", help=_ALLOW_HELP)
    validate.set_defaults(handler=_validate)

    key = commands.add_parser("key", help="make signing keys and the publisher's key chain")
    key_commands = key.add_subparsers(dest="key_command", metavar="COMMAND", parser_class=_Parser)
    key_commands.required = True
    generate = key_commands.add_parser(
        "generate",
        help="make a key pair: PREFIX.pem (encrypted, mode 0600) and PREFIX.pub",
        description=(
            "Make a signing key. The private key is encrypted with the passphrase from $SEVREF_KEY_PASSPHRASE "
            "or --passphrase-file (never from the command line). Prints the key id: the SHA-256 of the public "
            "key's DER SubjectPublicKeyInfo."
        ),
    )
    generate.add_argument("--out", required=True, metavar="PREFIX", help="path prefix of the two files")
    generate.add_argument(
        "--algorithm",
        choices=[a.value for a in Algorithm],
        default=Algorithm.ECDSA_P256.value,
        help="default ecdsa-p256",
    )
    generate.add_argument("--passphrase-file", metavar="FILE", help="file whose first line is the passphrase")
    generate.set_defaults(handler=_key_generate)
    chain = key_commands.add_parser(
        "chain",
        help="start or extend the publisher's key chain",
        description=(
            "Write the next keys document into DIR (the first when DIR is empty): the publisher's keys, "
            "signed by an active key of the previous document and by every key added. Verifiers pinned "
            "to an older key follow the chain; a revoked key is refused."
        ),
    )
    chain.add_argument(
        "--keys", required=True, metavar="DIR", help="the chain's folder (1.dsse.json, 2.dsse.json, ...)"
    )
    chain.add_argument("--publisher", required=True, metavar="ID", help="the publisher id (as in the manifest)")
    chain.add_argument(
        "--signing-key", required=True, metavar="PEM", help="an active key of the last document (or the first key)"
    )
    chain.add_argument(
        "--passphrase-file", metavar="FILE", help="passphrase of --signing-key (default $SEVREF_KEY_PASSPHRASE)"
    )
    chain.add_argument(
        "--add", action="append", default=[], metavar="PEM", help="a new key (private: it countersigns); repeatable"
    )
    chain.add_argument(
        "--add-passphrase-file",
        metavar="FILE",
        help="passphrase of the --add keys (default $SEVREF_NEW_KEY_PASSPHRASE)",
    )
    chain.add_argument("--revoke", action="append", default=[], metavar="KEYID", help="revoke a key; repeatable")
    chain.add_argument("--reason", metavar="TEXT", help="why the keys are revoked")
    chain.add_argument("--label", metavar="TEXT", help="a label for people, e.g. DEMO KEY: do not trust")
    chain.set_defaults(handler=_key_chain)

    verify = commands.add_parser(
        "verify",
        help="check a publication and match a guest's evidence against it",
        description=(
            "Check a publication (key chain, signature, identity, expiry, rollback, every file's sha256), "
            "then match evidence: an SEV-SNP report or measurement by direct lookup, or an SEV/SEV-ES launch "
            "measurement by scanning the candidates with the guest owner's TIK. Exit 0: match (or a trusted "
            "publication when no evidence is given); 1: no acceptable match; 3: publication not trusted; 2: usage."
        ),
    )
    verify.add_argument(
        "--publication", required=True, metavar="DIR|URL", help="a folder, file://, http:// or https:// URL"
    )
    verify.add_argument(
        "--trusted-key", required=True, action="append", metavar="PEM", help="a pinned publisher key; repeatable"
    )
    verify.add_argument("--publisher", required=True, metavar="ID", help="expected publisher id")
    verify.add_argument("--product", required=True, metavar="ID", help="expected product id")
    verify.add_argument("--stream", required=True, metavar="ID", help="expected stream id")
    verify.add_argument("--at", metavar="TIME", help="check validity at this time (default: now)")
    verify.add_argument("--state", metavar="FILE", help="remembers the highest serial seen; a lower one is refused")
    verify.add_argument(
        "--only-needed",
        action="store_true",
        help="check only the files evidence matching reads (large remote publications)",
    )
    evidence = verify.add_mutually_exclusive_group()
    evidence.add_argument("--snp-report", metavar="FILE", help="an SEV-SNP attestation report (1184 bytes)")
    evidence.add_argument("--snp-measurement", metavar="HEX", help="an SEV-SNP MEASUREMENT (96 hex digits)")
    evidence.add_argument(
        "--launch-measurement", metavar="BASE64", help="QMP query-sev-launch-measure data (HMAC || MNONCE)"
    )
    verify.add_argument("--tik", metavar="FILE", help="with --launch-measurement: the TIK (16 bytes, or TEK||TIK)")
    verify.add_argument("--api-major", type=int, metavar="N", help="with --launch-measurement")
    verify.add_argument("--api-minor", type=int, metavar="N", help="with --launch-measurement")
    verify.add_argument("--build", type=int, metavar="N", help="with --launch-measurement: SEV firmware build")
    verify.add_argument("--policy", metavar="HEX", help="with --launch-measurement: the guest's policy")
    verify.add_argument(
        "--firmware", action="append", metavar="ID", help="only candidates of this firmware; repeatable"
    )
    verify.add_argument("--vcpus", type=int, metavar="N", help="only candidates with this vCPU count")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(handler=_verify)

    export = commands.add_parser(
        "export",
        help="export a verified publication for other verifiers",
        description="Check a publication as verify does, then write it in another verifier's format.",
    )
    export.add_argument(
        "--format", required=True, choices=["trustee", "virt-qemu-sev-validate"], help="the target format"
    )
    export.add_argument("--publication", required=True, metavar="DIR|URL", help="a folder or URL")
    export.add_argument("--trusted-key", required=True, action="append", metavar="PEM", help="a pinned publisher key")
    export.add_argument("--publisher", required=True, metavar="ID", help="expected publisher id")
    export.add_argument("--product", required=True, metavar="ID", help="expected product id")
    export.add_argument("--stream", required=True, metavar="ID", help="expected stream id")
    export.add_argument("--at", metavar="TIME", help="check validity at this time (default: now)")
    export.add_argument("--firmware", action="append", metavar="ID", help="trustee: only this firmware; repeatable")
    export.add_argument("--entry", metavar="ID", help="virt-qemu-sev-validate: the entry")
    export.set_defaults(handler=_export)

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


def _signer(path: str | None, passphrase_file: str | None) -> KeySigner | None:
    if path is None:
        if passphrase_file is not None:
            raise _Usage("--passphrase-file goes with --signing-key")
        return None
    return load_signer(Path(path), read_passphrase(Path(passphrase_file) if passphrase_file else None))


def _build(args: argparse.Namespace, out: TextIO) -> int:
    signer = _signer(args.signing_key, args.passphrase_file)
    keys = read_chain(Path(args.keys)) if args.keys else []
    if args.keys and not keys:
        raise ConfigError(f"--keys {args.keys}: no 1.dsse.json; start a chain with sevref key chain")
    summary = build(
        [Path(p) for p in args.manifests],
        Path(args.out),
        cache=_cache(args),
        jobs=_jobs(args),
        max_entries=args.max_entries,
        issued=args.issued,
        progress=sys.stderr,
        signer=signer,
        keys=keys,
        allow=[Path(folder) for folder in args.allow_path],
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
    page, page_size = summary.largest_page
    print(
        f"  {summary.files} files, {_size(summary.size)}; largest {path} ({_size(size)}); "
        f"{summary.pages} pages, largest {page} ({_size(page_size)})",
        file=out,
    )
    print(
        f"  signed by key {signer.keyid}" if signer else "  UNSIGNED: verifiers will refuse it (give --signing-key)",
        file=out,
    )
    return 0


def _key_generate(args: argparse.Namespace, out: TextIO) -> int:
    passphrase = read_passphrase(Path(args.passphrase_file) if args.passphrase_file else None)
    prefix = Path(args.out)
    keyid = generate_key_files(prefix, Algorithm(args.algorithm), passphrase)
    print(f"{keyid}  {prefix}.pem (private, encrypted, mode 0600)  {prefix}.pub", file=out)
    return 0


def _key_chain(args: argparse.Namespace, out: TextIO) -> int:
    signer = load_signer(
        Path(args.signing_key), read_passphrase(Path(args.passphrase_file) if args.passphrase_file else None)
    )
    added = []
    if args.add:
        passphrase = read_passphrase(
            Path(args.add_passphrase_file) if args.add_passphrase_file else None, "SEVREF_NEW_KEY_PASSPHRASE"
        )
        added = [load_signer(Path(path), passphrase) for path in args.add]
    if args.revoke and not args.reason:
        raise _Usage("--revoke needs --reason")
    revoked = {keyid: args.reason for keyid in args.revoke}
    version, path = extend_chain(Path(args.keys), args.publisher, signer, added, revoked, args.label)
    print(f"wrote {path}: keys version {version}", file=out)
    return 0


def _at(text: str | None) -> datetime:
    return datetime.now(UTC) if text is None else parse_time(text)


def _trusted(args: argparse.Namespace, check_all: bool) -> TrustedPublication:
    return trust(
        args.publication,
        [Path(k) for k in args.trusted_key],
        (args.publisher, args.product, args.stream),
        _at(args.at),
        Path(args.state) if getattr(args, "state", None) else None,
        check_all,
    )


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    sev_args = {
        "--tik": args.tik,
        "--api-major": args.api_major,
        "--api-minor": args.api_minor,
        "--build": args.build,
        "--policy": args.policy,
    }
    given = [name for name, value in sev_args.items() if value is not None]
    if args.launch_measurement is None and given:
        raise _Usage(f"{given[0]} goes with --launch-measurement")
    if args.launch_measurement is not None and len(given) != len(sev_args):
        raise _Usage(f"--launch-measurement needs {', '.join(n for n in sev_args if n not in given)}")
    if (args.firmware or args.vcpus) and args.launch_measurement is None:
        raise _Usage("--firmware and --vcpus narrow a --launch-measurement scan")
    try:
        publication = _trusted(args, not args.only_needed)
        matches, what = _match(args, publication)
    except TrustError as error:
        print(f"sevref: {error.diagnostic()}", file=sys.stderr)
        return 3
    index = publication.index
    release = index.release
    acceptable = [m for m in matches if m.acceptable]
    if args.json:
        summary = {
            "publisher": release.publisher,
            "product": release.product,
            "stream": release.stream,
            "release": release.release,
            "serial": release.serial,
            "issued": index.issued,
            "expires": index.expires,
            "signed_by": publication.keyid,
            "keys_version": publication.keys_version,
            "key_label": publication.key_label,
        }
        verdict = "trusted" if what is None else ("match" if acceptable else "no match")
        print(
            json_line(
                {
                    "publication": summary,
                    "verdict": verdict,
                    "evidence": what,
                    "matches": [m.to_dict() for m in matches],
                }
            ),
            file=out,
        )
    else:
        print(
            f"trusted: {release.publisher} {release.product} {release.stream} release {release.release} serial {release.serial}, "
            f"signed by key {publication.keyid[:16]}... (keys/{publication.keys_version})"
            + (f" labelled {publication.key_label!r}" if publication.key_label else "")
            + f", expires {index.expires}",
            file=out,
        )
        for match in matches:
            print(_describe_match(match), file=out)
            for note, blocking in match.notes:
                print(f"  {'refused' if blocking else 'note'}: {note}", file=out)
    if what is not None and not acceptable:
        problem = "matches no published entry" if not matches else f"matches {len(matches)} entries, each refused"
        print(f"sevref: no match: {what} {problem}", file=sys.stderr)
        return 1
    return 0


def _describe_match(match: Match) -> str:
    g = match.group
    words = [match.entry_id, g["mode"], f"firmware {g['firmware']}", f"host {g['host_stack']}"]
    if g["cpu_signature"]:
        words.append(f"cpu {g['cpu'] or g['cpu_signature']}")
    if match.vcpus:
        words.append(f"{match.vcpus} vCPUs")
    if g["boot"]:
        words.append(f"boot {g['boot']}")
    return f"{'match' if match.acceptable else 'refused'}: {' '.join(words)} [{g['status']}]"


def _match(args: argparse.Namespace, publication: TrustedPublication) -> tuple[list[Match], str | None]:
    if args.snp_report is not None:
        report = parse_report(read_bytes(Path(args.snp_report), "attestation report", 1 << 20))
        digest = bytes(report.measurement).hex()
        return snp_notes(lookup_digest(publication, digest), report), f"the SEV-SNP report's measurement {digest}"
    if args.snp_measurement is not None:
        digest = parse_hex_bytes(args.snp_measurement.lower(), "--snp-measurement", 48).hex()
        return lookup_digest(publication, digest), f"the SEV-SNP measurement {digest}"
    if args.launch_measurement is not None:
        measurement, nonce = parse_launch_measure_blob(args.launch_measurement)
        inputs = LaunchMeasureInputs(args.api_major, args.api_minor, args.build, parse_hex(args.policy, "--policy", 32))
        tik = _read_tik(Path(args.tik))
        matches, tried = scan_launch_measurement(
            publication, measurement, nonce, inputs, tik, firmware=args.firmware, vcpus=args.vcpus
        )
        return matches, f"the launch measurement (tried against {tried} SEV/SEV-ES candidates)"
    return [], None


def _export(args: argparse.Namespace, out: TextIO) -> int:
    if args.format == "virt-qemu-sev-validate" and args.entry is None:
        raise _Usage("--format virt-qemu-sev-validate needs --entry")
    if args.format == "trustee" and args.entry is not None:
        raise _Usage("--entry goes with --format virt-qemu-sev-validate")
    try:
        publication = _trusted(args, True)
        text = (
            json_line(trustee_message(publication, args.firmware))
            if args.format == "trustee"
            else virt_qemu_sev_validate(publication, args.entry)
        )
    except TrustError as error:
        print(f"sevref: {error.diagnostic()}", file=sys.stderr)
        return 3
    print(text, file=out)
    return 0


def _validate(args: argparse.Namespace, out: TextIO) -> int:
    prepared = prepare(
        [Path(p) for p in args.manifests], _cache(args), args.max_entries, [Path(f) for f in args.allow_path]
    )
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
