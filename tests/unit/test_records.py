"""sevref.records: every published record both ways, valid against its JSON Schema."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sevref import __version__
from sevref.digest import Mode
from sevref.errors import SignatureError
from sevref.records import (
    SCHEMAS,
    Catalog,
    CatalogRow,
    Counts,
    DebianRef,
    EntryStatus,
    FileRef,
    FirmwareRecord,
    GroupRecord,
    Index,
    KernelHashesRecord,
    Layout,
    Release,
    Signing,
    SnpSection,
    vcpu_runs,
)
from sevref.records.firmware import Basis, Nvram, Store
from sevref.serialize import canonical
from sevref.validate import check_document, check_group
from tests.conftest import REPO

HEX = "0123456789abcdef"
EXAMPLES = settings(max_examples=40, deadline=None)

ids = st.builds(str.__add__, st.sampled_from("az09"), st.text("abyz0189._-", max_size=12))  # common.schema.json id
group_ids = st.text(HEX, min_size=20, max_size=20)
sha256s = st.text(HEX, min_size=64, max_size=64)
sha384s = st.text(HEX, min_size=96, max_size=96)
u64 = st.integers(0, (1 << 64) - 1)
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
maybe_texts = st.none() | texts
statuses = st.sampled_from(EntryStatus)
modes = st.sampled_from([Mode.SEV, Mode.SEV_ES, Mode.SEV_SNP])
releases = st.builds(
    Release,
    publisher=ids,
    product=ids,
    stream=ids,
    release=st.builds(str.__add__, st.sampled_from("aZ09"), st.text("aZ09.+~:_-", max_size=12)),
    serial=st.integers(1, (1 << 53) - 1),
)


@st.composite
def vcpu_counts(draw: st.DrawFn, mode: Mode) -> list[int | None]:
    if mode is Mode.SEV:
        return [None]  # SEV measures no vCPU count: one entry
    counts: list[int | None] = [*sorted(draw(st.sets(st.integers(1, 4096), min_size=1, max_size=6)))]
    return counts


@st.composite
def group_records(draw: st.DrawFn) -> GroupRecord:
    mode = draw(modes)
    snp = mode is Mode.SEV_SNP
    digests = sha384s if snp else sha256s
    counts = draw(vcpu_counts(mode))
    features = draw(st.none() | u64)
    return GroupRecord(
        id=draw(group_ids),
        mode=mode,
        digest_algorithm="sha384" if snp else "sha256",
        digest_quantity="MEASUREMENT" if snp else "GCTX.LD",
        firmware=draw(ids),
        firmware_sha256=draw(sha256s),
        firmware_package=draw(maybe_texts),
        firmware_nvram=draw(st.builds(Nvram, st.sampled_from(list(Store)), st.sampled_from(list(Basis)))),
        host_stack=draw(ids),
        vmm=draw(st.sampled_from(["qemu", "ec2", "gce"])),
        qemu_version=draw(maybe_texts),
        machine=draw(maybe_texts),
        legacy_vm_type=draw(st.sampled_from(["on", "off", "auto", None])),
        host_linux=draw(maybe_texts),
        vmsa_profile=draw(st.sampled_from(["legacy", "init2", None])),
        cpu=draw(maybe_texts),
        cpu_signature=draw(st.none() | st.integers(0, 0xFFFF_FFFF)),
        sev_features=None if snp else features,
        guest_features=features if snp else None,
        boot=draw(maybe_texts),
        kernel_sha256=draw(st.none() | sha256s),
        initrd_sha256=draw(st.none() | sha256s),
        cmdline=draw(maybe_texts),
        cmdline_sha256=draw(st.none() | sha256s),
        policy=draw(st.none() | u64),
        min_api=draw(st.none() | st.tuples(st.integers(0, 255), st.integers(0, 255))),
        status=draw(statuses),
        status_reason=draw(maybe_texts),
        successor=draw(maybe_texts),
        status_since=draw(
            st.none() | st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", fullmatch=True)
        ),
        matrix=draw(ids),
        calculator=draw(texts),
        entries=tuple((count, draw(digests)) for count in counts),
    )


@st.composite
def catalog_rows(draw: st.DrawFn) -> CatalogRow:
    mode = draw(modes)
    counts = draw(vcpu_counts(mode))
    return CatalogRow(
        id=draw(group_ids),
        mode=mode,
        host_stack=draw(ids),
        vmsa_profile=draw(st.sampled_from(["legacy", "init2", None])),
        cpu=draw(maybe_texts),
        cpu_signature=draw(st.none() | st.integers(0, 0xFFFF_FFFF)),
        features=draw(st.none() | u64),
        boot=draw(maybe_texts),
        cmdline=draw(maybe_texts),
        vcpus=None if counts == [None] else vcpu_runs([c for c in counts if c is not None]),
        status=draw(statuses),
    )


debian_refs = st.builds(
    DebianRef, package=texts, version=texts, architecture=texts, path=texts, deb_sha256=st.none() | sha256s
)
firmware_records = st.builds(
    FirmwareRecord,
    id=ids,
    description=texts,
    sha256=sha256s,
    sha384=sha384s,
    size=st.integers(4096, 1 << 40),
    debian=st.none() | debian_refs,
    file=maybe_texts,
    ap_reset_eip=st.none() | u64,
    reset_block=st.sampled_from(["footer-table", "legacy-block", None]),
    kernel_hashes=st.builds(KernelHashesRecord, st.booleans(), st.none() | u64, st.none() | u64),
    snp_metadata=st.none() | st.lists(st.builds(SnpSection, u64, u64, texts), max_size=4).map(tuple),
    snp_prefix=st.none() | sha384s,
    modes=st.fixed_dictionaries({"sev": texts, "sev-es": texts, "sev-snp": texts}),
    nvram=st.builds(Nvram, st.sampled_from(list(Store)), st.sampled_from(list(Basis))),
).map(lambda r: r if r.debian is None else FirmwareRecord(**{**r.__dict__, "file": None}))
times = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)).map(
    lambda t: t.replace(microsecond=0)
)
file_refs = st.builds(
    FileRef,
    path=st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}(/[a-z0-9][a-z0-9._-]{0,8}){0,2}", fullmatch=True),
    sha256=sha256s,
    size=st.integers(0, 1 << 40),
)
indexes = st.builds(
    Index,
    release=releases,
    publisher_name=texts,
    contact=texts,
    url=maybe_texts,
    issued=times,
    expires=times,
    counts=st.builds(Counts, st.integers(0, 1 << 40), st.integers(0, 1 << 40), st.integers(0, 1000)),
    layout=st.builds(Layout, st.integers(1, 4), st.integers(1, 4)),
    files=st.lists(file_refs, max_size=5).map(lambda files: tuple(sorted(files, key=lambda f: f.path))),
    signing=st.none()
    | st.builds(Signing, sha256s, st.sampled_from(["ecdsa-p256", "ecdsa-p384", "ed25519"]), st.integers(1, 100)),
    sevref=st.just(__version__) | st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True),
)


def through_json(value: dict[str, object]) -> Any:
    """What a reader gets: the canonical bytes parsed again."""
    return json.loads(canonical(value))


# --------------------------------------------------------------------------- round trips and schemas


@EXAMPLES
@given(group_records())
def test_group_record_round_trips_and_is_valid(record: GroupRecord) -> None:
    data = through_json(record.to_dict())
    check_group(data)
    assert GroupRecord.from_dict(data) == record


@EXAMPLES
@given(releases, ids, st.lists(catalog_rows(), max_size=4))
def test_catalog_round_trips_and_is_valid(release: Release, firmware: str, rows: list[CatalogRow]) -> None:
    catalog = Catalog(release, firmware, tuple(sorted(rows, key=CatalogRow.sort_key)))
    data = through_json(catalog.to_dict())
    check_document("catalog", data, "catalog/x.json")
    assert Catalog.from_dict(data) == catalog
    for row in rows:
        assert CatalogRow.from_dict(through_json(row.to_dict())) == row


@EXAMPLES
@given(releases, firmware_records)
def test_firmware_record_round_trips_and_is_valid(release: Release, record: FirmwareRecord) -> None:
    data = through_json(record.to_dict())
    document = {"schema": SCHEMAS["firmware"], "release": release.to_dict(), "firmware": data, "candidates": []}
    check_document("firmware", document, "firmware/x.json")
    assert FirmwareRecord.from_dict(data) == record


@EXAMPLES
@given(indexes)
def test_index_round_trips_and_is_valid(index: Index) -> None:
    data = through_json(index.to_dict())
    check_document("index", data, "index.json")
    assert Index.from_dict(data) == index


def test_an_index_of_another_schema_version_is_refused() -> None:
    with pytest.raises(SignatureError) as raised:
        Index.from_dict({"schema": "urn:sevref:schema:index:2"})
    assert str(raised.value) == "index.json: schema is 'urn:sevref:schema:index:2'; expected urn:sevref:schema:index:1"


def test_every_record_writes_hex_numbers_as_lowercase_text() -> None:
    record = FirmwareRecord(
        id="fw",
        description="",
        sha256="0" * 64,
        sha384="0" * 96,
        size=4096,
        debian=None,
        file="OVMF.fd",
        ap_reset_eip=0x80B004,
        reset_block="footer-table",
        kernel_hashes=KernelHashesRecord(True, 0x810C00, 0x400),
        snp_metadata=(SnpSection(0x800000, 0x2000, "SNP_SEC_MEM"),),
        snp_prefix=None,
        modes={"sev": "supported", "sev-es": "supported", "sev-snp": "supported"},
        nvram=Nvram(Store.NONE, Basis.MANIFEST),
    )
    data = record.to_dict()
    assert (data["ap_reset_eip"], data["kernel_hashes"]) == (
        "0x80b004",
        {"supported": True, "base": "0x810c00", "size": "0x400"},
    )
    assert data["snp_metadata"] == [{"gpa": "0x800000", "size": "0x2000", "type": "SNP_SEC_MEM"}]
    assert data["source"] == {"file": "OVMF.fd"}
    assert (record.file_name, record.package) == ("OVMF.fd", None)
    debian = FirmwareRecord(
        **{
            **record.__dict__,
            "file": None,
            "debian": DebianRef("ovmf", "2022.11-6", "all", "usr/share/OVMF/OVMF_CODE.fd", None),
        }
    )
    assert (debian.file_name, debian.package) == ("OVMF_CODE.fd", "ovmf 2022.11-6")
    assert FirmwareRecord(**{**record.__dict__, "file": None}).file_name == "fw.fd"


# --------------------------------------------------------------------------- what groups and rows compute

DIGEST = "d" * 96


def snp_group(entries: tuple[tuple[int | None, str], ...], **changes: Any) -> GroupRecord:
    fields: dict[str, Any] = {
        "id": "0123456789abcdef0123",
        "mode": Mode.SEV_SNP,
        "digest_algorithm": "sha384",
        "digest_quantity": "MEASUREMENT",
        "firmware": "fw",
        "firmware_sha256": "0" * 64,
        "firmware_package": None,
        "firmware_nvram": Nvram(Store.SEPARATE, Basis.IMAGE),
        "host_stack": "q91",
        "vmm": "qemu",
        "qemu_version": "9.1.0",
        "machine": "q35",
        "legacy_vm_type": "off",
        "host_linux": None,
        "vmsa_profile": "init2",
        "cpu": "EPYC",
        "cpu_signature": 0x800F12,
        "sev_features": None,
        "guest_features": 0x1,
        "boot": None,
        "kernel_sha256": None,
        "initrd_sha256": None,
        "cmdline": None,
        "cmdline_sha256": None,
        "policy": 0x30000,
        "min_api": (1, 51),
        "status": EntryStatus.ACTIVE,
        "status_reason": None,
        "successor": None,
        "status_since": None,
        "matrix": "m",
        "calculator": "sevref test",
        "entries": entries,
    }
    return GroupRecord(**{**fields, **changes})


def test_group_record_lookups_and_its_catalog_row() -> None:
    group = snp_group(((1, "1" * 96), (2, "2" * 96), (3, "3" * 96), (8, "8" * 96)))
    assert group.entry_ids() == [f"0123456789abcdef0123-{n:04d}" for n in (1, 2, 3, 8)]
    assert (group.digest_for(8), group.digest_for(4), group.digest_for(None)) == ("8" * 96, None, None)
    assert group.features == 0x1
    row = group.catalog_row()
    assert row == CatalogRow(
        "0123456789abcdef0123",
        Mode.SEV_SNP,
        "q91",
        "init2",
        "EPYC",
        0x800F12,
        0x1,
        None,
        None,
        ((1, 3), (8, 8)),
        EntryStatus.ACTIVE,
    )
    assert row.entry_count == 4
    sev = snp_group(((None, "5" * 64),), mode=Mode.SEV, guest_features=None, cpu=None, cpu_signature=None)
    assert sev.entry_ids() == ["0123456789abcdef0123"] and sev.digest_for(None) == "5" * 64
    assert sev.features is None
    assert (sev.catalog_row().vcpus, sev.catalog_row().entry_count) == (None, 1)
    es = snp_group(((1, "6" * 64),), mode=Mode.SEV_ES, guest_features=None, sev_features=0x20)
    assert es.features == 0x20 and es.catalog_row().features == 0x20


def row(mode: Mode, host: str = "h", cpu: str | None = None, **changes: Any) -> CatalogRow:
    fields: dict[str, Any] = {
        "id": "0" * 20,
        "mode": mode,
        "host_stack": host,
        "vmsa_profile": None,
        "cpu": cpu,
        "cpu_signature": None,
        "features": None,
        "boot": None,
        "cmdline": None,
        "vcpus": None,
        "status": EntryStatus.ACTIVE,
    }
    return CatalogRow(**{**fields, **changes})


SORTED_ROWS = [
    row(Mode.SEV, "z"),  # mode first: SEV, SEV-ES, SEV-SNP
    row(Mode.SEV_ES, "a"),
    row(Mode.SEV_ES, "b"),  # then the host stack
    row(Mode.SEV_ES, "b", "EPYC"),  # no CPU before any CPU
    row(Mode.SEV_ES, "b", "EPYC-Milan"),
    row(Mode.SEV_ES, "b", "EPYC-Milan", cpu_signature=0xA00F11),
    row(Mode.SEV_ES, "b", "EPYC-Milan", cpu_signature=0xA00F11, features=0x20),
    row(Mode.SEV_ES, "b", "EPYC-Milan", cpu_signature=0xA00F11, features=0x20, boot="direct"),
    row(Mode.SEV_ES, "b", "EPYC-Milan", cpu_signature=0xA00F11, features=0x20, boot="direct", cmdline="quiet"),
    row(
        Mode.SEV_ES,
        "b",
        "EPYC-Milan",
        cpu_signature=0xA00F11,
        features=0x20,
        boot="direct",
        cmdline="quiet",
        id="1" * 20,
    ),
    row(Mode.SEV_SNP, "a"),
]


@pytest.mark.parametrize("seed", range(5))
def test_catalog_rows_sort_as_people_read_them(seed: int) -> None:
    rows = SORTED_ROWS[:]
    random.Random(seed).shuffle(rows)
    assert sorted(rows, key=CatalogRow.sort_key) == SORTED_ROWS


# --------------------------------------------------------------------------- vCPU runs and shard names

VCPU_RUNS: dict[str, tuple[list[int], tuple[tuple[int, int], ...]]] = {
    "none": ([], ()),
    "one": ([4], ((4, 4),)),
    "a run and a single": ([1, 2, 3, 4, 8], ((1, 4), (8, 8))),
    "singles": ([1, 3, 5], ((1, 1), (3, 3), (5, 5))),
    "everything": (list(range(1, 4097)), ((1, 4096),)),
}


@pytest.mark.parametrize("name", VCPU_RUNS)
def test_vcpu_runs(name: str) -> None:
    counts, runs = VCPU_RUNS[name]
    assert vcpu_runs(counts) == runs


@settings(max_examples=100, deadline=None)
@given(st.sets(st.integers(1, 64)))
def test_vcpu_runs_cover_the_counts_exactly_with_gaps_between(counts: set[int]) -> None:
    runs = vcpu_runs(sorted(counts))
    assert [n for first, last in runs for n in range(first, last + 1)] == sorted(counts)
    assert all(first <= last for first, last in runs)
    assert all(after[0] > before[1] + 1 for before, after in itertools.pairwise(runs))


LAYOUTS: dict[str, tuple[int, int, Layout]] = {
    # name: (groups, entries, layout); about 64 groups or 512 digests a shard
    "small": (35, 111, Layout(1, 1)),
    "more groups than 16 shards of 64": (64 * 16 + 1, 111, Layout(2, 1)),
    "more digests than 16 shards of 512": (35, 512 * 16 + 1, Layout(1, 2)),
    "a million entries": (100_000, 1_000_000, Layout(3, 3)),
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_layout_for_counts(name: str) -> None:
    groups, entries, layout = LAYOUTS[name]
    assert Layout.for_counts(groups, entries) == layout


def test_shard_names() -> None:
    layout = Layout(groups_shard_hex=2, digests_shard_hex=3)
    assert layout.group_shard("0123456789abcdef0123") == "01"
    assert layout.digest_shard("fedcba" + "0" * 58) == "fed"
    assert layout.to_dict() == {"groups_shard_hex": 2, "digests_shard_hex": 3}


def test_the_golden_publications_records_read_back_to_the_same_json() -> None:
    folder = REPO / "tests" / "golden" / "publication"
    index = json.loads((folder / "index.json").read_bytes())
    assert Index.from_dict(index).to_dict() == index
    groups = [g for path in sorted(folder.glob("groups/*.json")) for g in json.loads(path.read_bytes())["groups"]]
    assert len(groups) == index["counts"]["groups"]
    for group in groups:
        assert GroupRecord.from_dict(group).to_dict() == group
    catalog = json.loads((folder / "catalog" / "tiny.json").read_bytes())
    assert Catalog.from_dict(catalog).to_dict() == catalog
    assert [row["id"] for row in catalog["configurations"]] == [
        row.id for row in sorted(Catalog.from_dict(catalog).configurations, key=CatalogRow.sort_key)
    ]
    firmware = json.loads((folder / "firmware" / "tiny.json").read_bytes())["firmware"]
    assert FirmwareRecord.from_dict(firmware).to_dict() == firmware
