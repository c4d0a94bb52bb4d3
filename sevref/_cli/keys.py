"""``sevref key generate`` and ``sevref key chain``: signing keys and the publisher's key chain."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import Parser, Usage
from sevref._cli._signer import PKCS11_PREFIX, add_signer_options, open_key, opened_signer

if TYPE_CHECKING:
    from sevref._cli._common import Commands

_ALGORITHMS = ("ecdsa-p256", "ecdsa-p384", "ed25519")  # sevref.sign.Algorithm; checked by a test


def register(commands: Commands) -> None:
    """Add ``key generate`` and ``key chain``.

    Args:
        commands: the subcommands of ``sevref``.
    """
    key = commands.add_parser("key", help="make signing keys and the publisher's key chain")
    key_commands = key.add_subparsers(dest="key_command", metavar="COMMAND", parser_class=Parser)
    key_commands.required = True
    generate = key_commands.add_parser(
        "generate",
        help="make a key pair: PREFIX.pem (encrypted, mode 0600) and PREFIX.pub",
        description=(
            "Make a signing key. The private key is encrypted with the passphrase from $SEVREF_KEY_PASSPHRASE "
            "or --passphrase-file (never from the command line). Prints the key id: the SHA-256 of the public "
            "key's DER SubjectPublicKeyInfo."
        ),
    )
    generate.add_argument("--out", required=True, metavar="PREFIX", help="path prefix of the two files")
    generate.add_argument("--algorithm", choices=_ALGORITHMS, default=_ALGORITHMS[0], help="default ecdsa-p256")
    generate.add_argument("--passphrase-file", metavar="FILE", help="file whose first line is the passphrase")
    generate.set_defaults(handler=_generate)
    chain = key_commands.add_parser(
        "chain",
        help="start or extend the publisher's key chain",
        description=(
            "Write the next keys document into DIR (the first when DIR is empty): the publisher's keys, "
            "signed by an active key of the previous document and by every key added. Verifiers pinned "
            "to an older key follow the chain; a revoked key is refused."
        ),
    )
    chain.add_argument(
        "--keys", required=True, metavar="DIR", help="the chain's folder (1.dsse.json, 2.dsse.json, ...)"
    )
    chain.add_argument("--publisher", required=True, metavar="ID", help="the publisher id (as in the manifest)")
    add_signer_options(chain, required=True, key_help="an active key of the last document (or the first key)")
    chain.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="PEM|URI",
        help="a new key, private (it countersigns): a key file or a pkcs11: URI of a key on the token; repeatable",
    )
    chain.add_argument(
        "--add-passphrase-file",
        metavar="FILE",
        help="passphrase of the --add keys (default $SEVREF_NEW_KEY_PASSPHRASE)",
    )
    chain.add_argument("--revoke", action="append", default=[], metavar="KEYID", help="revoke a key; repeatable")
    chain.add_argument("--reason", metavar="TEXT", help="why the keys are revoked")
    chain.add_argument("--label", metavar="TEXT", help="a label for people, e.g. DEMO KEY: do not trust")
    chain.set_defaults(handler=_chain)


def _generate(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.edge.keys import generate_key_files, read_passphrase
    from sevref.sign import Algorithm

    passphrase = read_passphrase(Path(args.passphrase_file) if args.passphrase_file else None)
    prefix = Path(args.out)
    keyid = generate_key_files(prefix, Algorithm(args.algorithm), passphrase)
    print(f"{keyid}  {prefix}.pem (private, encrypted, mode 0600)  {prefix}.pub", file=out)
    return 0


def _chain(args: argparse.Namespace, out: TextIO) -> int:
    from contextlib import ExitStack

    from sevref.edge.keys import extend_chain

    if args.revoke and not args.reason:
        raise Usage("--revoke needs --reason")
    if args.add_passphrase_file and all(key.startswith(PKCS11_PREFIX) for key in args.add):
        raise Usage("--add-passphrase-file goes with --add PEM")
    revoked = {keyid: args.reason for keyid in args.revoke}
    with opened_signer(args) as signer, ExitStack() as stack:
        if signer is None:  # pragma: no cover - argparse requires a key
            raise Usage("give --signing-key or --pkcs11")
        added = [open_key(key, args, stack, args.add_passphrase_file, "SEVREF_NEW_KEY_PASSPHRASE") for key in args.add]
        version, path = extend_chain(Path(args.keys), args.publisher, signer, added, revoked, args.label)
    print(f"wrote {path}: keys version {version}", file=out)
    return 0
