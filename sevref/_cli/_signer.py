"""The signing options ``build``, ``sign`` and ``key chain`` share: a key file or a key on a PKCS#11 token.

A key file's passphrase comes from ``--passphrase-file`` or
``$SEVREF_KEY_PASSPHRASE``; a token's module from ``--pkcs11-module`` or
``$SEVREF_PKCS11_MODULE`` and its PIN from ``--pin-file`` or
``$SEVREF_PKCS11_PIN``. No secret is ever an argument.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sevref._cli._common import Usage

if TYPE_CHECKING:
    from sevref.sign import Signer

PKCS11_PREFIX = "pkcs11:"
"""A key named by this prefix is a PKCS#11 URI (RFC 7512), not a file."""


def add_signer_options(parser: argparse.ArgumentParser, *, required: bool, key_help: str) -> None:
    """Add ``--signing-key PEM | --pkcs11 URI`` and where their secrets come from.

    Args:
        parser: the command's parser.
        required: whether the command needs a key.
        key_help: what the key does for this command.
    """
    key = parser.add_mutually_exclusive_group(required=required)
    key.add_argument(
        "--signing-key",
        metavar="PEM",
        help=f"{key_help}: a key file (passphrase: $SEVREF_KEY_PASSPHRASE or --passphrase-file)",
    )
    key.add_argument(
        "--pkcs11",
        metavar="URI",
        help=f"{key_help}: a key that stays on a PKCS#11 token, named by an RFC 7512 URI such as "
        "pkcs11:token=release;object=sevref-2026 (PIN: $SEVREF_PKCS11_PIN or --pin-file)",
    )
    parser.add_argument("--passphrase-file", metavar="FILE", help="file whose first line is the key file's passphrase")
    parser.add_argument(
        "--pkcs11-module", metavar="SO", help="the token's PKCS#11 library (default $SEVREF_PKCS11_MODULE)"
    )
    parser.add_argument(
        "--pin-file", metavar="FILE", help="file whose first line is the token's user PIN (default $SEVREF_PKCS11_PIN)"
    )


def _check(args: argparse.Namespace) -> None:
    if args.passphrase_file is not None and args.signing_key is None:
        raise Usage("--passphrase-file goes with --signing-key")
    if args.signing_key is not None and args.signing_key.startswith(PKCS11_PREFIX):
        raise Usage("--signing-key takes a key file; name a key on a token with --pkcs11 URI")
    if args.pkcs11 is not None and not args.pkcs11.startswith(PKCS11_PREFIX):
        raise Usage(f"--pkcs11: expected a {PKCS11_PREFIX} URI (RFC 7512), found {args.pkcs11!r}")
    token = args.pkcs11 is not None or any(key.startswith(PKCS11_PREFIX) for key in getattr(args, "add", None) or ())
    for name, value in (("--pkcs11-module", args.pkcs11_module), ("--pin-file", args.pin_file)):
        if value is not None and not token:
            raise Usage(f"{name} goes with --pkcs11")


def open_key(
    key: str, args: argparse.Namespace, stack: ExitStack, passphrase_file: str | None, passphrase_env: str
) -> Signer:
    """Open one key: a PKCS#11 URI (its session closed with ``stack``) or a key file.

    Args:
        key: a ``pkcs11:`` URI or the path of a key file.
        args: the parsed options (``--pkcs11-module``, ``--pin-file``).
        stack: closes token signers when the command ends.
        passphrase_file: for a key file, the file that holds its passphrase, if given.
        passphrase_env: for a key file, the environment variable of its passphrase otherwise.

    Returns:
        The signer.

    Raises:
        SevrefError: the key cannot be opened.
    """
    if key.startswith(PKCS11_PREFIX):
        from sevref.edge.hsm import pkcs11_signer

        pin_file = Path(args.pin_file) if args.pin_file else None
        return stack.enter_context(pkcs11_signer(key, args.pkcs11_module, pin_file))
    from sevref._cli._common import load_signer

    return load_signer(key, passphrase_file, passphrase_env)


@contextmanager
def opened_signer(args: argparse.Namespace) -> Iterator[Signer | None]:
    """Open the signer the options name, and close it (a token's session) when done.

    Token signers are opened here, before any worker process is started, so
    that a wrong PIN is reported at once and no worker opens a session of its own.

    Args:
        args: options added by :func:`add_signer_options`.

    Yields:
        The signer, or None when no key is given.

    Raises:
        Usage: a secret's option without its key option.
        SevrefError: the key cannot be opened.
    """
    from sevref.edge.keys import PASSPHRASE_ENV

    _check(args)
    with ExitStack() as stack:
        key = args.pkcs11 if args.pkcs11 is not None else args.signing_key
        yield None if key is None else open_key(key, args, stack, args.passphrase_file, PASSPHRASE_ENV)
