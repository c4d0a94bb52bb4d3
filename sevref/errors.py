"""The one exception tree of sevref.

Every error that bad input can cause is a :class:`SevrefError`. Its message is
one line that names the input (file, field or offset), what was expected and
what was found. The command line prints that line and exits with status 1; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import enum

__all__ = [
    "Check",
    "ConfigError",
    "DigestMismatchError",
    "FetchError",
    "FirmwareFormatError",
    "LayoutError",
    "ManifestError",
    "RenderError",
    "ReportFormatError",
    "SevrefError",
    "SignatureError",
    "TrustError",
]


class SevrefError(Exception):
    """Base class of every error sevref reports to its user."""

    def diagnostic(self) -> str:
        """Return the one-line message the command line prints.

        Returns:
            The message, with any line breaks folded into spaces.
        """
        return " ".join(str(self).split("\n"))


class ConfigError(SevrefError):
    """A launch configuration is incomplete, contradictory or out of range."""


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


class SignatureError(SevrefError):
    """A signature, key or envelope is invalid or untrusted."""


class RenderError(SevrefError):
    """The static site could not be rendered."""


class Check(enum.StrEnum):
    """The checks a verifier makes of a publication, in the order it makes them."""

    KEYS = "keys"
    """The key chain: each keys document signed by an active key of the one before."""
    SIGNATURE = "signature"
    """The index is signed by an active key of the chain."""
    IDENTITY = "identity"
    """Publisher, product and stream are the ones asked for."""
    EXPIRY = "expiry"
    """The checking time lies between issue and expiry."""
    ROLLBACK = "rollback"
    """Nothing older than what the verifier saw before."""
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
