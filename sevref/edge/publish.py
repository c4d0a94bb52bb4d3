"""Writing a publication: every group computed, written to disk, checked, and signed.

The write phase runs in worker processes for large matrices (in this one for
small ones), each from one frozen :class:`BuildPlan`. A task computes whole
group shards and writes them with their pages; it writes its part of each
firmware's SEV/SEV-ES candidates beside them, and spills its digests into
bucket files. Workers then join the candidates in task order and turn each
bucket into digest shards. The parent keeps what the index and the catalogs
need (each file's path, sha256 and size, each group's catalog row), so its
memory grows with the groups, never with the entries. The signing phase then
writes the envelopes, the key chain, the in-toto statement and the detached
signatures.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

from sevref._resources import resource
from sevref.assemble import firmware_record, group_record, publication_record, release_of
from sevref.binfmt.descriptor import Finding
from sevref.digest import Firmware, Mode, launch_digests
from sevref.errors import RenderError
from sevref.expand import Expansion, Group
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
from sevref.records.files import schema_of, signed_beside
from sevref.render import Renderer, Site
from sevref.serialize import canonical, canonical_frame, canonical_pairs, canonical_rows, canonical_table
from sevref.sign import INDEX_PAYLOAD_TYPE, INTOTO_PAYLOAD_TYPE, Signer, envelope, sign_file, statement
from sevref.validate import check_document, check_group, check_written

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
        self.folders: set[Path] = set()
        self.checked: set[str] = set()  # listed files checked (read back) as they were written: check_tree skips them

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
        target = self._folder(path)
        with target.open("wb") as handle:
            handle.write(data)

    def _folder(self, path: str) -> Path:
        """The file's path, its folder made once (a publication writes thousands of files into a few folders)."""
        target = self.root / path
        if target.parent not in self.folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.folders.add(target.parent)
        return target

    def open(self, path: str, head: bytes, tail: bytes) -> Stream:
        """Start a listed file whose list member grows as it is computed.

        Args:
            path: relative path.
            head: the canonical JSON before the list (see :func:`~sevref.serialize.canonical_frame`).
            tail: the canonical JSON after it.

        Returns:
            The stream.
        """
        return Stream(self, path, self._folder(path), head, tail)


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


class _Spill:
    """Digest -> entry id lines, appended to bucket files of this process (``<bucket>-<pid>``).

    Each worker keeps its files open and flushes them after every task, so
    what a finished task measured is on disk even if the worker is stopped.
    """

    def __init__(self, folder: Path, width: int) -> None:
        self.folder, self.width = folder, width
        self.pending: dict[str, list[str]] = {}
        self.handles: dict[str, TextIO] = {}

    def add(self, digest: str, entry: str) -> None:
        self.pending.setdefault(digest[: self.width], []).append(f"{digest} {entry}\n")

    def flush(self) -> None:
        for bucket, lines in self.pending.items():
            handle = self.handles.get(bucket)
            if handle is None:
                handle = (self.folder / f"{bucket}-{os.getpid()}").open("a", encoding="ascii")
                self.handles[bucket] = handle
            handle.writelines(lines)
            handle.flush()
        self.pending = {}

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()
        self.handles = {}


SPILL_ENTRIES = 100_000
"""About this many digests at most in one spill bucket, which a worker turns into digest shards at once."""


def _bucket_width(layout: Layout, entries: int) -> int:
    """Hex digits that name a spill bucket: one (16 buckets), or two past 16 x SPILL_ENTRIES entries."""
    return min(layout.digests_shard_hex, 1 if entries <= 16 * SPILL_ENTRIES else 2)


@dataclass(frozen=True)
class BuildPlan:
    """Everything a worker needs to compute and write groups, computed once before the workers start."""

    groups: tuple[Group, ...]
    """The groups, by id."""
    firmware: Mapping[str, Firmware]
    """Prepared firmware by id."""
    records: Mapping[str, FirmwareRecord]
    """Each firmware's published record (its package and where it keeps UEFI variables, which groups repeat)."""
    renderer: Renderer
    """Renders each group's page."""
    root: Path
    """The scratch folder the publication is written into."""
    release: Release
    """The release every shard names."""
    layout: Layout
    """The shards' widths."""
    frames: Mapping[str, tuple[bytes, bytes]]
    """Each firmware file's canonical JSON before and after its list of candidates."""
    spill_width: int
    """Hex digits that name a spill bucket of the digest index."""


