"""``sevref export``: trust a publication as ``verify`` does, then write it for another verifier.

Exit 3 means the publication is not trusted; exit 1 a request it cannot
answer (an entry or firmware id the publication does not have, an entry the
format cannot express), as for every other user error. The formats are
:data:`sevref.export.FORMATS`: this module maps ``--format`` to one of them
and checks the options against the ones its row declares.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import Usage, add_trust_options, trusted
from sevref._cli._signer import add_signer_options, opened_signer

if TYPE_CHECKING:
    from sevref._cli._common import Commands

# The names of sevref.export.FORMATS, and sevref.corim.PROFILES (a test holds them equal): the choices are
# listed here so that building the parser imports neither.
_EXPORT_FORMATS = ("trustee", "virt-qemu-sev-validate", "corim")
_CORIM_PROFILES = ("amd-snp-02", "amd-snp-2025", "amd-snp-split-tcb", "sevref-sev-1")


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
        default=None,
        help="trustee: how SNP measurements are written: hex (Trustee v0.18.0 and later, the default) or base64 "
        "(v0.13.0 to v0.17.0)",
    )
    export.add_argument("--entry", metavar="ID", help="virt-qemu-sev-validate: the entry")
    export.add_argument(
        "--corim-profile",
        choices=_CORIM_PROFILES,
        default=None,
        help="corim: the profile, amd-snp-02 (SEV-SNP, AMD's draft -02: the default), amd-snp-2025 (its editor's "
        "copy), amd-snp-split-tcb (its split_tcb branch) or sevref-sev-1 (SEV and SEV-ES, docs/corim-sev-profile.md)",
    )
    export.add_argument("--out", metavar="FILE", help="write to this file (default: standard output)")
    add_signer_options(export, required=False, key_help="corim: the publication's signing key")
    export.set_defaults(handler=_export)


def _given(args: argparse.Namespace) -> dict[str, bool]:
    return {
        "--firmware": bool(args.firmware),
        "--trustee-encoding": args.trustee_encoding is not None,
        "--entry": args.entry is not None,
        "--corim-profile": args.corim_profile is not None,
        "--signing-key": args.signing_key is not None,
        "--pkcs11": args.pkcs11 is not None,
    }


def _check_options(args: argparse.Namespace) -> None:
    from sevref.export import FORMATS, formats_taking

    chosen = FORMATS[args.format]
    given = _given(args)
    for alternatives in chosen.required:
        if not any(given[option] for option in alternatives):
            raise Usage(f"--format {args.format} needs {' or '.join(alternatives)}")
    for option, value in given.items():
        if value and option not in chosen.options:
            takers = " or ".join(f"--format {name}" for name in formats_taking(option))
            raise Usage(f"{option} goes with {takers}")


def _export(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.errors import TrustError
    from sevref.export import FORMATS, ExportRequest, TrusteeEncoding

    _check_options(args)
    chosen = FORMATS[args.format]
    if chosen.binary and args.out is None and not hasattr(out, "buffer"):
        raise Usage(f"--format {args.format} writes binary: give --out FILE")
    with opened_signer(args) as signer:
        try:
            publication = trusted(args, True)
        except TrustError as error:
            print(f"sevref: {error.diagnostic()}", file=sys.stderr)
            return 3
        request = ExportRequest(
            firmware=None if args.firmware is None else tuple(args.firmware),
            trustee_encoding=TrusteeEncoding(args.trustee_encoding or "hex"),
            entry=args.entry,
            corim_profile=args.corim_profile,
            signer=signer,
        )
        try:
            data = chosen.export(publication, request)
        except TrustError as error:
            print(f"sevref: {error.diagnostic()}", file=sys.stderr)
            return 3
    if args.out is not None:
        from sevref.edge.files import write_atomic

        write_atomic(Path(args.out), data)
    elif chosen.binary:
        out.flush()
        out.buffer.write(data)
        out.buffer.flush()
    else:
        out.write(data.decode("utf-8"))
    return 0
