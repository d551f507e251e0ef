"""TensorFlow's start-up chatter off by default, as TF_CPP_MIN_LOG_LEVEL asks."""

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_muted():
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and finds its devices without the C++ start-up lines.

    TensorFlow's CUDA builds log from C++ before their logging is set up
    ("Could not find cuda drivers", "failed call to cuInit" on machines
    without a GPU), which TF_CPP_MIN_LOG_LEVEL cannot silence. Unless the
    user asked for those logs (TF_CPP_MIN_LOG_LEVEL=0), the import and the
    device discovery run with the process's stderr closed, and so does one
    int64 transpose (`_run_an_int64_transpose`). Python errors still surface:
    they propagate after stderr is back. Listing physical devices leaves
    logical-device configuration open.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0":
        return
    imported = "tensorflow" in sys.modules
    with _stderr_muted():
        import tensorflow as tf

        if not imported:
            tf.config.list_physical_devices()
        _run_an_int64_transpose(tf)


def _run_an_int64_transpose(tf) -> None:
    """oneDNN logs once per process, at ERROR level, that it leaves int64 to Eigen
    ("supports DT_INT64 only on platforms with AVX-512", on AVX-512 CPUs too) the first
    time an int64 transpose runs, which TF-Text's `combine_segments` does in every input
    pipeline. One runs here, in a CPU-only TF1 session of its own graph: an eager op would
    initialise the runtime and fix the devices (no logical CPUs, no GPU memory growth
    after it), and accelerators are left to the strategy that claims them."""
    graph = tf.Graph()
    with graph.as_default():
        transposed = tf.transpose(tf.zeros([1, 1], tf.int64))
    config = tf.compat.v1.ConfigProto(device_count={"GPU": 0, "TPU": 0, "TPU_SYSTEM": 0})
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        session.run(transposed)
