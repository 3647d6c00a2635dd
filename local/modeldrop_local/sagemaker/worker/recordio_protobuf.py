"""SageMaker's RecordIO-protobuf, decoded with the standard library (the image environments have no
protobuf package), for the XGBoost algorithm's `application/x-recordio-protobuf` requests.

The two layers, and where each rule was read:
- RecordIO framing, dmlc-core's (src/recordio.cc RecordIOReader::NextRecord; the writer the SageMaker
  Python SDK uses is sagemaker-python-sdk src/sagemaker/amazon/common.py `_write_recordio`): each
  part is a little-endian uint32 magic 0xced7230a, a uint32 whose low 29 bits are the part's length
  and whose high 3 bits are a continuation flag (0 whole record, 1 first part, 2 middle, 3 last),
  then the data padded with zeros to a multiple of 4. dmlc's writer splits a record wherever the
  magic occurs in it, so the reader puts the magic back between the parts it joins.
- The Record message: sagemaker-python-sdk src/sagemaker/amazon/record.proto (commit 6a175728, the
  same schema as sagemaker_containers.record_pb2, package aialgs.data): Record{map<string, Value>
  features = 1; map<string, Value> label = 2; string uid = 3; string metadata = 4; string
  configuration = 5}; Value is a oneof {Float32Tensor float32_tensor = 2; Float64Tensor
  float64_tensor = 3; Int32Tensor int32_tensor = 7; Bytes bytes = 9}; every tensor is
  {repeated <float|double|int32> values = 1 [packed]; repeated uint64 keys = 2 [packed];
  repeated uint64 shape = 3 [packed]}. A tensor with keys is sparse (shape then gives its width).

Protobuf wire rules kept (as any conforming parser keeps them): a packed field also parses when sent
unpacked; a map entry repeated under the same key keeps the last one; within a oneof the last member
set wins; unknown fields are skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_MASK = (1 << 29) - 1

# Value's oneof members (record.proto): field number -> (tensor kind, struct code of one value).
FLOAT32, FLOAT64, INT32 = "float32", "float64", "int32"
_TENSOR_FIELDS = {2: (FLOAT32, "f"), 3: (FLOAT64, "d"), 7: (INT32, "i")}
_BYTES_FIELD = 9

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class RecordIOProtobufError(ValueError):
    """The body is not RecordIO-framed aialgs.data.Record messages."""


@dataclass
class Tensor:
    kind: str  # float32 | float64 | int32 | bytes
    values: list[float] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)
    shape: list[int] = field(default_factory=list)

    @property
    def sparse(self) -> bool:
        return bool(self.keys)


@dataclass
class Record:
    features: dict[str, Tensor] = field(default_factory=dict)
    label: dict[str, Tensor] = field(default_factory=dict)
    uid: str = ""
    metadata: str = ""
    configuration: str = ""


# ----------------------------------------------------------------------------------- RecordIO


def read_recordio(buf: bytes) -> Iterator[bytes]:
    """Each record's bytes, parts joined as dmlc-core joins them; a broken frame raises."""
    offset, size = 0, len(buf)
    parts: list[bytes] | None = None  # the parts of a multi-part record read so far
    while offset < size:
        if offset + 8 > size:
            raise RecordIOProtobufError(f"Invalid RecordIO file: {size - offset} trailing bytes at {offset}")
        magic, header = struct.unpack_from("<II", buf, offset)
        if magic != MAGIC:
            raise RecordIOProtobufError(f"Invalid RecordIO file: no magic number at offset {offset}")
        flag, length = header >> 29, header & _LENGTH_MASK
        start = offset + 8
        offset = start + ((length + 3) >> 2 << 2)
        if offset > size:
            raise RecordIOProtobufError(
                f"Invalid RecordIO file: record of {length} bytes at offset {start} is truncated"
            )
        data = buf[start : start + length]
        if flag == 0 and parts is None:
            yield data
        elif flag == 1 and parts is None:
            parts = [data]
        elif flag in (2, 3) and parts is not None:
            parts.append(data)
            if flag == 3:
                yield _MAGIC_BYTES.join(parts)
                parts = None
        else:
            raise RecordIOProtobufError(f"Invalid RecordIO file: continuation flag {flag} out of order")
    if parts is not None:
        raise RecordIOProtobufError("Invalid RecordIO file: the last record has no final part")


# ----------------------------------------------------------------------------------- protobuf


