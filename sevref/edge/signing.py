"""Signing after the build: a written publication read back, checked, and its pages made again.

``sevref build`` without a key writes a whole publication whose ``index.json``
says ``"signing": null``; ``sevref sign`` signs it later, on another machine
or with a key that never leaves an HSM. The signed publication must be what a
one-step signed build writes, byte for byte, and every page shows the signing
key. So this module:

1. reads the written ``index.json`` and checks every file it lists (sha256,
   size, the release identity and the schema of each JSON file), refuses a
   file it does not list, and refuses a publication that is already signed
   unless asked to sign it again;
2. copies the JSON files and assets, as read and checked, into the scratch
   folder, and renders every page again from the records it read (typed,
   through :mod:`sevref.records`) with the signing key's facts; the set of
   pages must be the set the index lists.

The composition (:func:`sevref.pipeline.sign`) then writes the new index and
signs it, as a build does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sevref import __version__
from sevref.edge.files import read_bytes
from sevref.edge.publish import Tree, site_sources
from sevref.errors import ConfigError, DigestMismatchError, LayoutError, SignatureError
from sevref.history import Changes, link_problem
from sevref.limits import MAX_FETCH_BYTES
from sevref.records import Catalog, CatalogRow, FileRef, FirmwareRecord, GroupRecord, Index
from sevref.records.files import Listing, kind_of, made_by_signing, schema_of, written_by_signing
from sevref.render import Renderer, Site
from sevref.validate import check_document

__all__ = ["Written", "read_written", "rewrite"]


@dataclass(frozen=True)
class Written:
    """A publication read back from its folder: its index, checked, and the records the pages show."""

    folder: Path
    """Where it is."""
    index: Index
    """Its index."""
    index_sha256: str
    """The SHA-256 of its ``index.json``, as read."""
    description: str
    """The release's description (``publication.json``)."""
    calculator: str
    """The sevref that computed it (``publication.json``)."""
    firmware: tuple[FirmwareRecord, ...]
    """Its firmware records, in publication order."""
    host_stacks: tuple[Mapping[str, Any], ...]
    """Its host stacks (``publication.json``), as the home page shows them."""
    changes: Changes | None = None
    """What changed since its previous release (``changes.json``), if it names one."""


def _read_listed(folder: Path, ref: FileRef) -> bytes:
    """A listed file's bytes, which must be what the index says."""
    data = read_bytes(folder / ref.path, "published file", MAX_FETCH_BYTES)
    found = hashlib.sha256(data).hexdigest()
    if (found, len(data)) != (ref.sha256, ref.size):
        raise DigestMismatchError(
            f"{folder / ref.path}: sha256 {found} ({len(data)} bytes); index.json says {ref.sha256} "
            f"({ref.size} bytes): the publication changed since it was built; build it again"
        )
    return data


def _json(folder: Path, ref: FileRef, index: Index) -> tuple[bytes, Any]:
    """A listed JSON file, as read and parsed, with the index's release identity and valid against its schema."""
    data = _read_listed(folder, ref)
    try:
        value = json.loads(data)
    except ValueError as error:
        raise LayoutError(f"{folder / ref.path}: not JSON ({error})") from error
    identity = value.get("release") if isinstance(value, dict) else None
    if identity != index.release.to_dict():
        raise LayoutError(f"{folder / ref.path}: belongs to release {identity}; expected {index.release.to_dict()}")
    kind = schema_of(ref.path)
    if kind is not None:
        check_document(kind, value, ref.path)
    return data, value


def _unlisted(folder: Path, index: Index) -> list[str]:
    """Files in the folder that are neither listed nor what signing adds."""
    listed = {ref.path for ref in index.files}
    found = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_dir() or name in listed or name == "index.json":
            continue
        if index.signing is not None and written_by_signing(name, listed):
            continue
        found.append(name)
    return found


def _read_index(folder: Path, expected_sha256: str | None) -> tuple[Index, str]:
    """``index.json``: pinned by the caller if asked, valid against its schema, written by this sevref."""
    path = folder / "index.json"
    if not path.is_file():
        raise ConfigError(f"{folder}: no index.json; expected a publication that sevref build wrote")
    data = read_bytes(path, "index", MAX_FETCH_BYTES)
    sha256 = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise DigestMismatchError(
            f"{path}: sha256 is {sha256}, expected {expected_sha256} (--index-sha256): not the publication "
            "that was built"
        )
    try:
        value = json.loads(data)
    except ValueError as error:
        raise LayoutError(f"{path}: not JSON ({error})") from error
    check_document("index", value, "index.json")
    index = Index.from_dict(value)
    if index.sevref != __version__:
        raise ConfigError(
            f"{path}: built by sevref {index.sevref}; this is sevref {__version__}: sign with the sevref that "
            "built it (its pages are made again)"
        )
    return index, sha256


