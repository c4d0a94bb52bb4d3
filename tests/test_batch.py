"""``sevref digest --batch``: the shared fast path gives exactly the plain path's results.

The plain path reads every line on its own (:func:`sevref.request.parse_batch`)
and measures each request (:func:`sevref.edge.inputs.compute_digests`); the
command line reads lines sharing the requests of alike lines
(:func:`sevref.request.read_batch`) and measures them together
(:func:`sevref.edge.inputs.measure_batch`). Hypothesis draws batches of lines,
well-formed and not, and both paths must give the same digest or the same
error for every line; the command line must print them as ``json_line`` does.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from sevref._cli import main
from sevref.binfmt.ovmf import SEV_ES_RESET_BLOCK_GUID
from sevref.binfmt.vmsa import CPU_MODELS
from sevref.edge.inputs import Inputs, compute_digests, measure_batch
from sevref.errors import SevrefError
from sevref.request import parse_batch, read_batch
from sevref.serialize import json_line
from tests.images import amdsev_image, ovmf_image, snp_image
from tests.unit.test_snp import SECTIONS

FIRMWARE = ["amdsev.fd", "snp.fd", "es.fd", "missing.fd", "sub/../snp.fd", ""]
"""Paths relative to the batch's folder (written by the fixture), and some that fail."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch")
    (root / "sub").mkdir()
    (root / "amdsev.fd").write_bytes(amdsev_image(16 * 4096))
    (root / "snp.fd").write_bytes(snp_image(SECTIONS, size=8 * 4096))
    (root / "es.fd").write_bytes(ovmf_image([(SEV_ES_RESET_BLOCK_GUID, (0x80B004).to_bytes(4, "little"))], size=8192))
    (root / "vmlinuz").write_bytes(b"kernel" * 100)
    return root


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 6),
    st.sampled_from([4096, 4097, 10**30, 0xA00F11]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
)
VALUES = {
    "mode": st.sampled_from(["sev", "sev-es", "sev-snp", "sev-snp-firmware", "snp"]),
    "firmware": st.sampled_from(FIRMWARE),
    "firmware_sha256": st.sampled_from(["00" * 32, "zz"]),
    "vcpus": st.one_of(st.integers(1, 8), st.sampled_from([1, 2, 512])),
    "cpu": st.sampled_from([*sorted(CPU_MODELS)[:4], "epyc-milan", "host"]),
    "cpu_signature": st.sampled_from(["0xa00f11", "0xA10F10", "a00f11", "0x1ffffffff", 0xA00F11, "0x"]),
    "vmm": st.sampled_from(["qemu", "ec2", "gce", "QEMU"]),
    "vmsa_profile": st.sampled_from(["legacy", "init2", "INIT2"]),
    "sev_features": st.sampled_from(["0x0", "0x20", "0x1", "0x40", 32]),
    "guest_features": st.sampled_from(["0x1", "0x21", "0x0", 1]),
    "kernel": st.sampled_from(["vmlinuz", "missing"]),
    "initrd": st.sampled_from(["vmlinuz"]),
    "cmdline": st.sampled_from(["quiet", "a\0b"]),
    "firmware_prefix": st.sampled_from(["00" * 48, "00"]),
    "vcpu": st.just(1),
}
"""Each key's values: most of them valid, some refused."""


def mostly(valid: st.SearchStrategy[object], other: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """``valid`` three times in four."""
    return st.sampled_from([valid, valid, valid, other]).flatmap(lambda strategy: strategy)


@st.composite
def objects(draw: st.DrawFn) -> str:
    """A JSON object line: a configuration that is mostly valid, with odd values and keys mixed in."""
    mode = draw(mostly(st.sampled_from(["sev-es", "sev-snp", "sev", "sev-snp-firmware"]), VALUES["mode"]))
    pairs = [("mode", mode), ("firmware", draw(mostly(st.sampled_from(["amdsev.fd", "snp.fd"]), VALUES["firmware"])))]
    if mode in ("sev-es", "sev-snp") and draw(mostly(st.just(True), st.booleans())):
        pairs.append(("cpu", draw(VALUES["cpu"])))
    pairs.append(("vcpus", draw(mostly(VALUES["vcpus"], SCALARS))))
    for key in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=3)):
        pairs.append((key, draw(mostly(VALUES[key], SCALARS))))
    pairs = draw(st.permutations(pairs))
    separators = draw(st.sampled_from([(", ", ": "), (",", ":"), (" , ", " :  ")]))
    body = separators[0].join(json.dumps(key) + separators[1] + json.dumps(value) for key, value in pairs)
    return "{" + body + "}"


LINES = st.one_of(
    objects(),
    objects(),
    objects(),
    objects().map(lambda line: " " + line),
    objects().map(lambda line: line + " "),
    objects().map(lambda line: "\ufeff" + line),
    st.sampled_from(["", " ", "{", "}", "[1, 2]", '"x"', "{}", '{"mode": "sev"} x', '{"a": {"b": [1.5]}}']),
    st.sampled_from(['{"mode": "sev", "firmware": "snp.fd", "vcpus": ' + n + "}" for n in ("1e2", "NaN", "9" * 5000)]),
    st.just('{"x": ' + "[" * 5000 + "]" * 5000 + "}"),
    st.text(max_size=12),
)


