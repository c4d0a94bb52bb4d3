"""``sevref digest`` and ``sevref measurement``: one launch at a time, or a batch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sevref._cli._common import Usage

if TYPE_CHECKING:
    from sevref._cli._common import Commands
from sevref.request import OPTIONS

_CPU_TRIO = ("cpu_family", "cpu_model", "cpu_stepping")


def register(commands: Commands) -> None:
    """Add ``digest`` and ``measurement``.

    Args:
        commands: the subcommands of ``sevref``.
    """
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
    cpu = digest.add_argument_group("guest CPU (sev-es with vmm qemu: give exactly one form)")
    for option in OPTIONS:
        (cpu if option.cpu else digest).add_argument(
            option.flag,
            metavar=option.metavar,
            choices=option.choices,
            type=int if option.integer else str,
            help=option.help,
        )
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


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _values(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration the options give, under the batch keys (the CPU trio folded into a signature)."""
    from sevref.binfmt.vmsa import cpu_signature

    trio = [getattr(args, key) for key in _CPU_TRIO]
    forms = sum((args.cpu is not None, args.cpu_signature is not None, any(v is not None for v in trio)))
    if forms > 1:
        raise Usage("give the CPU once: --cpu, --cpu-signature, or --cpu-family/--cpu-model/--cpu-stepping")
    if any(v is not None for v in trio) and None in trio:
        raise Usage("--cpu-family, --cpu-model and --cpu-stepping go together")
    if args.mode is None or args.firmware is None:
        raise Usage("--mode and --firmware are required (or --batch FILE)")
    values: dict[str, Any] = {option.key: getattr(args, option.key) for option in OPTIONS if option.batch}
    if args.cpu_family is not None:
        values["cpu_signature"] = cpu_signature(args.cpu_family, args.cpu_model, args.cpu_stepping)
    return values


def _digest(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.api import digest
    from sevref.serialize import json_line

    given = [option.key for option in OPTIONS if getattr(args, option.key) is not None]
    if args.batch is not None:
        if given or args.json:
            raise Usage(
                f"--batch takes the configuration from its lines; drop {_flag(given[0]) if given else '--json'}"
            )
        return _digest_batch(args.batch, out)
    values = _values(args)
    result = digest(values.pop("mode"), values.pop("firmware"), names=_flag, **values)
    if not args.json:
        print(result.hex(), file=out)
        return 0
    config = result.request.to_dict()
    config["firmware_sha256"] = result.firmware_sha256.hex()
    eip = result.ap_reset_eip
    measured = {
        "firmware_size": result.firmware_size,
        "ap_reset_eip": None if eip is None else f"{eip:#x}",
        "kernel_sha256": None if result.kernel_sha256 is None else result.kernel_sha256.hex(),
        "initrd_sha256": None if result.initrd_sha256 is None else result.initrd_sha256.hex(),
    }
    print(json_line({"digest": result.hex(), "config": config, "inputs": measured}), file=out)
    return 0


def _digest_batch(source: str, out: TextIO) -> int:
    from sevref.edge.files import read_bytes
    from sevref.edge.inputs import measure_batch
    from sevref.errors import FetchError
    from sevref.limits import MAX_BATCH_BYTES
    from sevref.request import read_batch
    from sevref.serialize import json_line

    if source == "-":
        lines, base = sys.stdin.read().splitlines(), Path()
    else:
        path = Path(source)
        data = read_bytes(path, "batch file", MAX_BATCH_BYTES)
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise FetchError(f"batch file {path}: byte {error.start} is not UTF-8") from error
        base = path.parent
    results = measure_batch(read_batch(lines, base))
    failed = 0
    chunk: list[str] = []
    for number, result in enumerate(results, start=1):
        if isinstance(result, bytes):
            chunk.append(f'{{"digest": "{result.hex()}"}}\n')  # json_line({"digest": ...}), as the tests check
        else:
            failed += 1
            chunk.append(json_line({"error": f"line {number}: {result.diagnostic()}"}) + "\n")
        if len(chunk) == 4096:
            out.write("".join(chunk))
            chunk.clear()
    out.write("".join(chunk))
    if failed:
        print(f"sevref: {failed} of {len(results)} batch lines failed", file=sys.stderr)
        return 1
    return 0


def _measurement(args: argparse.Namespace, out: TextIO) -> int:
    import base64
    import hmac

    from sevref.digest import LaunchMeasureInputs, parse_launch_measure_blob, sev_launch_measurement
    from sevref.serialize import json_line
    from sevref.values import parse_hex, parse_hex_bytes, parse_sha256

    digest = parse_sha256(args.digest, "--digest")
    inputs = LaunchMeasureInputs(args.api_major, args.api_minor, args.build, parse_hex(args.policy, "--policy", 32))
    from sevref.edge.files import read_tik

    tik = read_tik(Path(args.tik))
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
