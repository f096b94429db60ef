"""Messages serialised straight to CDR bytes, with numpy arrays where ROS would build one object per point.

rclpy turns a `sequence<geometry_msgs/Point>` into one Python object per point, and its serialiser reads them back
one attribute at a time: a person's mesh marker (about 7,000 triangle corners) costs over 15 ms that way. Here a
message is a plain record (`CdrMessage`: its type name and the fields set), point sequences stay (N, 3) float64
arrays, and `serialize` writes the bytes ROS would write: the encapsulation header of little-endian plain CDR, then
each field in declaration order, aligned to its size relative to the payload's start (XCDR1, what Fast DDS and
Cyclone DDS use for ROS 2 topics). rclpy publishers accept such bytes (`Publisher.publish(bytes)`).

The field layouts are read from the running ROS install (`get_fields_and_field_types()` of the generated classes),
so a message that differs between distributions (visualization_msgs/Marker gained texture and mesh_file fields
after Humble) is written the way the installed one reads it. The ROS tests check the bytes against rclpy's own
serialiser.
"""

from __future__ import annotations

import importlib
import re
import struct
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from ..errors import InputError

ENCAPSULATION_CDR_LE = b"\x00\x01\x00\x00"
# rosidl field type names -> little-endian numpy dtypes
PRIMITIVE_DTYPES = {
    "boolean": "<?", "octet": "<u1", "char": "<u1", "uint8": "<u1", "int8": "<i1", "uint16": "<u2", "int16": "<i2",
    "uint32": "<u4", "int32": "<i4", "uint64": "<u8", "int64": "<i8", "float": "<f4", "double": "<f8",
}  # fmt: skip
_SEQUENCE = re.compile(r"sequence<(?P<item>[^,>]+)(?:,\s*\d+)?>")
_ARRAY = re.compile(r"(?P<item>.+)\[(?P<length>\d+)\]")

Layout = tuple[tuple[str, str], ...]  # (field name, rosidl type name) in declaration order


class CdrMessage:
    """A message to serialise: its type ("pkg/msg/Type") and the fields set; the others serialise as defaults."""

    __slots__ = ("msgtype", "fields")

    def __init__(self, msgtype: str, fields: dict[str, Any]):
        self.msgtype = msgtype
        self.fields = fields

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(f"{self.msgtype} message has no field {name!r} set") from None


class CdrTypes:
    """`io.messages.MessageTypes` whose messages are `CdrMessage`s for `serialize` (the node's publishing path).

    layout: msgtype -> its fields (default: the installed generated class's); classes: msgtype -> a class holding
    the message's constants, which `get` returns (default: the installed generated class).
    """

    def __init__(self, layout: Callable[[str], Layout] | None = None, classes: Callable[[str], type] | None = None):
        self.layout = layout or installed_layout
        self.classes = classes or generated_class

    def get(self, msgtype: str, /) -> type:
        return self.classes(msgtype)

    def make(self, msgtype: str, /, **fields: Any) -> CdrMessage:
        known = {name for name, _ in self.layout(msgtype)}
        if unknown := sorted(set(fields) - known):
            raise InputError(f"{msgtype} has no field(s) {unknown}; its fields are {sorted(known)}")
        return CdrMessage(msgtype, fields)

    def point_sequence(self, xyz: np.ndarray, indices: np.ndarray | None = None) -> np.ndarray:
        """A sequence<geometry_msgs/Point> as an (N, 3) float64 array: no per-point objects."""
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        return xyz if indices is None else xyz[np.asarray(indices).reshape(-1)]

    def serialize(self, message: CdrMessage) -> bytes:
        return serialize(message, self.layout)


def serialize(message: CdrMessage, layout: Callable[[str], Layout] | None = None) -> bytes:
    """The message's CDR bytes, encapsulation header first (what `rclpy.serialization.serialize_message` gives)."""
    writer = _Writer(layout or installed_layout)
    writer.message(message.msgtype, message)
    return ENCAPSULATION_CDR_LE + b"".join(writer.parts)


