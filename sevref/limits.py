"""Every size limit sevref enforces, in one place.

Each input is read with a bound chosen from what real inputs are, so that a
hostile or mistaken file cannot make sevref reserve or hold unbounded memory.
Readers take their bound from here; tests and documentation quote these names.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DOWNLOAD_SECONDS",
    "MAX_BATCH_BYTES",
    "MAX_BOOT_FILE_BYTES",
    "MAX_DEB_BYTES",
    "MAX_FETCH_BYTES",
    "MAX_FIRMWARE_BYTES",
    "MAX_KEYS_DOCUMENTS",
    "MAX_KEYS_DOCUMENT_BYTES",
    "MAX_KEY_FILE_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_PASSPHRASE_FILE_BYTES",
    "MAX_REPORT_FILE_BYTES",
    "MAX_STATE_BYTES",
    "MAX_TIK_FILE_BYTES",
]

MAX_FIRMWARE_BYTES = 256 << 20
"""Firmware images larger than this are refused (real ones are 2 to 4 MiB)."""
MAX_BOOT_FILE_BYTES = 1 << 30
"""Kernels and initrds larger than this are refused."""
MAX_DEB_BYTES = 1 << 30
"""Debian packages larger than this are refused (Debian's ovmf is about 6 MiB)."""
MAX_MANIFEST_BYTES = 4 << 20
"""Manifest files larger than this are refused."""
MAX_BATCH_BYTES = 1 << 30
"""``sevref digest --batch`` files larger than this are refused."""
MAX_KEY_FILE_BYTES = 1 << 16
"""PEM key files larger than this are refused."""
MAX_PASSPHRASE_FILE_BYTES = 4096
"""Passphrase files larger than this are refused."""
MAX_KEYS_DOCUMENT_BYTES = 1 << 20
"""A keys document (``keys/<n>.dsse.json``) larger than this is refused."""
MAX_KEYS_DOCUMENTS = 1000
"""A key chain longer than this is refused."""
MAX_FETCH_BYTES = 1 << 30
"""No published file is read beyond this size."""
MAX_STATE_BYTES = 1 << 20
"""A verifier state file larger than this is refused."""
MAX_REPORT_FILE_BYTES = 1 << 20
"""An attestation report file larger than this is refused (a report is 1184 bytes)."""
MAX_TIK_FILE_BYTES = 64
"""A TIK file larger than this is refused (16 bytes, or 32 for TEK || TIK)."""
DOWNLOAD_SECONDS = 600.0
"""A download (a file or a .deb a manifest names by URL) that takes longer than this, whole, is abandoned."""
DEFAULT_MAX_ENTRIES = 5_000_000
"""``sevref build --max-entries`` default: a matrix that expands to more entries is refused."""
