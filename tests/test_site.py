"""The site in a real browser: Debian's Chromium, driven by Playwright, served on 127.0.0.1.

The publication is the bundled example (manifests/, real Debian firmware),
signed with a fresh key and issued now. The known digests searched for are
known-answer vectors of tests/vectors (computed by sev-snp-measure 0.0.9 and
0.0.13 on the same Debian OVMF_CODE.fd), not values read back from the site.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from sevref.edge.keys import generate_key_files
from sevref.sign import Algorithm
from tests.browser import ARGS, CHROMIUM, settled
from tests.conftest import missing, serve
from tests.test_build import GOLDEN, load
from tests.vectors.make_vectors import load as load_vectors

pytestmark = pytest.mark.browser

MODELS = {"EPYC", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa", "EPYC-Turin"}
# The example publication's SEV-ES host stacks by VMSA profile, with the CPU models
# each lists (manifests/matrix.yaml: QEMU 7.2 has no EPYC-Genoa, only 10.1 has EPYC-Turin).
SEV_ES_HOSTS = {
    "legacy": {"debian12-qemu7.2": {"EPYC", "EPYC-Rome", "EPYC-Milan"}, "qemu10.1": {"EPYC-Turin"}},
    "init2": {"qemu9.1-init2": {"EPYC", "EPYC-Rome", "EPYC-Milan", "EPYC-Genoa"}},
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian's package; never a downloaded one."""
    if not CHROMIUM.is_file():
        missing(f"{CHROMIUM} is missing (make browser installs Debian's chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A page with everything it logged and requested."""

    def __init__(self, browser: Any, base: str, **options: Any) -> None:
        self.context = browser.new_context(**options)
        self.page = self.context.new_page()
        self.base = base
        self.console: list[tuple[str, str]] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append((m.type, self._said(m))))
        self.page.on("pageerror", lambda e: self.console.append(("pageerror", str(e))))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def go(self, path: str) -> str:
        self.page.goto(self.base + path)
        return settled(self.page)

    def status(self) -> str:
        return str(self.page.inner_text("#verification"))

    @staticmethod
    def _said(message: Any) -> str:
        """A console message; the browser's own report of a 404 (the end of the key chain) names its address."""
        url = (message.location or {}).get("url", "")
        return f"{message.text} [{url}]" if "status of 404" in message.text else str(message.text)

    def errors(self) -> list[tuple[str, str]]:
        """What the page logged as errors or warnings, but the 404 that ends the key chain (one each visit)."""
        chain_end = re.compile(r"^Failed to load resource: .* 404 .*\[.*/keys/[0-9]+\.dsse\.json\]$")
        found = [(kind, text) for kind, text in self.console if kind in ("error", "pageerror", "warning")]
        return [(kind, text) for kind, text in found if not chain_end.match(text)]

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def served(signed_demo: tuple[Path, str]) -> Iterator[str]:
    with serve(signed_demo[0]) as base:
        yield base


@pytest.fixture()
def visit(browser: Any, served: str) -> Iterator[Visit]:
    v = Visit(browser, served)
    yield v
    v.close()


def known_answers(mode: str, profile: str | None, models: set[str] = MODELS) -> list[dict[str, Any]]:
    """Vectors on Debian's OVMF_CODE.fd whose configuration the example publication covers."""
    found = []
    for vector in load_vectors():
        given = vector["input"]
        if (
            given["mode"] == mode
            and given["firmware"].endswith("/OVMF_CODE.fd")
            and given.get("vmm") == "qemu"
            and "kernel" not in given
            and "firmware_prefix" not in given
            and given.get("cpu") in models
            and 1 <= given.get("vcpus", 1) <= 64
            and given.get("vmsa_profile") == profile
            and given.get("guest_features", "0x1") == "0x1"
            and given.get("sev_features", "0x0") == "0x0"
        ):
            found.append(vector)
    assert found, f"no known answer for {mode} covers the example publication"
    return found


def result_rows(visit: Visit) -> list[list[str]]:
    visit.page.wait_for_function("document.getElementById('results-summary').dataset.state === 'done'")
    rows = visit.page.locator("#results tbody tr")
    return [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(rows.count())]


