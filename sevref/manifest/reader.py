"""Schema-valid manifest documents to the model, checking what they mean as it goes.

The schema says what a manifest may look like; the reader checks what it
means: unique ids, references that resolve, sensible ranges, policies that fit
their mode, host stacks that can exist. Every error names ``file:line:column``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from sevref.binfmt.vmsa import EC2_RDX, Vmm, VmsaProfile, cpu_signature, lookup_cpu_model
from sevref.digest import MAX_VCPUS, Mode
from sevref.errors import ConfigError, Deprecation, ManifestError
from sevref.hosts import HostStack, KvmFacts, QemuFix
from sevref.manifest.loader import Document, pointer_to
from sevref.manifest.model import (
    ANY_POLICY,
    NO_POLICY,
    BootSpec,
    CpuSpec,
    DebianSource,
    Expected,
    FirmwareSpec,
    Lifecycle,
    Manifest,
    Matrix,
    Pattern,
    Publication,
    RpmSource,
    Source,
)
from sevref.manifest.prose import check_schema
from sevref.records import EntryStatus, Store
from sevref.values import parse_hex, parse_time, parse_version

__all__ = ["DEPRECATED_FIELDS", "deprecated_uses", "load_manifests"]

DEPRECATED_FIELDS: dict[str, Deprecation] = {}
"""Manifest fields on their way out (docs/compatibility.md), by JSON pointer with ``*`` for any key or index
(``/firmware/*/nvram``). A manifest that uses one reads as before, and each use is a warning that names its
``file:line:column`` (:attr:`Manifest.warnings <sevref.manifest.model.Manifest.warnings>`). Empty: nothing is
deprecated."""


def _ec2_rdx(value: object) -> int | None:
    """Read a host stack's ``ec2_rdx``; EC2's current RDX is the default, None."""
    rdx = parse_hex(value, "ec2_rdx", 32)
    return None if rdx == EC2_RDX else rdx


class _Reader:
    """Turns schema-valid documents into the model, checking meaning as it goes."""

    def __init__(self) -> None:
        self.publication: Publication | None = None
        self.firmware: dict[str, FirmwareSpec] = {}
        self.host_stacks: dict[str, HostStack] = {}
        self.boots: dict[str, BootSpec] = {}
        self.matrices: dict[str, Matrix] = {}
        self.lifecycle: list[Lifecycle] = []
        self.where: dict[tuple[str, str], str] = {}

    def fail(self, where: str, message: str) -> ManifestError:
        return ManifestError(f"{where}: {message}")

    def claim(self, kind: str, ident: str, where: str) -> None:
        if (kind, ident) in self.where:
            raise self.fail(
                where, f"{kind} id {ident!r} is already defined at {self.where[kind, ident]}; expected unique ids"
            )
        self.where[kind, ident] = where

    def source(self, doc: Document, pointer: str, raw: Mapping[str, Any]) -> Source:
        where = doc.where(pointer)
        pin = bytes.fromhex(raw["sha256"])
        if "path" in raw:
            path = Path(raw["path"])
            return Source(pin, path=path if path.is_absolute() else doc.folder / path, origin=where, root=doc.folder)
        if "url" in raw:
            return Source(pin, url=raw["url"], origin=where)
        if "rpm" in raw:
            return Source(pin, rpm=self.rpm_source(doc, pointer, raw["rpm"]), origin=where)
        deb = raw["debian"]
        inner = self.inner_path(doc, pointer + "/debian/path", deb["path"])
        debian = DebianSource(
            package=deb["package"],
            version=deb["version"],
            architecture=deb.get("architecture", "all"),
            path=str(inner),
            deb_sha256=bytes.fromhex(deb["deb_sha256"]) if "deb_sha256" in deb else None,
            url=deb.get("url"),
            mirror=deb.get("mirror"),
            source_package=deb.get("source_package"),
            origin=doc.where(pointer + "/debian"),
            fallback=tuple(deb.get("fallback", ())),
            suite=deb.get("suite"),
        )
        return Source(pin, debian=debian, origin=where)

    def inner_path(self, doc: Document, pointer: str, raw: str) -> PurePosixPath:
        inner = PurePosixPath(raw)
        if inner.is_absolute() or ".." in inner.parts:
            raise self.fail(
                doc.where(pointer),
                f"expected a path inside the package such as usr/share/OVMF/OVMF_CODE.fd, found {raw!r}",
            )
        return inner

    def rpm_source(self, doc: Document, pointer: str, rpm: Mapping[str, Any]) -> RpmSource:
        return RpmSource(
            package=rpm["package"],
            version=rpm["version"],
            architecture=rpm["architecture"],
            path=str(self.inner_path(doc, pointer + "/rpm/path", rpm["path"])),
            rpm_sha256=bytes.fromhex(rpm["rpm_sha256"]),
            url=rpm.get("url"),
            mirror=rpm.get("mirror"),
            origin=doc.where(pointer + "/rpm"),
        )

    def cpu(self, where: str, raw: object) -> CpuSpec:
        try:
            if isinstance(raw, dict):
                return CpuSpec(cpu_signature(raw["family"], raw["model"], raw["stepping"]))
            if isinstance(raw, int):
                return CpuSpec(raw)
            text = str(raw)
            if text.lower().startswith("0x"):
                return CpuSpec(int(text, 16))
            model = lookup_cpu_model(text)
            return CpuSpec(model.signature, model.name)
        except ConfigError as error:
            raise self.fail(where, error.diagnostic()) from error

    def vcpus(self, where: str, raw: Sequence[object]) -> tuple[int, ...]:
        counts: set[int] = set()
        for item in raw:
            if isinstance(item, int):
                counts.add(item)
                continue
            low, high = (int(part) for part in str(item).split("-"))
            if not 1 <= low <= high <= MAX_VCPUS:
                raise self.fail(where, f"vcpus range {item!r}: expected 1 <= low <= high <= {MAX_VCPUS}")
            counts.update(range(low, high + 1))
        return tuple(sorted(counts))

    def pattern(self, doc: Document, pointer: str, raw: Mapping[str, Any]) -> Pattern:
        where = doc.where(pointer)

        def many(key: str) -> list[Any] | None:
            value = raw.get(key)
            if value is None:
                return None
            return list(value) if isinstance(value, list) else [value]

        cpus = many("cpu")
        return Pattern(
            modes=None if many("mode") is None else frozenset(Mode(m) for m in many("mode") or ()),
            firmware=None if many("firmware") is None else frozenset(many("firmware") or ()),
            host_stacks=None if many("host_stack") is None else frozenset(many("host_stack") or ()),
            boots=None if many("boot") is None else frozenset(many("boot") or ()),
            cpus=None if cpus is None else frozenset(self.cpu(where, c) for c in cpus),
            vcpus=None if "vcpus" not in raw else frozenset(self.vcpus(where, raw["vcpus"])),
            origin=where,
        )

    def read(self, doc: Document) -> None:
        if "publication" in doc.data:
            self.read_publication(doc)
        for index, raw in enumerate(doc.data.get("firmware", [])):
            pointer = f"/firmware/{index}"
            self.claim("firmware", raw["id"], doc.where(pointer))
            self.firmware[raw["id"]] = FirmwareSpec(
                raw["id"],
                raw.get("description", ""),
                self.source(doc, pointer + "/source", raw["source"]),
                doc.where(pointer),
                Store(raw["nvram"]) if "nvram" in raw else None,
                doc.where(pointer + "/nvram") if "nvram" in raw else "",
                frozenset(Mode(m) for m in raw.get("modes_beyond_descriptor", ())),
                doc.where(pointer + "/modes_beyond_descriptor") if "modes_beyond_descriptor" in raw else "",
            )
        for index, raw in enumerate(doc.data.get("host_stacks", [])):
            pointer = f"/host_stacks/{index}"
            self.claim("host stack", raw["id"], doc.where(pointer))
            self.host_stacks[raw["id"]] = self.host_stack(doc, pointer, raw)
        for index, raw in enumerate(doc.data.get("boots", [])):
            pointer = f"/boots/{index}"
            self.claim("boot", raw["id"], doc.where(pointer))
            self.boots[raw["id"]] = self.boot(doc, pointer, raw)
        for index, raw in enumerate(doc.data.get("matrices", [])):
            pointer = f"/matrices/{index}"
            self.claim("matrix", raw["id"], doc.where(pointer))
            self.matrices[raw["id"]] = self.matrix(doc, pointer, raw)
        for index, raw in enumerate(doc.data.get("lifecycle", [])):
            pointer = f"/lifecycle/{index}"
            self.lifecycle.append(
                Lifecycle(
                    self.pattern(doc, pointer + "/match", raw["match"]),
                    EntryStatus(raw["status"]),
                    raw["reason"],
                    raw.get("successor"),
                    raw.get("since"),
                    doc.where(pointer),
                )
            )

    def read_publication(self, doc: Document) -> None:
        where = doc.where("/publication")
        if self.publication is not None:
            raise self.fail(
                where, f"a second publication section; expected one, found the first at {self.publication.origin}"
            )
        raw = doc.data["publication"]
        for key in ("issued", "expires"):
            if key in raw:
                try:
                    parse_time(raw[key])
                except ConfigError as error:
                    raise self.fail(doc.where(f"/publication/{key}"), error.diagnostic()) from error
        if "expires" in raw and "valid_for_days" in raw:
            raise self.fail(where, "publication: give expires or valid_for_days, not both")
        publisher = raw["publisher"]
        self.publication = Publication(
            publisher_id=publisher["id"],
            publisher_name=publisher["name"],
            contact=publisher["contact"],
            url=publisher.get("url"),
            product=raw["product"],
            stream=raw["stream"],
            release=raw["release"],
            serial=raw["serial"],
            description=raw.get("description", ""),
            issued=raw.get("issued"),
            expires=raw.get("expires"),
            valid_for_days=raw.get("valid_for_days"),
            origin=where,
        )

    def boot(self, doc: Document, pointer: str, raw: Mapping[str, Any]) -> BootSpec:
        cmdlines = tuple(raw.get("cmdlines", [None]))
        for position, cmdline in enumerate(cmdlines):
            if cmdline is not None and "\0" in cmdline:
                raise self.fail(
                    doc.where(f"{pointer}/cmdlines/{position}"),
                    "cmdline: a NUL byte; QEMU's -append cannot carry one",
                )
        if len(set(cmdlines)) != len(cmdlines):
            raise self.fail(doc.where(pointer + "/cmdlines"), "a command line appears twice; expected each once")
        if "dtb" in raw:
            # QEMU x86_load_linux appends the DTB as SETUP_DTB setup_data to the kernel
            # image it passes to sev_add_kernel_loader_hashes: the kernel hash covers it.
            raise self.fail(
                doc.where(pointer + "/dtb"),
                "dtb: QEMU appends the device tree to the kernel as setup_data before hashing it, so the "
                "kernel hash covers the DTB; sevref does not model -dtb and cannot predict the digest",
            )
        initrd = raw.get("initrd")
        return BootSpec(
            raw["id"],
            raw.get("description", ""),
            self.source(doc, pointer + "/kernel", raw["kernel"]),
            None if initrd is None else self.source(doc, pointer + "/initrd", initrd),
            cmdlines,
            doc.where(pointer),
        )

    def host_stack(self, doc: Document, pointer: str, raw: Mapping[str, Any]) -> HostStack:
        qemu = raw.get("qemu", {})
        try:
            host = HostStack(
                id=raw["id"],
                vmm=Vmm(raw["vmm"]),
                description=raw.get("description", ""),
                qemu_version=parse_version(qemu["version"], "qemu version") if "version" in qemu else None,
                machine=qemu.get("machine"),
                legacy_vm_type=qemu.get("legacy_vm_type"),
                qemu_package=qemu.get("package"),
                qemu_fixes=frozenset(QemuFix(fix) for fix in qemu.get("fixes", [])),
                igvm=qemu.get("igvm", False),
                max_vcpus_stated=qemu.get("max_vcpus"),
                host_kvm=KvmFacts.from_dict(raw["host_kvm"]) if "host_kvm" in raw else None,
                ec2_rdx=_ec2_rdx(raw["ec2_rdx"]) if "ec2_rdx" in raw else None,
                host_linux=parse_version(raw["host_linux"], "host_linux") if "host_linux" in raw else None,
                vmsa_profile=VmsaProfile(raw["vmsa_profile"]) if "vmsa_profile" in raw else None,
                sev_features=parse_hex(raw["sev_features"], "sev_features", 64) if "sev_features" in raw else None,
                guest_features=parse_hex(raw["guest_features"], "guest_features", 64)
                if "guest_features" in raw
                else None,
            )
            host.check()
        except ConfigError as error:
            raise self.fail(doc.where(pointer), f"host stack {raw['id']}: {error.diagnostic()}") from error
        return host

    def matrix(self, doc: Document, pointer: str, raw: Mapping[str, Any]) -> Matrix:
        where = doc.where(pointer)
        expected: dict[Mode, Expected] = {}
        for mode_name, values in raw.get("expected", {}).items():
            mode = Mode(mode_name)
            here = doc.where(f"{pointer}/expected/{mode_name}")
            # The schema requires a policy; "any" states that none is expected, and none is published.
            policy = None if values["policy"] == ANY_POLICY else parse_hex(values["policy"], "policy", 64)
            if policy is not None:
                self.check_policy(here, mode, policy)
            min_api = None
            if "min_api" in values:
                major, minor = (int(part) for part in values["min_api"].split("."))
                if major > 255 or minor > 255:
                    raise self.fail(here, f"min_api {values['min_api']}: expected major and minor 0..255")
                min_api = (major, minor)
            expected[mode] = Expected(policy, min_api)
        modes = tuple(Mode(m) for m in raw["modes"])
        for mode in expected:
            if mode not in modes:
                raise self.fail(
                    doc.where(f"{pointer}/expected/{mode}"),
                    f"expected values for mode {mode}, which the matrix does not list",
                )
        for mode in modes:
            if mode not in expected:
                place = f"{pointer}/expected" if "expected" in raw else pointer
                raise self.fail(doc.where(place), f"matrix {raw['id']}: expected.{mode}: {NO_POLICY}")
        cpus = tuple(self.cpu(doc.where(f"{pointer}/cpus/{i}"), c) for i, c in enumerate(raw.get("cpus", [])))
        if len(set(cpus)) != len(cpus):
            raise self.fail(doc.where(pointer + "/cpus"), "a CPU appears twice; expected each once")
        return Matrix(
            id=raw["id"],
            description=raw.get("description", ""),
            modes=modes,
            firmware=tuple(raw["firmware"]),
            host_stacks=tuple(raw["host_stacks"]),
            cpus=cpus,
            vcpus=self.vcpus(doc.where(pointer + "/vcpus"), raw.get("vcpus", [])),
            boots=tuple(raw.get("boots", [None])),
            expected=expected,
            include=tuple(self.pattern(doc, f"{pointer}/include/{i}", p) for i, p in enumerate(raw.get("include", []))),
            exclude=tuple(self.pattern(doc, f"{pointer}/exclude/{i}", p) for i, p in enumerate(raw.get("exclude", []))),
            origin=where,
        )

    def check_policy(self, where: str, mode: Mode, policy: int) -> None:
        # SEV API Table 2 (guest policy): bit 2 ES. SNP ABI Table 9: bit 17 must be 1.
        if mode is Mode.SEV_SNP:
            if not policy >> 17 & 1:
                raise self.fail(where, f"policy {policy:#x}: SEV-SNP policy bit 17 is reserved and must be 1")
            return
        if policy >= 1 << 32:
            raise self.fail(where, f"policy {policy:#x}: expected a 32-bit SEV policy")
        if mode is Mode.SEV_ES and not policy & 0x4:
            raise self.fail(where, f"policy {policy:#x}: SEV-ES needs the ES bit (0x4) set")
        if mode is Mode.SEV and policy & 0x4:
            raise self.fail(where, f"policy {policy:#x}: has the ES bit (0x4), which makes the guest SEV-ES")

    def finish(self, documents: Sequence[Document]) -> Manifest:
        if self.publication is None:
            raise ManifestError(
                f"{', '.join(d.name for d in documents)}: no publication section; expected one in one of the files"
            )
        kinds: dict[str, Mapping[str, object]] = {
            "firmware": self.firmware,
            "host stack": self.host_stacks,
            "boot": self.boots,
        }
        for matrix in self.matrices.values():
            refs = (
                ("firmware", matrix.firmware),
                ("host stack", matrix.host_stacks),
                ("boot", [b for b in matrix.boots if b is not None]),
            )
            for kind, idents in refs:
                for ident in idents:
                    if ident not in kinds[kind]:
                        known = ", ".join(kinds[kind]) or "none"
                        raise ManifestError(
                            f"{matrix.origin}: matrix {matrix.id}: unknown {kind} {ident!r}; defined: {known}"
                        )
            for pattern in (*matrix.include, *matrix.exclude):
                self.check_pattern(pattern, kinds)
            needs_vcpus = any(m in (Mode.SEV_ES, Mode.SEV_SNP) for m in matrix.modes)
            if needs_vcpus and not matrix.vcpus:
                raise ManifestError(
                    f"{matrix.origin}: matrix {matrix.id}: modes {', '.join(matrix.modes)} need vcpus; found none"
                )
            qemu = [h for h in matrix.host_stacks if self.host_stacks[h].vmm is Vmm.QEMU]
            if needs_vcpus and qemu and not matrix.cpus:
                raise ManifestError(
                    f"{matrix.origin}: matrix {matrix.id}: QEMU launches need cpus (the guest CPU is in every "
                    f"VMSA); found none"
                )
        for rule in self.lifecycle:
            self.check_pattern(rule.match, kinds)
        if not self.matrices:
            raise ManifestError(f"{', '.join(d.name for d in documents)}: no matrices; expected at least one")
        return Manifest(
            publication=self.publication,
            firmware=dict(self.firmware),
            host_stacks=dict(self.host_stacks),
            boots=dict(self.boots),
            matrices=tuple(self.matrices.values()),
            lifecycle=tuple(self.lifecycle),
            documents=tuple((d.name, d.sha256) for d in documents),
        )

    def check_pattern(self, pattern: Pattern, kinds: Mapping[str, Mapping[str, object]]) -> None:
        for kind, idents in (
            ("firmware", pattern.firmware),
            ("host stack", pattern.host_stacks),
            ("boot", pattern.boots),
        ):
            for ident in idents or ():
                if ident is not None and ident not in kinds[kind]:
                    raise ManifestError(
                        f"{pattern.origin}: unknown {kind} {ident!r} in a pattern; "
                        f"defined: {', '.join(kinds[kind]) or 'none'}"
                    )


def load_manifests(documents: Sequence[Document]) -> Manifest:
    """Check parsed manifest files against the schema and each other, and merge them.

    Args:
        documents: from :func:`parse_yaml`, one per file.

    Returns:
        The manifest, with a warning for each use of a deprecated field.

    Raises:
        ManifestError: the first problem, with its file, line and column.
    """
    reader = _Reader()
    for document in documents:
        check_schema(document)
        reader.read(document)
    warnings = tuple(use for document in documents for use in deprecated_uses(document))
    return replace(reader.finish(documents), warnings=warnings)


def deprecated_uses(document: Document, fields: Mapping[str, Deprecation] | None = None) -> list[str]:
    """Each use of a deprecated field in a manifest file, in the order of the file.

    Args:
        document: the parsed file.
        fields: the deprecated fields (default: :data:`DEPRECATED_FIELDS`).

    Returns:
        One warning per use: ``file:line:column: /firmware/ovmf/nvram is deprecated since ...``.
    """
    found = [
        (document.positions.get(pointer, (0, 0)), deprecation.warning(f"{document.where(pointer)}: {pointer}"))
        for pattern, deprecation in (DEPRECATED_FIELDS if fields is None else fields).items()
        for pointer in _matching(document.data, pattern.split("/")[1:], "")
    ]
    return [warning for _, warning in sorted(found)]


def _matching(value: object, parts: list[str], pointer: str) -> Iterator[str]:
    """The pointers under ``pointer`` that a pattern's remaining ``parts`` name (``*``: any key or index)."""
    if not parts:
        yield pointer
        return
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        keys = list(value) if head == "*" else [head] if head in value else []
        for key in keys:
            yield from _matching(value[key], rest, pointer_to(pointer, key))
    elif isinstance(value, list) and (head == "*" or head.isdigit()):
        indexes = range(len(value)) if head == "*" else [int(head)] if int(head) < len(value) else []
        for index in indexes:
            yield from _matching(value[index], rest, pointer_to(pointer, index))
