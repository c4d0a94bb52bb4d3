"""Release history: two releases of the golden manifest, what ``sevref diff`` says, and the link a verifier holds.

Release 1 is the golden manifest (serial 3). Release 2 (serial 4) adds vCPU
count 4 to the ``qemu`` matrix and revokes the EC2 SEV-SNP configuration; it
is built with ``--previous`` release 1. Both are signed with the golden test key.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from sevref._cli import main
from sevref.serialize import canonical
from sevref.validate import check_document
from tests.browser import ARGS, CHROMIUM, settled
from tests.conftest import missing, serve
from tests.test_build import GOLDEN, GOLDEN_PASSPHRASE, GOLDEN_SIGNING, groups_of, load

IDENTITY = ["--publisher", "golden", "--product", "tiny", "--stream", "test"]
TRUST = ["--trusted-key", str(GOLDEN / "key" / "golden.pub"), *IDENTITY, "--at", "2026-02-01T00:00:00Z"]
REASON = "example: the EC2 flaw"
SINCE = "2026-01-20T00:00:00Z"
SECOND = """  - match: {mode: sev-snp, host_stack: ec2}
    status: revoked
    reason: "example: the EC2 flaw"
    successor: gce
    since: "2026-01-20T00:00:00Z"
"""


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(args, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def manifest(folder: Path, serial: int, second: bool, description: str | None = None) -> Path:
    text = (GOLDEN / "manifest.yaml").read_text(encoding="utf-8").replace("serial: 3", f"serial: {serial}")
    text = text.replace('expires: "2026-07-01T00:00:00Z"', 'expires: "2099-01-01T00:00:00Z"')  # the browser checks now
    if second:
        text = text.replace("vcpus: [1-3, 8]", "vcpus: [1-4, 8]") + SECOND
    if description is not None:
        text = text.replace("Every kind of entry on a synthetic 64 KiB firmware.", description)
    path = folder / f"m{serial}-{int(second)}-{description is not None}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


class Releases:
    """Builds releases of the golden manifest into one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not (root / "inputs").exists():
            shutil.copytree(GOLDEN / "inputs", root / "inputs")

    def build(self, name: str, serial: int, *extra: str, second: bool = False, signed: bool = True, **kw: Any) -> Any:
        out = io.StringIO()
        args = [
            "build",
            str(manifest(self.root, serial, second, kw.get("description"))),
            "--out",
            str(self.root / name),
        ]
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SEVREF_KEY_PASSPHRASE", GOLDEN_PASSPHRASE)
            status = main([*args, *(GOLDEN_SIGNING if signed else []), *extra], out=out)
        return status, out.getvalue()


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    built = Releases(tmp_path_factory.mktemp("history"))
    assert built.build("r1", 3)[0] == 0
    assert built.build("r2", 4, "--previous", str(built.root / "r1"), second=True)[0] == 0
    return built


def entries(site: Path, predicate: Any) -> set[tuple[str, int | None]]:
    return {(g["id"], n) for g in groups_of(site) if predicate(g) for n, _ in g["entries"]}


def expanded(items: list[dict[str, Any]]) -> set[tuple[str, int | None]]:
    found: set[tuple[str, int | None]] = set()
    for item in items:
        for first, last in item["vcpus"] or [[None, None]]:
            found |= {(item["group"], n) for n in ([None] if first is None else range(first, last + 1))}
    return found


def test_a_folder_that_is_no_publication_is_one_clear_error(releases: Releases, capsys: Any, tmp_path: Path) -> None:
    r2 = str(releases.root / "r2")
    status, _, err = run(["diff", str(tmp_path), r2], capsys)
    assert status == 3 and err.startswith("sevref: not trusted: fetch: no index.json: ")
    (tmp_path / "index.json").write_text('{"schema": "urn:sevref:schema:index:1"}')
    status, _, err = run(["diff", str(tmp_path), r2], capsys)
    assert (status, err) == (
        3,
        "sevref: not trusted: integrity: index.json: /: 'publisher' is missing; expected it here\n",
    )
    status, _ = releases.build("bad", 5, "--previous", str(tmp_path))
    assert status == 1 and not (releases.root / "bad").exists()


