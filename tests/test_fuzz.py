"""Fuzzing with hypothesis: bad input to any parser of untrusted input raises sevref's own errors only.

The targets of tests/fuzz/ (which ``python -m tests.fuzz`` runs coverage-guided
under atheris) are fed random bytes and their valid seeds mutated: bytes
flipped, overwritten, inserted and deleted where the parsers look hardest,
JSON values replaced, YAML tokens and lines shuffled. Any exception other than
a :class:`SevrefError` fails a test; so does an error of another type than the
one a parser documents, and a result that breaks what the parser promises.
The regression tests at the end pin the inputs that fuzzing found.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import importlib.util
import itertools
import json
import re
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref.binfmt.ovmf import parse_ovmf
from sevref.binfmt.report import REPORT_SIZE, AttestationReport, decode_report, parse_report
from sevref.digest import Firmware, Mode, launch_digests
from sevref.errors import (
    ConfigError,
    FirmwareFormatError,
    ManifestError,
    ReportFormatError,
    SevrefError,
    SignatureError,
    TrustError,
)
from sevref.keychain import KeysDocument, verify_chain
from sevref.manifest.loader import parse_yaml
from sevref.match import Match, entry, lookup_digest
from sevref.pipeline import load_manifest
from sevref.serialize import canonical, json_line
from sevref.sign import KEYS_PAYLOAD_TYPE, envelope, key_id, open_envelope
from sevref.trust import TrustedPublication, establish
from tests.conftest import REPO, missing
from tests.fuzz import firmware as fuzz_firmware
from tests.fuzz import manifest as fuzz_manifest
from tests.fuzz import report as fuzz_report
from tests.fuzz import snp as fuzz_snp
from tests.fuzz import verify as fuzz_verify
from tests.fuzz.__main__ import judge
from tests.images import snp_image

pytestmark = pytest.mark.slow

# --------------------------------------------------------------------------- mutations

INTERESTING_U32 = (0, 1, 2, 0x10, 0x12, 0x16, 0x7F, 0x80, 0xFF, 0x1000, 0x4000, 0xFFFF, 0x8000_0000, 0xFFFF_F000)


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], hot: Callable[[bytes], Sequence[tuple[int, int]]]) -> bytes:
    """A seed with 1 to 4 mutations, at places drawn mostly from ``hot(seed)`` (start, end) regions."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        regions = [(0, len(data)), *hot(bytes(data))]
        start, end = draw(st.sampled_from(regions))
        end = max(min(end, len(data)), start)
        at = draw(st.integers(start, end)) if data else 0
        kind = draw(st.sampled_from(("flip", "byte", "u32", "u32", "insert", "delete", "copy")))
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "u32":
            value = draw(st.sampled_from(INTERESTING_U32) | st.integers(0, 0xFFFF_FFFF) | st.just(len(data)))
            data[at : at + 4] = value.to_bytes(4, "little")
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=24))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            source = draw(st.integers(0, max(len(data) - 1, 0)))
            data[at : at + 16] = data[source : source + 16]
    return bytes(data)


def image_hot(data: bytes) -> list[tuple[int, int]]:
    """The footer GUID table (last 4 KiB) and the "ASEV" metadata, where the parser reads."""
    hot = [(max(len(data) - 4096, 0), len(data)), (max(len(data) - 160, 0), len(data))]
    asev = data.rfind(b"ASEV")
    if asev >= 0:
        hot += [(asev, asev + 16), (asev + 16, asev + 16 + 12 * 8)]
    return hot


def no_hot(data: bytes) -> list[tuple[int, int]]:
    """No region is hotter than the rest."""
    return []


SAFE = (1 << 53) - 1
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-SAFE, SAFE) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated_json(draw: st.DrawFn, document: Any) -> Any:
    """A JSON document with one value replaced by a random one, or removed."""
    document = json.loads(json.dumps(document))
    path = draw(st.sampled_from(_paths(document)))
    if not path:
        return draw(json_values)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return document


def sevref_errors_only(call: Callable[[], object], *documented: type[SevrefError]) -> object | SevrefError:
    """Run ``call``: return its result, or the SevrefError it raised, which must be of a documented type."""
    try:
        return call()
    except SevrefError as error:
        assert isinstance(error, documented or (SevrefError,)), f"{type(error).__name__}: {error}"
        assert error.diagnostic().strip(), "an error without a message"
        return error


