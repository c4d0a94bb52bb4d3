"""``sevref export`` against the programs that consume it.

* ``virt-qemu-sev-validate``: every exported command is run as printed, through
  ``sh -c``, by Debian 12's own libvirt validator (package
  ``libvirt-clients-qemu``, installed by ``make libvirt``) under Debian's own
  ``/usr/bin/python3``. It must say OK to a launch measurement that
  ``sevref measurement`` made with the guest owner's TIK, and refuse the same
  measurement checked with another TIK.
* ``trustee``: the RVPS message's shape, and its values against the published
  SEV-SNP measurements in both encodings that Trustee versions use.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sevref._cli import main
from sevref.digest import Mode
from sevref.edge.keys import generate_key_files
from sevref.errors import ConfigError
from sevref.export import TrusteeEncoding, trustee_message, virt_qemu_sev_validate
from sevref.records import EntryStatus, GroupRecord
from sevref.sign import Algorithm
from sevref.trust import TrustedPublication
from sevref.verifier import Request, trust
from tests.conftest import OVMF_FILES, REPO, missing
from tests.test_entry_lifecycle import QEMU10

GOLDEN = REPO / "tests" / "golden"
PASS = b"export-test-passphrase"
AT = "2026-02-01T00:00:00Z"
VALIDATOR = Path("/usr/bin/virt-qemu-sev-validate")
DEBIAN_PYTHON = Path("/usr/bin/python3")
OVMF_CODE = "usr/share/OVMF/OVMF_CODE.fd"

# A publication of Debian's real OVMF_CODE.fd, given as a file beside the
# manifest (the export then names it by its file name).
DEBIAN_MANIFEST = f"""\
sevref: 1
publication:
  publisher: {{id: export, name: sevref export test, contact: export@example.org, url: "https://example.org/export/"}}
  product: debian-ovmf
  stream: bookworm
  release: "1"
  serial: 1
  issued: "2026-01-01T00:00:00Z"
  expires: "2026-07-01T00:00:00Z"
firmware:
  - id: ovmf-code
    source: {{path: OVMF_CODE.fd, sha256: {OVMF_FILES[OVMF_CODE]}}}
host_stacks:
  - id: debian12-qemu7.2
    vmm: qemu
    qemu: {{version: "7.2", machine: pc-q35-7.2}}
    host_linux: "6.1"
matrices:
  - id: qemu
    modes: [sev, sev-es]
    firmware: [ovmf-code]
    host_stacks: [debian12-qemu7.2]
    cpus: [EPYC-Milan, EPYC-Rome]
    vcpus: [1, 2, 4]
    expected:
      sev: {{policy: "0x3"}}
      sev-es: {{policy: "0x7"}}
