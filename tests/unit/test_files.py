"""The declaration of a publication's files (sevref.records.files) against real publications and the page's verifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sevref.records.files import FILES, Listing, kind_of, schema_of, signed_beside, written_by_signing
from sevref.validate import KINDS
from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden" / "publication"
CONFORMANCE = REPO / "tests" / "conformance" / "base"


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "folder", [GOLDEN, *sorted(p for p in CONFORMANCE.iterdir() if (p / "index.json").is_file())], ids=lambda p: p.name
)
def test_every_file_of_a_real_publication_is_of_a_declared_kind(folder: Path) -> None:
    listed = {item["path"] for item in json.loads((folder / "index.json").read_bytes())["files"]}
    for path in _files(folder):
        kind = kind_of(path)
        assert kind is not None, f"{folder.name}/{path} is of no declared kind"
        if path in listed:
            assert kind.listing is Listing.LISTED, path
        elif path != "index.json":
            assert written_by_signing(path, listed) or kind.listing is Listing.SERVICE, path
    # What signing wrote: a .sig beside exactly the files the table says are signed beside.
    if (folder / "index.dsse.json").exists():
        sigs = {p.removesuffix(".sig") for p in _files(folder) if p.endswith(".sig")}
        assert sigs == {p for p in [*listed, "index.json"] if signed_beside(p)}


def test_the_schemas_are_the_validators_and_the_page_signs_what_the_table_signs() -> None:
    assert {kind.schema for kind in FILES if kind.schema is not None} == set(KINDS)
    # The in-page verifier (sevref.js) fetches a .sig for, and parses as a record, every listed .json file:
    # the table must say the same of every listed path it knows.
    script = (REPO / "templates" / "assets" / "sevref.js").read_text(encoding="utf-8")
    assert "if (!path.endsWith('.json')) return { ...file, signature: null };" in script
    for path in _files(GOLDEN):
        kind = kind_of(path)
        if kind is not None and kind.listing is Listing.LISTED:
            assert signed_beside(path) == path.endswith(".json") == (schema_of(path) is not None), path


@pytest.mark.parametrize(
    ("path", "listed", "expected"),
    [
        ("groups/00.json.sig", {"groups/00.json"}, True),
        ("groups/00.json.sig", set(), False),  # a .sig beside nothing listed
        ("index.json.sig", set(), True),
        ("entry/ab.html.sig", {"entry/ab.html"}, False),  # pages get no .sig
        ("keys/1.dsse.json", set(), True),
        ("keys/0.dsse.json", set(), False),
        ("keys/01.dsse.json", set(), False),
        ("timestamp.dsse.json", set(), False),  # written later, by the timestamp role
        ("notes.txt", set(), False),
    ],
)
def test_what_signing_writes(path: str, listed: set[str], expected: bool) -> None:
    assert written_by_signing(path, listed) is expected


def test_unknown_paths_have_no_kind() -> None:
    for path in ("../index.json", "groups/sub/00.json", "Index.json", "groups/.json", "assets/x/y.js"):
        assert kind_of(path) is None, path
