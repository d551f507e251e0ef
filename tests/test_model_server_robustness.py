"""The model server under bad input and bad conditions: it answers clearly and stays up.

File-system errors while polling, SIGTERM with requests in flight, chunked and
malformed REST requests, contradictory model configs and malformed TensorProtos.
"""

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from test_model_server import free_port, wait_for, write_toy_version

from keras_bert_impl.serving import Client, ServingError, start_server

GOOD_BODY = json.dumps({"instances": ["abc"]}).encode()
GOOD_ANSWER = {"predictions": [{"length": 3.0, "upper": "ABC"}]}


@pytest.fixture(scope="module")
def toy_base(tmp_path_factory) -> str:
    """A base path with version 1 of the toy model (length = characters)."""
    base = tmp_path_factory.mktemp("robust") / "bert"
    base.mkdir()
    write_toy_version(str(base), 1, scale=1.0)
    return str(base)


@pytest.fixture(scope="module")
def server(toy_base):
    with start_server(toy_base, model_name="bert", rest_api_port=0,
                      file_system_poll_wait_seconds=0) as handle:
        yield handle


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def _read_reply(reader):
    """One HTTP response from `reader` as (status, lower-cased headers, JSON body), or None
    when the server closed the connection."""
    status_line = reader.readline()
    if not status_line:
        return None
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", 0)))
    return int(status_line.split()[1]), headers, json.loads(body)


def _exchange(port: int, data: bytes, replies: int = 1, check_closed: bool = False):
    """Sends raw bytes on one connection; the replies, and whether the server then closed
    the connection (None unless `check_closed`)."""
    closed = None
    with _connect(port) as connection:
        connection.sendall(data)
        reader = connection.makefile("rb")
        answers = [_read_reply(reader) for _ in range(replies)]
        if check_closed:
            connection.settimeout(1)  # an open connection sends nothing more
            try:
                closed = reader.read(1) == b""
            except TimeoutError:
                closed = False
    return answers, closed


def _post(path: str, headers: str, body: bytes) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode("latin-1") + body


def _good_request() -> bytes:
    return _post("/v1/models/bert:predict", f"Content-Length: {len(GOOD_BODY)}\r\n", GOOD_BODY)


def _assert_serves(server):
    assert Client(f"127.0.0.1:{server.port}").predict(["abcd"])["length"].tolist() == [4.0]
    (answer,), _ = _exchange(server.rest_api_port, _good_request())
    assert answer[0] == 200 and answer[2] == GOOD_ANSWER


def _count_polls(handle) -> list:
    """Counts the poller's calls of `poll()` (including ones that raise)."""
    calls, poll = [], handle.manager.poll

    def counted():
        calls.append(1)
        poll()

    handle.manager.poll = counted
    return calls


def _wait_for_polls(calls: list, count: int = 3) -> None:
    start = len(calls)
    wait_for(lambda: len(calls) >= start + count, timeout=20, what=f"{count} more polls")


def test_a_directory_named_with_non_ascii_digits_is_not_a_version(tmp_path):
    base = tmp_path / "bert"
    base.mkdir()
    write_toy_version(str(base), 1, scale=1.0)
    with start_server(str(base), file_system_poll_wait_seconds=0.05) as handle:
        polls = _count_polls(handle)
        (base / "²").mkdir()  # str.isdigit() is true for it, int() refuses it
        (base / "²" / "saved_model.pb").write_bytes(b"junk")
        _wait_for_polls(polls)
        client = Client(f"127.0.0.1:{handle.port}")
        assert [s["version"] for s in client.status()] == [1]
        write_toy_version(str(base), 2, scale=10.0)
        wait_for(lambda: client.predict(["abc"])["length"].tolist() == [30.0], timeout=20,
                 what="version 2 served")


def test_a_base_path_briefly_replaced_by_a_file_keeps_serving_and_is_polled_again(tmp_path):
    base = tmp_path / "bert"
    base.mkdir()
    write_toy_version(str(base), 1, scale=1.0)
    with start_server(str(base), file_system_poll_wait_seconds=0.05) as handle:
        polls = _count_polls(handle)
        client = Client(f"127.0.0.1:{handle.port}")
        os.rename(base, tmp_path / "moved")
        base.write_text("not a directory")
        _wait_for_polls(polls)
        assert client.predict(["abc"])["length"].tolist() == [3.0]  # loses nothing
        base.unlink()
        os.rename(tmp_path / "moved", base)
        write_toy_version(str(base), 2, scale=10.0)
        wait_for(lambda: client.predict(["abc"])["length"].tolist() == [30.0], timeout=20,
                 what="version 2 served after the base path came back")