"""


@dataclass(frozen=True)
class Site:
    """A signed publication, what verifies it, and the folder its firmware file sits in."""

    root: Path
    public_key: Path
    identity: tuple[str, str, str]
    firmware_folder: Path

    def trust_args(self) -> list[str]:
        publisher, product, stream = self.identity
        return [
            *("--publication", str(self.root), "--trusted-key", str(self.public_key)),
            *("--publisher", publisher, "--product", product, "--stream", stream, "--at", AT),
        ]

    def trusted(self) -> TrustedPublication:
        return trust(Request(str(self.root), [self.public_key], self.identity, datetime.fromisoformat(AT)))

    def groups(self) -> list[dict[str, Any]]:
        index = json.loads((self.root / "index.json").read_bytes())
        return [
            g
            for f in index["files"]
            if f["path"].startswith("groups/")
            for g in json.loads((self.root / f["path"]).read_bytes())["groups"]
        ]


def run(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    status = main(args, out=out)
    return status, out.getvalue()


def build_site(folder: Path, manifest: Path, identity: tuple[str, str, str]) -> Site:
    generate_key_files(folder / "key", Algorithm.ECDSA_P256, PASS)
    status, text = run(
        ["build", str(manifest), "--out", str(folder / "site"), "--signing-key", str(folder / "key.pem")]
    )
    assert status == 0, text
    return Site(folder / "site", folder / "key.pub", identity, manifest.parent)


@pytest.fixture(scope="module")
def passphrase() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEVREF_KEY_PASSPHRASE", PASS.decode())
        yield


@pytest.fixture(scope="module")
def golden_site(tmp_path_factory: pytest.TempPathFactory, passphrase: None) -> Site:
    """The golden manifest (every kind of entry, a synthetic firmware), signed with a fresh key."""
    folder = tmp_path_factory.mktemp("golden-export")
    shutil.copytree(GOLDEN / "inputs", folder / "inputs")
    shutil.copy(GOLDEN / "manifest.yaml", folder / "manifest.yaml")
    site = build_site(folder, folder / "manifest.yaml", ("golden", "tiny", "test"))
    return Site(site.root, site.public_key, site.identity, folder / "inputs")


@pytest.fixture(scope="module")
def debian_site(tmp_path_factory: pytest.TempPathFactory, passphrase: None, debian_ovmf: Path) -> Site:
    """Debian 12's OVMF_CODE.fd: SEV and SEV-ES, two CPU models, 1, 2 and 4 vCPUs."""
    folder = tmp_path_factory.mktemp("debian-export")
    shutil.copy(debian_ovmf / OVMF_CODE, folder / "OVMF_CODE.fd")
    (folder / "manifest.yaml").write_text(DEBIAN_MANIFEST)
    return build_site(folder, folder / "manifest.yaml", ("export", "debian-ovmf", "bookworm"))


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment that runs Debian's validator with Debian's Python.

    The tool starts with ``#!/usr/bin/env python3``; a folder first on PATH
    makes that Debian's ``/usr/bin/python3``, which has the tool's imports
    (libvirt, lxml, cryptography) from Debian's packages.
    """
    if not VALIDATOR.is_file():
        missing(f"{VALIDATOR} (Debian's libvirt-clients-qemu): run make libvirt")
    check = subprocess.run(
        [str(DEBIAN_PYTHON), "-c", "import libvirt, lxml, cryptography"], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        missing(f"the validator's Python modules in Debian's python3: run make libvirt ({check.stderr.strip()})")
    folder = tmp_path_factory.mktemp("debian-python")
    (folder / "python3").symlink_to(DEBIAN_PYTHON)
    variables = ("MEASUREMENT", "API_MAJOR", "API_MINOR", "BUILD", "BUILD_ID", "POLICY", "TIK_FILE", "TEK_FILE")
    base = {k: v for k, v in os.environ.items() if k not in (*variables, "TK_FILE")}
    return {**base, "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}


def exportable(site: Site) -> list[str]:
    """The entries libvirt's tool can check: SEV, and legacy-profile SEV-ES on QEMU, booted from disk."""
    ids = []
    for group in site.groups():
        if group["boot"] is not None or group["vmm"] != "qemu":
            continue
        if group["mode"] == "sev":
            ids += [group["id"]]
        elif group["mode"] == "sev-es" and group["vmsa_profile"] == "legacy" and group["sev_features"] == "0x0":
            ids += [f"{group['id']}-{vcpus:04d}" for vcpus, _ in group["entries"]]
    return sorted(ids)


def digest_of(group: dict[str, Any], entry_id: str) -> str:
    vcpus = int(entry_id[21:]) if len(entry_id) > 20 else None
    return next(str(d) for v, d in group["entries"] if v == vcpus)


@dataclass(frozen=True)
class Guest:
    """A launch as the guest owner sees it: the platform's values, the owner's keys, the measurement."""

    variables: dict[str, str]
    other_tik: dict[str, str]


