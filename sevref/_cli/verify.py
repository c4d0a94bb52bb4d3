"""``sevref verify``: trust a publication, then match a guest's evidence against it.

Exit 3 means the publication is not trusted, or the SEV-SNP report's
signature or its chain to AMD's roots does not hold (the evidence is not
accepted); verify exits 1 when evidence matches no acceptable entry, or for a
bad file or option.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import Usage, add_trust_options, fetch_limits

if TYPE_CHECKING:
    from sevref._cli._common import Commands
    from sevref.api import Evidence, Verdict
    from sevref.match import Match


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
            "is stateless. An SEV-SNP report's signature is checked to AMD's roots (built in for Milan, Genoa and "
            "Turin) with the VCEK or VLEK given, and its policy must allow neither debugging nor migration. "
            "Exit 0: match (or a trusted publication when no evidence is given); 1: no acceptable "
            "match, or a bad file; 3: publication not trusted, or a report whose signature or chain does not hold; "
            "2: usage."
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
    _add_report_options(verify)
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
    verify.add_argument(
        "--corim",
        metavar="FILE",
        help="also check a CoRIM (export --format corim, or the publication's corim/*.corim): signed by an active "
        "release key of the trusted chain, valid now, accepting only values this release accepts",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(handler=_verify)


def _add_report_options(verify: argparse.ArgumentParser) -> None:
    """The options of an SEV-SNP report: its certificates, AMD's roots, and what the policy may allow."""
    snp = verify.add_argument_group("SEV-SNP reports (with --snp-report)")
    certificate = snp.add_mutually_exclusive_group()
    certificate.add_argument(
        "--vcek",
        metavar="FILE",
        help="the VCEK (or VLEK) that signed the report, DER or PEM (e.g. snpguest fetch vcek)",
    )
    certificate.add_argument(
        "--report-certs",
        metavar="FILE",
        help="the certificate table of an extended report (the GUID table SNP_GET_EXT_REPORT returns): its VCEK or VLEK",
    )
    snp.add_argument(
        "--amd-root",
        metavar="PEM",
        help="the ARK and ASK (or ASVK) to check the chain to, in place of AMD's built-in roots",
    )
    snp.add_argument(
        "--skip-report-signature",
        action="store_true",
        help="accept the report without checking its signature (the output says so)",
    )
    snp.add_argument("--allow-debug", action="store_true", help="accept a guest policy with DEBUG (bit 19)")
    snp.add_argument("--allow-migration", action="store_true", help="accept a guest policy with MIGRATE_MA (bit 18)")
    snp.add_argument(
        "--min-tcb",
        metavar="PART=N,...",
        help="refuse a REPORTED_TCB below these levels, e.g. bootloader=3,tee=0,snp=8,microcode=115 (Turin: fmc too)",
    )


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
    snp_args = {
        "--vcek": args.vcek,
        "--report-certs": args.report_certs,
        "--amd-root": args.amd_root,
        "--skip-report-signature": args.skip_report_signature,
        "--allow-debug": args.allow_debug,
        "--allow-migration": args.allow_migration,
        "--min-tcb": args.min_tcb,
    }
    given = [name for name, value in snp_args.items() if value]
    if args.snp_report is None and given:
        raise Usage(f"{given[0]} goes with --snp-report")


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.api import CorimRefused, verify
    from sevref.errors import TrustError
    from sevref.values import parse_duration, parse_time

    _check_evidence_options(args)
    evidence = _evidence(args)  # a bad --min-tcb is a one-line error before anything is fetched
    timeout, deadline = fetch_limits(args)
    try:
        verdict = verify(
            args.publication,
            trusted_keys=args.trusted_key,
            publisher=args.publisher,
            product=args.product,
            stream=args.stream,
            evidence=evidence,
            at=None if args.at is None else parse_time(args.at),
            state=args.state,
            check_all_files=not args.only_needed,
            timeout=timeout,
            deadline=deadline,
            require_timestamp=args.require_timestamp,
            max_age=None if args.max_age is None else parse_duration(args.max_age, "--max-age"),
            require_stateless=args.require_stateless,
            corim=args.corim,
        )
    except TrustError as error:
        print(f"sevref: {error.diagnostic()}", file=sys.stderr)
        return 3
    except CorimRefused as error:
        print(f"sevref: not accepted: {error.diagnostic()}", file=sys.stderr)
        return 3
    if verdict.publication is None:  # the report was refused before the publication was read
        if args.json:
            _print_refused_report(verdict.refused or "", out)
    else:
        if verdict.corim is not None and not args.json:
            print(verdict.corim, file=out)
        if args.json:
            _print_json(verdict, out)
        else:
            _print_text(verdict, out)
    if verdict.reason is not None:
        print(f"sevref: {verdict.reason}", file=sys.stderr)
    return verdict.status


def _evidence(args: argparse.Namespace) -> Evidence | None:
    """The evidence the options give, as the API takes it."""
    from dataclasses import replace

    from sevref.api import LaunchMeasurement, SnpMeasurement, SnpReport
    from sevref.digest import LaunchMeasureInputs
    from sevref.snp.validate import Acceptance, parse_min_tcb
    from sevref.values import parse_hex

    if args.snp_report is not None:
        report = SnpReport(args.snp_report, args.vcek, args.report_certs, args.amd_root, args.skip_report_signature)
        report.check()
        acceptance = Acceptance(args.allow_debug, args.allow_migration)
        if args.min_tcb is not None:
            acceptance = Acceptance(args.allow_debug, args.allow_migration, parse_min_tcb(args.min_tcb))
        return replace(report, acceptance=acceptance)
    if args.snp_measurement is not None:
        return SnpMeasurement(args.snp_measurement)
    if args.launch_measurement is not None:
        inputs = LaunchMeasureInputs(args.api_major, args.api_minor, args.build, parse_hex(args.policy, "--policy", 32))
        return LaunchMeasurement(args.launch_measurement, args.tik, inputs, args.firmware, args.vcpus)
    return None


def _print_refused_report(diagnostic: str, out: TextIO) -> None:
    from sevref.serialize import json_line

    document: dict[str, object] = {
        "publication": None,
        "verdict": "not accepted",
        "evidence": "the SEV-SNP report",
        "report_signature": {"verified": False, "reason": "invalid", "note": diagnostic},
        "report_signer": None,
        "matches": [],
    }
    print(json_line(document), file=out)


def _print_json(verdict: Verdict, out: TextIO) -> None:
    from sevref.serialize import json_line
    from sevref.values import format_time

    publication, matches, what, signature = verdict.publication, verdict.matches, verdict.evidence, verdict.signature
    if publication is None:  # pragma: no cover - _verify prints a refused report itself
        raise ValueError("no publication")
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
    document = {
        "publication": summary,
        "verdict": "trusted" if what is None else ("match" if any(m.acceptable for m in matches) else "no match"),
        "evidence": what,
        "report_signature": None if signature is None else signature.to_json(),
        "corim": verdict.corim,
        "report_signer": None if signature is None or signature.verified is None else signature.verified.to_dict(),
        "matches": [m.to_dict() for m in matches],
    }
    print(json_line(document), file=out)


def _print_text(verdict: Verdict, out: TextIO) -> None:
    from sevref.errors import printable
    from sevref.values import format_time

    publication, matches, signature = verdict.publication, verdict.matches, verdict.signature
    if publication is None:  # pragma: no cover - _verify prints a refused report itself
        raise ValueError("no publication")
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
        print(printable(f"{'report' if signature.reason == 'verified' else 'warning'}: {signature.note}"), file=out)
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