def test_a_base_path_without_versions_is_reported_once_then_served_when_one_arrives(
        tmp_path, caplog):
    base = tmp_path / "bert"
    with caplog.at_level("WARNING"), start_server(
            str(base), file_system_poll_wait_seconds=0.05) as handle:
        _wait_for_polls(_count_polls(handle))
        reports = [r for r in caplog.records if "No versions of servable" in r.getMessage()]
        assert len(reports) == 1 and str(base) in reports[0].getMessage()
        base.mkdir()
        write_toy_version(str(base), 1, scale=1.0)
        client = Client(f"127.0.0.1:{handle.port}")

        def answers():
            try:
                return client.predict(["abc"])["length"].tolist() == [3.0]
            except ServingError:
                return False

        wait_for(answers, timeout=20, what="version 1 served")


def test_a_base_path_that_is_a_file_is_a_clear_startup_error(tmp_path):
    path = tmp_path / "bert"
    path.write_text("not a directory")
    with pytest.raises(ValueError, match="bert is not a directory"):
        start_server(str(path))
    process = subprocess.run(
        [sys.executable, "-m", "keras_bert_impl.serving.model_server", f"--port={free_port()}",
         f"--model_base_path={path}"], capture_output=True, text=True, timeout=180, check=False)
    assert process.returncode == 1
    assert "bert is not a directory" in process.stderr and "Traceback" not in process.stderr


def test_sigterm_lets_a_rest_request_in_flight_finish_and_ends_idle_connections(tmp_path):
    base = tmp_path / "bert"
    base.mkdir()
    write_toy_version(str(base), 1, scale=1.0)
    rest_port, log = free_port(), tmp_path / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_bert_impl.serving.model_server", f"--port={free_port()}",
         f"--rest_api_port={rest_port}", "--model_name=bert", f"--model_base_path={base}"],
        # A file, not a pipe: a pipe nobody reads fills up and blocks the server's logging.
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    first_line = concurrent.futures.ThreadPoolExecutor(1).submit(process.stdout.readline)
    try:
        assert "REST on" in first_line.result(timeout=180)  # hang guard only
        idle = _connect(rest_port)
        idle.sendall(_good_request())
        assert _read_reply(idle.makefile("rb"))[0] == 200  # a keep-alive connection, now idle
        texts = ["some words to count"] * 200
        body = json.dumps({"instances": texts}).encode()
        busy = _connect(rest_port)
        busy.sendall(_post("/v1/models/bert:predict", f"Content-Length: {len(body)}\r\n"
                           "Expect: 100-continue\r\n", b""))
        reader = busy.makefile("rb")
        # The server has read the request line and headers: the request is in flight.
        assert reader.readline().split()[1] == b"100" and reader.readline() == b"\r\n"
        process.send_signal(signal.SIGTERM)

        def refuses_connections():
            try:
                _connect(rest_port).close()
                return False
            except ConnectionError:  # refused, or reset in the backlog as the socket closed
                return True

        try:
            wait_for(refuses_connections, timeout=60, what="the server to stop accepting")
        except AssertionError:
            raise AssertionError(log.read_text()[-3000:]) from None
        busy.sendall(body)
        status, headers, answer = _read_reply(reader)
        assert status == 200 and headers.get("connection") == "close"
        assert [row["length"] for row in answer["predictions"]] == [19.0] * 200
        idle.settimeout(30)
        assert idle.recv(1) == b""  # the idle connection was closed, not left hanging
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_chunked_rest_body_is_read_and_the_connection_stays_in_step(server):
    chunked = _post("/v1/models/bert:predict", "Transfer-Encoding: chunked\r\n",
                    b"5;name=value\r\n{\"ins\r\n" + b"%x\r\n" % (len(GOOD_BODY) - 5)
                    + GOOD_BODY[5:] + b"\r\n0\r\nX-Trailer: 1\r\n\r\n")
    answers, closed = _exchange(server.rest_api_port, chunked + _good_request(), replies=2,
                                check_closed=True)
    assert [(status, body) for status, _, body in answers] == [(200, GOOD_ANSWER)] * 2
    assert closed is False


