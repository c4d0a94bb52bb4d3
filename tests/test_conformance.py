"""sevref verify against the committed conformance suite (tests/conformance/README.md).

The suite is data: base publications and cases.json. Another verifier runs the
same cases; this test is sevref's run, and also the reference for how a case
is applied.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from sevref._cli import main
from tests.conformance.variants import HERE

SUITE = json.loads((HERE / "cases.json").read_text(encoding="utf-8"))
CASES = {case["id"]: case for case in SUITE["cases"]}
REFUSAL = re.compile(
    r"^sevref: not trusted: (fetch|keys|signature|identity|expiry|rollback|history|freshness|integrity): "
)


def materialise(case: Mapping[str, Any], folder: Path) -> Path:
    """Copy the case's base publication and apply its changes."""
    site = folder / "publication"
    shutil.copytree(HERE / "base" / case["base"], site)
    for change in case["changes"]:
        target = site / change["path"]
        if change["action"] == "flip":
            data = bytearray(target.read_bytes())
            data[change["offset"]] ^= 0x01
            target.write_bytes(bytes(data))
        elif change["action"] == "truncate":
            target.write_bytes(target.read_bytes()[: change["size"]])
        elif change["action"] == "delete":
            target.unlink()
        elif change["action"] == "replace":
            target.write_bytes((HERE / "base" / change["from"] / change["path"]).read_bytes())
        elif change["action"] == "put":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((HERE / change["source"]).read_bytes())
        elif change["action"] == "unreadable":
            target.unlink()
            target.mkdir()  # there, but no file: as an HTTP mirror that answers 403 or 503
        else:
            raise AssertionError(f"unknown action {change['action']}")
    return site


def arguments(case: Mapping[str, Any], site: Path, folder: Path) -> list[str]:
    """The sevref verify command line of a case."""
    given = case["verify"]
    args = ["verify", "--publication", str(site), "--json", "--at", given["at"]]
    for key in given["trusted_keys"]:
        args += ["--trusted-key", str(HERE / key)]
    args += ["--publisher", given["publisher"], "--product", given["product"], "--stream", given["stream"]]
    if given["state"] is not None:
        (folder / "state.json").write_text(json.dumps(given["state"]))
        args += ["--state", str(folder / "state.json")]
    if given["require_timestamp"]:
        args += ["--require-timestamp"]
    if given["max_age"] is not None:
        args += ["--max-age", given["max_age"]]
    evidence = given["evidence"] or {}
    if "snp_measurement" in evidence:
        args += ["--snp-measurement", evidence["snp_measurement"]]
    if "launch_measurement" in evidence:
        (folder / "tik.bin").write_bytes(bytes.fromhex(evidence["tik"]))
        args += ["--launch-measurement", evidence["launch_measurement"], "--tik", str(folder / "tik.bin")]
        args += ["--api-major", str(evidence["api_major"]), "--api-minor", str(evidence["api_minor"])]
        args += ["--build", str(evidence["build"]), "--policy", evidence["policy"]]
    return args


@pytest.mark.parametrize("ident", list(CASES))
def test_case(ident: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES[ident]
    site = materialise(case, tmp_path)
    out = io.StringIO()
    status = main(arguments(case, site, tmp_path), out=out)
    err = capsys.readouterr().err
    expect = case["expect"]
    assert status == expect["exit"], (case["description"], err)
    refusal = REFUSAL.match(err)
    assert (refusal.group(1) if refusal else None) == expect["check"], (case["description"], err)
    if expect["check"] is not None:
        assert len(err.splitlines()) == 1  # one line, no traceback
    if "gap" in expect:
        gap = json.loads(out.getvalue())["publication"]["history_gap"]
        assert (gap is not None) == expect["gap"], (case["description"], gap)
        assert gap is None or gap.startswith("gap: ")
    if "entries" in expect:
        matches = json.loads(out.getvalue())["matches"]
        assert [m["entry"] for m in matches if m["acceptable"]] == expect["entries"]


def test_the_suite_covers_every_file_and_every_check() -> None:
    base = HERE / "base" / "release-1"
    files = {str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()}
    for action in ("flip", "truncate", "delete"):
        changed = {
            c["changes"][0]["path"]
            for c in CASES.values()
            if c["base"] == "release-1" and c["changes"] and c["changes"][0]["action"] == action
        }
        assert changed == files, action
    assert {c["expect"]["check"] for c in CASES.values()} == {
        None,
        "fetch",
        "freshness",
        "keys",
        "signature",
        "identity",
        "expiry",
        "rollback",
        "history",
        "integrity",
    }
    assert {c["expect"]["exit"] for c in CASES.values()} == {0, 1, 3}
    # The launch-measurement case is what `sevref measurement` would compute.
    evidence = CASES["sev-es-launch-measurement"]["verify"]["evidence"]
    assert len(base64.b64decode(evidence["launch_measurement"])) == 48
