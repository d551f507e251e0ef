"""Using the package prints nothing on stderr unless something is wrong."""

import os
import subprocess
import sys

SCRIPT = """
import keras_bert_impl as kbi
import tensorflow as tf
encoder = kbi.BertEncoder(kbi.BertConfig.from_preset("bert_tiny", vocab_size=100))
ids = tf.ones([1, 8], tf.int32)
encoder({"input_word_ids": ids, "input_mask": ids, "input_type_ids": ids * 0})
"""


def test_importing_and_running_a_model_writes_nothing_to_stderr():
    env = {name: value for name, value in os.environ.items() if not name.startswith("TF_CPP")}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
