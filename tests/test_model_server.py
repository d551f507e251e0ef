"""The TensorFlow-Serving-compatible server and the Client, on a small string-input SavedModel.

Everything goes over real gRPC (and HTTP for REST) on loopback. When
`tensorflow_model_server` is on PATH, the same tests also run against it.
"""

import base64
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_impl.serving import Client, ServingError, start_server
from keras_bert_impl.serving.batching import Batcher
from keras_bert_impl.serving.batching_parameters import (
    BatchingOptions,
    parse_batching_parameters,
)

TEXTS = ["Hello world", "北京欢迎你", "café crème", "emoji 😀👍"]
BATCHING = "max_batch_size { value: 16 }\nbatch_timeout_micros { value: 100000 }\n"


class ToyModel(tf.Module):
    """Per-text character count times `scale`, upper-cased text, and an int-input signature."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = tf.Variable(scale)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, text):
        # Strict decoding: non-UTF-8 text fails inside the graph, at request time.
        chars = tf.strings.unicode_decode(text, "UTF-8", errors="strict")
        return {"length": tf.cast(chars.row_lengths(), tf.float32) * self.scale,
                "upper": tf.strings.upper(text)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string),
                                  tf.TensorSpec([None], tf.string)])
    def serve_pair(self, text, text_pair):
        return {"joined": tf.strings.join([text, text_pair], separator="|")}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def tokenized(self, input_word_ids):
        return {"total": tf.reduce_sum(input_word_ids, axis=1)}


def write_toy_version(base_path: str, version: int, scale: float) -> None:
    """Saves a version directory atomically (a server polling the base path never sees half)."""
    model = ToyModel(scale)
    staging = tempfile.mkdtemp(dir=base_path, prefix=".staging-")
    tf.saved_model.save(model, staging, signatures={
        "serving_default": model.serve, "pairs": model.serve_pair,
        "serving_tokenized": model.tokenized})
    os.rename(staging, os.path.join(base_path, str(version)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_with_version_1(tmp_path):
    """tmp_path/bert holding version 1 of the toy model (scale 1)."""
    base = tmp_path / "bert"
    base.mkdir()
    write_toy_version(str(base), 1, scale=1.0)
    return base


def wait_for(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class RunningServer:
    """A server under test: the Python one in-process or the real binary in a subprocess."""

    def __init__(self, kind, base_path, tmp):
        self.kind, self.base_path = kind, base_path
        batching_file = os.path.join(tmp, "batching_parameters.txt")
        with open(batching_file, "w") as f:
            f.write(BATCHING)
        if kind == "python":
            self.handle = start_server(base_path, model_name="bert", port=0, rest_api_port=0,
                                       enable_batching=True, batching_parameters_file=batching_file,
                                       file_system_poll_wait_seconds=0.2)
            self.port, self.rest_port = self.handle.port, self.handle.rest_api_port
        else:
            self.port, self.rest_port = free_port(), free_port()
            self.process = subprocess.Popen([
                "tensorflow_model_server", f"--port={self.port}",
                f"--rest_api_port={self.rest_port}", "--model_name=bert",
                f"--model_base_path={base_path}", "--enable_batching",
                f"--batching_parameters_file={batching_file}",
                "--file_system_poll_wait_seconds=1"])
            client = Client(f"127.0.0.1:{self.port}", timeout=2)
            wait_for(lambda: _available(client), what="tensorflow_model_server to load")

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"

    def client(self, **kwargs) -> Client:
        return Client(self.target, model_name=kwargs.pop("model_name", "bert"), **kwargs)

    def stop(self):
        if self.kind == "python":
            self.handle.stop()
        else:
            self.process.terminate()
            self.process.wait(30)


def _available(client):
    try:
        return any(s["state"] == "AVAILABLE" for s in client.status())
    except ServingError:
        return False


@pytest.fixture(scope="module", params=["python", "tensorflow_model_server"])
def server(request, tmp_path_factory):
    if request.param != "python" and shutil.which("tensorflow_model_server") is None:
        pytest.skip("tensorflow_model_server is not on PATH; the Python server covers these tests")
    tmp = str(tmp_path_factory.mktemp(f"server-{request.param}"))
    base_path = os.path.join(tmp, "bert")
    os.makedirs(base_path)
    write_toy_version(base_path, 1, scale=1.0)
    running = RunningServer(request.param, base_path, tmp)
    yield running
    running.stop()


def expected_lengths(texts, scale=1.0):
    return np.array([len(t) * scale for t in texts], np.float32)


def test_predict_answers_multilingual_texts(server):
    outputs = server.client().predict(TEXTS)
    np.testing.assert_array_equal(outputs["length"], expected_lengths(TEXTS))
    assert list(outputs["upper"]) == [t.encode().upper().decode() for t in TEXTS]


def test_predict_with_pairs_and_tokenized_signatures(server):
    joined = server.client(signature_name="pairs").predict(["a", "北"], ["b", "京"])["joined"]
    assert joined.tolist() == ["a|b", "北|京"]  # str, as REST gives them
    ids = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    total = server.client().predict_tensors({"input_word_ids": ids},
                                            signature_name="serving_tokenized")["total"]
    np.testing.assert_array_equal(total, [6, 15])


def test_predict_answers_in_the_typed_value_fields_as_tf_serving_does(server):
    # Clients read `outputs[...].float_val`; TF Serving fills it (kAsProtoField), not
    # tensor_content.
    lengths = _raw_predict(server, {"text": ["ab", "北京欢"]}).outputs["length"]
    assert list(lengths.float_val) == [2.0, 3.0] and not lengths.tensor_content
    total = _raw_predict(server, {"input_word_ids": np.array([[1, 2], [3, 4]], np.int32)},
                         signature="serving_tokenized").outputs["total"]
    assert list(total.int_val) == [3, 7] and not total.tensor_content


def test_requests_without_a_model_spec_or_model_name_are_invalid_arguments(server):
    from tensorflow_serving.apis import (
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )
    text = tf.make_tensor_proto(["a"])
    no_spec = predict_pb2.PredictRequest(inputs={"text": text})
    no_name = predict_pb2.PredictRequest(inputs={"text": text})
    no_name.model_spec.signature_name = "serving_default"
    with grpc.insecure_channel(server.target) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus
        for call, request, words in [
                (predict, no_spec, "Missing ModelSpec"),
                (predict, no_name, "ModelSpec has no name specified."),
                (status, get_model_status_pb2.GetModelStatusRequest(), "Missing ModelSpec")]:
            with pytest.raises(grpc.RpcError) as raised:
                call(request, timeout=30)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert words in raised.value.details()
    np.testing.assert_array_equal(server.client().predict(["abc"])["length"], [3.0])


def test_classify_regress_and_multi_inference_refuse_text_signatures(server):
    """These APIs feed tf.Examples to classification/regression signatures; TF Serving
    answers INVALID_ARGUMENT for a model without them, as every export of ours is."""
    from tensorflow_serving.apis import (
        classification_pb2,
        inference_pb2,
        prediction_service_pb2_grpc,
        regression_pb2,
    )
    classify = classification_pb2.ClassificationRequest()
    regress = regression_pb2.RegressionRequest()
    multi = inference_pb2.MultiInferenceRequest()
    task = multi.tasks.add(method_name="tensorflow/serving/classify")
    for request in (classify, regress, task):
        request.model_spec.name = "bert"
    for request in (classify, regress, multi):
        example = request.input.example_list.examples.add()
        example.features.feature["text"].bytes_list.value.append(b"abc")
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for call, request in [(stub.Classify, classify), (stub.Regress, regress),
                              (stub.MultiInference, multi)]:
            with pytest.raises(grpc.RpcError) as raised:
                call(request, timeout=30)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            if server.kind == "python":
                assert "call Predict" in raised.value.details()
    np.testing.assert_array_equal(server.client().predict(["abc"])["length"], [3.0])


def test_status_ignores_a_version_label_as_tf_serving_does(server):
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "bert"
    with grpc.insecure_channel(server.target) as channel:
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus
        everything = status(request, timeout=30)
        request.model_spec.version_label = "no-such-label"
        assert status(request, timeout=30) == everything


def test_metadata_describes_each_signature(server):
    metadata = server.client().metadata()
    assert metadata["serving_default"]["inputs"] == {"text": {"dtype": "string", "shape": [-1]}}
    assert metadata["serving_default"]["outputs"]["length"] == {"dtype": "float32", "shape": [-1]}
    assert metadata["serving_tokenized"]["inputs"]["input_word_ids"]["shape"] == [-1, -1]


def test_status_reports_the_served_version_available(server):
    statuses = server.client().status()
    assert {"version": 1, "state": "AVAILABLE", "error_message": ""} in statuses


def _raw_predict(server, inputs, model_name="bert", signature="", version=None, label="",
                 output_filter=()):
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    request.output_filter.extend(output_filter)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(request, timeout=30)


BAD_REQUESTS = {
    # case: (inputs, model spec overrides, expected code, words the Python server's message holds)
    "wrong dtype": ({"text": np.array([1, 2], np.int32)}, {}, grpc.StatusCode.INVALID_ARGUMENT,
                    ["'text'", "string", "int32"]),
    "missing input": ({"text": ["a"]}, {"signature": "pairs"}, grpc.StatusCode.INVALID_ARGUMENT,
                      ["Missing but required: {text_pair}"]),
    "unknown input": ({"text": ["a"], "txet": ["b"]}, {}, grpc.StatusCode.INVALID_ARGUMENT,
                      ["Sent extra: {txet}"]),
    "misspelled input": ({"txet": ["a"]}, {}, grpc.StatusCode.INVALID_ARGUMENT,
                         [("input tensor alias not found in signature: txet. Inputs expected "
                           "to be in the set {text}.")]),
    "wrong rank": ({"text": [["a", "b"]]}, {}, grpc.StatusCode.INVALID_ARGUMENT,
                   ["'text'", "[1, 2]", "[None]"]),
    "empty batch": ({"text": np.array([], dtype=object)}, {}, grpc.StatusCode.INVALID_ARGUMENT,
                    ["empty batch", "'text'"]),
    "oversize batch": ({"text": ["x"] * 17}, {}, grpc.StatusCode.INVALID_ARGUMENT,
                       ["17", "maximum input batch size 16"]),
    "different batch sizes": ({"text": ["a", "b"], "text_pair": ["c"]}, {"signature": "pairs"},
                              grpc.StatusCode.INVALID_ARGUMENT, ["different batch sizes"]),
    "non-UTF-8 text": ({"text": [b"ok", b"\xff\xfe bad"]}, {}, grpc.StatusCode.INVALID_ARGUMENT,
                       ["Invalid formatting on input string", "UnicodeDecode"]),
    "unknown model": ({"text": ["a"]}, {"model_name": "bret"}, grpc.StatusCode.NOT_FOUND,
                      ["Servable not found for request: Latest(bret)"]),
    "unknown version": ({"text": ["a"]}, {"version": 99}, grpc.StatusCode.NOT_FOUND,
                        ["Specific(bert, 99)"]),
    # TF Serving answers an unknown label with INVALID_ARGUMENT (server_core.cc).
    "unknown version label": ({"text": ["a"]}, {"label": "canary"},
                              grpc.StatusCode.INVALID_ARGUMENT,
                              ["Unrecognized servable version label: canary"]),
    "duplicate output filter": ({"text": ["a"]}, {"output_filter": ("length", "length")},
                                grpc.StatusCode.INVALID_ARGUMENT,
                                ["duplicate output tensor alias: length"]),
    # TF Serving answers an unknown signature with FAILED_PRECONDITION (predict_util.cc).
    "unknown signature": ({"text": ["a"]}, {"signature": "serving_defualt"},
                          grpc.StatusCode.FAILED_PRECONDITION,
                          ['Serving signature key "serving_defualt" not found.']),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_gets_its_code_and_the_server_keeps_serving(server, case):
    inputs, spec, code, words = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as raised:
        _raw_predict(server, inputs, **spec)
    assert raised.value.code() == code, raised.value.details()
    if server.kind == "python":
        for word in words:
            assert word in raised.value.details()
    np.testing.assert_array_equal(server.client().predict(["abc"])["length"], [3.0])


def test_client_wraps_server_errors_with_the_server_message(server):
    with pytest.raises(ServingError) as raised:
        server.client(model_name="nope").predict(["a"])
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert "'nope'" in str(raised.value) and server.target in str(raised.value)
    with pytest.raises(ValueError, match="2 texts but 1 pairs"):
        server.client(signature_name="pairs").predict(["a", "b"], ["c"])


def test_client_sends_an_empty_list_as_an_empty_string_batch(server):
    with pytest.raises(ServingError) as raised:
        server.client().predict([])
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    if server.kind == "python":
        assert "empty batch" in str(raised.value)


def test_client_reports_an_unreachable_server_and_deadlines():
    client = Client(f"127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(ServingError) as raised:
        client.predict(["a"])
    assert raised.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert "127.0.0.1" in str(raised.value)


def test_a_client_waiting_for_ready_reaches_a_server_that_starts_later(tmp_path):
    write_toy_version(str(tmp_path), 1, scale=1.0)
    port = free_port()
    client = Client(f"127.0.0.1:{port}", timeout=60, wait_for_ready=True)
    with pytest.raises(ServingError, match="wait_for_ready=True waits"):
        Client(f"127.0.0.1:{port}", timeout=5).predict(["a"])
    servers = []
    starter = threading.Timer(1.0, lambda: servers.append(start_server(str(tmp_path), port=port)))
    starter.start()
    try:
        assert client.predict(["abc"])["length"].tolist() == [3.0]
    finally:
        starter.join()
        client.close()
        for server in servers:
            server.stop()


@pytest.mark.parametrize("target, words", [
    ("", "target must be a gRPC address"), ("  ", "target must be a gRPC address"),
    ("127.0.0.1:99999", "port 99999 is not in 1-65535"), ("localhost:0", "port 0 is not"),
])
def test_client_refuses_a_target_it_could_never_reach(target, words):
    with pytest.raises(ValueError, match=words):
        Client(target)


def test_client_takes_a_version_or_a_label_not_both():
    with pytest.raises(ValueError, match="give version .* or version_label .*, not both"):
        Client("localhost:8500", version=1, version_label="stable")


def test_client_names_a_text_that_is_not_valid_unicode():
    with pytest.raises(ValueError, match=r"element 1 \('\\ud800 x'\) is not valid Unicode"):
        Client(f"127.0.0.1:{free_port()}").predict(["fine", "\ud800 x"])


def test_client_deadline_is_enforced(server):
    with pytest.raises(ServingError) as raised:
        server.client(timeout=1e-6).predict(["a"])
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no answer within" in str(raised.value)


def test_eight_concurrent_clients_all_succeed(server):
    failures, barrier = [], threading.Barrier(8)

    def worker(index):
        client = server.client()
        barrier.wait()
        for step in range(20):
            texts = TEXTS[: 1 + (index + step) % len(TEXTS)]
            try:
                got = client.predict(texts)["length"]
                np.testing.assert_array_equal(got, expected_lengths(texts))
            except Exception as error:  # noqa: BLE001 - collected for the assertion
                failures.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_batching_merges_concurrent_requests_into_fewer_model_calls(server):
    if server.kind != "python":
        pytest.skip("model calls are counted inside the Python server")
    before, barrier = server.handle.model_calls("bert"), threading.Barrier(8)
    results = [None] * 8

    def worker(index):
        client = server.client()
        barrier.wait()
        results[index] = client.predict([TEXTS[index % 4]])["length"]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.handle.model_calls("bert") - before < 8
    for index, result in enumerate(results):
        np.testing.assert_array_equal(result, expected_lengths([TEXTS[index % 4]]))


def test_a_queued_request_of_another_shape_does_not_stop_the_batcher():
    """The batcher skips a waiting request it cannot merge and takes one behind it;
    taking it out of the queue once compared the requests' arrays, which raised in
    the batching thread and left every later request of the signature unanswered."""
    release, calls = threading.Event(), []

    def model_fn(inputs):
        calls.append(inputs["x"].shape)
        if len(calls) == 1:
            release.wait(30)  # the other requests queue up meanwhile
        return {"total": inputs["x"].sum(axis=1)}

    batcher = Batcher(model_fn, BatchingOptions(max_batch_size=4, batch_timeout_micros=0,
                                                num_batch_threads=1))
    requests = [np.ones((1, 3)), np.ones((2, 3)), np.ones((2, 5)), np.full((2, 3), 2.0)]
    answers = [concurrent.futures.Future() for _ in requests]

    def send(x, answer):
        try:
            answer.set_result(batcher.run({"x": x}, len(x)))
        except Exception as error:  # noqa: BLE001 - checked by the assertion below
            answer.set_exception(error)

    for queued, (x, answer) in enumerate(zip(requests, answers)):
        # Daemon threads: a request the batcher never answers fails the test, not the run.
        threading.Thread(target=send, args=(x, answer), daemon=True).start()
        while len(calls) < 1 or len(batcher._queue) < queued:  # keep the arrival order
            time.sleep(0.01)
    release.set()
    totals = [answer.result(timeout=10)["total"].tolist() for answer in answers]
    batcher.close()
    assert totals == [[3.0], [3.0, 3.0], [5.0, 5.0], [6.0, 6.0]]
    assert calls == [(1, 3), (4, 3), (2, 5)]  # the fourth request joined the second


def test_a_batch_whose_requests_all_passed_their_deadlines_is_not_run():
    """As TF Serving's batching session: nobody waits for the answer, so the model is not
    run; a request still within its deadline is."""
    calls = []

    def model_fn(inputs):
        calls.append(len(inputs["x"]))
        return {"total": inputs["x"].sum(axis=1)}

    batcher = Batcher(model_fn, BatchingOptions(max_batch_size=8, batch_timeout_micros=300_000,
                                                num_batch_threads=1))
    try:
        with pytest.raises(ServingError) as raised:
            # Waits 0.3 s for others to join; its caller stopped waiting after 0.05 s.
            batcher.run({"x": np.ones((1, 3))}, 1, deadline=time.monotonic() + 0.05)
        assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "timeout exceeded while waiting in batching queue" in raised.value.message
        assert calls == []
        answer = batcher.run({"x": np.ones((1, 3))}, 1, deadline=time.monotonic() + 60)
        assert answer["total"].tolist() == [3.0] and calls == [1]
    finally:
        batcher.close()


def test_the_grpc_deadline_and_the_rest_timeout_reach_the_batching_queue(tmp_path):
    write_toy_version(str(tmp_path), 1, scale=1.0)
    batching = BatchingOptions(max_batch_size=8, batch_timeout_micros=500_000)
    with start_server(str(tmp_path), rest_api_port=0, enable_batching=True,
                      batching=batching, rest_api_timeout_in_ms=100) as handle:
        with pytest.raises(ServingError) as raised:
            Client(f"127.0.0.1:{handle.port}", timeout=0.1).predict(["abc"])
        assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        status, body = _http(f"http://127.0.0.1:{handle.rest_api_port}/v1/models/bert:predict",
                             {"instances": ["abc"]})
        assert status == 429 and "waiting in batching queue" in body["error"]
        time.sleep(0.6)  # the queued gRPC request's batch has had its turn
        assert handle.model_calls("bert") == 0


def _http(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_rest_gives_the_same_numbers_as_grpc(server):
    grpc_out = server.client().predict(TEXTS)
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/bert"
    status, rows = _http(url + ":predict", {"instances": TEXTS})
    assert status == 200
    assert [r["length"] for r in rows["predictions"]] == grpc_out["length"].tolist()
    assert [r["upper"] for r in rows["predictions"]] == list(grpc_out["upper"])
    status, columns = _http(url + ":predict", {"inputs": {"text": TEXTS}})
    assert columns["outputs"]["length"] == grpc_out["length"].tolist()
    b64 = [{"b64": base64.b64encode(t.encode()).decode()} for t in TEXTS]
    assert _http(url + ":predict", {"inputs": b64})[1]["outputs"]["length"] == \
        grpc_out["length"].tolist()
    status, pairs = _http(url + ":predict", {"signature_name": "pairs",
                                             "instances": [{"text": "a", "text_pair": "b"}]})
    assert pairs["predictions"] == ["a|b"]
    status, body = _http(url)
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = _http(url + "/metadata")
    text = body["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["text"]
    # Fields at their defaults are printed too, as TF Serving's JSON has them.
    assert text["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}


def test_rest_errors_use_http_codes_and_name_the_problem(server):
    url = f"http://127.0.0.1:{server.rest_port}/v1/models"
    status, body = _http(url + "/bert:predict", {"instances": [1, 2]})
    assert status == 400 and "error" in body
    status, body = _http(url + "/bret:predict", {"instances": ["a"]})
    assert status == 404 and "bret" in body["error"]
    status, body = _http(url + "/bert:predict", {"signature_name": "pairs", "instances": ["a"]})
    assert status == 400
    if server.kind == "python":  # TF Serving's wording (json_tensor.cc)
        assert body["error"].startswith("instances is a plain list, but expecting list of "
                                        "objects as multiple input tensors")
    status, body = _http(url + "/bert:predict", {"instances": [{"text": "a", "text_pair": "b"}]})
    assert status == 400 and ("Failed to process element: 0 key: text_pair of 'instances' "
                              "list") in body["error"]
    status, body = _http(url + "/bert:predict", {"signature_name": "pairs",
                                                 "inputs": {"text": ["a"]}})
    assert status == 400 and "Missing named input: text_pair in 'inputs' object." in body["error"]
    status, body = _http(url + "/bert:predict", {"signature_name": "serving_defualt",
                                                 "instances": ["a"]})
    assert status == 400 and 'Serving signature name: "serving_defualt" not found' in body["error"]
    # Columnar keys the signature does not take are ignored, as TF Serving does.
    status, body = _http(url + "/bert:predict", {"inputs": {"text": ["ok"], "extra": [1]}})
    assert status == 200 and body["outputs"]["length"] == [2.0]
    assert _http(url + "/bert:predict", {"instances": ["ok"]})[0] == 200


def test_rest_answers_malformed_requests_with_json_errors_and_keeps_serving(server):
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/bert"
    bad_bodies = [
        {"instances": [{"text": {"b64": 123}}]},
        {"signature_name": ["serving_default"], "instances": ["a"]},
        {"signature_name": "serving_tokenized", "inputs": [[4294967397, 102]]},
        {"signature_name": "serving_tokenized", "inputs": [[True, 102]]},
        {"signature_name": "serving_tokenized", "inputs": [[1.5, 102]]},
    ]
    for body in bad_bodies:
        status, answer = _http(url + ":predict", body)
        assert status == 400 and answer["error"], body
    status, answer = _http(url + ":predict", {"signature_name": "serving_tokenized",
                                              "inputs": [[2147483647, -2147483648]]})
    assert status == 200 and answer["outputs"] == [-1]


def test_rest_empty_lists_are_empty_batches_and_rows_not_wrongly_typed_values(server):
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/bert:predict"
    status, answer = _http(url, {"signature_name": "pairs", "instances": []})
    assert status == 400
    if server.kind == "python":
        assert answer["error"].startswith("empty batch")
    # [[]] is one empty row of ids (JSON cannot say it is int32): the model gets it.
    status, answer = _http(url, {"signature_name": "serving_tokenized", "inputs": [[]]})
    assert status == 200 and answer["outputs"] == [0]


def _keep_alive_exchange(port, requests):
    """Sends `requests` ((method, path, body bytes, headers)) on one HTTP/1.1 connection."""
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    answers = []
    for method, path, body, headers in requests:
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        answers.append((reply.status, json.loads(reply.read())))
    connection.close()
    return answers


def test_rest_keep_alive_connection_stays_in_step_after_an_early_error(server):
    good = json.dumps({"instances": ["abc"]}).encode()
    json_header = {"Content-Type": "application/json"}
    answers = _keep_alive_exchange(server.rest_port, [
        ("POST", "/v1/models/bert/metadata", good, json_header),
        ("POST", "/v1/nowhere", good, json_header),
        ("POST", "/v1/models/bert:predict", good, json_header),
    ])
    assert [status for status, _ in answers][:2] != [200, 200]
    assert answers[2] == (200, {"predictions": [{"length": 3.0, "upper": "ABC"}]})


def test_rest_sends_without_delay_and_queues_bursts_of_connections(tmp_path):
    """TCP_NODELAY on every connection (Nagle's algorithm with the client's delayed ACK held
    each keep-alive answer ~40 ms), and a listen queue for bursts, not socketserver's 5."""
    write_toy_version(str(tmp_path), 1, scale=1.0)
    with start_server(str(tmp_path), rest_api_port=0) as handle:
        rest = handle._rest_server
        assert rest.request_queue_size >= 128
        with socket.create_connection(("127.0.0.1", handle.rest_api_port), timeout=30) as conn:
            conn.sendall(b"GET /v1/models/bert HTTP/1.1\r\nHost: x\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 200")
            (handler,) = rest._open  # the keep-alive connection, idle now
            assert handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_rest_rejects_a_bad_content_length_and_the_server_keeps_serving(server):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as connection:
        connection.sendall(b"POST /v1/models/bert:predict HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: abc\r\n\r\n{}")
        reply = connection.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n")[0]
    assert _http(f"http://127.0.0.1:{server.rest_port}/v1/models/bert:predict",
                 {"instances": ["ok"]})[0] == 200


