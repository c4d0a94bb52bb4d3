"""The site: HTML pages for people, rendered from the publication's records.

``sevref build`` renders these pages into the same folder as the JSON::

    index.html                 the release: publisher, validity, signing key, firmware, host stacks,
                               downloads and how to verify
    search.html                find a digest (hex or base64) or filter configurations
    firmware/<id>.html         one firmware build and its configurations, 250 a page
    firmware/<id>/<n>.html     the following pages
    entry/<group id>.html      one configuration: every digest by vCPU count (each row's id is
                               the entry id, so ``entry/<group>.html#<entry>`` is its permalink),
                               the ``sevref digest`` command that reproduces it, and what changed
                               in it since the previous release
    changes.html               what changed since the previous release (``changes.json``; only in a
                               release built with ``--previous``)
    assets/sevref.css, .js     style, search and in-browser verification

A 1,000,000-entry publication has a few thousand configurations, so it makes a
few thousand pages, not a million. The pages are listed in the signed index
like every other file: the in-browser check covers the page being read.

Pages are rendered from the records as the build produces them (each group
record checked against its schema first), before the index is written: that is
what lets the signed index pin the pages, so that the in-browser check covers
the page in front of the reader and not only the JSON it loads.

Jinja2 runs with autoescape on, ``StrictUndefined`` and no clock. Templates come
in as text, so this module does no I/O.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import jinja2
import markupsafe
from markupsafe import escape

from sevref.binfmt.vmsa import Vmm
from sevref.digest import Mode
from sevref.errors import RenderError
from sevref.history import Changes, EntryChange
from sevref.hosts.firmware import launch_method
from sevref.ids import entry_id
from sevref.records import CatalogRow, Counts, EntryStatus, FirmwareRecord, GroupRecord, Nvram, Release, State
from sevref.values import format_time

__all__ = ["ROWS_PER_PAGE", "Renderer", "Site", "fetch_commands", "reproduce_argv", "status_label", "vcpus_label"]

ROWS_PER_PAGE = 250
"""Configurations on one firmware page."""
_MODES = ("sev", "sev-es", "sev-snp")


_PLAIN_IDS = re.compile(r"[0-9a-z-]*")
"""Text that HTML shows as it is, in an attribute or an element: what ids and hex digests are made of."""


def _digest_rows(record: GroupRecord) -> str:
    """The rows of an entry page's table of digests, as HTML: one a vCPU count.

    A page can hold thousands of rows, and a large release has millions: the
    rows are formatted here rather than by a template loop (or
    ``Markup.format``), at a fraction of the cost. Ids and digests are escaped
    as they go in, all at once when they are plain, as they always are. Entries
    whose status is not active are marked; a column says each status when
    they differ.

    Args:
        record: the group's record.

    Returns:
        The rows, escaped.
    """
    counts = [count for count, _ in record.entries]
    ids = record.entry_ids()
    digests = [digest for _, digest in record.entries]
    if _PLAIN_IDS.fullmatch("".join(ids) + "".join(digests)) is None:  # never from a checked record: escape each
        ids, digests = [str(escape(i)) for i in ids], [str(escape(d)) for d in digests]
    labels = ["any" if count is None else str(int(count)) for count in counts]
    if record.exceptions:
        statuses = [record.state_at(count).status for count in counts]
        extras = [
            ("" if status is EntryStatus.ACTIVE else f' class="status-{status}"', f"<td>{status}</td>")
            for status in statuses
        ]
    else:
        status = record.status
        extras = [("" if status is EntryStatus.ACTIVE else f' class="status-{status}"', "")] * len(counts)
    return "".join(
        f'<tr id="{e}"{mark}><td><a href="#{e}">{n}</a></td><td><code class="hash">{d}</code></td>{cell}</tr>\n'
        for e, n, d, (mark, cell) in zip(ids, labels, digests, extras, strict=True)
    )


@dataclass(frozen=True)
class Site:
    """What every page shows about the release."""

    release: Release
    """The release identity."""
    publisher_name: str
    """The publisher's name."""
    contact: str
    """Where to report problems."""
    url: str | None
    """Where the publication is hosted."""
    description: str | None
    """What the release is."""
    issued: datetime
    """Issue time."""
    expires: datetime
    """Expiry."""
    signing: Mapping[str, object] | None
    """keyid, algorithm, keys_version, label and public_pem of the release key; None: unsigned."""
    calculator: str
    """The sevref version that computed the digests."""
    changes: Changes | None = None
    """What changed since the previous release (``--previous``), or None: no previous release named."""


