"""TensorFlow Serving's gRPC services (PredictionService, ModelService) over a ModelManager."""

import time

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keras_bert_impl.serving.errors import ServingError, invalid_argument
from keras_bert_impl.serving.model_manager import ModelManager
from keras_bert_impl.serving.servable import DEFAULT_SIGNATURE
from keras_bert_impl.serving.tensor_protos import (
    MAX_FILLED_REQUEST_ELEMENTS,
    fill_response_tensor_proto,
    to_ndarray,
)

_STATES = get_model_status_pb2.ModelVersionStatus.State


def _check_model_spec(request) -> None:
    # TF Serving's checks and wording (predict_impl.cc, server_core.cc).
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    if not request.model_spec.name:
        raise invalid_argument("ModelSpec has no name specified.")


def _model_spec_of(request) -> tuple[str, int | None, str]:
    _check_model_spec(request)
    spec = request.model_spec
    return spec.name, spec.version.value if spec.HasField("version") else None, spec.version_label


def _servable_for(manager: ModelManager, request):
    return manager.servable(*_model_spec_of(request))


def _abort_on_error(method):
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except ServingError as error:
            context.abort(error.code, error.message)
    wrapper.__name__ = method.__name__
    return wrapper


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata."""

    def __init__(self, manager: ModelManager):
        self._manager = manager

    @_abort_on_error
    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        with self._manager.serving(*_model_spec_of(request)) as servable:
            inputs = {}
            for alias, proto in request.inputs.items():
                try:
                    inputs[alias] = to_ndarray(proto, MAX_FILLED_REQUEST_ELEMENTS)
                except Exception as error:  # noqa: BLE001 - any malformed TensorProto
                    raise invalid_argument(f"tensor parsing error: {alias}: {error}") from None
            signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            remaining = context.time_remaining()  # None, or ~1e19 s, without a deadline
            deadline = None if remaining is None else time.monotonic() + remaining
            outputs = servable.predict(signature_name, inputs, tuple(request.output_filter),
                                       deadline)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for alias, array in outputs.items():
            fill_response_tensor_proto(response.outputs[alias], array)
        return response

    @_abort_on_error
    def Classify(self, request, context):
        return self._not_an_example_model("Classify", request)

    @_abort_on_error
    def Regress(self, request, context):
        return self._not_an_example_model("Regress", request)

    @_abort_on_error
    def MultiInference(self, request, context):
        for task in request.tasks:
            self._not_an_example_model("MultiInference", task)
        raise invalid_argument("MultiInference needs at least one task")

    def _not_an_example_model(self, method: str, request):
        """INVALID_ARGUMENT, as TF Serving answers these APIs for signatures that are not
        tf.Example classification/regression ones, which no export of ours is."""
        servable = _servable_for(self._manager, request)
        name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(name)
        if signature is None:
            raise invalid_argument(f'No signature was found with the name "{name}"; model '
                                   f"{servable.name!r} has {sorted(servable.signature_defs)}")
        raise invalid_argument(
            f"{method} feeds serialized tf.Examples to a signature with one string input and "
            f"classes/scores (or outputs) outputs; signature {name!r} of model "
            f"{servable.name!r} takes {sorted(signature.inputs)} and gives "
            f"{sorted(signature.outputs)}: call Predict")

    @_abort_on_error
    def GetModelMetadata(self, request, context):
        if not request.metadata_field:
            raise invalid_argument("GetModelMetadataRequest must specify at least one "
                                   "metadata_field")
        unsupported = [f for f in request.metadata_field if f != "signature_def"]
        if unsupported:
            raise invalid_argument(f"Metadata field {unsupported[0]} is not supported; "
                                   "the only one is 'signature_def'")
        servable = _servable_for(self._manager, request)
        signature_map = servable.signature_def_map()
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].Pack(signature_map)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, manager: ModelManager):
        self._manager = manager

    @_abort_on_error
    def GetModelStatus(self, request, context):
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        spec = request.model_spec
        states = self._manager.version_states(spec.name)
        if spec.HasField("version"):  # a version_label is ignored, as TF Serving does
            version = spec.version.value
            if version not in states:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find version {version} of model {spec.name}")
            states = {version: states[version]}
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, state in sorted(states.items()):
            status = response.model_version_status.add(version=version,
                                                       state=_STATES.Value(state.state))
            if state.error:
                status.status.error_code = 2  # UNKNOWN, as TF Serving reports a failed load
                status.status.error_message = state.error
        return response

    @_abort_on_error
    def HandleReloadConfigRequest(self, request, context):
        """Replaces the served models with the request's ModelConfigList (`ModelManager.reload`).

        As TF Serving, an error is both the call's status and the response's; `metric_names`
        get no values (this server keeps no monitoring metrics).
        """
        if request.config.WhichOneof("config") != "model_config_list":
            raise invalid_argument("ServerModelConfig type not supported by "
                                   "HandleReloadConfigRequest. Only ModelConfigList is currently "
                                   "supported")
        self._manager.reload(request.config.model_config_list.config)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.SetInParent()  # TF Serving always sets it; OK is error_code 0
        return response