def test_a_new_version_directory_is_picked_up_while_serving(server):
    client = server.client()
    write_toy_version(server.base_path, 2, scale=10.0)
    wait_for(lambda: any(s["version"] == 2 and s["state"] == "AVAILABLE"
                         for s in client.status()), what="version 2")
    wait_for(lambda: client.predict(["abc"])["length"][0] == 30.0, what="version 2 answers")
    assert Client(server.target, version=2).predict(["ab"])["length"].tolist() == [20.0]


def test_base_paths_and_config_files_are_read_through_tensorflow_file_systems(tmp_path):
    """As TF Serving (gs://, ...); here a file:// URL, which only TensorFlow's file
    systems read (os.listdir and open() do not)."""
    (tmp_path / "bert").mkdir()
    write_toy_version(str(tmp_path / "bert"), 1, scale=1.0)
    url = f"file://{tmp_path}"
    (tmp_path / "models.config").write_text(
        f'model_config_list {{ config {{ name: "bert" base_path: "{url}/bert" '
        'model_platform: "tensorflow" } }')
    (tmp_path / "batching.txt").write_text(BATCHING)
    with start_server(model_config_file=f"{url}/models.config", enable_batching=True,
                      batching_parameters_file=f"{url}/batching.txt",
                      file_system_poll_wait_seconds=0.2) as handle:
        client = Client(f"127.0.0.1:{handle.port}")
        assert client.predict(["abc"])["length"].tolist() == [3.0]
        write_toy_version(str(tmp_path / "bert"), 2, scale=10.0)
        wait_for(lambda: client.predict(["abc"])["length"][0] == 30.0, what="version 2")
    with pytest.raises(OSError, match=f"{url}/missing.config: file not found"):
        start_server(model_config_file=f"{url}/missing.config")
    (tmp_path / "latin1.config").write_bytes(b'model_config_list { config { name: "caf\xe9" } }')
    with pytest.raises(ValueError, match="latin1.config:1: not valid UTF-8"):
        start_server(model_config_file=str(tmp_path / "latin1.config"))
    # Refused by TF Serving's parser too: a config that would not load in production.
    for name, flag in (("models.config", "model_config_file"),
                       ("batching.txt", "batching_parameters_file")):
        (tmp_path / f"bom_{name}").write_bytes(b"\xef\xbb\xbf" + (tmp_path / name).read_bytes())
        options = {flag: f"{url}/bom_{name}"} | (
            {"enable_batching": True, "model_config_file": f"{url}/models.config"}
            if flag == "batching_parameters_file" else {})
        with pytest.raises(ValueError, match=f"bom_{name}: starts with a UTF-8 byte-order mark, "
                                             "which TensorFlow Serving's text-proto parser"):
            start_server(**options)


