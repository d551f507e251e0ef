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


def main(argv):
    del argv
    handle = start_server(
        model_base_path=FLAGS.model_base_path or None, model_name=FLAGS.model_name,
        port=FLAGS.port, host=FLAGS.host, rest_api_port=FLAGS.rest_api_port or None,
        model_config_file=FLAGS.model_config_file or None,
        enable_batching=FLAGS.enable_batching,
        batching_parameters_file=FLAGS.batching_parameters_file or None,
        file_system_poll_wait_seconds=FLAGS.file_system_poll_wait_seconds)

    def on_signal(signum, frame):
        del frame
        logging.info("Received signal %d, shutting down", signum)
        threading.Thread(target=handle.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rest = f", REST on {FLAGS.host}:{handle.rest_api_port}" if handle.rest_api_port else ""
    # One line on stdout tells scripts (and tests) the server is ready.
    print(f"Serving gRPC on {FLAGS.host}:{handle.port}{rest}", flush=True)
    handle.wait()


def run():
    app.run(main)


if __name__ == "__main__":
    run()
