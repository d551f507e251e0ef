"""A TensorFlow-Serving-compatible model server for development and tests.

    python -m keras_bert_impl.serving.model_server --port=8500 \\
        --model_name=bert --model_base_path=/models/bert [--rest_api_port=8501]

Same flags and APIs as `tensorflow_model_server` (gRPC PredictionService and
ModelService, REST `/v1/models/...`); production runs the real server on the
same export directory (see `export/`). In Python, use `start_server`.
"""

import functools
import os
import signal
import sys
import threading
import time

from absl import app, flags, logging

from keras_bert_impl.serving.server import start_server

FLAGS = flags.FLAGS
# After SIGTERM, running requests have this long to finish before they are cut off.
SHUTDOWN_GRACE_SECONDS = 5.0
# tensorflow_model_server's other flags are accepted so that its command lines run
# unchanged; setting one logs that it changes nothing here.
_NO_EFFECT = {
    "xla_cpu_compilation_enabled": (False, "XLA exports always run here"),
    "rest_api_num_threads": (0, "REST runs a thread per connection"),
    "rest_api_enable_cors_support": (False, "no CORS headers are sent"),
    "enable_per_model_batching_parameters": (False, "--batching_parameters_file applies to all"),
    "num_load_threads": (0, "versions load one at a time"),
    "num_unload_threads": (0, "versions unload one at a time"),
    "flush_filesystem_caches": (True, "nothing is cached"),
    "num_request_iterations_for_warmup": (0, "each warmup request runs once"),
    "per_process_gpu_memory_fraction": (0.0, "TensorFlow's GPU allocator defaults apply"),
    "tensorflow_session_config_file": ("", "use the thread-pool flags"),
    "monitoring_config_file": ("", "no monitoring endpoint is served"),
    "remove_unused_fields_from_bundle_metagraph": (True, "the SavedModel loads as saved"),
    "prefer_tflite_model": (False, "TensorFlow Lite models are not served"),
    "num_tflite_pools": (0, "TensorFlow Lite models are not served"),
    "num_tflite_interpreters_per_pool": (1, "TensorFlow Lite models are not served"),
    "enable_signature_method_name_check": (False, "only Predict is served"),
    "enable_profiler": (True, "no profiler service is served"),
    "thread_pool_factory_config_file": ("", "use the thread-pool flags"),
}
_DEFINE = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           str: flags.DEFINE_string}
# Refused rather than ignored: serving without them would not be what was asked for.
_UNSUPPORTED = {
    "ssl_config_file": ("", "TLS is not supported here; run tensorflow/serving for it"),
    "use_alts_credentials": (False, "ALTS is not supported here; run tensorflow/serving for it"),
    "platform_config_file": ("", "only the TensorFlow platform with default settings is served"),
}

def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines the server's flags, at start-up (as the tools do), so that importing this
    module defines none: `--version` is also bert-export's flag."""
    integer, string, boolean, number = (
        functools.partial(define, flag_values=flag_values) for define in (
            flags.DEFINE_integer, flags.DEFINE_string, flags.DEFINE_boolean, flags.DEFINE_float))
    integer("port", 8500, "Port for the gRPC API.")
    integer("rest_api_port", 0, "Port for the REST API; 0 disables it (as TF Serving).")
    string("host", "127.0.0.1", "Address to bind; 0.0.0.0 exposes the server.")
    string("model_name", "default", "Name of the model (with --model_base_path).")
    string("model_base_path", "", "Directory holding numbered version directories.")
    string("model_config_file", "", "Text-format ModelServerConfig; overrides the two above.")
    boolean("enable_batching", False, "Merge concurrent requests into one model call.")
    string("batching_parameters_file", "", "Text-format BatchingParameters.")
    number("file_system_poll_wait_seconds", 1, "How often to look for new versions; "
           "0 loads once.")
    number("model_config_file_poll_wait_seconds", 0, "How often to re-read "
           "--model_config_file and reload it when it changed; 0 reads it once.")
    integer("max_num_load_retries", 5, "Retries of a version that failed to load.")
    integer("load_retry_interval_micros", 60_000_000, "Wait between load retries.")
    boolean("enable_model_warmup", True, "Replay assets.extra/tf_serving_warmup_requests "
            "before serving a version.")
    boolean("allow_version_labels_for_unavailable_models", False,
            "Let version_labels name versions that are not (yet) available.")
    integer("tensorflow_intra_op_parallelism", 0, "Threads within an op; 0 = all cores.")
    integer("tensorflow_inter_op_parallelism", 0, "Ops run at once; 0 = all cores.")
    integer("rest_api_timeout_in_ms", 30000,
            "Timeout for REST reads: a connection that sends nothing for this long is "
            "closed, with 408 if a request body was under way. (TF Serving's flag "
            "bounds the whole call; here the model call is not cut short.)",
            lower_bound=1)
    integer("grpc_max_threads", 32, "Threads answering gRPC calls.", lower_bound=1)
    string("grpc_channel_arguments", "", "Comma-separated gRPC server arguments, e.g. "
           "grpc.max_connection_age_ms=2000 (numbers are passed as integers).")
    string("grpc_socket_path", "", "Also serve gRPC on this UNIX socket.")
    integer("tensorflow_session_parallelism", 0, "Threads for both TensorFlow thread "
            "pools unless the two flags above are given; 0 = auto.")
    string("saved_model_tags", "serve", "Tag set of the MetaGraph to load; only 'serve'.")
    boolean("version", False, "Print the server and TensorFlow versions and exit.")
    for name, (default, why) in _NO_EFFECT.items():
        _DEFINE[type(default)](name, default, f"Accepted; no effect here ({why}).",
                               flag_values=flag_values)
    for name, (default, why) in _UNSUPPORTED.items():
        _DEFINE[type(default)](name, default, f"Refused here: {why}.", flag_values=flag_values)


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """`key=value,...` as tensorflow_model_server parses --grpc_channel_arguments: a value
    that is a 32-bit integer is passed as one, any other as a string."""
    arguments = []
    for item in filter(str.strip, text.split(",")):
        key, equals, value = (part.strip() for part in item.partition("="))
        if not equals or not key:
            raise ValueError(f"--grpc_channel_arguments: {item!r} is not key=value")
        try:
            number = int(value)
        except ValueError:
            number = None
        fits = number is not None and -2**31 <= number < 2**31
        arguments.append((key, number if fits else value))
    return arguments