def test_a_second_server_on_ports_in_use_is_refused_and_the_first_keeps_its_clients(tmp_path):
    base = base_with_version_1(tmp_path)
    with start_server(str(base), file_system_poll_wait_seconds=0, rest_api_port=0) as first:
        # gRPC's default SO_REUSEPORT would let it bind and take some of the connections.
        with pytest.raises(OSError, match=f"cannot bind gRPC to 127.0.0.1:{first.port}"):
            start_server(str(base), model_name="other", port=first.port,
                         file_system_poll_wait_seconds=0)
        with pytest.raises(OSError, match="cannot bind the REST API to 127.0.0.1:"
                                          f"{first.rest_api_port}: Address already in use"):
            start_server(str(base), model_name="other", rest_api_port=first.rest_api_port,
                         file_system_poll_wait_seconds=0)
        answers = [Client(f"127.0.0.1:{first.port}").predict(["abc"])["length"].tolist()
                   for _ in range(20)]
        assert answers == [[3.0]] * 20


def test_a_broken_version_is_reported_and_the_previous_one_keeps_serving(tmp_path):
    base = base_with_version_1(tmp_path)
    with start_server(str(base), file_system_poll_wait_seconds=0.2,
                      max_num_load_retries=0) as handle:
        client = Client(f"127.0.0.1:{handle.port}")
        (base / "2").mkdir()
        (base / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")
        wait_for(lambda: any(s["version"] == 2 for s in client.status()), what="version 2 status")
        broken = next(s for s in client.status() if s["version"] == 2)
        assert broken["state"] == "END" and "bert/2" in broken["error_message"]
        assert client.predict(["abcd"])["length"].tolist() == [4.0]


def test_a_version_still_being_copied_is_retried_and_then_served(tmp_path):
    base = base_with_version_1(tmp_path)
    complete = tmp_path / "complete"
    complete.mkdir()
    write_toy_version(str(complete), 2, scale=2.0)
    with start_server(str(base), file_system_poll_wait_seconds=0.2, max_num_load_retries=5,
                      load_retry_interval_micros=500_000) as handle:
        client = Client(f"127.0.0.1:{handle.port}")
        # As `cp -r` leaves it for a moment: the graph is there, the variables not yet.
        (base / "2").mkdir()
        shutil.copy(complete / "2" / "saved_model.pb", base / "2" / "saved_model.pb")
        wait_for(lambda: any(s["version"] == 2 and s["error_message"] for s in client.status()),
                 what="the failed first load of version 2")
        assert client.predict(["abcd"])["length"].tolist() == [4.0]
        shutil.copytree(complete / "2" / "variables", base / "2" / "variables")
        wait_for(lambda: client.predict(["abcd"])["length"].tolist() == [8.0],
                 what="version 2 served after a retry")


def test_deleting_the_newest_version_rolls_back_to_the_one_before(tmp_path):
    base = base_with_version_1(tmp_path)
    with start_server(str(base), file_system_poll_wait_seconds=0.2) as handle:
        client = Client(f"127.0.0.1:{handle.port}")
        write_toy_version(str(base), 2, scale=2.0)
        wait_for(lambda: client.predict(["abcd"])["length"].tolist() == [8.0],
                 what="version 2 served")
        shutil.rmtree(base / "2")  # a bad release taken back: version 1 is the latest again
        wait_for(lambda: client.predict(["abcd"])["length"].tolist() == [4.0],
                 what="version 1 served again")
        states = {s["version"]: s["state"] for s in client.status()}
        assert states == {1: "AVAILABLE", 2: "END"}


def test_versions_follow_the_disk_as_tf_servings_availability_preserving_policy(tmp_path):
    """A missing base path (an unmounted volume) changes nothing; a base path without
    versions unloads the model."""
    base = base_with_version_1(tmp_path)
    with start_server(str(base), file_system_poll_wait_seconds=0.05) as handle:
        polls, poll = [], handle.manager.poll
        handle.manager.poll = lambda: (polls.append(1), poll())
        client = Client(f"127.0.0.1:{handle.port}")
        shutil.move(base, tmp_path / "unmounted")
        wait_for(lambda: len(polls) >= 3, what="three polls of the missing base path")
        assert client.predict(["abc"])["length"].tolist() == [3.0]
        shutil.move(tmp_path / "unmounted", base)
        shutil.rmtree(base / "1")  # the base path is there, without versions

        def unloaded():
            try:
                client.predict(["abc"])
            except ServingError as error:
                return error.code == grpc.StatusCode.NOT_FOUND
            return False

        wait_for(unloaded, what="the model without versions unloaded")
        assert [(s["version"], s["state"]) for s in client.status()] == [(1, "END")]


def test_a_retry_due_while_the_base_path_is_missing_waits_another_interval(tmp_path):
    """Else the retry loop (polling off, or a reload awaiting its first loads) spins."""
    from keras_bert_impl.serving.model_config import single_model_config
    from keras_bert_impl.serving.model_manager import ModelManager
    base = tmp_path / "bert"
    base.mkdir()
    (base / "1").mkdir()
    (base / "1" / "saved_model.pb").write_bytes(b"half copied")
    manager = ModelManager([single_model_config("bert", str(base))], poll_wait_seconds=0,
                           max_load_retries=5, load_retry_interval_seconds=0.5, warm_up=False)
    manager.poll()  # the load fails; a retry is due in 0.5 s
    time.sleep(0.6)
    shutil.rmtree(base)
    manager.poll()
    assert manager._next_retry_in() > 0.3
    manager.stop()


def test_a_failing_version_whose_directory_is_deleted_ends(tmp_path):
    base = base_with_version_1(tmp_path)
    with start_server(str(base), file_system_poll_wait_seconds=0.2, max_num_load_retries=5,
                      load_retry_interval_micros=60_000_000) as handle:
        client = Client(f"127.0.0.1:{handle.port}")
        (base / "2").mkdir()
        (base / "2" / "saved_model.pb").write_bytes(b"half copied")
        wait_for(lambda: any(s["version"] == 2 and s["state"] == "LOADING"
                             for s in client.status()), what="version 2 waiting for a retry")
        shutil.rmtree(base / "2")
        wait_for(lambda: {s["version"]: s["state"] for s in client.status()}
                 == {1: "AVAILABLE", 2: "END"}, what="version 2 ended")


def test_a_version_retired_between_lookup_and_model_call_still_answers(tmp_path):
    """As TF Serving's ServableHandle: a request holds the version it looked up."""
    from keras_bert_impl.serving.model_config import single_model_config
    from keras_bert_impl.serving.model_manager import ModelManager
    write_toy_version(str(tmp_path), 1, scale=1.0)
    manager = ModelManager([single_model_config("bert", str(tmp_path))],
                           poll_wait_seconds=0, warm_up=False)
    manager.start()
    try:
        with manager.serving("bert") as servable:
            write_toy_version(str(tmp_path), 2, scale=2.0)
            poll = threading.Thread(target=manager.poll)
            poll.start()
            wait_for(lambda: manager.servable("bert").version == 2, what="version 2 loaded")
            poll.join(0.5)
            assert poll.is_alive()  # version 1's unload waits for this request
            answer = servable.predict("serving_default", {"text": np.array([b"abc"], dtype=object)})
            assert servable.version == 1 and answer["length"].tolist() == [3.0]
        poll.join(30)
        assert not poll.is_alive()
    finally:
        manager.stop()


def test_unloading_a_version_lets_its_running_requests_finish(tmp_path):
    from keras_bert_impl.serving.batching_parameters import BatchingOptions
    from keras_bert_impl.serving.servable import Servable
    write_toy_version(str(tmp_path), 1, scale=1.0)
    servable = Servable("bert", 1, str(tmp_path / "1"), BatchingOptions(max_batch_size=8))
    running, release, answers = threading.Event(), threading.Event(), []
    run = servable._run

    def slow_run(signature_name, inputs):
        running.set()
        release.wait(30)
        return run(signature_name, inputs)

    servable._run = slow_run
    request = threading.Thread(target=lambda: answers.append(
        servable.predict("serving_default", {"text": np.array([b"abc"], dtype=object)})))
    request.start()
    assert running.wait(30)
    closing = threading.Thread(target=servable.close)
    closing.start()
    closing.join(0.5)
    assert closing.is_alive()  # waits for the request in flight
    release.set()
    request.join(30)
    closing.join(30)
    assert not closing.is_alive() and answers[0]["length"].tolist() == [3.0]
    with pytest.raises(ServingError) as raised:
        servable.predict("serving_default", {"text": np.array([b"abc"], dtype=object)})
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE


def test_model_config_file_serves_several_models_with_version_policies(tmp_path):
    for name, versions in (("alpha", (1, 2)), ("beta", (1, 2, 3))):
        (tmp_path / name).mkdir()
        for version in versions:
            write_toy_version(str(tmp_path / name), version, scale=float(version))
    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list {\n'
        f'  config {{ name: "alpha" base_path: "{tmp_path / "alpha"}"\n'
        '    model_platform: "tensorflow" }\n'
        f'  config {{ name: "beta" base_path: "{tmp_path / "beta"}" model_platform: "tensorflow"\n'
        '    model_version_policy { specific { versions: 1 versions: 3 } }\n'
        '    version_labels { key: "stable" value: 1 } }\n'
        '}\n')
    # TF Serving starts with labels only under this flag (it labels before loading).
    allow = {"allow_version_labels_for_unavailable_models": True}
    with start_server(model_config_file=str(config), file_system_poll_wait_seconds=0,
                      **allow) as handle:
        target = f"127.0.0.1:{handle.port}"
        assert [s["version"] for s in Client(target, "alpha").status()] == [2]
        assert [s["version"] for s in Client(target, "beta").status()] == [1, 3]
        assert Client(target, "beta").predict(["ab"])["length"].tolist() == [6.0]
        assert Client(target, "beta", version=1).predict(["ab"])["length"].tolist() == [2.0]
        rest = start_server(model_config_file=str(config), file_system_poll_wait_seconds=0,
                            rest_api_port=0, **allow)
        try:
            url = f"http://127.0.0.1:{rest.rest_api_port}/v1/models/beta/labels"
            status, body = _http(url + "/stable:predict", {"instances": ["ab"]})
            assert status == 200 and body["predictions"][0]["length"] == 2.0
            status, body = _http(url + "/canary:predict", {"instances": ["ab"]})
            assert status == 400 and "canary" in body["error"]
            # Status ignores a label and lists every version, as TF Serving's does.
            status, body = _http(url + "/canary")
            assert status == 200 and [v["version"] for v in body["model_version_status"]] == [
                "1", "3"]
        finally:
            rest.stop()


def test_bad_configuration_files_are_clear_errors(tmp_path):
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { nme: "x" } }')
    with pytest.raises(ValueError, match="models.config.*nme"):
        start_server(model_config_file=str(config))
    with pytest.raises(ValueError, match="max_bach_size"):
        parse_batching_parameters("max_bach_size { value: 8 }")
    with pytest.raises(ValueError, match="allowed_batch_sizes"):
        parse_batching_parameters("max_batch_size { value: 8 } allowed_batch_sizes: 4")
    # Newer TF Serving fields parse; splitting itself is refused with the reason.
    parsed = parse_batching_parameters("max_batch_size { value: 8 } max_execution_batch_size "
                                       "{ value: 4 } enable_large_batch_splitting { value: false }")
    assert parsed.max_batch_size == 8
    with pytest.raises(ValueError, match="enable_large_batch_splitting is not implemented"):
        parse_batching_parameters("enable_large_batch_splitting { value: true }")