@dataclass(frozen=True)
class _Computed:
    """One group, ready to write."""

    record: bytes
    """Its canonical, schema-checked record."""
    entries: list[tuple[str, str]]
    """Its entries, by vCPU count: (entry id, digest in hex), as the record has them."""
    page: bytes
    """Its page."""
    row: CatalogRow
    """Its catalog row."""


def _compute(plan: BuildPlan, group: Group) -> _Computed:
    """Compute one group: its checked canonical record, digests, page and catalog row."""
    counts = group.vcpus or (1,)
    by_count = launch_digests(plan.firmware[group.firmware], group.config, counts)
    digests = [by_count[count] for count in counts]
    record = group_record(group, digests, plan.records[group.firmware])
    data = record.to_dict()
    entries = canonical_pairs(data["entries"])  # type: ignore[arg-type]  # [[vcpus, digest]], by record.to_dict
    check_group(data, entries)
    head, tail = canonical_frame({key: value for key, value in data.items() if key != "entries"}, "entries")
    _, page = plan.renderer.entry(record)
    listed = list(zip(record.entry_ids(), (digest for _, digest in record.entries), strict=True))
    return _Computed(head + entries + tail, listed, page, record.catalog_row())


@dataclass(frozen=True)
class _Written:
    """What a task wrote, as the parent needs it: no digest, no record."""

    files: list[FileRef]
    """The files, pages and group shards, in the order written."""
    rows: list[CatalogRow]
    """The catalog row of each group."""
    entries: int
    """Entries measured."""
    candidates: tuple[str, ...]
    """The firmware ids this task wrote SEV/SEV-ES candidates of (see :func:`_fragment`)."""


def _fragment(plan: BuildPlan, ident: str, task: int) -> Path:
    """Where a task keeps its part of a firmware's candidates: canonical rows joined by commas."""
    return plan.root / ".candidates" / ident / f"{task:06d}"


def _write_groups(plan: BuildPlan, spill: _Spill, task: int, start: int, end: int) -> _Written:
    """Compute and write groups[start:end] (whole group shards): shards, pages, candidates, spilled digests."""
    tree = Tree(plan.root)
    rows: list[CatalogRow] = []
    candidates: dict[str, list[tuple[str, str, str]]] = {}
    shard: Stream | None = None
    entries = 0
    for group in plan.groups[start:end]:
        computed = _compute(plan, group)
        name = plan.layout.group_shard(group.id)
        if shard is None or shard.path != f"groups/{name}.json":
            if shard is not None:
                shard.close()
            head, tail = canonical_frame(
                {"schema": SCHEMAS["groups"], "release": plan.release.to_dict(), "shard": name}, "groups"
            )
            shard = tree.open(f"groups/{name}.json", head, tail)
        shard.add(computed.record)
        tree.write(f"entry/{group.id}.html", computed.page)
        rows.append(computed.row)
        listed = candidates.setdefault(group.firmware, []) if group.mode in (Mode.SEV, Mode.SEV_ES) else None
        for ident, text in computed.entries:
            spill.add(text, ident)
            if listed is not None:
                listed.append((ident, str(group.mode), text))
        entries += len(computed.entries)
    if shard is not None:
        shard.close()
    spill.flush()
    for ident, items in candidates.items():
        written = canonical_rows(items)
        check_written("firmware", written, f"firmware/{ident}.json")  # its frame: checked once (_firmware_frames)
        path = _fragment(plan, ident, task)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(written[1:-1])  # the items, joined by commas: see _join_candidates
    return _Written(tree.files, rows, entries, tuple(candidates))


def _join_candidates(plan: BuildPlan, _spill: _Spill, ident: str, tasks: Sequence[int]) -> FileRef:
    """Write firmware/<id>.json from the candidates each task wrote, in task order (each part checked)."""
    tree = Tree(plan.root)
    head, tail = plan.frames[ident]
    stream = tree.open(f"firmware/{ident}.json", head, tail)
    for task in tasks:
        path = _fragment(plan, ident, task)
        stream.add(path.read_bytes())
        path.unlink()
    stream.close()
    return tree.files[0]


