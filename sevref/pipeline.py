"""The build's composition: manifests to a checked, signed publication, atomically.

``sevref build`` and ``sevref validate`` run these stages in order::

    load_manifest ─▶ Sources (pinned inputs) ─▶ expand ─▶ write_publication
                  ─▶ index ─▶ check_tree ─▶ sign_publication ─▶ install

``sevref sign`` signs a publication built unsigned, as the build would have::

    read_written (every file checked) ─▶ rewrite (pages with the key) ─▶ index ─▶ check_tree
                  ─▶ sign_publication ─▶ install

Files are read and written only by the edge (:mod:`sevref.edge`); this module
decides what happens in which order. The verifier's composition is
:mod:`sevref.verifier`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sevref import strictjson
from sevref.assemble import Shadow, entry_states, firmware_nvram, release_of, revoked_entries, shadows
from sevref.binfmt.descriptor import Finding
from sevref.corim import DEFAULT_PROFILE, PROFILES, SEV_PROFILE, corim_bytes
from sevref.digest import Firmware
from sevref.edge.files import check_out, install, locked_scratch, read_bytes
from sevref.edge.publish import Tree, check_tree, sign_publication, write_publication
from sevref.edge.remote import reader
from sevref.edge.signing import read_written, rewrite
from sevref.edge.sources import Sources
from sevref.errors import ConfigError, FirmwareFormatError, JSONFormatError
from sevref.expand import AxisReport, Expansion, expand
from sevref.export import accepted
from sevref.history import Changes, Snapshot, compare
from sevref.keychain import first_document, verify_chain
from sevref.limits import (
    DEFAULT_MAX_ENTRIES,
    DOWNLOAD_SECONDS,
    MAX_BOOT_FILE_BYTES,
    MAX_FIRMWARE_BYTES,
    MAX_INDEX_ENVELOPE_BYTES,
    MAX_MANIFEST_BYTES,
)
from sevref.manifest.loader import parse_yaml
from sevref.manifest.model import Manifest
from sevref.manifest.reader import load_manifests
from sevref.records import CALCULATOR, Counts, FileRef, Index, Layout, Previous, Release, Signing
from sevref.render import Site
from sevref.serialize import canonical
from sevref.sign import Signer
from sevref.trust import TrustedPublication
from sevref.validate import check_document
from sevref.values import format_time, parse_time

__all__ = [
    "BuildSummary",
    "Prepared",
    "SignSummary",
    "build",
    "issue_time",
    "load_manifest",
    "prepare",
    "release_chain",
    "sign",
]


def load_manifest(paths: Sequence[Path]) -> Manifest:
    """Read, parse and check manifest files.

    Args:
        paths: the files, in the order given.

    Returns:
        The merged manifest.

    Raises:
        SevrefError: a file cannot be read, or a problem in the manifests.
    """
    if not paths:
        raise ConfigError("expected at least one manifest file")
    documents = []
    for path in paths:
        data = read_bytes(path, "manifest", MAX_MANIFEST_BYTES)
        documents.append(parse_yaml(data, str(path), path.parent))
    return load_manifests(documents)


@dataclass(frozen=True)
class Prepared:
    """A manifest with its inputs read and checked, and its expansion."""

    manifest: Manifest
    """The manifest."""
    firmware: Mapping[str, Firmware]
    """Prepared firmware by id (those the matrices use)."""
    expansion: Expansion
    """The groups."""
    found: Mapping[str, Finding]
    """What each prepared firmware's package says about its file (its QEMU firmware descriptor), by id."""