@pytest.mark.parametrize("text, error", [
    # Zero threads used to hang the server at startup; a zero queue refused every request.
    ("num_batch_threads { value: 0 }", "num_batch_threads must be positive, got 0"),
    ("max_enqueued_batches { value: 0 }", "max_enqueued_batches must be positive, got 0"),
    ("max_batch_size { value: -2 }", "max_batch_size must be positive, got -2"),
    ("batch_timeout_micros { value: -1 }", "batch_timeout_micros must be non-negative, got -1"),
    ("max_batch_size { value: 4 } allowed_batch_sizes: 0 allowed_batch_sizes: 4",
     r"allowed_batch_sizes \[0, 4\] must be positive"),
])
def test_batching_parameters_tf_serving_refuses_are_errors_naming_the_file(text, error):
    with pytest.raises(ValueError, match=f"batching.txt: {error}"):
        parse_batching_parameters(text, source="batching.txt")


def test_rest_writes_float32_outputs_with_the_digits_tf_serving_writes(tmp_path):
    base = tmp_path / "bert"
    base.mkdir()
    write_toy_version(str(base), 1, scale=0.1)
    with start_server(str(base), rest_api_port=0) as handle:
        url = f"http://127.0.0.1:{handle.rest_api_port}/v1/models/bert:predict"
        texts = ["ab", "abcdefghi", "abcdefghij"]
        request = urllib.request.Request(url, data=json.dumps({"instances": texts}).encode())
        with urllib.request.urlopen(request, timeout=30) as reply:
            body = reply.read().decode()
    # Six significant digits where they read back as the same float32, else nine;
    # never the float64 expansion 0.20000000298023224.
    rows = json.loads(body, parse_float=str)["predictions"]  # the digits as written
    assert [row["length"] for row in rows] == ["0.2", "0.900000036", "1.0"]


