"""``sevref diff``: what changed from one release to the next, for review before signing."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import Usage, add_trust_options, check_trust_given, trusted

if TYPE_CHECKING:
    from sevref._cli._common import Commands
    from sevref.trust import TrustedPublication


def register(commands: Commands) -> None:
    """Add ``diff``.

    Args:
        commands: the subcommands of ``sevref``.
    """
    diff = commands.add_parser(
        "diff",
        help="what changed from one release to the next",
        description=(
            "Compare two publications (folders or URLs): configurations and entries added, removed or changed "
            "in status, firmware builds and host stacks added or removed, publication fields changed. With the "
            "trust options each is verified as sevref verify does (but an unsigned NEW, built for review before "
            "signing, is read unverified); without them both are read unverified (each file still held to its "
            "index). The output says which was verified. Exit 0 whatever the difference; 1 when entries "
            "active in OLD are gone from NEW without a lifecycle rule deprecating or revoking them first "
            "(--allow-removal accepts that); 3: a publication is not trusted."
        ),
    )
    diff.add_argument("old", metavar="OLD", help="the earlier publication: a folder or URL")
    diff.add_argument("new", metavar="NEW", help="the later publication: a folder or URL")
    diff.add_argument("--json", action="store_true", help="print the changes document (schema/changes.schema.json)")
    diff.add_argument(
        "--allow-removal", action="store_true", help="exit 0 even when active entries are removed without notice"
    )
    add_trust_options(diff, located=False, required=False)
    diff.set_defaults(handler=_diff)


def _read(args: argparse.Namespace, location: str, verify: bool, new: bool) -> TrustedPublication:
    """A publication, verified when the trust options are given; NEW may be unsigned yet (read unverified)."""
    from sevref._cli._common import fetch_limits
    from sevref.verifier import read_release

    if not verify:
        return read_release(location, *fetch_limits(args))
    if new:
        unverified = read_release(location, *fetch_limits(args))
        if unverified.index.signing is None:
            return unverified  # built in CI, to be signed after review
    return trusted(args, True, location)


def _how(publication: TrustedPublication) -> str:
    if publication.verified:
        return f"verified (key {publication.keyid[:16]}...)"
    if publication.index.signing is None:
        return "UNVERIFIED (unsigned)"
    return "UNVERIFIED (no --trusted-key: nothing says who wrote it)"


def _diff(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.errors import TrustError, printable
    from sevref.history import compare
    from sevref.serialize import json_line
    from sevref.verifier import snapshot

    if args.state is not None:
        raise Usage("--state: diff remembers nothing (OLD is older than what a state would have seen)")
    verify = check_trust_given(args)
    try:
        read = [_read(args, where, verify, n == 1) for n, where in enumerate((args.old, args.new))]
        old, new = (snapshot(publication) for publication in read)
    except TrustError as error:
        print(f"sevref: {error.diagnostic()}", file=sys.stderr)
        return 3
    previous = new.index.previous
    if previous is not None and (previous.serial, previous.sha256) != (old.index.release.serial, old.index_sha256):
        print(
            f"sevref: NEW (serial {new.index.release.serial}) names serial {previous.serial} with index.json sha256 "
            f"{previous.sha256} as its previous release; OLD is serial {old.index.release.serial} with "
            f"{old.index_sha256}: expected the release NEW follows",
            file=sys.stderr,
        )
        return 1
    changes = compare(old, new)
    how = f"OLD {_how(read[0])}, NEW {_how(read[1])}"
    if args.json:
        print(json_line(changes.to_dict()), file=out)
        if not all(publication.verified for publication in read):
            print(f"sevref: note: read {how}", file=sys.stderr)
    else:
        release, before = new.index.release, old.index.release
        print(
            printable(
                f"changes from serial {before.serial} ({before.release}) to serial {release.serial} "
                f"({release.release}) of {release.publisher}/{release.product}/{release.stream}; read {how}"
            ),
            file=out,
        )
        for line in changes.summary():
            print(printable(line), file=out)
    silent = changes.silent_removals
    if silent and not args.allow_removal:
        count = sum(change.count for change in silent)
        print(
            f"sevref: {count} entr{'y' if count == 1 else 'ies'} active in serial {old.index.release.serial} "
            f"{'is' if count == 1 else 'are'} gone from serial {new.index.release.serial} without a lifecycle rule "
            "deprecating or revoking {} first (first: {}); give --allow-removal to accept".format(
                "it" if count == 1 else "them", silent[0].where()
            ),
            file=sys.stderr,
        )
        return 1
    return 0
