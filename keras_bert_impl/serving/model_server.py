"""A TensorFlow-Serving-compatible model server for development and tests.

    python -m keras_bert_impl.serving.model_server --port=8500 \\
        --model_name=bert --model_base_path=/models/bert [--rest_api_port=8501]

Same flags and APIs as `tensorflow_model_server` (gRPC PredictionService and
ModelService, REST `/v1/models/...`); production runs the real server on the
same export directory (see `export/`). In Python, use `start_server`.
"""

import signal
import threading

from absl import app, flags, logging

from keras_bert_impl.serving.server import start_server

FLAGS = flags.FLAGS
flags.DEFINE_integer("port", 8500, "Port for the gRPC API.")
flags.DEFINE_integer("rest_api_port", 0, "Port for the REST API; 0 disables it (as TF Serving).")
flags.DEFINE_string("host", "127.0.0.1", "Address to bind; 0.0.0.0 exposes the server.")
flags.DEFINE_string("model_name", "default", "Name of the model (with --model_base_path).")
flags.DEFINE_string("model_base_path", "", "Directory holding numbered version directories.")
flags.DEFINE_string("model_config_file", "", "Text-format ModelServerConfig; overrides the two above.")
flags.DEFINE_boolean("enable_batching", False, "Merge concurrent requests into one model call.")
flags.DEFINE_string("batching_parameters_file", "", "Text-format BatchingParameters.")
flags.DEFINE_float("file_system_poll_wait_seconds", 1, "How often to look for new versions; "
                   "0 loads once.")
flags.DEFINE_float("model_config_file_poll_wait_seconds", 0, "How often to re-read "
                   "--model_config_file and reload it when it changed; 0 reads it once.")
flags.DEFINE_integer("max_num_load_retries", 5, "Retries of a version that failed to load.")
flags.DEFINE_integer("load_retry_interval_micros", 60_000_000, "Wait between load retries.")
flags.DEFINE_boolean("enable_model_warmup", True, "Replay assets.extra/tf_serving_warmup_requests "
                     "before serving a version.")
flags.DEFINE_boolean("allow_version_labels_for_unavailable_models", False,
                     "Let version_labels name versions that are not (yet) available.")
flags.DEFINE_integer("tensorflow_intra_op_parallelism", 0, "Threads within an op; 0 = all cores.")
flags.DEFINE_integer("tensorflow_inter_op_parallelism", 0, "Ops run at once; 0 = all cores.")
flags.DEFINE_integer("rest_api_timeout_in_ms", 30000,
                     "Timeout for REST reads: a connection that sends nothing for this long is "
                     "closed, with 408 if a request body was under way. (TF Serving's flag "
                     "bounds the whole call; here the model call is not cut short.)",
                     lower_bound=1)
# Accepted so that tensorflow_model_server command lines run unchanged; they
# change nothing here (XLA-compiled exports always run, REST has no thread pool).
flags.DEFINE_boolean("xla_cpu_compilation_enabled", False, "Accepted; XLA exports always run here.")
flags.DEFINE_integer("rest_api_num_threads", 0, "Accepted; unused.")


def main(argv):
    del argv
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.tensorflow_intra_op_parallelism)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.tensorflow_inter_op_parallelism)
    try:
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
            rest_api_timeout_in_ms=FLAGS.rest_api_timeout_in_ms)
    except (ValueError, OSError) as error:
        # A configuration mistake (files, flags, ports): the reason, not a traceback.
        logging.error("Cannot start the model server: %s", error)
        return 1

    def on_signal(signum, frame):
        del frame
        logging.info("Received signal %d, shutting down", signum)
        threading.Thread(target=handle.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rest = f", REST on {FLAGS.host}:{handle.rest_api_port}" if handle.rest_api_port else ""
    # One line on stdout tells scripts (and tests) the server is ready.
    print(f"Serving gRPC on {FLAGS.host}:{handle.port}{rest}", flush=True)
    # Python runs signal handlers in the main thread, and a signal the kernel delivers to
    # another thread does not interrupt a blocking wait here: wake up now and then.
    while not handle.wait(0.2):
        pass


def run():
    app.run(main)


if __name__ == "__main__":
    run()