def _write_digests(plan: BuildPlan, _spill: _Spill, bucket: str) -> list[FileRef]:
    """Write the digest shards of one spill bucket, each checked as written."""
    tree = Tree(plan.root)
    shards: dict[str, dict[str, list[str]]] = {}
    shard_of = plan.layout.digest_shard
    for spilled in sorted((plan.root / ".digests").glob(f"{bucket}-*")):
        words = iter(spilled.read_text(encoding="ascii").split())
        for digest, entry in zip(words, words, strict=True):  # "<digest> <entry id>" lines
            shards.setdefault(shard_of(digest), {}).setdefault(digest, []).append(entry)
        spilled.unlink()
    release = plan.release.to_dict()
    for name in sorted(shards):
        table = shards.pop(name)
        for entries in table.values():
            entries.sort()
        path = f"digests/{name}.json"
        frame = {"schema": SCHEMAS["digests"], "release": release, "shard": name}
        written = canonical_table(table)
        check_document("digests", {**frame, "digests": {}}, path, written)
        head, tail = canonical_frame(frame, "digests")
        tree.write(path, head + written + tail)  # canonical() of the whole document, from its parts
    return tree.files


# A worker process's plan and spill. A pool's initializer receives the plan once
# per worker (with the fork start method it is inherited, not pickled) and keeps
# it here; the parent never sets it.
_worker: tuple[BuildPlan, _Spill] | None = None


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when the build process dies, however it dies.

    A build killed with SIGKILL runs no clean-up: without this its workers would
    finish their tasks into the abandoned scratch folder, while the next build
    clears it away. Linux's ``prctl(PR_SET_PDEATHSIG)`` (prctl(2)); elsewhere
    workers outlive their task at worst.
    """
    try:
        import ctypes  # noqa: PLC0415  # only in workers, only on Linux

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the build died before the request took effect
        os._exit(1)


def _start_worker(plan: BuildPlan, parent: int) -> None:
    """Pool initializer: die with the build, keep the plan, and open this worker's spill of the digest index."""
    global _worker  # noqa: PLW0603  # one plan per worker process, set once by the pool
    _die_with(parent)
    _worker = (plan, _Spill(plan.root / ".digests", plan.spill_width))


def _call_in_worker(call: tuple[Callable[..., Any], tuple[Any, ...]]) -> Any:
    """Run one task in a worker process, with the plan and spill the pool gave it."""
    if _worker is None:  # pragma: no cover - the pool's initializer always ran
        raise RuntimeError("worker started without a build plan")
    function, args = call
    return function(*_worker, *args)


