"""Changing the served models without a restart: ModelService/HandleReloadConfigRequest and
`--model_config_file_poll_wait_seconds`, as TensorFlow Serving does them.

Real gRPC on loopback against toy SavedModels whose `length` output is the number of
characters times the version's scale, so every answer says which model and version gave it.
When `tensorflow_model_server` is on PATH, the behaviour both servers share runs against
it too.
"""

import concurrent.futures
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2
from test_model_server import RunningServer, free_port, wait_for, write_toy_version

from keras_bert_impl.serving import Client, ServingError, start_server

ModelConfig = model_server_config_pb2.ModelConfig


def model_config(name, base_path, versions=(), labels=None) -> ModelConfig:
    config = ModelConfig(name=name, base_path=str(base_path), model_platform="tensorflow")
    if versions:
        config.model_version_policy.specific.versions.extend(versions)
    for label, version in (labels or {}).items():
        config.version_labels[label] = version
    return config


def config_text(*configs: ModelConfig) -> str:
    server_config = model_server_config_pb2.ModelServerConfig()
    server_config.model_config_list.config.extend(configs)
    return str(server_config)


def reload(target: str, *configs: ModelConfig, timeout: float = 120):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.extend(configs)
    with grpc.insecure_channel(target) as channel:
        return model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
            request, timeout=timeout)


def refused_reload(target: str, request) -> grpc.RpcError:
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as raised:
        model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
            request, timeout=120)
    return raised.value


def length(target: str, model: str, text: str = "abcd", label: str = "") -> float:
    """The served `length` of `text` (from the version `label` names, if given)."""
    client = Client(target, model, version_label=label or None)
    return float(client.predict([text])["length"][0])


def versions_served(target: str, model: str) -> list[int]:
    try:
        return [s["version"] for s in Client(target, model).status() if s["state"] == "AVAILABLE"]
    except ServingError:
        return []


@pytest.fixture
def models(tmp_path):
    """alpha (versions 1 and 2, scale = version) and beta (version 1, scale 10)."""
    for name, scales in (("alpha", {1: 1.0, 2: 2.0}), ("beta", {1: 10.0})):
        (tmp_path / name).mkdir()
        for version, scale in scales.items():
            write_toy_version(str(tmp_path / name), version, scale)
    return tmp_path


class ConfigServer(RunningServer):
    """A server started from a model config file: the Python one or the real binary."""

    def __init__(self, kind: str, config_file, **python_options):
        self.kind = kind
        if kind == "python":
            self.handle = start_server(model_config_file=str(config_file), port=0,
                                       file_system_poll_wait_seconds=0.2, **python_options)
            self.port = self.handle.port
        else:
            self.port = free_port()
            self.process = subprocess.Popen([
                "tensorflow_model_server", f"--port={self.port}",
                f"--model_config_file={config_file}", "--file_system_poll_wait_seconds=1"])
            wait_for(lambda: versions_served(self.target, "alpha"), timeout=120,
                     what="tensorflow_model_server to load alpha")


@pytest.fixture(params=["python", "tensorflow_model_server"])
def server(request, models):
    """A server of `models` whose config file lists alpha only."""
    if request.param != "python" and shutil.which("tensorflow_model_server") is None:
        pytest.skip("tensorflow_model_server is not on PATH; the Python server covers these tests")
    config_file = models / "models.config"
    config_file.write_text(config_text(model_config("alpha", models / "alpha")))
    running = ConfigServer(request.param, config_file)
    yield running
    running.stop()


def test_a_reload_adds_models_and_removes_the_ones_no_longer_listed(server, models):
    assert length(server.target, "alpha") == 8.0
    response = reload(server.target, model_config("alpha", models / "alpha"),
                      model_config("beta", models / "beta"))
    # TF Serving always sets the status, OK included.
    assert response.HasField("status") and response.status.error_code == 0
    # The call returns once the new model serves.
    assert length(server.target, "beta") == 40.0 and length(server.target, "alpha") == 8.0

    reload(server.target, model_config("beta", models / "beta"))
    with pytest.raises(ServingError) as raised:
        length(server.target, "alpha")
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert length(server.target, "beta") == 40.0


