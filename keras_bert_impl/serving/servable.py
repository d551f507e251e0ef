"""One loaded version of a SavedModel: request checks, model calls, warmup."""

import collections
import os
import re
import threading

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_log_pb2

from keras_bert_impl.serving.batching import Batcher
from keras_bert_impl.serving.batching_parameters import BatchingOptions
from keras_bert_impl.serving.errors import ServingError, invalid_argument
from keras_bert_impl.serving.tensor_protos import MAX_FILLED_REQUEST_ELEMENTS, to_ndarray

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


def read_signature_defs(path: str) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The `serve` MetaGraph's SignatureDefs, as stored in `path/saved_model.pb`."""
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{path}/saved_model.pb has no MetaGraph tagged 'serve'")


def _dtype_of(array: np.ndarray) -> tf.DType:
    return tf.string if array.dtype.kind in "OSU" else tf.as_dtype(array.dtype)


def _shape_text(shape_proto) -> str:
    if shape_proto.unknown_rank:
        return "any shape"
    return "[" + ", ".join("None" if d.size < 0 else str(d.size) for d in shape_proto.dim) + "]"


def _short(error: tf.errors.OpError) -> str:
    """The graph error's own message and node, without TF's Python stack traces."""
    head, _, tail = error.message.partition("\n\t [[")
    # A loaded graph's errors read "Detected at node N defined at ...:\n<stack
    # traces unavailable>\n<message>": keep the message.
    head = head.rpartition("<stack traces unavailable>\n")[2]
    message = [part for part in head.split("\n\n") if part.strip()][-1].strip()
    node = re.search(r"\{\{node ([^}]+)\}\}", tail)
    return f"{message} (at node {node.group(1)})" if node else message


