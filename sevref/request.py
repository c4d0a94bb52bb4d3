"""One configuration to measure, as ``sevref digest`` takes it: options or a JSON line.

:data:`OPTIONS` is the one table of a configuration's keys: ``sevref digest``
makes its options from it and ``--batch`` reads its keys (:data:`BATCH_KEYS`).
:func:`request_from_mapping` checks the values and resolves the defaults into a
:class:`DigestRequest`; :func:`parse_batch` reads JSON lines into requests, one
by one, and :func:`read_batch` gives the same results sharing one request among
lines that differ only in their vCPU count (what ``--batch`` uses). This
module reads no files: paths stay paths until the edge opens them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from json.scanner import make_scanner
from pathlib import Path

from sevref import strictjson
from sevref.binfmt.vmsa import Vmm, VmsaProfile, lookup_cpu_model
from sevref.digest import MAX_VCPUS, KernelBoot, LaunchConfig, Mode
from sevref.errors import ConfigError, SevrefError
from sevref.values import parse_hex, parse_hex_bytes, parse_sha256, show

__all__ = [
    "BATCH_KEYS",
    "OPTIONS",
    "DigestRequest",
    "Option",
    "parse_batch",
    "read_batch",
    "request_from_mapping",
]


@dataclass(frozen=True)
class Option:
    """One key of a configuration: its name, how the command line shows it, and whether a batch line takes it."""

    key: str
    """The batch key, and the option's name with - for _."""
    metavar: str | None
    """The option's value placeholder (None: the choices are shown)."""
    help: str
    """The option's help text."""
    choices: tuple[str, ...] | None = None
    """The allowed values, if a closed set."""
    integer: bool = False
    """The value is an integer (else text)."""
    batch: bool = True
    """``--batch`` lines take the key (the CPU's family/model/stepping trio is for the command line only)."""
    cpu: bool = False
    """One of the ways of naming the guest CPU."""

    @property
    def flag(self) -> str:
        """The command-line option, e.g. ``--firmware-sha256``."""
        return "--" + self.key.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("mode", None, "the kind of launch", choices=tuple(m.value for m in Mode)),
    Option("firmware", "PATH", "the firmware image (pflash unit 0 or -bios)"),
    Option("firmware_sha256", "HEX", "refuse a firmware whose sha256 differs"),
    Option("vcpus", "N", "vCPUs at launch (default 1; not measured by sev)", integer=True),
    Option("cpu", "NAME", "QEMU CPU model, e.g. EPYC-Milan", cpu=True),
    Option("cpu_signature", "HEX", "CPUID signature, e.g. 0xa10f11 (-cpu host: the host's)", cpu=True),
    Option("cpu_family", "N", "family, with --cpu-model and --cpu-stepping", integer=True, batch=False, cpu=True),
    Option("cpu_model", "N", "model", integer=True, batch=False, cpu=True),
    Option("cpu_stepping", "N", "stepping", integer=True, batch=False, cpu=True),
    Option("vmm", None, "who builds the vCPU state (default qemu)", choices=tuple(v.value for v in Vmm)),
    Option(
        "vmsa_profile",
        None,
        "QEMU's VMSAs: legacy (sev-es's default), init2 (KVM_SEV_INIT2: sev-snp's default, or "
        "legacy-vm-type=off; QEMU 9.1-10.0) or init2-ap-fpu-zero (the same from QEMU 10.1: APs' FPU 0)",
        choices=tuple(p.value for p in VmsaProfile),
    ),
    Option("sev_features", "HEX", "sev-es: VMSA SEV_FEATURES (default 0; 0x20 DebugSwap)"),
    Option("guest_features", "HEX", "sev-snp: VMSA SEV_FEATURES (default 0x1, SNPActive)"),
    Option("kernel", "PATH", "kernel for measured direct boot (kernel-hashes=on)"),
    Option("initrd", "PATH", "initrd (with --kernel)"),
    Option("cmdline", "STR", "kernel command line, as given to -append (with --kernel)"),
    Option("firmware_prefix", "HEX", "sev-snp: start from this sev-snp-firmware digest (96 hex digits)"),
)
"""Every key of a configuration, in the order the command line lists them."""

BATCH_KEYS = tuple(option.key for option in OPTIONS if option.batch)
"""The keys of a configuration, as ``sevref digest --batch`` reads them."""


def _choice(choices: tuple[str, ...], value: object, key: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(choices)}, found {value!r}")
    return value


_MODES = tuple(m.value for m in Mode)
_VMMS = tuple(v.value for v in Vmm)
_PROFILES = tuple(p.value for p in VmsaProfile)


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
    edge has hashed :attr:`kernel` and :attr:`initrd`."""
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
            boot: from the edge, None when :attr:`kernel` is None.

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
    if "\0" in value:
        raise ConfigError(f"{key}: expected a path, found one with a NUL byte ({value!r}), which no file name has")
    path = Path(value)
    return path if path.is_absolute() else base / path


def _cpu(given: Mapping[str, object], name: Callable[[str], str]) -> tuple[str | None, int | None]:
    """The CPU's canonical model name (if given by name) and its signature; a name and a signature must agree."""
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
    return cpu, signature


