"""bert-pretrain survives SIGKILL: a restart with the same command resumes and finishes."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

STEPS, SAVE_EVERY = 12, 3


def _command(model_dir, vocab, corpus, config):
    return [
        sys.executable, "-m", "keras_bert_impl.cli.pretrain",
        f"--vocab_file={vocab}", f"--bert_config={config}", f"--input_files={corpus}",
        f"--model_dir={model_dir}", "--train_batch_size=8", "--seq_length=32",
        "--max_predictions_per_seq=5", f"--num_train_steps={STEPS}", "--num_warmup_steps=2",
        f"--save_checkpoints_steps={SAVE_EVERY}", "--seed=7",
    ]


def _training_weights(model_dir):
    directory = str(model_dir / "checkpoints")
    reader = tf.train.load_checkpoint(directory)
    names = [n for n, _ in tf.train.list_variables(directory) if "_trainable_variables" in n]
    return {n: reader.get_tensor(n) for n in names}


def test_killed_run_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_run(
        tmp_path, shared_data, uncased_vocab, tiny_config):
    corpus = str(shared_data / "sample_text.txt")
    killed_dir, reference_dir = tmp_path / "killed", tmp_path / "reference"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reference = subprocess.Popen(_command(reference_dir, uncased_vocab, corpus, tiny_config),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    victim = subprocess.Popen(_command(killed_dir, uncased_vocab, corpus, tiny_config),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    # The `checkpoint` state file is the commit point: a kill between the
    # checkpoint's files and that file leaves nothing to resume from.
    while tf.train.latest_checkpoint(str(killed_dir / "checkpoints")) is None:
        assert victim.poll() is None, "the training process ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint written within 5 minutes"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (killed_dir / "checkpoints" / f"ckpt-{STEPS}.index").exists(), \
        "killed too late to test resuming"

    restarted = subprocess.run(_command(killed_dir, uncased_vocab, corpus, tiny_config),
                               capture_output=True, text=True, env=env, timeout=300,
                               check=False)
    assert restarted.returncode == 0, restarted.stdout[-2000:] + restarted.stderr[-2000:]
    assert " at step " in restarted.stdout, restarted.stdout[-2000:]
    resumed_at = int(restarted.stdout.split(" at step ")[1].split()[0])
    # Re-reading the stream up to there takes a while: the run says so.
    assert f"Re-reading the {resumed_at:,} batches trained on" in restarted.stdout
    assert SAVE_EVERY <= resumed_at < STEPS  # continued from a checkpoint, not from zero
    reference_output = reference.communicate(timeout=300)[0]
    assert reference.returncode == 0, reference_output[-2000:]

    assert tf.train.latest_checkpoint(str(killed_dir / "checkpoints")).endswith(f"ckpt-{STEPS}")
    for name in ("encoder.keras", "bert_model.ckpt.index", "bert_config.json", "vocab.txt"):
        assert (killed_dir / name).exists(), name
    # Same weights and optimizer state as never having been killed: the step,
    # the Adam moments and the data position all came back.
    resumed, uninterrupted = _training_weights(killed_dir), _training_weights(reference_dir)
    assert resumed.keys() == uninterrupted.keys() and resumed
    for name in resumed:
        np.testing.assert_allclose(resumed[name], uninterrupted[name], atol=1e-6, err_msg=name)


def test_sigterm_ends_every_worker_of_a_multi_worker_run_promptly(
        tmp_path, shared_data, uncased_vocab, tiny_config):
    # TensorFlow's preemption notifier would log the signal and train on to the end.
    from two_workers import start_two_workers

    model_dir = tmp_path / "model"
    command = _command(model_dir, uncased_vocab, str(shared_data / "sample_text.txt"),
                       tiny_config)
    command = [flag for flag in command if not flag.startswith("--num_train_steps")]
    workers = start_two_workers([*command, "--strategy=multi_worker", "--num_train_steps=100000"])
    try:
        deadline = time.time() + 300
        while tf.train.latest_checkpoint(str(model_dir / "checkpoints")) is None:
            assert all(w.poll() is None for w in workers), workers[0].communicate()[0][-3000:]
            assert time.time() < deadline, "no checkpoint written within 5 minutes"
            time.sleep(0.2)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.communicate(timeout=60)
        assert workers[0].returncode == -signal.SIGTERM
        assert workers[1].returncode == -signal.SIGTERM
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
