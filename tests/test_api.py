"""sevref.api: build, sign, verify and digest as typed functions, and the command line is argv → API call → exit code."""

from __future__ import annotations

import ast
import inspect
import json
import random
import shutil
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sevref import api
from sevref._cli import main
from sevref.api import Built, SnpMeasurement, Verdict
from sevref.errors import TrustError
from tests.conftest import CACHE, REPO

GOLDEN = REPO / "tests" / "golden"
AT = datetime(2026, 2, 1, tzinfo=UTC)
"""When the golden publication is checked (it is issued in January 2026)."""


def _verify(publication: Path, evidence: api.Evidence | None = None) -> Verdict:
    keys = [GOLDEN / "key" / "golden.pub"]
    return api.verify(
        str(publication), trusted_keys=keys, publisher="golden", product="tiny", stream="test", at=AT, evidence=evidence
    )


def _annotations_namespace() -> dict[str, Any]:
    """The names api.py imports for its annotations only (under TYPE_CHECKING), imported here."""
    tree = ast.parse(Path(api.__file__).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(body=block.body, type_ignores=[]), "api-annotations", "exec"), namespace)  # noqa: S102
    return namespace


def test_the_api_offers_build_sign_verify_and_digest_typed_and_documented() -> None:
    namespace = _annotations_namespace()
    for name in ("build", "sign", "verify", "digest", "load_key"):
        assert name in api.__all__
        function = getattr(api, name)
        hints = typing.get_type_hints(function, localns=namespace)  # every annotation resolves
        parameters = inspect.signature(function).parameters
        assert "return" in hints, name
        assert {p for p in parameters if parameters[p].kind is not inspect.Parameter.VAR_KEYWORD} <= set(hints), name
        doc = inspect.getdoc(function) or ""
        assert "Args:" in doc and "Returns:" in doc and "Raises:" in doc, name
        for parameter in parameters:
            assert f"{parameter}:" in doc, f"{name}: {parameter} is not documented"
    assert all(hasattr(api, name) for name in api.__all__)


def test_the_golden_publication_is_built_and_signed_through_the_api_byte_for_byte(tmp_path: Path) -> None:
    site = tmp_path / "site"
    built = api.build([GOLDEN / "manifest.yaml"], site, cache=CACHE)
    assert isinstance(built, Built) and built.summary.keyid is None and built.previous is None
    signer = api.load_key(GOLDEN / "key" / "golden.pem", b"golden-test-key-not-a-secret")
    signed = api.sign(site, signer, keys=GOLDEN / "key" / "chain", index_sha256=built.summary.index_sha256)
    assert signed.keyid == signer.keyid
    committed = GOLDEN / "publication"
    files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(site) for p in site.rglob("*") if p.is_file())
    assert [f for f in files if (site / f).read_bytes() != (committed / f).read_bytes()] == []


def _published_snp_digest(publication: Path) -> str:
    for path in sorted((publication / "digests").glob("*.json")):
        table: dict[str, object] = json.loads(path.read_bytes())["digests"]
        for digest in sorted(table):
            if len(digest) == 96:
                return digest
    raise AssertionError("the golden publication has no SEV-SNP digest")


def test_verify_gives_the_verdict_and_the_exit_code_the_command_gives(tmp_path: Path) -> None:
    publication = GOLDEN / "publication"
    digest = _published_snp_digest(publication)
    trusted = _verify(publication)
    assert trusted.accepted and trusted.status == 0 and trusted.evidence is None and trusted.reason is None
    assert trusted.publication is not None and trusted.publication.index.release.publisher == "golden"

    match = _verify(publication, SnpMeasurement(digest))
    assert match.accepted and match.matches and all(m.acceptable for m in match.matches)
    assert match.signature is not None and match.signature.reason == "no-report"

    other = f"{int(digest, 16) ^ 1:096x}"
    miss = _verify(publication, SnpMeasurement(other))
    assert (miss.status, miss.matches) == (1, ())
    assert miss.reason is not None and miss.reason.startswith(f"no match: the SEV-SNP measurement {other}")

    tampered = tmp_path / "tampered"
    shutil.copytree(publication, tampered)
    groups = sorted((tampered / "groups").glob("*.json"))[0]
    data = bytearray(groups.read_bytes())
    data[random.Random(7).randrange(len(data))] ^= 1
    groups.write_bytes(bytes(data))
    with pytest.raises(TrustError, match="groups/"):
        _verify(tampered)


def test_digest_gives_the_known_answers(vector_root: Path) -> None:
    lines = (REPO / "tests" / "vectors" / "known-answers.jsonl").read_text(encoding="utf-8").splitlines()
    vectors = [json.loads(line) for line in lines]
    chosen = random.Random(25).sample(vectors, 12)
    for vector in chosen:
        given: dict[str, Any] = dict(vector["input"])
        for key in ("firmware", "kernel", "initrd"):
            if key in given:
                given[key] = str(vector_root / given[key])
        result = api.digest(given.pop("mode"), given.pop("firmware"), **given)
        assert result.hex() == vector["expected"]["digest"], vector["id"]
        assert result.firmware_sha256.hex() == vector["input"]["firmware_sha256"], vector["id"]


