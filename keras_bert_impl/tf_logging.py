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
    device discovery run with the process's stderr closed. Python errors
    still surface: they propagate after stderr is back. Listing physical
    devices leaves logical-device configuration open.
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0":
        return
    with _stderr_muted():
        import tensorflow as tf

        tf.config.list_physical_devices()
