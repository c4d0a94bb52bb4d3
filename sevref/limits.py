"""Every size and time limit sevref enforces, in one place.

Each input is read with a bound chosen from what real inputs are, so that a
hostile or mistaken file cannot make sevref reserve or hold unbounded memory.
Readers take their bound from here; tests and documentation quote these names.

A verifier reads a publication in this order, each file with its own bound:

=============================  ==============================================
``index.dsse.json``            :data:`MAX_INDEX_ENVELOPE_BYTES`, unsigned
``keys/<n>.dsse.json``         :data:`MAX_KEYS_DOCUMENT_BYTES` each, unsigned;
                               at most :data:`MAX_KEYS_DOCUMENTS` a run
``index.json``                 the size of the signed payload, exactly
``timestamp.dsse.json``        :data:`MAX_TIMESTAMP_BYTES`, unsigned
every file the index lists     the size the signed index gives, exactly
``<file>.sig``                 :data:`MAX_SIGNATURE_FILE_BYTES`
``attestation.intoto.dsse``    :func:`attestation_limit` of the signed index
=============================  ==============================================

A reader asks for at most its bound plus one byte and refuses a file that
reaches it, without waiting for the rest; over HTTP, every file must arrive
whole within :data:`DEFAULT_FETCH_TIMEOUT` seconds (``--timeout``), across at
most :data:`MAX_REDIRECTS` redirects.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_FETCH_TIMEOUT",
    "DEFAULT_MAX_ENTRIES",
    "DOWNLOAD_SECONDS",
    "MAX_ARCHIVE_ENTRIES",
    "MAX_ARCHIVE_NAME_BYTES",
    "MAX_BATCH_BYTES",
    "MAX_BOOT_FILE_BYTES",
    "MAX_DEB_BYTES",
    "MAX_DECOMPRESSOR_WINDOW",
    "MAX_DESCRIPTORS",
    "MAX_DESCRIPTOR_BYTES",
    "MAX_ENVELOPE_SIGNATURES",
    "MAX_FETCH_BYTES",
    "MAX_FIRMWARE_BYTES",
    "MAX_INDEX_ENVELOPE_BYTES",
    "MAX_KEYS_DOCUMENTS",
    "MAX_KEYS_DOCUMENT_BYTES",
    "MAX_KEY_FILE_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_PACKAGE_METADATA_BYTES",
    "MAX_PASSPHRASE_FILE_BYTES",
    "MAX_REDIRECTS",
    "MAX_REPOMD_BYTES",
    "MAX_REPORT_FILE_BYTES",
    "MAX_REPO_METADATA_BYTES",
    "MAX_REPO_METADATA_UNPACKED",
    "MAX_RPM_BYTES",
    "MAX_SIGNATURE_FILE_BYTES",
    "MAX_STATE_BYTES",
    "MAX_TIK_FILE_BYTES",
    "MAX_TIMESTAMP_BYTES",
    "MAX_UNPACKED_BYTES",
    "attestation_limit",
]

MAX_FIRMWARE_BYTES = 256 << 20
"""Firmware images larger than this are refused (real ones are 2 to 4 MiB)."""
MAX_BOOT_FILE_BYTES = 1 << 30
"""Kernels and initrds larger than this are refused."""
MAX_DEB_BYTES = 1 << 30
"""Debian packages larger than this are refused (Debian's ovmf is about 6 MiB)."""
MAX_RPM_BYTES = 1 << 30
"""RPM packages larger than this are refused (Fedora's edk2-ovmf is about 40 MiB)."""
MAX_UNPACKED_BYTES = 4 << 30
"""One compressed member of a package (``data.tar.*``, an RPM payload) is read no further than this, unpacked.

Members are streamed, never held whole; this bounds the time a compression bomb can take, and the
file a build wants must moreover be within its own limit (:data:`MAX_FIRMWARE_BYTES`,
:data:`MAX_BOOT_FILE_BYTES`): a member larger than that stops the read at its header.
"""
MAX_ARCHIVE_ENTRIES = 1_000_000
"""A package archive (tar or cpio) with more entries than this is refused (a kernel package has about 7,000)."""
MAX_ARCHIVE_NAME_BYTES = 1 << 20
"""A file name, link target or extended tar header longer than this is refused."""
MAX_PACKAGE_METADATA_BYTES = 64 << 20
"""A .deb's control file or an RPM header larger than this is refused (rpm itself stops at 256 MiB)."""
MAX_DECOMPRESSOR_WINDOW = 1 << 28
"""The most memory an xz or zstd stream may ask its decoder for (``xz -9`` asks 64 MiB, zstd's default limit is 128 MiB)."""
MAX_REPOMD_BYTES = 1 << 20
"""An RPM repository's ``repodata/repomd.xml`` larger than this is refused (Fedora's is about 5 KiB)."""
MAX_REPO_METADATA_BYTES = 512 << 20
"""An RPM repository's compressed primary metadata larger than this is refused (Fedora's is about 20 MiB)."""
MAX_REPO_METADATA_UNPACKED = 8 << 30
"""An RPM repository's primary metadata is parsed no further than this, unpacked."""
MAX_DESCRIPTOR_BYTES = 64 << 10
"""A QEMU firmware descriptor (``/usr/share/qemu/firmware/*.json``) larger than this is refused (real ones are under 1 KiB)."""
MAX_DESCRIPTORS = 1000
"""A package with more firmware descriptors than this is refused (Fedora's edk2-ovmf has about 20)."""
MAX_MANIFEST_BYTES = 4 << 20
"""Manifest files larger than this are refused."""
MAX_BATCH_BYTES = 1 << 30
"""``sevref digest --batch`` files larger than this are refused."""
MAX_KEY_FILE_BYTES = 1 << 16
"""PEM key files larger than this are refused."""
MAX_PASSPHRASE_FILE_BYTES = 4096
"""Passphrase files larger than this are refused."""
MAX_KEYS_DOCUMENT_BYTES = 64 << 10
"""A keys document (``keys/<n>.dsse.json``) larger than this is refused: about 1 KiB a key, so room for 50 keys."""
MAX_KEYS_DOCUMENTS = 100
"""A verifier reads at most this many keys documents a run; a longer chain is refused (decades of rotations)."""
MAX_INDEX_ENVELOPE_BYTES = 24 << 20
"""``index.dsse.json`` larger than this is refused: an index of 100,000 files is about 11 MiB, 15 MiB in base64."""
MAX_TIMESTAMP_BYTES = 16 << 10
"""``timestamp.dsse.json`` larger than this is refused (a timestamp is under 1 KiB)."""
MAX_SIGNATURE_FILE_BYTES = 512
"""A detached ``.sig`` larger than this is refused (DER ECDSA P-384 is at most 104 bytes)."""
MAX_ENVELOPE_SIGNATURES = 16
"""A DSSE envelope with more signatures than this is refused before it is parsed."""
MAX_FETCH_BYTES = 1 << 30
"""No published file is read beyond this size, whatever its index says."""
DEFAULT_FETCH_TIMEOUT = 60.0
"""Seconds within which each file must arrive whole over HTTP(S) (``--timeout``)."""
DEFAULT_DEADLINE = 300.0
"""Seconds within which every file of one verifier run must have arrived (``--deadline``)."""
MAX_REDIRECTS = 5
"""HTTP redirects followed for one file (each to http or https; never from https to http)."""
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


def attestation_limit(index_size: int) -> int:
    """The largest ``attestation.intoto.dsse.json`` read for a signed index of ``index_size`` bytes.

    The in-toto statement names the same files as the index, each with its
    sha256; in base64 inside its envelope it takes at most twice the index's
    size, plus room for the predicate.

    Args:
        index_size: the size of ``index.json``.

    Returns:
        Bytes.
    """
    return 2 * index_size + (64 << 10)