def test_a_chunked_body_from_an_http_client_generator_is_read(server):
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_api_port, timeout=30)
    pieces = [GOOD_BODY[:4], GOOD_BODY[4:9], GOOD_BODY[9:]]
    connection.request("POST", "/v1/models/bert:predict", body=iter(pieces))
    reply = connection.getresponse()
    assert (reply.status, json.loads(reply.read())) == (200, GOOD_ANSWER)
    connection.close()


@pytest.mark.parametrize("headers, body, status, words", [
    ("Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n", 400, "chunk-size line"),
    ("Transfer-Encoding: chunked\r\n", b"2\r\n{}XX0\r\n\r\n", 400, "not followed by CRLF"),
    ("Transfer-Encoding: chunked\r\n", b"ffffffffff\r\n{}", 413, "limit of"),
    ("Transfer-Encoding: gzip\r\n", b"{}", 501, "Transfer-Encoding"),
    ("Transfer-Encoding: chunked\r\nContent-Length: 2\r\n", b"{}", 400, "both"),
    ("Content-Length: \xb2\r\n", b"{}", 400, "ASCII digits"),
    ("Content-Length: -2\r\n", b"{}", 400, "ASCII digits"),
    ("Content-Length: 2\r\nContent-Length: 3\r\n", b"{}", 400, "conflicting"),
    ("Content-Length: 99999999999999999999999\r\n", b"{}", 413, "limit of"),
    ("Content-Length: 1000000000000\r\n", b"{}", 413, "limit of"),
])
def test_a_rest_body_of_unknown_length_is_refused_and_the_connection_closed(
        server, headers, body, status, words):
    # The next request on the connection must not be read out of the leftover bytes.
    request = _post("/v1/models/bert:predict", headers, body) + _good_request()
    (answer,), closed = _exchange(server.rest_api_port, request, check_closed=True)
    assert answer[0] == status and words in answer[2]["error"], answer
    assert answer[1].get("connection") == "close" and closed
    _assert_serves(server)


@pytest.mark.parametrize("stalled", ["body", "chunked body", "headers", "idle connection"])
def test_a_stalled_rest_client_is_timed_out_and_holds_nothing(toy_base, stalled):
    half = GOOD_BODY[:5]
    sent = {
        "body": _post("/v1/models/bert:predict", f"Content-Length: {len(GOOD_BODY)}\r\n", half),
        "chunked body": _post("/v1/models/bert:predict", "Transfer-Encoding: chunked\r\n",
                              b"%x\r\n" % len(GOOD_BODY) + half),
        "headers": b"POST /v1/models/bert:predict HTTP/1.1\r\nHost: x\r\n",
        "idle connection": b"",
    }[stalled]
    with start_server(toy_base, rest_api_port=0, file_system_poll_wait_seconds=0,
                      rest_api_timeout_in_ms=300) as handle:
        with _connect(handle.rest_api_port) as connection:
            connection.sendall(sent)
            reader = connection.makefile("rb")
            answer = _read_reply(reader)  # blocks until the server acts (socket timeout 30 s)
            if stalled.endswith("body"):
                assert answer[0] == 408 and "stalled" in answer[2]["error"], answer
                assert answer[1].get("connection") == "close"
                answer = _read_reply(reader)
            assert answer is None  # closed: no thread waits on it any more
        wait_for(lambda: not handle._rest_server._open, timeout=10, what="connection let go")
        _assert_serves(handle)


def test_a_rest_client_trickling_a_request_is_hung_up_on(toy_base):
    # A byte now and then passes every read's timeout; the request as a whole must still
    # arrive within twice the read timeout of its first byte.
    request = _good_request()
    with start_server(toy_base, rest_api_port=0, file_system_poll_wait_seconds=0,
                      rest_api_timeout_in_ms=300) as handle:
        with _connect(handle.rest_api_port) as connection:
            sent = 0
            with pytest.raises(OSError):  # the server hung up: a send fails
                for sent in range(len(request)):  # how far it got is kept
                    connection.sendall(request[sent:sent + 1])
                    time.sleep(0.1)
                raise AssertionError("the whole request trickled in")
            assert sent < len(request)
        wait_for(lambda: not handle._rest_server._open, timeout=10, what="connection let go")
        _assert_serves(handle)