def launch(folder: Path, entry_id: str, digest: str, policy: str, combined: bool) -> Guest:
    """Make a guest's launch measurement with ``sevref measurement``, with fresh keys and a fresh nonce.

    Args:
        folder: where the key files go.
        entry_id: seeds the platform's version numbers.
        digest: the entry's GCTX.LD.
        policy: the guest policy (hex).
        combined: give the keys as one TK file (TEK || TIK) rather than two.
    """
    numbers = random.Random(entry_id)
    api_major, api_minor, build = numbers.randrange(256), numbers.randrange(256), numbers.randrange(256)
    tik, tek, other = os.urandom(16), os.urandom(16), os.urandom(16)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tik.bin").write_bytes(tik)
    (folder / "tek.bin").write_bytes(tek)
    (folder / "tk.bin").write_bytes(tek + tik)
    (folder / "other-tik.bin").write_bytes(other)
    (folder / "other-tk.bin").write_bytes(tek + other)
    status, out = run(
        [
            *("measurement", "--digest", digest, "--api-major", str(api_major), "--api-minor", str(api_minor)),
            *("--build", str(build), "--policy", policy, "--nonce", os.urandom(16).hex(), "--json"),
            *("--tik", str(folder / ("tk.bin" if combined else "tik.bin"))),
        ]
    )
    assert status == 0, out
    platform = {
        "MEASUREMENT": json.loads(out)["launch_measure"],
        "API_MAJOR": str(api_major),
        "API_MINOR": str(api_minor),
        ("BUILD_ID" if combined else "BUILD"): str(build),
    }
    if combined:
        return Guest(
            {**platform, "TK_FILE": str(folder / "tk.bin")}, {**platform, "TK_FILE": str(folder / "other-tk.bin")}
        )
    keys = {"TIK_FILE": str(folder / "tik.bin"), "TEK_FILE": str(folder / "tek.bin")}
    return Guest({**platform, **keys}, {**platform, **keys, "TIK_FILE": str(folder / "other-tik.bin")})


