"""The compatibility promise (docs/compatibility.md), held against the schemas every release shipped.

``tests/data/compat/<version>/`` freezes the published JSON Schemas of each release. A later schema of
the same major may only add optional members to objects its predecessor closed
(``additionalProperties: false``), and only under a higher minor; the published ``schema`` value then
names that minor, and a verifier of the old minor reads the file without those members
(:func:`sevref.validate.known_only`). Everything else (a member removed, renamed or newly required, a
type, pattern, bound or list of values changed) needs a new major. The frozen publications of the
conformance suite (tests/conformance/base/, written by earlier sevref versions) are verified by every
later one in tests/test_conformance.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sevref import __version__
from sevref._cli.completion import command_tree
from sevref.errors import LayoutError
from sevref.records import SCHEMA_IDS, SCHEMAS, VERSIONS, schema_version
from sevref.validate import check_document, known_only
from tests.conformance.variants import HERE as CONFORMANCE
from tests.conformance.variants import tree
from tests.conftest import REPO

FROZEN = REPO / "tests" / "data" / "compat"
RELEASES = sorted(p.name for p in FROZEN.iterdir() if p.is_dir())
WORDS = frozenset({"description", "title", "$comment", "examples"})
"""Keywords that say and do not decide: they may change in any version."""


def changes(old: Any, new: Any, where: str = "") -> list[str]:
    """How ``new`` breaks readers of ``old``: each problem with its JSON pointer; [] when it only adds optional members."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [f"{where or '/'}: {json.dumps(old)} became {json.dumps(new)}"]
    problems: list[str] = []
    for key in sorted((set(old) | set(new)) - WORDS):
        at = f"{where}/{key}"
        if key not in new:
            problems.append(f"{at}: removed")
        elif key not in old:
            problems.append(f"{at}: added")
        elif key in ("properties", "$defs"):
            for name in sorted(old[key]):
                problems += (
                    [f"{at}/{name}: removed"]
                    if name not in new[key]
                    else changes(old[key][name], new[key][name], f"{at}/{name}")
                )
            added = sorted(set(new[key]) - set(old[key]))
            if key == "properties" and added and old.get("additionalProperties") is not False:
                problems.append(f"{at}: {', '.join(added)} added to an object that was open")
            problems += [f"{at}/{name}: added and required" for name in added if name in new.get("required", ())]
        elif key == "required":
            if set(old[key]) != set(new[key]):
                problems.append(f"{at}: {sorted(old[key])} became {sorted(new[key])}")
        elif isinstance(old[key], list) and isinstance(new[key], list) and len(old[key]) == len(new[key]):
            for number, (before, after) in enumerate(zip(old[key], new[key], strict=True)):
                problems += changes(before, after, f"{at}/{number}")
        else:
            problems += changes(old[key], new[key], at)
    return problems


