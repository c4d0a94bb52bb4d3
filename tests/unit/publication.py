"""A small signed publication in memory, for the verifier's unit tests (trust, match).

:func:`build_publication` runs the real build (:func:`sevref.pipeline.build`) on
the golden manifest and inputs, signed with a key made in memory, and returns
the publication as path to bytes; :func:`fetcher` serves such a mapping as a
verifier reads it; :func:`republish` changes files and signs the result again,
as a publisher (or one whose key was stolen) would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sevref.errors import NotFoundError
from sevref.pipeline import build
from sevref.serialize import canonical
from sevref.sign import (
    INDEX_PAYLOAD_TYPE,
    INTOTO_PAYLOAD_TYPE,
    Signer,
    envelope,
    load_public_key,
    sign_file,
    statement,
)
from sevref.trust import Fetch, TrustAnchor
from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden"
REVOKED_GCE = """\
  - match: {host_stack: gce}
    status: revoked
    reason: the host leaks its guests' keys
"""
"""A second lifecycle rule for the golden manifest: every GCE configuration is revoked."""
AT = datetime(2026, 2, 1, tzinfo=UTC)
"""A time within the golden manifest's validity (2026-01-01 to 2026-07-01)."""


def build_publication(
    folder: Path, signer: Signer, keys: Sequence[bytes] = (), lifecycle: str = ""
) -> dict[str, bytes]:
    """Build the golden manifest (with more lifecycle rules) into ``folder`` and read it back.

    Args:
        folder: an empty folder.
        signer: the release key.
        keys: the key chain; without one, a chain of one document naming ``signer``.
        lifecycle: rules to append to the manifest's lifecycle list.

    Returns:
        Every file of the publication by its relative path.
    """
    shutil.copytree(GOLDEN / "inputs", folder / "inputs")
    manifest = folder / "manifest.yaml"
    manifest.write_text((GOLDEN / "manifest.yaml").read_text(encoding="utf-8") + lifecycle, encoding="utf-8")
    out = folder / "publication"
    build([manifest], out, cache=folder / "cache", jobs=1, signer=signer, keys=keys)
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def fetcher(files: Mapping[str, bytes]) -> Fetch:
    """Serve a publication held in memory, as a folder or a web server would.

    Args:
        files: path to bytes.

    Returns:
        A fetch function that raises NotFoundError for a missing file.
    """

    def fetch(path: str, limit: int) -> bytes:
        try:
            data = files[path]
        except KeyError:
            raise NotFoundError(f"{path}: no such file") from None
        return data[: limit + 1]  # as sevref.edge.remote: at most one byte past the limit

    return fetch


def anchor(signer: Signer, **changes: Any) -> TrustAnchor:
    """What ``sevref verify --publisher golden --product tiny --stream test`` pins and asks for."""
    values: dict[str, Any] = {
        "keys": [load_public_key(signer.public_pem(), "pinned key")],
        "publisher": "golden",
        "product": "tiny",
        "stream": "test",
        "at": AT,
    }
    return TrustAnchor(**{**values, **changes})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(files: Mapping[str, bytes], path: str) -> Any:
    """The parsed payload of one of the publication's DSSE envelopes."""
    return json.loads(base64.b64decode(json.loads(files[path])["payload"]))


def republish(
    files: Mapping[str, bytes], signer: Signer, changes: Mapping[str, bytes], index: Mapping[str, Any] | None = None
) -> dict[str, bytes]:
    """Change listed files (and index members), then sign everything that pins them again.

    Args:
        files: the publication.
        signer: the key that signs the new index, signatures and statement.
        changes: new contents of listed files.
        index: members of ``index.json`` to replace.

    Returns:
        The changed publication.
    """
    result = {**files, **changes}
    data = {**json.loads(files["index.json"]), **(index or {})}
    data["files"] = [{**f, "sha256": sha256(result[f["path"]]), "size": len(result[f["path"]])} for f in data["files"]]
    index_bytes = canonical(data)
    result["index.json"] = index_bytes
    result["index.dsse.json"] = canonical(envelope(index_bytes, INDEX_PAYLOAD_TYPE, [signer]))
    for path in [*changes, "index.json"]:
        if path.endswith(".json"):
            result[f"{path}.sig"] = sign_file(signer, result[path])
    subjects = [(f["path"], f["sha256"]) for f in data["files"]] + [("index.json", sha256(index_bytes))]
    predicate = {**payload(files, "attestation.intoto.dsse.json")["predicate"]}
    predicate["index"] = {"path": "index.json", "sha256": sha256(index_bytes)}
    result["attestation.intoto.dsse.json"] = canonical(
        envelope(statement(subjects, predicate), INTOTO_PAYLOAD_TYPE, [signer])
    )
    return result