def read_written(folder: Path, *, resign: bool = False, index_sha256: str | None = None) -> Written:
    """Read a written publication's index and the records its pages show, checking them.

    Args:
        folder: the publication (``sevref build --out``).
        resign: sign a publication that is already signed (its signatures are replaced).
        index_sha256: refuse unless ``index.json`` has this SHA-256 (lowercase hex).

    Returns:
        What was read.

    Raises:
        SevrefError: no publication, another sevref's, already signed (without
            ``resign``), a file the index does not list, or a listed file that is
            not what the index says or not valid.
    """
    index, sha256 = _read_index(folder, index_sha256)
    if index.signing is not None and not resign:
        raise SignatureError(
            f"{folder}: already signed by key {index.signing.keyid}; give --resign to replace its signatures"
        )
    for ref in index.files:
        kind = kind_of(ref.path)
        if kind is None:
            raise LayoutError(f"{folder}: index.json lists {ref.path}, which is no file of a publication")
        if kind.listing is not Listing.LISTED:
            raise LayoutError(
                f"{folder}: index.json lists {ref.path} ({kind.name}), which the index never lists; "
                "expected only the files the build writes"
            )
    extra = _unlisted(folder, index)
    if extra:
        more = f" (and {len(extra) - 1} more files)" if len(extra) > 1 else ""
        raise ConfigError(
            f"{folder / extra[0]}: not listed in index.json{more}; expected only the files sevref build wrote"
        )
    refs = {ref.path: ref for ref in index.files}
    if "publication.json" not in refs:
        raise LayoutError(f"{folder}: index.json lists no publication.json; expected a publication sevref build wrote")
    _, publication = _json(folder, refs["publication.json"], index)
    firmware = []
    for item in publication["firmware"]:
        path = f"firmware/{item['id']}.json"
        if path not in refs:
            raise LayoutError(f"{folder}: index.json lists no {path}, which publication.json names")
        firmware.append(FirmwareRecord.from_dict(_json(folder, refs[path], index)[1]["firmware"]))
    changes = None
    if "changes.json" in refs:
        changes = Changes.from_dict(_json(folder, refs["changes.json"], index)[1])
    problem = link_problem(index, changes)
    if problem is not None:
        raise LayoutError(f"{folder}: {problem}")
    return Written(
        folder=folder,
        index=index,
        index_sha256=sha256,
        description=publication["description"],
        calculator=publication["calculator"],
        firmware=tuple(firmware),
        host_stacks=tuple(publication["host_stacks"]),
        changes=changes,
    )


def rewrite(written: Written, tree: Tree, site: Site) -> None:
    """Copy a written publication's files into ``tree``, checked, and render its pages again for ``site``.

    Every listed file is read once and checked against the index (pages too,
    before they are replaced); the pages rendered must be exactly the pages the
    index lists.

    Args:
        written: the publication, from :func:`read_written`.
        tree: the scratch publication being written.
        site: the release facts every page shows, with the signing key's.

    Raises:
        SevrefError: a listed file is not what the index says or not valid, a
            page fails to render, or the pages differ from those listed.
    """
    folder, index = written.folder, written.index
    templates, _ = site_sources()
    renderer = Renderer(templates, site, written.firmware)
    records = {record.id: record for record in written.firmware}
    rows: dict[str, list[CatalogRow]] = {}
    listed_pages, rendered = set(), set()
    for ref in index.files:
        if ref.path.endswith(".html"):
            _read_listed(folder, ref)  # a page is replaced, but a changed one means a changed publication
            listed_pages.add(ref.path)
            continue
        if made_by_signing(ref.path):
            _read_listed(folder, ref)  # made anew by this signing; a changed one means a changed publication
            continue
        if not ref.path.endswith(".json"):
            tree.write(ref.path, _read_listed(folder, ref))
            continue
        data, value = _json(folder, ref, index)
        tree.write(ref.path, data)
        if ref.path.startswith("groups/"):
            for item in value["groups"]:
                path, page = renderer.entry(GroupRecord.from_dict(item))
                tree.write(path, page)
                rendered.add(path)
        elif ref.path.startswith("catalog/"):
            catalog = Catalog.from_dict(value)
            if catalog.firmware not in records:
                raise LayoutError(f"{ref.path}: firmware {catalog.firmware} is not in publication.json")
            rows[catalog.firmware] = list(catalog.configurations)
            for path, page in renderer.firmware_pages(records[catalog.firmware], rows[catalog.firmware]):
                tree.write(path, page)
                rendered.add(path)
    hosts = list(written.host_stacks)
    pages = [renderer.home(index.counts, rows, hosts), renderer.search([h["id"] for h in hosts])]
    if written.changes is not None:
        pages.append(renderer.changes_page(rows))
    for path, page in pages:
        tree.write(path, page)
        rendered.add(path)
    if rendered != listed_pages:
        odd = sorted(rendered ^ listed_pages)[0]
        where = "rendered but not listed in index.json" if odd in rendered else "listed in index.json but not rendered"
        raise LayoutError(f"{folder}: page {odd} is {where}; expected the pages sevref build wrote")