def test_a_page_opened_from_disk_says_how_to_open_it_rather_than_failing(
    browser: Any, signed_demo: tuple[Path, str]
) -> None:
    opened = Visit(browser, signed_demo[0].as_uri() + "/")
    try:
        for page in ("index.html", "search.html"):
            assert opened.go(page) == "unchecked", opened.status()
            assert opened.status().startswith("Not checked: this page was opened from disk (file://)")
            assert "make serve, or python3 -m http.server in the folder" in opened.status()
            assert "Verification failed" not in opened.page.content()
            background = opened.page.eval_on_selector("#verification", "e => getComputedStyle(e).backgroundColor")
            assert background == "rgb(238, 241, 246)"  # sevref.css: neutral, not the red of a failure
    finally:
        opened.close()


def test_home_page_verifies_with_no_console_errors_and_no_outside_requests(
    visit: Visit, signed_demo: tuple[Path, str]
) -> None:
    assert visit.go("index.html") == "verified", visit.status()
    assert visit.status().startswith("Verified: release 2026.12 (serial 1) is signed by key ")
    assert f"signed by key {signed_demo[1]}" in visit.status()
    # The banner says exactly what was checked, and what it cannot rule out.
    assert "the signed index and its key chain (keys/1 to keys/1) check out" in visit.status()
    assert "this page's file, index.html, fetched again, matches the index" in visit.status()
    assert "A host that serves you other content can still show other pages" in visit.status()
    assert "use sevref verify" in visit.status()
    assert visit.errors() == []
    assert visit.requests and all(url.startswith(visit.base) for url in visit.requests), visit.requests
    assert visit.page.locator("h1").inner_text() == "Expected launch digests: debian-ovmf 2026.12"
    assert visit.page.locator(f"text={signed_demo[1]}").count() >= 1


@pytest.mark.parametrize("kind", ["search", "firmware", "entry", "second visit"])
def test_every_kind_of_page_verifies(visit: Visit, signed_demo: tuple[Path, str], kind: str) -> None:
    site = signed_demo[0]
    group = next(iter(sorted((site / "entry").iterdir()))).name
    path = {
        "search": "search.html",
        "firmware": "firmware/ovmf-code.html",
        "entry": f"entry/{group}",
        "second visit": "index.html",
    }[kind]
    if kind == "second visit":  # from the browser's cache this time
        assert visit.go(path) == "verified"
    assert visit.go(path) == "verified", visit.status()
    assert visit.errors() == []


def init2_vector(first: bool = True, models: set[str] | None = None) -> dict[str, Any]:
    """A known SEV-ES KVM_SEV_INIT2 digest the example publication has (it has no SEV-SNP entry: Debian 12's
    firmware cannot boot as one), on the one host stack that gives it."""
    hosts = SEV_ES_HOSTS["init2"]["qemu9.1-init2"]
    found = known_answers("sev-es", "init2", hosts if models is None else models & hosts)
    return found[0] if first else found[-1]


@pytest.mark.parametrize("encoding", ["hex", "base64", "uppercase hex"])
def test_search_finds_a_known_digest(visit: Visit, encoding: str) -> None:
    vector = init2_vector()
    digest = vector["expected"]["digest"]
    text = {
        "hex": digest,
        "base64": base64.b64encode(bytes.fromhex(digest)).decode(),
        "uppercase hex": digest.upper(),
    }[encoding]
    assert visit.go("search.html") == "verified"
    visit.page.fill("#digest", text)
    visit.page.click("#digest-search button")
    rows = result_rows(visit)
    given = vector["input"]
    assert len(rows) == 1, (vector["id"], rows)
    entry, mode, firmware, host, cpu, vcpus, status, shown = rows[0]
    assert (mode, firmware, host, cpu, vcpus, status, shown) == (
        "sev-es",
        "ovmf-code",
        "qemu9.1-init2",
        given["cpu"],
        str(given["vcpus"]),
        "active",
        digest,
    ), vector["id"]
    assert entry.endswith(f"-{given['vcpus']:04d}")
    assert visit.errors() == []
    # The result links to the entry's permalink, which shows the same digest.
    visit.page.click(f"#results a:has-text('{entry}')")
    assert settled(visit.page) == "verified"
    assert visit.page.url.endswith(f"#{entry}")
    assert visit.page.locator(f"tr[id='{entry}'] code.hash").inner_text() == digest


