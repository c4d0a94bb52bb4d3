"""``sevref report show``: the fields of an SEV-SNP attestation report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import Parser

if TYPE_CHECKING:
    from sevref._cli._common import Commands


def register(commands: Commands) -> None:
    """Add ``report show``.

    Args:
        commands: the subcommands of ``sevref``.
    """
    report = commands.add_parser("report", help="read SEV-SNP attestation reports")
    report_commands = report.add_subparsers(dest="report_command", metavar="COMMAND", parser_class=Parser)
    report_commands.required = True
    show = report_commands.add_parser(
        "show",
        help="print the fields of an attestation report",
        description=(
            "Decode a 1184-byte SEV-SNP attestation report (SNP ABI ATTESTATION_REPORT) and print its "
            "fields. Its signature is not checked here: sevref verify --snp-report with --vcek checks it."
        ),
    )
    show.add_argument("file", metavar="FILE", help="the report, as /dev/sev-guest returns it")
    show.add_argument("--json", action="store_true", help="print the fields as one JSON object")
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.binfmt.report import decode_report, parse_report
    from sevref.edge.files import read_bytes
    from sevref.errors import ReportFormatError
    from sevref.limits import MAX_REPORT_FILE_BYTES
    from sevref.serialize import json_line

    path = Path(args.file)
    try:
        fields = decode_report(parse_report(read_bytes(path, "attestation report", MAX_REPORT_FILE_BYTES)))
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