def _boot(
    given: Mapping[str, object], base: Path, name: Callable[[str], str]
) -> tuple[Path | None, Path | None, str | None]:
    """The kernel, initrd and command line; the last two only with a kernel."""
    kernel = _path(given["kernel"], name("kernel"), base) if "kernel" in given else None
    initrd = _path(given["initrd"], name("initrd"), base) if "initrd" in given else None
    cmdline = given.get("cmdline")
    if cmdline is not None and not isinstance(cmdline, str):
        raise ConfigError(f"{name('cmdline')}: expected a string, found {cmdline!r}")
    if kernel is None and (initrd is not None or cmdline is not None):
        which = name("initrd") if initrd is not None else name("cmdline")
        raise ConfigError(f"{which}: given without {name('kernel')}; QEMU measures them only with a kernel")
    return kernel, initrd, cmdline


def _features(given: Mapping[str, object], mode: Mode, name: Callable[[str], str]) -> int:
    """The VMSA SEV_FEATURES: ``sev_features`` for SEV-ES, ``guest_features`` for SEV-SNP."""
    snp = mode is Mode.SEV_SNP
    features_key, other_key = ("guest_features", "sev_features") if snp else ("sev_features", "guest_features")
    if other_key in given:
        raise ConfigError(
            f"{name(other_key)}: does not apply to mode {mode}"
            + (f"; its VMSA field is set by {name(features_key)}" if mode in (Mode.SEV_ES, Mode.SEV_SNP) else "")
        )
    default = 0x1 if snp else 0x0
    return parse_hex(given[features_key], name(features_key), 64) if features_key in given else default


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
    mode = Mode(_choice(_MODES, given["mode"], name("mode")))
    if "firmware" not in given:
        raise ConfigError(f"{name('firmware')}: expected a path, found nothing")
    firmware = _path(given["firmware"], name("firmware"), base)
    pin = parse_sha256(given["firmware_sha256"], name("firmware_sha256")) if "firmware_sha256" in given else None

    vcpus = given.get("vcpus", 1)
    if isinstance(vcpus, bool) or not isinstance(vcpus, int) or not 1 <= vcpus <= MAX_VCPUS:
        raise ConfigError(f"{name('vcpus')}: expected an integer 1..{MAX_VCPUS}, found {vcpus!r}")
    vmm = Vmm(_choice(_VMMS, given.get("vmm", "qemu"), name("vmm")))
    cpu, signature = _cpu(given, name)
    profile = None
    if "vmsa_profile" in given:
        profile = VmsaProfile(_choice(_PROFILES, given["vmsa_profile"], name("vmsa_profile")))
    features = _features(given, mode, name)
    prefix = None
    if "firmware_prefix" in given:
        if mode is not Mode.SEV_SNP:
            raise ConfigError(f"{name('firmware_prefix')}: applies to mode sev-snp only, found mode {mode}")
        prefix = parse_hex_bytes(given["firmware_prefix"], name("firmware_prefix"), 48)
    kernel, initrd, cmdline = _boot(given, base, name)

    if mode is Mode.SEV_SNP_FIRMWARE and kernel is not None:
        raise ConfigError(f"{name('kernel')}: mode sev-snp-firmware measures the firmware only")
    if mode in (Mode.SEV, Mode.SEV_SNP_FIRMWARE):
        return DigestRequest(mode, firmware, pin, None, None, LaunchConfig(mode=mode), kernel, initrd, cmdline)
    if vmm is Vmm.QEMU and profile is None:
        profile = VmsaProfile.INIT2 if mode is Mode.SEV_SNP else VmsaProfile.LEGACY
    config = LaunchConfig(mode=mode, vmm=vmm, cpu_signature=signature, vmsa_profile=profile, sev_features=features)
    return DigestRequest(mode, firmware, pin, vcpus, cpu, config, kernel, initrd, cmdline, prefix)


def _parse_line(line: str, base: Path) -> DigestRequest | SevrefError:
    """One line of a batch, read with every check: a request or the error found."""
    try:
        if not line.strip():
            raise ConfigError("empty line; expected a JSON object")
        try:
            value = strictjson.decode(line)
        except strictjson.Refused as error:
            raise ConfigError(str(error)) from None
        except json.JSONDecodeError as error:
            raise ConfigError(f"not JSON: {error.msg} at column {error.colno}") from error
        except ValueError as error:  # an integer longer than Python converts
            raise ConfigError(f"not JSON: {error}") from error
        except RecursionError as error:  # nested deeper than Python's stack
            raise ConfigError("not JSON: nested too deeply") from error
        if not isinstance(value, dict):
            raise ConfigError(f"expected a JSON object, found {show(value)}")
        return request_from_mapping(value, base)
    except SevrefError as error:
        return error


def parse_batch(lines: Iterable[str], base: Path) -> list[DigestRequest | SevrefError]:
    """Read ``sevref digest --batch`` input: one JSON object a line.

    Args:
        lines: the lines, without their line ends.
        base: the folder relative paths are resolved against.

    Returns:
        A request per line, or the error found in that line.
    """
    return [_parse_line(line, base) for line in lines]


