"""``sevref verify``: trust a publication, then match a guest's evidence against it.

Exit 3 means the publication is not trusted; verify exits 1 when evidence
matches no acceptable entry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import Usage, add_trust_options, read_tik, trusted

if TYPE_CHECKING:
    from sevref._cli._common import Commands
    from sevref.match import Match
    from sevref.trust import TrustedPublication


def register(commands: Commands) -> None:
    """Add ``verify``.

    Args:
        commands: the subcommands of ``sevref``.
    """
    verify = commands.add_parser(
        "verify",
        help="check a publication and match a guest's evidence against it",
        description=(
            "Check a publication (key chain, signature, identity, expiry, rollback, freshness if asked, every "
            "file's sha256), "
            "then match evidence: an SEV-SNP report or measurement by direct lookup, or an SEV/SEV-ES launch "
            "measurement by scanning the candidates with the guest owner's TIK. A match says whether its firmware "
            "is stateless. Exit 0: match (or a trusted publication when no evidence is given); 1: no acceptable "
            "match; 3: publication not trusted; 2: usage."
        ),
    )
    add_trust_options(verify)
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
    verify.add_argument(
        "--require-stateless",
        action="store_true",
        help="refuse a match whose firmware keeps UEFI variables the measurement does not cover (a stateful firmware)",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(handler=_verify)


def _check_evidence_options(args: argparse.Namespace) -> None:
    sev_args = {
        "--tik": args.tik,
        "--api-major": args.api_major,
        "--api-minor": args.api_minor,
        "--build": args.build,
        "--policy": args.policy,
    }
    given = [name for name, value in sev_args.items() if value is not None]
    if args.launch_measurement is None and given:
        raise Usage(f"{given[0]} goes with --launch-measurement")
    if args.launch_measurement is not None and len(given) != len(sev_args):
        raise Usage(f"--launch-measurement needs {', '.join(n for n in sev_args if n not in given)}")
    if (args.firmware or args.vcpus) and args.launch_measurement is None:
        raise Usage("--firmware and --vcpus narrow a --launch-measurement scan")


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.errors import TrustError
    from sevref.match import firmware_notes, report_signature

    _check_evidence_options(args)
    signature = report_signature(_evidence_kind(args))
    try:
        publication = trusted(args, not args.only_needed)
        matches, what = _match(args, publication)
        matches = firmware_notes(matches, args.require_stateless)
    except TrustError as error:
        print(f"sevref: {error.diagnostic()}", file=sys.stderr)
        return 3
    acceptable = [m for m in matches if m.acceptable]
    if args.json:
        _print_json(publication, matches, what, signature, out)
    else:
        _print_text(publication, matches, signature, out)
    if what is not None and not acceptable:
        problem = "matches no published entry" if not matches else f"matches {len(matches)} entries, each refused"
        print(f"sevref: no match: {what} {problem}", file=sys.stderr)
        return 1
    return 0


def _evidence_kind(args: argparse.Namespace) -> str:
    for option in ("snp_report", "snp_measurement", "launch_measurement"):
        if getattr(args, option) is not None:
            return option.replace("_", "-")
    return "none"


def _print_json(
    publication: TrustedPublication,
    matches: list[Match],
    what: str | None,
    signature: dict[str, object] | None,
    out: TextIO,
) -> None:
    from sevref.serialize import json_line
    from sevref.values import format_time

    index = publication.index
    release = index.release
    summary = {
        "publisher": release.publisher,
        "product": release.product,
        "stream": release.stream,
        "release": release.release,
        "serial": release.serial,
        "issued": index.to_dict()["issued"],
        "expires": index.to_dict()["expires"],
        "signed_by": publication.keyid,
        "keys_version": publication.keys_version,
        "key_label": publication.key_label,
        "timestamp": None
        if publication.timestamp is None
        else {
            "issued": format_time(publication.timestamp.issued),
            "expires": format_time(publication.timestamp.expires),
        },
        "previous": None if index.previous is None else index.previous.to_dict(),
        "history_gap": publication.history_gap,
    }
    verdict = "trusted" if what is None else ("match" if any(m.acceptable for m in matches) else "no match")
    document = {
        "publication": summary,
        "verdict": verdict,
        "evidence": what,
        "report_signature": signature,
        "matches": [m.to_dict() for m in matches],
    }
    print(json_line(document), file=out)


def _print_text(
    publication: TrustedPublication, matches: list[Match], signature: dict[str, object] | None, out: TextIO
) -> None:
    from sevref.errors import printable
    from sevref.values import format_time

    index = publication.index
    release = index.release
    fresh = publication.timestamp
    print(
        printable(
            f"trusted: {release.publisher} {release.product} {release.stream} release {release.release} "
            f"serial {release.serial}, signed by key {publication.keyid[:16]}... (keys/{publication.keys_version})"
            + (f" labelled {publication.key_label!r}" if publication.key_label else "")
            + f", expires {format_time(index.expires)}"
            + (f"; timestamp issued {format_time(fresh.issued)}, until {format_time(fresh.expires)}" if fresh else "")
        ),
        file=out,
    )
    if signature is not None:
        print(f"warning: {signature['note']}", file=out)
    if publication.history_gap is not None:
        print(printable(f"note: {publication.history_gap}"), file=out)
    for match in matches:
        print(printable(_describe(match)), file=out)
        for note, blocking in match.notes:
            print(printable(f"  {'refused' if blocking else 'note'}: {note}"), file=out)


def _describe(match: Match) -> str:
    g = match.group
    words = [match.entry_id, str(g.mode), f"firmware {g.firmware}", f"host {g.host_stack}"]
    if g.cpu_signature is not None:
        words.append(f"cpu {g.cpu or f'{g.cpu_signature:#x}'}")
    if match.vcpus:
        words.append(f"{match.vcpus} vCPUs")
    if g.boot:
        words.append(f"boot {g.boot}")
    return f"{'match' if match.acceptable else 'refused'}: {' '.join(words)} [{match.state.status}]"


def _match(args: argparse.Namespace, publication: TrustedPublication) -> tuple[list[Match], str | None]:
    from sevref.binfmt.report import parse_report
    from sevref.digest import LaunchMeasureInputs, parse_launch_measure_blob
    from sevref.edge.files import read_bytes
    from sevref.limits import MAX_REPORT_FILE_BYTES
    from sevref.match import lookup_digest, scan_launch_measurement, snp_notes
    from sevref.values import parse_hex, parse_hex_bytes

    if args.snp_report is not None:
        report = parse_report(read_bytes(Path(args.snp_report), "attestation report", MAX_REPORT_FILE_BYTES))
        digest = bytes(report.measurement).hex()
        return snp_notes(lookup_digest(publication, digest), report), f"the SEV-SNP report's measurement {digest}"
    if args.snp_measurement is not None:
        digest = parse_hex_bytes(args.snp_measurement.lower(), "--snp-measurement", 48).hex()
        return lookup_digest(publication, digest), f"the SEV-SNP measurement {digest}"
    if args.launch_measurement is not None:
        measurement, nonce = parse_launch_measure_blob(args.launch_measurement)
        inputs = LaunchMeasureInputs(args.api_major, args.api_minor, args.build, parse_hex(args.policy, "--policy", 32))
        tik = read_tik(Path(args.tik))
        matches, tried = scan_launch_measurement(
            publication, measurement, nonce, inputs, tik, firmware=args.firmware, vcpus=args.vcpus
        )
        return matches, f"the launch measurement (tried against {tried} SEV/SEV-ES candidates)"
    return [], None