def test_rest_float32_digits_follow_tf_servings_rule_at_every_magnitude():
    from keras_bert_impl.serving.rest_json import json_value

    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.standard_normal(20000),
        rng.choice([-1, 1], 20000) * 10.0 ** rng.uniform(-45, 38, 20000),
        [0.0, -0.0, 1e6, 1048576.5, 3.4e38, 1.4e-45, np.inf, -np.inf]]).astype(np.float32)

    def tf_serving(value):  # json_tensor.cc: StrCat ("%g") unless it does not read back
        short = f"{value:g}"
        return float(short if np.float32(short) == value else f"{value:.9g}")

    written = json_value(values.reshape(2, -1), "x")
    assert [repr(v) for row in written for v in row] == [repr(tf_serving(v)) for v in values]


def test_allowed_batch_sizes_pad_and_the_answer_is_unpadded(tmp_path):
    base = base_with_version_1(tmp_path)
    batching = parse_batching_parameters(
        "max_batch_size { value: 8 } batch_timeout_micros { value: 0 } allowed_batch_sizes: 4 "
        "allowed_batch_sizes: 8")
    with start_server(str(base), enable_batching=True, batching=batching) as handle:
        got = Client(f"127.0.0.1:{handle.port}").predict(TEXTS[:3])["length"]
    np.testing.assert_array_equal(got, expected_lengths(TEXTS[:3]))