@pytest.mark.parametrize("profile", ["legacy", "init2"])
def test_search_finds_a_known_sev_es_launch_digest(visit: Visit, profile: str) -> None:
    hosts = SEV_ES_HOSTS[profile]
    vector = known_answers("sev-es", profile, set().union(*hosts.values()))[-1]
    digest = vector["expected"]["digest"]
    given = vector["input"]
    # Not URL-encoded, as people type it: the "+" of base64 arrives as a space.
    assert visit.go(f"search.html?digest={base64.b64encode(bytes.fromhex(digest)).decode()}") == "verified"
    rows = result_rows(visit)
    host = next(host for host, models in hosts.items() if given["cpu"] in models)
    expected = ["sev-es", "ovmf-code", host, given["cpu"], str(given["vcpus"]), "active", digest]
    assert [row[1:] for row in rows] == [expected], vector["id"]


# An unknown query of each kind, what the search must say of it (its start, then words of its remark),
# and what it must not say: each remark fits its kind only.
SNP_REMARK: tuple[str, ...] = ("firmware build", "vCPU count", "CPU model", "CPUID signature", "guest features")
SNP_REMARK += ("host stack", "guest policy is not part of it")
QMP_REMARK = ("query-sev-launch-measure", "MNONCE", "TIK", "sevref verify --launch-measurement")
GCTX_REMARK = ("GCTX.LD", "firmware build", "vCPU count", "VMSA profile", "LAUNCH_MEASURE", "--launch-measurement")
UNKNOWN = "This is not a digest this site knows how to read: "
UNKNOWN_QUERIES: dict[str, tuple[str, str, str, tuple[str, ...], tuple[str, ...]]] = {
    # name: (query, data-kind, the summary's start, words it holds, words it must not hold)
    "snp hex": ("ab" * 48, "snp", f"No entry has the SEV-SNP measurement {'ab' * 48}. ", SNP_REMARK, QMP_REMARK[:2]),
    "qmp blob": (
        base64.b64encode(bytes(range(48))).decode(),
        "snp-or-qmp",
        f"No entry has the SEV-SNP measurement {bytes(range(48)).hex()} (read from base64). ",
        QMP_REMARK + SNP_REMARK,
        ("GCTX.LD",),
    ),
    "gctx hex": (
        "0x" + "cd" * 32,
        "gctx",
        f"No entry has the SEV/SEV-ES launch digest {'cd' * 32}. ",
        GCTX_REMARK,
        ("SEV-SNP", "query-sev-launch-measure"),
    ),
    "gctx base64": (
        base64.b64encode(bytes(32)).decode(),
        "gctx",
        f"No entry has the SEV/SEV-ES launch digest {'00' * 32}. ",
        GCTX_REMARK,
        ("SEV-SNP MEASUREMENT changes",),
    ),
    "sha-1": ("da39a3ee5e6b4b0d3255bfef95601890afd80709", "unknown", UNKNOWN, ("found 40 hex digits.",), ("TIK",)),
    "sha-512 base64": (
        base64.b64encode(bytes(64)).decode(),
        "unknown",
        UNKNOWN,
        ("found base64 of 64 bytes.",),
        ("No entry",),
    ),
    "words": ("not a digest!", "unknown", UNKNOWN, ("found 13 characters that are neither hex nor base64.",), ()),
}


