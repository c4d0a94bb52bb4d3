"""The site's pages as files: what they show, how they escape, how they scale, how they reproduce.

The browser tests (test_site.py) drive the same pages in Chromium; these read the HTML.
"""

from __future__ import annotations

import html
import io
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sevref._cli import main
from sevref.errors import RenderError
from sevref.records import CatalogRow, EntryStatus, GroupRecord, Release, vcpu_runs
from sevref.render import ROWS_PER_PAGE, Renderer, Site, vcpus_label
from sevref.values import parse_time
from tests.test_build import BASE, GOLDEN, groups_of, load, manifest, run

PUBLICATION = GOLDEN / "publication"
ROW = re.compile(
    r'<tr id="([0-9a-f]{20}(?:-[0-9]{4})?)"(?: class="status-([a-z]+)")?><td><a href="#\1">([^<]*)</a></td>'
    r'<td><code class="hash">([0-9a-f]+)</code>'
)
PRE = re.compile(r"<pre><code>(.*?)</code></pre>", re.S)


def page(root: Path, path: str) -> str:
    return (root / path).read_text(encoding="utf-8")


def test_every_group_has_a_page_showing_exactly_its_published_digests() -> None:
    groups = groups_of(PUBLICATION)
    pages = {p.name for p in (PUBLICATION / "entry").iterdir()}
    assert pages == {f"{g['id']}.html" for g in groups}
    for g in groups:
        text = page(PUBLICATION, f"entry/{g['id']}.html")
        rows = ROW.findall(text)
        record = GroupRecord.from_dict(g)
        expected = [
            (
                g["id"] if n is None else f"{g['id']}-{n:04d}",
                "" if record.state_at(n).status is EntryStatus.ACTIVE else str(record.state_at(n).status),
                "any" if n is None else str(n),
                d,
            )
            for n, d in g["entries"]
        ]
        assert rows == expected
        assert f"<code>{g['id']}</code>" in text and g["firmware_sha256"] in text


def test_reproduce_commands_on_the_pages_recompute_every_digest(capsys: pytest.CaptureFixture[str]) -> None:
    files = {
        "tiny.fd": str(GOLDEN / "inputs" / "tiny.fd"),
        "vmlinuz": str(GOLDEN / "inputs" / "vmlinuz"),
        "initrd.img": str(GOLDEN / "inputs" / "initrd.img"),
    }
    checked = 0
    for g in groups_of(PUBLICATION):
        command = html.unescape(PRE.findall(page(PUBLICATION, f"entry/{g['id']}.html"))[-1])
        argv = shlex.split(command)
        assert argv[:2] == ["sevref", "digest"]
        argv = [files.get(a, a) for a in argv[1:]]
        for vcpus, digest in g["entries"]:
            if vcpus is not None:
                argv[argv.index("--vcpus") + 1] = str(vcpus)
            out = io.StringIO()
            assert main(argv, out=out) == 0, (g["id"], argv, capsys.readouterr().err)
            assert out.getvalue().strip() == digest, (g["id"], vcpus)
            checked += 1
    assert checked == 111


def test_firmware_page_lists_every_configuration_with_its_catalog_row() -> None:
    catalog = load(PUBLICATION, "catalog/tiny.json")
    text = page(PUBLICATION, "firmware/tiny.html")
    linked = re.findall(r'<a href="\.\./entry/([0-9a-f]{20})\.html">', text)
    assert linked == [row["id"] for row in catalog["configurations"]]
    assert len(linked) == 35
    groups = {g["id"]: g for g in groups_of(PUBLICATION)}
    assert set(groups) == set(linked)
    for row in catalog["configurations"]:
        g = groups[row["id"]]
        counts = [n for a, b in row["vcpus"] or () for n in range(a, b + 1)]
        assert counts == [n for n, _ in g["entries"] if n is not None]
        assert (row["mode"], row["host_stack"], row["cpu"], row["boot"], row["status"]) == (
            g["mode"],
            g["host_stack"],
            g["cpu"],
            g["boot"],
            g["status"],
        )
        record, catalog_row = GroupRecord.from_dict(g), CatalogRow.from_dict(row)
        assert all(catalog_row.status_at(n) is record.state_at(n).status for n in counts)
    runs = re.findall(r'data-vcpus="([^"]*)"', text)
    assert runs == [" ".join(f"{a}-{b}" for a, b in row["vcpus"] or ()) for row in catalog["configurations"]]
    home = page(PUBLICATION, "index.html")
    covers = "111 entries (102 active, 8 deprecated, 1 revoked) in 35 configurations of 1 firmware build"
    assert "firmware/tiny.html" in home and covers in home
    assert load(PUBLICATION, "index.json")["signing"]["keyid"] in home


