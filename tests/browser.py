"""A real browser for the site: Debian's Chromium driven by Playwright, and a local HTTP server.

Playwright never downloads a browser here: it drives ``/usr/bin/chromium``
(Debian's ``chromium`` package, which ``.ci/run`` installs).

``python -m tests.browser SITE DOCS`` takes the README's screenshots of a
built site (``make screenshots``).

:func:`harness` serves publications beside a neutral page that loads the
current ``templates/assets/sevref.js``, so that a test can run the page's
verifier (``window.sevref.verifyPublication``) on any of them, whatever copy of
the script each publication carries.
"""

from __future__ import annotations

import http.server
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.conftest import REPO, running, serve

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


SCRIPT = REPO / "templates" / "assets" / "sevref.js"
"""The page's script as the next build will publish it."""
HARNESS_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sevref verifier harness</title>
<link rel="icon" href="data:,"><script src="harness/assets/sevref.js"></script></head>
<body><p>The page's verifier, for tests.</p></body></html>
"""
"""A page with nothing of a publication in it: it only loads the script."""
VERDICT = """async ([base, options]) => {
  try {
    const trusted = await window.sevref.verifyPublication(base, options);
    return { trusted: true, check: null, message: `signed by ${trusted.signer.keyid}` };
  } catch (error) {
    return { trusted: false, check: error.check || null, message: String(error.message) };
  }
}"""
"""Run the verifier on one publication; what it decided, as plain JSON."""


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium, closed on exit.

    Yields:
        A Playwright browser.
    """
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


class _Harness(http.server.BaseHTTPRequestHandler):
    """``/harness.html``, the current script, and ``/cases/…`` from a folder: a folder there answers 503.

    A folder where a file should be stands for a file a mirror cannot serve (the conformance
    suite's ``unreadable`` action); a missing file answers 404.
    """

    cases: Path
    script: bytes

    def do_GET(self) -> None:
        """Answer one request."""
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/harness.html":
            self._send(200, "text/html; charset=utf-8", HARNESS_PAGE)
        elif path == "/harness/assets/sevref.js":
            self._send(200, "text/javascript; charset=utf-8", self.script)
        elif path.startswith("/cases/") and ".." not in path.split("/"):
            target = self.cases / path.removeprefix("/cases/")
            if target.is_file():
                self._send(200, "application/octet-stream", target.read_bytes())
            elif target.exists():
                self._send(503, "text/plain", b"unavailable\n")
            else:
                self._send(404, "text/plain", b"not found\n")
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, kind: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


@contextmanager
def harness(cases: Path, script: Path = SCRIPT) -> Iterator[str]:
    """Serve publications under ``/cases/`` beside the neutral page, on 127.0.0.1 at a free port.

    Args:
        cases: a folder of publications (``/cases/<path>`` is ``cases/<path>``).
        script: the verifier's script (the current one unless said otherwise).

    Yields:
        The base URL, ending in ``/``: the page is ``harness.html`` under it.
    """
    handler = type("Handler", (_Harness,), {"cases": cases, "script": script.read_bytes()})
    with running(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)) as base:
        yield base


def verdict(page: Any, publication: str, options: dict[str, Any]) -> dict[str, Any]:
    """The page's verifier on one publication, run in the harness page.

    Args:
        page: a Playwright page showing ``harness.html``.
        publication: the publication's folder URL, ending in ``/``.
        options: ``at`` (RFC 3339), ``pins`` (PEM public keys), ``expect`` (publisher, product,
            stream asked for), ``everyFile`` (check every listed file, as ``sevref verify`` does).

    Returns:
        ``{"trusted": bool, "check": the check that failed or None, "message": str}``.
    """
    return dict(page.evaluate(VERDICT, [publication, options]))


def settled(page: Any) -> str:
    """Wait until the page's verification has an outcome.

    Args:
        page: a Playwright page.

    Returns:
        ``verified``, ``failed`` or ``unchecked`` (a page opened from disk).
    """
    # While a click navigates, the next document may not have the banner yet: keep waiting, do not throw.
    page.wait_for_function(
        "['verified', 'failed', 'unchecked'].includes(document.getElementById('verification')?.dataset.status)",
        timeout=20_000,
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
