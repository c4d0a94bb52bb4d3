"""``sevref key generate|chain|reencrypt``: signing keys and the publisher's key chain."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import Parser, Usage
from sevref._cli._signer import PKCS11_PREFIX, add_signer_options, open_key, opened_signer

if TYPE_CHECKING:
    from sevref._cli._common import Commands

_ALGORITHMS = ("ecdsa-p256", "ecdsa-p384", "ed25519")  # sevref.sign.Algorithm; checked by a test
_ROLES = ("release", "timestamp")  # sevref.keychain.Role; checked by a test


def register(commands: Commands) -> None:
    """Add ``key generate``, ``key chain``, ``key pin`` and ``key reencrypt``.

    Args:
        commands: the subcommands of ``sevref``.
    """
    key = commands.add_parser("key", help="make signing keys and the publisher's key chain")
    key_commands: Commands = key.add_subparsers(dest="key_command", metavar="COMMAND", parser_class=Parser)
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
    chain.add_argument(
        "--role",
        action="append",
        choices=_ROLES,
        metavar="ROLE",
        help="a role of the --add keys: release (default; signs releases and keys documents) or timestamp "
        "(signs timestamp.dsse.json only: an online key); repeatable",
    )
    chain.set_defaults(handler=_chain)
    pin = key_commands.add_parser(
        "pin",
        help="write the pin file verifiers give as --trusted-key: the release keys, bound to the publisher",
        description=(
            "Check the key chain in DIR and write FILE: the active release keys of its newest document, as PEM, "
            "with a 'Publisher: ID' line. A verifier given it as --trusted-key trusts those keys to start this "
            "publisher's key chain only: with another --publisher it is refused. Publish it where verifiers fetch "
            "their pins (not beside the publication it vouches for)."
        ),
    )
    pin.add_argument("--keys", required=True, metavar="DIR", help="the chain's folder (1.dsse.json, 2.dsse.json, ...)")
    pin.add_argument("--out", required=True, metavar="FILE", help="the pin file to write")
    pin.set_defaults(handler=_pin)
    _add_reencrypt(key_commands)


def _add_reencrypt(key_commands: Commands) -> None:
    reencrypt = key_commands.add_parser(
        "reencrypt",
        help="encrypt a private key file again with today's passphrase KDF",
        description=(
            "Read a private key (passphrase from $SEVREF_KEY_PASSPHRASE or --passphrase-file) and replace "
            "its file atomically, encrypted with PBKDF2-HMAC-SHA256 at 600,000 iterations and AES-256-CBC "
            "(PKCS#8). The key and its id stay the same. The new passphrase comes from "
            "$SEVREF_NEW_KEY_PASSPHRASE or --new-passphrase-file; without either it is the old one."
        ),
    )
    reencrypt.add_argument("key", metavar="PEM", help="the private key file")
    reencrypt.add_argument("--passphrase-file", metavar="FILE", help="its passphrase (default $SEVREF_KEY_PASSPHRASE)")
    reencrypt.add_argument(
        "--new-passphrase-file",
        metavar="FILE",
        help="the new passphrase (default $SEVREF_NEW_KEY_PASSPHRASE, else the old one)",
    )
    reencrypt.set_defaults(handler=_reencrypt)


def _generate(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.edge.keys import generate_key_files, read_passphrase
    from sevref.sign import Algorithm

    passphrase = read_passphrase(Path(args.passphrase_file) if args.passphrase_file else None, new=True)
    prefix = Path(args.out)
    keyid = generate_key_files(prefix, Algorithm(args.algorithm), passphrase)
    print(f"{keyid}  {prefix}.pem (private, encrypted, mode 0600)  {prefix}.pub", file=out)
    return 0


def _chain(args: argparse.Namespace, out: TextIO) -> int:
    from contextlib import ExitStack

    from sevref.edge.keys import extend_chain
    from sevref.keychain import Role

    if args.revoke and not args.reason:
        raise Usage("--revoke needs --reason")
    if args.role and not args.add:
        raise Usage("--role gives the roles of --add keys")
    if args.add_passphrase_file and all(key.startswith(PKCS11_PREFIX) for key in args.add):
        raise Usage("--add-passphrase-file goes with --add PEM")
    revoked = {keyid: args.reason for keyid in args.revoke}
    roles = [Role(r) for r in args.role or ["release"]]
    with opened_signer(args) as signer, ExitStack() as stack:
        if signer is None:  # pragma: no cover - argparse requires a key
            raise Usage("give --signing-key or --pkcs11")
        added = [open_key(key, args, stack, args.add_passphrase_file, "SEVREF_NEW_KEY_PASSPHRASE") for key in args.add]
        version, path = extend_chain(Path(args.keys), args.publisher, signer, added, revoked, args.label, roles)
    print(f"wrote {path}: keys version {version}", file=out)
    return 0


def _pin(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.edge.keys import read_chain, write_pin
    from sevref.errors import ConfigError
    from sevref.keychain import Role, verify_chain

    chain = read_chain(Path(args.keys))
    if not chain:
        raise ConfigError(f"--keys {args.keys}: no 1.dsse.json; expected a key chain (sevref key chain starts one)")
    document = verify_chain(chain)
    keys = document.active(Role.RELEASE)
    write_pin(Path(args.out), document.publisher, keys)
    print(
        f"wrote {args.out}: {len(keys)} release key{'s' if len(keys) != 1 else ''} of keys/{len(chain)}, "
        f"pinned for publisher {document.publisher}",
        file=out,
    )
    return 0


def _reencrypt(args: argparse.Namespace, out: TextIO) -> int:
    import os

    from sevref.edge.keys import PASSPHRASE_ENV, read_passphrase, reencrypt_key_file

    passphrase = read_passphrase(Path(args.passphrase_file) if args.passphrase_file else None, PASSPHRASE_ENV)
    if args.new_passphrase_file or "SEVREF_NEW_KEY_PASSPHRASE" in os.environ:
        new = read_passphrase(
            Path(args.new_passphrase_file) if args.new_passphrase_file else None, "SEVREF_NEW_KEY_PASSPHRASE"
        )
    else:
        new = passphrase
    signer = reencrypt_key_file(Path(args.key), passphrase, new)
    protection = signer.protection.describe() if signer.protection else "?"
    print(f"{signer.keyid}  {args.key}: encrypted again with {protection}", file=out)
    return 0
