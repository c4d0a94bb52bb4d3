"""The site's in-browser verifier against the conformance suite: it must reach sevref verify's verdict.

Each case of ``tests/conformance/cases.json`` is materialised as
``tests/test_conformance.py`` does it and served on 127.0.0.1 beside a neutral
page that loads the CURRENT ``templates/assets/sevref.js`` (each base carries
the copy of the script it was built with, which its index pins; the harness
page is no part of any publication, so the page's own self-check does not
apply). The page's verifier, ``window.sevref.verifyPublication``, then checks
the publication with the case's pinned keys, identity and checking time and
with every file (as ``sevref verify`` does), in Debian's Chromium.

Its verdict (trusted or not) and the check it names must be the CLI's. The
cases the browser cannot judge are listed in ``EXEMPT`` with the reason: they
are about inputs only the CLI has (the verifier's memory, ``--state``; the
freshness options; evidence looked up in the publication). A case with evidence
that only checks the publication's trust otherwise stays in: ``sevref verify``
exits 0 or 1 on a publication it trusts (1: no entry matches the evidence), so
the page must trust it.

``EXTRA`` holds cases the suite does not have, made here with the suite's keys
(a release signed by the timestamp key); for those the CLI's verdict is computed
by ``sevref.trust.establish`` in the test itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sevref.edge.keys import load_public
from sevref.errors import NotFoundError, TrustError
from sevref.trust import TrustAnchor, establish
from sevref.values import parse_time
from tests.browser import CHROMIUM, chromium, harness, verdict
from tests.conformance.variants import HERE, IDENTITY, keys, signed_release, tree
from tests.conftest import missing
from tests.test_conformance import CASES, materialise

pytestmark = pytest.mark.browser

STATE = "the page keeps no memory between visits (--state): rollback, forks and history need it"
FRESHNESS = "freshness (--require-timestamp, --max-age) is a verifier's policy; the page reads no timestamp"
SCHEMAS = (
    "the page holds only index.json and the keys documents to their schemas; another listed file is held to its "
    "sha256 and signature (a signed file of the right publisher with a value its schema forbids passes there)"
)
EXEMPT = {
    # case: why the page cannot judge it
    "minor-groups-known-member-wrong": SCHEMAS,
    "valid-newer": STATE,
    "history-forked": STATE,
    "history-wrong-link": STATE,
    "history-gap": STATE,
    "history-no-link": STATE,
    "valid-same-serial": STATE,
    "rollback": STATE,
    "withheld-revocation": STATE,
    "fork": STATE,
    "after-fork-genuine": STATE,
    "same-serial-other-bytes": STATE,
    "timestamp-fresh": FRESHNESS,
    "timestamp-required": FRESHNESS,
    "timestamp-stale": FRESHNESS,
    "timestamp-expired": FRESHNESS,
    "timestamp-missing": FRESHNESS,
    "timestamp-none-in-chain": FRESHNESS,
    "timestamp-key-not-in-chain": FRESHNESS,
    "timestamp-other-index": FRESHNESS,
    "timestamp-wrong-role": FRESHNESS,
    "timestamp-flipped": FRESHNESS,
    "digest-maps-to-other-entry": (
        "refused only when the evidence is looked up (sevref.match holds a digests/ shard to the group's digest); "
        "the publication itself is signed and whole"
    ),
}
"""Every case the browser does not run, with the reason."""
CASE_IDS = [ident for ident in CASES if ident not in EXEMPT]


def _timestamp_key_signs_the_release() -> dict[str, bytes]:
    """The timestamped base signed again by T, whose only role is timestamps, its index naming T."""
    signer = keys()["T"]

    def edit(index: dict[str, Any]) -> None:
        index["signing"] = {"keyid": signer.keyid, "algorithm": "ecdsa-p256", "keys_version": 2}

    return signed_release(tree("timestamped"), signer, edit=edit)


def _revoked_signer_names_the_newest_chain() -> dict[str, bytes]:
    """The revoked base signed again by A, its index saying it was signed under keys/3 (which revokes A)."""

    def edit(index: dict[str, Any]) -> None:
        index["signing"]["keys_version"] = 3

    return signed_release(tree("revoked"), keys()["A"], edit=edit)


EXTRA: dict[str, Callable[[], dict[str, bytes]]] = {
    "extra-timestamp-key-signs-release": _timestamp_key_signs_the_release,
    "extra-revoked-signer-names-newest-chain": _revoked_signer_names_the_newest_chain,
}
"""Cases beyond the suite: name -> the publication's files."""


