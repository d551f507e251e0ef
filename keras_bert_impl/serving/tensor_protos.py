"""numpy arrays <-> TensorProto for Predict requests and responses, without extra copies.

`tf.make_tensor_proto` and `tf.make_ndarray` take ~20 µs of Python per tensor
and copy the bytes twice (once into the proto, once more with `CopyFrom`).
Here request tensors go through `tensor_content` in one copy, written straight
into the request field, and strings through `string_val`; anything else (typed
`*_val` fields from other clients, bfloat16, ...) falls back to TensorFlow's own
converters, so every proto TF Serving accepts is read the same. Responses carry
their values in the typed fields (`float_val`, `int_val`, ...), as TF Serving
writes them by default (`Tensor::AsProtoField`), since clients read
`outputs["probabilities"].float_val`.
"""

import functools
import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

_STRING_KINDS = "OSU"


@functools.cache
def _numeric_dtypes() -> dict:
    """numpy dtype <-> DataType enum for the types that travel as raw `tensor_content`."""
    pairs = [(np.dtype(tf.as_dtype(enum).as_numpy_dtype), enum) for enum in (
        types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_INT64,
        types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_UINT8, types_pb2.DT_UINT16,
        types_pb2.DT_UINT32, types_pb2.DT_UINT64, types_pb2.DT_BOOL, types_pb2.DT_HALF)]
    return {"to_enum": dict(pairs), "to_numpy": {enum: dtype for dtype, enum in pairs}}


def _utf8(item, index: int) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        try:
            return item.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate such as "\ud800"
            raise ValueError(f"string tensor element {index} ({item[:40]!r}) is not valid "
                             f"Unicode: {error.reason}") from None
    raise TypeError(f"string tensor element {index} is a {type(item).__name__} ({item!r}), "
                    "not str or bytes")


def _native_byte_order(value):
    """A big-endian array as native: TensorFlow's converters copy its bytes unswapped."""
    if isinstance(value, np.ndarray) and value.dtype.byteorder == ">":
        return value.astype(value.dtype.newbyteorder("="))
    return value


def fill_tensor_proto(proto: tensor_pb2.TensorProto, value: np.typing.ArrayLike) -> None:
    """Writes `value` into `proto` in place, encoded as `tf.make_tensor_proto` would.

    Fast paths: numpy arrays of the numeric types above or of strings, and
    lists of str/bytes; anything else (python numbers keep TensorFlow's int32
    and float32 defaults) goes through `tf.make_tensor_proto`.
    """
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (str, bytes)) for v in value):
        value = np.array(value, dtype=object)
    value = _native_byte_order(value)
    enum = _numeric_dtypes()["to_enum"].get(value.dtype) if isinstance(value, np.ndarray) else None
    is_string = isinstance(value, np.ndarray) and value.dtype.kind in _STRING_KINDS
    if enum is None and not is_string:
        proto.CopyFrom(tf.make_tensor_proto(value))
        return
    proto.Clear()
    for size in value.shape:
        proto.tensor_shape.dim.add(size=size)
    if enum is not None:
        proto.dtype = enum
        proto.tensor_content = np.ascontiguousarray(value, value.dtype.newbyteorder("<")).tobytes()
        return
    proto.dtype = types_pb2.DT_STRING
    proto.string_val.extend(_utf8(item, index)
                            for index, item in enumerate(value.reshape(-1).tolist()))


def _packed_field(number: int, raw: bytes) -> bytes:
    """The wire bytes of a packed repeated field: its tag, the length as a varint, the values."""
    header, length = bytearray([number << 3 | 2]), len(raw)
    while length > 0x7F:
        header.append(length & 0x7F | 0x80)
        length >>= 7
    header.append(length)
    return bytes(header) + raw


# Fixed-width value fields, appended as their packed wire bytes: for a [32, 128, 768]
# sequence_output ~10x faster than extending the repeated field from a list.
_PACKED_FLOATS = {np.dtype(np.float32): 5, np.dtype(np.float64): 6}  # float_val, double_val


