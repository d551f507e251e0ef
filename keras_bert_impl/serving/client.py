"""A gRPC client for TensorFlow Serving (the real server or `model_server`)."""

import re
from collections.abc import Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keras_bert_impl.serving.errors import ServingError
from keras_bert_impl.serving.tensor_protos import fill_tensor_proto, to_ndarray

_STATES = get_model_status_pb2.ModelVersionStatus.State
_CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1),
                    ("grpc.max_receive_message_length", -1),
                    # gRPC's reconnect back-off grows to 120 s: a client kept failing for
                    # many seconds after a restarted server was back.
                    ("grpc.initial_reconnect_backoff_ms", 200),
                    ("grpc.max_reconnect_backoff_ms", 1000)]


_TRAILING_PORT = re.compile(r":(\d+)$")


def _checked_target(target: str) -> str:
    """gRPC would accept these and then fail later with a message about something else."""
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"target must be a gRPC address such as 'localhost:8500', "
                         f"got {target!r}")
    port = _TRAILING_PORT.search(target)
    if port and not 0 < int(port[1]) < 65536:
        raise ValueError(f"target {target!r}: port {port[1]} is not in 1-65535")
    return target


def _tensor_info(info) -> dict:
    shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
    return {"dtype": tf.as_dtype(info.dtype).name, "shape": shape}


def _string_batch(texts) -> np.ndarray:
    """A string batch, also when empty (the server then says "empty batch", not "wrong dtype")."""
    texts = [texts] if isinstance(texts, (str, bytes)) else list(texts)
    batch = np.empty(len(texts), dtype=object)
    batch[:] = texts
    return batch


def _as_text(array: np.ndarray) -> np.ndarray:
    if array.dtype != object:
        return array
    return np.vectorize(lambda value: value.decode("utf-8", errors="replace"),
                        otypes=[object])(array)


class Client:
    """Sends texts to a served BERT SavedModel and returns numpy outputs.

    Uses only TensorFlow Serving's public gRPC API, so it works against
    `tensorflow_model_server` and `keras_bert_impl.serving.model_server` alike.

    Example:
        client = Client("localhost:8500", model_name="bert")
        client.predict(["the movie was great"])["probabilities"]
        client.predict(["a question?"], ["its context"])  # pair models

    `version` or `version_label` (a model config's `version_labels`, e.g. "canary")
    picks the version; by default the server's newest. With `wait_for_ready`, a
    call to a server that is not up yet (starting, restarting) waits for it, up to
    the call's timeout, instead of failing at once with UNAVAILABLE.
    """

    def __init__(self, target: str, model_name: str = "bert",
                 signature_name: str = "serving_default", timeout: float = 10.0,
                 version: int | None = None, version_label: str | None = None,
                 wait_for_ready: bool = False):
        if version is not None and version_label:
            raise ValueError(f"give version ({version}) or version_label ({version_label!r}), "
                             "not both: a request names one")
        self.target, self.model_name = _checked_target(target), model_name
        self.signature_name, self.timeout, self.version = signature_name, timeout, version
        self.version_label, self.wait_for_ready = version_label, wait_for_ready
        self._channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                timeout: float | None = None) -> dict[str, np.ndarray]:
        """Runs `texts` (and `pairs` for pair models) through the text-in signature.

        String outputs (labels, tokens, tags, answers) come back as `str`, as
        the REST API gives them; `predict_tensors` keeps TensorFlow's bytes.
        """
        texts = _string_batch(texts)
        inputs = {"text": texts}
        if pairs is not None:
            pairs = _string_batch(pairs)
            if len(pairs) != len(texts):
                raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs; "
                                 "give one pair per text")
            inputs["text_pair"] = pairs
        outputs = self.predict_tensors(inputs, timeout=timeout)
        return {name: _as_text(value) for name, value in outputs.items()}

    def predict_tensors(self, inputs: dict, signature_name: str | None = None,
                        timeout: float | None = None) -> dict[str, np.ndarray]:
        """Sends named arrays (e.g. the three int32 inputs of `serving_tokenized`)."""
        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, signature_name or self.signature_name)
        for name, value in inputs.items():
            fill_tensor_proto(request.inputs[name], value)
        response = self._call(self._predict.Predict, request, timeout, "Predict")
        return {name: to_ndarray(proto) for name, proto in response.outputs.items()}

    def metadata(self, timeout: float | None = None) -> dict[str, dict]:
        """Signature name -> {"inputs": {...}, "outputs": {...}} with dtype and shape each."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._fill_spec(request.model_spec, "")
        response = self._call(self._predict.GetModelMetadata, request, timeout, "GetModelMetadata")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {key: {"inputs": {k: _tensor_info(v) for k, v in sig.inputs.items()},
                      "outputs": {k: _tensor_info(v) for k, v in sig.outputs.items()}}
                for key, sig in signature_map.signature_def.items() if not key.startswith("__")}

    def status(self, timeout: float | None = None) -> list[dict]:
        """[{"version": int, "state": "AVAILABLE", "error_message": str}, ...]."""
        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec, "")
        response = self._call(self._models.GetModelStatus, request, timeout, "GetModelStatus")
        return [{"version": s.version, "state": _STATES.Name(s.state),
                 "error_message": s.status.error_message}
                for s in response.model_version_status]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _fill_spec(self, spec, signature_name: str) -> None:
        spec.name = self.model_name
        if signature_name:
            spec.signature_name = signature_name
        if self.version is not None:
            spec.version.value = self.version
        elif self.version_label:
            spec.version_label = self.version_label

    def _call(self, method, request, timeout, what):
        timeout = self.timeout if timeout is None else timeout
        try:
            return method(request, timeout=timeout, wait_for_ready=self.wait_for_ready)
        except grpc.RpcError as error:
            code = error.code()
            message = error.details() or ""
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                message = f"no answer within {timeout} s ({message})"
            elif code == grpc.StatusCode.UNAVAILABLE:
                message = (f"the model server at {self.target} is unavailable (not running, "
                           f"starting or stopping; wait_for_ready=True waits for it): {message}")
            raise ServingError(code, f"{what} on model {self.model_name!r} at {self.target} "
                                     f"failed: {message}") from None
