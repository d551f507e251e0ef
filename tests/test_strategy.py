"""Choosing the strategy, the TPU and XLA from command-line values."""

import subprocess
import sys

import pytest
import tensorflow as tf

from keras_bert_impl.training import strategy


@pytest.fixture
def no_tpu_variables(monkeypatch):
    for name in ("TPU_NAME", "COLAB_TPU_ADDR", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS"):
        monkeypatch.delenv(name, raising=False)


def test_an_empty_tpu_address_means_the_chips_of_a_tpu_vm(monkeypatch, no_tpu_variables):
    monkeypatch.setattr(strategy.glob, "glob",
                        lambda pattern: ["/dev/accel0"] if pattern == "/dev/accel*" else [])
    assert strategy.tpu_address("") == "local"
    assert strategy.tpu_address("my-tpu") == "my-tpu"


def test_an_empty_tpu_address_is_left_to_the_resolver_where_a_variable_names_the_tpu(
        monkeypatch, no_tpu_variables):
    monkeypatch.setattr(strategy.glob, "glob", lambda pattern: ["/dev/accel0"])
    monkeypatch.setenv("TPU_NAME", "my-tpu")
    assert strategy.tpu_address("") == ""


def test_an_empty_tpu_address_stays_empty_without_tpu_chips(monkeypatch, no_tpu_variables):
    monkeypatch.setattr(strategy.glob, "glob", lambda pattern: [])
    assert strategy.tpu_address("") == ""


def test_colab_tpu_addr_is_a_grpc_address_the_resolver_would_not_read(monkeypatch,
                                                                      no_tpu_variables):
    # TPUClusterResolver reads TPU_NAME and GKE's variable, never COLAB_TPU_ADDR: passing
    # "" on with it set failed with "Please provide a TPU Name to connect to".
    monkeypatch.setenv("COLAB_TPU_ADDR", "10.0.0.2:8470")
    monkeypatch.setattr(strategy.glob, "glob", lambda pattern: [])
    assert strategy.tpu_address("") == "grpc://10.0.0.2:8470"
    monkeypatch.setenv("COLAB_TPU_ADDR", "grpc://10.0.0.2:8470")
    assert strategy.tpu_address("") == "grpc://10.0.0.2:8470"
    monkeypatch.setattr(strategy.glob, "glob",
                        lambda pattern: ["/dev/accel0"] if pattern == "/dev/accel*" else [])
    assert strategy.tpu_address("") == "local"


def test_asking_for_a_tpu_where_there_is_none_says_so(monkeypatch, no_tpu_variables):
    monkeypatch.setattr(strategy.glob, "glob", lambda pattern: [])
    with pytest.raises(ValueError, match="no TPU found: this machine has no TPU chips.*--tpu=NAME"):
        strategy.get_strategy("tpu", tpu="")


def test_the_local_chips_of_a_machine_without_them_are_a_clear_error():
    # A subprocess: connecting to a cluster changes the process's TensorFlow context.
    script = ("from keras_bert_impl.training.strategy import get_strategy; "
              "get_strategy('tpu', 'local')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode != 0
    # Said before connecting, where an address nobody answers at hangs without a word.
    assert result.stderr.startswith("Connecting to the TPU local\n")
    assert "ValueError: --strategy=tpu --tpu=local: no TPU found there" in result.stderr


def test_xla_is_kept_for_one_replica_and_auto_stays_keras_choice():
    one = tf.distribute.get_strategy()
    assert strategy.jit_compile_under(one, True) is True
    assert strategy.jit_compile_under(one, "auto") == "auto"
    assert strategy.jit_compile_under(one, False) is False


def test_input_pipelines_run_in_this_process_without_a_tpu():
    assert not strategy.input_pipelines_are_remote(tf.distribute.get_strategy())


@pytest.mark.parametrize("tf_config, message", [
    ("{bad", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}}', 'TF_CONFIG needs a "task"'),
    ("[1, 2]", "TF_CONFIG must be a JSON object"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "wrker", "index": 0}}',
     "TF_CONFIG's task type 'wrker' is not in its cluster"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 5}}',
     "TF_CONFIG's task index 5 is not one of the 2 'worker' addresses"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": "\u00b2"}}',
     "TF_CONFIG's task index '²' is not one of the 2 'worker' addresses"),
])
def test_a_malformed_tf_config_is_an_error_naming_it_before_any_connection(
        tf_config, message, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        strategy.get_strategy("multi_worker")


@pytest.mark.parametrize("tf_config", ["", "{}", '{"task": {"type": "worker", "index": 0}}'])
def test_a_tf_config_without_cluster_is_one_worker_as_tensorflow_takes_it(tf_config):
    assert strategy._tf_config_tasks(tf_config) == 1
