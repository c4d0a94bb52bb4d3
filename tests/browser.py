"""A real browser for the site: Debian's Chromium driven by Playwright, and a local HTTP server.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium``
(Debian's ``chromium`` package, which ``.ci/run`` installs).

``python -m tests.browser SITE DOCS`` takes the README's screenshots of a
built site (``make screenshots``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.conftest import serve

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium."""
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""Headless, offline, and quiet."""


def settled(page: Any) -> str:
    """Wait until the page's verification has an outcome.

    Args:
        page: a Playwright page.

    Returns:
        ``verified`` or ``failed``.
    """
    # While a click navigates, the next document may not have the banner yet: keep waiting, do not throw.
    page.wait_for_function(
        "['verified', 'failed'].includes(document.getElementById('verification')?.dataset.status)", timeout=20_000
    )
    return str(page.get_attribute("#verification", "data-status"))


def screenshots(site: Path, docs: Path) -> None:
    """Take the README's screenshots of the home, a firmware and the search page.

    Args:
        site: a built, signed publication.
        docs: where the PNG files go.
    """
    index = json.loads((site / "index.json").read_bytes())
    catalogs = [json.loads((site / f["path"]).read_bytes()) for f in index["files"] if f["path"].startswith("catalog/")]
    # An SEV-SNP configuration where the publication has one, else an SEV-ES one (the bundled publication's
    # Debian 12 firmware runs no SEV-SNP guest).
    mode = next(
        (m for m in ("sev-snp", "sev-es") if any(r["mode"] == m for c in catalogs for r in c["configurations"])),
        "sev-es",
    )
    catalog = next(c for c in catalogs if any(row["mode"] == mode for row in c["configurations"]))
    firmware = catalog["firmware"]
    shown = next(row for row in catalog["configurations"] if row["mode"] == mode)
    shard = shown["id"][: index["layout"]["groups_shard_hex"]]
    groups = json.loads((site / f"groups/{shard}.json").read_bytes())["groups"]
    group = next(g for g in groups if g["id"] == shown["id"])
    digest = group["entries"][3][1]
    docs.mkdir(parents=True, exist_ok=True)
    with serve(site) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
        for name, path in (
            ("home", "index.html"),
            ("firmware", f"firmware/{firmware}.html"),
            ("search", f"search.html?digest={digest}"),
        ):
            page.goto(base + path)
            if settled(page) != "verified":
                raise SystemExit(f"{path}: {page.inner_text('#verification')}")
            if name == "search":
                page.wait_for_selector("#results:not([hidden])")
            page.screenshot(path=str(docs / f"{name}.png"))
        browser.close()


if __name__ == "__main__":
    screenshots(Path(sys.argv[1]), Path(sys.argv[2]))