def fill_response_tensor_proto(proto: tensor_pb2.TensorProto, value: np.ndarray) -> None:
    """Writes a model output into `proto` with its values in the typed `*_val` field.

    This is TF Serving's default response encoding (`kAsProtoField`); strings
    and the dtypes without a typed field keep `fill_tensor_proto`'s encoding.
    """
    value = _native_byte_order(np.asarray(value))
    enum = _numeric_dtypes()["to_enum"].get(value.dtype)
    field = _VALUE_FIELDS.get(enum)
    if field is None:
        fill_tensor_proto(proto, value)
        return
    proto.Clear()
    proto.dtype = enum
    for size in value.shape:
        proto.tensor_shape.dim.add(size=size)
    if value.dtype in _PACKED_FLOATS:
        raw = np.ascontiguousarray(value, value.dtype.newbyteorder("<")).tobytes()
        proto.MergeFromString(_packed_field(_PACKED_FLOATS[value.dtype], raw))
    elif value.dtype == np.float16:  # half_val holds each value's 16 bits
        proto.half_val.extend(value.reshape(-1).view(np.uint16).tolist())
    else:
        getattr(proto, field).extend(value.reshape(-1).tolist())


# A request proto with fewer values than its shape holds is filled in with the last value,
# as TensorFlow reads it, but only up to this many elements: past that, a message of a few
# bytes would declare a batch that costs gigabytes to run.
MAX_FILLED_REQUEST_ELEMENTS = 1 << 16

# The typed field each dtype's values travel in when `tensor_content` is not used.
_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val", types_pb2.DT_INT16: "int_val", types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val", types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val", types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val", types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val", types_pb2.DT_BFLOAT16: "half_val",
    types_pb2.DT_STRING: "string_val",
}


def _dtype_name(enum: int) -> str:
    return types_pb2.DataType.Name(enum) if enum in types_pb2.DataType.values() else str(enum)


def _shape(proto: tensor_pb2.TensorProto) -> tuple[list[int], int]:
    """The dimensions and element count, checked as TensorFlow's TensorShape checks them."""
    if proto.tensor_shape.unknown_rank:
        raise ValueError("the shape has unknown_rank set; a tensor's shape must be known")
    shape = [dim.size for dim in proto.tensor_shape.dim]
    negative = [index for index, size in enumerate(shape) if size < 0]
    if negative:
        raise ValueError(f"shape {shape}: dimension {negative[0]} has size "
                         f"{shape[negative[0]]}; a tensor's dimensions must be 0 or more")
    count = math.prod(shape)
    if count >= 1 << 63:
        raise ValueError(f"shape {shape} has {count} elements, more than a tensor can hold")
    return shape, count


def to_ndarray(proto: tensor_pb2.TensorProto, max_filled: float = math.inf) -> np.ndarray:
    """The numpy array a TensorProto holds (raises ValueError/TypeError if it is malformed).

    A tensor of more than `max_filled` elements must carry all its values (requests:
    `MAX_FILLED_REQUEST_ELEMENTS`); responses are read as TensorFlow reads them.
    """
    shape, count = _shape(proto)
    numeric = _numeric_dtypes()["to_numpy"].get(proto.dtype)
    if numeric is not None and proto.tensor_content:
        content = proto.tensor_content
        if len(content) != count * numeric.itemsize:
            raise ValueError(f"tensor_content has {len(content)} bytes; shape {shape} of "
                             f"{numeric.name} needs {count * numeric.itemsize}")
        return np.frombuffer(content, numeric.newbyteorder("<")).astype(numeric).reshape(shape)
    field = _VALUE_FIELDS.get(proto.dtype)
    if field is None:
        raise ValueError(f"dtype {_dtype_name(proto.dtype)} cannot be a request tensor; send "
                         "DT_STRING, a number type or DT_BOOL")
    given = len(getattr(proto, field))
    if given > count or (0 < given < count and count > max_filled):
        raise ValueError(f"a {_dtype_name(proto.dtype)} tensor of shape {shape} holds {count} "
                         f"values, but the proto has {given} in {field}"
                         + (f" (filling in more than {max_filled} from fewer is "
                            "refused)" if given < count else ""))
    if given == 0 and count > max_filled:
        raise ValueError(f"a {_dtype_name(proto.dtype)} tensor of shape {shape} holds {count} "
                         f"values, but the proto has none (in {field} or tensor_content)")
    if proto.dtype == types_pb2.DT_STRING and given == count:
        array = np.empty(count, dtype=object)
        array[:] = list(proto.string_val)
        return array.reshape(shape)
    if numeric is not None and numeric in _PACKED_FLOATS and given == count:
        return np.array(getattr(proto, field), dtype=numeric).reshape(shape)
    try:
        return tf.make_ndarray(proto)
    except MemoryError:  # its message is empty
        raise ValueError(f"shape {shape} ({count} elements) does not fit in memory") from None
