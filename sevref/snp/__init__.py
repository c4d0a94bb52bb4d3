"""SEV-SNP attestation reports beyond their bytes: signature, roots and policy.

go-sev-guest's split, one module a job:

* :mod:`sevref.binfmt.report`: the report's bytes (its ``abi``);
* :mod:`sevref.snp.x509`: the DER of AMD's certificates, read without
  ``cryptography``'s X.509 loader (AMD's VCEKs have serial number 0, which
  that loader warns it will refuse);
* :mod:`sevref.snp.products`: one row per EPYC generation, naming its root file;
* :mod:`sevref.snp.verify`: ARK → ASK (or ASVK) → VCEK (or VLEK) → report;
* :mod:`sevref.snp.validate`: the guest's policy and the platform's TCB.

Nothing here reads a file: the command line hands in bytes.
"""

from __future__ import annotations

from sevref.errors import ReportFormatError, SignatureError

__all__ = ["CertificateFormatError", "EvidenceError"]


class CertificateFormatError(ReportFormatError):
    """A certificate, certificate file or certificate table is malformed (a bad file: exit 1)."""


class EvidenceError(SignatureError):
    """A report's signature, its key chain or the VCEK's claims about the chip do not hold (not accepted: exit 3)."""
