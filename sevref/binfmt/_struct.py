"""Declared little-endian byte layouts, built only through a checked builder.

ctypes accepts unknown keyword arguments and silently truncates integers that do
not fit their field. sev-snp-measure's ``VMSA_SVSM.build_save_area`` passes
``fcw=fcw`` where the field is ``x87_fcw``, so FCW stays 0 and nothing notices.
:meth:`LEStruct.build` refuses both mistakes with a :class:`LayoutError`.
"""

from __future__ import annotations

import ctypes
import re
import uuid
from typing import Any, ClassVar, TypeVar

from sevref.errors import FirmwareFormatError, LayoutError

__all__ = ["LEStruct", "check_layout", "guid_bytes", "guid_str", "u16", "u32", "u64"]

_T = TypeVar("_T", bound="LEStruct")
_RESERVED = re.compile(r"reserved_0x([0-9a-f]+)$")
_INT_TYPES: tuple[type[Any], ...] = (ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64)


class LEStruct(ctypes.LittleEndianStructure):
    """A packed little-endian structure with a checked builder and parser."""

    _pack_ = 1
    _fields_: ClassVar[list[tuple[str, Any]]] = []

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Return the declared field names in layout order.

        Returns:
            The names, first field first.
        """
        return tuple(name for name, *_ in cls._fields_)

    @classmethod
    def build(cls: type[_T], **values: object) -> _T:
        """Build a structure from field values, checking every one.

        Integers must fit their field, byte arrays must have exactly the field's
        length and nested structures must be of the declared type. Fields not
        given are zero.

        Args:
            **values: field name to value.

        Returns:
            The new structure.

        Raises:
            LayoutError: a name is not a field, or a value does not fit it.
        """
        types = {name: ctype for name, ctype, *_ in cls._fields_}
        obj = cls()
        for name, value in values.items():
            ctype = types.get(name)
            if ctype is None:
                raise LayoutError(f"{cls.__name__} has no field {name!r}; its fields are {', '.join(types)}")
            setattr(obj, name, _checked(cls.__name__, name, ctype, value))
        return obj

    @classmethod
    def parse(cls: type[_T], data: bytes, offset: int, what: str) -> _T:
        """Read a structure out of ``data`` at ``offset``.

        Args:
            data: the whole buffer.
            offset: where the structure starts.
            what: a short description for the error message.

        Returns:
            A copy of the structure.

        Raises:
            FirmwareFormatError: the structure does not fit inside ``data``.
        """
        size = ctypes.sizeof(cls)
        if offset < 0 or offset + size > len(data):
            raise FirmwareFormatError(
                f"{what} at offset {offset:#x}: expected {size} bytes inside the "
                f"{len(data)}-byte image, found it reaching past the end"
            )
        return cls.from_buffer_copy(data, offset)

    def to_bytes(self) -> bytes:
        """Return the structure's bytes.

        Returns:
            Exactly ``sizeof`` bytes.
        """
        return bytes(self)


def _checked(struct: str, name: str, ctype: Any, value: object) -> object:
    if ctype in _INT_TYPES:
        if not isinstance(value, int) or isinstance(value, bool):
            raise LayoutError(f"{struct}.{name}: expected an integer, found {type(value).__name__}")
        limit = 1 << (8 * ctypes.sizeof(ctype))
        if not 0 <= value < limit:
            raise LayoutError(f"{struct}.{name}: expected 0 <= value < {limit:#x}, found {value:#x}")
        return value
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Array):
        size = ctypes.sizeof(ctype)
        if not isinstance(value, (bytes, bytearray)) or len(value) != size:
            found = f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__
            raise LayoutError(f"{struct}.{name}: expected {size} bytes, found {found}")
        return ctype.from_buffer_copy(value)
    if not isinstance(value, ctype):
        raise LayoutError(f"{struct}.{name}: expected a {ctype.__name__}, found {type(value).__name__}")
    return value


def check_layout(cls: type[LEStruct], size: int, offsets: dict[str, int] | None = None) -> None:
    """Check a declared layout against its specification.

    Checks the total size, that every ``reserved_0xNNN`` field sits at 0xNNN,
    and any further field offsets given.

    Args:
        cls: the structure.
        size: its size in bytes by the specification.
        offsets: field name to offset by the specification.

    Raises:
        LayoutError: the declaration disagrees with the specification.
    """
    actual = ctypes.sizeof(cls)
    if actual != size:
        raise LayoutError(f"{cls.__name__}: expected {size} bytes, declared {actual}")
    expected = dict(offsets or {})
    for name in cls.field_names():
        match = _RESERVED.match(name)
        if match:
            expected[name] = int(match.group(1), 16)
    for name, offset in expected.items():
        found = getattr(cls, name).offset
        if found != offset:
            raise LayoutError(f"{cls.__name__}.{name}: expected at {offset:#x}, declared at {found:#x}")


def guid_bytes(text: str) -> bytes:
    """Return a GUID's 16 bytes in UEFI (mixed-endian) order.

    Args:
        text: the GUID as ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``.

    Returns:
        The bytes as they appear in firmware images and QEMU's tables.
    """
    return uuid.UUID(text).bytes_le


def guid_str(data: bytes) -> str:
    """Return the text form of a GUID stored in UEFI byte order.

    Args:
        data: 16 bytes.

    Returns:
        The lowercase text form.
    """
    return str(uuid.UUID(bytes_le=bytes(data)))


def u16(data: bytes, offset: int) -> int:
    """Read a little-endian u16 (the caller checks bounds)."""
    return int.from_bytes(data[offset : offset + 2], "little")


def u32(data: bytes, offset: int) -> int:
    """Read a little-endian u32 (the caller checks bounds)."""
    return int.from_bytes(data[offset : offset + 4], "little")


def u64(data: bytes, offset: int) -> int:
    """Read a little-endian u64 (the caller checks bounds)."""
    return int.from_bytes(data[offset : offset + 8], "little")