def test_diff_lists_exactly_the_added_and_revoked_entries(releases: Releases, capsys: Any) -> None:
    r1, r2 = releases.root / "r1", releases.root / "r2"
    status, out, err = run(["diff", str(r1), str(r2), "--json", *TRUST], capsys)
    assert (status, err) == (0, "")
    document = json.loads(out)
    check_document("changes", document, "sevref diff --json")
    added = entries(r2, lambda g: g["matrix"] == "qemu" and g["mode"] != "sev") & {
        (g, n) for g, n in entries(r2, lambda g: True) if n == 4
    }
    revoked = entries(r2, lambda g: g["host_stack"] == "ec2")
    assert len(added) == 27 and len(revoked) == 3  # 3 CPUs x 3 boots x (SEV-ES on 2 host stacks + SEV-SNP on 1)
    assert expanded([e for e in document["entries"] if e["old"] is None]) == added
    moved = [e for e in document["entries"] if e["old"] is not None]
    assert expanded(moved) == revoked
    assert {(e["old"]["status"], e["new"]["status"], e["new"]["status_reason"]) for e in moved} == {
        ("active", "revoked", REASON)
    }
    assert len(document["entries"]) == len(added) + 1  # nothing else: no removal
    assert document["configurations"] == {"added": [], "removed": []}
    assert document["previous"]["index_sha256"] == hashlib.sha256((r1 / "index.json").read_bytes()).hexdigest()
    assert document["index_sha256"] == hashlib.sha256((r2 / "index.json").read_bytes()).hexdigest()
    # The published changes.json is the same document, but for the index that lists it.
    assert load(r2, "changes.json") == {**document, "index_sha256": None}


def test_diff_without_trust_options_says_it_read_them_unverified(releases: Releases, capsys: Any) -> None:
    status, out, err = run(["diff", str(releases.root / "r1"), str(releases.root / "r2")], capsys)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("changes from serial 3 (1.0) to serial 4 (1.0) of golden/tiny/test; read OLD UNVERIFIED")
    assert "entries added: 27 (27 lines)" in lines and "entries changed in status: 3 (1 line)" in lines
    (revoked,) = [line for line in lines if line.startswith("  ~ ")]
    assert revoked.endswith(f": active -> revoked since {SINCE}: {REASON}; use gce")
    status, _, err = run(["diff", str(releases.root / "r2"), str(releases.root / "r1")], capsys)
    assert status == 1 and "25 entries active in serial 4 are gone from serial 3" in err  # 2 of 27 deprecated
    status, _, err = run(["diff", str(releases.root / "r2"), str(releases.root / "r1"), "--allow-removal"], capsys)
    assert (status, err) == (0, "")
    status, _, err = run(["diff", str(releases.root / "r1"), str(releases.root / "r2"), "--publisher", "x"], capsys)
    assert status == 2 and "--trusted-key, --product, --stream: needed with --publisher" in err
    status, _, err = run(
        ["diff", str(releases.root / "r1"), str(releases.root / "r2"), "--at", "2026-02-01T00:00:00Z"], capsys
    )
    assert status == 2 and "--at goes with --trusted-key" in err
    status, _, err = run(["diff", str(releases.root / "r1"), str(releases.root / "r2"), *TRUST, "--state", "s"], capsys)
    assert status == 2 and "--state: diff remembers nothing" in err