def test_a_slow_but_steady_rest_upload_is_not_hung_up_on(toy_base):
    # Past twice the read timeout, only a request arriving slower than MIN_UPLOAD_RATE
    # is cut off: a large body on a slow link still gets its answer.
    body = json.dumps({"instances": ["a" * 400_000]}).encode()
    request = _post("/v1/models/bert:predict", f"Content-Length: {len(body)}\r\n", body)
    with start_server(toy_base, rest_api_port=0, file_system_poll_wait_seconds=0,
                      rest_api_timeout_in_ms=300) as handle:
        with _connect(handle.rest_api_port) as connection:
            for start in range(0, len(request), 50_000):  # ~500 kB/s for 0.8 s
                connection.sendall(request[start:start + 50_000])
                time.sleep(0.1)
            answer = _read_reply(connection.makefile("rb"))
        assert answer[0] == 200 and answer[2]["predictions"][0]["length"] == 400_000.0


def test_rest_connections_past_the_limit_get_503_and_the_rest_are_served(toy_base):
    with start_server(toy_base, rest_api_port=0, file_system_poll_wait_seconds=0,
                      rest_api_max_connections=3) as handle:
        idle = [_connect(handle.rest_api_port) for _ in range(3)]
        wait_for(lambda: len(handle._rest_server._open) == 3, timeout=10, what="3 connections")
        for _ in range(5):  # a client sending its request sees the 503, not a reset
            (answer,), closed = _exchange(handle.rest_api_port, _good_request(),
                                          check_closed=True)
            assert answer[0] == 503 and "limit of 3 connections" in answer[2]["error"], answer
            assert answer[1].get("connection") == "close" and closed
        idle.pop().close()
        wait_for(lambda: handle._rest_server._connections == 2, timeout=10, what="one closed")
        (answer,), _ = _exchange(handle.rest_api_port, _good_request())
        assert answer[0] == 200 and answer[2] == GOOD_ANSWER
        for connection in idle:
            connection.close()


def test_a_rest_read_timeout_must_be_positive(toy_base):
    with pytest.raises(ValueError, match="timeout must be > 0"):
        start_server(toy_base, rest_api_port=0, rest_api_timeout_in_ms=0)


@pytest.mark.parametrize("body, words", [
    (b'{"instances": ["\\ud800"]}', "not valid Unicode"),
    (b'{"instances": [{"text": "\\udfff x"}]}', "not valid Unicode"),
    (b'{"instances": [{"\\ud800": "x"}]}', "does not have named input"),  # a 500 before
    (b'{"instances": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested too deeply"),
    (b'{"instances": [' + b"[" * 5000 + b'"a"' + b"]" * 5000 + b"]}", "nested too deeply"),
])
def test_a_malformed_json_body_is_a_bad_request_not_an_internal_error(server, body, words):
    request = _post("/v1/models/bert:predict", f"Content-Length: {len(body)}\r\n", body)
    answers, _ = _exchange(server.rest_api_port, request + _good_request(), replies=2)
    assert answers[0][0] == 400 and words in answers[0][2]["error"], answers[0]
    assert answers[1][0] == 200 and answers[1][2] == GOOD_ANSWER  # the connection kept step


def test_a_type_error_does_not_echo_a_huge_value_back(server):
    body = json.dumps({"instances": ["a", ["b"] * 200000]}).encode()
    request = _post("/v1/models/bert:predict", f"Content-Length: {len(body)}\r\n", body)
    (answer,), _ = _exchange(server.rest_api_port, request)
    assert answer[0] == 400 and "is not a string" in answer[2]["error"]
    assert len(answer[2]["error"]) < 500


def _request(method: str, path: str, body: bytes = b"") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode("latin-1") + body)


