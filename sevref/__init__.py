"""sevref: publish and verify the expected launch digests of AMD SEV, SEV-ES and SEV-SNP guests."""

__version__ = "0.1.0"

__all__ = ["__version__"]
