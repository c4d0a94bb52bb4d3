"""sevref: publish and verify the expected launch digests of AMD SEV, SEV-ES and SEV-SNP guests.

The Python API is :mod:`sevref.api` (``build``, ``sign``, ``verify``, ``digest``); what it and the
command line keep stable from one version to the next is ``docs/compatibility.md``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
