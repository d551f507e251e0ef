"""TensorFlow's start-up chatter off by default, as TF_CPP_MIN_LOG_LEVEL asks."""

import contextlib
import os
import re
import sys
import tempfile

# TensorFlow's C++ log records (absl's and the older TF format), and absl's notice that
# they precede its set-up.
_CPP_LOG_RECORD = re.compile(
    r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called")
# The second line of cpu_feature_guard's two-line record.
_CPP_LOG_CONTINUATION = re.compile(r"To enable the following instructions: ")


def _without_tensorflow_records(text: str) -> str:
    """`text` less TensorFlow's C++ log records: what else was written to stderr."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not (_CPP_LOG_RECORD.match(line) or _CPP_LOG_CONTINUATION.match(line)))


def _temporary_file_or_devnull():
    try:
        return tempfile.TemporaryFile()
    except OSError:  # no writable temporary directory: muted, as nothing can be held
        return open(os.devnull, "w+b")


@contextlib.contextmanager
def _stderr_held_back():
    """Holds the process's stderr (file descriptor 2) back, then writes out all of it if
    the block raised, else all but TensorFlow's C++ log records: so what explains a
    failed import, and other threads' output, is delayed (and may come after lines written
    meanwhile), not lost. A process that dies in the block (abort, signal) shows nothing."""
    with _temporary_file_or_devnull() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", "replace")
            text = text if failed else _without_tensorflow_records(text)
            try:
                sys.stderr.write(text)
                sys.stderr.flush()
            except OSError:  # stderr gone (a closed pipe): what the block did stands
                pass


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and finds its devices without the C++ start-up lines.

    TensorFlow's CUDA builds log from C++ before their logging is set up
    ("Could not find cuda drivers", "failed call to cuInit" on machines
    without a GPU), which TF_CPP_MIN_LOG_LEVEL cannot silence. Unless the
    user asked for those logs (TF_CPP_MIN_LOG_LEVEL=0), the import and the
    device discovery run with the process's stderr held back, and so does
    one int64 transpose (`_run_an_int64_transpose`); then what was held back
    is written out less TensorFlow's C++ records, or all of it if the import
    failed. Listing physical devices leaves logical-device configuration open.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0":
        return
    imported = "tensorflow" in sys.modules
    with _stderr_held_back():
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