class Servable:
    """A SavedModel version ready to answer Predict requests.

    Checks requests against the stored SignatureDefs (names, dtypes, shapes,
    batch size) with TensorFlow Serving's status codes, then runs the signature
    function, through a `Batcher` when batching is on.
    """

    def __init__(self, name: str, version: int, path: str,
                 batching: BatchingOptions | None = None):
        self.name, self.version, self.path = name, version, path
        self.signature_defs = read_signature_defs(path)
        self._loaded = tf.saved_model.load(path, tags=["serve"])
        self._functions = dict(self._loaded.signatures)
        self._batching = batching
        self._batchers: dict[str, Batcher] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._closing = self._closed = False
        self.model_calls = 0

    def predict(self, signature_name: str, inputs: dict[str, np.ndarray],
                output_filter: tuple[str, ...] = (),
                deadline: float | None = None) -> dict[str, np.ndarray]:
        """Checks `inputs` and returns the signature's outputs (all, or `output_filter`).

        `deadline` (`time.monotonic()`): with batching, a request still queued after it
        is not run (RESOURCE_EXHAUSTED, as TF Serving)."""
        signature_name = signature_name or DEFAULT_SIGNATURE
        signature = self._signature(signature_name)
        size = self._check_inputs(signature_name, signature, inputs)
        # Counted once each: list.count per alias took hours for a million aliases.
        duplicated = sorted(alias for alias, count in collections.Counter(output_filter).items()
                            if count > 1)
        if duplicated:
            raise invalid_argument(f"duplicate output tensor alias: {duplicated[0]}")
        unknown = [alias for alias in output_filter if alias not in signature.outputs]
        if unknown:
            raise invalid_argument(
                f"output tensor alias not found in signature: {unknown[0]}. Outputs expected "
                f"to be in the set {{{','.join(sorted(signature.outputs))}}}.")
        with self._lock:
            if self._closed:
                raise self._unavailable("was unloaded")
            self._in_flight += 1
        try:
            if self._batching is None:
                outputs = self._run(signature_name, inputs)
            else:
                outputs = self._batcher(signature_name).run(inputs, size, deadline)
        finally:
            self.release()
        if output_filter:
            outputs = {alias: outputs[alias] for alias in output_filter}
        return outputs

    def hold(self) -> None:
        """Keeps this version loaded until `release()`: a request's hold from the lookup of
        its servable to its answer, as TF Serving's ServableHandle (an unload waits)."""
        with self._lock:
            if self._closing:
                raise self._unavailable("is unloading")
            self._in_flight += 1

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._idle.notify_all()

    def _unavailable(self, what: str) -> ServingError:
        return ServingError(grpc.StatusCode.UNAVAILABLE,
                            f"model {self.name!r} version {self.version} {what}")

    def warm_up(self) -> int:
        """Replays `assets.extra/tf_serving_warmup_requests` as TF Serving does; the count."""
        path = os.path.join(self.path, WARMUP_FILE)
        if not tf.io.gfile.exists(path):
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            log = prediction_log_pb2.PredictionLog.FromString(record)
            if not log.HasField("predict_log"):
                raise ValueError(f"{path}: record {count} is not a predict_log")
            request = log.predict_log.request
            inputs = {name: to_ndarray(proto, MAX_FILLED_REQUEST_ELEMENTS)
                      for name, proto in request.inputs.items()}
            self.predict(request.model_spec.signature_name, inputs)
            count += 1
        return count

    def close(self, timeout: float = 60.0) -> None:
        """Refuses new requests, lets the running ones finish (up to `timeout` seconds),
        then stops the batching threads."""
        with self._lock:
            self._closing = True
            self._idle.wait_for(lambda: self._in_flight == 0, timeout)
            self._closed = True
            batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            batcher.close()

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        """The signatures as GetModelMetadata answers them (gRPC and REST `/metadata`)."""
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in self.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        return signature_map

    def _signature(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
        if signature_name not in self._functions:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found. Model {self.name!r} '
                f"version {self.version} has signatures {sorted(self._functions)}.")
        return self.signature_defs[signature_name]

    def _check_inputs(self, signature_name, signature, inputs) -> int:
        expected = signature.inputs
        if len(inputs) == len(expected) and set(inputs) != set(expected):
            # TF Serving's wording (predict_util.cc) when only the names differ.
            raise invalid_argument(
                f"input tensor alias not found in signature: "
                f"{min(set(inputs) - set(expected))}. Inputs expected to be in the set "
                f"{{{','.join(sorted(expected))}}}. (signature {signature_name!r})")
        if set(inputs) != set(expected):
            extra = sorted(set(inputs) - set(expected))
            missing = sorted(set(expected) - set(inputs))
            raise invalid_argument(
                f"input size does not match signature: {len(inputs)}!={len(expected)} "
                f"len({{{','.join(sorted(inputs))}}}) != len({{{','.join(sorted(expected))}}}). "
                f"Sent extra: {{{','.join(extra)}}}. Missing but required: "
                f"{{{','.join(missing)}}}. (signature {signature_name!r})")
        sizes = {}
        for name, array in inputs.items():
            info = expected[name]
            want = tf.as_dtype(info.dtype)
            got = _dtype_of(array)
            if got != want:
                raise invalid_argument(
                    f"input {name!r} of signature {signature_name!r} must be {want.name} "
                    f"({types_pb2.DataType.Name(want.as_datatype_enum)}), got {got.name} "
                    f"({types_pb2.DataType.Name(got.as_datatype_enum)})")
            shape = info.tensor_shape
            if not shape.unknown_rank:
                dims = [d.size for d in shape.dim]
                if array.ndim != len(dims) or any(
                        want_dim >= 0 and want_dim != got_dim
                        for want_dim, got_dim in zip(dims, array.shape)):
                    raise invalid_argument(
                        f"input {name!r} of signature {signature_name!r} has shape "
                        f"{list(array.shape)}; expected {_shape_text(shape)}")
            if array.ndim == 0:
                raise invalid_argument(f"input {name!r} is a scalar; send a batch (a list)")
            sizes[name] = array.shape[0]
        if len(set(sizes.values())) > 1:
            raise invalid_argument(
                f"inputs have different batch sizes (dimension 0): {sizes}; they must agree")
        size = next(iter(sizes.values()), 0)
        if size == 0:
            raise invalid_argument(
                f"empty batch: input {next(iter(sizes), '')!r} has 0 rows; send at least one")
        return size

    def _batcher(self, signature_name: str) -> Batcher:
        with self._lock:
            if self._closed:  # closed meanwhile: a new Batcher's threads would never stop
                raise self._unavailable("was unloaded")
            if signature_name not in self._batchers:
                self._batchers[signature_name] = Batcher(
                    lambda inputs: self._run(signature_name, inputs), self._batching)
            return self._batchers[signature_name]

    def _run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        signature = self.signature_defs[signature_name]
        with self._lock:
            self.model_calls += 1
        try:
            tensors = {name: tf.constant(array, dtype=tf.as_dtype(signature.inputs[name].dtype))
                       for name, array in inputs.items()}
            outputs = self._functions[signature_name](**tensors)
            return {name: tensor.numpy() for name, tensor in outputs.items()}
        except tf.errors.OpError as error:
            code = _GRPC_CODES.get(error.error_code, grpc.StatusCode.UNKNOWN)
            raise ServingError(code, f"signature {signature_name!r}: {_short(error)}") from None
        except MemoryError as error:  # a host copy in or out, rather than TF's allocator
            rows = next(iter(inputs.values())).shape[0]
            raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"signature {signature_name!r}: out of memory running a batch "
                               f"of {rows} rows ({error or 'no detail'}); send smaller "
                               "batches") from None
