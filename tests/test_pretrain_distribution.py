"""Pretraining under tf.distribute: MirroredStrategy and MultiWorkerMirroredStrategy on CPU."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import tensorflow as tf
from two_workers import run_two_workers, start_two_workers

HERE = pathlib.Path(__file__).resolve().parent


def test_mirrored_over_two_devices_trains_to_the_one_device_weights_xla_asked_or_not(
        shared_data, uncased_vocab):
    result = subprocess.run(
        [sys.executable, str(HERE / "mirrored_pretraining.py"), uncased_vocab,
         str(shared_data / "sample_text.txt")],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["steps"] == 4
    assert {"mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"} <= set(report["metrics"])
    assert report["initial_gap"] == 0.0
    assert report["movement"] > 1e-3  # training moved the weights ...
    assert report["gap"] < 1e-5  # ... to the same place on both strategies
    # A fine-tuning model with 2 steps per execution (Keras' own multi-replica loop fails
    # there, keras-team/keras#19246) trains to the one-device weights too, a partial
    # batch after a full one in the same execution included.
    classifier = report["classifier"]
    assert classifier["steps"] == 4 and classifier["gap"] < 1e-5
    assert classifier["partial_batch_steps"] == 8 and classifier["partial_batch_finite"]
    assert 0.0 <= classifier["accuracy"] <= 1.0
    # A finite dataset ends the multi-step loop with no step past its last batch.
    steps, loss_gap = report["finite_epochs"]
    assert steps == 8 and abs(loss_gap) < 1e-5
    # A replica left without rows by a partial batch adds nothing, not NaN, to the metrics.
    metrics = report["empty_replica"]
    assert all(np.isfinite(value) for value in metrics.values()), metrics
    assert abs(metrics["loss"] - metrics["mlm_loss"] - metrics["nsp_loss"]) < 1e-5


def _trainable_variables(directory):
    directory = directory / "checkpoints"
    reader = tf.train.load_checkpoint(str(directory))
    names = [n for n, _ in tf.train.list_variables(str(directory)) if "_trainable_variables" in n]
    return {n: reader.get_tensor(n) for n in names}


def test_workers_started_with_different_flags_all_stop_naming_them(
        tmp_path, shared_data, uncased_vocab, tiny_config):
    workers = start_two_workers([
        sys.executable, "-m", "keras_bert_impl.cli.pretrain", "--strategy=multi_worker",
        f"--vocab_file={uncased_vocab}", f"--bert_config={tiny_config}",
        f"--input_files={shared_data / 'sample_text.txt'}", f"--model_dir={tmp_path / 'model'}",
        "--seq_length=32", "--max_predictions_per_seq=5", "--num_train_steps=4",
        "--num_warmup_steps=1"], own_flags=(["--train_batch_size=8"], ["--train_batch_size=16"]))
    for worker in workers:
        output = worker.communicate(timeout=300)[0]
        assert worker.returncode == 1, output[-3000:]
        assert "the workers of this run differ in --train_batch_size; start every worker" in output
    assert not (tmp_path / "model" / "checkpoints").exists()


def test_two_workers_on_loopback_train_in_lockstep_to_identical_weights(
        tmp_path, shared_data, uncased_vocab):
    config = tmp_path / "bert_config.json"
    config.write_text(json.dumps({
        "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 64,
        "type_vocab_size": 2, "initializer_range": 0.02}))
    model_dir = tmp_path / "model"
    command = [
        sys.executable, "-m", "keras_bert_impl.cli.pretrain", "--strategy=multi_worker",
        f"--vocab_file={uncased_vocab}", f"--bert_config={config}",
        f"--input_files={shared_data / 'sample_text.txt'}", f"--model_dir={model_dir}",
        "--train_batch_size=8", "--seq_length=32", "--max_predictions_per_seq=5",
        "--num_train_steps=4", "--num_warmup_steps=1", "--save_checkpoints_steps=2",
        "--steps_per_execution=2",
    ]
    run_two_workers(command)

    chief = _trainable_variables(model_dir)
    other = _trainable_variables(model_dir / ".worker_1")
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("ckpt-4")
    assert chief.keys() == other.keys() and chief
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    assert (model_dir / "encoder.keras").exists()  # only the chief writes the final model
    assert not (model_dir / ".worker_1" / "encoder.keras").exists()
    # and the summaries: `tensorboard --logdir=model_dir` shows one run, not one per worker.
    assert list((model_dir / "logs" / "train").glob("events.*"))
    assert not list(model_dir.glob(".worker_1/**/events.*"))