def prepare(
    paths: Sequence[Path],
    cache: Path,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    allow: Sequence[Path] = (),
    download_seconds: float = DOWNLOAD_SECONDS,
) -> Prepared:
    """Load manifests, read and check every pinned input, and expand the matrix.

    This is all of ``sevref build`` except computing and writing, and what
    ``sevref validate`` runs.

    Args:
        paths: the manifest files.
        cache: where downloaded packages go.
        max_entries: refuse larger matrices.
        allow: folders outside the manifests' own that may hold their files.
        download_seconds: the deadline of each download a manifest's URL asks for.

    Returns:
        The prepared publication.

    Raises:
        SevrefError: the first problem found.
    """
    manifest = load_manifest(paths)
    sources = Sources(cache, allow, download_seconds)
    used = {fw for matrix in manifest.matrices for fw in matrix.firmware}
    firmware: dict[str, Firmware] = {}
    found: dict[str, Finding] = {}
    for ident, spec in manifest.firmware.items():
        if ident in used:
            try:  # the image, or its package's descriptors, may be damaged
                data, found[ident] = sources.read_firmware(spec.source, f"firmware {ident}", MAX_FIRMWARE_BYTES)
                firmware[ident] = Firmware.from_bytes(data)
            except FirmwareFormatError as error:
                raise FirmwareFormatError(f"{spec.origin}: firmware {ident}: {error.diagnostic()}") from error
            firmware_nvram(spec, firmware[ident].info, found[ident])  # a stated nvram the image contradicts stops here
    for boot in manifest.boots.values():
        for source, what in ((boot.kernel, "kernel"), (boot.initrd, "initrd")):
            if source is not None:
                sources.read(source, f"boot {boot.id} {what}", MAX_BOOT_FILE_BYTES)
    expansion = expand(manifest, {ident: fw.info for ident, fw in firmware.items()}, max_entries, found=found)
    return Prepared(manifest, firmware, expansion, found)


def issue_time(manifest: Manifest, flag: str | None) -> str:
    """The release's issue time: the manifest's, ``--issued``, or SOURCE_DATE_EPOCH.

    sevref never reads the clock unless asked to with ``--issued now``.

    Args:
        manifest: the manifest.
        flag: the ``--issued`` value, if given.

    Returns:
        RFC 3339 UTC.

    Raises:
        ConfigError: no time given, or a malformed one.
    """
    if manifest.publication.issued is not None:
        if flag is not None:
            raise ConfigError(f"--issued: the manifest already sets issued {manifest.publication.issued}")
        return manifest.publication.issued
    if flag == "now":
        return format_time(datetime.now(UTC))
    if flag is not None:
        return format_time(parse_time(flag))
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        if not epoch.isdigit():
            raise ConfigError(f"SOURCE_DATE_EPOCH: expected seconds since 1970, found {epoch!r}")
        return format_time(datetime.fromtimestamp(int(epoch), UTC))
    raise ConfigError(
        "no issue time: set publication.issued in the manifest, pass --issued TIME (or --issued now), "
        "or set SOURCE_DATE_EPOCH; sevref does not read the clock on its own"
    )


def release_chain(signer: Signer | None, keys: Sequence[bytes], publisher: str) -> list[bytes]:
    """The key chain to publish: the given one, checked, or one document naming the signer.

    Args:
        signer: the release key, if the release is signed.
        keys: the publisher's key chain (``--keys``), oldest first.
        publisher: the manifest's publisher id.

    Returns:
        The chain (empty for an unsigned release).

    Raises:
        SevrefError: a chain without a signer, a broken chain, another publisher's
            chain, or a signer the chain does not list as active.
    """
    if signer is None:
        if keys:
            raise ConfigError("--keys needs --signing-key: a key chain is published only with a signed release")
        return []
    if not keys:
        return [first_document(publisher, signer)]
    verify_chain(keys).require_signer(signer.keyid, publisher, "--signing-key")
    return list(keys)


def _key_facts(signer: Signer, chain: Sequence[bytes]) -> dict[str, object]:
    """What the pages say about the release key: its id, algorithm, chain version, label and PEM."""
    entry = verify_chain(chain).entry(signer.keyid)
    return {
        "keyid": signer.keyid,
        "algorithm": str(signer.algorithm),
        "keys_version": len(chain),
        "label": None if entry is None else entry.label,
        "public_pem": signer.public_pem().decode("ascii"),
    }