# --------------------------------------------------------------------------- firmware and SEV-SNP metadata

FIRMWARE_SEEDS = fuzz_firmware.seeds()


def check_image(data: bytes) -> None:
    """Parse and measure an image, holding each step to what it documents."""
    info = sevref_errors_only(lambda: parse_ovmf(data), FirmwareFormatError)
    prepared = sevref_errors_only(lambda: Firmware.from_bytes(data), FirmwareFormatError)
    if isinstance(info, SevrefError):
        assert isinstance(prepared, SevrefError) and str(prepared) == str(info)
        return
    assert isinstance(prepared, Firmware) and prepared.info == info and info.size == len(data)
    for item in info.table:
        assert data[item.offset : item.offset + len(item.data)] == item.data
    sections = sorted(info.snp_sections or (), key=lambda s: s.gpa)
    for section in sections:
        assert section.gpa % 4096 == 0 and section.size % 4096 == 0 and section.size > 0
        assert section.gpa + section.size <= 1 << 32
    for low, high in itertools.pairwise(sections):
        assert low.gpa + low.size <= high.gpa
    for config, result in fuzz_firmware.measure(prepared).items():
        if isinstance(result, SevrefError):
            assert isinstance(result, (ConfigError, FirmwareFormatError)), f"{type(result).__name__}: {result}"
            continue
        size = 48 if config.mode in (Mode.SEV_SNP, Mode.SEV_SNP_FIRMWARE) else 32
        assert sorted(result) == list(fuzz_firmware.VCPUS) and {len(d) for d in result.values()} == {size}


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 3).flatmap(lambda n: st.binary(min_size=4096 * n, max_size=4096 * n)) | st.binary(max_size=64))
def test_random_images(data: bytes) -> None:
    check_image(data)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(FIRMWARE_SEEDS).flatmap(
        lambda seed: st.binary(max_size=200).map(lambda tail: seed[: -len(tail) or None] + tail)
    )
)
def test_images_with_a_random_tail(data: bytes) -> None:
    check_image(data)


@settings(max_examples=600, deadline=None)
@given(mutated(FIRMWARE_SEEDS, image_hot))
def test_mutated_images(data: bytes) -> None:
    check_image(data)


@settings(max_examples=500, deadline=None)
@given(mutated(fuzz_snp.seeds(), no_hot))
def test_mutated_snp_metadata(data: bytes) -> None:
    check_image(fuzz_snp.image(data))


edge_gpas = st.sampled_from((0, 0x1000, 0x800000, 0xFFFF_E000, 0xFFFF_F000, 0x1_0000_0000)) | st.integers(
    0, 1 << 32
).map(lambda n: n & ~0xFFF)
edge_sizes = st.sampled_from((0, 0x1000, 0x2000, 0xFFF, 0x1001, 0x10_0000, 0xFFFF_F000)) | st.integers(0, 1 << 24)
section_types = st.sampled_from((0, 1, 2, 3, 4, 5, 0x10, 0x11, 0xFFFF_FFFF))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(edge_gpas.map(lambda n: n & 0xFFFF_FFFF), edge_sizes.map(lambda n: n & 0xFFFF_FFFF), section_types),
        max_size=6,
    ),
    st.sampled_from((None, 0, 3, 0x1000, 0xFFFF_FFFF)),
    st.sampled_from((None, 0, 15, 16, 0x7F0, 0x800, 0x801, 0xFFFF_FFFF)),
    st.tuples(st.integers(0, 0xFFFF_FFFF), st.integers(0, 0xFFFF_FFFF)),
)
def test_snp_section_tables(
    sections: list[tuple[int, int, int]], count: int | None, header_size: int | None, area: tuple[int, int]
) -> None:
    check_image(snp_image(sections, count=count, header_size=header_size, hash_table=area))


# --------------------------------------------------------------------------- attestation reports

REPORT_SEEDS = fuzz_report.seeds()