def _varint(buf: bytes, offset: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if offset >= len(buf):
            raise RecordIOProtobufError("Truncated protobuf varint")
        byte = buf[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, offset
        shift += 7
        if shift >= 70:
            raise RecordIOProtobufError("Malformed protobuf varint")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value): an int for varints, the raw bytes for the others."""
    offset = 0
    while offset < len(buf):
        key, offset = _varint(buf, offset)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise RecordIOProtobufError("Protobuf field number 0")
        if wire == _VARINT:
            value, offset = _varint(buf, offset)
            yield number, wire, value
            continue
        if wire == _LENGTH_DELIMITED:
            width, offset = _varint(buf, offset)
        elif wire == _FIXED64:
            width = 8
        elif wire == _FIXED32:
            width = 4
        else:  # groups (3, 4) are not in record.proto, and 6, 7 do not exist
            raise RecordIOProtobufError(f"Unsupported protobuf wire type {wire}")
        if offset + width > len(buf):
            raise RecordIOProtobufError("Truncated protobuf field")
        yield number, wire, buf[offset : offset + width]
        offset += width


def _as_int32(value: int) -> int:
    value &= 0xFFFFFFFF  # a negative int32 travels as a 10-byte (64-bit two's complement) varint
    return value - (1 << 32) if value & 0x80000000 else value


def _uint64s(wire: int, value: int | bytes) -> list[int]:
    if wire == _VARINT:
        return [int(value)]  # unpacked
    if wire != _LENGTH_DELIMITED or not isinstance(value, bytes):
        raise RecordIOProtobufError("A uint64 field with the wrong wire type")
    numbers, offset = [], 0
    while offset < len(value):
        number, offset = _varint(value, offset)
        numbers.append(number)
    return numbers


def _tensor_values(kind: str, code: str, wire: int, value: int | bytes) -> list[float]:
    if kind == INT32:
        return [_as_int32(number) for number in _uint64s(wire, value)]
    width = struct.calcsize(code)
    expected_wire = _FIXED32 if width == 4 else _FIXED64
    if not isinstance(value, bytes) or wire not in (expected_wire, _LENGTH_DELIMITED):
        raise RecordIOProtobufError(f"A {kind} value with the wrong wire type")
    if len(value) % width:
        raise RecordIOProtobufError(f"Packed {kind} values of {len(value)} bytes")
    return list(struct.unpack(f"<{len(value) // width}{code}", value))


def _tensor(buf: bytes, kind: str, code: str) -> Tensor:
    tensor = Tensor(kind)
    for number, wire, value in _fields(buf):
        if number == 1:
            tensor.values.extend(_tensor_values(kind, code, wire, value))
        elif number == 2:
            tensor.keys.extend(_uint64s(wire, value))
        elif number == 3:
            tensor.shape.extend(_uint64s(wire, value))
    return tensor


def _value(buf: bytes) -> Tensor | None:
    chosen: Tensor | None = None
    for number, wire, value in _fields(buf):
        if wire != _LENGTH_DELIMITED or not isinstance(value, bytes):
            continue
        if number in _TENSOR_FIELDS:
            kind, code = _TENSOR_FIELDS[number]
            chosen = _tensor(value, kind, code)
        elif number == _BYTES_FIELD:
            chosen = Tensor("bytes")
    return chosen


def _map_entry(buf: bytes) -> tuple[str, Tensor | None]:
    key, value = "", None
    for number, wire, raw in _fields(buf):
        if wire != _LENGTH_DELIMITED or not isinstance(raw, bytes):
            raise RecordIOProtobufError("A map entry field with the wrong wire type")
        if number == 1:
            key = _text(raw)
        elif number == 2:
            value = _value(raw)
    return key, value


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RecordIOProtobufError(f"A protobuf string that is not UTF-8: {error}") from None


def parse_record(buf: bytes) -> Record:
    record = Record()
    for number, wire, raw in _fields(buf):
        if number > 5:
            continue
        if wire != _LENGTH_DELIMITED or not isinstance(raw, bytes):
            raise RecordIOProtobufError(f"Record field {number} with the wrong wire type")
        if number in (1, 2):
            key, value = _map_entry(raw)
            target = record.features if number == 1 else record.label
            target[key] = value if value is not None else Tensor("unset")
        elif number == 3:
            record.uid = _text(raw)
        elif number == 4:
            record.metadata = _text(raw)
        else:
            record.configuration = _text(raw)
    return record


def read_records(buf: bytes) -> list[Record]:
    return [parse_record(data) for data in read_recordio(bytes(buf))]