@dataclass(frozen=True)
class BuildSummary:
    """What a build produced."""

    out: Path
    """The publication's folder."""
    counts: Counts
    """Entries, groups and firmware builds published."""
    files: int
    """Files written: the index, what it lists, and the signatures."""
    size: int
    """Bytes written."""
    seconds: float
    """Wall time."""
    reports: tuple[AxisReport, ...]
    """Per-matrix axis sizes."""
    largest: tuple[str, int]
    """The largest file and its size."""
    pages: int
    """HTML pages of the site."""
    largest_page: tuple[str, int]
    """The largest page and its size."""
    index_sha256: str = ""
    """The SHA-256 of ``index.json`` (what ``sevref sign --index-sha256`` checks)."""
    keyid: str | None = None
    """The key that signed it, or None: unsigned."""
    shadows: tuple[Shadow, ...] = ()
    """The revocations that also block entries they do not name (the same digest), in the manifest's order."""
    deprecated: tuple[str, ...] = ()
    """Each use of a deprecated manifest field (:attr:`Manifest.warnings <sevref.manifest.model.Manifest.warnings>`)."""

    @classmethod
    def of(
        cls,
        out: Path,
        tree: Tree,
        counts: Counts,
        reports: tuple[AxisReport, ...],
        seconds: float,
        keyid: str | None = None,
        blocked: tuple[Shadow, ...] = (),
        deprecated: tuple[str, ...] = (),
    ) -> BuildSummary:
        """Summarise a written publication.

        Args:
            out: where it was installed.
            tree: what was written.
            counts: what it covers.
            reports: the expansion's axis reports.
            seconds: how long the build took.
            keyid: the key that signed it, if any.
            blocked: the revocations that also block entries they do not name.
            deprecated: each use of a deprecated manifest field.

        Returns:
            The summary.
        """
        largest = max(tree.files, key=lambda f: f.size)
        pages = [f for f in tree.files if f.path.endswith(".html")]
        page = max(pages, key=lambda f: f.size)
        return cls(
            out=out,
            counts=counts,
            files=len(tree.files) + len(tree.unlisted),
            size=sum(f.size for f in tree.files) + sum(size for _, size in tree.unlisted),
            seconds=seconds,
            reports=reports,
            largest=(largest.path, largest.size),
            pages=len(pages),
            largest_page=(page.path, page.size),
            index_sha256=next(f.sha256 for f in tree.files if f.path == "index.json"),
            keyid=keyid,
            shadows=blocked,
            deprecated=deprecated,
        )