@pytest.mark.parametrize("name", list(UNKNOWN_QUERIES))
def test_search_remarks_on_an_unknown_query_fit_its_kind(visit: Visit, name: str) -> None:
    query, kind, start, words, absent = UNKNOWN_QUERIES[name]
    assert visit.go("search.html") == "verified"
    visit.page.fill("#digest", query)
    visit.page.press("#digest", "Enter")
    assert result_rows(visit) == []
    summary = visit.page.inner_text("#results-summary")
    assert summary.startswith(start), summary
    assert [w for w in words if w not in summary] == [] and [w for w in absent if w in summary] == [], summary
    assert visit.page.get_attribute("#results-summary", "data-kind") == kind
    assert visit.page.locator("#results").is_hidden()
    assert visit.errors() == []


def test_filter_search_shows_the_entry_and_its_digest(visit: Visit, signed_demo: tuple[Path, str]) -> None:
    vector = init2_vector(first=False, models={"EPYC-Genoa"})  # only one host stack has EPYC-Genoa
    given = vector["input"]
    assert visit.go("search.html") == "verified"
    visit.page.select_option("#filter-search select[name=firmware]", "ovmf-code")
    visit.page.select_option("#filter-search select[name=mode]", "sev-es")
    visit.page.fill("#filter-search input[name=cpu]", given["cpu"].lower())
    visit.page.fill("#filter-search input[name=vcpus]", str(given["vcpus"]))
    visit.page.click("#filter-search button")
    rows = result_rows(visit)
    # "EPYC" as a substring also matches the other models: the filter is by substring.
    matching = [row for row in rows if row[4] == given["cpu"]]
    assert len(matching) == 1 and matching[0][7] == vector["expected"]["digest"], (vector["id"], rows)
    assert all(row[1] == "sev-es" and row[5] == str(given["vcpus"]) for row in rows)
    assert visit.page.inner_text("#results-summary").endswith("configurations of ovmf-code match.")
    # The query is in the address, so the result can be shared.
    assert "firmware=ovmf-code" in visit.page.url and "mode=sev-es" in visit.page.url
    assert visit.errors() == []


def test_firmware_page_filters_its_table(visit: Visit, signed_demo: tuple[Path, str]) -> None:
    catalog = load(signed_demo[0], "catalog/ovmf-code.json")["configurations"]
    assert visit.go("firmware/ovmf-code.html") == "verified"
    table = visit.page.locator("#configurations-table tbody tr")
    assert table.count() == len(catalog)
    visit.page.select_option("form[data-filter-table] select[name=mode]", "sev-es")
    visit.page.select_option("form[data-filter-table] select[name=cpu]", "EPYC-Milan")
    expected = [row for row in catalog if row["mode"] == "sev-es" and row["cpu"] == "EPYC-Milan"]
    visible = visit.page.locator("#configurations-table tbody tr:visible")
    assert visible.count() == len(expected) == 2
    assert visit.page.inner_text("form[data-filter-table] output") == f"2 of {len(catalog)} shown"
    visit.page.fill("form[data-filter-table] input[name=vcpus]", "65")
    assert visible.count() == 0
    visit.page.fill("form[data-filter-table] input[name=vcpus]", "64")
    assert visible.count() == 2
    hrefs = [visible.nth(i).locator("a").get_attribute("href") for i in range(2)]
    assert sorted(hrefs) == sorted(f"../entry/{row['id']}.html" for row in expected)


def test_keyboard_reaches_the_search(visit: Visit) -> None:
    vector = init2_vector()
    assert visit.go("search.html") == "verified"
    for _ in range(12):
        visit.page.keyboard.press("Tab")
        if visit.page.evaluate("document.activeElement.id") == "digest":
            break
    assert visit.page.evaluate("document.activeElement.id") == "digest"
    visit.page.keyboard.type(vector["expected"]["digest"])
    visit.page.keyboard.press("Enter")
    assert len(result_rows(visit)) == 1