# The JSON scanner without the checks of _parse_line: objects come back as tuples of (key, value)
# pairs, which keep duplicate keys for read_batch to notice and can key its cache.
_SCAN = make_scanner(json.JSONDecoder(object_pairs_hook=tuple))  # type: ignore[arg-type]  # as JSONDecoder does
_PLAIN_TYPES = (str, int, type(None))
# A "vcpus" member whose value is a positive JSON integer of up to four digits (JSON whitespace only).
_VCPUS = re.compile(r'"vcpus"[ \t\n\r]*:[ \t\n\r]*([1-9][0-9]{0,3})(?![0-9.eE])')
_MAX_TEXTS = 1 << 14  # distinct line texts remembered at once (each a line less its vCPU count)

_Pairs = tuple[tuple[str, object], ...]


def read_batch(lines: Iterable[str], base: Path) -> list[tuple[DigestRequest, int] | SevrefError]:
    """Read ``sevref digest --batch`` input as :func:`parse_batch` does, sharing the work of alike lines.

    Lines that differ only in their vCPU count share one request: each
    distinct configuration (the line's keys and values but ``vcpus``) is
    checked once by :func:`request_from_mapping`, and its paths resolved
    once; a line whose text differs from one already read only in the digits
    of its vCPU count is not even parsed again. A line this cannot read
    plainly (not a flat JSON object of strings, integers and nulls with
    distinct keys, an out-of-range vCPU count, a configuration that fails its
    checks) is read by :func:`parse_batch`'s own code instead, so every
    result and error is the same as there.

    Args:
        lines: the lines, without their line ends.
        base: the folder relative paths are resolved against.

    Returns:
        Per line, the request and the line's vCPU count, or the error found
        in that line. A shared request's own ``vcpus`` is the default (1, or
        None where vCPUs are not measured): the count is what measures.
    """
    reader = _BatchReader(base)
    results: list[tuple[DigestRequest, int] | SevrefError] = []
    texts = reader.texts
    search = _VCPUS.search
    for line in lines:
        match = search(line)
        if match is not None:
            start, end = match.span(1)
            request = texts.get((line[:start], line[end:]))
            vcpus = int(line[start:end])
            if request is not None and vcpus <= MAX_VCPUS:
                results.append((request, vcpus))
                continue
        results.append(reader.read(line, match))
    return results


class _BatchReader:
    """The caches of one :func:`read_batch`: requests by configuration, and by line text less the vCPU count."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.requests: dict[_Pairs, DigestRequest | None] = {}  # None: only the full path words it right
        self.texts: dict[tuple[str, str], DigestRequest] = {}

    def read(self, line: str, match: re.Match[str] | None) -> tuple[DigestRequest, int] | SevrefError:
        """Read a line whose text is not known yet; remember its text if the vCPU count is where ``match`` says."""
        pairs = self._pairs(line)
        shared = None if pairs is None else self._shared(pairs)
        if shared is None:
            parsed = _parse_line(line, self.base)
            return parsed if isinstance(parsed, SevrefError) else (parsed, parsed.vcpus or 1)
        request, vcpus = shared
        if match is not None and pairs is not None and int(match.group(1)) == vcpus:
            # The digits are this line's vCPU count if another count there changes nothing else.
            start, end = match.span(1)
            other = self._pairs(line[:start] + str(vcpus + 1) + line[end:])
            if other == tuple((key, vcpus + 1) if key == "vcpus" else (key, value) for key, value in pairs):
                if len(self.texts) >= _MAX_TEXTS:
                    self.texts.clear()
                self.texts[line[:start], line[end:]] = request
        return request, vcpus

    @staticmethod
    def _pairs(line: str) -> _Pairs | None:
        """The line's object as (key, value) pairs, if it is exactly one JSON object."""
        if line[:1] != "{":
            return None
        try:
            pairs, end = _SCAN(line, 0)
        except (ValueError, StopIteration, RecursionError):
            return None
        return pairs if end == len(line) and isinstance(pairs, tuple) else None

    def _shared(self, pairs: _Pairs) -> tuple[DigestRequest, int] | None:
        """The shared request of a line's pairs and its vCPU count, or None for the full path."""
        vcpus: object = None
        seen = 0
        for key, value in pairs:
            if type(value) not in _PLAIN_TYPES:  # bool is not int here; floats, lists and objects neither
                return None
            if key == "vcpus":
                vcpus, seen = value, seen + 1
        if vcpus is None:
            vcpus = 1
        if seen > 1 or not isinstance(vcpus, int) or not 1 <= vcpus <= MAX_VCPUS:
            return None
        rest = tuple(pair for pair in pairs if pair[0] != "vcpus") if seen else pairs
        if rest not in self.requests:
            values = dict(rest)
            try:
                self.requests[rest] = request_from_mapping(values, self.base) if len(values) == len(rest) else None
            except SevrefError:
                self.requests[rest] = None
        request = self.requests[rest]
        return None if request is None else (request, vcpus)