def test_a_model_a_reload_removed_reports_its_versions_ended(models):
    config_file = models / "models.config"
    config_file.write_text(config_text(model_config("alpha", models / "alpha")))
    server = ConfigServer("python", config_file)
    try:
        reload(server.target, model_config("beta", models / "beta"))
        assert Client(server.target, "alpha").status() == [
            {"version": 2, "state": "END", "error_message": ""}]
        reload(server.target, model_config("alpha", models / "alpha"),
               model_config("beta", models / "beta"))
        assert versions_served(server.target, "alpha") == [2]
    finally:
        server.stop()


def test_a_reload_applies_a_new_version_policy_and_then_labels_on_loaded_versions(server,
                                                                                   models):
    assert versions_served(server.target, "alpha") == [2]
    reload(server.target, model_config("alpha", models / "alpha", versions=[1, 2]))
    assert versions_served(server.target, "alpha") == [1, 2]
    # Labels may name only versions available before the reload: the label comes second.
    reload(server.target, model_config("alpha", models / "alpha", versions=[1, 2],
                                       labels={"stable": 1, "canary": 2}))
    assert length(server.target, "alpha", label="stable") == 4.0
    assert length(server.target, "alpha", label="canary") == 8.0


def test_a_label_for_a_version_not_available_refuses_the_whole_reload(server, models):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.extend([
        model_config("alpha", models / "alpha", versions=[1], labels={"stable": 1}),
        model_config("beta", models / "beta")])
    error = refused_reload(server.target, request)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "version 1 of model alpha" in error.details()
    assert "not currently available" in error.details()
    # Nothing changed: alpha keeps serving version 2, and beta was not added.
    assert versions_served(server.target, "alpha") == [2]
    assert versions_served(server.target, "beta") == []


def _duplicate(models):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.extend(
        [model_config("alpha", models / "alpha"), model_config("alpha", models / "beta")])
    return request, "Illegal to list model alpha multiple times"


def _not_a_model_config_list(models):
    return model_management_pb2.ReloadConfigRequest(), "Only ModelConfigList"


def _no_base_path(models):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.add(name="alpha")
    return request, "needs both `name` and `base_path`"


def _another_platform(models):
    request = model_management_pb2.ReloadConfigRequest()
    config = request.config.model_config_list.config.add()
    config.CopyFrom(model_config("alpha", models / "alpha"))
    config.model_platform = "pytorch"
    return request, "only 'tensorflow' is served"


def _base_path_is_a_file(models):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.append(
        model_config("gamma", models / "alpha" / "1" / "saved_model.pb"))
    return request, "is not a directory"


@pytest.mark.parametrize("bad_request", [_duplicate, _not_a_model_config_list, _no_base_path,
                                         _another_platform, _base_path_is_a_file])