def test_command_line_server_serves_and_exits_cleanly_on_sigterm(tmp_path):
    base = base_with_version_1(tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_bert_impl.serving.model_server", f"--port={port}",
         "--model_name=bert", f"--model_base_path={base}",
         # tensorflow_model_server flags a deployment may carry are accepted.
         "--enable_model_warmup=true", "--xla_cpu_compilation_enabled=true",
         "--tensorflow_intra_op_parallelism=2", "--max_num_load_retries=1",
         "--tensorflow_session_parallelism=1", "--grpc_max_threads=4",
         "--grpc_channel_arguments=grpc.max_connection_age_ms=600000,grpc.primary_user_agent=x",
         f"--grpc_socket_path={tmp_path / 'grpc.sock'}", "--rest_api_enable_cors_support",
         "--num_load_threads=2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_line = concurrent.futures.ThreadPoolExecutor(1).submit(process.stdout.readline)
    try:
        # Hang guard only: a server that never starts fails here instead of stalling CI.
        assert "Serving gRPC on 127.0.0.1" in first_line.result(timeout=180)
        for target in (f"127.0.0.1:{port}", f"unix:{tmp_path / 'grpc.sock'}"):
            assert Client(target).predict(["abc"])["length"].tolist() == [3.0]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=180) == 0, process.stderr.read()
        stderr = process.stderr.read()
        # A flag that changes nothing here says so, once, and the server still starts.
        assert "--rest_api_enable_cors_support is accepted" in stderr
        assert "--num_load_threads is accepted" in stderr
    finally:
        if process.poll() is None:
            process.kill()


