"""User-described configurations to typed values: manifests and digest requests.

A vendor describes a publication in YAML manifests (:func:`load_manifests`);
a single configuration arrives as a line of ``sevref digest --batch`` or the
options of ``sevref digest`` (:func:`request_from_mapping`). This module checks
every value and every combination and, when something is wrong, names the file,
line and column or the key, what it expected and what it found. It reads no
files: it takes bytes, and paths stay paths until the pipeline opens them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import yaml

from sevref._resources import resource
from sevref.binfmt.vmsa import EC2_RDX, Vmm, VmsaProfile, cpu_signature, lookup_cpu_model
from sevref.digest import MAX_VCPUS, KernelBoot, LaunchConfig, Mode
from sevref.errors import ConfigError, ManifestError
from sevref.hosts import HostStack, QemuFix, parse_version

__all__ = [
    "BATCH_KEYS",
    "BootSpec",
    "CpuSpec",
    "DebianSource",
    "DigestRequest",
    "Document",
    "Expected",
    "FirmwareSpec",
    "Lifecycle",
    "Manifest",
    "Matrix",
    "Pattern",
    "Publication",
    "Source",
    "load_manifests",
    "parse_hex",
    "parse_hex_bytes",
    "parse_sha256",
    "parse_yaml",
    "request_from_mapping",
]

BATCH_KEYS = (
    "mode",
    "firmware",
    "firmware_sha256",
    "vcpus",
    "cpu",
    "cpu_signature",
    "vmm",
    "vmsa_profile",
    "sev_features",
    "guest_features",
    "kernel",
    "initrd",
    "cmdline",
    "firmware_prefix",
)
"""The keys of a configuration, as ``sevref digest --batch`` reads them."""

_HEX = re.compile(r"(0[xX])?[0-9a-fA-F]+")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")


def parse_hex(value: object, key: str, bits: int) -> int:
    """Read a value given as a hex string (``"0xa00f11"``, the 0x optional) or an integer.

    Args:
        value: the raw value.
        key: its name, for the error.
        bits: its width.

    Returns:
        The integer.

    Raises:
        ConfigError: not a hex string or a non-negative integer that fits.
    """
    if isinstance(value, str) and _HEX.fullmatch(value):
        number = int(value, 16)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise ConfigError(f'{key}: expected a hex string such as "0x1f" or an integer, found {value!r}')
    if not 0 <= number < 1 << bits:
        raise ConfigError(f"{key}: expected a {bits}-bit value, found {number:#x}")
    return number


def parse_hex_bytes(value: object, key: str, size: int) -> bytes:
    """Read a byte string given as exactly ``2 * size`` hex characters.

    Args:
        value: the raw value.
        key: its name, for the error.
        size: the number of bytes.

    Returns:
        The bytes.

    Raises:
        ConfigError: not a string of ``2 * size`` hex characters.
    """
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX_DIGITS.fullmatch(value):
        raise ConfigError(f"{key}: expected {2 * size} hex characters ({size} bytes), found {value!r}")
    return bytes.fromhex(value)


def parse_sha256(value: object, key: str) -> bytes:
    """Read a SHA-256 given as 64 hex characters.

    Args:
        value: the raw value.
        key: its name, for the error.

    Returns:
        The 32 bytes.

    Raises:
        ConfigError: not 64 hex characters.
    """
    return parse_hex_bytes(value, key, 32)


def _enum(enum: Any, value: object, key: str) -> Any:
    choices = [member.value for member in enum]
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(choices)}, found {value!r}")
    return enum(value)


@dataclass(frozen=True)
class DigestRequest:
    """One launch digest to compute: a configuration with its input files."""

    mode: Mode
    """SEV or SEV-ES."""
    firmware: Path
    """The firmware image (pflash unit 0 or -bios)."""
    firmware_sha256: bytes | None
    """The pin the firmware must match, if given."""
    vcpus: int | None
    """vCPUs at launch; None for SEV, where they are not measured."""
    cpu: str | None
    """The QEMU CPU model's canonical name, if the CPU was given by name."""
    config: LaunchConfig
    """Everything else that decides the digest; its ``boot`` is None until the
    pipeline has hashed :attr:`kernel` and :attr:`initrd`."""
    kernel: Path | None
    """The kernel for measured direct boot."""
    initrd: Path | None
    """The initrd, if any."""
    cmdline: str | None
    """The kernel command line, if any."""
    firmware_prefix: bytes | None = None
    """SEV-SNP: a precomputed firmware prefix to start the chain from."""

    def launch_config(self, boot: KernelBoot | None) -> LaunchConfig:
        """Return the configuration completed with the hashed boot files.

        Args:
            boot: from the pipeline, None when :attr:`kernel` is None.

        Returns:
            The complete configuration.
        """
        config = self.config
        return LaunchConfig(
            mode=config.mode,
            vmm=config.vmm,
            cpu_signature=config.cpu_signature,
            vmsa_profile=config.vmsa_profile,
            sev_features=config.sev_features,
            boot=boot,
        )

    def to_dict(self) -> dict[str, object]:
        """Return the resolved configuration under the batch keys.

        Keys that do not apply to the mode are None. Feeding the result back to
        ``--batch`` gives the same digest.

        Returns:
            A JSON-ready mapping.
        """
        config = self.config
        vmsa = self.mode in (Mode.SEV_ES, Mode.SEV_SNP)
        features = f"{config.sev_features:#x}"
        return {
            "mode": str(self.mode),
            "firmware": str(self.firmware),
            "firmware_sha256": self.firmware_sha256.hex() if self.firmware_sha256 else None,
            "vcpus": self.vcpus,
            "cpu": self.cpu,
            "cpu_signature": None if config.cpu_signature is None else f"{config.cpu_signature:#x}",
            "vmm": str(config.vmm) if vmsa else None,
            "vmsa_profile": None if config.vmsa_profile is None else str(config.vmsa_profile),
            "sev_features": features if self.mode is Mode.SEV_ES else None,
            "guest_features": features if self.mode is Mode.SEV_SNP else None,
            "kernel": None if self.kernel is None else str(self.kernel),
            "initrd": None if self.initrd is None else str(self.initrd),
            "cmdline": self.cmdline,
            "firmware_prefix": None if self.firmware_prefix is None else self.firmware_prefix.hex(),
        }