def build(
    paths: Sequence[Path],
    out: Path,
    *,
    cache: Path,
    jobs: int | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    issued: str | None = None,
    serial: int | None = None,
    progress: TextIO | None = None,
    signer: Signer | None = None,
    keys: Sequence[bytes] = (),
    allow: Sequence[Path] = (),
    download_seconds: float = DOWNLOAD_SECONDS,
    previous: Snapshot | None = None,
    allow_removal: bool = False,
) -> BuildSummary:
    """Build a publication from manifests into ``out``, atomically.

    Everything is written into a temporary folder next to ``out`` and swapped into place at the end, so
    ``out`` always holds either the previous publication or the new one, complete. A lock next to ``out``
    keeps two builds from writing it at once.

    Args:
        paths: the manifest files.
        out: the publication's folder.
        cache: where downloaded packages go.
        jobs: worker processes (default: all cores for large matrices).
        max_entries: refuse larger matrices.
        issued: ``--issued`` (a time or ``now``), if given.
        serial: ``--serial``: the release's serial in place of the manifest's, if given.
        progress: where to show progress when it is a terminal.
        signer: the release key; without one the publication is unsigned.
        keys: the publisher's key chain (DSSE keys documents, oldest first);
            without one a chain of one document naming ``signer`` is made.
        allow: folders outside the manifests' own that may hold their files.
        download_seconds: the deadline of each download a manifest's URL asks for.
        previous: the release this one follows (``--previous``), named by the index; adds ``changes.json``.
        allow_removal: accept entries active in ``previous`` that this release drops silently.

    Returns:
        The summary.

    Raises:
        SevrefError: any problem; ``out`` is then untouched.
    """
    started = time.monotonic()
    check_out(out)  # before any work: a wrong --out is found at once
    prepared = prepare(paths, cache, max_entries, allow, download_seconds)
    manifest, expansion = prepared.manifest, prepared.expansion
    if serial is not None:
        manifest = replace(manifest, publication=replace(manifest.publication, serial=serial))
    chain = release_chain(signer, keys, manifest.publication.publisher_id)
    site = _site(manifest, issue_time(manifest, issued), None if signer is None else _key_facts(signer, chain))
    counts = Counts(expansion.entries, len(expansion.groups), len(prepared.firmware))
    if previous is not None:  # the release it follows: named by the index, and what changed since
        site = replace(site, changes=_changes(previous, prepared, site, counts, allow_removal))
    link = None if previous is None else Previous(previous.index.release.serial, previous.index_sha256)
    with locked_scratch(out) as scratch:
        tree = Tree(scratch)
        write_publication(
            tree, manifest, expansion, prepared.firmware, prepared.found, site=site, jobs=jobs, progress=progress
        )
        blocked = _shadows(tree, manifest, expansion)
        signing = None if signer is None else Signing(signer.keyid, str(signer.algorithm), len(chain))
        if signer is not None and signing is not None:
            _write_corims(tree, _index(site, counts, _listed(tree), signing, link), signer)
        index = _write_index(tree, site, counts, signing, link)
        _check_successor(out, (tree.root / "index.json").read_bytes())
        check_tree(tree)
        if signer is not None:
            sign_publication(tree, signer, chain, index)
        install(scratch, out)
    keyid = None if signer is None else signer.keyid
    return BuildSummary.of(
        out, tree, counts, expansion.reports, time.monotonic() - started, keyid, blocked, manifest.warnings
    )


def _site(manifest: Manifest, issued: str, signing: dict[str, object] | None) -> Site:
    """The release facts every page shows."""
    pub = manifest.publication
    issued_at, expires = (parse_time(t) for t in pub.validity(issued))
    return Site(
        release=release_of(pub),
        publisher_name=pub.publisher_name,
        contact=pub.contact,
        url=pub.url,
        description=pub.description,
        issued=issued_at,
        expires=expires,
        signing=signing,
        calculator=CALCULATOR,
    )


def _shadows(tree: Tree, manifest: Manifest, expansion: Expansion) -> tuple[Shadow, ...]:
    """The entries each revocation blocks besides its own, from the digest tables just written."""
    revoked = revoked_entries(expansion.groups)
    if not revoked:
        return ()

    def tables() -> Iterator[Mapping[str, Sequence[str]]]:
        for ref in tree.files:
            if ref.path.startswith("digests/"):
                yield strictjson.loads((tree.root / ref.path).read_bytes(), ref.path)["digests"]

    return shadows(revoked, tables(), manifest.lifecycle)


def _changes(previous: Snapshot, prepared: Prepared, site: Site, counts: Counts, allow_removal: bool) -> Changes:
    """What changed since the previous release; refuses a serial that does not rise and silent removals."""
    old, new = previous.index.release, site.release
    if (old.publisher, old.product, old.stream) != (new.publisher, new.product, new.stream):
        raise ConfigError(
            f"--previous is {old.publisher}/{old.product}/{old.stream}; this build is "
            f"{new.publisher}/{new.product}/{new.stream}: a release follows one of its own stream"
        )
    if new.serial <= old.serial:
        raise ConfigError(
            f"--previous is serial {old.serial}; this build is serial {new.serial}: expected a higher serial "
            f"(raise the manifest's serial above {old.serial})"
        )
    provisional = _index(site, counts, files=())  # the fields a history compares; the files are not written yet
    snapshot = Snapshot(
        index=provisional,
        index_sha256="",
        description=prepared.manifest.publication.description,
        firmware={ident: fw.sha256.hex() for ident, fw in prepared.firmware.items()},
        host_stacks=tuple(sorted(prepared.manifest.host_stacks)),
        groups={group.id: entry_states(group) for group in prepared.expansion.groups},
    )
    changes = compare(previous, snapshot)
    silent = changes.silent_removals
    if silent and not allow_removal:
        count = sum(change.count for change in silent)
        raise ConfigError(
            f"--previous: {count} entries active in serial {old.serial} are gone from serial {new.serial} without "
            f"a lifecycle rule deprecating or revoking them first (first: {silent[0].where()}); revoke them in a "
            "release first, or give --allow-removal"
        )
    return changes