class _Workers:
    """Runs tasks in worker processes, or in this one: the same functions, the same files."""

    def __init__(self, plan: BuildPlan, workers: int) -> None:
        self.plan, self.spill = plan, _Spill(plan.root / ".digests", plan.spill_width)
        self.pool = (
            multiprocessing.get_context("fork").Pool(workers, initializer=_start_worker, initargs=(plan, os.getpid()))
            if workers > 1
            else None
        )

    def map(self, function: Callable[..., Any], calls: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
        """Results of ``function(plan, spill, *args)`` for each args, in order."""
        if self.pool is None:
            return (function(self.plan, self.spill, *args) for args in calls)
        return self.pool.imap(_call_in_worker, ((function, args) for args in calls))

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
        self.spill.close()


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


TASK_ENTRIES = 16_384
"""A task is whole group shards of at least about this many entries (fewer tasks: fewer, larger writes)."""


def _tasks(plan: BuildPlan) -> list[tuple[int, int, int]]:
    """(task, start, end): consecutive whole group shards of about :data:`TASK_ENTRIES` entries each."""
    tasks: list[tuple[int, int, int]] = []
    start = entries = 0
    groups, layout = plan.groups, plan.layout
    for index, group in enumerate(groups):
        if entries >= TASK_ENTRIES and layout.group_shard(group.id) != layout.group_shard(groups[index - 1].id):
            tasks.append((len(tasks), start, index))
            start, entries = index, 0
        entries += len(group.vcpus) or 1
    if groups:
        tasks.append((len(tasks), start, len(groups)))
    return tasks


def _write_parallel(tree: Tree, plan: BuildPlan, workers: _Workers, meter: _Progress) -> dict[str, list[CatalogRow]]:
    """Compute and write every group, then the candidates and the digest shards; list the files in ``tree``."""
    catalog: dict[str, list[CatalogRow]] = {ident: [] for ident in plan.records}
    parts: dict[str, list[int]] = {ident: [] for ident in plan.records}
    (plan.root / ".digests").mkdir()
    tasks = _tasks(plan)
    for (task, start, end), written in zip(tasks, workers.map(_write_groups, tasks), strict=True):
        tree.files.extend(written.files)
        for group, row in zip(plan.groups[start:end], written.rows, strict=True):
            catalog[group.firmware].append(row)
        for ident in written.candidates:
            parts[ident].append(task)
        meter.step(written.entries)
    workers.spill.close()
    for ident, ref in zip(parts, workers.map(_join_candidates, parts.items()), strict=True):
        tree.files.append(ref)
        if parts[ident]:
            tree.checked.add(ref.path)  # every part was checked as written; see _write_groups
    width = plan.spill_width
    for refs in workers.map(_write_digests, [(f"{n:0{width}x}",) for n in range(16**width)]):
        tree.files.extend(refs)
        tree.checked.update(ref.path for ref in refs)
    shutil.rmtree(plan.root / ".digests")
    shutil.rmtree(plan.root / ".candidates", ignore_errors=True)
    return catalog


def _firmware_frames(
    manifest: Manifest, firmware: Mapping[str, Firmware], found: Mapping[str, Finding], release: Release
) -> tuple[list[FirmwareRecord], dict[str, tuple[bytes, bytes]]]:
    """Each firmware's record, and its file's canonical JSON around the candidates, checked once.

    Each task then checks only the candidates it writes (:func:`~sevref.validate.check_written`).
    """
    records: list[FirmwareRecord] = []
    frames: dict[str, tuple[bytes, bytes]] = {}
    for ident, fw in firmware.items():
        record = firmware_record(manifest.firmware[ident], fw, hashlib.sha384(fw.data).digest(), found.get(ident))
        records.append(record)
        frames[ident] = head, tail = canonical_frame(
            {"schema": SCHEMAS["firmware"], "release": release.to_dict(), "firmware": record.to_dict()}, "candidates"
        )
        check_document("firmware", json.loads(head + b"[]" + tail), f"firmware/{ident}.json")
    return records, frames


def write_publication(
    tree: Tree,
    manifest: Manifest,
    expansion: Expansion,
    firmware: Mapping[str, Firmware],
    found: Mapping[str, Finding],
    *,
    site: Site,
    jobs: int | None,
    progress: TextIO | None,
) -> None:
    """Compute every group and write groups/, digests/, firmware/, catalog/, publication.json and the pages.

    Workers (or this process, for small matrices) compute and write whole
    group shards with their pages, then join each firmware's candidates and
    write the digest shards; this process keeps what the index and the
    catalogs need: each file's path, hash and size, and each group's catalog row.

    Args:
        tree: the publication being written.
        manifest: the manifest.
        expansion: its groups.
        firmware: the prepared firmware by id (those the matrices use).
        found: what each firmware's package says about its file, by id.
        site: the release facts every page shows.
        jobs: worker processes (None: all cores, up to 8, for large matrices).
        progress: where to show progress when it is a terminal.

    Raises:
        SevrefError: a record fails its schema or a page fails to render.
    """
    release = release_of(manifest.publication)
    layout = Layout.for_counts(len(expansion.groups), expansion.entries)
    records, frames = _firmware_frames(manifest, firmware, found, release)
    templates, assets = site_sources()
    renderer = Renderer(templates, site, records)
    plan = BuildPlan(
        expansion.groups,
        firmware,
        {record.id: record for record in records},
        renderer,
        tree.root,
        release,
        layout,
        frames,
        _bucket_width(layout, expansion.entries),
    )
    entries = expansion.entries
    count = jobs if jobs is not None else (min(os.cpu_count() or 1, MAX_WORKERS) if entries >= PARALLEL_ENTRIES else 1)
    meter = _Progress(progress, entries)
    workers = _Workers(plan, count)
    try:
        catalog = _write_parallel(tree, plan, workers, meter)
    finally:
        workers.stop()
        meter.end()
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
        kind = schema_of(ref.path)
        if kind is None:
            continue  # pages and assets: rendered from the checked records
        if kind == "groups" or ref.path in tree.checked:
            continue  # every record was checked as it was produced (see _compute); the others as written
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
        if signed_beside(path):
            tree.write_unlisted(f"{path}.sig", sign_file(signer, (tree.root / path).read_bytes()))