class Spinner(tf.Module):
    """Writes `marker`, then counts to n[0]: a model call that runs for as long as a test
    needs (~3 s per 10**6)."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)], autograph=False)
    def spin(self, n):
        with tf.control_dependencies([tf.io.write_file(self.marker, "running")]):
            start = tf.constant(0, tf.int64)
        count = tf.while_loop(lambda i: i < n[0], lambda i: i + 1, [start])
        return {"count": tf.fill(tf.shape(n), count[0])}


@pytest.mark.parametrize("signals, exit_code", [(1, 0), (2, 1)])
def test_command_line_server_exits_on_sigterm_while_a_request_still_runs(
        tmp_path, signals, exit_code):
    """After the grace period the server exits, not waiting for calls whose requests were cut
    off (Kubernetes kills it otherwise); a second signal exits at once."""
    marker = tmp_path / "running"
    spinner = Spinner(str(marker))
    tf.saved_model.save(spinner, str(tmp_path / "spin" / "1"),
                        signatures={"serving_default": spinner.spin})
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_bert_impl.serving.model_server", f"--port={port}",
         "--model_name=spin", f"--model_base_path={tmp_path / 'spin'}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_line = concurrent.futures.ThreadPoolExecutor(1).submit(process.stdout.readline)
    try:
        assert "Serving gRPC" in first_line.result(timeout=180)  # hang guard only
        client = Client(f"127.0.0.1:{port}", model_name="spin", timeout=600)
        # Ten minutes of counting, in flight when the signals come.
        running = concurrent.futures.ThreadPoolExecutor(1).submit(
            client.predict_tensors, {"n": np.array([2 * 10**8])})
        wait_for(marker.exists, what="the model call running")
        for _ in range(signals):
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
        assert process.wait(timeout=120) == exit_code, process.stderr.read()
        with pytest.raises(ServingError) as raised:
            running.result(timeout=60)
        assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("flag, error", [
    ("--ssl_config_file=/etc/ssl.config", "--ssl_config_file: TLS is not supported here"),
    ("--use_alts_credentials", "--use_alts_credentials: ALTS is not supported here"),
    ("--platform_config_file=/tmp/p.config", "--platform_config_file: only the TensorFlow"),
    ("--saved_model_tags=serve,gpu", "--saved_model_tags=serve,gpu: exports hold one"),
    ("--grpc_channel_arguments=grpc.max_connection_age_ms", "is not key=value"),
    ("--model_base_path=relative/bert", "Expected model default to have an absolute path"),
    (("--tensorflow_session_parallelism=1 --tensorflow_intra_op_parallelism=1 "
      "--tensorflow_inter_op_parallelism=1"), "You cannot configure all."),
])
def test_command_line_server_refuses_what_it_cannot_honour(tmp_path, flag, error):
    args = [sys.executable, "-m", "keras_bert_impl.serving.model_server",
            f"--port={free_port()}", f"--model_base_path={tmp_path}", *flag.split()]
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          check=False)
    assert done.returncode == 1 and "Cannot start the model server: " in done.stderr
    assert error in done.stderr, done.stderr


def test_grpc_channel_arguments_are_parsed_as_tensorflow_model_server_does():
    from keras_bert_impl.serving.model_server import parse_channel_arguments
    assert parse_channel_arguments(
        " grpc.max_connection_age_ms = 2000 ,grpc.primary_user_agent=x,"
        "grpc.max_receive_message_length=4294967296") == [
        ("grpc.max_connection_age_ms", 2000), ("grpc.primary_user_agent", "x"),
        ("grpc.max_receive_message_length", "4294967296")]  # no C int: passed as a string


def test_a_channel_argument_grpc_cannot_take_is_a_value_error(tmp_path):
    base = base_with_version_1(tmp_path)
    with pytest.raises(ValueError, match="gRPC channel arguments .*too large"):
        start_server(str(base), file_system_poll_wait_seconds=0,
                     grpc_channel_arguments=[("grpc.max_receive_message_length", 1 << 40)])


def test_command_line_server_prints_its_version():
    done = subprocess.run([sys.executable, "-m", "keras_bert_impl.serving.model_server",
                           "--version"], capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("TensorFlow ModelServer: keras_bert_impl ")
    assert f"TensorFlow Library: {tf.__version__}" in done.stdout


@pytest.mark.parametrize("value", [
    np.arange(6, dtype=np.float32).reshape(2, 3), np.array([[1, -2]], np.int32),
    np.array([7], np.int64), np.array([True, False]), ["Hello", "北京", b"raw"],
    np.array(["café", "😀"]), np.array([b"a", b"\xff b"], dtype=object), [1, 2], [0.5],
    np.zeros([0, 4], np.float32), np.float16([1.5]),
    # Big-endian arrays: TensorFlow's converters copy their bytes unswapped.
    np.arange(4, dtype=">f4"), np.array([1, -2], ">i4")])
def test_tensor_protos_are_read_and_written_as_tensorflow_does(value):
    from tensorflow.core.framework import tensor_pb2

    from keras_bert_impl.serving.tensor_protos import (
        fill_response_tensor_proto,
        fill_tensor_proto,
        to_ndarray,
    )
    proto, response = tensor_pb2.TensorProto(), tensor_pb2.TensorProto()
    fill_tensor_proto(proto, value)
    big_endian = isinstance(value, np.ndarray) and value.dtype.byteorder == ">"
    reference = tf.make_tensor_proto(value.astype(value.dtype.newbyteorder("="))
                                     if big_endian else value)
    expected = tf.make_ndarray(reference)
    fill_response_tensor_proto(response, expected)
    assert proto.dtype == response.dtype == reference.dtype
    assert not response.tensor_content  # responses use the typed *_val fields
    for decoded in (to_ndarray(proto), to_ndarray(reference), tf.make_ndarray(proto),
                    to_ndarray(response), tf.make_ndarray(response)):
        assert decoded.dtype == expected.dtype and decoded.shape == expected.shape
        np.testing.assert_array_equal(decoded, expected)


def test_malformed_tensor_protos_are_invalid_arguments(server):
    from tensorflow.core.framework import tensor_pb2, types_pb2
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, tensor_content=b"\x01\x02\x03")
    proto.tensor_shape.dim.add(size=1)
    proto.tensor_shape.dim.add(size=1)
    with pytest.raises(grpc.RpcError) as raised:
        _raw_predict(server, {"input_word_ids": proto}, signature="serving_tokenized")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    if server.kind == "python":
        assert "input_word_ids" in raised.value.details()
    with pytest.raises(TypeError, match="element 1 is a int"):
        from keras_bert_impl.serving.tensor_protos import fill_tensor_proto
        fill_tensor_proto(tensor_pb2.TensorProto(), np.array(["a", 3], dtype=object))