def added(old: Any, new: Any) -> bool:
    """Whether ``new`` has members (properties or definitions) that ``old`` has not, at any depth."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in ("properties", "$defs"):
            if set(new.get(key, {})) - set(old.get(key, {})):
                return True
        return any(added(old[k], new[k]) for k in set(old) & set(new) - WORDS)
    if isinstance(old, list) and isinstance(new, list):
        return any(added(a, b) for a, b in zip(old, new, strict=False))
    return False


def schema(folder: Path, kind: str) -> Any:
    return json.loads((folder / f"{kind}.schema.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("kind", [*sorted(VERSIONS), "common"])
def test_every_later_schema_of_a_major_only_adds_optional_members_under_a_higher_minor(release: str, kind: str) -> None:
    frozen = FROZEN / release
    then = json.loads((frozen / "versions.json").read_text(encoding="utf-8"))["versions"]
    old, new = schema(frozen, kind), schema(REPO / "schema", kind)
    if old["$id"] != new["$id"]:  # a new major: the changelog says so, and an old verifier refuses it by name
        assert new["$id"] in (REPO / "CHANGELOG.md").read_text(encoding="utf-8"), new["$id"]
        return
    assert changes(old, new) == [], f"{kind}: needs a new major, or undo the change"
    if kind in VERSIONS and added(old, new):
        assert VERSIONS[kind][1] > then[kind][1], f"{kind}: members added since {release}: raise its minor"


def test_the_checker_finds_what_breaks_readers() -> None:
    old = schema(FROZEN / RELEASES[0], "index")
    breaking: dict[str, Callable[[dict[str, Any]], object]] = {
        "a member required": lambda s: s["required"].append("publisher_name_2"),
        "a member removed": lambda s: s["properties"].pop("contact"),
        "a bound changed": lambda s: s["properties"]["serial"].update(minimum=2),
        "a type widened": lambda s: s["properties"]["url"].update(type=["string", "null", "integer"]),
        "a member added and required": lambda s: (
            s["properties"].update(mirror={"type": "string"}),
            s["required"].append("mirror"),
        ),
        "a nested member added to an open object": lambda s: (
            s.update(additionalProperties=True) or s["properties"].update(mirror={"type": "string"})
        ),
    }
    for name, change in breaking.items():
        new = copy.deepcopy(old)
        change(new)
        assert changes(old, new) != [], name
    optional = copy.deepcopy(old)
    optional["properties"]["mirror"] = {"type": "string"}
    optional["properties"]["counts"]["description"] = "reworded"
    assert changes(old, optional) == [] and added(old, optional)


def test_a_schema_value_names_kind_major_and_minor() -> None:
    for kind, (major, minor) in VERSIONS.items():
        assert schema_version(SCHEMAS[kind]) == (kind, major, minor)
        assert SCHEMAS[kind] == SCHEMA_IDS[kind] + (f".{minor}" if minor else "")
    assert schema_version("urn:sevref:schema:groups:2.17") == ("groups", 2, 17)
    for wrong in ("urn:sevref:schema:groups:2.0", "urn:sevref:schema:groups:02", "urn:sevref:schema:groups:2.", 2):
        assert schema_version(wrong) is None


def _group_file() -> tuple[str, dict[str, Any]]:
    files = tree("release-1")
    path = next(p for p in sorted(files) if p.startswith("groups/") and p.endswith(".json"))
    return path, json.loads(files[path])


def test_a_newer_minor_is_read_without_its_added_members_and_its_known_members_still_checked() -> None:
    path, document = _group_file()
    later = copy.deepcopy(document)
    later["schema"] = SCHEMA_IDS["groups"] + ".1"
    later["generator"] = "a later sevref"
    later["groups"][0]["notes"] = {"any": ["shape"]}
    read = check_document("groups", later, path)
    assert "generator" not in read and "notes" not in read["groups"][0]
    assert {k: v for k, v in read.items() if k != "schema"} == {k: v for k, v in document.items() if k != "schema"}
    assert known_only("groups", document) == document  # nothing to leave out of a file this sevref writes

    same = copy.deepcopy(later)
    same["schema"] = SCHEMA_IDS["groups"]
    with pytest.raises(LayoutError, match="unknown key 'notes'"):
        check_document("groups", same, path)
    wrong = copy.deepcopy(later)
    wrong["groups"][0]["vmm"] = "many"
    with pytest.raises(LayoutError, match="/groups/0: /vmm: expected one of"):
        check_document("groups", wrong, path)
    newer = copy.deepcopy(document)
    newer["schema"] = "urn:sevref:schema:groups:3"
    with pytest.raises(LayoutError, match="major version 3 of the groups format; this sevref .* reads major version 2"):
        check_document("groups", newer, path)


def test_the_conformance_suite_holds_cases_of_the_promise() -> None:
    cases = {c["id"]: c["expect"]["exit"] for c in json.loads((CONFORMANCE / "cases.json").read_bytes())["cases"]}
    assert cases["minor-index-added-members"] == cases["minor-groups-added-members"] == 0
    assert cases["same-minor-index-added-member"] == cases["major-index-2"] == 3
    assert cases["minor-groups-known-member-wrong"] == 3


REMOVED: dict[str, str] = {}
"""Options or commands taken out after their deprecation (docs/compatibility.md): ``"command --option"`` ->
the version that deprecated it. Empty: nothing has been removed."""


def cli_surface() -> dict[str, Any]:
    """The command line as a promise: every command, its options, the values each offers, and what is deprecated."""
    return {
        command.name or "sevref": {
            "options": sorted(flag for argument in command.options for flag in argument.flags),
            "choices": {a.flags[-1]: sorted(a.choices) for a in command.options if a.choices},
            "positionals": [a.metavar for a in command.positionals],
            "deprecated": {flag: a.deprecated for a in command.options if a.deprecated for flag in a.flags},
        }
        for command in command_tree().walk()
    }


def undeprecated(removed: dict[str, str], frozen: dict[str, dict[str, Any]]) -> list[str]:
    """What ``removed`` lists that no release (``frozen``: version -> its cli.json) marked deprecated first."""
    marked = {
        (f"{name} {flag}", since)
        for surface in frozen.values()
        for name, command in surface.items()
        for flag, since in command.get("deprecated", {}).items()
    }
    return sorted(gone for gone, since in removed.items() if (gone, since) not in marked)


def missing(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What a release's command line had that this one lacks (and has not removed after deprecation)."""
    gone = []
    for name, before in then.items():
        if name not in now:
            gone += [] if name in REMOVED else [name]
            continue
        after = now[name]
        gone += [f"{name} {o}" for o in before["options"] if o not in after["options"] and f"{name} {o}" not in REMOVED]
        gone += [
            f"{name} {o} {choice}"
            for o, choices in before["choices"].items()
            for choice in choices
            if o in after["choices"] and choice not in after["choices"][o]
        ]
        if after["positionals"][: len(before["positionals"])] != before["positionals"]:
            gone.append(f"{name}: positional arguments {before['positionals']}")
    return gone