@st.composite
def families(draw: st.DrawFn) -> list[str]:
    """Lines whose texts differ only where their vCPU count is written: valid counts, and not."""
    line = draw(objects())
    marker = json.dumps("vcpus")
    if marker not in line:
        line = line[:-1] + (", " if line != "{}" else "") + marker + ": 7}"
    start = line.index(marker) + len(marker)
    colon = line.index(":", start) + 1
    while line[colon] == " ":
        colon += 1
    end = colon
    while end < len(line) and line[end] not in ",}":
        end += 1
    counts = st.one_of(
        st.integers(1, 4096).map(str),
        st.sampled_from(["0", "4097", "9999", "10000", "-1", "01", "1.5", "2e1", '"2"', "true", "null", "1 "]),
    )
    return [line[:colon] + count + line[end:] for count in draw(st.lists(counts, min_size=2, max_size=6))]


def plain(lines: list[str], base: Path) -> list[str]:
    """What each line gives through the plain path: a digest as hex or the error's words."""
    return [
        outcome.digest.hex() if outcome.digest is not None else f"error: {outcome.error.diagnostic()}"  # type: ignore[union-attr]
        for outcome in compute_digests(parse_batch(lines, base), Inputs())
    ]


def shared(lines: list[str], base: Path) -> list[str]:
    """What each line gives through the command line's shared path."""
    return [
        f"error: {result.diagnostic()}" if isinstance(result, SevrefError) else result.hex()
        for result in measure_batch(read_batch(lines, base), Inputs())
    ]


BATCHES = st.lists(st.one_of(LINES.map(lambda line: [line]), families()), min_size=1, max_size=8).map(
    lambda groups: [line for group in groups for line in group]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=BATCHES)
@example(
    lines=[
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": 2}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": 3}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": true}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": 2, "vcpus": 3}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": null}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": 0}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu_signature": 8392466, "vcpus": 2}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu_signature": 8392466.0, "vcpus": 2}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu_signature": true, "vcpus": 2}',
        '{"mode": "sev", "mode": "sev", "firmware": "amdsev.fd"}',
        '{"mode": "sev", "firmware": "amdsev.fd", "vcpus": 5000}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": 4097}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": 02}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": 2.0}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": 2e0}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": 4096}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC\\"vcpus": 5", "vcpus": 2}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cmdline": "\\"vcpus\\": 9", "cpu": "EPYC", "vcpus": 2}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cmdline": "\\"vcpus\\": 8", "cpu": "EPYC", "vcpus": 2}',
        '{"mode": "sev-es", "firmware": "amdsev.fd", "cpu": "EPYC", "vcpus": 1, "kernel": "\\u0000"}',
    ]
)
def test_the_shared_path_gives_the_plain_paths_results(lines: list[str], folder: Path) -> None:
    results = shared(lines, folder)
    assert results == plain(lines, folder)
    digests = sum(not result.startswith("error: ") for result in results)
    event(f"lines with a digest: {'none' if not digests else 'all' if digests == len(lines) else 'some'}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=BATCHES)
def test_the_command_line_prints_each_result_as_json_line(
    lines: list[str], folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = folder / "batch.jsonl"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read_back = batch.read_text(encoding="utf-8").splitlines()  # the command line splits as str.splitlines does
    expected = []
    for number, result in enumerate(plain(read_back, folder), start=1):
        if result.startswith("error: "):
            expected.append(json_line({"error": f"line {number}: {result.removeprefix('error: ')}"}))
        else:
            expected.append(json_line({"digest": result}))
    out = io.StringIO()
    status = main(["digest", "--batch", str(batch)], out=out)
    failed = sum(line.startswith('{"error"') for line in expected)
    assert out.getvalue() == "".join(line + "\n" for line in expected)
    assert status == (1 if failed else 0)
    assert capsys.readouterr().err == (f"sevref: {failed} of {len(expected)} batch lines failed\n" if failed else "")


def test_alike_lines_share_one_request(folder: Path) -> None:
    lines = [
        json.dumps({"mode": "sev-snp", "firmware": "snp.fd", "cpu": "EPYC-Milan", "vcpus": n}) for n in range(1, 65)
    ]
    lines += [json.dumps({"vcpus": n, "firmware": "snp.fd", "mode": "sev-snp", "cpu": "EPYC-Milan"}) for n in (1, 2)]
    items = read_batch(lines, folder)
    requests = {id(item[0]) for item in items if not isinstance(item, SevrefError)}
    assert len(requests) == 2  # one per distinct configuration text, whatever the vCPU count
    assert [item[1] for item in items if not isinstance(item, SevrefError)] == [*range(1, 65), 1, 2]