@pytest.mark.parametrize("request_bytes, status, words", [
    (_request("PUT", "/v1/models/bert:predict", GOOD_BODY), 400,
     "Malformed request: PUT /v1/models/bert:predict"),
    (_request("DELETE", "/v1/models/bert"), 400, "Malformed request: DELETE /v1/models/bert"),
    (_request("OPTIONS", "/v1/models/bert"), 400, "Malformed request: OPTIONS"),
    (_request("BREW", "/v1/models/bert"), 400, "Malformed request: BREW /v1/models/bert"),
    (_request("GET", "/v1/models/bert:predict"), 400, "Malformed request: GET"),
    (_request("POST", "/v1/models/bert/metadata", GOOD_BODY), 400, "Malformed request: POST"),
    (_request("POST", "/v1/models/bert:classify", GOOD_BODY), 400, "Malformed request: POST"),
    (_request("GET", "/v1/models"), 400, "Missing model name in request."),
    (_request("GET", "/v1/models/bert/versions/99999999999999999999"), 400,
     "Failed to convert version: 99999999999999999999 to numeric."),
    # Past Python's 4,300 digits int() refuses: a 500 before.
    (_request("GET", "/v1/models/bert/versions/" + "9" * 5000), 400,
     "Failed to convert version: 9999"),
    (_request("GET", "/v1/models/bert/versions/" + "0" * 5000 + "7"), 404, "7"),
    (_request("GET", "/healthz"), 404, "no REST endpoint '/healthz'"),
    (b"HELLO\r\n\r\n", 400, "Bad request syntax"),
], ids=["PUT", "DELETE", "OPTIONS", "unknown method", "GET predict", "POST metadata",
        "POST classify", "no model name", "version overflow", "5,000-digit version",
        "5,000 leading zeros",
        "outside the API", "no HTTP"])
def test_requests_outside_the_rest_api_get_a_json_error_as_tf_serving_answers(
        server, request_bytes, status, words):
    (answer,), _ = _exchange(server.rest_api_port, request_bytes)
    assert answer[0] == status, answer
    assert answer[1]["content-type"] == "application/json"
    assert words in answer[2]["error"]
    _assert_serves(server)


def test_rest_paths_are_case_insensitive_and_names_and_labels_percent_decoded(
        tmp_path, toy_base):
    config = _write_config(tmp_path, toy_base,
                           '  config { name: "my model" base_path: "BASE"\n'
                           '    version_labels { key: "stable" value: 1 } }\n')
    with start_server(model_config_file=config, rest_api_port=0,
                      file_system_poll_wait_seconds=0,
                      allow_version_labels_for_unavailable_models=True) as handle:
        port = handle.rest_api_port
        for path in ("/v1/models/my%20model:predict", "/V1/Models/my%20model:PREDICT",
                     "/v1/models/my%20model/labels/st%61ble:predict"):
            (answer,), _ = _exchange(port, _request("POST", path, GOOD_BODY))
            assert answer[0] == 200 and answer[2] == GOOD_ANSWER, (path, answer)
        (status,), _ = _exchange(port, _request("GET", "/v1/models/my%20model"))
        assert status[0] == 200
        assert status[2]["model_version_status"][0]["state"] == "AVAILABLE"
        (metadata,), _ = _exchange(port, _request("GET", "/v1/models/my%20model/metadata"))
        assert metadata[0] == 200 and metadata[2]["model_spec"]["name"] == "my model"


def test_running_out_of_memory_is_resource_exhausted_and_the_server_keeps_serving(
        server, monkeypatch):
    servable = server.manager.servable("bert")

    def out_of_memory(**inputs):
        raise MemoryError("Unable to allocate 16.0 GiB for an array")

    monkeypatch.setitem(servable._functions, "serving_default", out_of_memory)
    with pytest.raises(ServingError) as raised:
        Client(f"127.0.0.1:{server.port}").predict(["abcd"])
    assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "out of memory running a batch of 1 rows" in str(raised.value)
    (answer,), _ = _exchange(server.rest_api_port, _good_request())
    assert answer[0] == 429 and "Unable to allocate 16.0 GiB" in answer[2]["error"]
    monkeypatch.undo()
    _assert_serves(server)


def _write_config(tmp_path, toy_base, models_text: str) -> str:
    """A config file; each model gets `model_platform: "tensorflow"` unless it names one."""
    if "model_platform" not in models_text:
        models_text = models_text.replace(' base_path: "BASE', ' model_platform: "tensorflow" '
                                                               'base_path: "BASE')
    path = tmp_path / "models.config"
    path.write_text("model_config_list {\n" + models_text.replace("BASE", toy_base) + "}\n")
    return str(path)


