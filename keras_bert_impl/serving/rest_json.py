"""TensorFlow Serving's REST JSON: predict request bodies to typed input arrays, and
output arrays to the response body.

Row format (`instances` -> `predictions`) or columnar format (`inputs` ->
`outputs`); binary strings as `{"b64": ...}`; string outputs whose alias ends in
`_bytes` are base64-encoded; float32 outputs are written with as few digits as
read back as the same float32, as TF Serving writes them.
"""

import base64
import reprlib

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from keras_bert_impl.serving.errors import invalid_argument


def _decode_value(value, name: str):
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise invalid_argument(f"input {name!r}: an object value must be {{\"b64\": ...}}")
        if not isinstance(value["b64"], str):
            raise invalid_argument(f"input {name!r}: the 'b64' value must be a base64 string, "
                                   f"got {type(value['b64']).__name__}")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError as error:
            raise invalid_argument(f"input {name!r}: bad base64: {error}") from None
    if isinstance(value, list):
        return [_decode_value(v, name) for v in value]
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as error:  # JSON's "\ud800" escapes decode to lone surrogates
            raise invalid_argument(f"input {name!r}: the string {value[:40]!r} is not valid "
                                   f"Unicode: {error.reason}") from None
    return value


def _holds_bool(value) -> bool:
    if isinstance(value, list):
        return any(_holds_bool(v) for v in value)
    return isinstance(value, bool)


def _to_array(value, name: str, dtype: tf.DType) -> np.ndarray:
    value = _decode_value(value, name)
    try:
        if dtype == tf.string:
            array = np.array(value, dtype=object)
            bad = [v for v in array.reshape(-1) if not isinstance(v, bytes)]
            if bad:
                raise ValueError(f"{reprlib.repr(bad[0])} is not a string")
            return array
        if dtype != tf.bool and _holds_bool(value):
            raise ValueError(f"true/false cannot be {dtype.name}")
        array = np.array(value)
        # An empty list reads as float64; it holds no value of the wrong type.
        if array.dtype.kind in "OUS" or (dtype.is_integer and array.dtype.kind == "f"
                                         and array.size):
            raise ValueError(f"values of type {array.dtype} cannot be {dtype.name}")
        if dtype.is_integer and array.size and (array.min() < dtype.min or
                                                array.max() > dtype.max):
            raise ValueError(f"a value is outside the {dtype.name} range "
                             f"[{dtype.min}, {dtype.max}]")
        return array.astype(dtype.as_numpy_dtype)
    except (ValueError, OverflowError) as error:
        raise invalid_argument(f"input {name!r} must hold {dtype.name} values of one shape: "
                               f"{error}") from None


def json_value(array: np.ndarray, alias: str) -> list | dict | int | float | str | bool:
    """An output array as TF Serving writes it in JSON (`_bytes` aliases as base64)."""
    if array.dtype.kind == "O":
        if alias.endswith("_bytes"):
            return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()},
                                otypes=[object])(array).tolist()
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(array).tolist()
    if array.dtype == np.float32:
        return _float32_decimals(array).tolist()
    return array.tolist()


def _float32_decimals(array: np.ndarray) -> np.ndarray:
    """Doubles that print as TF Serving writes these float32s: six significant digits
    when they read back as the same float32, else nine, so 0.2 is 0.2 rather than
    0.20000000298023224.

    Rounded in numpy where the power of ten is exact (|exponent| <= 22): the
    quotient or product is then the double nearest the decimal, as
    `float("%g" % value)` gives. The rest, rare in model outputs, goes by hand.
    """
    values = array.reshape(-1)
    decimals = values.astype(np.float64)
    pending = np.isfinite(decimals) & (decimals != 0)
    by_hand = np.zeros_like(pending)
    for digits in (6, 9):
        index = np.flatnonzero(pending)
        rounded, exact = _round_significant(decimals[index], digits)
        done = exact & (rounded.astype(np.float32) == values[index])
        decimals[index[done]] = rounded[done]
        pending[index[done | ~exact]] = False
        by_hand[index[~exact]] = True
    by_hand |= pending
    decimals[by_hand] = [_float32_decimal(value) for value in values[by_hand]]
    return decimals.reshape(array.shape)


