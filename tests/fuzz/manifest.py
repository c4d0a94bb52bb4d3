"""Fuzz target: manifest files, parsed, checked against the schema and each other, and expanded."""

from __future__ import annotations

import hashlib
import json
from typing import cast

import yaml

from sevref.binfmt.ovmf import parse_ovmf
from sevref.errors import SevrefError
from sevref.expand import expand
from sevref.manifest.loader import parse_yaml
from sevref.manifest.reader import load_manifests
from tests.conftest import REPO
from tests.fuzz.firmware import TINY
from tests.test_build import BASE

GOLDEN = REPO / "tests" / "golden"
_TINY_INFO = parse_ovmf(TINY.read_bytes())
_MAX_ENTRIES = 10_000


def seeds() -> list[bytes]:
    """Valid manifests and the parts of one.

    Returns:
        The golden manifest (as YAML and as JSON), the build tests' base
        manifest, and the bundled example's files as one.
    """
    golden = (GOLDEN / "manifest.yaml").read_bytes()
    base = BASE.replace("FIRMWARE", "inputs/tiny.fd").replace("FWSHA", hashlib.sha256(TINY.read_bytes()).hexdigest())
    base = base.replace("KERNEL", "inputs/vmlinuz").replace("KSHA", "ab" * 32)
    # The bundled example's files as one manifest: each section's items, file after file.
    example: dict[str, object] = {}
    for path in sorted((REPO / "manifests").glob("*.yaml")):
        for key, value in yaml.safe_load(path.read_text(encoding="utf-8")).items():
            if isinstance(value, list):
                cast("list[object]", example.setdefault(key, [])).extend(value)
            else:
                example.setdefault(key, value)
    merged = yaml.safe_dump(example, sort_keys=False, allow_unicode=True)
    return [golden, json.dumps(yaml.safe_load(golden)).encode(), base.encode(), merged.encode()]


def load(data: bytes) -> None:
    """Load a manifest and expand it against the golden firmware.

    Args:
        data: the manifest file's bytes.

    Raises:
        SevrefError: the manifest is refused.
    """
    manifest = load_manifests([parse_yaml(data, "fuzz.yaml", GOLDEN)])
    expand(manifest, dict.fromkeys(manifest.firmware, _TINY_INFO), _MAX_ENTRIES, found={})


def one_input(data: bytes) -> None:
    """Load a manifest; any exception that escapes is a bug.

    Args:
        data: the manifest file's bytes.
    """
    try:
        load(data)
    except SevrefError:
        return