@pytest.mark.parametrize("models_text, error", [
    ('  config { name: "m" base_path: "BASE" model_platform: "" }\n',
     "Illegal setting neither ModelServerConfig::model_type.*model_platform"),
    ('  config { name: "m" base_path: "BASE" model_platform: "onnx" }\n',
     "model_platform 'onnx'; only 'tensorflow'"),
    ('  config { name: "m" base_path: "relative/m" model_platform: "tensorflow" }\n',
     "Expected model m to have an absolute path or URI; got base_path\\(\\)=relative/m"),
    # Not a URI scheme to TensorFlow's io::ParseURI: a relative path.
    ('  config { name: "m" base_path: "my-fs://m" model_platform: "tensorflow" }\n',
     "got base_path\\(\\)=my-fs://m"),
    (('  config { name: "m" base_path: "BASE" model_platform: "tensorflow" '
      'model_type: TENSORFLOW }\n'), "Illegal setting both ModelServerConfig::model_type"),
])
def test_configs_tf_serving_would_not_start_with_are_refused(tmp_path, toy_base, models_text,
                                                              error):
    with pytest.raises(ValueError, match=error):
        start_server(model_config_file=_write_config(tmp_path, toy_base, models_text),
                     file_system_poll_wait_seconds=0)


def test_the_deprecated_model_type_field_names_the_platform(tmp_path, toy_base):
    config = _write_config(tmp_path, toy_base, '  config { name: "m" base_path: "BASE" '
                                               'model_platform: "" model_type: TENSORFLOW }\n')
    with start_server(model_config_file=config, file_system_poll_wait_seconds=0) as handle:
        assert Client(f"127.0.0.1:{handle.port}", "m").predict(["ab"])["length"].tolist() == [2.0]


def test_a_batching_parameters_file_without_enable_batching_is_refused(tmp_path, toy_base):
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 8 }\n")
    with pytest.raises(ValueError, match="batching_parameters_file is set without setting "
                                         "server_options.enable_batching"):
        start_server(toy_base, batching_parameters_file=str(batching))


def test_a_model_listed_twice_in_the_config_is_refused(tmp_path, toy_base):
    config = _write_config(tmp_path, toy_base,
                           '  config { name: "m" base_path: "BASE" }\n'
                           '  config { name: "n" base_path: "BASE" }\n'
                           '  config { name: "m" base_path: "BASE/other" }\n')
    with pytest.raises(ValueError, match="Illegal to list model m multiple times"):
        start_server(model_config_file=config, file_system_poll_wait_seconds=0)


def test_version_labels_at_start_up_are_refused_unless_allowed_as_tf_serving_does(
        tmp_path, toy_base):
    # TF Serving assigns labels before its first load, so even version 1, which is on
    # disk and would load, is not available to label yet.
    loadable = _write_config(tmp_path, toy_base,
                             '  config { name: "m" base_path: "BASE"\n'
                             '    version_labels { key: "stable" value: 1 } }\n')
    with pytest.raises(ValueError, match="label 'stable' to version 1 of model m, which is "
                                         "not currently available.*allow_version_labels"):
        start_server(model_config_file=loadable, file_system_poll_wait_seconds=0)
    config = _write_config(tmp_path, toy_base,
                           '  config { name: "m" base_path: "BASE"\n'
                           '    version_labels { key: "stable" value: 1 }\n'
                           '    version_labels { key: "canary" value: 7 } }\n')
    with start_server(model_config_file=config, file_system_poll_wait_seconds=0,
                      allow_version_labels_for_unavailable_models=True) as handle:
        assert handle.manager.servable("m", label="stable").version == 1
        with pytest.raises(ServingError, match="Specific\\(m, 7\\)"):
            handle.manager.servable("m", label="canary")
    from absl import flags

    from keras_bert_impl.serving import model_server
    server_flags = flags.FlagValues()
    model_server.define_flags(server_flags)
    assert server_flags["allow_version_labels_for_unavailable_models"].default is False


def _string_proto(shape, values=()) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=values)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def _typed_proto(dtype, shape, **values) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **values)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


