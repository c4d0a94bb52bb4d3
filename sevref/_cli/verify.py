"""``sevref verify``: trust a publication, then match a guest's evidence against it.

Exit 3 means the publication is not trusted, or the SEV-SNP report's
signature or its chain to AMD's roots does not hold (the evidence is not
accepted); verify exits 1 when evidence matches no acceptable entry, or for a
bad file or option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import Usage, add_trust_options, read_tik, trusted

if TYPE_CHECKING:
    from sevref._cli._common import Commands
    from sevref.match import Match, ReportSignature
    from sevref.snp.products import Product
    from sevref.snp.validate import Acceptance
    from sevref.snp.verify import RootProvider, Roots
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
    if args.amd_root and not (args.vcek or args.report_certs):
        raise Usage("--amd-root goes with --vcek or --report-certs (the roots check the VCEK's chain)")
    if args.skip_report_signature and (args.vcek or args.report_certs or args.amd_root):
        raise Usage("--skip-report-signature: give it without --vcek, --report-certs and --amd-root")


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.errors import TrustError
    from sevref.match import ReportSignature, firmware_notes
    from sevref.snp import EvidenceError

    _check_evidence_options(args)
    _acceptance(args)  # a bad --min-tcb is a one-line error before anything is fetched
    try:
        signature = _report_signature(args)
    except EvidenceError as error:
        if args.json:
            _print_refused_report(error.diagnostic(), out)
        print(f"sevref: not accepted: {error.diagnostic()}", file=sys.stderr)
        return 3
    if signature is None:
        signature = ReportSignature.unchecked(_evidence_kind(args), args.skip_report_signature)
    try:
        publication = trusted(args, not args.only_needed)
        matches, what = _match(args, publication, signature)
        matches = firmware_notes(matches, args.require_stateless)
        corim = None if args.corim is None else _corim(args, publication)
    except TrustError as error:
        print(f"sevref: {error.diagnostic()}", file=sys.stderr)
        return 3
    except CorimRefused as error:
        print(f"sevref: not accepted: {error.diagnostic()}", file=sys.stderr)
        return 3
    if corim is not None and not args.json:
        print(corim, file=out)
    acceptable = [m for m in matches if m.acceptable]
    if args.json:
        _print_json(publication, matches, what, signature, out, corim)
    else:
        _print_text(publication, matches, signature, out)
    if what is not None and not acceptable:
        problem = "matches no published entry" if not matches else f"matches {len(matches)} entries, each refused"
        if signature is not None and signature.blocking:
            problem += " (the report's signature was not checked: give --vcek or --report-certs)"
        print(f"sevref: no match: {what} {problem}", file=sys.stderr)
        return 1
    return 0


class CorimRefused(Exception):
    """``--corim`` names a CoRIM that does not hold against the publication (exit 3, like a report)."""

    def diagnostic(self) -> str:
        """The reason, in one line.

        Returns:
            The message.
        """
        return str(self)


def _corim(args: argparse.Namespace, publication: TrustedPublication) -> str:
    """Check ``--corim`` against the trusted publication; one line saying what was checked."""
    from datetime import UTC, datetime

    from sevref.corim import MAX_CORIM_BYTES
    from sevref.corim.read import check_corim
    from sevref.edge.files import read_bytes
    from sevref.errors import SignatureError
    from sevref.values import parse_time

    at = datetime.now(UTC) if args.at is None else parse_time(args.at)
    data = read_bytes(Path(args.corim), "CoRIM", MAX_CORIM_BYTES)
    try:
        corim = check_corim(data, publication, at, args.corim)
    except SignatureError as error:
        raise CorimRefused(error.diagnostic()) from error
    values = len(corim.values)
    return (
        f"corim: {args.corim} ({corim.id}, profile {corim.profile.uri}) is signed by key {corim.keyid[:16]}... "
        f"of this publisher; its {len(corim.digests())} digests ({values} reference value{'s' if values != 1 else ''}) "
        "are all accepted by this release"
    )


def _acceptance(args: argparse.Namespace) -> Acceptance:
    from sevref.snp.validate import Acceptance, parse_min_tcb

    if args.min_tcb is None:
        return Acceptance(allow_debug=args.allow_debug, allow_migration=args.allow_migration)
    return Acceptance(args.allow_debug, args.allow_migration, parse_min_tcb(args.min_tcb))


def _report_signature(args: argparse.Namespace) -> ReportSignature | None:
    """Check the report's signature when a VCEK or the report's certificates are given; None otherwise."""
    from datetime import UTC, datetime

    from sevref.edge.files import read_bytes
    from sevref.limits import MAX_REPORT_FILE_BYTES
    from sevref.match import ReportSignature
    from sevref.snp.verify import verify_report
    from sevref.values import parse_time

    if args.snp_report is None or not (args.vcek or args.report_certs):
        return None
    report = read_bytes(Path(args.snp_report), "attestation report", MAX_REPORT_FILE_BYTES)
    if args.vcek is not None:
        endorsement = read_bytes(Path(args.vcek), "--vcek", MAX_REPORT_FILE_BYTES)
        what = f"--vcek {args.vcek}"
    else:
        from sevref.snp.verify import endorsement_from_table

        table = read_bytes(Path(args.report_certs), "--report-certs", MAX_REPORT_FILE_BYTES)
        what = f"--report-certs {args.report_certs}"
        endorsement = endorsement_from_table(table, report, what)
    at = datetime.now(UTC) if args.at is None else parse_time(args.at)
    verified = verify_report(report, endorsement, what, _root_provider(args), at)
    return ReportSignature.checked(verified)


def _root_provider(args: argparse.Namespace) -> RootProvider:
    """The roots: the --amd-root file for every product, or AMD's built-in file of the product."""
    from sevref._resources import resource
    from sevref.edge.files import read_bytes
    from sevref.snp.verify import load_roots
    from sevref.snp.x509 import MAX_CERTIFICATE_BYTES

    limit = 4 * MAX_CERTIFICATE_BYTES
    if args.amd_root is not None:
        given = load_roots(read_bytes(Path(args.amd_root), "--amd-root", limit), f"--amd-root {args.amd_root}")
        return lambda _product, _key: given

    def builtin(product: Product, key: int) -> Roots:
        name = product.roots(key)
        data = read_bytes(resource("snp", "roots", name), "AMD's built-in roots", limit)
        return load_roots(data, f"AMD's built-in {product.name} roots ({name})")

    return builtin


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