def _path(value: object, key: str, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a path, found {value!r}")
    path = Path(value)
    return path if path.is_absolute() else base / path


def request_from_mapping(
    values: Mapping[str, object],
    base: Path,
    name: Callable[[str], str] = str,
) -> DigestRequest:
    """Check a configuration given as plain values and resolve it.

    Absent or null keys take their defaults: ``vcpus`` 1, ``vmm`` qemu,
    ``vmsa_profile`` legacy for SEV-ES (QEMU's default ``legacy-vm-type=auto``)
    and init2 for SEV-SNP, ``sev_features`` 0 (SEV-ES), ``guest_features`` 0x1
    (SEV-SNP). A CPU given both by name and by signature must agree. Keys that
    do not affect the mode's digest (the vCPUs and CPU of SEV) are dropped.

    Args:
        values: key to value, keys from :data:`BATCH_KEYS`.
        base: the folder relative paths are resolved against.
        name: how to name a key in error messages (e.g. as a CLI option).

    Returns:
        The request.

    Raises:
        ConfigError: an unknown key, a bad value or a contradictory combination.
    """
    unknown = sorted(set(values) - set(BATCH_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; expected keys from {', '.join(BATCH_KEYS)}")
    given = {key: value for key, value in values.items() if value is not None}

    if "mode" not in given:
        raise ConfigError(f"{name('mode')}: expected one of {', '.join(m.value for m in Mode)}, found nothing")
    mode: Mode = _enum(Mode, given["mode"], name("mode"))
    if "firmware" not in given:
        raise ConfigError(f"{name('firmware')}: expected a path, found nothing")
    firmware = _path(given["firmware"], name("firmware"), base)
    pin = parse_sha256(given["firmware_sha256"], name("firmware_sha256")) if "firmware_sha256" in given else None

    vcpus_value = given.get("vcpus", 1)
    if isinstance(vcpus_value, bool) or not isinstance(vcpus_value, int) or not 1 <= vcpus_value <= MAX_VCPUS:
        raise ConfigError(f"{name('vcpus')}: expected an integer 1..{MAX_VCPUS}, found {vcpus_value!r}")
    vmm: Vmm = _enum(Vmm, given.get("vmm", "qemu"), name("vmm"))

    cpu = None
    signature = None
    if "cpu" in given:
        if not isinstance(given["cpu"], str):
            raise ConfigError(f"{name('cpu')}: expected a CPU model name, found {given['cpu']!r}")
        model = lookup_cpu_model(given["cpu"])
        cpu, signature = model.name, model.signature
    if "cpu_signature" in given:
        raw = parse_hex(given["cpu_signature"], name("cpu_signature"), 32)
        if signature is not None and raw != signature:
            raise ConfigError(
                f"{name('cpu_signature')}: {raw:#x} contradicts {name('cpu')} {cpu}, whose signature is {signature:#x}"
            )
        signature = raw
    profile = None
    if "vmsa_profile" in given:
        profile = _enum(VmsaProfile, given["vmsa_profile"], name("vmsa_profile"))
    snp = mode is Mode.SEV_SNP
    features_key, other_key = ("guest_features", "sev_features") if snp else ("sev_features", "guest_features")
    if other_key in given:
        raise ConfigError(
            f"{name(other_key)}: does not apply to mode {mode}"
            + (f"; its VMSA field is set by {name(features_key)}" if mode in (Mode.SEV_ES, Mode.SEV_SNP) else "")
        )
    default = 0x1 if snp else 0x0
    features = parse_hex(given[features_key], name(features_key), 64) if features_key in given else default
    prefix = None
    if "firmware_prefix" in given:
        if not snp:
            raise ConfigError(f"{name('firmware_prefix')}: applies to mode sev-snp only, found mode {mode}")
        prefix = parse_hex_bytes(given["firmware_prefix"], name("firmware_prefix"), 48)

    kernel = _path(given["kernel"], name("kernel"), base) if "kernel" in given else None
    initrd = _path(given["initrd"], name("initrd"), base) if "initrd" in given else None
    cmdline = given.get("cmdline")
    if cmdline is not None and not isinstance(cmdline, str):
        raise ConfigError(f"{name('cmdline')}: expected a string, found {cmdline!r}")
    if kernel is None and (initrd is not None or cmdline is not None):
        which = name("initrd") if initrd is not None else name("cmdline")
        raise ConfigError(f"{which}: given without {name('kernel')}; QEMU measures them only with a kernel")

    if mode is Mode.SEV_SNP_FIRMWARE and kernel is not None:
        raise ConfigError(f"{name('kernel')}: mode sev-snp-firmware measures the firmware only")
    if mode in (Mode.SEV, Mode.SEV_SNP_FIRMWARE):
        config = LaunchConfig(mode=mode)
        return DigestRequest(mode, firmware, pin, None, None, config, kernel, initrd, cmdline)

    if vmm is Vmm.QEMU and profile is None:
        profile = VmsaProfile.INIT2 if snp else VmsaProfile.LEGACY
    config = LaunchConfig(mode=mode, vmm=vmm, cpu_signature=signature, vmsa_profile=profile, sev_features=features)
    return DigestRequest(mode, firmware, pin, vcpus_value, cpu, config, kernel, initrd, cmdline, prefix)


# --------------------------------------------------------------------------- YAML

MAX_MANIFEST_BYTES = 4 << 20
"""Manifest files larger than this are refused."""
_MAX_DEPTH = 32
_MAX_NODES = 200_000
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_MAX_INT_TEXT = 32  # any 64-bit value fits, with a sign or 0x


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, no implicit timestamps, no aliases and bounded nesting.

    YAML 1.1 reads ``off`` as false and ``2026-11-26`` as a date; manifests mean
    the text (``legacy_vm_type: off``, times are strings in the schema).
    Aliases are refused where they are written, before anything is expanded
    (the "billion laughs"), and nesting is refused beyond 32 levels before
    PyYAML's recursive composer can exhaust the stack.
    """

    document_name = "manifest"
    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """Compose one node, refusing aliases and deep nesting.

        Args:
            parent: the enclosing node.
            index: its key or position.

        Returns:
            The node.

        Raises:
            ManifestError: an alias, or nesting deeper than 32 levels.
        """
        event = self.peek_event()  # type: ignore[no-untyped-call]
        where = f"{self.document_name}:{event.start_mark.line + 1}:{event.start_mark.column + 1}"
        if isinstance(event, yaml.AliasEvent):
            raise ManifestError(f"{where}: a YAML alias (*{event.anchor}); expected every value written out")
        if self._depth >= _MAX_DEPTH:
            raise ManifestError(f"{where}: nested more than {_MAX_DEPTH} levels deep; expected at most {_MAX_DEPTH}")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_TIMESTAMP, _BOOL, _INT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# YAML 1.2 integers: decimal without leading zeros, and 0x hex. YAML 1.1 would also
# read 010 as octal, 1_000 and 0b1 as numbers and 190:20:30 as 685230.
_Loader.add_implicit_resolver(_INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+)$"), list("-+0123456789"))


def _no_json_value(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    """Refuse tags whose values JSON has not (bytes, dates, sets, ordered pairs)."""
    name = getattr(loader, "document_name", "manifest")
    where = f"{name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
    tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
    raise ManifestError(f"{where}: the YAML tag {tag} makes a value JSON has not; expected plain YAML values")


for _tag in ("binary", "timestamp", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _no_json_value)


@dataclass(frozen=True)
class Document:
    """One parsed manifest file."""

    name: str
    """How to name the file in messages."""
    data: Any
    """The parsed value."""
    positions: Mapping[str, tuple[int, int]]
    """JSON pointer to 1-based (line, column) of each node."""
    sha256: bytes
    """SHA-256 of the file's bytes."""
    folder: Path
    """Relative paths in the file are relative to this folder."""

    def where(self, pointer: str) -> str:
        """Name a place in the file: ``name:line:column``, or the nearest enclosing node's.

        Args:
            pointer: a JSON pointer such as ``/matrices/0/vcpus/2``.

        Returns:
            The location.
        """
        while pointer not in self.positions and pointer:
            pointer = pointer.rsplit("/", 1)[0]
        line, column = self.positions.get(pointer, (1, 1))
        return f"{self.name}:{line}:{column}"


def _pointer(parent: str, key: object) -> str:
    return f"{parent}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _walk(document: str, node: yaml.Node, pointer: str, positions: dict[str, tuple[int, int]]) -> None:
    """Record positions; refuse too many nodes, duplicate keys and overlong integers."""
    where = f"{document}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
    if len(positions) >= _MAX_NODES:
        raise ManifestError(f"{where}: more than {_MAX_NODES} YAML nodes; expected a smaller manifest")
    positions[pointer] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        keys: dict[object, str] = {}
        for key_node, value_node in node.value:
            here = f"{document}:{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}"
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a collection"
                raise ManifestError(f"{here}: mapping key {shown!r} is not text; expected text keys (quote it)")
            key = key_node.value
            if key in keys:
                raise ManifestError(f"{here}: key {key!r} appears twice (first at {keys[key]}); expected each key once")
            keys[key] = here.split(":", 1)[1]
            _walk(document, value_node, _pointer(pointer, key), positions)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(document, item, _pointer(pointer, index), positions)
    elif node.tag == _INT and len(node.value) > _MAX_INT_TEXT:
        raise ManifestError(
            f"{where}: an integer written with {len(node.value)} characters; expected at most {_MAX_INT_TEXT} (64 bits)"
        )


def parse_yaml(data: bytes, name: str, folder: Path) -> Document:
    """Parse one manifest file's bytes.

    Refuses what YAML allows but a manifest must not contain: non-UTF-8 text,
    aliases (the "billion laughs"), nesting deeper than 32, duplicate keys,
    integers longer than 64 bits need, tags that construct objects, and files
    above 4 MiB.

    Args:
        data: the file's bytes.
        name: how to name the file in messages.
        folder: the folder relative paths in it are relative to.

    Returns:
        The document.

    Raises:
        ManifestError: with ``name:line:column``.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{name}: {len(data)} bytes; expected at most {MAX_MANIFEST_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ManifestError(
            f"{name}:{line}: byte {error.start} ({data[error.start]:#04x}) is not UTF-8; expected UTF-8 text"
        ) from error
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        loader.document_name = name
        node = loader.get_single_node()
        if node is None:
            raise ManifestError(f"{name}:1:1: the file is empty; expected a mapping with `sevref: 1`")
        positions: dict[str, tuple[int, int]] = {}
        _walk(name, node, "", positions)
        value = loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise ManifestError(f"{where}: invalid YAML: {error.problem or error.context}") from error
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        character = error.character if isinstance(error.character, int) else ord(error.character)
        raise ManifestError(
            f"{name}:{line}:{column}: character {character:#04x} is not allowed in YAML; expected printable text"
        ) from error
    except yaml.YAMLError as error:
        raise ManifestError(f"{name}: {error}") from error
    finally:
        if loader is not None:
            loader.dispose()
    return Document(name, value, positions, hashlib.sha256(data).digest(), folder)


@cache
def _schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(resource("schema", "manifest.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _show(value: object) -> str:
    if isinstance(value, (dict, list)):
        return type(value).__name__
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:77] + "..."


_TYPE_NAMES = {"string": "text", "integer": "an integer", "array": "a list", "object": "a mapping", "null": "null"}


def _describe(error: jsonschema.ValidationError) -> str:
    """One sentence for the most useful schema error: expected, then found."""
    found = error.instance
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    value: Any = error.validator_value
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(found) - set(allowed)) if isinstance(found, dict) else []
        return f"unknown key {extra[0] if extra else '?'!r}; expected one of {', '.join(allowed)}"
    if error.validator == "required":
        return str(error.message).replace(" is a required property", "") + " is missing; expected it here"
    if error.validator == "type":
        kinds = value if isinstance(value, list) else [value]
        hint = " (a number: quote it to mean text)" if isinstance(found, (int, float)) and "string" in kinds else ""
        return f"expected {' or '.join(_TYPE_NAMES.get(k, str(k)) for k in kinds)}, found {_show(found)}{hint}"
    if error.validator in ("enum", "const"):
        options = value if error.validator == "enum" else [value]
        return f"expected one of {', '.join(_show(o) for o in options)}, found {_show(found)}"
    if error.validator == "pattern":
        return f"expected text matching {value}, found {_show(found)}"
    if error.validator in ("minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength", "minProperties"):
        return f"expected {error.validator} {value}, found {_show(found)}"
    if error.validator == "oneOf" and error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        if deepest.absolute_path:
            return _describe(deepest)
        return f"expected {schema.get('description', 'one of the allowed forms')}, found {_show(found)}"
    return f"{error.message}"


def check_schema(document: Document) -> None:
    """Check a document against ``schema/manifest.schema.json``.

    Args:
        document: the parsed file.

    Raises:
        ManifestError: ``file:line:column: /json/pointer: expected ..., found ...``
            for the first error in document order.
    """
    errors = sorted(
        _schema_validator().iter_errors(document.data),
        key=lambda e: (document.where(_json_pointer(e.absolute_path)), str(e.message)),
    )
    if errors:
        error = jsonschema.exceptions.best_match(errors) if len(errors) > 1 else errors[0]
        pointer = _json_pointer(error.absolute_path)
        raise ManifestError(f"{document.where(pointer)}: {pointer or '/'}: {_describe(error)}")


def _json_pointer(path: Sequence[object]) -> str:
    pointer = ""
    for part in path:
        pointer = _pointer(pointer, part)
    return pointer


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class DebianSource:
    """A file inside a Debian binary package."""

    package: str
    """Package name."""
    version: str
    """Exact package version."""
    architecture: str
    """Package architecture (``all`` for OVMF)."""
    path: str
    """The file's installed path, without a leading /."""
    deb_sha256: bytes | None
    """Pin of the .deb itself, if given."""


@dataclass(frozen=True)
class Source:
    """Where a file comes from, pinned by sha256."""

    sha256: bytes
    """The file's pin."""
    path: Path | None = None
    """A local file (absolute after loading)."""
    debian: DebianSource | None = None
    """A file inside a Debian package."""
    origin: str = ""
    """``file:line:column`` of the source in its manifest."""
    root: Path | None = None
    """The folder of the manifest that names a local file: the file must be inside it."""

    def label(self) -> str:
        """Describe the source in one line.

        Returns:
            E.g. ``ovmf 2022.11-6+deb12u2 (all): usr/share/OVMF/OVMF_CODE.fd``.
        """
        if self.debian is not None:
            d = self.debian
            return f"{d.package} {d.version} ({d.architecture}): {d.path}"
        return str(self.path)


@dataclass(frozen=True)
class FirmwareSpec:
    """A firmware build the publication covers."""

    id: str
    """Its id in the manifests."""
    description: str
    """Free text."""
    source: Source
    """Where its image comes from."""
    origin: str
    """``file:line:column``."""


@dataclass(frozen=True)
class BootSpec:
    """A measured direct boot: kernel, optional initrd, one or more command lines."""

    id: str
    """Its id in the manifests."""
    description: str
    """Free text."""
    kernel: Source
    """The kernel image."""
    initrd: Source | None
    """The initrd, if any."""
    cmdlines: tuple[str | None, ...]
    """The command lines (None: no -append)."""
    origin: str
    """``file:line:column``."""


@dataclass(frozen=True, order=True)
class CpuSpec:
    """A guest CPU: a QEMU model name, or a bare signature (``-cpu host``)."""

    signature: int
    """CPUID Fn0000_0001 EAX."""
    name: str | None = None
    """The QEMU model's canonical name, if given by name."""

    def label(self) -> str:
        """Return the name, or the signature in hex.

        Returns:
            A short label.
        """
        return self.name or f"{self.signature:#x}"


@dataclass(frozen=True)
class Expected:
    """What verifiers should expect beside the digest, for one mode."""

    policy: int | None = None
    """The guest policy."""
    min_api: tuple[int, int] | None = None
    """The minimum SEV firmware API version (major, minor)."""


@dataclass(frozen=True)
class Pattern:
    """Matches combinations: each axis given must match (None: any)."""

    modes: frozenset[Mode] | None = None
    """Modes."""
    firmware: frozenset[str] | None = None
    """Firmware ids."""
    host_stacks: frozenset[str] | None = None
    """Host stack ids."""
    boots: frozenset[str | None] | None = None
    """Boot ids (None: firmware-only)."""
    cpus: frozenset[CpuSpec] | None = None
    """CPUs; one given by signature alone matches every model with that signature."""
    vcpus: frozenset[int] | None = None
    """vCPU counts."""
    origin: str = ""
    """``file:line:column``."""

    def matches_cpu(self, cpu: CpuSpec | None) -> bool:
        """Tell whether the pattern's CPU axis matches ``cpu``.

        Args:
            cpu: the combination's CPU (None where the CPU does not apply).

        Returns:
            True when it matches.
        """
        if self.cpus is None:
            return True
        if cpu is None:
            return False
        return any(p.signature == cpu.signature and (p.name is None or p.name == cpu.name) for p in self.cpus)


@dataclass(frozen=True)
class Matrix:
    """One block of combinations: the product of its axes, minus exclusions."""

    id: str
    """Its id in the manifests."""
    description: str
    """Free text."""
    modes: tuple[Mode, ...]
    """Launch modes."""
    firmware: tuple[str, ...]
    """Firmware ids."""
    host_stacks: tuple[str, ...]
    """Host stack ids."""
    cpus: tuple[CpuSpec, ...]
    """Guest CPUs (empty when no QEMU SEV-ES/SNP combination needs one)."""
    vcpus: tuple[int, ...]
    """vCPU counts, sorted."""
    boots: tuple[str | None, ...]
    """Boot ids; None is firmware-only boot."""
    expected: Mapping[Mode, Expected]
    """Published metadata per mode."""
    include: tuple[Pattern, ...]
    """If any, a combination must match one."""
    exclude: tuple[Pattern, ...]
    """A combination matching one is left out."""
    origin: str
    """``file:line:column``."""


@dataclass(frozen=True)
class Lifecycle:
    """Marks the entries a pattern matches deprecated or revoked."""

    match: Pattern
    """Which entries."""
    status: str
    """``deprecated`` or ``revoked``."""
    reason: str
    """Why."""
    successor: str | None
    """What to use instead."""
    since: str | None
    """When, as RFC 3339 UTC."""
    origin: str
    """``file:line:column``."""


@dataclass(frozen=True)
class Publication:
    """Who publishes what: the identity every published file carries."""

    publisher_id: str
    """Short publisher id."""
    publisher_name: str
    """Publisher's name."""
    contact: str
    """Where to report problems."""
    url: str | None
    """Where the publication is hosted."""
    product: str
    """Product id."""
    stream: str
    """Stream id (e.g. a distribution release)."""
    release: str
    """This release."""
    serial: int
    """Monotonically increasing across the stream's releases."""
    description: str
    """Free text."""
    issued: str | None
    """Issue time from the manifest (RFC 3339 UTC), if any."""
    expires: str | None
    """Expiry from the manifest, if any."""
    valid_for_days: int | None
    """Expiry relative to the issue time, if any."""
    origin: str
    """``file:line:column``."""

    def validity(self, issued: str) -> tuple[str, str]:
        """Resolve issue and expiry times.

        Args:
            issued: the issue time to use (from the manifest, a flag or SOURCE_DATE_EPOCH).

        Returns:
            (issued, expires) as RFC 3339 UTC.

        Raises:
            ManifestError: no expiry, or an expiry not after the issue time.
        """
        if self.expires is not None:
            expires = self.expires
        elif self.valid_for_days is not None:
            expires = format_time(parse_time(issued) + timedelta(days=self.valid_for_days))
        else:
            raise ManifestError(f"{self.origin}: publication: expected expires or valid_for_days, found neither")
        if parse_time(expires) <= parse_time(issued):
            raise ManifestError(f"{self.origin}: publication: expires {expires} is not after issued {issued}")
        return issued, expires


@dataclass(frozen=True)
class Manifest:
    """A whole publication as its manifests describe it."""

    publication: Publication
    """The identity and validity."""
    firmware: Mapping[str, FirmwareSpec]
    """Firmware builds by id, in manifest order."""
    host_stacks: Mapping[str, HostStack]
    """Host stacks by id."""
    boots: Mapping[str, BootSpec]
    """Boots by id."""
    matrices: tuple[Matrix, ...]
    """The matrix blocks."""
    lifecycle: tuple[Lifecycle, ...]
    """Lifecycle rules."""
    documents: tuple[tuple[str, bytes], ...] = field(default=())
    """(name, sha256) of every manifest file: the publication's provenance."""


def parse_time(text: str) -> datetime:
    """Read an RFC 3339 UTC time with whole seconds.

    Args:
        text: e.g. ``2026-11-26T00:00:00Z``.

    Returns:
        An aware datetime.

    Raises:
        ConfigError: another form, or not a real date.
    """
    try:
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text):
            raise ValueError("form")
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as error:
        raise ConfigError(f"expected a time like 2026-11-26T00:00:00Z, found {text!r}") from error


def format_time(moment: datetime) -> str:
    """Write a time as RFC 3339 UTC with whole seconds.

    Args:
        moment: an aware datetime.

    Returns:
        E.g. ``2026-11-26T00:00:00Z``.
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        deb = raw["debian"]
        inner = PurePosixPath(deb["path"])
        if inner.is_absolute() or ".." in inner.parts:
            raise self.fail(
                doc.where(pointer + "/debian/path"),
                f"expected a path inside the package such as usr/share/OVMF/OVMF_CODE.fd, found {deb['path']!r}",
            )
        debian = DebianSource(
            package=deb["package"],
            version=deb["version"],
            architecture=deb.get("architecture", "all"),
            path=str(inner),
            deb_sha256=bytes.fromhex(deb["deb_sha256"]) if "deb_sha256" in deb else None,
        )
        return Source(pin, debian=debian, origin=where)

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
        data = doc.data
        if "publication" in data:
            where = doc.where("/publication")
            if self.publication is not None:
                raise self.fail(
                    where, f"a second publication section; expected one, found the first at {self.publication.origin}"
                )
            raw = data["publication"]
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
        for index, raw in enumerate(data.get("firmware", [])):
            pointer = f"/firmware/{index}"
            self.claim("firmware", raw["id"], doc.where(pointer))
            self.firmware[raw["id"]] = FirmwareSpec(
                raw["id"],
                raw.get("description", ""),
                self.source(doc, pointer + "/source", raw["source"]),
                doc.where(pointer),
            )
        for index, raw in enumerate(data.get("host_stacks", [])):
            pointer = f"/host_stacks/{index}"
            self.claim("host stack", raw["id"], doc.where(pointer))
            self.host_stacks[raw["id"]] = self.host_stack(doc, pointer, raw)
        for index, raw in enumerate(data.get("boots", [])):
            pointer = f"/boots/{index}"
            self.claim("boot", raw["id"], doc.where(pointer))
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
            self.boots[raw["id"]] = BootSpec(
                raw["id"],
                raw.get("description", ""),
                self.source(doc, pointer + "/kernel", raw["kernel"]),
                None if initrd is None else self.source(doc, pointer + "/initrd", initrd),
                cmdlines,
                doc.where(pointer),
            )
        for index, raw in enumerate(data.get("matrices", [])):
            pointer = f"/matrices/{index}"
            self.claim("matrix", raw["id"], doc.where(pointer))
            self.matrices[raw["id"]] = self.matrix(doc, pointer, raw)
        for index, raw in enumerate(data.get("lifecycle", [])):
            pointer = f"/lifecycle/{index}"
            self.lifecycle.append(
                Lifecycle(
                    self.pattern(doc, pointer + "/match", raw["match"]),
                    raw["status"],
                    raw["reason"],
                    raw.get("successor"),
                    raw.get("since"),
                    doc.where(pointer),
                )
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
            policy = parse_hex(values["policy"], "policy", 64) if "policy" in values else None
            here = doc.where(f"{pointer}/expected/{mode_name}")
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
        The manifest.

    Raises:
        ManifestError: the first problem, with its file, line and column.
    """
    reader = _Reader()
    for document in documents:
        check_schema(document)
        reader.read(document)
    return reader.finish(documents)
