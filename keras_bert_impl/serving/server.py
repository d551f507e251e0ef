"""`start_server`: the TensorFlow-Serving-compatible server, running in this process.

Serves gRPC PredictionService and ModelService (and optionally the REST API)
for the models a `ModelManager` keeps loaded. `model_server.py` is the
command-line entry with `tensorflow_model_server`'s flags.
"""

import http.server
import threading
from concurrent import futures

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from keras_bert_impl.serving.batching_parameters import (
    BatchingOptions,
    read_batching_parameters,
)
from keras_bert_impl.serving.config_file_poller import ConfigFilePoller
from keras_bert_impl.serving.grpc_services import ModelServicer, PredictionServicer
from keras_bert_impl.serving.model_config import read_model_config_file, single_model_config
from keras_bert_impl.serving.model_manager import ModelManager
from keras_bert_impl.serving.rest_api import MAX_CONNECTIONS, make_rest_server, serve_in_thread

_UNLIMITED = -1
_CHANNEL_OPTIONS = [("grpc.max_send_message_length", _UNLIMITED),
                    ("grpc.max_receive_message_length", _UNLIMITED)]


class ServerHandle:
    """A running server: `port` (gRPC), `rest_api_port` (or None), `stop()`."""

    def __init__(self, grpc_server: grpc.Server, port: int,
                 rest_server: http.server.HTTPServer | None, manager: ModelManager,
                 config_file_poller: ConfigFilePoller | None = None):
        self._grpc_server = grpc_server
        self._rest_server = rest_server
        self._config_file_poller = config_file_poller
        self.manager = manager
        self.port = port
        self.rest_api_port = rest_server.server_address[1] if rest_server else None
        self._stop_lock = threading.Lock()
        self._stopping = False
        self._stopped = threading.Event()

    def model_calls(self, model_name: str = "bert") -> int:
        """How often the model's signature functions ran (batching merges requests)."""
        return self.manager.model_calls(model_name)

    def stop(self, grace: float = 5.0) -> None:
        """Refuses new requests, lets running ones (gRPC and REST) finish for up to `grace`
        seconds."""
        with self._stop_lock:
            already_stopping, self._stopping = self._stopping, True
        if already_stopping:
            self._stopped.wait()
            return
        if self._config_file_poller is not None:
            self._config_file_poller.stop()
        grpc_stopped = self._grpc_server.stop(grace)
        if self._rest_server is not None:
            self._rest_server.drain(grace)
        grpc_stopped.wait()
        # The grace period is over: what still runs was cut off, nobody waits for its answer.
        self.manager.stop(close_timeout=0.0)
        if self._config_file_poller is not None:
            self._config_file_poller.join()
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until `stop()` has finished (True), or `timeout` seconds passed (False)."""
        return self._stopped.wait(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def start_server(model_base_path: str | None = None, model_name: str = "bert", port: int = 0,
                 host: str = "127.0.0.1", rest_api_port: int | None = None,
                 model_config_file: str | None = None, enable_batching: bool = False,
                 batching_parameters_file: str | None = None,
                 batching: BatchingOptions | None = None,
                 file_system_poll_wait_seconds: float = 1.0,
                 model_config_file_poll_wait_seconds: float = 0.0,
                 max_workers: int = 32,
                 max_num_load_retries: int = 5,
                 load_retry_interval_micros: int = 60_000_000,
                 enable_model_warmup: bool = True,
                 allow_version_labels_for_unavailable_models: bool = False,
                 rest_api_timeout_in_ms: int = 30_000,
                 rest_api_max_connections: int = MAX_CONNECTIONS,
                 grpc_channel_arguments: list[tuple[str, int | str]] = (),
                 grpc_socket_path: str | None = None) -> ServerHandle:
    """Starts the server in this process; port 0 picks a free port (see `handle.port`).

    The arguments are `tensorflow_model_server`'s flags of the same names, with two
    differences for in-process use: `rest_api_port=None` serves no REST API and 0 picks
    a free port (`handle.rest_api_port`; the command line's `--rest_api_port=0` turns
    REST off, as TF Serving's), and `max_workers` bounds the gRPC threads answering
    requests at once. With `model_config_file`, `model_config_file_poll_wait_seconds`
    > 0 re-reads the file that often and reloads it when it changed (0, the default:
    read once).
    `grpc_channel_arguments` are (key, value) gRPC server options; `grpc_socket_path`
    also serves gRPC on that UNIX socket. `rest_api_max_connections` (not a TF Serving
    flag: its REST server is event-driven, ours has a thread per connection) caps the
    open REST connections; more get 503.

    Example:
        server = start_server("/tmp/export", port=0)
        client = Client(f"127.0.0.1:{server.port}")
        ...
        server.stop()
    """
    if model_config_file:
        configs = read_model_config_file(model_config_file)
    elif model_base_path:
        configs = [single_model_config(model_name, model_base_path)]
    else:
        raise ValueError("give model_base_path (with model_name) or model_config_file")
    if batching_parameters_file and not enable_batching:
        # TF Serving's check: the file alone would silently change nothing.
        raise ValueError("server_options.batching_parameters_file is set without setting "
                         "server_options.enable_batching to true (add --enable_batching)")
    if enable_batching and batching is None:
        batching = (read_batching_parameters(batching_parameters_file)
                    if batching_parameters_file else BatchingOptions())
    elif not enable_batching:
        batching = None
    manager = ModelManager(configs, file_system_poll_wait_seconds, batching,
                           max_load_retries=max_num_load_retries,
                           load_retry_interval_seconds=load_retry_interval_micros / 1e6,
                           warm_up=enable_model_warmup,
                           allow_unavailable_labels=allow_version_labels_for_unavailable_models)
    manager.start()
    # gRPC sets SO_REUSEPORT by default: a second server on a port in use would bind it
    # too and take half of its connections, serving other models.
    try:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                             options=[*_CHANNEL_OPTIONS, ("grpc.so_reuseport", 0),
                                      *grpc_channel_arguments])
    except (TypeError, OverflowError) as error:
        manager.stop()
        raise ValueError(f"gRPC channel arguments {grpc_channel_arguments}: {error}") from None
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(manager), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # newer grpcio raises where older ones returned 0
        bound = 0
    if bound == 0:
        manager.stop()
        raise OSError(f"cannot bind gRPC to {host}:{port}: the address is in use or not "
                      "this machine's")
    if grpc_socket_path:
        try:
            socket_bound = server.add_insecure_port(f"unix:{grpc_socket_path}")
        except RuntimeError:
            socket_bound = 0
        if socket_bound == 0:
            manager.stop()
            raise OSError(f"cannot serve gRPC on the UNIX socket {grpc_socket_path}")
    server.start()
    rest_server = None
    if rest_api_port is not None:
        try:
            rest_server = make_rest_server(manager, host, rest_api_port,
                                           read_timeout=rest_api_timeout_in_ms / 1000,
                                           max_connections=rest_api_max_connections)
        except (OSError, ValueError) as error:
            server.stop(0)
            manager.stop()
            if isinstance(error, OSError):
                raise OSError(f"cannot bind the REST API to {host}:{rest_api_port}: "
                              f"{error.strerror or error}") from None
            raise
        serve_in_thread(rest_server)
    poller = None
    if model_config_file and model_config_file_poll_wait_seconds > 0:
        poller = ConfigFilePoller(manager, model_config_file,
                                  model_config_file_poll_wait_seconds, configs)
        poller.start()
    return ServerHandle(server, bound, rest_server, manager, poller)
