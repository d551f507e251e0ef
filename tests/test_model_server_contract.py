"""Model server behaviours TF Serving clients rely on that test_model_server.py leaves open:
which version answered, output filters, status of one version, the `latest` policy's
num_versions, the availability-preserving unload, batching edge cases, REST status codes,
`_bytes` outputs and the client's per-call timeout."""

import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2
from test_model_server import _http, base_with_version_1, write_toy_version

from keras_bert_impl.serving import Client, ServingError, start_server
from keras_bert_impl.serving.batching import Batcher
from keras_bert_impl.serving.batching_parameters import BatchingOptions
from keras_bert_impl.serving.errors import invalid_argument
from keras_bert_impl.serving.model_manager import ModelManager
from keras_bert_impl.serving.rest_json import json_value


@pytest.fixture
def served(tmp_path):
    base = base_with_version_1(tmp_path)
    with start_server(str(base), rest_api_port=0, file_system_poll_wait_seconds=0) as handle:
        yield handle


def _predict(port, output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "bert"
    request.output_filter.extend(output_filter)
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["abc"]))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30)


def test_a_predict_response_names_the_version_that_answered(served):
    response = _predict(served.port)
    assert response.model_spec.name == "bert" and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_an_output_filter_returns_only_the_outputs_asked_for(served):
    assert set(_predict(served.port).outputs) == {"length", "upper"}
    assert set(_predict(served.port, output_filter=["upper"]).outputs) == {"upper"}