class _Writer:
    def __init__(self, layout: Callable[[str], Layout]):
        self.layout = layout
        self.parts: list[bytes] = []
        self.offset = 0  # bytes written after the encapsulation header: alignment counts from there

    def put(self, data: bytes) -> None:
        self.parts.append(data)
        self.offset += len(data)

    def align(self, size: int) -> None:
        if padding := -self.offset % size:
            self.put(bytes(padding))

    def message(self, msgtype: str, value: Any) -> None:
        for name, type_name in self.layout(msgtype):
            self.field(type_name, _field_value(value, name), f"{msgtype}.{name}")

    def field(self, type_name: str, value: Any, where: str) -> None:
        if type_name in PRIMITIVE_DTYPES:
            self.primitives(type_name, 0 if value is None else value, where, count=None)
        elif type_name == "string" or type_name.startswith("string<="):
            self.string("" if value is None else value, where)
        elif match := _SEQUENCE.fullmatch(type_name):
            self.sequence(match["item"], () if value is None else value, where, fixed=None)
        elif match := _ARRAY.fullmatch(type_name):
            self.sequence(match["item"], value, where, fixed=int(match["length"]))
        elif "/" in type_name:
            self.message(full_type_name(type_name), value)
        else:
            raise InputError(f"{where}: field type {type_name!r} cannot be serialised here")

    def primitives(self, type_name: str, values: Any, where: str, count: int | None) -> None:
        """One primitive (count None) or an array of them (count: their number), aligned to the item size."""
        dtype = np.dtype(PRIMITIVE_DTYPES[type_name])
        data = np.asarray(values, dtype=dtype)
        if count is not None and data.shape != (count,):
            raise InputError(f"{where}: expected {count} {type_name} values, found shape {data.shape}")
        if data.size:
            self.align(dtype.itemsize)
            self.put(data.tobytes())

    def string(self, text: str, where: str) -> None:
        if not isinstance(text, str):
            raise InputError(f"{where}: expected a string, found {type(text).__name__}")
        data = text.encode("utf-8") + b"\x00"
        self.align(4)
        self.put(struct.pack("<I", len(data)))
        self.put(data)

    def sequence(self, item: str, values: Any, where: str, fixed: int | None) -> None:
        """A sequence (length first) or, with `fixed`, an array of that length (no length written)."""
        if values is None:
            values = np.zeros(fixed) if item in PRIMITIVE_DTYPES else [None] * fixed
        count = len(values)
        if fixed is None:
            self.align(4)
            self.put(struct.pack("<I", count))
        elif count != fixed:
            raise InputError(f"{where}: expected {fixed} items, found {count}")
        if item in PRIMITIVE_DTYPES:
            self.primitives(item, values, where, count)
        elif isinstance(values, np.ndarray):
            self.double_rows(full_type_name(item), values, where)
        else:
            for value in values:
                self.field(item, value, where)

    def double_rows(self, msgtype: str, rows: np.ndarray, where: str) -> None:
        """Messages made only of float64 fields (geometry_msgs/Point, Vector3, Quaternion) given as array rows."""
        layout = self.layout(msgtype)
        if any(type_name != "double" for _, type_name in layout):
            raise InputError(f"{where}: {msgtype} items must be messages, an array only stands for all-double ones")
        if rows.ndim != 2 or rows.shape[1] != len(layout):
            raise InputError(f"{where}: expected an (N, {len(layout)}) array of {msgtype}, found {rows.shape}")
        if len(rows):
            self.align(8)
            self.put(np.ascontiguousarray(rows, dtype="<f8").tobytes())


def _field_value(message: Any, name: str) -> Any:
    """The field's value, or None (its default) when the message leaves it unset (or is itself a default)."""
    if message is None:
        return None
    if isinstance(message, CdrMessage):
        return message.fields.get(name)
    return getattr(message, name)


def full_type_name(type_name: str) -> str:
    """'std_msgs/Header' (as rosidl lists nested fields) -> 'std_msgs/msg/Header'."""
    package, _, name = type_name.rpartition("/")
    return type_name if package.endswith("/msg") else f"{package}/msg/{name}"


@cache
def generated_class(msgtype: str) -> type:
    """The rosidl-generated Python class of "pkg/msg/Type" (needs the ROS install's environment)."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


@cache
def installed_layout(msgtype: str) -> Layout:
    """The installed message's fields in declaration order, as rosidl names their types."""
    return tuple(generated_class(msgtype).get_fields_and_field_types().items())