def _thread_pool_sizes() -> tuple[int, int]:
    """(intra-op, inter-op) threads as TF Serving's server.cc sets them (0 = auto)."""
    intra, inter = FLAGS.tensorflow_intra_op_parallelism, FLAGS.tensorflow_inter_op_parallelism
    both = FLAGS.tensorflow_session_parallelism
    if intra > 0 and inter > 0 and both > 0:
        raise ValueError("Either configure --tensorflow_session_parallelism or "
                         "(--tensorflow_intra_op_parallelism, --tensorflow_inter_op_parallelism) "
                         "separately. You cannot configure all.")
    return (intra, inter) if intra > 0 or inter > 0 else (both, both)


def _check_flags() -> list[tuple[str, int | str]]:
    """The gRPC channel arguments; ValueError for a flag this server cannot honour."""
    for name, (_, why) in _UNSUPPORTED.items():
        if FLAGS[name].value:
            raise ValueError(f"--{name}: {why}")
    if FLAGS.saved_model_tags != "serve":
        raise ValueError(f"--saved_model_tags={FLAGS.saved_model_tags}: exports hold one "
                         "MetaGraph, tagged 'serve'")
    for name, (_, why) in _NO_EFFECT.items():
        if FLAGS[name].present:
            logging.warning("--%s is accepted for tensorflow_model_server command lines but "
                            "changes nothing here: %s", name, why)
    return parse_channel_arguments(FLAGS.grpc_channel_arguments)


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    if FLAGS.version:
        from importlib.metadata import version
        print(f"TensorFlow ModelServer: keras_bert_impl {version('keras_bert_impl')} "
              f"(development server)\nTensorFlow Library: {tf.__version__}")
        return 0
    try:
        channel_arguments = _check_flags()
        intra, inter = _thread_pool_sizes()
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
        handle = start_server(
            model_base_path=FLAGS.model_base_path or None, model_name=FLAGS.model_name,
            port=FLAGS.port, host=FLAGS.host, rest_api_port=FLAGS.rest_api_port or None,
            model_config_file=FLAGS.model_config_file or None,
            enable_batching=FLAGS.enable_batching,
            batching_parameters_file=FLAGS.batching_parameters_file or None,
            file_system_poll_wait_seconds=FLAGS.file_system_poll_wait_seconds,
            model_config_file_poll_wait_seconds=FLAGS.model_config_file_poll_wait_seconds,
            max_num_load_retries=FLAGS.max_num_load_retries,
            load_retry_interval_micros=FLAGS.load_retry_interval_micros,
            enable_model_warmup=FLAGS.enable_model_warmup,
            allow_version_labels_for_unavailable_models=(
                FLAGS.allow_version_labels_for_unavailable_models),
            rest_api_timeout_in_ms=FLAGS.rest_api_timeout_in_ms,
            max_workers=FLAGS.grpc_max_threads, grpc_channel_arguments=channel_arguments,
            grpc_socket_path=FLAGS.grpc_socket_path or None)
    except (ValueError, OSError) as error:
        # A configuration mistake (files, flags, ports): the reason, not a traceback.
        logging.error("Cannot start the model server: %s", error)
        return 1

    signals = []

    def on_signal(signum, frame):
        del frame
        signals.append(time.monotonic())
        if len(signals) > 1:
            logging.warning("Received signal %d again: exiting now, abandoning the requests "
                            "still running", signum)
            _exit_now(1)
        logging.info("Received signal %d, shutting down (a second signal exits at once)",
                     signum)
        threading.Thread(target=handle.stop, args=(SHUTDOWN_GRACE_SECONDS,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rest = f", REST on {FLAGS.host}:{handle.rest_api_port}" if handle.rest_api_port else ""
    # One line on stdout tells scripts (and tests) the server is ready.
    print(f"Serving gRPC on {FLAGS.host}:{handle.port}{rest}", flush=True)
    # Python runs signal handlers in the main thread, and a signal the kernel delivers to
    # another thread does not interrupt a blocking wait here: wake up now and then.
    while not handle.wait(0.2):
        if signals and time.monotonic() - signals[0] > SHUTDOWN_GRACE_SECONDS + 5:
            logging.warning("Still stopping %g s after the signal (batches of requests that "
                            "were cut off are running): exiting", SHUTDOWN_GRACE_SECONDS + 5)
            _exit_now(1)
    # Requests cut off at the grace period may still be running their model calls in
    # gRPC's worker threads, which the interpreter would wait for at exit.
    _exit_now(0)


def _exit_now(code: int) -> None:
    try:
        logging.flush()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:  # a closed pipe must not leave the interpreter waiting for worker threads
        os._exit(code)


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
