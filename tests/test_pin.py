"""``sevref pin``: the source stanza for a firmware inside a package, pasted into a manifest, builds.

Real packages (``dpkg-deb -Zzstd``, ``rpmbuild`` with a zstd payload), each
with the test firmware and a QEMU firmware descriptor, are served on
127.0.0.1; ``sevref pin URL PATH`` prints both sha256s, the package's
identity and the descriptor's facts, and the printed YAML builds a
publication with the firmware's SEV-SNP digests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.packages import FIRMWARE_PATH, build_deb, build_rpm, descriptor, sha256
from tests.test_rpm import expected_snp_digests, published_digests
from tests.test_sources import TINY, TINY_SHA256, run, server

HEAD = """sevref: 1
publication:
  publisher: {id: t, name: Test, contact: t@example.org}
  product: p
  stream: s
  release: "1"
  serial: 1
  issued: "2026-01-01T00:00:00Z"
  valid_for_days: 30
host_stacks:
  - {id: q, vmm: qemu, qemu: {version: "9.1", machine: q35, legacy_vm_type: "off"}, host_linux: "6.11"}
matrices:
  - id: m
    modes: [sev-snp]
    firmware: [fw]
    host_stacks: [q]
    cpus: [EPYC-Milan]
    vcpus: [1, 2]
    expected: {sev-snp: {policy: "0x30000"}}
firmware:
"""
"""A manifest to which a printed firmware entry (``sevref pin --id fw``) is appended."""


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zstd .deb and a zstd RPM, each with the firmware and a descriptor mapping it as memory."""
    root = tmp_path_factory.mktemp("www")
    deb = build_deb(tmp_path_factory.mktemp("deb"), TINY, "zstd", descriptors={"60-amdsev.json": descriptor()})
    rpm = build_rpm(tmp_path_factory.mktemp("rpm"), TINY, "zstd", descriptors={"60-amdsev.json": descriptor()})
    shutil.copy(deb, root / "ovmf_2099.1-1_all.deb")
    shutil.copy(rpm, root / "edk2-ovmf-20990101-1.fc99.noarch.rpm")
    return root


@pytest.mark.parametrize(
    ("file", "kind", "identity"),
    [
        ("ovmf_2099.1-1_all.deb", "debian", ('package: "ovmf"', 'version: "2099.1-1"', 'architecture: "all"')),
        (
            "edk2-ovmf-20990101-1.fc99.noarch.rpm",
            "rpm",
            ('package: "edk2-ovmf"', 'version: "20990101-1.fc99"', 'architecture: "noarch"'),
        ),
    ],
)
def test_pin_prints_both_sha256s_and_the_stanza_builds(
    file: str, kind: str, identity: tuple[str, ...], packages: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with server(packages) as url:
        status, out, err = run(["pin", f"{url}/{file}", FIRMWARE_PATH, "--id", "fw"], capsys)
        assert (status, err) == (0, ""), err
        assert f"sha256: {TINY_SHA256}" in out
        pin_key = "deb_sha256" if kind == "debian" else "rpm_sha256"
        assert f"{pin_key}: {sha256(packages / file)}" in out
        assert f"  {kind}:" in out and all(fact in out for fact in identity)
        assert f'url: "{url}/{file}"' in out
        assert "/usr/share/qemu/firmware/60-amdsev.json" in out and "mapping: memory (-bios)" in out
        assert "features: amd-sev, amd-sev-es, amd-sev-snp, verbose-dynamic" in out
        manifest = tmp_path / "m.yaml"
        manifest.write_text(HEAD + out, encoding="utf-8")
        site = tmp_path / "out"
        status, _, err = run(["build", str(manifest), "--out", str(site), "--cache", str(tmp_path / "c")], capsys)
        assert (status, err) == (0, ""), err
    assert published_digests(site) == expected_snp_digests(capsys)
    assert '"basis":"descriptor"' in (site / "firmware" / "fw.json").read_text(encoding="utf-8")


def test_a_local_package_prints_where_a_url_goes(packages: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["pin", str(packages / "edk2-ovmf-20990101-1.fc99.noarch.rpm"), "/" + FIRMWARE_PATH], capsys)
    assert status == 0
    assert out.startswith("# edk2-ovmf 20990101-1.fc99 (noarch): /usr/share/edk2/ovmf/OVMF.amdsev.fd")
    assert "\nsource:\n" in out and "# url: (the .rpm's own URL) or mirror:" in out
    status, out, _ = run(
        ["pin", str(packages / "ovmf_2099.1-1_all.deb"), FIRMWARE_PATH, "--url", "https://x/o.deb"], capsys
    )
    assert status == 0 and 'url: "https://x/o.deb"' in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["README"], "expected a .deb (!<arch>) or an RPM"),
        (["ovmf_2099.1-1_all.deb", "usr/share/nothing.fd"], "ovmf 2099.1-1: no file /usr/share/nothing.fd"),
        (["missing.deb"], "cannot read it"),
    ],
)
def test_pin_errors_are_one_line(
    args: list[str], message: str, packages: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "README").write_text("not a package\n", encoding="utf-8")
    folder = tmp_path if args[0] in ("README", "missing.deb") else packages
    argv = ["pin", str(folder / args[0]), *(args[1:] or [FIRMWARE_PATH])]
    status, out, err = run(argv, capsys)
    assert (status, out) == (1, "")
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_pin_downloads_are_bounded_and_named(packages: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with server(packages) as url:
        status, _, err = run(["pin", f"{url}/absent.deb", FIRMWARE_PATH], capsys)
    assert status == 1 and "absent.deb" in err and "404" in err, err
    status, _, err = run(["pin", "ftp://example.org/x.deb", FIRMWARE_PATH], capsys)
    assert status == 1 and len(err.strip().splitlines()) == 1
