"""The one exception tree of sevref, and how it says that something is on its way out.

Every error that bad input can cause is a :class:`SevrefError`. Its message is
one line that names the input (file, field or offset), what was expected and
what was found. The command line prints that line and exits with status 1; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import enum
import unicodedata

__all__ = [
    "Check",
    "ConfigError",
    "Deprecation",
    "DigestMismatchError",
    "FetchError",
    "FirmwareFormatError",
    "JSONFormatError",
    "LayoutError",
    "ManifestError",
    "NotFoundError",
    "OptionError",
    "RenderError",
    "ReportFormatError",
    "SevrefError",
    "SignatureError",
    "TrustError",
    "printable",
]


def printable(text: str) -> str:
    r"""Escape every character that could move the cursor, recolour or hide text on a terminal.

    Control characters (C0, C1, DEL), format characters (bidirectional
    overrides, zero-width joiners), surrogates and unassigned code points
    become ``\xNN``, ``\uNNNN`` or ``\UNNNNNNNN``. Text from a publication that is not
    yet verified is printed only through this (every error message is).

    Args:
        text: any text.

    Returns:
        The same text, safe to print on one line.
    """
    out = []
    for char in text:
        if unicodedata.category(char)[0] == "C":
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


class Deprecation:
    """Something on its way out (docs/compatibility.md): still working, and said so each run that uses it.

    An option marks itself with :func:`sevref._cli._common.deprecate`, a
    manifest field with a row of :data:`sevref.manifest.reader.DEPRECATED_FIELDS`.
    A plain class: ``sevref --help`` loads this module, and no more than argparse
    (``tests/unit/test_house.py``).
    """

    __slots__ = ("goes", "since", "use")

    def __init__(self, since: str, goes: str, use: str) -> None:
        """Say when and for what.

        Args:
            since: the release that deprecated it (``0.3``).
            goes: the release that removes it (``1.0``).
            use: what replaces it.
        """
        self.since, self.goes, self.use = since, goes, use

    def __repr__(self) -> str:
        """``Deprecation('0.3', '1.0', '--new')``."""
        return f"Deprecation({self.since!r}, {self.goes!r}, {self.use!r})"

    def warning(self, what: str) -> str:
        """The one line the command line prints after ``sevref: warning:``.

        Args:
            what: the option or field, and where it was given.

        Returns:
            ``WHAT is deprecated since 0.3 and goes in 1.0; use USE``.
        """
        return f"{what} is deprecated since {self.since} and goes in {self.goes}; use {self.use}"


class SevrefError(Exception):
    """Base class of every error sevref reports to its user."""

    def diagnostic(self) -> str:
        """Return the one-line message the command line prints.

        Returns:
            The message on one line: line breaks folded into spaces, and every
            other control character escaped (:func:`printable`), so that text
            from a hostile input cannot rewrite the terminal.
        """
        return printable(" ".join(str(self).split("\n")))


class ConfigError(SevrefError):
    """A launch configuration is incomplete, contradictory or out of range."""


class OptionError(ConfigError):
    """Options (or API arguments) out of range or that do not go together: the command line's exit status 2."""


class ManifestError(SevrefError):
    """A manifest is not valid YAML, does not match its schema, or means nothing."""


class FirmwareFormatError(SevrefError):
    """A firmware image (or another binary input) is malformed."""


class ReportFormatError(SevrefError):
    """An SEV-SNP attestation report is malformed."""


class LayoutError(SevrefError):
    """A byte layout was declared or built wrongly (unknown field, wrong size)."""


class DigestMismatchError(SevrefError):
    """An input's observed hash is not the hash it was pinned to."""


class FetchError(SevrefError):
    """An input could not be obtained (package download, unpacking, reading)."""


class NotFoundError(FetchError):
    """A file is not there: a missing file of a folder, or HTTP 404. Any other failure is a plain FetchError."""


class JSONFormatError(SevrefError):
    """A JSON document is not strict JSON: not UTF-8, a duplicate key, a number that is not an integer, or too deep."""


class SignatureError(SevrefError):
    """A signature, key or envelope is invalid or untrusted."""


class RenderError(SevrefError):
    """The static site could not be rendered."""


class Check(enum.StrEnum):
    """The checks a verifier makes of a publication, in the order it makes them."""

    FETCH = "fetch"
    """A file could not be read: a missing folder, a refused connection, a timeout, an HTTP error."""
    KEYS = "keys"
    """The key chain: each keys document signed by an active key of the one before."""
    SIGNATURE = "signature"
    """The index is signed by an active key of the chain."""
    IDENTITY = "identity"
    """Publisher, product and stream are the ones asked for."""
    EXPIRY = "expiry"
    """The checking time lies between issue and expiry."""
    ROLLBACK = "rollback"
    """Nothing older than what the verifier saw before, nor other bytes under a serial it saw."""
    HISTORY = "history"
    """The release's link to the one before (``previous``) agrees with the release the verifier trusted."""
    FRESHNESS = "freshness"
    """A timestamp, signed by a key of the timestamp role, says the release is still current."""
    INTEGRITY = "integrity"
    """Every file is what the signed index says."""


class TrustError(SignatureError):
    """A publication is not trusted; :attr:`check` says which check failed."""

    def __init__(self, check: Check, message: str) -> None:
        """Name the failed check.

        Args:
            check: which check failed.
            message: what was found.
        """
        super().__init__(f"not trusted: {check}: {message}")
        self.check = check
