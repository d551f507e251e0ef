"""Runs a command-line tool in a fresh Python with two logical CPU devices, so that
`--strategy=mirrored` has two replicas (devices are fixed once TensorFlow starts, so a
test process cannot do this for itself).

    python two_replicas.py keras_bert_impl.cli.finetune --strategy=mirrored ...
"""

import importlib
import os
import subprocess
import sys


def run_on_two_replicas(tool_module: str, *flags: str) -> subprocess.CompletedProcess:
    """The tool's `run()` with these flags; its exit code and output."""
    return subprocess.run([sys.executable, __file__, tool_module, *flags],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


if __name__ == "__main__":
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    tool = importlib.import_module(sys.argv[1])
    sys.argv = [sys.argv[1], *sys.argv[2:]]
    tool.run()
