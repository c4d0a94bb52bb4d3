"""``sevref sign``: sign a publication that ``sevref build`` wrote unsigned."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import Usage
from sevref._cli._signer import add_signer_options, opened_signer

if TYPE_CHECKING:
    from sevref._cli._common import Commands


def register(commands: Commands) -> None:
    """Add ``sign``.

    Args:
        commands: the subcommands of ``sevref``.
    """
    sign = commands.add_parser(
        "sign",
        help="sign a publication built unsigned (on an offline machine, or with a key on an HSM)",
        description=(
            "Sign a publication that sevref build wrote without a key: check every file against its "
            "index.json, render the pages again with the signing key, and write the signed index, the "
            "envelopes, the key chain and the .sig files, atomically. With a key file the result is "
            "byte for byte what sevref build --signing-key writes."
        ),
    )
    sign.add_argument("folder", metavar="DIR", help="the publication (sevref build --out without a key)")
    add_signer_options(sign, required=True, key_help="sign the release with this key")
    sign.add_argument(
        "--keys",
        metavar="DIR",
        help="the publisher's key chain (sevref key chain); default: one document naming the signing key",
    )
    sign.add_argument(
        "--index-sha256",
        metavar="HEX",
        help="refuse unless index.json has this SHA-256 (sevref build prints it for an unsigned build)",
    )
    sign.add_argument(
        "--resign", action="store_true", help="replace the signatures of a publication that is signed already"
    )
    sign.set_defaults(handler=_sign)


def _sign(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.api import sign

    with opened_signer(args) as signer:
        if signer is None:  # pragma: no cover - argparse requires a key
            raise Usage("give --signing-key or --pkcs11")
        summary = sign(args.folder, signer, keys=args.keys, resign=args.resign, index_sha256=args.index_sha256)
    print(
        f"signed {summary.out} with key {summary.keyid} (keys/{summary.keys_version}): {summary.files} files; "
        f"index.json sha256 {summary.previous_index_sha256} before, {summary.index_sha256} now",
        file=out,
    )
    return 0
