"""The one exception tree of sevref.

Every error that bad input can cause is a :class:`SevrefError`. Its message is
one line that names the input (file, field or offset), what was expected and
what was found. The command line prints that line and exits with status 1; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
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