def _stand_in(monkeypatch: pytest.MonkeyPatch, name: str, result: object) -> dict[str, Any]:
    """Replace ``sevref.api.<name>`` with a recorder that returns ``result``; the dict gets its arguments."""
    seen: dict[str, Any] = {}

    def record(*args: object, **kwargs: object) -> object:
        seen["args"], seen["kwargs"] = args, kwargs
        return result

    monkeypatch.setattr(api, name, record)
    return seen


def test_the_verify_command_is_argv_to_an_api_call_to_an_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = _stand_in(monkeypatch, "verify", Verdict(None, refused="the chain does not hold"))
    argv = ["verify", "--publication", "https://example.invalid/p/", "--trusted-key", "k.pub"]
    argv += ["--publisher", "p", "--product", "q", "--stream", "s", "--snp-report", "r.bin", "--vcek", "v.der"]
    argv += ["--allow-debug", "--min-tcb", "snp=8", "--at", "2026-02-01T00:00:00Z"]
    assert main(argv) == 3
    assert seen["args"] == ("https://example.invalid/p/",)
    kwargs = seen["kwargs"]
    assert (kwargs["trusted_keys"], kwargs["publisher"], kwargs["product"], kwargs["stream"]) == (
        ["k.pub"],
        "p",
        "q",
        "s",
    )
    assert kwargs["at"] == AT
    evidence = kwargs["evidence"]
    assert isinstance(evidence, api.SnpReport) and (evidence.report, evidence.vcek) == ("r.bin", "v.der")
    assert evidence.acceptance is not None and evidence.acceptance.allow_debug
    assert dict(evidence.acceptance.min_tcb) == {"snp": 8}
    assert "sevref: not accepted: the chain does not hold" in capsys.readouterr().err


def test_the_build_sign_and_digest_commands_call_the_api(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen = _stand_in(monkeypatch, "digest", None)
    with pytest.raises(AttributeError):  # the stand-in's None has no hex(): the command printed the API's result
        main(["digest", "--mode", "sev-snp", "--firmware", "f.fd", "--vcpus", "4", "--cpu", "EPYC-Milan"])
    assert (
        seen["args"] == ("sev-snp", "f.fd") and seen["kwargs"]["vcpus"] == 4 and seen["kwargs"]["cpu"] == "EPYC-Milan"
    )

    seen = _stand_in(monkeypatch, "build", None)
    with pytest.raises(AttributeError):  # None has no summary
        main(["build", "m.yaml", "--out", str(tmp_path / "out"), "--serial", "9", "--previous", "old/"])
    assert seen["args"] == (["m.yaml"], str(tmp_path / "out"))
    assert (seen["kwargs"]["serial"], seen["kwargs"]["previous"], seen["kwargs"]["signer"]) == (9, "old/", None)

    monkeypatch.setenv("SEVREF_KEY_PASSPHRASE", "golden-test-key-not-a-secret")
    seen = _stand_in(monkeypatch, "sign", None)
    with pytest.raises(AttributeError):  # None has no out
        main(["sign", "site", "--signing-key", str(GOLDEN / "key" / "golden.pem"), "--index-sha256", "AB" * 32])
    assert seen["args"][0] == "site" and seen["kwargs"]["index_sha256"] == "AB" * 32
    assert seen["args"][1].keyid == api.load_key(GOLDEN / "key" / "golden.pem", b"golden-test-key-not-a-secret").keyid


def test_the_readmes_example_uses_the_api_as_it_is() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) == 1
    tree = ast.parse(blocks[0])  # it is Python
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and getattr(n.value, "id", "") == "api"}
    assert used and used <= set(api.__all__), used - set(api.__all__)
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        function = call.func
        if isinstance(function, ast.Attribute) and getattr(function.value, "id", "") == "api":
            keywords = {k.arg: None for k in call.keywords if k.arg is not None}  # each call binds as it is
            inspect.signature(getattr(api, function.attr)).bind(*call.args, **keywords)


def test_an_unsigned_build_verifies_the_release_it_follows_against_the_chain(tmp_path: Path) -> None:
    chain = GOLDEN / "key" / "chain"
    built = api.build(
        [GOLDEN / "manifest.yaml"],
        tmp_path / "next",
        cache=CACHE,
        serial=4,
        keys=chain,
        previous=str(GOLDEN / "publication"),
    )
    assert built.summary.keyid is None and built.previous is not None and built.previous_verified
    assert not (tmp_path / "next" / "keys").exists()  # an unsigned release publishes no chain: sevref sign adds it
    forged = tmp_path / "forged"
    shutil.copytree(GOLDEN / "publication", forged)
    (forged / "index.json.sig").write_bytes(b"\0" * 71)
    with pytest.raises(api.SevrefError, match="--previous"):
        api.build(
            [GOLDEN / "manifest.yaml"], tmp_path / "other", cache=CACHE, serial=4, keys=chain, previous=str(forged)
        )
    unverified = api.build([GOLDEN / "manifest.yaml"], tmp_path / "third", cache=CACHE, serial=4, previous=str(forged))
    assert unverified.previous is not None and not unverified.previous_verified
