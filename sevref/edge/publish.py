"""Writing a publication: every group computed, streamed to disk, checked, and signed.

The write phase computes every group (in worker processes for large matrices,
each from one frozen :class:`BuildPlan`), streams the shards as they come, and
renders the site's pages from the same checked records. Memory stays bounded:
shards are written as lists grow, and the digest index spills to disk. The
signing phase then writes the envelopes, the key chain, the in-toto statement
and the detached signatures.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

from sevref._resources import resource
from sevref.assemble import firmware_record, group_record, publication_record, release_of
from sevref.digest import Firmware, Mode, launch_digests
from sevref.errors import RenderError
from sevref.expand import Expansion, Group
from sevref.ids import entry_id
from sevref.manifest.model import Manifest
from sevref.records import (
    CALCULATOR,
    SCHEMAS,
    Catalog,
    CatalogRow,
    Counts,
    FileRef,
    FirmwareRecord,
    Index,
    Layout,
    Release,
)
from sevref.render import Renderer, Site
from sevref.serialize import canonical, canonical_frame, canonical_row
from sevref.sign import INDEX_PAYLOAD_TYPE, INTOTO_PAYLOAD_TYPE, Signer, envelope, sign_file, statement
from sevref.validate import check_document, check_group

__all__ = [
    "BuildPlan",
    "Tree",
    "check_tree",
    "sign_publication",
    "site_sources",
    "write_changes",
    "write_publication",
]

PARALLEL_ENTRIES = 20_000
"""Matrices with at least this many entries are computed by worker processes by default."""
MAX_WORKERS = 8
"""Worker processes by default, at most (and never more than the cores)."""


class Tree:
    """Writes a publication's files under a folder, hashing as it goes."""

    def __init__(self, root: Path) -> None:
        """Start an empty publication.

        Args:
            root: the folder it is written into.
        """
        self.root = root
        self.files: list[FileRef] = []
        self.unlisted: list[tuple[str, int]] = []

    def write(self, path: str, data: bytes) -> None:
        """Write a file the index lists.

        Args:
            path: relative path.
            data: contents.
        """
        self._put(path, data)
        self.files.append(FileRef(path, hashlib.sha256(data).hexdigest(), len(data)))

    def write_unlisted(self, path: str, data: bytes) -> None:
        """Write a file the index does not list (the index itself, signatures, keys).

        Args:
            path: relative path.
            data: contents.
        """
        self._put(path, data)
        self.unlisted.append((path, len(data)))

    def _put(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def open(self, path: str, head: bytes, tail: bytes) -> Stream:
        """Start a listed file whose list member grows as it is computed.

        Args:
            path: relative path.
            head: the canonical JSON before the list (see :func:`~sevref.serialize.canonical_frame`).
            tail: the canonical JSON after it.

        Returns:
            The stream.
        """
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        return Stream(self, path, target, head, tail)


class Stream:
    """One file whose list member is appended to as it is computed."""

    def __init__(self, tree: Tree, path: str, target: Path, head: bytes, tail: bytes) -> None:
        """Open the file and write its head.

        Args:
            tree: the publication.
            path: relative path.
            target: the file.
            head: canonical JSON before the list.
            tail: canonical JSON after it.
        """
        self.tree, self.path, self.tail = tree, path, tail
        self.handle = target.open("wb")
        self.hash = hashlib.sha256()
        self.size = 0
        self.count = 0
        self._put(head + b"[")

    def _put(self, data: bytes) -> None:
        self.handle.write(data)
        self.hash.update(data)
        self.size += len(data)

    def add(self, item: bytes) -> None:
        """Append one canonical list item.

        Args:
            item: its canonical JSON.
        """
        self._put(b"," + item if self.count else item)
        self.count += 1

    def close(self) -> None:
        """Finish the file and list it."""
        self._put(b"]" + self.tail)
        self.handle.close()
        self.tree.files.append(FileRef(self.path, self.hash.hexdigest(), self.size))


class _DigestIndex:
    """Digest -> entry ids, spilled to disk in 16 buckets so memory stays bounded."""

    _FLUSH = 250_000

    def __init__(self, folder: Path, layout: Layout) -> None:
        self.folder, self.layout = folder, layout
        folder.mkdir()
        self.pending: dict[str, list[str]] = {}
        self.count = 0

    def add(self, digest: str, entry: str) -> None:
        self.pending.setdefault(digest[0], []).append(f"{digest} {entry}\n")
        self.count += 1
        if self.count >= self._FLUSH:
            self.flush()

    def flush(self) -> None:
        for bucket, lines in self.pending.items():
            with (self.folder / bucket).open("a", encoding="ascii") as handle:
                handle.writelines(lines)
        self.pending, self.count = {}, 0

    def shards(self) -> Iterator[tuple[str, dict[str, list[str]]]]:
        """Yield (shard name, digest -> sorted entry ids), by shard name."""
        self.flush()
        for bucket in sorted(self.folder.iterdir()):
            shards: dict[str, dict[str, list[str]]] = {}
            for line in bucket.read_text(encoding="ascii").splitlines():
                digest, entry = line.split(" ")
                shards.setdefault(self.layout.digest_shard(digest), {}).setdefault(digest, []).append(entry)
            bucket.unlink()
            for name in sorted(shards):
                table = shards[name]
                for entries in table.values():
                    entries.sort()
                yield name, table


@dataclass(frozen=True)
class BuildPlan:
    """Everything a worker needs to compute a group, computed once before the workers start."""

    groups: tuple[Group, ...]
    """The groups, by id."""
    firmware: Mapping[str, Firmware]
    """Prepared firmware by id."""
    records: Mapping[str, FirmwareRecord]
    """Each firmware's published record (its package and where it keeps UEFI variables, which groups repeat)."""
    renderer: Renderer
    """Renders each group's page."""


@dataclass(frozen=True)
class _Computed:
    """One group, ready to write."""

    record: bytes
    """Its canonical, schema-checked record."""
    digests: list[bytes]
    """Its digests, by vCPU count."""
    page: bytes
    """Its page."""
    row: CatalogRow
    """Its catalog row."""


def _compute(plan: BuildPlan, index: int) -> _Computed:
    """Compute one group: its checked canonical record, digests, page and catalog row."""
    group = plan.groups[index]
    counts = group.vcpus or (1,)
    by_count = launch_digests(plan.firmware[group.firmware], group.config, counts)
    digests = [by_count[count] for count in counts]
    record = group_record(group, digests, plan.records[group.firmware])
    data = record.to_dict()
    check_group(data)
    _, page = plan.renderer.entry(record)
    return _Computed(canonical(data), digests, page, record.catalog_row())


# The plan of a worker process. A pool's initializer receives it once per worker
# (with the fork start method it is inherited, not pickled) and keeps it here;
# the parent never sets it.
_worker_plan: BuildPlan | None = None


def _start_worker(plan: BuildPlan) -> None:
    """Pool initializer: keep the plan for :func:`_compute_in_worker`."""
    global _worker_plan  # noqa: PLW0603  # one plan per worker process, set once by the pool
    _worker_plan = plan


def _compute_in_worker(index: int) -> _Computed:
    """Compute a group in a worker process, from the plan the pool gave it."""
    if _worker_plan is None:  # pragma: no cover - the pool's initializer always ran
        raise RuntimeError("worker started without a build plan")
    return _compute(_worker_plan, index)


class _Progress:
    """A progress line on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self.stream = stream if stream is not None and stream.isatty() else None
        self.total, self.done = total, 0
        self.start = self.last = time.monotonic()

    def step(self, entries: int) -> None:
        self.done += entries
        now = time.monotonic()
        if self.stream is None or now - self.last < 0.2:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate else 0.0
        self.stream.write(f"\r{self.done:>10,} / {self.total:,} entries  {rate:,.0f}/s  ETA {eta:.0f}s ")
        self.stream.flush()

    def end(self) -> None:
        if self.stream is not None:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def site_sources() -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    """The site's templates (name -> text) and static assets (path, bytes).

    Returns:
        (templates, assets).

    Raises:
        RenderError: the templates cannot be read.
    """
    folder = resource("templates")
    try:
        templates = {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.html.j2"))}
        assets = [(f"assets/{path.name}", path.read_bytes()) for path in sorted((folder / "assets").iterdir())]
    except (OSError, UnicodeDecodeError) as error:
        raise RenderError(f"{folder}: cannot read the site's templates ({error})") from error
    return templates, assets


def _results(plan: BuildPlan, jobs: int | None, entries: int) -> tuple[Iterable[_Computed], Callable[[], None]]:
    """The computed groups in order, from worker processes or this one, and how to stop the workers."""
    workers = (
        jobs if jobs is not None else (min(os.cpu_count() or 1, MAX_WORKERS) if entries >= PARALLEL_ENTRIES else 1)
    )
    if workers <= 1:
        return map(functools.partial(_compute, plan), range(len(plan.groups))), lambda: None
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=_start_worker, initargs=(plan,))
    return pool.imap(_compute_in_worker, range(len(plan.groups)), chunksize=8), pool.terminate


def _stream_groups(
    tree: Tree,
    plan: BuildPlan,
    results: Iterable[_Computed],
    release: Release,
    layout: Layout,
    candidates: Mapping[str, Stream],
    digests: _DigestIndex,
    meter: _Progress,
) -> dict[str, list[CatalogRow]]:
    """Write each group as it is computed: its shard, its page, its digests and SEV/SEV-ES candidates."""
    catalog: dict[str, list[CatalogRow]] = {ident: [] for ident in candidates}
    shard: Stream | None = None
    for group, computed in zip(plan.groups, results, strict=True):
        path = f"groups/{layout.group_shard(group.id)}.json"
        if shard is None or shard.path != path:
            if shard is not None:
                shard.close()
            head, tail = canonical_frame(
                {"schema": SCHEMAS["groups"], "release": release.to_dict(), "shard": layout.group_shard(group.id)},
                "groups",
            )
            shard = tree.open(path, head, tail)
        shard.add(computed.record)
        tree.write(f"entry/{group.id}.html", computed.page)
        catalog[group.firmware].append(computed.row)
        counts: Sequence[int | None] = group.vcpus or (None,)
        for count, value in zip(counts, computed.digests, strict=True):
            text, ident = value.hex(), entry_id(group.id, count)
            digests.add(text, ident)
            if group.mode in (Mode.SEV, Mode.SEV_ES):
                candidates[group.firmware].add(canonical_row(ident, str(group.mode), text))
        meter.step(len(computed.digests))
    if shard is not None:
        shard.close()
    return catalog


def write_publication(
    tree: Tree,
    manifest: Manifest,
    expansion: Expansion,
    firmware: Mapping[str, Firmware],
    *,
    site: Site,
    jobs: int | None,
    progress: TextIO | None,
) -> None:
    """Compute every group and write groups/, digests/, firmware/, catalog/, publication.json and the pages.

    Args:
        tree: the publication being written.
        manifest: the manifest.
        expansion: its groups.
        firmware: the prepared firmware by id (those the matrices use).
        site: the release facts every page shows.
        jobs: worker processes (None: all cores, up to 8, for large matrices).
        progress: where to show progress when it is a terminal.

    Raises:
        SevrefError: a record fails its schema or a page fails to render.
    """
    release = release_of(manifest.publication)
    layout = Layout.for_counts(len(expansion.groups), expansion.entries)
    records: list[FirmwareRecord] = []
    candidates: dict[str, Stream] = {}
    for ident, fw in firmware.items():
        record = firmware_record(manifest.firmware[ident], fw, hashlib.sha384(fw.data).digest())
        records.append(record)
        head, tail = canonical_frame(
            {"schema": SCHEMAS["firmware"], "release": release.to_dict(), "firmware": record.to_dict()}, "candidates"
        )
        candidates[ident] = tree.open(f"firmware/{ident}.json", head, tail)
    templates, assets = site_sources()
    renderer = Renderer(templates, site, records)
    plan = BuildPlan(expansion.groups, firmware, {record.id: record for record in records}, renderer)
    digests = _DigestIndex(tree.root / ".digests", layout)
    meter = _Progress(progress, expansion.entries)
    results, stop = _results(plan, jobs, expansion.entries)
    try:
        catalog = _stream_groups(tree, plan, results, release, layout, candidates, digests, meter)
    finally:
        stop()
        meter.end()
    for stream in candidates.values():
        stream.close()
    for name, table in digests.shards():
        tree.write(
            f"digests/{name}.json",
            canonical({"schema": SCHEMAS["digests"], "release": release.to_dict(), "shard": name, "digests": table}),
        )
    shutil.rmtree(digests.folder)
    publication = publication_record(manifest, expansion.reports, firmware)
    check_document("publication", publication, "publication.json")
    tree.write("publication.json", canonical(publication))
    rows: dict[str, list[CatalogRow]] = {}
    for record in records:
        rows[record.id] = sorted(catalog[record.id], key=CatalogRow.sort_key)
        tree.write(
            f"catalog/{record.id}.json", canonical(Catalog(release, record.id, tuple(rows[record.id])).to_dict())
        )
        for path, page in renderer.firmware_pages(record, rows[record.id]):
            tree.write(path, page)
    hosts = cast("list[dict[str, Any]]", publication["host_stacks"])
    counts = Counts(expansion.entries, len(expansion.groups), len(firmware))
    for path, page in (renderer.home(counts, rows, hosts), renderer.search([h["id"] for h in hosts])):
        tree.write(path, page)
    if site.changes is not None:
        write_changes(tree, renderer, site, rows)
    for path, data in assets:
        tree.write(path, data)


def write_changes(tree: Tree, renderer: Renderer, site: Site, rows: Mapping[str, Sequence[CatalogRow]]) -> None:
    """Write ``changes.json`` and its page, for a release that names its previous one.

    Args:
        tree: the publication being written.
        renderer: renders the page.
        site: the release facts, with the changes.
        rows: firmware id -> its catalog rows, which name the configurations on the page.

    Raises:
        SevrefError: the document fails its schema or the page fails to render.
    """
    if site.changes is None:
        return
    data = site.changes.to_dict()
    check_document("changes", data, "changes.json")
    tree.write("changes.json", canonical(data))
    tree.write(*renderer.changes_page(rows))


def check_tree(tree: Tree) -> None:
    """Validate every written JSON file against its schema, reading it back from disk.

    Args:
        tree: the publication written.

    Raises:
        LayoutError: a file fails its schema.
    """
    for ref in tree.files:
        if not ref.path.endswith(".json"):
            continue  # pages and assets: rendered from the checked records
        kind = ref.path.split("/", 1)[0].removesuffix(".json")
        if kind == "groups":
            continue  # every record was checked as it was produced; see _compute
        data = json.loads((tree.root / ref.path).read_bytes())
        check_document(kind, data, ref.path)


def sign_publication(tree: Tree, signer: Signer, chain: Sequence[bytes], index: Index) -> None:
    """Write index.dsse.json, the key chain, the in-toto statement and a .sig beside every JSON file.

    Pages and assets get no .sig of their own: the signed index pins them, as
    the in-toto statement does.

    Args:
        tree: the publication, with its ``index.json`` written.
        signer: the release key.
        chain: the publisher's key chain (DSSE keys documents, oldest first).
        index: the index that ``index.json`` holds.
    """
    index_bytes = (tree.root / "index.json").read_bytes()
    index_sha256 = hashlib.sha256(index_bytes).hexdigest()
    tree.write_unlisted("index.dsse.json", canonical(envelope(index_bytes, INDEX_PAYLOAD_TYPE, [signer])))
    for version, document in enumerate(chain, start=1):
        tree.write_unlisted(f"keys/{version}.dsse.json", document)
    subjects = [(f.path, f.sha256) for f in index.files] + [("index.json", index_sha256)]
    predicate = {
        "release": index.release.to_dict(),
        "issued": index.to_dict()["issued"],
        "expires": index.to_dict()["expires"],
        "index": {"path": "index.json", "sha256": index_sha256},
        "counts": index.counts.to_dict(),
        "calculator": CALCULATOR,
    }
    tree.write_unlisted(
        "attestation.intoto.dsse.json",
        canonical(envelope(statement(subjects, predicate), INTOTO_PAYLOAD_TYPE, [signer])),
    )
    for path in [*(f.path for f in index.files), "index.json"]:
        if path.endswith(".json"):
            tree.write_unlisted(f"{path}.sig", sign_file(signer, (tree.root / path).read_bytes()))