@pytest.mark.parametrize("release", RELEASES)
def test_every_command_option_and_choice_of_a_release_is_still_there(release: str) -> None:
    frozen = json.loads((FROZEN / release / "cli.json").read_text(encoding="utf-8"))
    assert missing(frozen, cli_surface()) == [], "deprecate first (docs/compatibility.md), then list it in REMOVED"


def test_the_frozen_command_line_of_this_version_is_the_one_it_has() -> None:
    """Until its release, this version's frozen command line follows every change: afterwards it is never edited."""
    frozen = FROZEN / __version__ / "cli.json"
    if frozen.exists():
        assert json.loads(frozen.read_bytes()) == cli_surface(), f"rewrite {frozen.name} with cli_surface()"


def test_what_was_removed_was_deprecated_in_a_release_first() -> None:
    frozen = {release: json.loads((FROZEN / release / "cli.json").read_bytes()) for release in RELEASES}
    assert undeprecated(REMOVED, frozen) == []
    # The check itself: a removal no release marked, or marked since another version, is named.
    frozen["0.2.0"] = {"verify": {"deprecated": {"--stale": "0.2"}}}
    assert undeprecated({"verify --stale": "0.2"}, frozen) == []
    assert undeprecated({"verify --stale": "0.3", "build --gone": "0.2"}, frozen) == ["build --gone", "verify --stale"]


def test_the_surface_check_sees_what_goes() -> None:
    now = cli_surface()
    assert {"build", "sign", "verify", "digest", "key chain", "key pin", "completion"} <= set(now)
    then = copy.deepcopy(now)
    then["verify"]["options"].append("--trust-on-first-use")
    then["digest"]["choices"]["--mode"].append("sev-tdx")
    then["pin"]["positionals"].append("EXTRA")
    then["attest"] = {"options": [], "choices": {}, "positionals": []}
    assert sorted(missing(then, now)) == [
        "attest",
        "digest --mode sev-tdx",
        "pin: positional arguments ['PACKAGE-FILE|URL', 'PATH', 'EXTRA']",
        "verify --trust-on-first-use",
    ]


def test_a_newer_minor_keeps_the_form_that_holds_the_most_of_a_value() -> None:
    golden = json.loads((REPO / "tests" / "golden" / "publication" / "firmware" / "tiny.json").read_bytes())
    later = copy.deepcopy(golden)
    later["schema"] = SCHEMA_IDS["firmware"] + ".1"
    # The source's forms: {debian}, {file} and {url, file}. A later minor adds a member to the last.
    later["firmware"]["source"] = {"url": "https://example.org/tiny.fd", "file": "tiny.fd", "mirror_of": "x"}
    read = check_document("firmware", later, "firmware/tiny.json")
    assert read["firmware"]["source"] == {"url": "https://example.org/tiny.fd", "file": "tiny.fd"}
    later["firmware"]["source"] = {"file": "tiny.fd", "signed_by": "y"}
    assert check_document("firmware", later, "firmware/tiny.json")["firmware"]["source"] == {"file": "tiny.fd"}