def vcpus_label(runs: Sequence[Sequence[int]] | None) -> str:
    """Label vCPU runs for people: ``1–64, 128``.

    Args:
        runs: ``[first, last]`` runs, or None (SEV: not measured).

    Returns:
        The label.
    """
    if runs is None:
        return "any"
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs)


def status_label(row: CatalogRow) -> str:
    """A configuration's lifecycle status for people: its own, and any entries that differ.

    Args:
        row: the configuration's catalog row.

    Returns:
        E.g. ``active`` or ``active; revoked: 2, 8``.
    """
    others = "".join(f"; {status}: {vcpus_label(runs)}" for status, runs in row.exceptions)
    return f"{row.status}{others}"


def _counts_label(counts: Mapping[EntryStatus, int]) -> str:
    """``12 entries``, or ``12 entries (10 active, 2 revoked)`` when not all are active."""
    total = sum(counts.values())
    text = f"{total} entr{'y' if total == 1 else 'ies'}"
    if set(counts) - {EntryStatus.ACTIVE}:
        text += " (" + ", ".join(f"{n} {status}" for status, n in counts.items()) + ")"
    return text


def _tally(rows: Sequence[CatalogRow]) -> dict[EntryStatus, int]:
    """Entries by status over catalog rows, in status order."""
    counts = dict.fromkeys(EntryStatus, 0)
    for row in rows:
        for status, n in row.status_counts().items():
            counts[status] += n
    return {status: n for status, n in counts.items() if n}


def _nvram(record: Nvram) -> dict[str, object]:
    """What the pages say about a firmware's UEFI variables."""
    return {
        "state": str(record.state),
        "stateful": record.state is State.STATEFUL,
        "label": record.label(),
        "explain": record.explain(),
    }


def reproduce_argv(record: GroupRecord, firmware_file: str, vcpus: int | None) -> list[str]:
    """The ``sevref digest`` arguments that recompute one entry of a group.

    Args:
        record: the group's record.
        firmware_file: the firmware's file name.
        vcpus: the entry's vCPU count (None for SEV).

    Returns:
        The argument list, starting with ``sevref``.
    """
    argv = ["sevref", "digest", "--mode", str(record.mode), "--firmware", firmware_file]
    argv += ["--firmware-sha256", record.firmware_sha256]
    if record.vmm != "qemu":
        argv += ["--vmm", record.vmm]
    if record.vmsa_profile is not None:
        argv += ["--vmsa-profile", record.vmsa_profile]
    if record.cpu is not None:
        argv += ["--cpu", record.cpu]
    elif record.cpu_signature is not None:
        argv += ["--cpu-signature", f"{record.cpu_signature:#x}"]
    if record.sev_features is not None:
        argv += ["--sev-features", f"{record.sev_features:#x}"]
    if record.guest_features is not None:
        argv += ["--guest-features", f"{record.guest_features:#x}"]
    if record.boot is not None:
        argv += ["--kernel", "vmlinuz"]
        if record.initrd_sha256 is not None:
            argv += ["--initrd", "initrd.img"]
        if record.cmdline is not None:
            argv += ["--cmdline", record.cmdline]
    if vcpus is not None:
        argv += ["--vcpus", str(vcpus)]
    return argv


