"""TensorFlow Serving's REST API: `/v1/models/<name>[/versions/<v>|/labels/<l>][:predict|/metadata]`.

Request and response JSON follow TF Serving: row format (`instances` ->
`predictions`) or columnar format (`inputs` -> `outputs`); binary strings as
`{"b64": ...}`; string outputs whose alias ends in `_bytes` are base64-encoded.
"""

import base64
import http.server
import json
import re
import threading

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from keras_bert_impl.serving.errors import ServingError, invalid_argument, not_found
from keras_bert_impl.serving.model_manager import ModelManager
from keras_bert_impl.serving.servable import DEFAULT_SIGNATURE

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                   r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<method>:predict|/metadata)?$")
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


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
        return value.encode("utf-8")
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
                raise ValueError(f"{bad[0]!r} is not a string")
            return array
        if dtype != tf.bool and _holds_bool(value):
            raise ValueError(f"true/false cannot be {dtype.name}")
        array = np.array(value)
        if array.dtype.kind in "OUS" or (dtype.is_integer and array.dtype.kind == "f"):
            raise ValueError(f"values of type {array.dtype} cannot be {dtype.name}")
        if dtype.is_integer and array.size and (array.min() < dtype.min or
                                                array.max() > dtype.max):
            raise ValueError(f"a value is outside the {dtype.name} range "
                             f"[{dtype.min}, {dtype.max}]")
        return array.astype(dtype.as_numpy_dtype)
    except (ValueError, OverflowError) as error:
        raise invalid_argument(f"input {name!r} must hold {dtype.name} values of one shape: "
                               f"{error}") from None


def _json_value(array: np.ndarray, alias: str):
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


def parse_predict_body(body: dict, signature) -> dict[str, np.ndarray]:
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
        return {name: _to_array(value, name, dtypes.get(name, tf.string))
                for name, value in inputs.items()}
    instances = body["instances"]
    if not isinstance(instances, list):
        raise invalid_argument("'instances' must be a list with one entry per example")
    if all(isinstance(i, dict) and "b64" not in i for i in instances) and instances:
        keys = set(instances[0])
        for index, instance in enumerate(instances):
            if set(instance) != keys:
                raise invalid_argument(f"instance {index} has keys {sorted(instance)}, "
                                       f"instance 0 has {sorted(keys)}; all must have the same")
        return {name: _to_array([i[name] for i in instances], name, dtypes.get(name, tf.string))
                for name in keys}
    if len(names) != 1:
        raise invalid_argument(f"the signature takes inputs {names}: each instance must be an "
                               "object with those keys")
    return {names[0]: _to_array(instances, names[0], dtypes[names[0]])}


class _Handler(http.server.BaseHTTPRequestHandler):
    manager: ModelManager  # set by make_rest_server
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._answer(self._get)

    def do_POST(self):
        self._answer(self._post)

    def _answer(self, handler):
        """Reads the whole request first, so a keep-alive connection stays in step, then
        answers with JSON whatever happens: the server survives every request."""
        try:
            request_body = self._read_body()
            match = _PATH.match(self.path)
            if match is None:
                raise not_found(f"no REST endpoint {self.path!r}; expected "
                                "/v1/models/<name>[/versions/<v>|/labels/<l>][:predict|/metadata]")
            status, body = 200, handler(match, request_body)
        except ServingError as error:
            status, body = _HTTP_STATUS.get(error.code, 500), {"error": error.message}
        except Exception as error:  # noqa: BLE001 - an answer instead of a dropped connection
            logging.exception("REST %s %s failed", self.command, self.path)
            status, body = 500, {"error": f"internal error: {type(error).__name__}: {error}"}
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        header = self.headers.get("Content-Length") or "0"
        if not header.strip().isdigit():
            # The body's end is unknown: answer, then close the connection.
            self.close_connection = True
            raise invalid_argument(f"bad Content-Length header {header!r}")
        return self.rfile.read(int(header))

    def _servable(self, match):
        version = int(match["version"]) if match["version"] else None
        return self.manager.servable(match["name"], version, match["label"] or "")

    def _get(self, match, request_body: bytes):
        if match["method"] == ":predict":
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED, "predict needs POST")
        if match["method"] == "/metadata":
            servable = self._servable(match)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, signature in servable.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(signature)
            return {"model_spec": {"name": servable.name, "signature_name": "",
                                   "version": str(servable.version)},
                    "metadata": {"signature_def": json_format.MessageToDict(
                        signature_map, preserving_proto_field_name=True)}}
        states = self.manager.version_states(match["name"])
        if match["label"]:
            version = self.manager.servable(match["name"], label=match["label"]).version
            states = {version: states[version]}
        elif match["version"]:
            version = int(match["version"])
            if version not in states:
                raise not_found(f"Could not find version {version} of model {match['name']}")
            states = {version: states[version]}
        return {"model_version_status": [
            {"version": str(version), "state": state.state,
             "status": {"error_code": "UNKNOWN" if state.error else "OK",
                        "error_message": state.error}}
            for version, state in sorted(states.items())]}

    def _post(self, match, request_body: bytes):
        if match["method"] != ":predict":
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                               f"POST {self.path}: only :predict is served")
        try:
            body = json.loads(request_body)
        except (ValueError, UnicodeDecodeError) as error:
            raise invalid_argument(f"the request body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise invalid_argument("the request body must be a JSON object")
        if not isinstance(body.get("signature_name", ""), str):
            raise invalid_argument("'signature_name' key must be a string value.")
        servable = self._servable(match)
        signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(signature_name)
        if signature is None or signature_name.startswith("__"):
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'Serving signature key "{signature_name}" not found.')
        inputs = parse_predict_body(body, signature)
        outputs = servable.predict(signature_name, inputs)
        if "instances" in body:
            rows = next(iter(outputs.values())).shape[0]
            if len(outputs) == 1:
                alias, array = next(iter(outputs.items()))
                return {"predictions": _json_value(array, alias)}
            columns = {alias: _json_value(array, alias) for alias, array in outputs.items()}
            return {"predictions": [{alias: columns[alias][row] for alias in columns}
                                    for row in range(rows)]}
        if len(outputs) == 1:
            alias, array = next(iter(outputs.items()))
            return {"outputs": _json_value(array, alias)}
        return {"outputs": {alias: _json_value(array, alias) for alias, array in outputs.items()}}


def make_rest_server(manager: ModelManager, host: str, port: int) -> http.server.HTTPServer:
    """A threaded HTTP server for the REST API; call `serve_forever()` in a thread."""
    handler = type("RestHandler", (_Handler,), {"manager": manager})
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: http.server.HTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="rest-api", daemon=True)
    thread.start()
    return thread
