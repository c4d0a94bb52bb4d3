"""``sevref build`` and ``sevref validate``: manifests to a publication, or just checked."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sevref._cli._common import size
from sevref._cli._signer import add_signer_options, opened_signer
from sevref.limits import DEFAULT_MAX_ENTRIES, DOWNLOAD_SECONDS

if TYPE_CHECKING:
    from sevref._cli._common import Commands
    from sevref.pipeline import BuildSummary

_ALLOW_HELP = "a folder outside the manifests' own from which they may name files (repeatable)"


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    """The options build and validate share: the manifests and where their inputs come from."""
    parser.add_argument("manifests", nargs="+", metavar="MANIFEST", help="YAML manifest files forming one publication")
    parser.add_argument(
        "--max-entries",
        type=int,
        default=DEFAULT_MAX_ENTRIES,
        metavar="N",
        help=f"refuse larger matrices (default {DEFAULT_MAX_ENTRIES})",
    )
    parser.add_argument(
        "--cache", metavar="DIR", help="where downloaded packages are kept (default $SEVREF_CACHE or ~/.cache/sevref)"
    )
    parser.add_argument("--allow-path", action="append", default=[], metavar="DIR", help=_ALLOW_HELP)
    parser.add_argument(
        "--download-timeout",
        type=float,
        default=DOWNLOAD_SECONDS,
        metavar="SECONDS",
        help=f"the longest a download a manifest's url or mirror asks for may take, whole (default {DOWNLOAD_SECONDS:g})",
    )


def register(commands: Commands) -> None:
    """Add ``build`` and ``validate``.

    Args:
        commands: the subcommands of ``sevref``.
    """
    build = commands.add_parser(
        "build",
        help="build a publication from manifests",
        description=(
            "Expand the manifests into every combination, compute each expected digest, validate the "
            "result against the JSON Schemas and write the publication into --out: atomically, so that "
            "--out holds the previous publication until the new one is complete."
        ),
    )
    _add_inputs(build)
    build.add_argument("--out", required=True, metavar="DIR", help="the publication's folder (replaced as a whole)")
    build.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: all cores for large matrices)")
    build.add_argument(
        "--issued",
        metavar="TIME",
        help="issue time, e.g. 2026-11-26T00:00:00Z, or now (default: the manifest's, or SOURCE_DATE_EPOCH)",
    )
    build.add_argument(
        "--serial",
        type=int,
        metavar="N",
        help="the release's serial in place of the manifest's (e.g. a CI pipeline's run number, or a Unix time)",
    )
    add_signer_options(build, required=False, key_help="sign the release with this key")
    build.add_argument(
        "--previous",
        metavar="DIR|URL",
        help="the release this one follows (verified against --keys when given): the index names it, "
        "and changes.json says what changed; a serial that does not rise, or active entries dropped without a "
        "lifecycle rule, are refused",
    )
    build.add_argument(
        "--allow-removal",
        action="store_true",
        help="with --previous: accept entries active there that this release drops without a lifecycle rule",
    )
    build.add_argument(
        "--keys",
        metavar="DIR",
        help="the publisher's key chain (sevref key chain): published with a signed release (default: one document "
        "naming the signing key), and what --previous is verified against, signed or not",
    )
    build.set_defaults(handler=_build)

    validate = commands.add_parser(
        "validate",
        help="check manifests without computing",
        description=(
            "Check manifests against the schema and each other, read and check every pinned input, "
            "and expand the matrix, without computing digests or writing anything."
        ),
    )
    _add_inputs(validate)
    validate.set_defaults(handler=_validate)


def _cache(args: argparse.Namespace) -> Path:
    from sevref.edge.sources import default_cache

    return Path(args.cache) if args.cache else default_cache()


def _deadline(args: argparse.Namespace) -> float:
    from sevref.values import positive_seconds

    return positive_seconds(args.download_timeout, "--download-timeout")


def _build(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.api import build, check_build_options

    check_build_options(
        jobs=args.jobs,
        serial=args.serial,
        previous=args.previous,
        allow_removal=args.allow_removal,
        download_seconds=args.download_timeout,
    )
    # A key on a token is opened (and its PIN checked) before anything is computed or forked.
    with opened_signer(args) as signer:
        built = build(
            args.manifests,
            args.out,
            cache=_cache(args),
            signer=signer,
            keys=args.keys,
            issued=args.issued,
            serial=args.serial,
            previous=args.previous,
            allow_removal=args.allow_removal,
            jobs=args.jobs,
            max_entries=args.max_entries,
            allow=args.allow_path,
            download_seconds=args.download_timeout,  # checked above
            progress=sys.stderr,
        )
    summary = built.summary
    for warning in (*summary.deprecated, *(shadow.describe() for shadow in summary.shadows)):
        print(f"sevref: warning: {warning}", file=sys.stderr)
    _print_summary(summary, out)
    if built.previous is not None:
        before = built.previous.index.release
        print(
            f"  follows serial {before.serial} (index.json sha256 {built.previous.index_sha256}, "
            f"{'verified against --keys' if built.previous_verified else 'read UNVERIFIED: no --keys'}); what changed "
            "is in changes.json and changes.html (sevref diff shows it)",
            file=out,
        )
    return 0


def _print_summary(summary: BuildSummary, out: TextIO) -> None:
    counts = summary.counts
    print(
        f"built {counts.entries} entries ({counts.groups} configurations, {counts.firmware} firmware "
        f"build{'s' if counts.firmware != 1 else ''}) into {summary.out} in {summary.seconds:.1f} s",
        file=out,
    )
    for report in summary.reports:
        print(f"  {report.describe()}", file=out)
    path, largest = summary.largest
    page, page_size = summary.largest_page
    print(
        f"  {summary.files} files, {size(summary.size)}; largest {path} ({size(largest)}); "
        f"{summary.pages} pages, largest {page} ({size(page_size)})",
        file=out,
    )
    if summary.shadows:
        blocked = sorted({i for shadow in summary.shadows for i in shadow.blocked})
        first = ", ".join(blocked[:3]) + (", …" if len(blocked) > 3 else "")
        rules = len(summary.shadows)
        print(
            f"  {rules} {'revocation blocks' if rules == 1 else 'revocations block'} {len(blocked)} more "
            f"{'entry' if len(blocked) == 1 else 'entries'} that carry a revoked digest (see the warnings): {first}",
            file=out,
        )
    if summary.keyid is not None:
        print(f"  signed by key {summary.keyid}", file=out)
    else:
        print(
            "  UNSIGNED: verifiers will refuse it (give --signing-key or --pkcs11, or sign it with sevref sign); "
            f"index.json sha256 {summary.index_sha256}",
            file=out,
        )


def _validate(args: argparse.Namespace, out: TextIO) -> int:
    from sevref.pipeline import prepare

    prepared = prepare(
        [Path(p) for p in args.manifests],
        _cache(args),
        args.max_entries,
        [Path(f) for f in args.allow_path],
        _deadline(args),
    )
    expansion = prepared.expansion
    for warning in prepared.manifest.warnings:
        print(f"sevref: warning: {warning}", file=sys.stderr)
    print(f"ok: {expansion.entries} entries in {len(expansion.groups)} configurations", file=out)
    for report in expansion.reports:
        print(f"  {report.describe()}", file=out)
    return 0
