"""User-described configurations to typed values.

A configuration arrives as a mapping of plain values: a line of
``sevref digest --batch`` or the options of ``sevref digest``. This module turns
one into a :class:`DigestRequest`, checking every value and every combination,
and naming the key, what it expected and what it found when something is wrong.
It reads no files: paths stay paths until the pipeline opens them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sevref.binfmt.vmsa import Vmm, VmsaProfile, lookup_cpu_model
from sevref.digest import MAX_VCPUS, KernelBoot, LaunchConfig, Mode
from sevref.errors import ConfigError

__all__ = ["BATCH_KEYS", "DigestRequest", "parse_hex", "parse_hex_bytes", "parse_sha256", "request_from_mapping"]

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