@pytest.mark.parametrize("proto, words", [
    (_string_proto([-1], [b"a", b"b", b"c"]), "shape [-1]: dimension 0 has size -1"),
    (_string_proto([1 << 40]), "holds 1099511627776 values, but the proto has none"),
    (_string_proto([2], [b"a", b"b", b"c"]), "holds 2 values, but the proto has 3 in string_val"),
    # A few bytes must not declare a batch that costs gigabytes: filling in is bounded.
    (_string_proto([1 << 20], [b"a"]), "filling in more than 65536 from fewer is refused"),
    (_typed_proto(types_pb2.DT_INT32, [1, 1 << 26], int_val=[1]),
     "filling in more than 65536 from fewer is refused"),
    (_typed_proto(types_pb2.DT_INT32, [1, 4], int_val=[1] * 6),
     "DT_INT32 tensor of shape [1, 4] holds 4 values, but the proto has 6 in int_val"),
    (_typed_proto(types_pb2.DT_RESOURCE, [1]), "dtype DT_RESOURCE cannot be a request tensor"),
], ids=["negative dimension", "huge dimension", "too many strings", "one string filled to 2^20",
        "one int filled to 2^26", "too many ints", "a resource handle"])
def test_a_malformed_tensor_proto_is_an_invalid_argument_that_says_why(
        server, proto, words):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "bert"
    request.inputs["text"].CopyFrom(proto)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel, \
            pytest.raises(grpc.RpcError) as raised:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("tensor parsing error: text: ")
    assert words in raised.value.details()
    _assert_serves(server)


def test_malformed_tensor_proto_shapes_are_refused_when_read():
    from keras_bert_impl.serving.tensor_protos import to_ndarray
    unknown_rank = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"a"])
    unknown_rank.tensor_shape.unknown_rank = True
    with pytest.raises(ValueError, match="unknown_rank"):
        to_ndarray(unknown_rank)
    negative = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[1, 2])
    negative.tensor_shape.dim.add(size=-2)
    with pytest.raises(ValueError, match="dimension 0 has size -2"):
        to_ndarray(negative)
    huge = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32)
    for _ in range(2):
        huge.tensor_shape.dim.add(size=1 << 40)
    with pytest.raises(ValueError, match="elements"):
        to_ndarray(huge)
    assert np.array_equal(to_ndarray(_string_proto([2], [b"a", b"b"])), [b"a", b"b"])
    # As TensorFlow reads protos: a short list is filled in with its last string.
    assert np.array_equal(to_ndarray(_string_proto([3], [b"a", b"b"])), [b"a", b"b", b"b"])
    # A response (read by the client) is read as TensorFlow reads it, at any size.
    filled = to_ndarray(_typed_proto(types_pb2.DT_INT32, [1, 1 << 17], int_val=[-1]))
    assert filled.shape == (1, 1 << 17) and (filled == -1).all()


def test_polling_keeps_going_after_an_unexpected_error(tmp_path, monkeypatch):
    from keras_bert_impl.serving import model_manager
    base = tmp_path / "bert"
    base.mkdir()
    write_toy_version(str(base), 1, scale=1.0)
    listed = model_manager._versions_on_disk
    failures = []

    def flaky(path):
        if len(failures) < 2:
            failures.append(path)
            raise RuntimeError("an unexpected failure")
        return listed(path)

    with start_server(str(base), file_system_poll_wait_seconds=0.05) as handle:
        monkeypatch.setattr(model_manager, "_versions_on_disk", flaky)
        write_toy_version(str(base), 2, scale=10.0)
        client = Client(f"127.0.0.1:{handle.port}")
        wait_for(lambda: client.predict(["abc"])["length"].tolist() == [30.0], timeout=20,
                 what="version 2 served after the failed polls")
    assert len(failures) == 2


@pytest.mark.parametrize("name", ["m" * 1_000_000, "中" * 5000, "é" * 3000],
                         ids=["a megabyte of ASCII", "5,000 CJK", "3,000 accented"])
def test_an_error_quoting_a_long_part_of_the_request_keeps_its_code(server, name):
    # The message quotes the model name; whole, it was over gRPC's limit for a status
    # message (percent-encoded: 9 bytes a CJK character), and the client saw
    # RESOURCE_EXHAUSTED instead of NOT_FOUND.
    with pytest.raises(ServingError) as error:
        Client(f"127.0.0.1:{server.port}", model_name=name).predict(["abc"])
    assert error.value.code == grpc.StatusCode.NOT_FOUND, error.value
    assert "more characters" in error.value.message
    _assert_serves(server)