def check_report(data: bytes) -> None:
    """Parse, decode and print a report; a parsed report decodes to its own bytes."""
    parsed = sevref_errors_only(lambda: parse_report(data), ReportFormatError)
    if isinstance(parsed, SevrefError):
        version = int.from_bytes(data[:4], "little")
        assert len(data) != REPORT_SIZE or not 2 <= version <= 5
        return
    assert isinstance(parsed, AttestationReport)
    decoded = decode_report(parsed)
    assert decoded["version"] == int.from_bytes(data[:4], "little")
    assert decoded["measurement"] == data[0x90:0xC0].hex() and decoded["chip_id"] == data[0x1A0:0x1E0].hex()
    assert json.loads(json_line(decoded)) == decoded
    fuzz_report.one_input(data)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=2 * REPORT_SIZE)
    | st.tuples(st.integers(0, 7), st.binary(min_size=REPORT_SIZE - 4, max_size=REPORT_SIZE - 4)).map(
        lambda p: p[0].to_bytes(4, "little") + p[1]
    )
)
def test_random_reports(data: bytes) -> None:
    check_report(data)


@settings(max_examples=200, deadline=None)
@given(mutated(REPORT_SEEDS, lambda data: [(0, 8), (0x180, 0x1A0), (0x1E0, 0x208)]))
def test_mutated_reports(data: bytes) -> None:
    check_report(data)


# --------------------------------------------------------------------------- manifests

MANIFEST_SEEDS = fuzz_manifest.seeds()


def check_manifest(data: bytes) -> None:
    """Parse a manifest, then load and expand it: ManifestError only."""
    parsed = sevref_errors_only(lambda: parse_yaml(data, "fuzz.yaml", fuzz_manifest.GOLDEN), ManifestError)
    if not isinstance(parsed, SevrefError):
        sevref_errors_only(lambda: fuzz_manifest.load(data), ManifestError)


@st.composite
def yaml_edits(draw: st.DrawFn) -> bytes:
    """A valid manifest with YAML tokens or whole lines deleted, doubled, or replaced by another or by odd YAML."""
    text = draw(st.sampled_from(MANIFEST_SEEDS)).decode("utf-8")
    if draw(st.booleans()):
        tokens = list(yaml.scan(text))
        spans = [(t.start_mark.index, t.end_mark.index) for t in tokens if t.end_mark.index > t.start_mark.index]
    else:
        lines = text.splitlines(keepends=True)
        starts = [sum(len(line) for line in lines[:n]) for n in range(len(lines) + 1)]
        spans = list(itertools.pairwise(starts))
    for _ in range(draw(st.integers(1, 3))):
        start, end = draw(st.sampled_from(spans))
        piece = text[start:end]
        other = draw(st.sampled_from(spans))
        replacement = draw(
            st.sampled_from(("", piece + piece, text[other[0] : other[1]]))
            | st.sampled_from(
                ("null", "[]", "{}", "-1", "0x10", "1e999", "~", "&a x", "*a", '"\\u0000"', "!!str 1", "? x")
            )
            | st.text(max_size=8)
        )
        text = text[:start] + replacement + text[end:]
        spans = [(s, e) for s, e in spans if e <= len(text)]
        if not spans:
            break
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_random_manifests(data: bytes) -> None:
    check_manifest(data)


@settings(max_examples=400, deadline=None)
@given(mutated(MANIFEST_SEEDS, no_hot) | yaml_edits())
def test_mutated_manifests(data: bytes) -> None:
    check_manifest(data)


@settings(max_examples=25, deadline=None)
@given(yaml_edits())
def test_mutated_manifest_files(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.yaml"
        path.write_bytes(data)
        sevref_errors_only(lambda: load_manifest([path]))


# --------------------------------------------------------------------------- sevref verify

PUBLICATION = fuzz_verify.PUBLICATION


def trust(files: dict[str, bytes], only_needed: bool) -> TrustedPublication | TrustError:
    """Run ``establish``; it raises TrustError only."""
    expected = dataclasses.replace(fuzz_verify.EXPECTED, check_all_files=not only_needed)
    result = sevref_errors_only(lambda: establish(fuzz_verify.fetcher(files), expected), TrustError)
    assert isinstance(result, (TrustedPublication, TrustError))
    return result


@st.composite
def changed_file(draw: st.DrawFn) -> tuple[str, bytes | None]:
    """A file of the golden publication (or one it lacks) with new content, or None to remove it."""
    path = draw(st.sampled_from(sorted(PUBLICATION)) | st.sampled_from(fuzz_verify.PATHS))
    original = PUBLICATION.get(path, b"{}")
    how = draw(st.sampled_from(("remove", "bytes", "json", "random")))
    if how == "remove":
        return path, None
    if how == "bytes":
        return path, draw(mutated([original], no_hot))
    if how == "json" and path.endswith(".json"):
        return path, json.dumps(draw(mutated_json(json.loads(original)))).encode()
    return path, draw(st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()))


