"""Key files and the publisher's key-chain folder.

Private keys are written encrypted and readable by their owner only;
passphrases come from a file or the environment, never from the command line.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sevref.edge.files import read_bytes, write_atomic, write_new, write_private
from sevref.errors import SignatureError
from sevref.keychain import DEFAULT_ROLES, Role, next_document
from sevref.limits import MAX_KEY_FILE_BYTES, MAX_KEYS_DOCUMENT_BYTES, MAX_PASSPHRASE_FILE_BYTES
from sevref.sign import (
    Algorithm,
    KeySigner,
    PublicKey,
    Signer,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    private_pem,
    public_pem,
)

__all__ = [
    "PASSPHRASE_ENV",
    "Pin",
    "extend_chain",
    "generate_key_files",
    "load_pin",
    "load_public",
    "load_signer",
    "read_chain",
    "read_passphrase",
    "reencrypt_key_file",
    "write_pin",
]


PASSPHRASE_ENV = "SEVREF_KEY_PASSPHRASE"  # noqa: S105  # nosec B105
"""Where the key passphrase comes from when no passphrase file is given."""


def read_passphrase(path: Path | None, env: str = PASSPHRASE_ENV, *, new: bool = False) -> bytes:
    """Read a key passphrase from a file (its first line), the environment or the terminal, never from arguments.

    Without a file or the variable, a passphrase is asked for on the terminal
    (``getpass``: not echoed) when standard input is one; a new passphrase is
    asked for twice.

    Args:
        path: a passphrase file, if given.
        env: the environment variable to use otherwise.
        new: the passphrase of a key being written (asked for twice on a terminal).

    Returns:
        The passphrase, UTF-8 bytes.

    Raises:
        SignatureError: none given, or not UTF-8 text (the passphrase itself is never shown).
    """
    if path is not None:
        lines = read_bytes(path, "passphrase file", MAX_PASSPHRASE_FILE_BYTES).splitlines()
        value, where = (lines[0] if lines else b""), f"passphrase file {path}"
    elif (found := os.environb.get(env.encode("ascii"))) is not None:
        value, where = found, env
    elif sys.stdin is not None and sys.stdin.isatty():
        value, where = _ask(env, new), "the terminal"
    else:
        raise SignatureError(
            f"no key passphrase: set {env}, give a passphrase file, or run on a terminal (never on the command line)"
        )
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError(f"{where}: the passphrase is not UTF-8 text; expected UTF-8") from None
    return value


def _ask(env: str, new: bool) -> bytes:
    """Ask for a passphrase on the terminal; a new one twice, and they must agree."""
    what = "new key passphrase" if new or env != PASSPHRASE_ENV else "key passphrase"
    try:
        first = getpass.getpass(f"sevref: {what} (or set {env}): ")
        if new and getpass.getpass(f"sevref: {what} again: ") != first:
            raise SignatureError("the two passphrases typed differ; expected the same passphrase twice")
    except EOFError:
        raise SignatureError(f"no key passphrase: the terminal closed before one was typed (or set {env})") from None
    return first.encode("utf-8", "surrogateescape")


def generate_key_files(prefix: Path, algorithm: Algorithm, passphrase: bytes) -> str:
    """Write a new key pair: ``PREFIX.pem`` (encrypted, 0600) and ``PREFIX.pub`` (0644).

    Neither file may exist before, not even as a symlink: both are created
    with ``O_EXCL | O_NOFOLLOW``.

    Args:
        prefix: path prefix of the two files.
        algorithm: the key's algorithm.
        passphrase: encrypts the private key.

    Returns:
        The key id.

    Raises:
        SevrefError: a file exists or cannot be written, or a weak passphrase.
    """
    key = generate_key(algorithm)
    private = private_pem(key, passphrase)
    public_path = prefix.with_name(prefix.name + ".pub")
    if os.path.lexists(public_path):
        raise SignatureError(f"{public_path}: exists; refusing to overwrite a key")
    write_private(prefix.with_name(prefix.name + ".pem"), private)
    write_new(public_path, public_pem(key), 0o644)
    return key_id(key)


def reencrypt_key_file(path: Path, passphrase: bytes, new_passphrase: bytes) -> KeySigner:
    """Encrypt a private key file again with today's KDF (:mod:`sevref.pkcs8`), replacing it atomically.

    Args:
        path: the PEM file.
        passphrase: its passphrase now.
        new_passphrase: its passphrase from now on (may be the same).

    Returns:
        The key, as the new file holds it.

    Raises:
        SevrefError: unreadable, or not a key this passphrase opens.
    """
    signer = load_signer(path, passphrase)
    write_atomic(path, signer.encrypted_pem(new_passphrase), mode=0o600)
    return load_signer(path, new_passphrase)


def load_signer(path: Path, passphrase: bytes) -> KeySigner:
    """Read a private key file.

    Args:
        path: the PEM file.
        passphrase: its passphrase.

    Returns:
        The signer.

    Raises:
        SevrefError: unreadable, or not a key this passphrase opens.
    """
    return load_private_key(read_bytes(path, "private key", MAX_KEY_FILE_BYTES), passphrase, str(path))


def load_public(path: Path) -> PublicKey:
    """Read a public key file.

    Args:
        path: the PEM file.

    Returns:
        The key.

    Raises:
        SevrefError: unreadable or not a public key.
    """
    return load_public_key(read_bytes(path, "public key", MAX_KEY_FILE_BYTES), str(path))


# A pin file is PEM (RFC 7468): one or more PUBLIC KEY blocks, with the
# explanatory text the RFC allows around them (section 5.2). A line
# "Publisher: ID" there binds every key of the file to that publisher; a
# plain .pub file (no such line) pins its key for whatever --publisher says.
_PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----\r?\n.*?-----END PUBLIC KEY-----", re.DOTALL)
_PUBLISHER_LINE = "Publisher:"


@dataclass(frozen=True)
class Pin:
    """Pinned public keys, and the publisher they are pinned for (None: any the verifier names)."""

    keys: tuple[PublicKey, ...]
    """The keys."""
    publisher: str | None
    """The publisher the file binds them to."""


def load_pin(path: Path) -> Pin:
    """Read a pin file: a public key (``sevref key generate``'s ``.pub``) or ``sevref key pin``'s file.

    Args:
        path: the file.

    Returns:
        Its keys and the publisher they are pinned for.

    Raises:
        SevrefError: unreadable, no public key, or a publisher line that is not one id.
    """
    data = read_bytes(path, "public key", MAX_KEY_FILE_BYTES)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as error:
        raise SignatureError(f"{path}: byte {error.start} is not ASCII; expected a PEM public key") from error
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        return Pin((load_public_key(data, str(path)),), None)  # says what is wrong with it
    named = {
        line[len(_PUBLISHER_LINE) :].strip()
        for line in _PEM_BLOCK.sub("", text).splitlines()
        if line.startswith(_PUBLISHER_LINE)
    }
    if len(named) > 1 or "" in named:
        found = ", ".join(repr(n) for n in sorted(named))
        raise SignatureError(f"{path}: expected one 'Publisher: ID' line, found {found}")
    keys = tuple(load_public_key(block.encode(), f"{path} (key {n + 1})") for n, block in enumerate(blocks))
    return Pin(keys, named.pop() if named else None)


def write_pin(path: Path, publisher: str, keys: Mapping[str, PublicKey]) -> None:
    """Write a pin file that binds keys to their publisher (read by :func:`load_pin`).

    Args:
        path: the file (replaced atomically).
        publisher: the publisher id.
        keys: key id to key.
    """
    lines = [
        f"{_PUBLISHER_LINE} {publisher}",
        "sevref pin file: verifiers trust these keys to start this publisher's key chain, and no other's.",
    ]
    text = "\n".join(lines) + "\n"
    for keyid, key in sorted(keys.items()):
        text += f"\nKey id: {keyid}\n" + public_pem(key).decode("ascii")
    write_atomic(path, text.encode("ascii"), mode=0o644)


def read_chain(folder: Path) -> list[bytes]:
    """Read a key chain folder: ``1.dsse.json``, ``2.dsse.json``, ... until one is missing.

    Args:
        folder: the folder.

    Returns:
        The documents, oldest first (empty when there is none).
    """
    chain: list[bytes] = []
    while (folder / f"{len(chain) + 1}.dsse.json").is_file():
        chain.append(read_bytes(folder / f"{len(chain) + 1}.dsse.json", "keys document", MAX_KEYS_DOCUMENT_BYTES))
    return chain


def extend_chain(
    folder: Path,
    publisher: str,
    signer: Signer,
    added: Sequence[Signer],
    revoked: Mapping[str, str],
    label: str | None,
    roles: Sequence[Role] = DEFAULT_ROLES,
) -> tuple[int, Path]:
    """Write the next keys document of a chain (the first when the folder is empty).

    The new document is signed by ``signer`` (an active key of the previous
    document, or its own key for the first) and by every key it adds, which
    proves their holder agrees.

    Args:
        folder: the chain's folder.
        publisher: the publisher id.
        signer: an active key of the last document.
        added: new keys.
        revoked: key id to reason, for keys to revoke.
        label: a label for the keys added (and for ``signer`` in a new chain).
        roles: the roles of the keys added.

    Returns:
        (the new version, its path).

    Raises:
        SevrefError: a broken chain, an inactive signer, an unknown key to revoke.
    """
    chain = read_chain(folder)
    data = next_document(chain, publisher, signer, added, revoked, label, roles)
    version = len(chain) + 1
    path = folder / f"{version}.dsse.json"
    write_new(path, data, 0o644, "a keys document")
    return version, path
