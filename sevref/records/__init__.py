"""The published records: what every JSON file of a publication holds, typed both ways.

A publication (``sevref build --out DIR``) is::

    index.json               the release index: identity, validity, every file with sha256 and size
    publication.json         what the release covers: firmware, host stacks, boots, matrices, provenance
    groups/<hh>.json         configurations, each with its digests by vCPU count (sharded by id)
    digests/<hh>.json        digest -> entry ids (sharded by the digest's first hex digits)
    firmware/<id>.json       one firmware build: provenance, supported modes, and the
                             SEV/SEV-ES candidate list a verifier scans with its TIK
    catalog/<id>.json        one firmware build's configurations without digests, for the
                             site's search by mode, host stack, CPU and vCPU count
    changes.json             what changed since the release the index names as ``previous``
                             (only in a release built with ``--previous``; :mod:`sevref.history`)

Every file carries the release identity, so a file of another release or
product is recognisable on its own; the index pins them all by hash.

Each record is a frozen dataclass with ``to_dict`` and ``from_dict``: the
writer and every reader go through the same types, never through string keys.
Hex numbers are integers here and times are ``datetime``; they are converted
once, at this boundary. ``from_dict`` takes data that passed the record's JSON
Schema (:mod:`sevref.validate`); it does not check again.
"""

from __future__ import annotations

from sevref.records._common import CALCULATOR, SCHEMA_IDS, SCHEMAS, VERSIONS, schema_version
from sevref.records.firmware import (
    Basis,
    DebianRef,
    FirmwareRecord,
    KernelHashesRecord,
    Nvram,
    SnpSection,
    State,
    Store,
)
from sevref.records.groups import (
    Catalog,
    CatalogRow,
    EntryState,
    EntryStatus,
    GroupRecord,
    StatusException,
    vcpu_runs,
)
from sevref.records.index import Counts, FileRef, Index, Layout, Previous, Release, Signing

__all__ = [
    "CALCULATOR",
    "SCHEMAS",
    "SCHEMA_IDS",
    "VERSIONS",
    "Basis",
    "Catalog",
    "CatalogRow",
    "Counts",
    "DebianRef",
    "EntryState",
    "EntryStatus",
    "FileRef",
    "FirmwareRecord",
    "GroupRecord",
    "Index",
    "KernelHashesRecord",
    "Layout",
    "Nvram",
    "Previous",
    "Release",
    "Signing",
    "SnpSection",
    "State",
    "StatusException",
    "Store",
    "schema_version",
    "vcpu_runs",
]