def test_the_second_index_links_the_first_and_changes_json_verifies(releases: Releases, capsys: Any) -> None:
    r1, r2 = releases.root / "r1", releases.root / "r2"
    index = load(r2, "index.json")
    assert index["previous"] == {"serial": 3, "sha256": hashlib.sha256((r1 / "index.json").read_bytes()).hexdigest()}
    assert "previous" not in load(r1, "index.json")  # a release built without --previous names none
    listed = {f["path"]: f for f in index["files"]}
    data = (r2 / "changes.json").read_bytes()
    assert listed["changes.json"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert "changes.html" in listed and (r2 / "changes.json.sig").is_file()
    check_document("changes", json.loads(data), "changes.json")
    status, out, err = run(["verify", "--publication", str(r2), *TRUST], capsys)  # every file, .sig and schema
    assert (status, err) == (0, "") and "serial 4" in out
    (r2 / "changes.json").write_bytes(data.replace(b"example: the EC2 flaw", b"example: the EC2 bug!"))
    try:
        status, _, err = run(["verify", "--publication", str(r2), *TRUST], capsys)
        assert status == 3 and err.startswith("sevref: not trusted: integrity: changes.json has sha256")
    finally:
        (r2 / "changes.json").write_bytes(data)


def test_a_verifier_that_saw_release_1_refuses_a_link_to_another_release_1(
    releases: Releases, capsys: Any, tmp_path: Path
) -> None:
    other = releases.build("r1-other", 3, description="Another release under serial 3.")
    assert other[0] == 0
    forked = releases.build("r2-forked", 4, "--previous", str(releases.root / "r1-other"), second=True)
    assert forked[0] == 0
    state = ["--state", str(tmp_path / "state.json")]
    assert run(["verify", "--publication", str(releases.root / "r1"), *TRUST, *state], capsys)[0] == 0
    status, _, err = run(["verify", "--publication", str(releases.root / "r2-forked"), *TRUST, *state], capsys)
    assert status == 3 and err.startswith("sevref: not trusted: history: serial 4 of golden/tiny/test names serial 3")
    assert json.loads((tmp_path / "state.json").read_text())["streams"]["golden/tiny/test"]["serial"] == 3
    status, out, err = run(["verify", "--publication", str(releases.root / "r2"), *TRUST, *state, "--json"], capsys)
    assert (status, err) == (0, "")
    assert json.loads(out)["publication"]["history_gap"] is None


def test_a_gap_is_allowed_and_reported(releases: Releases, capsys: Any, tmp_path: Path) -> None:
    assert releases.build("r5", 5, second=True)[0] == 0  # names no previous release
    state = ["--state", str(tmp_path / "state.json")]
    assert run(["verify", "--publication", str(releases.root / "r1"), *TRUST, *state], capsys)[0] == 0
    status, out, err = run(["verify", "--publication", str(releases.root / "r5"), *TRUST, *state], capsys)
    assert (status, err) == (0, "")
    assert "note: gap: serial 5 of golden/tiny/test names no previous release; serial 3 was the last trusted" in out


def test_build_refuses_a_serial_that_does_not_rise_and_silent_removals(releases: Releases) -> None:
    status, _ = releases.build("bad", 3, "--previous", str(releases.root / "r1"), second=True)
    assert status == 1
    r2 = str(releases.root / "r2")
    status, _ = releases.build("bad", 6, "--previous", r2)  # drops vCPU count 4 again, never revoked
    assert status == 1 and not (releases.root / "bad").exists()
    status, out = releases.build("dropped", 6, "--previous", r2, "--allow-removal")
    assert status == 0 and "follows serial 4" in out
    assert load(releases.root / "dropped", "index.json")["previous"]["serial"] == 4
    (group, _), *_ = sorted(entries(releases.root / "r2", lambda g: g["matrix"] == "qemu" and g["mode"] == "sev-snp"))
    page = (releases.root / "dropped" / "entry" / f"{group}.html").read_text(encoding="utf-8")
    assert "<li>4 vCPUs: removed in serial 6 (was active).</li>" in page
    changes = (releases.root / "dropped" / "changes.html").read_text(encoding="utf-8")
    assert f'<li class="removed" data-group="{group}">' in changes and "<strong>without notice</strong>" in changes


def test_signing_later_keeps_the_link_and_the_changes(releases: Releases, capsys: Any) -> None:
    status, _ = releases.build("later", 4, "--previous", str(releases.root / "r1"), second=True, signed=False)
    assert status == 0
    # Reviewed before signing: the live release verified, the one built in CI read as it is (unsigned).
    status, out, err = run(["diff", str(releases.root / "r1"), str(releases.root / "later"), *TRUST], capsys)
    assert (status, err) == (0, "")
    assert "; read OLD verified (key " in out.splitlines()[0] and out.splitlines()[0].endswith(
        "NEW UNVERIFIED (unsigned)"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEVREF_KEY_PASSPHRASE", GOLDEN_PASSPHRASE)
        status, _, err = run(["sign", str(releases.root / "later"), *GOLDEN_SIGNING], capsys)
    assert (status, err) == (0, "")
    r2, later = releases.root / "r2", releases.root / "later"
    mine = sorted(p.relative_to(r2).as_posix() for p in r2.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(later).as_posix() for p in later.rglob("*") if p.is_file())
    assert mine == theirs
    # Signed later, byte for byte what the one-step signed build wrote (ECDSA signatures aside: the key's
    # signatures are randomised, the signed bytes are not).
    for path in mine:
        if not path.endswith((".sig", ".dsse.json")):
            assert (r2 / path).read_bytes() == (later / path).read_bytes(), path


def test_sign_refuses_an_index_and_changes_json_that_name_different_releases(releases: Releases, capsys: Any) -> None:
    status, _ = releases.build("unlinked", 4, "--previous", str(releases.root / "r1"), second=True, signed=False)
    assert status == 0
    folder = releases.root / "unlinked"
    index = json.loads((folder / "index.json").read_bytes())
    link = index.pop("previous")
    (folder / "index.json").write_bytes(canonical(index))  # the index no longer names release 1; changes.json does
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEVREF_KEY_PASSPHRASE", GOLDEN_PASSPHRASE)
        status, _, err = run(["sign", str(folder), *GOLDEN_SIGNING], capsys)
    assert status == 1
    assert err == (
        f"sevref: error: {folder}: index.json names no previous release, but changes.json names previous serial 3 "
        f"(index.json sha256 {link['sha256']}); expected the same link in both\n"
    )
    assert not (folder / "index.dsse.json").exists()


@pytest.mark.browser
def test_the_changes_page_shows_them_in_a_browser(releases: Releases) -> None:
    if not CHROMIUM.is_file():
        missing(f"{CHROMIUM} is missing (make browser installs Debian's chromium)")
    r2 = releases.root / "r2"
    revoked = sorted({g for g, _ in entries(r2, lambda g: g["host_stack"] == "ec2")})
    with serve(r2) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "index.html")
        assert settled(page) == "verified"
        page.click("#changes-link")
        page.wait_for_url("**/changes.html")
        assert settled(page) == "verified", page.inner_text("#verification")
        assert page.locator("h1").inner_text() == "What changed: serial 3 → 4"
        assert page.inner_text("#count-added") == "27" and page.inner_text("#count-moved") == "3"
        assert page.inner_text("#count-removed") == "0"
        items = page.locator("section:has(#revoked) li")
        assert [items.nth(i).get_attribute("data-group") for i in range(items.count())] == revoked
        text = items.nth(0).inner_text()
        assert (
            f"(sev-snp on tiny, ec2), 1–2, 4 vCPUs: revoked since {SINCE}: {REASON}; use gce instead (was active)."
            in text
        )
        assert page.locator("section:has(#added) li").count() == 27
        items.nth(0).locator("a").click()
        page.wait_for_url(f"**/entry/{revoked[0]}.html")
        assert settled(page) == "verified"
        history = page.locator("ul.history li").all_inner_texts()
        assert history == [
            f"1–2, 4 vCPUs: active in serial 3; revoked since {SINCE}: {REASON}; use gce since serial 4."
        ]
        browser.close()
    assert errors == []


@pytest.fixture(autouse=True)
def _no_leftovers(releases: Releases) -> Iterator[None]:
    yield
    shutil.rmtree(releases.root / "bad", ignore_errors=True)


def test_diff_and_previous_read_a_publication_over_http(releases: Releases, capsys: Any) -> None:
    with serve(releases.root / "r1") as base:
        status, out, err = run(["diff", base, str(releases.root / "r2"), "--json", *TRUST], capsys)
        assert (status, err) == (0, "")
        assert json.loads(out) == {
            **load(releases.root / "r2", "changes.json"),
            "index_sha256": json.loads(out)["index_sha256"],
        }
        status, _ = releases.build("over-http", 4, "--previous", base, second=True)
    assert status == 0
    for path in ("index.json", "changes.json", "changes.html"):
        assert (releases.root / "over-http" / path).read_bytes() == (releases.root / "r2" / path).read_bytes(), path


def test_diff_refuses_an_old_release_that_new_does_not_follow(releases: Releases, capsys: Any) -> None:
    """NEW names its previous release; an OLD that is another one is not the comparison a reviewer wants."""
    r1, r2 = releases.root / "r1", releases.root / "r2"
    assert releases.build("r3-after-r2", 5, "--previous", str(r2), second=True)[0] == 0
    r3 = releases.root / "r3-after-r2"
    status, _, err = run(["diff", str(r1), str(r3)], capsys)
    sha = {
        name: hashlib.sha256((releases.root / name / "index.json").read_bytes()).hexdigest() for name in ("r1", "r2")
    }
    assert (status, err) == (
        1,
        f"sevref: NEW (serial 5) names serial 4 with index.json sha256 {sha['r2']} as its previous release; OLD is "
        f"serial 3 with {sha['r1']}: expected the release NEW follows\n",
    )
    assert run(["diff", str(r2), str(r3)], capsys)[0] == 0