def validate(
    command: str, variables: dict[str, str], environment: dict[str, str], cwd: Path, shell: str = "sh"
) -> subprocess.CompletedProcess[str]:
    """Run the exported text exactly as printed, with the operator's variables set."""
    return subprocess.run(
        [shell, "-c", command],
        env={**environment, **variables},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.slow  # multi-second subprocesses or whole-demo builds: make test runs it
@pytest.mark.parametrize("which", ["golden", "debian"])
def test_libvirts_validator_accepts_the_exported_commands(
    which: str, request: pytest.FixtureRequest, validator: dict[str, str], tmp_path: Path
) -> None:
    site: Site = request.getfixturevalue(f"{which}_site")
    ids = exportable(site)
    groups = {g["id"]: g for g in site.groups()}
    kinds = {(groups[i[:20]]["mode"], groups[i[:20]]["cpu_signature"]) for i in ids}
    # SEV and SEV-ES, several CPU models and several vCPU counts.
    assert len(ids) >= 7 and ("sev", None) in kinds and len(kinds) >= 3
    assert len({int(i[21:]) for i in ids if "-" in i}) >= 3
    for n, entry_id in enumerate(ids):
        status, text = run(["export", "--format", "virt-qemu-sev-validate", "--entry", entry_id, *site.trust_args()])
        assert status == 0, text
        comment, command = text.rstrip("\n").split("\n")
        group = groups[entry_id[:20]]
        digest = digest_of(group, entry_id)
        assert comment.startswith(f"# entry {entry_id}: ") and digest in comment and group["firmware_sha256"] in comment
        check, validator_command = command.split(" && ", 1)
        assert check.startswith(f"printf '%s  %s\\n' {group['firmware_sha256']} ")
        assert check.endswith(" | sha256sum --check --quiet -")
        assert validator_command.startswith("virt-qemu-sev-validate ")
        guest = launch(tmp_path / entry_id, entry_id, digest, group["policy"], combined=n % 2 == 1)
        done = validate(text, guest.variables, validator, site.firmware_folder)
        assert (done.returncode, done.stdout) == (0, "OK: Looks good to me\n"), (entry_id, command, done.stderr)
        refused = validate(text, guest.other_tik, validator, site.firmware_folder)
        assert refused.returncode == 1 and "OK" not in refused.stdout, (entry_id, refused.stdout)
        assert refused.stderr == "ERROR: Measurement does not match, VM is not trustworthy\n", refused.stderr


def test_the_command_works_in_other_shells_and_the_tool_checks_policy_and_keys(
    golden_site: Site, validator: dict[str, str], tmp_path: Path
) -> None:
    entry_id = next(i for i in exportable(golden_site) if i.endswith("-0003"))
    status, text = run(["export", "--format", "virt-qemu-sev-validate", "--entry", entry_id, *golden_site.trust_args()])
    assert status == 0
    group = next(g for g in golden_site.groups() if g["id"] == entry_id[:20])
    digest = digest_of(group, entry_id)
    folder = golden_site.firmware_folder
    for shell in [s for s in ("bash", "dash", "zsh") if shutil.which(s)]:
        guest = launch(tmp_path / shell, entry_id, digest, group["policy"], combined=shell == "bash")
        done = validate(text, guest.variables, validator, folder, shell)
        assert (done.returncode, done.stdout) == (0, "OK: Looks good to me\n"), (shell, done.stderr)
    # A guest launched with another policy than the entry expects (debugging allowed) is refused.
    other_policy = hex(int(group["policy"], 16) & ~0x1)
    guest = launch(tmp_path / "policy", entry_id, digest, other_policy, combined=False)
    done = validate(text, guest.variables, validator, folder)
    assert done.returncode == 1 and "Measurement does not match" in done.stderr
    guest = launch(tmp_path / "mixed", entry_id, digest, group["policy"], combined=False)
    # The tool, not the command, decides which key files make sense.
    lone_tik = {k: v for k, v in guest.variables.items() if k != "TEK_FILE"}
    done = validate(text, lone_tik, validator, folder)
    assert done.returncode == 2 and "Either --tk or both of --tek/--tik are required" in done.stderr
    both = {**guest.variables, "TK_FILE": str(tmp_path / "mixed" / "tk.bin")}
    done = validate(text, both, validator, folder)
    assert done.returncode == 2 and "--tk is mutually exclusive with --tek/--tik" in done.stderr


def test_the_command_refuses_other_firmware_whose_own_measurement_is_right(
    golden_site: Site, validator: dict[str, str], tmp_path: Path
) -> None:
    """Firmware the publication does not have, with a launch measurement of that firmware.

    libvirt's tool hashes whatever file ``--firmware`` names, so on its own it
    says OK to it; the exported command checks the file's sha256 first.
    """
    groups = {g["id"]: g for g in golden_site.groups()}
    sev = next(i for i in exportable(golden_site) if groups[i[:20]]["mode"] == "sev")
    sev_es = next(i for i in exportable(golden_site) if i.endswith("-0002"))
    original = (golden_site.firmware_folder / "tiny.fd").read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    (other / "tiny.fd").write_bytes(b"\x01" + original[1:])  # the first byte is padding: it still parses
    for entry_id in (sev, sev_es):
        group = groups[entry_id[:20]]
        status, text = run(
            ["export", "--format", "virt-qemu-sev-validate", "--entry", entry_id, *golden_site.trust_args()]
        )
        assert status == 0, text
        measure = ["digest", "--firmware", str(other / "tiny.fd"), "--mode", group["mode"]]
        if group["mode"] == "sev-es":
            measure += ["--vcpus", entry_id[21:], "--cpu-signature", group["cpu_signature"], "--vmsa-profile", "legacy"]
        status, digest = run(measure)
        assert status == 0 and digest.strip() != digest_of(group, entry_id), digest
        guest = launch(tmp_path / entry_id, entry_id, digest.strip(), group["policy"], combined=False)
        # The tool alone accepts the other firmware: its measurement is right for it.
        alone = validate(text.split(" && ", 1)[1], guest.variables, validator, other)
        assert (alone.returncode, alone.stdout) == (0, "OK: Looks good to me\n"), (entry_id, alone.stderr)
        refused = validate(text, guest.variables, validator, other)
        assert refused.returncode == 1 and refused.stdout == "tiny.fd: FAILED\n", (entry_id, refused.stdout)
        assert "computed checksum did NOT match" in refused.stderr, refused.stderr
        # The published firmware, measured, still passes.
        guest = launch(tmp_path / f"{entry_id}-published", entry_id, digest_of(group, entry_id), group["policy"], False)
        done = validate(text, guest.variables, validator, golden_site.firmware_folder)
        assert (done.returncode, done.stdout) == (0, "OK: Looks good to me\n"), (entry_id, done.stderr)
        # No firmware file at all: refused before the tool runs.
        missing_file = validate(text, guest.variables, validator, tmp_path)
        assert missing_file.returncode == 1 and "OK" not in missing_file.stdout


def test_entries_the_tool_cannot_check_are_refused(golden_site: Site) -> None:
    publication = golden_site.trusted()
    groups = golden_site.groups()

    def first(**facts: Any) -> str:
        group = next(g for g in groups if all(g[k] == v for k, v in facts.items()))
        vcpus = group["entries"][0][0]
        return group["id"] if vcpus is None else f"{group['id']}-{vcpus:04d}"

    cases = {
        first(mode="sev-snp", vmm="qemu"): "is sev-snp; the tool validates SEV and SEV-ES only",
        first(mode="sev-es", vmsa_profile="init2", boot=None): (
            "has VMSA profile init2 with sev_features 0x0; the tool builds legacy VMSAs with sev_features 0x0 only"
        ),
        first(mode="sev-es", vmsa_profile="legacy", boot="direct"): (
            "boots a kernel; give the tool --kernel, --initrd and --cmdline yourself"
        ),
    }
    for entry_id, message in cases.items():
        with pytest.raises(ConfigError, match=f"export virt-qemu-sev-validate: entry {entry_id} {message}"):
            virt_qemu_sev_validate(publication, entry_id)
    status, _ = run(
        ["export", "--format", "virt-qemu-sev-validate", "--entry", next(iter(cases)), *golden_site.trust_args()]
    )
    assert status == 1


def test_a_revoked_entry_is_not_exported_for_the_validator(tmp_path: Path, passphrase: None) -> None:
    folder = tmp_path / "revoked"
    shutil.copytree(GOLDEN / "inputs", folder / "inputs")
    text = (GOLDEN / "manifest.yaml").read_text()
    rule = "  - match: {mode: sev}\n    status: revoked\n    reason: a test revokes it\n"
    (folder / "manifest.yaml").write_text(text.replace("lifecycle:\n", f"lifecycle:\n{rule}"))
    site = build_site(folder, folder / "manifest.yaml", ("golden", "tiny", "test"))
    group = next(g for g in site.groups() if g["mode"] == "sev" and g["vmm"] == "qemu" and g["boot"] is None)
    assert group["status"] == "revoked"
    with pytest.raises(ConfigError) as raised:
        virt_qemu_sev_validate(site.trusted(), group["id"])
    assert str(raised.value) == (
        f"export virt-qemu-sev-validate: entry {group['id']} is revoked (revoked: a test revokes it); "
        "the tool would accept what it revokes"
    )


def active_snp(site: Site) -> set[str]:
    """The SEV-SNP digests of entries whose own status is active (an entry may be revoked alone)."""
    records = [GroupRecord.from_dict(g) for g in site.groups() if g["mode"] == "sev-snp"]
    return {d for r in records for n, d in r.entries if r.state_at(n).status is EntryStatus.ACTIVE}


def test_an_entry_revoked_alone_is_not_exported(golden_site: Site) -> None:
    """The golden publication revokes one vCPU count (3) of one SEV-SNP configuration, and nothing else of it."""
    records = [GroupRecord.from_dict(g) for g in golden_site.groups()]
    marked = [(r, n, d) for r in records for n, d in r.entries if r.state_at(n).status is EntryStatus.REVOKED]
    assert [(r.mode, r.cpu, n) for r, n, _ in marked] == [(Mode.SEV_SNP, "EPYC-Milan", 3)]
    record, _, revoked = marked[0]
    values = set(decode(trustee_message(golden_site.trusted())))
    assert revoked not in values and {d for n, d in record.entries if n != 3} <= values


def decode(message: dict[str, str]) -> list[str]:
    """Check a Trustee RVPS message's shape and return its SNP reference values."""
    assert set(message) == {"version", "type", "payload"}
    assert (message["version"], message["type"]) == ("0.1.0", "sample")
    payload = json.loads(base64.b64decode(message["payload"], validate=True))
    assert list(payload) == ["snp_launch_measurement"]
    values = payload["snp_launch_measurement"]
    assert isinstance(values, list) and values == sorted(set(values))
    return values


def test_trustee_gets_hex_by_default(golden_site: Site) -> None:
    status, out = run(["export", "--format", "trustee", *golden_site.trust_args()])
    assert status == 0
    values = decode(json.loads(out))
    # Trustee >= v0.18.0 writes the report's measurement with hex::encode: 96 lowercase hex digits.
    assert set(values) == active_snp(golden_site) and all(len(v) == 96 and v == v.lower() for v in values)
    assert decode(trustee_message(golden_site.trusted())) == values
    assert decode(trustee_message(golden_site.trusted(), encoding=TrusteeEncoding.HEX)) == values


def test_trustee_gets_base64_on_request(golden_site: Site) -> None:
    values = decode(trustee_message(golden_site.trusted(), encoding=TrusteeEncoding.BASE64))
    # Trustee v0.13.0 to v0.17.0 wrote it with STANDARD.encode.
    assert {base64.b64decode(v, validate=True).hex() for v in values} == active_snp(golden_site)
    assert all(base64.b64encode(base64.b64decode(v)).decode() == v for v in values)
    assert TrusteeEncoding("base64") is TrusteeEncoding.BASE64 and TrusteeEncoding("hex") is TrusteeEncoding.HEX


def test_trustee_gets_only_active_snp_entries_of_the_firmware_asked_for(
    tmp_path: Path, passphrase: None, golden_site: Site
) -> None:
    folder = tmp_path / "revoked"
    shutil.copytree(GOLDEN / "inputs", folder / "inputs")
    text = (GOLDEN / "manifest.yaml").read_text()
    rule = "  - match: {mode: sev-snp, host_stack: gce}\n    status: revoked\n    reason: test\n"
    (folder / "manifest.yaml").write_text(text.replace("lifecycle:\n", f"lifecycle:\n{rule}"))
    site = build_site(folder, folder / "manifest.yaml", ("golden", "tiny", "test"))
    revoked = {d for g in site.groups() if g["status"] == "revoked" for _, d in g["entries"]}
    assert len(revoked) == 3 and revoked <= active_snp(golden_site)
    values = decode(trustee_message(site.trusted()))
    assert set(values) == active_snp(site) == active_snp(golden_site) - revoked
    assert decode(trustee_message(site.trusted(), ["tiny"])) == values
    with pytest.raises(ConfigError, match="--firmware other: the publication has no firmware of that id"):
        trustee_message(site.trusted(), ["other"])


def test_an_entry_or_firmware_the_publication_does_not_have_is_a_user_error(
    golden_site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Exit 1 with one line for a wrong request; exit 3 stays "the publication is not trusted"."""
    groups = golden_site.groups()
    sev = next(g["id"] for g in groups if g["mode"] == "sev")
    sev_es = next(g["id"] for g in groups if g["mode"] == "sev-es" and g["vmsa_profile"] == "legacy")
    absent = "f" * 20 if all(g["id"] != "f" * 20 for g in groups) else "e" * 20
    what = "sevref: error: export virt-qemu-sev-validate: entry"
    cases = {
        absent: f"{what} {absent} is not in the publication (it has no entry group {absent})",
        f"{sev_es}-0099": f"{what} {sev_es}-0099 is not in the publication (entry group {sev_es} has no entry for 99 vCPUs)",
        sev_es: f"{what} {sev_es} is not in the publication (entry group {sev_es} has no entry without a vCPU count)",
        f"{sev}-0001": f"{what} {sev}-0001 is not in the publication (entry group {sev} has no entry for 1 vCPUs)",
        "not-an-id": "sevref: error: entry 'not-an-id': expected an entry id",
    }
    capsys.readouterr()
    for entry_id, message in cases.items():
        status, out = run(
            ["export", "--format", "virt-qemu-sev-validate", "--entry", entry_id, *golden_site.trust_args()]
        )
        err = capsys.readouterr().err
        assert (status, out) == (1, ""), (entry_id, err)
        assert err.startswith(message) and err.count("\n") == 1 and "not trusted" not in err, err
    status, _ = run(["export", "--format", "trustee", "--firmware", "other", *golden_site.trust_args()])
    err = capsys.readouterr().err
    assert status == 1
    assert err == "sevref: error: export trustee: --firmware other: the publication has no firmware of that id\n"
    status, _ = run(
        [
            "export",
            "--format",
            "virt-qemu-sev-validate",
            "--entry",
            sev,
            "--firmware",
            "tiny",
            *golden_site.trust_args(),
        ]
    )
    assert status == 2 and "--firmware goes with --format trustee" in capsys.readouterr().err
    # A publication whose group file was changed after signing is not trusted: exit 3.
    shutil.copytree(golden_site.root, tmp_path / "site")
    changed = next(p for p in sorted((tmp_path / "site" / "groups").glob("*.json")))
    changed.write_bytes(changed.read_bytes().replace(b'"active"', b'"revoked"', 1))
    tampered = Site(tmp_path / "site", golden_site.public_key, golden_site.identity, golden_site.firmware_folder)
    status, _ = run(["export", "--format", "virt-qemu-sev-validate", "--entry", sev, *tampered.trust_args()])
    assert status == 3 and "not trusted: integrity" in capsys.readouterr().err


def golden_with(folder: Path, rule: str, qemu10: bool = False) -> Site:
    """The golden publication with one more lifecycle rule (and the host stack :data:`QEMU10`)."""
    folder.mkdir()
    shutil.copytree(GOLDEN / "inputs", folder / "inputs")
    text = (GOLDEN / "manifest.yaml").read_text()
    if qemu10:
        text = text.replace("  - {id: ec2, vmm: ec2}\n", f"{QEMU10}  - {{id: ec2, vmm: ec2}}\n")
        text = text.replace("[qemu7.2.1, qemu9.1-init2]", "[qemu7.2.1, qemu9.1-init2, qemu10.0-init2]")
    (folder / "manifest.yaml").write_text(text.replace("lifecycle:\n", f"lifecycle:\n{rule}"))
    site = build_site(folder, folder / "manifest.yaml", ("golden", "tiny", "test"))
    return Site(site.root, site.public_key, site.identity, folder / "inputs")


def test_an_entry_with_the_digest_of_a_revoked_one_is_not_exported_for_the_validator(
    tmp_path: Path, passphrase: None
) -> None:
    """SEV's GCTX.LD is the same on every host stack: revoking one stack's revokes the digest."""
    rule = "  - match: {mode: sev, host_stack: qemu7.2.1}\n    status: revoked\n    reason: a flaw in QEMU 7.2.1\n"
    site = golden_with(tmp_path / "sev", rule)
    groups = [g for g in site.groups() if g["mode"] == "sev" and g["boot"] is None]
    revoked = next(g for g in groups if g["host_stack"] == "qemu7.2.1")
    active = next(g for g in groups if g["host_stack"] == "qemu9.1-init2")
    assert (revoked["status"], active["status"]) == ("revoked", "active") and revoked["entries"] == active["entries"]
    with pytest.raises(ConfigError) as raised:
        virt_qemu_sev_validate(site.trusted(), active["id"])
    assert str(raised.value) == (
        f"export virt-qemu-sev-validate: entry {active['id']} has the GCTX.LD of revoked entry {revoked['id']} "
        "(revoked: a flaw in QEMU 7.2.1); the tool would accept what that revokes"
    )
    # An SEV-ES entry of that stack has VMSAs of its own (legacy, not init2): still exported.
    sev_es = next(i for i in exportable(site) if "-" in i)
    assert "virt-qemu-sev-validate --firmware" in virt_qemu_sev_validate(site.trusted(), sev_es)


def test_trustee_leaves_out_every_digest_a_revoked_entry_carries(tmp_path: Path, passphrase: None) -> None:
    """A revocation by host stack holds although an active entry of another stack has the same measurement."""
    rule = "  - match: {mode: sev-snp, host_stack: qemu10.0-init2}\n    status: revoked\n    reason: test\n"
    site = golden_with(tmp_path / "snp", rule, qemu10=True)
    records = [GroupRecord.from_dict(g) for g in site.groups() if g["mode"] == "sev-snp"]
    revoked = {d for r in records for n, d in r.entries if r.state_at(n).status is EntryStatus.REVOKED}
    shadowed = active_snp(site) & revoked
    assert len(shadowed) >= 30  # the qemu9.1-init2 entries carry them, active
    values = decode(trustee_message(site.trusted()))
    assert set(values) == active_snp(site) - revoked and not set(values) & shadowed
    encoded = decode(trustee_message(site.trusted(), encoding=TrusteeEncoding.BASE64))
    assert {base64.b64decode(v).hex() for v in encoded} == set(values)