def cli_verdict(files: dict[str, bytes], pins: list[str]) -> str | None:
    """sevref's own verdict on a publication held in memory: None (trusted) or the check that fails."""

    def fetch(path: str, limit: int) -> bytes:
        if path not in files:
            raise NotFoundError(f"{path}: not found")
        return files[path][: limit + 1]

    anchor = TrustAnchor(
        keys=[load_public(HERE / pin) for pin in pins],
        publisher=IDENTITY["publisher"],
        product=IDENTITY["product"],
        stream=IDENTITY["stream"],
        at=parse_time("2026-06-01T00:00:00Z"),
    )
    try:
        establish(fetch, anchor)
    except TrustError as error:
        return str(error.check)
    return None


def options(given: dict[str, Any]) -> dict[str, Any]:
    """The verifier's options for a case's ``verify``: pins, identity, time, every file."""
    return {
        "at": given["at"],
        "pins": [(HERE / pin).read_text(encoding="ascii") for pin in given["trusted_keys"]],
        "expect": {name: given[name] for name in ("publisher", "product", "stream")},
        "everyFile": True,
    }


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The harness page in Chromium, every case materialised under ``/cases/<id>/publication/``."""
    if not CHROMIUM.is_file():
        missing(f"{CHROMIUM} is missing (make browser installs Debian's chromium)")
    folder = tmp_path_factory.mktemp("cases")
    for ident in CASE_IDS:
        materialise(CASES[ident], folder / ident)
    for name, make in EXTRA.items():
        for path, data in make().items():
            (folder / name / "publication" / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / name / "publication" / path).write_bytes(data)
    with harness(folder) as base, chromium() as browser:
        tab = browser.new_page()
        requests: list[str] = []
        tab.on("request", lambda r: requests.append(r.url))
        tab.goto(base + "harness.html")
        yield tab, base
        outside = [url for url in requests if not url.startswith(base)]
        assert outside == [], outside


@pytest.mark.parametrize("ident", CASE_IDS)
def test_the_page_reaches_the_cli_verdict(page: tuple[Any, str], ident: str) -> None:
    tab, base = page
    case = CASES[ident]
    found = verdict(tab, f"{base}cases/{ident}/publication/", options(case["verify"]))
    expect = case["expect"]
    # Exit 1: the CLI trusts the publication, and no entry matches the evidence.
    assert found["trusted"] == (expect["exit"] in (0, 1)), (case["description"], found)
    assert found["check"] == expect["check"], (case["description"], found)


@pytest.mark.parametrize("name", list(EXTRA))
def test_the_page_and_the_cli_agree_beyond_the_suite(page: tuple[Any, str], name: str) -> None:
    tab, base = page
    files = EXTRA[name]()
    expected = cli_verdict(files, ["keys/A.pub"])
    assert expected is not None  # each extra case is a refusal
    given = {"trusted_keys": ["keys/A.pub"], **IDENTITY, "at": "2026-06-01T00:00:00Z"}
    found = verdict(tab, f"{base}cases/{name}/publication/", options(given))
    assert (found["trusted"], found["check"]) == (False, expected), found


def test_the_page_without_a_pin_reaches_the_same_verdicts(page: tuple[Any, str]) -> None:
    """A page has no pinned key: keys/1 must sign itself. The verdicts that do not hang on the pin stay."""
    tab, base = page
    for ident, expected in {"valid": None, "revoked-key": "signature", "rotated-old-pin": None}.items():
        given = options(CASES[ident]["verify"])
        del given["pins"]
        found = verdict(tab, f"{base}cases/{ident}/publication/", given)
        assert found["check"] == expected, (ident, found)


def test_every_exempt_case_is_about_an_input_only_the_cli_has() -> None:
    assert set(EXEMPT) <= set(CASES)
    for ident, reason in EXEMPT.items():
        given = CASES[ident]["verify"]
        used = {
            STATE: given["state"] is not None,
            FRESHNESS: given["require_timestamp"] or given["max_age"] is not None,
            SCHEMAS: any(change["path"].startswith("groups/") for change in CASES[ident]["changes"]),
        }.get(reason, given["evidence"] is not None)
        assert used, ident
    # And every case with such an input is exempt, but for evidence that leaves the publication's verdict alone.
    for ident, case in CASES.items():
        given = case["verify"]
        if given["state"] is not None or given["require_timestamp"] or given["max_age"] is not None:
            assert ident in EXEMPT, ident
    # Every check the browser can judge is covered by a case it runs.
    assert {CASES[i]["expect"]["check"] for i in CASE_IDS} == {
        None,
        "fetch",
        "keys",
        "signature",
        "identity",
        "expiry",
        "rollback",
        "integrity",
    }