HOSTILE = "<script>alert('x')</script> & \"q\""


def test_text_from_manifests_is_escaped_and_shell_quoted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (GOLDEN / "manifest.yaml").read_text(encoding="utf-8")
    shutil.copytree(GOLDEN / "inputs", tmp_path / "inputs")
    text = text.replace(
        "description: Every kind of entry on a synthetic 64 KiB firmware.", f"description: {json.dumps(HOSTILE)}"
    )
    text = text.replace('"console=ttyS0 label=ünïcödé ✓"', json.dumps(f"console=ttyS0 x={HOSTILE} $(reboot)"))
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    assert run(["build", str(path), "--out", str(tmp_path / "site")], capsys)[0] == 0
    site = tmp_path / "site"
    pages = [p for p in site.rglob("*.html")]
    assert len(pages) == 35 + 3
    for p in pages:
        assert "<script>alert" not in p.read_text(encoding="utf-8"), p
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;q&#34;" in page(site, "index.html")
    shown = 0
    for g in groups_of(site):
        if g["cmdline"] and "reboot" in g["cmdline"]:
            command = html.unescape(PRE.findall(page(site, f"entry/{g['id']}.html"))[-1])
            argv = shlex.split(command)
            assert argv[argv.index("--cmdline") + 1] == g["cmdline"]  # one argument, nothing expanded
            shown += 1
    assert shown == 11  # the golden matrix's groups with that command line


def test_firmware_pages_are_paginated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    count = ROWS_PER_PAGE + 20
    cpus = ", ".join(f'"{0xA00F00 + n:#x}"' for n in range(count))
    path = manifest(
        tmp_path, BASE.replace("cpus: [EPYC]", f"cpus: [{cpus}]").replace("vcpus: [1-4]", "vcpus: [1, 4-6]")
    )
    assert run(["build", str(path), "--out", str(tmp_path / "site")], capsys)[0] == 0
    site = tmp_path / "site"
    first, second = page(site, "firmware/fw.html"), page(site, "firmware/fw/2.html")
    assert not (site / "firmware" / "fw" / "3.html").exists()
    assert first.count("<tr data-mode=") == ROWS_PER_PAGE and second.count("<tr data-mode=") == 20
    assert '<a href="../firmware/fw/2.html">2</a>' in first and '<a href="../../firmware/fw.html">1</a>' in second
    assert '<link rel="stylesheet" href="../../assets/sevref.css">' in second
    assert f"Configurations ({count})" in first
    assert "1, 4–6" in first
    listed = {f["path"] for f in load(site, "index.json")["files"]}
    assert {"firmware/fw.html", "firmware/fw/2.html", "catalog/fw.json"} <= listed
    assert len(load(site, "catalog/fw.json")["configurations"]) == count


def test_the_home_page_counts_only_the_modes_the_release_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # BASE publishes SEV-ES only, on firmware that supports all three modes.
    rule = "lifecycle:\n  - match: {vcpus: [2]}\n    status: revoked\n    reason: r\n"
    path = manifest(tmp_path, BASE + rule)
    assert run(["build", str(path), "--out", str(tmp_path / "site")], capsys)[0] == 0
    home = page(tmp_path / "site", "index.html")
    columns = re.findall(r'<th scope="col">([^<]*)</th>', home.split("</thead>")[0])
    assert columns == ["Firmware", "Package", "SHA-256", "UEFI variables", "sev-es"]
    assert "<td>4 entries (3 active, 1 revoked)</td>" in home
    assert "Covers</dt><dd>4 entries (3 active, 1 revoked) in 1 configurations" in home