@pytest.mark.parametrize("path", ["index.html", "firmware/ovmf-code.html", "search.html", "entry"])
def test_pages_fit_a_phone(browser: Any, served: str, signed_demo: tuple[Path, str], path: str) -> None:
    if path == "entry":
        path = f"entry/{next(iter(sorted((signed_demo[0] / 'entry').iterdir()))).name}"
    phone = Visit(browser, served, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        assert phone.go(path) == "verified"
        # Wide tables scroll inside their own box; the page itself does not scroll sideways.
        assert phone.page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        phone.close()


def test_browsing_works_without_javascript(browser: Any, served: str, signed_demo: tuple[Path, str]) -> None:
    plain = Visit(browser, served, java_script_enabled=False)
    try:
        plain.page.goto(served + "index.html")
        assert plain.page.get_attribute("#verification", "data-status") == "pending"
        assert "your browser checks it when JavaScript is on" in plain.status()
        plain.page.click("a:has-text('ovmf-code-4m')")
        plain.page.wait_for_load_state("load")  # a click waits for the navigation to commit, not for the page
        assert plain.page.url.endswith("firmware/ovmf-code-4m.html")
        catalog = load(signed_demo[0], "catalog/ovmf-code-4m.json")["configurations"]
        assert plain.page.locator("#configurations-table tbody tr").count() == len(catalog) == 10
        assert plain.page.locator("form[data-filter-table]").is_hidden()
        plain.page.locator("#configurations-table a").first.click()
        plain.page.wait_for_load_state("load")
        assert "/entry/" in plain.page.url
        assert plain.page.locator("table.digests tbody tr").count() >= 1
    finally:
        plain.close()


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def after(path: Path, needle: bytes) -> int:
    """The offset just after the first occurrence of ``needle``: the flip lands in the value that follows."""
    return path.read_bytes().index(needle) + len(needle) + 1


TAMPERING = {
    # what is flipped: (file, where, page to open, what the failure says)
    "the index": ("index.json", b'"release":"2026.', "index.html", "index.json differs from the payload"),
    "the index signature": ("index.dsse.json", b'"sig":"', "index.html", "index.dsse.json"),
    "the key chain": ("keys/1.dsse.json", b'"payload":"', "index.html", "keys/1.dsse.json"),
    "the page itself": ("index.html", b"Expected launch digests", "index.html", "index.html has sha256"),
    "a firmware page": (
        "firmware/ovmf-code.html",
        b"Configurations",
        "firmware/ovmf-code.html",
        "firmware/ovmf-code.html has sha256",
    ),
    "the style sheet": ("assets/sevref.css", b"font", "index.html", "assets/sevref.css has sha256"),
    "a digest shard": ("DIGEST_SHARD", b'"digests":{"', "SEARCH", "has sha256"),
    "a group shard": ("GROUP_SHARD", b'"entries":[[', "SEARCH", "has sha256"),
}


@pytest.mark.parametrize("what", list(TAMPERING))
def test_one_flipped_byte_fails_verification(
    browser: Any, signed_demo: tuple[Path, str], tmp_path: Path, what: str
) -> None:
    site = tmp_path / "site"
    shutil.copytree(signed_demo[0], site)
    target, needle, path, message = TAMPERING[what]
    vector = init2_vector()
    digest = vector["expected"]["digest"]
    index = load(site, "index.json")
    layout = index["layout"]
    if target == "DIGEST_SHARD":
        target = f"digests/{digest[: layout['digests_shard_hex']]}.json"
    if target == "GROUP_SHARD":
        entry = load(site, f"digests/{digest[: layout['digests_shard_hex']]}.json")["digests"][digest][0]
        target = f"groups/{entry[: layout['groups_shard_hex']]}.json"
        needle = f'"id":"{entry[:20]}"'.encode()
    if path == "SEARCH":
        path = f"search.html?digest={digest}"
    flip(site / target, after(site / target, needle))
    with serve(site) as base:
        visit = Visit(browser, base)
        try:
            outcome = visit.go(path)
            if path.startswith("search"):
                # The page itself is intact; the search then loads the bad shard.
                visit.page.wait_for_function("document.getElementById('verification').dataset.status === 'failed'")
            else:
                assert outcome == "failed"
            assert visit.status().startswith("Verification failed: "), visit.status()
            assert message in visit.status(), visit.status()
            if path.startswith("search"):
                assert visit.page.locator("#results tbody tr").count() == 0  # nothing shown from a bad file
        finally:
            visit.close()


def test_an_expired_publication_fails(browser: Any) -> None:
    """The golden publication is signed, and expired on 2026-07-01."""
    with serve(GOLDEN / "publication") as base:
        visit = Visit(browser, base)
        try:
            assert visit.go("index.html") == "failed"
            assert visit.status() == "Verification failed: expired at 2026-07-01T00:00:00Z"
            assert visit.errors() == []
        finally:
            visit.close()


def test_an_unsigned_publication_fails_but_can_be_searched(browser: Any, demo: Path) -> None:
    with serve(demo) as base:
        visit = Visit(browser, base)
        try:
            assert visit.go("index.html") == "failed"
            assert visit.status() == "Verification failed: this publication is unsigned: nothing vouches for its values"
            assert [e for e in visit.errors() if "/index.dsse.json]" not in e[1]] == []  # its 404 tells "unsigned"
            vector = init2_vector()
            visit.go(f"search.html?digest={vector['expected']['digest']}")
            assert len(result_rows(visit)) == 1
        finally:
            visit.close()


@pytest.fixture(scope="module")
def lifecycle_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The golden manifest (one SEV-SNP configuration revokes its 3-vCPU entry alone), signed and issued now."""
    folder = tmp_path_factory.mktemp("lifecycle")
    shutil.copytree(GOLDEN / "inputs", folder / "inputs")
    text = (GOLDEN / "manifest.yaml").read_text(encoding="utf-8")
    validity = '  issued: "2026-01-01T00:00:00Z"\n  expires: "2026-07-01T00:00:00Z"\n'
    assert validity in text
    (folder / "m.yaml").write_text(text.replace(validity, "  valid_for_days: 30\n"), encoding="utf-8")
    generate_key_files(folder / "key", Algorithm.ECDSA_P256, b"lifecycle-site-passphrase")
    command = [sys.executable, "-m", "sevref", "build", str(folder / "m.yaml"), "--out", str(folder / "site")]
    command += ["--issued", "now", "--signing-key", str(folder / "key.pem")]
    env = {**os.environ, "SEVREF_KEY_PASSPHRASE": "lifecycle-site-passphrase"}
    subprocess.run(command, env=env, check=True, capture_output=True)
    with serve(folder / "site") as base:
        yield base, folder / "site"


def test_an_entry_revoked_alone_is_marked_on_every_page(browser: Any, lifecycle_site: tuple[str, Path]) -> None:
    base, site = lifecycle_site
    groups = [
        g
        for path in sorted((site / "groups").glob("*.json"))
        for g in load(site, str(path.relative_to(site)))["groups"]
    ]
    (group,) = [g for g in groups if g["exceptions"]]
    assert (group["mode"], group["cpu"], group["status"]) == ("sev-snp", "EPYC-Milan", "active")
    digests = {count: digest for count, digest in group["entries"]}
    revoked = f"{group['id']}-0003"
    visit = Visit(browser, base)
    try:
        # The configuration's page: exactly the 3-vCPU row is marked revoked, and a warning says why.
        assert visit.go(f"entry/{group['id']}.html") == "verified", visit.status()
        rows = visit.page.locator("table.digests tbody tr")
        statuses = {
            rows.nth(i).get_attribute("id"): rows.nth(i).locator("td").last.inner_text() for i in range(rows.count())
        }
        assert statuses == {f"{group['id']}-{n:04d}": "revoked" if n == 3 else "active" for n in digests}
        assert visit.page.locator("tr.status-revoked").count() == 1
        assert visit.page.get_attribute(f"tr[id='{revoked}']", "class") == "status-revoked"
        text = visit.page.inner_text("main")
        assert "3 vCPUs: revoked since 2026-01-15T00:00:00Z: example: a flaw found in 3-vCPU launches." in text
        # The firmware page counts it.
        assert visit.go("firmware/tiny.html") == "verified"
        row = visit.page.locator(f"#configurations-table tr:has(a[href='../entry/{group['id']}.html'])")
        assert [c.strip() for c in row.locator("td").all_inner_texts()][-2:] == [
            "active; revoked: 3",
            "4 digests (1 revoked)",
        ]
        # The home page shows revoked and deprecated counts beside active ones.
        assert visit.go("index.html") == "verified"
        assert "111 entries (102 active, 8 deprecated, 1 revoked)" in visit.page.inner_text("main")
        # Search by digest: the revoked entry says so; its neighbour is active.
        for count, expected in ((3, "revoked"), (2, "active")):
            visit.go(f"search.html?digest={digests[count]}")
            (found,) = result_rows(visit)
            assert (found[0], found[5], found[6]) == (f"{group['id']}-{count:04d}", str(count), expected)
        # Filter search: the entry's own status with a vCPU count, the configuration's statuses without one.
        for vcpus, expected in (("3", "revoked"), ("2", "active"), ("", "active; revoked: 3")):
            visit.go(f"search.html?firmware=tiny&mode=sev-snp&host=qemu9.1-init2&cpu=EPYC-Milan&vcpus={vcpus}")
            rows_found = [r for r in result_rows(visit) if r[0].startswith(group["id"])]
            assert [r[6] for r in rows_found] == [expected], rows_found
        assert visit.errors() == []
    finally:
        visit.close()


# The page's path comes from its address, relative to the script's (assets/sevref.js): what each address means.
ADDRESSES = {
    "": ("verified", "index.html"),  # the publication's folder: its index.html
    "index.html?digest=00#top": ("verified", "index.html"),  # the query and the fragment play no part
    "search.html?digest=ab#results": ("verified", "search.html"),
    "%69ndex.html": ("verified", "index.html"),  # percent-encoded, as a browser may send it
    "firmware/": ("failed", "this page's address (firmware/index.html) is not a file the signed index lists"),
    "index.html/": ("failed", "this page's address (index.html/index.html) is not a file the signed index lists"),
}


@pytest.mark.parametrize("address", list(ADDRESSES))
def test_the_address_decides_which_file_is_checked(browser: Any, served: str, address: str) -> None:
    outcome, said = ADDRESSES[address]
    visit = Visit(browser, served)
    try:
        visit.page.route("**/firmware/", lambda route: route.fulfill(status=200, body=FOLDER_PAGE, headers=HTML))
        visit.page.route("**/index.html/", lambda route: route.fulfill(status=200, body=FOLDER_PAGE, headers=HTML))
        assert visit.go(address) == outcome, visit.status()
        if outcome == "verified":
            assert f"this page's file, {said}, fetched again, matches the index" in visit.status()
        else:
            assert said in visit.status(), visit.status()
    finally:
        visit.close()


HTML = {"Content-Type": "text/html; charset=utf-8"}
FOLDER_PAGE = (
    '<!doctype html><html><head><script src="/assets/sevref.js" defer></script></head>'
    '<body><p id="verification" data-status="pending">?</p></body></html>'
)
"""What a host might answer for a folder's address: a page that loads the publication's script."""


def forge(site: Path, path: str, body: str) -> None:
    """Put a page into a copy of the site: one that names index.html as its path, as pages once did."""
    text = (site / "index.html").read_text(encoding="utf-8")
    depth = path.count("/")
    text = text.replace('href="', 'href="' + "../" * depth).replace('src="', 'src="' + "../" * depth)
    text = text.replace("<body>", f'<body data-root="{"../" * depth}" data-path="index.html">')
    text = text.replace("Expected launch digests", body)
    (site / path).parent.mkdir(parents=True, exist_ok=True)
    (site / path).write_text(text, encoding="utf-8")


FORGED = {
    # name: (the page forged, what the banner says)
    "a replaced entry page": ("ENTRY", "has sha256"),
    "a page added beside the real ones": ("extra.html", "this page's address (extra.html) is not a file the signed"),
    "a page added in a folder": ("entry/0000.html", "this page's address (entry/0000.html) is not a file the"),
    "a page added under the assets": ("assets/index.html", "this page's address (assets/index.html) is not a file"),
}


@pytest.mark.parametrize("name", list(FORGED))
def test_a_forged_page_naming_index_html_is_not_verified(
    browser: Any, signed_demo: tuple[Path, str], tmp_path: Path, name: str
) -> None:
    site = tmp_path / "site"
    shutil.copytree(signed_demo[0], site)
    path, said = FORGED[name]
    if path == "ENTRY":
        path = f"entry/{next(iter(sorted((site / 'entry').iterdir()))).name}"
    forge(site, path, "Forged digests")
    with serve(site) as base:
        visit = Visit(browser, base)
        try:
            assert visit.go(path) == "failed", visit.status()
            assert said in visit.status(), visit.status()
            assert visit.page.locator("h1").inner_text().startswith("Forged digests")
            # The untouched home page of the same host still verifies.
            assert visit.go("index.html") == "verified", visit.status()
        finally:
            visit.close()


@pytest.fixture(scope="module")
def revoked_later(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A release signed by k1 under keys/1, built with the CLI; the publisher's keys/2 (k2 joins, k1 revoked) apart.

    Returns:
        (the site, keys/2.dsse.json).
    """
    folder = tmp_path_factory.mktemp("revoked-later")
    shutil.copytree(GOLDEN / "inputs", folder / "inputs")
    text = (GOLDEN / "manifest.yaml").read_text(encoding="utf-8")
    validity = '  issued: "2026-01-01T00:00:00Z"\n  expires: "2026-07-01T00:00:00Z"\n'
    (folder / "m.yaml").write_text(text.replace(validity, "  valid_for_days: 30\n"), encoding="utf-8")
    passphrase = "revoked-later-passphrase"
    k1 = generate_key_files(folder / "k1", Algorithm.ECDSA_P256, passphrase.encode())
    generate_key_files(folder / "k2", Algorithm.ECDSA_P384, passphrase.encode())
    env = {**os.environ, "SEVREF_KEY_PASSPHRASE": passphrase, "SEVREF_NEW_KEY_PASSPHRASE": passphrase}
    sevref = [sys.executable, "-m", "sevref"]
    chain = ["key", "chain", "--keys", str(folder / "chain"), "--publisher", "golden", "--signing-key"]
    subprocess.run([*sevref, *chain, str(folder / "k1.pem")], env=env, check=True, capture_output=True)
    build = ["build", str(folder / "m.yaml"), "--out", str(folder / "site"), "--issued", "now"]
    build += ["--signing-key", str(folder / "k1.pem"), "--keys", str(folder / "chain")]
    subprocess.run([*sevref, *build], env=env, check=True, capture_output=True)
    rotate = [*chain, str(folder / "k1.pem"), "--add", str(folder / "k2.pem"), "--revoke", k1, "--reason", "stolen"]
    subprocess.run([*sevref, *rotate], env=env, check=True, capture_output=True)
    return folder / "site", folder / "chain" / "2.dsse.json"


def test_a_release_whose_key_a_later_keys_document_revokes_is_not_verified(
    browser: Any, revoked_later: tuple[Path, Path], tmp_path: Path
) -> None:
    site, revocation = revoked_later
    assert json.loads((site / "index.json").read_bytes())["signing"]["keys_version"] == 1
    with serve(site) as base:
        visit = Visit(browser, base)
        try:
            assert visit.go("index.html") == "verified", visit.status()  # before the publisher rotates
        finally:
            visit.close()
    served = tmp_path / "site"
    shutil.copytree(site, served)
    shutil.copy(revocation, served / "keys" / "2.dsse.json")
    with serve(served) as base:
        visit = Visit(browser, base)
        try:
            assert visit.go("index.html") == "failed", visit.status()
            assert "index.dsse.json is signed by key " in visit.status()
            assert "revoked in keys/2 (stolen)" in visit.status()
        finally:
            visit.close()
    # sevref verify, pinned to k1, says the same.
    verify = [sys.executable, "-m", "sevref", "verify", "--publication", str(served), "--trusted-key"]
    verify += [str(site.parent / "k1.pub"), "--publisher", "golden", "--product", "tiny", "--stream", "test"]
    result = subprocess.run(verify, capture_output=True, text=True, check=False)
    assert result.returncode == 3 and "not trusted: signature: " in result.stderr, result.stderr