def _index(
    site: Site,
    counts: Counts,
    files: tuple[FileRef, ...],
    signing: Signing | None = None,
    previous: Previous | None = None,
) -> Index:
    """The index of a release: its site's facts, its counts and layout, and the files given."""
    return Index(
        release=site.release,
        publisher_name=site.publisher_name,
        contact=site.contact,
        url=site.url,
        issued=site.issued,
        expires=site.expires,
        counts=counts,
        layout=Layout.for_counts(counts.groups, counts.entries),
        files=files,
        signing=signing,
        previous=previous,
    )


def _listed(tree: Tree) -> tuple[FileRef, ...]:
    """The files written so far, as the index lists them."""
    return tuple(sorted(tree.files, key=lambda f: f.path))


CORIMS = {"corim/sev-snp.corim": DEFAULT_PROFILE, "corim/sev.corim": SEV_PROFILE}
"""The signed CoRIMs a signed publication carries (issue 24), by path: the profile of each.

A profile with no acceptable entry (no active SEV-SNP entry, say) gets no file."""


def _write_corims(tree: Tree, provisional: Index, signer: Signer) -> None:
    """Write the publication's own signed CoRIMs of the values a verifier may accept, before its index lists them.

    They are made from the files written so far, read back through the
    verifier's checked reader under an index that lists exactly those files
    (the final index lists the CoRIMs too), and signed by the release key, as
    ``sevref export --format corim`` makes them from the finished publication.
    """
    files = {ref.path: (ref.sha256, ref.size) for ref in provisional.files}
    written = TrustedPublication(provisional, signer.keyid, 0, None, reader(str(tree.root)), files, verified=False)
    # The groups are read once for every profile, then dropped: a publication can be large.
    values = accepted(written, frozenset().union(*(PROFILES[profile].modes for profile in CORIMS.values())))
    for listed in [p for p in files if p.startswith("groups/")]:
        written.forget(listed)
    for path, profile in CORIMS.items():
        modes = PROFILES[profile].modes
        if any(item.entries for item in values if item.group.mode in modes):
            tree.write(path, corim_bytes(written, signer, profile, values))


def _write_index(
    tree: Tree, site: Site, counts: Counts, signing: Signing | None, previous: Previous | None = None
) -> Index:
    """Write ``index.json``: the release, its validity, every file written so far, and the release it follows."""
    index = _index(site, counts, _listed(tree), signing, previous)
    data = index.to_dict()
    check_document("index", data, "index.json")
    tree.write("index.json", canonical(data))
    return index


@dataclass(frozen=True)
class SignSummary:
    """What ``sevref sign`` did."""

    out: Path
    """The publication's folder."""
    keyid: str
    """The key that signed it."""
    keys_version: int
    """The keys document that lists the key."""
    previous_index_sha256: str
    """The SHA-256 of the ``index.json`` that was read (before signing)."""
    index_sha256: str
    """The SHA-256 of the signed ``index.json``."""
    files: int
    """Files in the signed publication."""


