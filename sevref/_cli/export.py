"""``sevref export``: trust a publication as ``verify`` does, then write it for another verifier.

Exit 3 means the publication is not trusted.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import Usage, add_trust_options, trusted

if TYPE_CHECKING:
    from sevref._cli._common import Commands

_EXPORT_FORMATS = ("trustee", "virt-qemu-sev-validate")


def register(commands: Commands) -> None:
    """Add ``export``.

    Args:
        commands: the subcommands of ``sevref``.
    """
    export = commands.add_parser(
        "export",
        help="export a verified publication for other verifiers",
        description="Check a publication as verify does, then write it in another verifier's format.",
    )
    export.add_argument("--format", required=True, choices=_EXPORT_FORMATS, help="the target format")
    add_trust_options(export)
    export.add_argument("--firmware", action="append", metavar="ID", help="trustee: only this firmware; repeatable")
    export.add_argument(
        "--trustee-encoding",
        choices=("hex", "base64"),
        default="hex",
        help="trustee: how SNP measurements are written: hex (Trustee v0.18.0 and later, the default) or base64 "
        "(v0.13.0 to v0.17.0)",
    )
    export.add_argument("--entry", metavar="ID", help="virt-qemu-sev-validate: the entry")
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.errors import TrustError
    from sevref.export import TrusteeEncoding, trustee_message, virt_qemu_sev_validate
    from sevref.serialize import json_line

    if args.format == "virt-qemu-sev-validate" and args.entry is None:
        raise Usage("--format virt-qemu-sev-validate needs --entry")
    if args.format == "trustee" and args.entry is not None:
        raise Usage("--entry goes with --format virt-qemu-sev-validate")
    if args.format != "trustee" and args.trustee_encoding != "hex":
        raise Usage("--trustee-encoding goes with --format trustee")
    try:
        publication = trusted(args, True)
        text = (
            json_line(trustee_message(publication, args.firmware, TrusteeEncoding(args.trustee_encoding)))
            if args.format == "trustee"
            else virt_qemu_sev_validate(publication, args.entry)
        )
    except TrustError as error:
        print(f"sevref: {error.diagnostic()}", file=sys.stderr)
        return 3
    print(text, file=out)
    return 0
