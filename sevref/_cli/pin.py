"""``sevref pin``: print the manifest source stanza for a file inside a package."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from sevref.limits import DOWNLOAD_SECONDS

if TYPE_CHECKING:
    from sevref._cli._common import Commands


def register(commands: Commands) -> None:
    """Add ``pin``.

    Args:
        commands: the subcommands of ``sevref``.
    """
    parser = commands.add_parser(
        "pin",
        help="print the manifest source stanza for a firmware inside a package",
        description=(
            "Read a Debian (.deb) or RPM package, a local file or an http(s) URL, and print the YAML source "
            "stanza a manifest needs for one file inside it: the file's sha256, the package's sha256, its "
            "name, version and architecture from its own metadata, the path, and the facts of the QEMU "
            "firmware descriptor the package ships for the file (/usr/share/qemu/firmware/*.json) as comments."
        ),
    )
    parser.add_argument("package", metavar="PACKAGE-FILE|URL", help="the .deb or .rpm, or its http(s) URL")
    parser.add_argument("path", metavar="PATH", help="the file's installed path, e.g. usr/share/OVMF/OVMF_CODE_4M.fd")
    parser.add_argument(
        "--id", metavar="ID", help="print a whole firmware entry with this id (to paste under firmware:)"
    )
    parser.add_argument(
        "--url", metavar="URL", help="the package's URL to write in the stanza (default: PACKAGE when it is a URL)"
    )
    parser.add_argument(
        "--download-timeout",
        type=float,
        default=DOWNLOAD_SECONDS,
        metavar="SECONDS",
        help=f"the longest the download of a URL may take, whole (default {DOWNLOAD_SECONDS:g})",
    )
    parser.set_defaults(handler=_pin)


def _pin(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.edge.pin import pin

    found = pin(args.package, args.path, seconds=args.download_timeout, url=args.url)
    print(found.stanza(args.id), end="", file=out)
    return 0
