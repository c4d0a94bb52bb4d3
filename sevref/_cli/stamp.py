"""``sevref timestamp``: a short-lived signed timestamp over a publication's index (freshness)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import load_signer

if TYPE_CHECKING:
    from sevref._cli._common import Commands


def register(commands: Commands) -> None:
    """Add ``timestamp``.

    Args:
        commands: the subcommands of ``sevref``.
    """
    timestamp = commands.add_parser(
        "timestamp",
        help="sign a short-lived timestamp over a publication's index (freshness)",
        description=(
            "Check DIR's key chain and signed index, then write DIR/timestamp.dsse.json: the index's sha256 "
            "and serial, valid for --valid-for, signed by a key of the timestamp role in the chain (sevref key "
            "chain --add KEY --role timestamp). Run it more often than --valid-for; verifiers with --max-age or "
            "--require-timestamp refuse a release without a current timestamp."
        ),
    )
    timestamp.add_argument("folder", metavar="DIR", help="the publication's folder")
    timestamp.add_argument("--signing-key", required=True, metavar="PEM", help="a key of the timestamp role")
    timestamp.add_argument(
        "--passphrase-file", metavar="FILE", help="passphrase of --signing-key (default $SEVREF_KEY_PASSPHRASE)"
    )
    timestamp.add_argument("--valid-for", required=True, metavar="DURATION", help="how long it vouches, e.g. 1d or 12h")
    timestamp.add_argument("--issued", metavar="TIME", help="its issue time (default: now)")
    timestamp.set_defaults(handler=_timestamp)


def _timestamp(args: argparse.Namespace, out: TextIO) -> int:
    from datetime import UTC, datetime

    from sevref.freshness import stamp
    from sevref.values import format_time, parse_duration, parse_time

    valid_for = parse_duration(args.valid_for, "--valid-for")
    issued = datetime.now(UTC).replace(microsecond=0) if args.issued is None else parse_time(args.issued)
    signer = load_signer(args.signing_key, args.passphrase_file)
    written = stamp(Path(args.folder), signer, valid_for, issued)
    print(
        f"wrote {Path(args.folder) / 'timestamp.dsse.json'}: serial {written.release.serial}, index.json sha256 "
        f"{written.index_sha256}, valid from {format_time(written.issued)} until {format_time(written.expires)}, "
        f"signed by key {signer.keyid}",
        file=out,
    )
    return 0