def fetch_commands(firmware: FirmwareRecord) -> list[str]:
    """The shell commands that fetch a firmware image the way its manifest does.

    ``apt-get download`` for a package apt knows; for a package or an image
    downloaded from a URL, ``curl`` and a ``sha256sum -c`` of the pin (the
    package's, then ``sevref digest --firmware-sha256`` checks the image's).
    A local file has none: the publisher has it.

    Args:
        firmware: the firmware's record.

    Returns:
        One line per step, quoted for a POSIX shell.
    """
    debian = firmware.debian
    if debian is not None and debian.url is None:
        package = shlex.quote(debian.package)
        return [
            f"apt-get download {shlex.quote(f'{debian.package}={debian.version}')} && dpkg-deb -x {package}_*.deb pkg "
            f"&& cp {shlex.quote('pkg/' + debian.path)} ."
        ]
    if debian is not None and debian.url is not None:
        deb, check = debian.deb_file, f"{debian.deb_sha256}  {debian.deb_file}"
        return [
            f"curl -fL -o {shlex.quote(deb)} {shlex.quote(debian.url)} && echo {shlex.quote(check)} | sha256sum -c "
            f"&& dpkg-deb -x {shlex.quote(deb)} pkg && cp {shlex.quote('pkg/' + debian.path)} ."
        ]
    if firmware.url is not None:
        name = firmware.file_name
        return [
            f"curl -fL -o {shlex.quote(name)} {shlex.quote(firmware.url)} "
            f"&& echo {shlex.quote(f'{firmware.sha256}  {name}')} | sha256sum -c"
        ]
    return []


