"""bert-finetune survives SIGKILL: the same command restarted resumes, finishes and evaluates."""

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

# Not a multiple of SAVE_EVERY: the last interval is cut short at STEPS.
STEPS, SAVE_EVERY = 30, 4


def _command(model_dir, train, dev, vocab, config):
    return [
        sys.executable, "-m", "keras_bert_impl.cli.finetune", "--task=classify",
        f"--train_file={train}", f"--eval_file={dev}", f"--vocab_file={vocab}",
        f"--bert_config={config}", f"--model_dir={model_dir}", "--seq_length=32",
        "--batch_size=8", f"--num_train_steps={STEPS}", "--learning_rate=1e-3",
        f"--save_checkpoints_steps={SAVE_EVERY}", "--seed=7",
    ]


@pytest.fixture()
def sst2_files(tmp_path, shared_data):
    rows = (shared_data / "glue/SST-2/train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    random.Random(0).shuffle(rows)
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    # 96 / 8 = 12 batches an epoch: the resumed run crosses into a reshuffled epoch.
    train.write_text("sentence\tlabel\n" + "\n".join(rows[:96]) + "\n", encoding="utf-8")
    dev.write_text("sentence\tlabel\n" + "\n".join(rows[96:160]) + "\n", encoding="utf-8")
    return str(train), str(dev)


def _training_state(model_dir):
    directory = str(model_dir / "checkpoints")
    reader = tf.train.load_checkpoint(directory)
    names = [n for n, _ in tf.train.list_variables(directory)
             if "_trainable_variables" in n or "optimizer" in n]
    return {n: reader.get_tensor(n) for n in names}


def test_killed_finetuning_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_run(
        tmp_path, uncased_vocab, sst2_files, tiny_config):
    killed_dir, reference_dir = tmp_path / "killed", tmp_path / "reference"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    reference = subprocess.Popen(
        _command(reference_dir, *sst2_files, uncased_vocab, tiny_config),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    victim = subprocess.Popen(
        _command(killed_dir, *sst2_files, uncased_vocab, tiny_config),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    # A checkpoint counts once the manager's state file names it.
    while tf.train.latest_checkpoint(str(killed_dir / "checkpoints")) is None:
        assert victim.poll() is None, "the fine-tuning process ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint written within 5 minutes"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (killed_dir / "eval_results.json").exists(), "killed too late to test resuming"
    assert not (killed_dir / "checkpoints" / f"ckpt-{STEPS}.index").exists()

    restarted = subprocess.run(
        _command(killed_dir, *sst2_files, uncased_vocab, tiny_config),
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert restarted.returncode == 0, restarted.stdout[-2000:] + restarted.stderr[-2000:]
    resumed_at = int(restarted.stdout.split(" at step ")[1].split()[0])
    assert SAVE_EVERY <= resumed_at < STEPS  # continued from a checkpoint, not from zero
    reference_output = reference.communicate(timeout=300)[0]
    assert reference.returncode == 0, reference_output[-2000:]

    # Trained to exactly STEPS, then evaluated and saved like a run never killed.
    for model_dir in (killed_dir, reference_dir):
        latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
        assert latest.endswith(f"ckpt-{STEPS}"), latest
    for name in ("eval_results.json", "labels.txt", "model.keras"):
        assert (killed_dir / name).exists(), name
    resumed_results = json.loads((killed_dir / "eval_results.json").read_text())
    reference_results = json.loads((reference_dir / "eval_results.json").read_text())
    assert resumed_results == pytest.approx(reference_results, abs=1 / 64)
    # Same weights, Adam moments and step as never having been killed: the
    # optimizer state and the data position both came back.
    resumed, uninterrupted = _training_state(killed_dir), _training_state(reference_dir)
    assert resumed.keys() == uninterrupted.keys() and resumed
    for name in resumed:
        np.testing.assert_allclose(resumed[name], uninterrupted[name], atol=1e-5, err_msg=name)


def test_a_restart_with_other_data_or_batching_flags_is_refused_naming_them(
        tmp_path, uncased_vocab, sst2_files, tiny_config):
    model_dir = tmp_path / "run"
    command = _command(model_dir, *sst2_files, uncased_vocab, tiny_config)
    command[command.index(f"--num_train_steps={STEPS}")] = f"--num_train_steps={SAVE_EVERY}"
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads((model_dir / "run_flags.json").read_text())["batch_size"] == 8
    changed = [*command, "--batch_size=16", "--seq_length=64"]
    restarted = subprocess.run(changed, capture_output=True, text=True, timeout=300, check=False)
    assert restarted.returncode != 0
    assert "holds a run started with other flags" in restarted.stderr
    assert "--seq_length: 32 then, 64 now; --batch_size: 8 then, 16 now" in restarted.stderr
    assert "Traceback" not in restarted.stderr
    # Another vocabulary of the same size would feed the weights other token ids.
    lines = pathlib.Path(uncased_vocab).read_text(encoding="utf-8").splitlines()
    lines[2000], lines[2001] = lines[2001], lines[2000]
    swapped = tmp_path / "swapped_vocab.txt"
    swapped.write_text("\n".join(lines) + "\n", encoding="utf-8")
    other_vocab = [f"--vocab_file={swapped}" if flag.startswith("--vocab_file=") else flag
                   for flag in command]
    restarted = subprocess.run(other_vocab, capture_output=True, text=True, timeout=300,
                               check=False)
    assert restarted.returncode != 0 and "vocabulary (sha256): " in restarted.stderr
    # What was there is untouched: the checkpoint, the labels and the recorded flags.
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith(f"ckpt-{SAVE_EVERY}")
    assert json.loads((model_dir / "run_flags.json").read_text())["batch_size"] == 8
    # The same run: its training file named relative to another directory, and an epoch
    # count that --num_train_steps overrides.
    train = os.path.relpath(sst2_files[0], tmp_path)
    same = [f"--train_file={train}" if flag.startswith("--train_file=") else flag
            for flag in command] + ["--num_train_epochs=1"]
    resumed = subprocess.run(same, capture_output=True, text=True, timeout=300, check=False,
                             cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Resuming from {model_dir}" in resumed.stdout