def _evidence_kind(args: argparse.Namespace) -> str:
    for option in ("snp_report", "snp_measurement", "launch_measurement"):
        if getattr(args, option) is not None:
            return option.replace("_", "-")
    return "none"


def _print_json(
    publication: TrustedPublication,
    matches: list[Match],
    what: str | None,
    signature: ReportSignature | None,
    out: TextIO,
    corim: str | None = None,
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
        "report_signature": None if signature is None else signature.to_json(),
        "corim": corim,
        "report_signer": None if signature is None or signature.verified is None else signature.verified.to_dict(),
        "matches": [m.to_dict() for m in matches],
    }
    print(json_line(document), file=out)


def _print_text(
    publication: TrustedPublication, matches: list[Match], signature: ReportSignature | None, out: TextIO
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


def _match(
    args: argparse.Namespace, publication: TrustedPublication, signature: ReportSignature | None
) -> tuple[list[Match], str | None]:
    from sevref.binfmt.report import parse_report
    from sevref.digest import LaunchMeasureInputs, parse_launch_measure_blob
    from sevref.edge.files import read_bytes
    from sevref.limits import MAX_REPORT_FILE_BYTES
    from sevref.match import lookup_digest, scan_launch_measurement, snp_notes
    from sevref.values import parse_hex, parse_hex_bytes

    if args.snp_report is not None:
        report = parse_report(read_bytes(Path(args.snp_report), "attestation report", MAX_REPORT_FILE_BYTES))
        digest = bytes(report.measurement).hex()
        verified = None if signature is None else signature.verified
        turin = None if verified is None else verified.product.turin_tcb
        matches = snp_notes(lookup_digest(publication, digest), report, _acceptance(args), turin)
        if signature is not None and signature.blocking:
            matches = [m.with_notes([(signature.note, True)]) for m in matches]
        return matches, f"the SEV-SNP report's measurement {digest}"
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
