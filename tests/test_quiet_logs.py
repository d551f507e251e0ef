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


FIT_SCRIPT = """
import sys
import keras_bert_impl as kbi
tok = kbi.BertTokenizer(sys.argv[1])
model = kbi.BertPretrainer(kbi.BertEncoder(kbi.BertConfig.from_preset("bert_tiny",
                                                                      vocab_size=tok.vocab_size)))
model.compile(optimizer=kbi.create_optimizer(1e-4, num_train_steps=2, num_warmup_steps=1))
batches = kbi.pretraining_dataset(sys.argv[2], tok, seq_length=32, max_predictions_per_seq=5,
                                  batch_size=4, seed=1)
model.fit(batches, steps_per_epoch=1, verbose=0)  # Keras' default shuffle=True
"""


def test_pretraining_on_a_tf_data_pipeline_writes_nothing_to_stderr(shared_data, uncased_vocab):
    # Neither oneDNN's one-time int64 notice (TF-Text's combine_segments transposes int64
    # row indices) nor Keras' warning that a dataset cannot be shuffled.
    env = {name: value for name, value in os.environ.items() if not name.startswith("TF_CPP")}
    result = subprocess.run(
        [sys.executable, "-c", FIT_SCRIPT, uncased_vocab, str(shared_data / "sample_text.txt")],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_importing_the_package_leaves_the_devices_open_to_configuration():
    # The import mutes TensorFlow's start-up lines without initialising the runtime, so
    # logical CPUs (or GPU memory growth) can still be set after it.
    script = ("import keras_bert_impl\nimport tensorflow as tf\n"
              "tf.config.set_logical_device_configuration(tf.config.list_physical_devices('CPU')[0],"
              " [tf.config.LogicalDeviceConfiguration()] * 2)\n"
              "print(len(tf.config.list_logical_devices('CPU')))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"



CHATTER_SCRIPT = """
import sys, threading, time
done = threading.Event()
def chatter():
    count = 0
    while not done.is_set():
        print(f"tick {count}", file=sys.stderr, flush=True)
        count += 1
        time.sleep(0.01)
    print(count)
thread = threading.Thread(target=chatter)
thread.start()
import keras_bert_impl
done.set()
thread.join()
"""


def test_what_others_write_to_stderr_during_the_import_is_delayed_not_lost():
    # Another thread of the user's program writes while TensorFlow's start-up lines are
    # held back; only TensorFlow's own C++ records are dropped.
    env = {name: value for name, value in os.environ.items() if not name.startswith("TF_CPP")}
    result = subprocess.run([sys.executable, "-c", CHATTER_SCRIPT], capture_output=True,
                            text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    count = int(result.stdout)
    assert count > 10
    # Lines written while the held ones are written out may come first.
    assert sorted(result.stderr.splitlines()) == sorted(f"tick {i}" for i in range(count))


def test_a_failing_tensorflow_import_shows_what_tensorflow_wrote(tmp_path):
    # What explains a broken installation (written before the import raises) is shown
    # with the traceback, not swallowed with the start-up lines. (A process that aborts
    # in the import, as TensorFlow does on a CPU without AVX, shows nothing unless
    # TF_CPP_MIN_LOG_LEVEL=0.)
    package = tmp_path / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import sys\n"
        "sys.stderr.write('tensorflow: written before the import failed\\n')\n"
        "raise ImportError('cannot load TensorFlow')\n")
    env = {name: value for name, value in os.environ.items() if not name.startswith("TF_CPP")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *sys.path])
    result = subprocess.run([sys.executable, "-c", "import keras_bert_impl"], capture_output=True,
                            text=True, env=env, timeout=300, check=False)
    assert result.returncode != 0
    assert result.stderr.startswith("tensorflow: written before the import failed\n")
    assert "ImportError: cannot load TensorFlow" in result.stderr
