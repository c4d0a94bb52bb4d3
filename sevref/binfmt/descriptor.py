"""QEMU firmware descriptors: the JSON files a firmware package ships beside its images.

Every distribution package of OVMF installs descriptors in
``/usr/share/qemu/firmware/*.json`` (libvirt reads them to choose a
firmware). Each describes one image: how QEMU maps it (``mapping``), which
features it has (``features``: ``amd-sev``, ``amd-sev-es``, ``amd-sev-snp``,
...) and which machine types run it (``targets``). The format is QEMU's
``docs/interop/firmware.json`` (the ``Firmware`` struct, since QEMU 3.0;
``FirmwareMappingFlash.mode`` since QEMU 7.0.0; ``amd-sev-es``,
``amd-sev-snp`` and ``intel-tdx`` were added to ``FirmwareFeature`` later).

:func:`parse_descriptor` takes the document already decoded (strictly, by
:mod:`sevref.strictjson` at the edge) and returns a :class:`Descriptor`, or
raises :class:`~sevref.errors.FirmwareFormatError` naming the descriptor and
the member.
"""

from __future__ import annotations

import enum
import fnmatch
import posixpath
from dataclasses import dataclass
from typing import Any

from sevref.errors import FirmwareFormatError

__all__ = [
    "DESCRIPTOR_FOLDER",
    "MODE_FEATURES",
    "Described",
    "Descriptor",
    "Device",
    "Finding",
    "FlashMode",
    "Target",
    "parse_descriptor",
]

DESCRIPTOR_FOLDER = "/usr/share/qemu/firmware"
"""Where distribution packages install descriptors (``docs/interop/firmware.json``, the ``Firmware`` struct)."""

MODE_FEATURES = {"sev": "amd-sev", "sev-es": "amd-sev-es", "sev-snp": "amd-sev-snp"}
"""The ``FirmwareFeature`` that says a firmware runs in each launch mode (by the mode's name)."""


class Device(enum.StrEnum):
    """``FirmwareDevice``: what QEMU maps the image into (since QEMU 3.0)."""

    FLASH = "flash"
    """pflash: ``-drive if=pflash,unit=0`` (or ``-machine pflash0=``)."""
    MEMORY = "memory"
    """``-bios FILE``."""
    KERNEL = "kernel"
    """``-kernel FILE``."""


class FlashMode(enum.StrEnum):
    """``FirmwareFlashMode`` (QEMU 7.0.0): how a flash image keeps its variables; absent means ``split``."""

    SPLIT = "split"
    """Code only; each guest gets a copy of the NVRAM template as pflash unit 1."""
    COMBINED = "combined"
    """Code and variable store in one file, copied per guest and written to."""
    STATELESS = "stateless"
    """Code and a store that is not persisted: mapped read-only, no NVRAM template."""


@dataclass(frozen=True)
class Target:
    """``FirmwareTarget``: an emulator and the machine types (globs) it runs the firmware on."""

    architecture: str
    """``x86_64``, ``i386``, ..."""
    machines: tuple[str, ...]
    """Machine-type globs, e.g. ``pc-q35-*``."""