def test_a_malformed_reload_is_invalid_and_the_server_keeps_its_models(bad_request, models):
    config_file = models / "models.config"
    config_file.write_text(config_text(model_config("alpha", models / "alpha")))
    server = ConfigServer("python", config_file)
    try:
        request, message = bad_request(models)
        error = refused_reload(server.target, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.details()
        assert length(server.target, "alpha") == 8.0
    finally:
        server.stop()


def test_a_new_model_that_fails_to_load_is_named_and_the_rest_of_the_config_applies(models):
    (models / "broken" / "1").mkdir(parents=True)
    (models / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    config_file = models / "models.config"
    config_file.write_text(config_text(model_config("alpha", models / "alpha")))
    server = ConfigServer("python", config_file, max_num_load_retries=1,
                          load_retry_interval_micros=200_000)
    try:
        request = model_management_pb2.ReloadConfigRequest()
        request.config.model_config_list.config.extend([
            model_config("alpha", models / "alpha"), model_config("beta", models / "beta"),
            model_config("broken", models / "broken")])
        error = refused_reload(server.target, request)
        assert error.code() == grpc.StatusCode.UNKNOWN
        assert "1 model(s) did not become available" in error.details()
        assert "broken version 1" in error.details() and "broken/1" in error.details()
        # After its retry ran out; the models that loaded serve.
        (status,) = Client(server.target, "broken").status()
        assert status["state"] == "END" and status["error_message"]
        assert length(server.target, "beta") == 40.0 and length(server.target, "alpha") == 8.0
    finally:
        server.stop()


def test_a_new_base_path_replaces_a_model_without_a_gap_for_its_clients(models):
    config_file = models / "models.config"
    config_file.write_text(config_text(model_config("alpha", models / "alpha")))
    server = ConfigServer("python", config_file)
    errors, answers, done = [], [], threading.Event()

    def keep_asking():
        while not done.is_set():
            sent = time.monotonic()
            try:
                answers.append((sent, length(server.target, "alpha")))
            except ServingError as error:
                errors.append(error)

    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            askers = [pool.submit(keep_asking) for _ in range(2)]
            wait_for(lambda: answers, what="first answers")
            # Same model name and version number, another directory: beta's version 1.
            reload(server.target, model_config("alpha", models / "beta"))
            reloaded = time.monotonic()
            wait_for(lambda: answers[-1][0] > reloaded, what="answers after the reload")
            done.set()
            for asker in askers:
                asker.result()
        assert not errors
        assert {value for sent, value in answers if sent < reloaded} >= {8.0}
        assert {value for sent, value in answers if sent > reloaded} == {40.0}
    finally:
        done.set()
        server.stop()


def test_the_model_config_file_is_polled_and_reloaded_when_it_changes(models):
    config_file = models / "models.config"
    config_file.write_text(config_text(model_config("alpha", models / "alpha")))
    with start_server(model_config_file=str(config_file), file_system_poll_wait_seconds=0,
                      model_config_file_poll_wait_seconds=0.1) as handle:
        target = f"127.0.0.1:{handle.port}"
        config_file.write_text(config_text(model_config("alpha", models / "alpha"),
                                           model_config("beta", models / "beta")))
        wait_for(lambda: versions_served(target, "beta") == [1], what="beta from the file")
        # A broken file is logged and skipped: what was loaded keeps serving.
        config_file.write_text("model_config_list { config { nme: 'x' } }")
        threading.Event().wait(0.5)
        assert length(target, "alpha") == 8.0 and length(target, "beta") == 40.0
        # So is a file whose reload is refused (a label on a version not loaded): nothing
        # changes, and the next change of the file still applies.
        config_file.write_text(config_text(
            model_config("alpha", models / "alpha", versions=[1], labels={"stable": 1})))
        threading.Event().wait(0.5)
        assert versions_served(target, "alpha") == [2] and versions_served(target, "beta") == [1]
        config_file.write_text(config_text(model_config("beta", models / "beta")))
        wait_for(lambda: versions_served(target, "alpha") == [], what="alpha unloaded")
        assert length(target, "beta") == 40.0


def test_the_command_line_server_polls_its_config_file_and_stops_on_sigterm(models):
    config_file = models / "models.config"
    config_file.write_text(config_text(model_config("alpha", models / "alpha")))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_bert_impl.serving.model_server", f"--port={port}",
         f"--model_config_file={config_file}", "--model_config_file_poll_wait_seconds=0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_line = concurrent.futures.ThreadPoolExecutor(1).submit(process.stdout.readline)
    target = f"127.0.0.1:{port}"
    try:
        # Hang guard only: a server that never starts fails here instead of stalling CI.
        assert "Serving gRPC on 127.0.0.1" in first_line.result(timeout=180)
        config_file.write_text(config_text(model_config("beta", models / "beta")))
        wait_for(lambda: versions_served(target, "beta") == [1], what="beta from the file")
        assert length(target, "beta") == 40.0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=180) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