@given(st.sets(st.integers(1, 4096), min_size=1, max_size=80))
def test_vcpu_runs_cover_exactly_the_counts(counts: set[int]) -> None:
    runs = vcpu_runs(sorted(counts))
    assert {n for a, b in runs for n in range(a, b + 1)} == counts
    assert all(a <= b for a, b in runs)
    assert all(runs[i][1] + 1 < runs[i + 1][0] for i in range(len(runs) - 1))  # maximal runs
    assert vcpus_label(runs).count(",") == len(runs) - 1


def site() -> Site:
    release = Release("p", "q", "s", "1", 1)
    issued, expires = parse_time("2026-01-01T00:00:00Z"), parse_time("2026-02-01T00:00:00Z")
    return Site(release, "P", "c@example.org", None, None, issued, expires, None, "x")


def test_a_broken_template_is_one_clear_error() -> None:
    templates = {name: "{{ nothing_like_this }}" for name in ("index", "search", "firmware", "entry", "changes")}
    renderer = Renderer({f"{k}.html.j2": v for k, v in templates.items()}, site(), [])
    with pytest.raises(RenderError, match="^search.html: search.html.j2: 'nothing_like_this' is undefined$"):
        renderer.search([])
    with pytest.raises(RenderError, match="^templates: index.html.j2:1: Expected an expression"):
        Renderer(
            {
                "index.html.j2": "{% if %}}",
                "search.html.j2": "",
                "firmware.html.j2": "",
                "entry.html.j2": "",
                "changes.html.j2": "",
            },
            site(),
            [],
        )
    with pytest.raises(RenderError, match="^templates: entry.html.j2: not found$"):
        Renderer({"index.html.j2": "", "search.html.j2": "", "firmware.html.j2": ""}, site(), [])


def test_demo_site_size(demo: Path) -> None:
    """The bundled example: few files, small pages, a home page far under 200 KB."""
    files = [p for p in demo.rglob("*") if p.is_file()]
    pages = [p for p in files if p.suffix == ".html"]
    index = load(demo, "index.json")
    assert len(files) == len(index["files"]) + 1  # unsigned: index.json and what it lists
    assert len(pages) == index["counts"]["groups"] + 6 + 2  # entry pages, one page per firmware, home, search
    total = sum(p.stat().st_size for p in files)
    largest = max(pages, key=lambda p: p.stat().st_size)
    assert total < 2_000_000, total
    assert largest.stat().st_size < 40_000, (largest, largest.stat().st_size)
    assert (demo / "index.html").stat().st_size < 20_000


def test_the_apt_get_line_of_an_entry_page_copies_a_path_a_shell_would_split(tmp_path: Path) -> None:
    """The fetch command runs in bash as written, whatever the package's path holds (issue 21)."""
    import dataclasses  # noqa: PLC0415 - this test alone

    from sevref.records.firmware import DebianRef, FirmwareRecord  # noqa: PLC0415 - this test alone
    from sevref.render import fetch_commands  # noqa: PLC0415 - this test alone

    record = FirmwareRecord.from_dict(load(GOLDEN / "publication", "firmware/tiny.json")["firmware"])
    path = "usr/share/My OVMF;touch HACKED $(touch HACKED2)/OVMF 'x'.fd"
    debian = DebianRef("ovmf", "2022.11-6+deb12u2", "all", path, None)
    (line,) = fetch_commands(dataclasses.replace(record, debian=debian))
    # Stand-ins for apt-get and dpkg-deb that make the package's file where the real ones would.
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "apt-get").write_text('#!/bin/sh\n[ "$1 $2" = "download ovmf=2022.11-6+deb12u2" ] && : > ovmf_x.deb\n')
    unpack = f'#!/bin/sh\nmkdir -p "$3/$(dirname {shlex.quote(path)})" && echo firmware > "$3"/{shlex.quote(path)}\n'
    (tools / "dpkg-deb").write_text(unpack)
    for tool in ("apt-get", "dpkg-deb"):
        (tools / tool).chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": f"{tools}:/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, (line, done.stderr)
    assert (work / "OVMF 'x'.fd").read_text() == "firmware\n"
    assert not list(work.glob("HACKED*"))