@settings(max_examples=400, deadline=None)
@given(st.lists(changed_file(), min_size=1, max_size=3), st.booleans())
def test_unsigned_changes_are_refused(changes: list[tuple[str, bytes | None]], only_needed: bool) -> None:
    files = dict(PUBLICATION)
    for path, content in changes:
        if content is None:
            files.pop(path, None)
        else:
            files[path] = content
    trusted = trust(files, only_needed)
    if isinstance(trusted, TrustError):
        return
    for path in {path for path, _ in changes}:
        if path in PUBLICATION and fuzz_verify.reads(path, only_needed):
            assert path in files and fuzz_verify.same_meaning(path, files[path]), path
    sevref_errors_only(
        lambda: fuzz_verify.look_up(trusted, changes[0][0], changes[0][1] or b""), TrustError, ConfigError
    )


SIGNED = [path for path in fuzz_verify.PATHS if path.endswith(".json")] + ["groups/1.json", "digests/f.json"]


@settings(max_examples=250, deadline=None)
@given(st.sampled_from(SIGNED), st.data(), st.booleans())
def test_signed_malformed_files_are_refused(path: str, data: st.DataObject, only_needed: bool) -> None:
    if path.endswith(".dsse.json"):
        original = json.loads(
            base64.b64decode(json.loads(PUBLICATION.get(path, PUBLICATION["keys/1.dsse.json"]))["payload"])
        )
    else:
        original = json.loads(PUBLICATION[path])
    content = canonical(data.draw(mutated_json(original).filter(_canonical_form), label="content"))
    files = dict(PUBLICATION)
    fuzz_verify.sign(files, path, content)
    trusted = trust(files, only_needed)
    if isinstance(trusted, TrustedPublication):
        sevref_errors_only(lambda: fuzz_verify.look_up(trusted, path, content), TrustError, ConfigError)


def _canonical_form(value: Any) -> bool:
    """Whether sevref can write a value as canonical JSON (no floats, safe integers)."""
    try:
        canonical(value)
    except SevrefError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(json_values | mutated_json(json.loads(PUBLICATION["index.dsse.json"])))
def test_open_envelope_on_any_json(value: Any) -> None:
    keys = {key_id(k): k for k in fuzz_verify.EXPECTED.keys}
    sevref_errors_only(
        lambda: open_envelope(value, "application/vnd.sevref.index+json", keys, "e.json"), SignatureError
    )


KEYS_DOCUMENT = json.loads(base64.b64decode(json.loads(PUBLICATION["keys/1.dsse.json"])["payload"]))


@settings(max_examples=200, deadline=None)
@given(
    json_values.map(lambda v: json.dumps(v).encode())
    | mutated_json(KEYS_DOCUMENT).map(lambda v: json.dumps(v).encode())
    | mutated([canonical(KEYS_DOCUMENT)], no_hot)
)
def test_keys_documents(data: bytes) -> None:
    document = sevref_errors_only(lambda: KeysDocument.from_bytes(data, "keys/1.dsse.json"), SignatureError)
    if isinstance(document, KeysDocument):
        assert KeysDocument.from_bytes(document.to_bytes(), "again") == document
        sevref_errors_only(document.active, SignatureError)


@pytest.fixture(scope="module")
def golden() -> TrustedPublication:
    trusted = trust(dict(PUBLICATION), only_needed=True)
    assert isinstance(trusted, TrustedPublication)
    return trusted


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(fuzz_verify.DIGESTS) | st.text(alphabet="0123456789abcdef", max_size=100) | st.text(max_size=30))
def test_lookups(golden: TrustedPublication, digest: str) -> None:
    matches = sevref_errors_only(functools.partial(lookup_digest, golden, digest), TrustError)
    assert isinstance(matches, list)
    assert all(m.digest == digest for m in matches) and (digest not in fuzz_verify.DIGESTS or matches)
    for ident in (digest, digest[:20], digest[:20] + "-0001", digest[:25]):
        found = sevref_errors_only(functools.partial(entry, golden, ident), TrustError, ConfigError)
        assert isinstance(found, SevrefError) or (isinstance(found, Match) and found.entry_id == ident)


# --------------------------------------------------------------------------- the targets themselves