def sign(
    out: Path, signer: Signer, *, keys: Sequence[bytes] = (), resign: bool = False, index_sha256: str | None = None
) -> SignSummary:
    """Sign a publication that ``sevref build`` wrote unsigned, atomically.

    The result is what ``sevref build --signing-key`` writes from the same
    manifests at the same issue time: the pages show the key, the index names
    it, and the envelopes, the key chain, the in-toto statement and the
    ``.sig`` files are added. Every file is checked against the written index
    first; the signed publication is made in a scratch folder beside ``out``
    and swapped into place.

    Args:
        out: the publication's folder.
        signer: the release key.
        keys: the publisher's key chain (DSSE keys documents, oldest first);
            without one a chain of one document naming ``signer`` is made.
        resign: replace the signatures of a publication that is signed already.
        index_sha256: refuse unless the written ``index.json`` has this SHA-256.

    Returns:
        The summary.

    Raises:
        SevrefError: any problem; ``out`` is then untouched.
    """
    if not (out / "index.json").is_file():
        raise ConfigError(f"{out}: no index.json; expected a publication that sevref build wrote")
    with locked_scratch(out) as scratch:
        written = read_written(out, resign=resign, index_sha256=index_sha256)
        old = written.index
        chain = release_chain(signer, keys, old.release.publisher)
        site = Site(
            release=old.release,
            publisher_name=old.publisher_name,
            contact=old.contact,
            url=old.url,
            description=written.description,
            issued=old.issued,
            expires=old.expires,
            signing=_key_facts(signer, chain),
            calculator=written.calculator,
            changes=written.changes,
        )
        tree = Tree(scratch)
        rewrite(written, tree, site)
        signing = Signing(signer.keyid, str(signer.algorithm), len(chain))
        _write_corims(tree, _index(site, old.counts, _listed(tree), signing, old.previous), signer)
        index = _write_index(tree, site, old.counts, signing, old.previous)
        check_tree(tree)
        sign_publication(tree, signer, chain, index)
        install(scratch, out)
    return SignSummary(
        out=out,
        keyid=signer.keyid,
        keys_version=len(chain),
        previous_index_sha256=written.index_sha256,
        index_sha256=next(f.sha256 for f in tree.files if f.path == "index.json"),
        files=len(tree.files) + len(tree.unlisted),
    )


# --------------------------------------------------------------------------- releases never go backwards


def _check_successor(out: Path, new_index: bytes) -> None:
    """Refuse to replace a release of the same stream with an older serial, or the same serial with other bytes.

    A byte-identical rebuild is fine. Verifiers that remember a serial refuse
    whatever comes after it with a lower one or, under the same serial,
    another index; a build that did either would publish what they refuse.
    """
    old_path = out / "index.json"
    if not old_path.is_file():
        return
    old_index = read_bytes(old_path, "index", MAX_INDEX_ENVELOPE_BYTES)
    if old_index == new_index:
        return
    try:
        old = strictjson.loads(old_index, str(old_path))
        old_release = Release.from_dict(old) if isinstance(old, dict) else None
    except (JSONFormatError, KeyError, TypeError) as error:
        raise ConfigError(
            f"--out {out}: its index.json is not a sevref index ({error}); remove it to replace the folder"
        ) from error
    new = Release.from_dict(strictjson.loads(new_index, "index.json"))
    if old_release is None or (old_release.publisher, old_release.product, old_release.stream) != (
        new.publisher,
        new.product,
        new.stream,
    ):
        return  # another stream's publication: replaced as before
    if old_release.serial > new.serial:
        raise ConfigError(
            f"--out {out} holds serial {old_release.serial} of {new.publisher}/{new.product}/{new.stream}; this "
            f"build is serial {new.serial}: refusing to go backwards (raise the manifest's serial above {old_release.serial})"
        )
    if old_release.serial == new.serial and (out / "index.dsse.json").is_file():
        # An unsigned release was never trusted, so no verifier remembers it:
        # signing it by building again under the same serial is fine.
        raise ConfigError(
            f"--out {out} holds serial {old_release.serial} of {new.publisher}/{new.product}/{new.stream} with "
            f"another index.json; this build is serial {new.serial} too: one serial names one release "
            f"(raise the serial to {old_release.serial + 1}, or remove {out} if that release was never published)"
        )