def _round_significant(values: np.ndarray, digits: int) -> tuple[np.ndarray, np.ndarray]:
    """`values` rounded to `digits` significant digits, and where that was exact."""
    with np.errstate(divide="ignore"):
        shift = digits - 1 - np.floor(np.log10(np.abs(values)))
    exact = np.abs(shift) <= 22
    power = 10.0 ** np.abs(np.where(exact, shift, 0))
    up = shift >= 0
    whole = np.round(np.where(up, values * power, values / power))
    return np.where(up, whole / power, whole * power), exact


def _float32_decimal(value: np.float32) -> float:
    short = float(f"{value:g}")
    return short if np.float32(short) == value else float(f"{value:.9g}")


def _names_input(key: str, signature) -> bool:
    try:
        return key in signature.inputs
    except UnicodeEncodeError:  # a lone surrogate, which the protobuf map cannot look up
        return False


def parse_predict_body(body: dict,
                       signature: meta_graph_pb2.SignatureDef) -> dict[str, np.ndarray]:
    """Turns a REST predict body into named arrays typed by the signature's inputs."""
    names = sorted(signature.inputs)
    dtypes = {name: tf.as_dtype(signature.inputs[name].dtype) for name in names}
    if ("instances" in body) == ("inputs" in body):
        raise invalid_argument("the JSON body needs exactly one of 'instances' (row format) "
                               "or 'inputs' (columnar format)")
    if "inputs" in body:
        inputs = body["inputs"]
        if not (isinstance(inputs, dict) and "b64" not in inputs):
            if len(names) != 1:
                raise invalid_argument(f"the signature takes inputs {names}: 'inputs' must be "
                                       "an object with those keys")
            inputs = {names[0]: inputs}
        missing = [name for name in names if name not in inputs]
        if missing:
            raise invalid_argument(f"Missing named input: {missing[0]} in 'inputs' object.")
        # As TF Serving, keys the signature does not take are ignored.
        return {name: _to_array(inputs[name], name, dtypes[name]) for name in names}
    instances = body["instances"]
    if not isinstance(instances, list):
        raise invalid_argument("'instances' must be a list with one entry per example")
    if not instances:
        raise invalid_argument("empty batch: 'instances' is an empty list; send at least one")
    if all(isinstance(i, dict) and "b64" not in i for i in instances) and instances:
        keys = set(instances[0])
        for index, instance in enumerate(instances):
            extra = [key for key in instance if not _names_input(key, signature)]
            if extra:  # TF Serving's wording (json_tensor.cc)
                raise invalid_argument(
                    f"Failed to process element: {index} key: {extra[0]} of 'instances' list. "
                    f"Error: Invalid argument: JSON object: does not have named input: "
                    f"{extra[0]}")
            if set(instance) != keys:
                raise invalid_argument(f"instance {index} has keys {sorted(instance)}, "
                                       f"instance 0 has {sorted(keys)}; all must have the same")
        return {name: _to_array([i[name] for i in instances], name, dtypes.get(name, tf.string))
                for name in keys}
    if len(names) != 1:
        raise invalid_argument("instances is a plain list, but expecting list of objects as "
                               "multiple input tensors required as per tensorinfo_map "
                               f"(inputs {names})")
    return {names[0]: _to_array(instances, names[0], dtypes[names[0]])}


def predict_response(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    """The response body of a predict request: `predictions` (one entry per row, for an
    `instances` request) or `outputs` (one entry per alias); a lone output is not named."""
    key = "predictions" if row_format else "outputs"
    if len(outputs) == 1:
        alias, array = next(iter(outputs.items()))
        return {key: json_value(array, alias)}
    columns = {alias: json_value(array, alias) for alias, array in outputs.items()}
    if not row_format:
        return {key: columns}
    rows = next(iter(outputs.values())).shape[0]
    return {key: [{alias: columns[alias][row] for alias in columns} for row in range(rows)]}