def test_seeds_are_valid() -> None:
    golden, *others = fuzz_firmware.seeds()
    assert all(isinstance(r, dict) for r in fuzz_firmware.measure(Firmware.from_bytes(golden)).values())
    for seed in others:
        Firmware.from_bytes(seed)
    for seed in fuzz_snp.seeds():
        results = fuzz_firmware.measure(Firmware.from_bytes(fuzz_snp.image(seed)))
        assert isinstance(results[fuzz_firmware.SNP], dict)
    for seed in fuzz_report.seeds():
        parse_report(seed)
    for seed in fuzz_manifest.seeds():
        fuzz_manifest.load(seed)
    for seed in fuzz_verify.seeds():
        files, _, flags = fuzz_verify.publication(seed)
        assert isinstance(trust(files, bool(flags & fuzz_verify.ONLY_NEEDED)), TrustedPublication)


@pytest.mark.parametrize(
    "module", [fuzz_firmware, fuzz_snp, fuzz_report, fuzz_manifest, fuzz_verify], ids=lambda m: m.__name__
)
def test_targets_take_any_bytes(module: Any) -> None:
    for data in (b"", b"\x00", b"\xff" * 3, *module.seeds()[:3]):
        module.one_input(data)


STATS = "stat::number_of_executed_units: 123456\nstat::average_exec_per_sec:     1016\nstat::peak_rss_mb: 77\n"


@pytest.mark.parametrize(
    ("log", "status", "problem"),
    [
        (STATS, 0, None),
        ("", 0, None),
        (" === Uncaught Python exception: ===\n" + STATS, 1, "crash: uncaught exception"),
        ("==7== ERROR: libFuzzer: timeout after 11 seconds\n" + STATS, 1, "crash: an input ran over 10 s"),
        ("==7== ERROR: libFuzzer: out-of-memory (used: 2100Mb)\n" + STATS, 1, "crash: an input used over 2048 MB"),
        (STATS, -9, "crash: exit status -9"),
    ],
)
def test_runner_reads_libfuzzer(log: str, status: int, problem: str | None) -> None:
    stats, found = judge(log, status)
    assert found == problem
    assert stats == (
        {"number_of_executed_units": 123_456, "average_exec_per_sec": 1016, "peak_rss_mb": 77} if log else {}
    )


@pytest.mark.parametrize(
    ("limits", "status", "result"),
    [
        (["--min-execs", "1000"], 0, "ok"),
        (
            ["--min-execs", "1000000000", "--max-seconds", "2"],
            1,
            r"too few: [\d,]+ executions in \d+ s; expected at least 1,000,000,000",
        ),
    ],
)
def test_runner_fuzzes_a_target(tmp_path: Path, limits: list[str], status: int, result: str) -> None:
    if importlib.util.find_spec("atheris") is None:
        missing("atheris is not installed (a development dependency)")
    command = [sys.executable, "-m", "tests.fuzz", "--seconds", "1", *limits, "--artifacts", str(tmp_path), "report"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == status, run.stdout + run.stderr
    line = r"report +[\d,]+ execs +[\d.]+ s +[\d,]+ exec/s corpus +\d+ slowest +\d+ s  "
    assert re.fullmatch(line + result + "\n", run.stdout), run.stdout
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- regressions: what fuzzing found

KEYS_PREFIX = b'{"schema":"urn:sevref:schema:keys:1","publisher":"golden",'


KEY = b'"keyid":"' + b"a" * 64 + b'","reason":null,"label":null,"status":"active"'
PEM = json.dumps((fuzz_verify.GOLDEN / "key" / "golden.pub").read_text()).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"[" * 100_000,
            "keys/1.dsse.json: nested deeper than sevref reads; expected a flatter document (not a sevref keys document)",
        ),
        (KEYS_PREFIX + b'"version":Infinity,"keys":[]}', "keys/1.dsse.json: Infinity is not JSON"),
        (KEYS_PREFIX + b'"version":1.0,"keys":[]}', "keys/1.dsse.json: the number 1.0 is not an integer"),
        (KEYS_PREFIX + b'"version":1,"version":2,"keys":[]}', "keys/1.dsse.json: key 'version' appears twice"),
        (KEYS_PREFIX + b'"version":true,"keys":[]}', "/version: expected an integer, found true"),
        (KEYS_PREFIX + b'"version":1,"keys":{}}', "/keys: expected a list, found an empty mapping"),
        (KEYS_PREFIX + b'"version":1,"keys":[5]}', "/keys/0: expected a mapping, found 5"),
        (
            KEYS_PREFIX + b'"version":1,"keys":[{' + KEY + b',"algorithm":"ed25519","public_key":5}]}',
            "/keys/0/public_key: expected text, found 5",
        ),
        (
            KEYS_PREFIX + b'"version":1,"keys":[{' + KEY + b',"algorithm":"ed25519","public_key":"\xc3\xa9"}]}',
            "/keys/0/public_key: expected text matching ^-----BEGIN PUBLIC KEY-----",
        ),
        (
            KEYS_PREFIX + b'"version":1,"threshold":2,"keys":[{' + KEY + b',"algorithm":"ed25519","public_key":""}]}',
            "/: unknown key 'threshold'; expected one of keys, publisher, schema, version",
        ),
        (
            KEYS_PREFIX + b'"version":1,"keys":[{' + KEY + b',"algorithm":[],"public_key":' + PEM + b"}]}",
            '/keys/0/algorithm: expected one of "ecdsa-p256", "ecdsa-p384", "ed25519", found an empty list',
        ),
        (
            KEYS_PREFIX + b'"version":1,"keys":[{' + KEY + b',"algorithm":"rsa","public_key":' + PEM + b"}]}",
            '/keys/0/algorithm: expected one of "ecdsa-p256", "ecdsa-p384", "ed25519", found "rsa"',
        ),
    ],
)
def test_malformed_keys_documents(data: bytes, message: str) -> None:
    with pytest.raises(SignatureError) as raised:
        KeysDocument.from_bytes(data, "keys/1.dsse.json")
    assert message in str(raised.value)