def test_status_of_one_version_lists_only_it_and_an_unknown_one_is_not_found(served):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "bert"
    request.model_spec.version.value = 1
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus
        assert [s.version for s in status(request, timeout=30).model_version_status] == [1]
        request.model_spec.version.value = 7
        with pytest.raises(grpc.RpcError) as raised:
            status(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def _latest_config(base, num_versions):
    config = model_server_config_pb2.ModelConfig(name="bert", base_path=str(base),
                                                 model_platform="tensorflow")
    config.model_version_policy.latest.num_versions = num_versions
    return config


def test_the_latest_policy_serves_its_num_versions_newest_versions(tmp_path):
    for version in (1, 2, 3):
        write_toy_version(str(tmp_path), version, scale=float(version))
    manager = ModelManager([_latest_config(tmp_path, 2)], poll_wait_seconds=0, warm_up=False)
    manager.start()
    try:
        assert sorted(manager.version_states("bert")) == [2, 3]
        assert manager.servable("bert").version == 3
        assert manager.servable("bert", 2).version == 2
    finally:
        manager.stop()


def test_until_a_new_version_loads_the_newest_loaded_one_keeps_serving(tmp_path):
    """TF Serving's AvailabilityPreservingPolicy: of the versions the policy retires while
    none it aspires to is available, the newest stays."""
    for version in (1, 2):
        write_toy_version(str(tmp_path), version, scale=float(version))
    manager = ModelManager([_latest_config(tmp_path, 2)], poll_wait_seconds=0,
                           max_load_retries=0, warm_up=False)
    manager.start()
    try:
        for version in (3, 4):  # newer versions that fail to load
            (tmp_path / str(version)).mkdir()
            (tmp_path / str(version) / "saved_model.pb").write_bytes(b"not a SavedModel")
        manager.poll()
        states = {v: s.state for v, s in manager.version_states("bert").items()}
        assert states == {1: "END", 2: "AVAILABLE", 3: "END", 4: "END"}
        assert manager.servable("bert").version == 2
    finally:
        manager.stop()


def test_a_specific_version_not_yet_on_disk_is_loaded_when_it_arrives(tmp_path):
    write_toy_version(str(tmp_path), 1, scale=1.0)
    config = model_server_config_pb2.ModelConfig(name="bert", base_path=str(tmp_path),
                                                 model_platform="tensorflow")
    config.model_version_policy.specific.versions.extend([1, 2])
    manager = ModelManager([config], poll_wait_seconds=0, max_load_retries=0, warm_up=False)
    manager.start()
    try:
        # Version 2 is not there yet: nothing to load, no failed load to report.
        assert {v: s.state for v, s in manager.version_states("bert").items()} == {
            1: "AVAILABLE"}
        write_toy_version(str(tmp_path), 2, scale=2.0)
        manager.poll()
        assert manager.servable("bert").version == 2
    finally:
        manager.stop()


def _batcher(model_fn, **options):
    return Batcher(model_fn, BatchingOptions(**{"num_batch_threads": 1, **options}))


def _run_concurrently(batcher, requests):
    """Sends (inputs, size, deadline) requests one after the other from threads; their
    answers (or errors) as futures."""
    answers = [futures.Future() for _ in requests]

    def send(request, answer):
        try:
            answer.set_result(batcher.run(*request))
        except Exception as error:  # noqa: BLE001 - checked by the caller
            answer.set_exception(error)

    for request, answer in zip(requests, answers):
        threading.Thread(target=send, args=(request, answer), daemon=True).start()
        time.sleep(0.02)
    return answers


def test_a_request_of_exactly_max_batch_size_rows_is_run():
    batcher = _batcher(lambda inputs: {"total": inputs["x"].sum(axis=1)}, max_batch_size=4)
    try:
        assert batcher.run({"x": np.ones((4, 2))}, 4)["total"].tolist() == [2.0] * 4
    finally:
        batcher.close()


def test_a_batch_is_run_when_one_of_its_requests_is_still_awaited():
    calls = []

    def model_fn(inputs):
        calls.append(len(inputs["x"]))
        return {"total": inputs["x"].sum(axis=1)}

    batcher = _batcher(model_fn, max_batch_size=8, batch_timeout_micros=500_000)
    try:
        now = time.monotonic()
        _, awaited = _run_concurrently(batcher, [
            ({"x": np.ones((1, 3))}, 1, now + 0.05), ({"x": np.full((1, 3), 2.0)}, 1, now + 60)])
        assert awaited.result(timeout=30)["total"].tolist() == [6.0]
        assert calls == [2]
    finally:
        batcher.close()


def test_a_bad_request_merged_with_good_ones_fails_alone():
    def model_fn(inputs):
        if (inputs["x"] < 0).any():
            raise invalid_argument("negative input")
        return {"total": inputs["x"].sum(axis=1)}

    batcher = _batcher(model_fn, max_batch_size=8, batch_timeout_micros=300_000)
    try:
        good, bad = _run_concurrently(batcher, [({"x": np.ones((2, 3))}, 2, None),
                                                ({"x": -np.ones((1, 3))}, 1, None)])
        assert good.result(timeout=30)["total"].tolist() == [3.0, 3.0]
        with pytest.raises(ServingError) as raised:
            bad.result(timeout=30)
        assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        batcher.close()


@pytest.mark.parametrize("rows, padded", [(1, 2), (2, 2), (3, 4), (4, 4), (5, 8)])
def test_a_batch_is_padded_to_the_smallest_allowed_batch_size_it_fits(rows, padded):
    calls = []

    def model_fn(inputs):
        calls.append(len(inputs["x"]))
        return {"total": inputs["x"].sum(axis=1)}

    batcher = _batcher(model_fn, max_batch_size=8, allowed_batch_sizes=(2, 4, 8))
    try:
        x = np.arange(rows * 2, dtype=float).reshape(rows, 2)
        assert batcher.run({"x": x}, rows)["total"].tolist() == x.sum(axis=1).tolist()
        assert calls == [padded]
    finally:
        batcher.close()


@pytest.mark.parametrize("code, status", [
    (grpc.StatusCode.UNAVAILABLE, 503), (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    (grpc.StatusCode.FAILED_PRECONDITION, 400), (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    (grpc.StatusCode.INTERNAL, 500)])
def test_rest_answers_each_grpc_code_with_tf_servings_http_status(served, monkeypatch, code,
                                                                  status):
    servable = served.manager.servable("bert")

    def failing(*args, **kwargs):
        raise ServingError(code, "injected")

    monkeypatch.setattr(servable, "predict", failing)
    answer = _http(f"http://127.0.0.1:{served.rest_api_port}/v1/models/bert:predict",
                   {"instances": ["abc"]})
    assert answer == (status, {"error": "injected"})


def test_rest_writes_outputs_named_bytes_as_base64_and_other_strings_as_text():
    values = np.array([b"\xff\x00", "é".encode()], dtype=object)
    assert json_value(values, "token_bytes") == [{"b64": "/wA="}, {"b64": "w6k="}]
    assert json_value(values, "token") == ["\ufffd\x00", "é"]


def test_a_timeout_given_to_one_call_overrides_the_clients(served, monkeypatch):
    # A client whose own deadline no call can meet still answers a call given time.
    hasty = Client(f"127.0.0.1:{served.port}", timeout=1e-6)
    assert hasty.predict(["abc"], timeout=60)["length"].tolist() == [3.0]
    # (A 1e-6 s deadline is not always missed on loopback, so which deadline reached
    # gRPC is read from the call itself.)
    client = Client(f"127.0.0.1:{served.port}", timeout=60)
    deadlines, predict = [], client._predict.Predict
    monkeypatch.setattr(client._predict, "Predict", lambda request, **options: (
        deadlines.append(options["timeout"]), predict(request, **options))[1])
    client.predict(["abc"])
    client.predict(["abc"], timeout=5)
    assert deadlines == [60, 5]
