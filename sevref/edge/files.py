"""Files: bounded reads, private files, the build lock and the atomic swap.

Every file sevref reads is read whole with a size bound and without following
FIFOs or devices; every file it publishes appears whole or not at all.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sevref.digest import tik_from_bytes
from sevref.errors import ConfigError, FetchError
from sevref.limits import MAX_TIK_FILE_BYTES

__all__ = [
    "check_out",
    "file_sha256",
    "install",
    "locked_scratch",
    "read_bytes",
    "read_tik",
    "write_atomic",
    "write_new",
    "write_private",
]


def read_bytes(path: Path, what: str, limit: int) -> bytes:
    """Read a whole file, refusing one larger than ``limit``.

    Args:
        path: the file.
        what: how to name it in errors.
        limit: the largest size accepted.

    Returns:
        The contents.

    Raises:
        FetchError: the file cannot be read or is too large.
    """
    try:
        # O_NONBLOCK: a FIFO or device named as a file must not hang the build.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise FetchError(f"{what} {path}: not a regular file; expected a file")
            if status.st_size > limit:
                raise FetchError(f"{what} {path}: {status.st_size} bytes; expected at most {limit}")
            # Ask for what fstat says (plus one, to notice growth): read(limit) would
            # reserve the whole limit up front.
            data = handle.read(status.st_size + 1)
    except OSError as error:
        raise FetchError(f"{what} {path}: {error.strerror or error}") from error
    if len(data) != status.st_size:
        raise FetchError(
            f"{what} {path}: changed size while read ({status.st_size} to {len(data)}+ bytes); expected a still file"
        )
    return data


def file_sha256(path: Path, what: str) -> bytes:
    """Hash a file without holding it in memory.

    Args:
        path: the file.
        what: how to name it in errors.

    Returns:
        The 32-byte SHA-256.

    Raises:
        FetchError: the file cannot be read.
    """
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").digest()
    except OSError as error:
        raise FetchError(f"{what} {path}: {error.strerror or error}") from error


def write_new(path: Path, data: bytes, mode: int, what: str = "a key") -> None:
    """Create a file with exactly ``mode`` (whatever the umask), refusing to overwrite one or follow a symlink.

    ``O_CREAT | O_EXCL | O_NOFOLLOW``: a file, or a symlink (even a dangling
    one) planted at ``path`` beforehand, is refused rather than written through.

    Args:
        path: the new file.
        data: its contents.
        mode: its permission bits, e.g. 0o600 or 0o644.
        what: what it holds, for the error.

    Raises:
        FetchError: the path exists or cannot be created.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError as error:
        raise FetchError(f"{path}: exists; refusing to overwrite {what}") from error
    except OSError as error:
        raise FetchError(f"{path}: {error.strerror or error}") from error
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), mode)  # the umask narrowed the mode at creation; make it exactly this
        handle.write(data)


def write_private(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only (mode 0600), refusing to overwrite one or follow a symlink.

    Args:
        path: the new file.
        data: its contents.

    Raises:
        FetchError: the file exists or cannot be created.
    """
    write_new(path, data, 0o600)


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace a file atomically: write a new file beside it, flush it to disk, rename it over the old one, flush the folder.

    Args:
        path: the file.
        data: its new contents.
        mode: the new file's permission bits (default: 0666 less the umask).

    Raises:
        FetchError: the file cannot be written.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(temporary, flags, 0o666 if mode is None else mode)
        with os.fdopen(descriptor, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _sync_folder(path.parent)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise FetchError(f"{path}: {error.strerror or error}") from error


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries to disk, so that a rename into it survives a crash."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot become a publication, before anything is written.

    Args:
        out: the publication's folder.

    Raises:
        ConfigError: ``out`` is a file, lies under a file, or is a mount point
            (a new publication is renamed into place, which a mount point refuses).
    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        kind = "a symbolic link" if out.is_symlink() else "a file"
        raise ConfigError(f"--out {out}: {kind}; expected a folder (new, or a sevref publication to replace)")
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"--out {out}: {ancestor} is a file; expected a folder to hold the publication")
    if out.is_dir() and os.path.ismount(out):
        raise ConfigError(
            f"--out {out}: a mount point; expected a folder on the same filesystem as {out.parent}, "
            "since the publication is renamed into place"
        )


def _lock(path: Path, out: Path) -> int:
    """Take the build lock of ``out``: an flock on ``path``, which only a build holding it removes."""
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as error:
            raise FetchError(f"--out {out}: cannot write in {path.parent}: {error.strerror or error}") from error
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            os.close(descriptor)
            raise FetchError(f"--out {out}: another sevref build is writing it; try again when it ends") from error
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        opened = os.fstat(descriptor)
        if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return descriptor
        os.close(descriptor)  # the build before removed it between our open and our lock: take the new one


@contextmanager
def locked_scratch(out: Path) -> Iterator[Path]:
    """Hold the build lock of ``out`` and yield a fresh scratch folder beside it.

    The lock is ``.<out>.lock`` beside ``out``, held with flock for the whole
    build and removed (while still held) on every way out of this block, so no
    lock file stays behind; a build killed with SIGKILL leaves one, which the
    next build takes over and removes. Scratch folders of killed builds are
    removed first; the scratch folder is removed on any error.

    Args:
        out: the publication's folder.

    Yields:
        The scratch folder, on the same filesystem as ``out``.

    Raises:
        SevrefError: ``out`` cannot be a publication's folder, cannot be written,
            holds something else, or another build holds its lock.
    """
    check_out(out)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FetchError(f"--out {out}: cannot create {parent}: {error.strerror or error}") from error
    lock_path = parent / f".{out.name}.lock"
    descriptor = _lock(lock_path, out)
    try:
        if out.exists() and not (out / "index.json").is_file() and any(out.iterdir()):
            raise ConfigError(
                f"--out {out}: not empty and not a sevref publication (no index.json); refusing to replace it"
            )
        for stale in parent.glob(f".{out.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
        except OSError as error:
            raise FetchError(f"--out {out}: cannot write in {parent}: {error.strerror or error}") from error
        scratch.chmod(0o755)  # a publication is for everyone to read
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        lock_path.unlink(missing_ok=True)
        os.close(descriptor)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return int(result) == 0


def install(scratch: Path, out: Path) -> None:
    """Put the finished publication at ``out``; the old one (if any) ends up in ``scratch``."""
    if not out.exists():
        os.rename(scratch, out)
        return
    if _exchange(scratch, out):
        return
    old = out.with_name(f".{out.name}.tmp-old")
    os.rename(out, old)
    os.rename(scratch, out)
    os.rename(old, scratch)


def read_tik(path: Path) -> bytes:
    """Read a TIK file: 16 bytes, or 32 bytes TEK || TIK.

    Args:
        path: the file.

    Returns:
        The 16-byte TIK.

    Raises:
        SevrefError: unreadable, or another size.
    """
    try:
        return tik_from_bytes(read_bytes(path, "TIK file", MAX_TIK_FILE_BYTES))
    except ConfigError as error:
        raise ConfigError(f"TIK file {path}: {error.diagnostic()}") from error