@pytest.mark.parametrize("keyid", [["a"], 1, None, {"a": 1}])
def test_envelope_keyids_that_are_not_text(keyid: Any) -> None:
    value = {"payload": "", "payloadType": "t", "signatures": [{"keyid": keyid, "sig": ""}]}
    with pytest.raises(SignatureError, match=r"e.json: malformed envelope \(keyid .*; expected text\)"):
        open_envelope(value, "t", {}, "e.json")


@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        ("index.dsse.json", b"[" * 100_000, "signature: index.dsse.json: 100000 objects or lists and 0 commas"),
        ("index.dsse.json", b"[" * 10 + b"]" * 10, "signature: index.dsse.json: expected a DSSE envelope"),
        (
            "index.dsse.json",
            b'{"payload":"","payloadType":"application/vnd.sevref.index+json","signatures":5}',
            "signature: index.dsse.json: malformed envelope",
        ),
        ("keys/1.dsse.json", b"[" * 100_000, "fetch: keys/1.dsse.json: more than 65536 bytes"),
        ("keys/1.dsse.json", b"[" * 60_000, "keys: no keys document is signed by a pinned key"),
    ],
)
def test_unsigned_regressions(path: str, content: bytes, message: str) -> None:
    files = {**PUBLICATION, path: content}
    with pytest.raises(TrustError, match=re.escape(message)):
        establish(fuzz_verify.fetcher(files), fuzz_verify.EXPECTED)


def test_first_keys_document_that_is_no_keys_document() -> None:
    document = canonical(envelope(b'{"schema":"urn:sevref:schema:keys:1"}', KEYS_PAYLOAD_TYPE, [fuzz_verify.SIGNER]))
    with pytest.raises(
        TrustError, match=r"not trusted: keys: keys/1.dsse.json: /: 'publisher' is missing; expected it here"
    ):
        verify_chain([document])


@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        ("attestation.intoto.dsse.json", b"1.5", "the in-toto statement: the number 1.5 is not an integer"),
        ("attestation.intoto.dsse.json", b"15", "does not state the files the index lists"),
        ("attestation.intoto.dsse.json", b'{"subject":[1]}', "does not state the files the index lists"),
        ("digests/0.json", {"digests": None}, "digests/0.json: /digests: expected a mapping, found null"),
        ("digests/0.json", {"digests": [None]}, "digests/0.json: /digests: expected a mapping, found a list of 1"),
        ("groups/7.json", {"groups": {"a": 1}}, "groups/7.json: /groups: expected a list, found a mapping"),
        ("groups/7.json", {"groups": [{"id": "7887d07a65e5984bd0eb"}]}, "groups/7.json: /groups/0: "),
    ],
)
def test_signed_regressions(path: str, content: bytes | dict[str, Any], message: str) -> None:
    if isinstance(content, dict):
        golden = json.loads(PUBLICATION[path])
        content = canonical({**golden, **content})
    files = dict(PUBLICATION)
    fuzz_verify.sign(files, path, content)
    with pytest.raises(TrustError, match=re.escape(message)):
        trusted = establish(fuzz_verify.fetcher(files), fuzz_verify.EXPECTED)
        fuzz_verify.look_up(trusted, path, b"")


