"""Every known-answer vector of ../shared/vectors, through ``sevref digest --batch``.

A vector that names its CPU both by model and by signature runs three ways:
as given, by name only and by signature only.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sevref._cli import main
from tests.conftest import VECTORS


def load() -> list[dict[str, Any]]:
    path = VECTORS / "known-answers.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


ALL = load()
PARAMS: list[Any] = (
    list(ALL) if ALL else [pytest.param(None, marks=pytest.mark.skip(reason=f"no vectors at {VECTORS}"))]
)


def expected_hex(vector: dict[str, Any]) -> str:
    """The expected digest as lowercase hex.

    The README promises hex, but a-1478 and a-1479 record what sev-snp-measure
    printed with ``--output-format base64``; those are decoded here.
    """
    digest: str = vector["expected"]["digest"]
    size = 96 if vector["input"]["mode"] == "sev-snp" else 64
    if re.fullmatch(f"[0-9a-f]{{{size}}}", digest):
        return digest
    decoded = base64.b64decode(digest, validate=True).hex()
    assert vector["id"] in {"a-1478", "a-1479"} and len(decoded) == size
    return decoded


def variants(vector: dict[str, Any]) -> list[dict[str, Any]]:
    given = dict(vector["input"])
    result = [given]
    if "cpu" in given and "cpu_signature" in given:
        result.append({k: v for k, v in given.items() if k != "cpu_signature"})
        result.append({k: v for k, v in given.items() if k != "cpu"})
    return result


@pytest.fixture(scope="session")
def batch_results(vector_root: Path) -> dict[str, list[dict[str, str]]]:
    """Run every supported vector's variants in one batch, from a file next to the inputs."""
    lines, owners = [], []
    for vector in ALL:
        for variant in variants(vector):
            lines.append(json.dumps(variant))
            owners.append(vector["id"])
    batch = vector_root / "batch.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    assert main(["digest", "--batch", str(batch)], out=out) == 0
    results: dict[str, list[dict[str, str]]] = {}
    for owner, line in zip(owners, out.getvalue().splitlines(), strict=True):
        results.setdefault(owner, []).append(json.loads(line))
    return results


@pytest.mark.parametrize(
    "vector",
    PARAMS,
    ids=lambda v: v["id"] if v else "none",
)
def test_vector(vector: dict[str, Any], batch_results: dict[str, list[dict[str, str]]]) -> None:
    results = batch_results[vector["id"]]
    assert len(results) == len(variants(vector))
    for result in results:
        assert result == {"digest": expected_hex(vector)}, vector["source"]


def test_vectors_are_all_there() -> None:
    if not ALL:
        pytest.skip(f"no vectors at {VECTORS}")
    assert len(ALL) == 517
    assert {v["source"] for v in ALL} == {"sev-snp-measure 0.0.13", "sev-snp-measure 0.0.9"}
