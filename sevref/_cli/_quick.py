"""``sevref digest`` of a common configuration, answered before argparse is imported.

:func:`quick_digest` reads the simplest form of the command line (``--option
value`` pairs of the options below, each once, no value starting with ``-``),
reads the firmware and asks :mod:`sevref.quick`. Anything else (another
option, ``--help``, a usage error, a value the full path would refuse, an
unreadable or unusual firmware) returns None, and the full command line runs
as if this module did not exist: same results, same messages.
"""

from __future__ import annotations

import os
import stat

from sevref.limits import MAX_FIRMWARE_BYTES

_FLAGS = {
    "--mode": "mode",
    "--firmware": "firmware",
    "--firmware-sha256": "firmware_sha256",
    "--vcpus": "vcpus",
    "--cpu": "cpu",
    "--cpu-signature": "cpu_signature",
    "--vmm": "vmm",
    "--vmsa-profile": "vmsa_profile",
    "--sev-features": "sev_features",
    "--guest-features": "guest_features",
}
_MODES = ("sev", "sev-es", "sev-snp", "sev-snp-firmware")


def _options(arguments: list[str]) -> dict[str, str] | None:
    """The options of ``sevref digest``'s simplest form, or None."""
    if len(arguments) % 2:
        return None
    options: dict[str, str] = {}
    for flag, value in zip(arguments[::2], arguments[1::2], strict=True):
        key = _FLAGS.get(flag)
        if key is None or key in options or value.startswith("-"):
            return None
        options[key] = value
    if options.get("mode") not in _MODES or not options.get("firmware"):
        return None
    return options


def _read(path: str) -> bytes | None:
    """The firmware, read as :func:`sevref.edge.files.read_bytes` reads it; None where it would fail."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_FIRMWARE_BYTES:
                return None
            data = handle.read(status.st_size + 1)
    except (OSError, ValueError):
        return None
    return data if len(data) == status.st_size else None


def quick_digest(arguments: list[str]) -> str | None:
    """Answer ``sevref digest`` without the full command line, if the configuration is a common one.

    Args:
        arguments: what follows ``digest`` on the command line.

    Returns:
        The digest as lowercase hex, exactly as the full path prints it; or
        None, and the full path runs.
    """
    options = _options(arguments)
    if options is None:
        return None
    from sevref.quick import check, launch_digest

    launch = check(options)
    data = None if launch is None else _read(options["firmware"])
    digest = None if launch is None or data is None else launch_digest(data, launch)
    return None if digest is None else digest.hex()