@dataclass(frozen=True)
class Descriptor:
    """One QEMU firmware descriptor."""

    path: str
    """Its installed path, e.g. ``/usr/share/qemu/firmware/60-edk2-x86_64.json``."""
    description: str
    """Its ``description``."""
    device: Device
    """``mapping.device``."""
    flash_mode: FlashMode | None
    """``mapping.mode`` for flash (``split`` when absent); None for memory and kernel."""
    executable: str
    """The image it describes: ``mapping.executable.filename`` (flash) or ``mapping.filename``."""
    nvram_template: str | None
    """``mapping.nvram-template.filename`` (split flash only)."""
    features: tuple[str, ...]
    """``features``, as listed."""
    targets: tuple[Target, ...]
    """``targets``."""

    @property
    def name(self) -> str:
        """The descriptor's file name, e.g. ``60-edk2-x86_64.json``."""
        return posixpath.basename(self.path)

    def lists(self, mode: str) -> bool:
        """Whether the descriptor lists the feature of a launch mode.

        Args:
            mode: ``sev``, ``sev-es`` or ``sev-snp``.

        Returns:
            True when ``features`` has ``amd-sev``, ``amd-sev-es`` or ``amd-sev-snp`` respectively.
        """
        return MODE_FEATURES[mode] in self.features

    def mapping_label(self) -> str:
        """How QEMU maps the image, in a few words.

        Returns:
            ``memory (-bios)``, ``flash (split)``, ``flash (stateless)``, ...
        """
        if self.device is Device.FLASH:
            return f"flash ({self.flash_mode})"
        return f"{self.device} ({'-bios' if self.device is Device.MEMORY else '-kernel'})"

    def runs_on(self, architecture: str, machine: str) -> bool | None:
        """Whether a machine type is one of the descriptor's targets.

        Args:
            architecture: the emulator (``x86_64``).
            machine: the machine type (``pc-q35-9.1``); aliases such as ``q35``
                are not versioned types, so only an exact or ``*`` pattern matches them.

        Returns:
            True or False; None when the descriptor names no target for the architecture.
        """
        globs = [m for t in self.targets if t.architecture == architecture for m in t.machines]
        if not globs:
            return None
        return any(fnmatch.fnmatchcase(machine, glob) for glob in globs)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form a firmware record publishes.

        Returns:
            ``path``, ``description``, ``device``, ``mode`` (flash only), the files, ``features``, ``targets``.
        """
        return {
            "path": self.path,
            "description": self.description,
            "device": str(self.device),
            "mode": None if self.flash_mode is None else str(self.flash_mode),
            "executable": self.executable,
            "nvram_template": self.nvram_template,
            "features": list(self.features),
            "targets": [{"architecture": t.architecture, "machines": list(t.machines)} for t in self.targets],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Descriptor:
        """Read the JSON form :meth:`to_dict` writes.

        Args:
            data: the mapping.

        Returns:
            The descriptor.
        """
        mode = data["mode"]
        return cls(
            path=data["path"],
            description=data["description"],
            device=Device(data["device"]),
            flash_mode=None if mode is None else FlashMode(mode),
            executable=data["executable"],
            nvram_template=data["nvram_template"],
            features=tuple(data["features"]),
            targets=tuple(Target(t["architecture"], tuple(t["machines"])) for t in data["targets"]),
        )


_TOP = ("description", "interface-types", "mapping", "targets", "features", "tags")


def _field(where: str, value: dict[str, Any], key: str, kind: type, member: str) -> Any:
    if key not in value:
        raise FirmwareFormatError(f"{where}: {member} has no {key!r}; expected one (QEMU docs/interop/firmware.json)")
    found = value[key]
    if not isinstance(found, kind) or isinstance(found, bool):
        raise FirmwareFormatError(
            f"{where}: {member}.{key} is {type(found).__name__}; expected {kind.__name__} (QEMU docs/interop/firmware.json)"
        )
    return found


def _strings(where: str, value: dict[str, Any], key: str, member: str) -> tuple[str, ...]:
    items = _field(where, value, key, list, member)
    for item in items:
        if not isinstance(item, str):
            raise FirmwareFormatError(f"{where}: {member}.{key} holds {type(item).__name__}; expected strings")
    return tuple(items)


def _only(where: str, value: dict[str, Any], keys: tuple[str, ...], member: str) -> None:
    extra = sorted(set(value) - set(keys))
    if extra:
        raise FirmwareFormatError(
            f"{where}: {member} has {', '.join(repr(k) for k in extra)}; expected only {', '.join(keys)} "
            "(QEMU docs/interop/firmware.json)"
        )


def _file(where: str, value: dict[str, Any], key: str) -> str:
    flash_file = _field(where, value, key, dict, "mapping")
    _only(where, flash_file, ("filename", "format"), f"mapping.{key}")
    name: str = _field(where, flash_file, "filename", str, f"mapping.{key}")
    _field(where, flash_file, "format", str, f"mapping.{key}")
    return name


def parse_descriptor(document: Any, where: str, path: str) -> Descriptor:
    """Read a decoded firmware descriptor.

    Args:
        document: the JSON value (from :func:`sevref.strictjson.loads`).
        where: how to name it in errors (``ovmf 2099.1-1: /usr/share/qemu/firmware/60-x.json``).
        path: its installed path.

    Returns:
        The descriptor.

    Raises:
        FirmwareFormatError: not a ``Firmware`` object as QEMU's
            ``docs/interop/firmware.json`` defines it; the message names the member.
    """
    if not isinstance(document, dict):
        raise FirmwareFormatError(f"{where}: a {type(document).__name__}; expected an object (a QEMU Firmware)")
    _only(where, document, _TOP, "the descriptor")
    description = _field(where, document, "description", str, "the descriptor")
    _strings(where, document, "interface-types", "the descriptor")
    _strings(where, document, "tags", "the descriptor")
    features = _strings(where, document, "features", "the descriptor")
    targets = []
    for number, target in enumerate(_field(where, document, "targets", list, "the descriptor")):
        member = f"targets[{number}]"
        if not isinstance(target, dict):
            raise FirmwareFormatError(f"{where}: {member} is {type(target).__name__}; expected an object")
        _only(where, target, ("architecture", "machines"), member)
        targets.append(
            Target(_field(where, target, "architecture", str, member), _strings(where, target, "machines", member))
        )
    mapping = _field(where, document, "mapping", dict, "the descriptor")
    device_name = _field(where, mapping, "device", str, "mapping")
    try:
        device = Device(device_name)
    except ValueError:
        raise FirmwareFormatError(
            f"{where}: mapping.device is {device_name!r}; expected flash, memory or kernel (FirmwareDevice)"
        ) from None
    flash_mode, template = None, None
    if device is Device.FLASH:
        _only(where, mapping, ("device", "mode", "executable", "nvram-template"), "mapping")
        mode_name = mapping.get("mode", "split")
        try:
            flash_mode = FlashMode(mode_name)
        except ValueError:
            raise FirmwareFormatError(
                f"{where}: mapping.mode is {mode_name!r}; expected split, combined or stateless "
                "(FirmwareFlashMode, QEMU 7.0.0)"
            ) from None
        executable = _file(where, mapping, "executable")
        if flash_mode is FlashMode.SPLIT:
            template = _file(where, mapping, "nvram-template")
        elif "nvram-template" in mapping:
            raise FirmwareFormatError(
                f"{where}: mapping.mode {flash_mode} with an nvram-template; expected none (FirmwareFlashMode: "
                "'No NVRAM template will be specified')"
            )
    else:
        _only(where, mapping, ("device", "filename"), "mapping")
        executable = _field(where, mapping, "filename", str, "mapping")
    return Descriptor(path, description, device, flash_mode, executable, template, features, tuple(targets))


@dataclass(frozen=True)
class Described:
    """A file's descriptor, and the package both come from."""

    descriptor: Descriptor
    """The descriptor whose mapping names the file."""
    package: str
    """The package's ``name version``."""

    @property
    def label(self) -> str:
        """``ovmf 2026.08+ds-2: /usr/share/qemu/firmware/60-edk2-x86_64-amdsev.json``, for messages."""
        return f"{self.package}: {self.descriptor.path}"


@dataclass(frozen=True)
class Finding:
    """What reading a firmware file out of a package found beside it.

    The source kind that reads the file returns it with the bytes
    (:meth:`sevref.edge.sources.kind.SourceKind.read_firmware`);
    :func:`sevref.pipeline.prepare` keeps one per firmware id and hands them
    to the stages that judge the file (its nvram statement, the modes it can
    launch, its record), so that they see what its package says about it.
    """

    read: bool = False
    """Whether a package was read for the file (False: not yet, or not a package)."""
    described: Described | None = None
    """The descriptor that names the file, if its package has one."""
