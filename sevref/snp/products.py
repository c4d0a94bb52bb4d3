"""The EPYC generations sevref verifies reports of: one row each.

A new generation is one PEM file under ``sevref/snp/roots/`` (AMD's
``cert_chain`` for it) and one row of :data:`PRODUCTS`. A VCEK names its
product in the extension 1.3.6.1.4.1.3704.1.2 ("Milan-B0", "Genoa-B1",
"Turin-B0": the product, a dash, the stepping; AMD VCEK specification 57230
Table 10), and the row with that product gives the roots to check it against
and how to read the TCB.
"""

from __future__ import annotations

from dataclasses import dataclass

from sevref.binfmt.report import SIGNING_KEY_VLEK
from sevref.snp import EvidenceError

__all__ = ["PRODUCTS", "Product", "product"]


@dataclass(frozen=True)
class Product:
    """One EPYC generation: its name, its roots and the layout of its reports."""

    name: str
    """The name AMD's KDS and the VCEK's product name use ("Milan")."""
    vcek_roots: str
    """The file of ``sevref/snp/roots/`` with its ASK and ARK."""
    vlek_roots: str
    """The file with its ASVK and ARK (the chain of VLEKs)."""
    cpuid_family: int
    """CPUID family (reports of version 3 or later carry it at 0x188)."""
    turin_tcb: bool
    """TCB_VERSION in the family 1Ah layout: FMC first, and a VCEK extension fmcSPL (1.3.6.1.4.1.3704.1.3.9)."""
    short_hwid: bool
    """Its VCEKs may name the chip by the first 8 bytes of CHIP_ID (see :mod:`sevref.snp.verify`)."""

    def roots(self, key: int) -> str:
        """The root file for a signing key.

        Args:
            key: SIGNER_INFO.SIGNING_KEY of the report.

        Returns:
            The file name under ``sevref/snp/roots/``.
        """
        return self.vlek_roots if key == SIGNING_KEY_VLEK else self.vcek_roots


PRODUCTS: tuple[Product, ...] = (
    # Root files: AMD KDS https://kdsintf.amd.com/{vcek,vlek}/v1/<name>/cert_chain, the same bytes as
    # go-sev-guest verify/trust/*.pem (each file's head says which). CPUID families: go-sev-guest
    # abi/abi.go (zen3zen4Family 0x19, zen5Family 0x1A).
    Product("Milan", "ask_ark_milan.pem", "ask_ark_milan_vlek.pem", 0x19, turin_tcb=False, short_hwid=False),
    Product("Genoa", "ask_ark_genoa.pem", "ask_ark_genoa_vlek.pem", 0x19, turin_tcb=False, short_hwid=False),
    Product("Turin", "ask_ark_turin_vcek.pem", "ask_ark_turin_vlek.pem", 0x1A, turin_tcb=True, short_hwid=True),
)
"""Every product sevref knows, by name."""


def product(product_name: str, what: str) -> Product:
    """The row of a VCEK's or VLEK's product name.

    Args:
        product_name: the certificate's product name, e.g. "Milan-B0".
        what: how to name the certificate in errors.

    Returns:
        The product.

    Raises:
        EvidenceError: a product sevref has no row for.
    """
    name = product_name.partition("-")[0]
    for row in PRODUCTS:
        if row.name == name:
            return row
    known = ", ".join(row.name for row in PRODUCTS)
    raise EvidenceError(f"{what}: product name {product_name!r}; expected one of {known} (a dash and a stepping after)")