@pytest.mark.parametrize("ident", ["8e527104f0de640f6dc0-", "8e527104f0de640f6dc0-x", "8E527104F0DE640F6DC0", ""])
def test_malformed_entry_ids(golden: TrustedPublication, ident: str) -> None:
    with pytest.raises(ConfigError, match=r"expected an entry id, 20 lowercase hex digits"):
        entry(golden, ident)


def test_a_huge_kernel_hashes_section_is_measured_in_bounded_memory() -> None:
    size = 256 << 20
    image = snp_image([(0x1000_0000, size, 0x10), (0x803000, 0x1000, 3)], hash_table=(0x1000_0FA0, 0x400))
    firmware = Firmware.from_bytes(image)
    config = fuzz_firmware.SNP_BOOT
    tracemalloc.start()
    try:
        digests = launch_digests(firmware, config, [1])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(digests[1]) == 48 and peak < size // 16, peak


# --------------------------------------------------------------------------- defects of sevref/manifest.py


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[" * 100_000, "fuzz.yaml:1:33: nested more than 32 levels deep"),
        (b"sevref: " + b"1" * 5000 + b"\n", "fuzz.yaml:1:9: an integer written with 5000 characters"),
    ],
)
def test_manifest_regressions(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(message)):
        fuzz_manifest.load(data)


MANIFEST_REGRESSIONS = {
    # found by fuzzing; each let another exception out of sevref/manifest.py
    "control character": (b"sevref: 1\n\x0e\n", "fuzz.yaml:2:1: character 0x0e is not allowed in YAML"),
    "!!binary value": (b"sevref: !!binary AAAA\n", "fuzz.yaml:1:9: the YAML tag !!binary makes a value JSON has not"),
    "!!timestamp value": (b"sevref: !!timestamp 2001-12-14\n", "fuzz.yaml:1:9: the YAML tag !!timestamp"),
    "!!set value": (b"sevref: !!set {a}\n", "fuzz.yaml:1:9: the YAML tag !!set"),
    "null and text keys": (b"sevref: 1\n~: 1\nx: 1\n", "fuzz.yaml:2:1: mapping key '~' is not text"),
    "integer and text keys": (b"sevref: 1\n1: 1\nx: 1\n", "fuzz.yaml:2:1: mapping key '1' is not text"),
    # YAML 1.1 numbers are text here (YAML 1.2): the schema then refuses them as such
    "sexagesimal": (b"sevref: 190:20:30\n", 'fuzz.yaml:1:9: /sevref: expected one of 1, found "190:20:30"'),
    "underscores": (b"sevref: 1_0\n", 'fuzz.yaml:1:9: /sevref: expected one of 1, found "1_0"'),
}


@pytest.mark.parametrize("name", MANIFEST_REGRESSIONS)
def test_manifest_defects_found_by_fuzzing(name: str) -> None:
    data, message = MANIFEST_REGRESSIONS[name]
    with pytest.raises(ManifestError, match="^" + re.escape(message)):
        fuzz_manifest.load(data)


@pytest.mark.parametrize("check_all_files", [True, False])
def test_a_signed_but_malformed_file_is_refused(check_all_files: bool) -> None:
    """The publisher's signature says who wrote a file, not that it is well formed."""
    files = dict(fuzz_verify.PUBLICATION)
    path = next(p for p in sorted(files) if p.startswith("digests/") and p.endswith(".json"))
    shard = json.loads(files[path])
    shard["digests"]["not a digest"] = ["0123456789abcdef0123"]
    fuzz_verify.sign(files, path, canonical(shard))
    expected = dataclasses.replace(fuzz_verify.EXPECTED, check_all_files=check_all_files)
    with pytest.raises(TrustError, match=f"^not trusted: integrity: {re.escape(path)}: /digests/not a digest: key"):
        publication = establish(fuzz_verify.fetcher(files), expected)
        publication.read(path)  # only reached when files are checked as they are read