@functools.lru_cache(maxsize=4)
def _compiled(templates: tuple[tuple[str, str], ...]) -> Mapping[str, jinja2.Template]:
    """The pages' templates compiled, once a process for the same texts (compiling is most of a small build's time).

    Args:
        templates: (template name, text) pairs.

    Returns:
        Each page's template, by page name (compiled templates are immutable: releases share them).

    Raises:
        jinja2.TemplateSyntaxError: a template does not compile.
        jinja2.TemplateNotFound: a page's template, or one it includes, is missing.
    """
    env = jinja2.Environment(
        loader=jinja2.DictLoader(dict(templates)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return MappingProxyType({name: env.get_template(f"{name}.html.j2") for name in _PAGES})


_PAGES = ("index", "search", "firmware", "entry", "changes")
"""The pages' templates, ``NAME.html.j2``."""


class Renderer:
    """Renders the pages of one release."""

    def __init__(self, templates: Mapping[str, str], site: Site, firmware: Sequence[FirmwareRecord]) -> None:
        """Compile the templates.

        Args:
            templates: template name -> text (``base.html.j2``, ``index.html.j2``, ...).
            site: the release facts every page shows.
            firmware: the firmware records, in publication order.

        Raises:
            RenderError: a template does not compile.
        """
        self.site = site
        self.firmware = {record.id: record for record in firmware}
        self.history: dict[str, list[EntryChange]] = {}
        for change in () if site.changes is None else site.changes.entries:
            self.history.setdefault(change.group, []).append(change)
        try:
            self.templates = _compiled(tuple(sorted(templates.items())))
        except jinja2.TemplateSyntaxError as error:
            raise RenderError(f"templates: {error.name}:{error.lineno}: {error.message}") from error
        except jinja2.TemplateNotFound as error:
            raise RenderError(f"templates: {error.name}: not found") from error

    def _page(self, name: str, path: str, **context: object) -> tuple[str, bytes]:
        depth = path.count("/")
        site = self.site
        try:
            text = self.templates[name].render(
                root="../" * depth,
                path=path,
                release=site.release,
                publisher_name=site.publisher_name,
                contact=site.contact,
                site_url=site.url,
                description=site.description,
                issued=format_time(site.issued),
                expires=format_time(site.expires),
                signing=site.signing,
                calculator=site.calculator,
                has_changes=site.changes is not None,
                **context,
            )
        except jinja2.TemplateError as error:
            raise RenderError(f"{path}: {name}.html.j2: {error}") from error
        return path, text.encode("utf-8")

    def entry(self, record: GroupRecord) -> tuple[str, bytes]:
        """The page of one configuration.

        Args:
            record: the group's record.

        Returns:
            (path, bytes).
        """
        firmware = self.firmware[record.firmware]
        rows_html = markupsafe.Markup(_digest_rows(record))  # noqa: S704  # nosec B704: escaped in _digest_rows
        argv = reproduce_argv(record, firmware.file_name, record.entries[0][0])
        steps = [*fetch_commands(firmware), shlex.join(argv)]
        return self._page(
            "entry",
            f"entry/{record.id}.html",
            g=record.to_dict(),
            first={"id": entry_id(record.id, record.entries[0][0]), "vcpus": record.entries[0][0]},
            rows_html=rows_html,
            status_column=bool(record.exceptions),
            exceptions=[
                {"vcpus": vcpus_label(e.vcpus), "status": str(e.state.status), "describe": e.state.describe()}
                for e in record.exceptions
            ],
            nvram=_nvram(record.firmware_nvram),
            launch=launch_method(Vmm(record.vmm), record.mode, firmware.descriptor),
            reproduce="\n".join(steps),
            history=self._entry_history(record.id),
        )

    def _entry_history(self, group: str) -> list[str]:
        """What the previous release shows of a configuration's entries: when they appeared, how their status moved."""
        changes = self.site.changes
        if changes is None:
            return []
        serial, before = changes.release.serial, changes.previous.release.serial
        if group in changes.configurations_added:
            return [f"First published in serial {serial} (this release): serial {before} did not have it."]
        lines = []
        for change in self.history.get(group, ()):
            which = "The entry" if change.vcpus is None else f"{vcpus_label(change.vcpus)} vCPUs"
            if change.old is None:
                lines.append(f"{which}: first published in serial {serial} (this release).")
            elif change.new is not None:
                lines.append(
                    f"{which}: {change.old.describe()} in serial {before}; {change.new.describe()} since serial {serial}."
                )
            else:
                lines.append(f"{which}: removed in serial {serial} (was {change.old.describe()}).")
        return lines

    def changes_page(self, firmware_rows: Mapping[str, Sequence[CatalogRow]]) -> tuple[str, bytes]:
        """The page of what changed since the previous release (``changes.html``).

        Args:
            firmware_rows: firmware id -> its catalog rows (what names each configuration for people).

        Returns:
            (path, bytes).

        Raises:
            RenderError: the release names no previous one.
        """
        changes = self.site.changes
        if changes is None:
            raise RenderError("changes.html: the release names no previous release")
        removed_groups, silent = set(changes.configurations_removed), set(changes.silent_removals)
        labels = {
            row.id: ", ".join(
                [f"{row.mode} on {ident}", row.host_stack]
                + ([row.cpu or f"{row.cpu_signature:#x}"] if row.cpu_signature is not None else [])
                + ([f"boot {row.boot}"] if row.boot else [])
            )
            for ident, rows in firmware_rows.items()
            for row in rows
        }

        def item(change: EntryChange) -> dict[str, object]:
            """What the page says of one line of entries."""
            return {
                "group": change.group,
                "label": labels.get(change.group),
                "vcpus": None if change.vcpus is None else vcpus_label(change.vcpus),
                "count": change.count,
                "page": change.group not in removed_groups,
                "old": None if change.old is None else change.old.describe(),
                "new": None if change.new is None else change.new.describe(),
                "old_status": None if change.old is None else str(change.old.status),
                "new_status": None if change.new is None else str(change.new.status),
                "successor": None if change.new is None else change.new.successor,
                "reason": None if change.new is None else change.new.reason,
                "since": None if change.new is None else change.new.since,
                "silent": change in silent,
            }

        return self._page(
            "changes",
            "changes.html",
            changes=changes,
            previous=changes.previous,
            fields=[f.to_dict() for f in changes.fields if f.field not in ("serial", "release")],
            added=[item(c) for c in changes.added],
            removed=[item(c) for c in changes.removed],
            moved=[item(c) for c in changes.status_changed],
            revoked=[
                item(c) for c in changes.status_changed if c.new is not None and c.new.status is EntryStatus.REVOKED
            ],
        )

    def firmware_pages(self, record: FirmwareRecord, rows: Sequence[CatalogRow]) -> list[tuple[str, bytes]]:
        """The pages of one firmware build.

        Args:
            record: the firmware record.
            rows: its catalog rows, in reading order.

        Returns:
            (path, bytes) of each page.
        """
        ident = record.id

        def page_name(n: int) -> str:
            """Page n's path: the first keeps the plain name, so links to a firmware never break."""
            return f"firmware/{ident}.html" if n == 1 else f"firmware/{ident}/{n}.html"

        shown = [row.to_dict() for row in rows]
        cpus = {row.cpu or ("" if row.cpu_signature is None else f"{row.cpu_signature:#x}") for row in rows}
        choices = {
            "mode": [m for m in _MODES if any(row.mode == m for row in rows)],
            "host": sorted({row.host_stack for row in rows}),
            "cpu": sorted(cpus - {""}),
        }
        pages = max(1, -(-len(rows) // ROWS_PER_PAGE))
        out = []
        for n in range(1, pages + 1):
            first = (n - 1) * ROWS_PER_PAGE
            groups = [
                {
                    **shown[i],
                    "vcpus_label": vcpus_label(row.vcpus),
                    "vcpus_list": " ".join(f"{a}-{b}" for a, b in row.vcpus or ()),
                    "entry_count": row.entry_count,
                    "status_label": status_label(row),
                    "marked": [f"{n} {status}" for status, n in row.status_counts().items() if status != row.status],
                }
                for i, row in enumerate(rows[first : first + ROWS_PER_PAGE], start=first)
            ]
            out.append(
                self._page(
                    "firmware",
                    page_name(n),
                    fw=record.to_dict(),
                    nvram=_nvram(record.nvram),
                    launch={
                        str(mode): launch_method(Vmm.QEMU, mode, record.descriptor)
                        for mode in (Mode.SEV, Mode.SEV_ES, Mode.SEV_SNP)
                    },
                    counts=_counts_label(_tally(rows)),
                    groups=groups,
                    total=len(rows),
                    page=n,
                    pages=pages,
                    page_name=page_name,
                    choices=choices,
                )
            )
        return out

    def home(
        self,
        counts: Counts,
        firmware_rows: Mapping[str, Sequence[CatalogRow]],
        host_stacks: Sequence[Mapping[str, Any]],
    ) -> tuple[str, bytes]:
        """The home page.

        Args:
            counts: entries, groups and firmware of the release.
            firmware_rows: firmware id -> its catalog rows.
            host_stacks: the publication record's host stacks.

        Returns:
            (path, bytes).
        """
        present = {row.mode for rows in firmware_rows.values() for row in rows}
        modes = [mode for mode in _MODES if mode in present]  # only the modes the release has
        firmware = []
        for ident, record in self.firmware.items():
            rows = firmware_rows.get(ident, ())
            tallies = {mode: _tally([r for r in rows if r.mode == mode]) for mode in modes}
            per_mode = {mode: _counts_label(tally) if tally else None for mode, tally in tallies.items()}
            firmware.append(
                {**record.to_dict(), "counts": per_mode, "package": record.package, "nvram_view": _nvram(record.nvram)}
            )
        stateful = [{"id": r.id, **_nvram(r.nvram)} for r in self.firmware.values() if r.nvram.state is State.STATEFUL]
        return self._page(
            "index",
            "index.html",
            counts=counts,
            covers=_counts_label(_tally([row for rows in firmware_rows.values() for row in rows])),
            firmware=firmware,
            stateful=stateful,
            modes=modes,
            host_stacks=host_stacks,
        )

    def search(self, hosts: Sequence[str]) -> tuple[str, bytes]:
        """The search page.

        Args:
            hosts: the host stack ids.

        Returns:
            (path, bytes).
        """
        return self._page("search", "search.html", firmware=list(self.firmware), modes=_MODES, hosts=hosts)
