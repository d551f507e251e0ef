"""bert-pretrain in this process: remote filesystems, and setups refused before training.

TPU runs keep everything on gs://, which only `tf.io.gfile` and TensorFlow
ops can reach. TensorFlow's in-memory `ram://` filesystem stands in for it.
"""

import pytest
import tensorflow as tf
from absl import app, flags
from two_replicas import run_on_two_replicas

from keras_bert_impl.cli import pretrain
from keras_bert_impl.training import strategy


def _copy_to_ram(path, name):
    remote = f"ram://pretrain_remote/{name}"
    tf.io.gfile.copy(str(path), remote, overwrite=True)
    return remote


def _run(argv):
    before = set(flags.FLAGS)
    pretrain.define_flags()
    try:
        flags.FLAGS(["bert-pretrain", *argv])
        pretrain.main([])
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


def test_a_run_on_a_remote_filesystem_trains_and_writes_checkpoints_and_final_model_there(
        shared_data, uncased_vocab):
    vocab = _copy_to_ram(uncased_vocab, "vocab.txt")
    corpus = _copy_to_ram(shared_data / "sample_text.txt", "corpus.txt")
    model_dir = "ram://pretrain_remote/run"
    argv = [f"--vocab_file={vocab}", f"--input_files={corpus}", f"--model_dir={model_dir}",
            "--preset=bert_tiny", "--train_batch_size=4", "--seq_length=32",
            "--max_predictions_per_seq=4", "--num_warmup_steps=1", "--save_checkpoints_steps=2"]
    _run([*argv, "--num_train_steps=2"])
    assert tf.train.latest_checkpoint(f"{model_dir}/checkpoints").endswith("ckpt-2")
    for name in ("encoder.keras", "bert_config.json", "vocab.txt", "bert_model.ckpt.index"):
        assert tf.io.gfile.exists(f"{model_dir}/{name}"), name
    with tf.io.gfile.GFile(f"{model_dir}/vocab.txt") as copied, tf.io.gfile.GFile(vocab) as given:
        assert copied.read() == given.read()
    # A restart must read the data as the run did: other batches would make the saved
    # data position (a batch count) point elsewhere.
    with pytest.raises(app.UsageError, match="--train_batch_size: 4 then, 8 now; "
                                             "--seed: 12345 then, 7 now"):
        _run([*argv, "--num_train_steps=4", "--train_batch_size=8", "--seed=7"])
    assert tf.train.latest_checkpoint(f"{model_dir}/checkpoints").endswith("ckpt-2")


def test_fewer_steps_than_the_run_has_trained_are_refused(
        tmp_path, shared_data, uncased_vocab, capsys):
    argv = [f"--vocab_file={uncased_vocab}", f"--input_files={shared_data / 'sample_text.txt'}",
            f"--model_dir={tmp_path}", "--preset=bert_tiny", "--train_batch_size=4",
            "--seq_length=32", "--max_predictions_per_seq=4", "--num_warmup_steps=1",
            "--save_checkpoints_steps=1"]
    _run([*argv, "--num_train_steps=2"])
    # TensorBoard's axis is the step, which a resume with other intervals keeps.
    _run([*argv, "--num_train_steps=4"])
    _run([*argv[:-1], "--save_checkpoints_steps=2", "--num_train_steps=8"])
    tags = {}
    for path in (tmp_path / "logs" / "train").glob("events.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    assert sorted(tags["epoch_loss"]) == [1, 2, 3, 4, 6, 8]
    # As the original's learning_rate and global_step/sec, at the same steps.
    assert sorted(tags["epoch_learning_rate"]) == sorted(tags["epoch_steps_per_second"]) == [
        1, 2, 3, 4, 6, 8]
    # Output that is not a terminal (a log file) gets one line per interval, not the
    # progress bar's carriage returns and backspaces at every update.
    out = capsys.readouterr().out
    assert "\r" not in out and "\b" not in out
    assert out.count("Epoch ") == 6
    assert f"Wrote {tmp_path}: encoder.keras, bert_model.ckpt (Google format)" in out
    # It would finish at once and write its step-2 model as a 1-step one.
    with pytest.raises(ValueError, match="holds a run at step 8, past num_train_steps=1; "
                                         "give at least 8"):
        _run([*argv, "--num_train_steps=1"])
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-8")


def test_raw_text_is_refused_where_tpu_hosts_run_the_input_pipelines(
        monkeypatch, tmp_path, shared_data, uncased_vocab):
    monkeypatch.setattr(strategy, "input_pipelines_are_remote", lambda _: True)
    argv = [f"--vocab_file={uncased_vocab}", f"--input_files={shared_data / 'sample_text.txt'}",
            f"--model_dir={tmp_path}", "--preset=bert_tiny", "--num_train_steps=2",
            "--num_warmup_steps=1", "--save_checkpoints_steps=2"]
    with pytest.raises(app.UsageError, match="--input_files.*TFRecords"):
        _run(argv)
    assert not (tmp_path / "checkpoints").exists()


def test_fp16_on_a_tpu_is_refused_before_connecting(tmp_path, shared_data, uncased_vocab):
    argv = [f"--vocab_file={uncased_vocab}", f"--input_files={shared_data / 'sample_text.txt'}",
            f"--model_dir={tmp_path}", "--preset=bert_tiny", "--strategy=tpu",
            "--mixed_precision=fp16"]
    with pytest.raises(app.UsageError, match="TPUs compute in bfloat16.*--mixed_precision=bf16"):
        _run(argv)


def test_a_global_batch_that_does_not_split_over_the_replicas_is_refused_before_writing(
        tmp_path, shared_data, uncased_vocab):
    result = run_on_two_replicas(
        "keras_bert_impl.cli.pretrain", f"--vocab_file={uncased_vocab}",
        f"--input_files={shared_data / 'sample_text.txt'}", f"--model_dir={tmp_path / 'run'}",
        "--preset=bert_tiny", "--strategy=mirrored", "--train_batch_size=5")
    assert result.returncode == 1, result.stderr[-3000:]
    assert ("--train_batch_size=5 is the global batch: it must split evenly over the 2 "
            "replicas of --strategy=mirrored" in result.stderr)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("step_flags, error", [
    (["--num_train_steps=10", "--save_checkpoints_steps=4"],
     ("--num_train_steps=10 must be a multiple of --steps_per_execution=4: pass "
      "--num_train_steps=12 or 8")),
    (["--num_train_steps=8", "--save_checkpoints_steps=6"],
     "--save_checkpoints_steps=6 must be a multiple of --steps_per_execution=4"),
])
def test_step_counts_that_executions_would_overrun_are_refused_before_writing(
        tmp_path, shared_data, uncased_vocab, step_flags, error):
    argv = [f"--vocab_file={uncased_vocab}", f"--input_files={shared_data / 'sample_text.txt'}",
            f"--model_dir={tmp_path / 'run'}", "--preset=bert_tiny", "--num_warmup_steps=1",
            "--steps_per_execution=4", *step_flags]
    with pytest.raises(app.UsageError, match=error):
        _run(argv)
    assert not (tmp_path / "run").exists()


def test_a_sequence_longer_than_the_position_table_is_refused_naming_both(
        tmp_path, shared_data, uncased_vocab):
    argv = [f"--vocab_file={uncased_vocab}", f"--input_files={shared_data / 'sample_text.txt'}",
            f"--model_dir={tmp_path}", "--preset=bert_tiny", "--seq_length=1024"]
    with pytest.raises(app.UsageError,
                       match="--seq_length=1024 exceeds max_position_embeddings=512 of "
                             "--preset=bert_tiny"):
        _run(argv)
    assert not (tmp_path / "checkpoints").exists()


def test_whole_word_masking_reaches_the_raw_text_pipeline(
        monkeypatch, tmp_path, shared_data, uncased_vocab):
    from keras_bert_impl.data import pretraining as data

    asked = []
    original = data.pretraining_dataset

    def recording(*args, **kwargs):
        asked.append(kwargs["whole_word_masking"])
        return original(*args, **kwargs)

    monkeypatch.setattr(data, "pretraining_dataset", recording)
    _run([f"--vocab_file={uncased_vocab}", f"--input_files={shared_data / 'sample_text.txt'}",
          f"--model_dir={tmp_path}", "--preset=bert_tiny", "--train_batch_size=4",
          "--seq_length=32", "--max_predictions_per_seq=4", "--num_train_steps=2",
          "--num_warmup_steps=1", "--save_checkpoints_steps=2", "--whole_word_masking"])
    assert asked and all(asked)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    # Chinese words are jieba's when it is installed, characters otherwise: a resume in
    # an environment with the other would mask other spans than the run did.
    from keras_bert_impl.data import chinese_words
    installed = chinese_words.jieba_available()
    monkeypatch.setattr(chinese_words, "jieba_available", lambda: not installed)
    with pytest.raises(app.UsageError, match="Chinese whole words: '(jieba|characters)' then"):
        _run([f"--vocab_file={uncased_vocab}", f"--input_files={shared_data / 'sample_text.txt'}",
              f"--model_dir={tmp_path}", "--preset=bert_tiny", "--train_batch_size=4",
              "--seq_length=32", "--max_predictions_per_seq=4", "--num_train_steps=4",
              "--num_warmup_steps=1", "--save_checkpoints_steps=2", "--whole_word_masking"])


def test_whole_word_masking_of_tfrecords_is_refused_for_their_masks_are_written(
        tmp_path, uncased_vocab):
    records = tmp_path / "data.tfrecord"
    records.write_bytes(b"")
    argv = [f"--vocab_file={uncased_vocab}", f"--input_files={records}",
            f"--model_dir={tmp_path / 'run'}", "--preset=bert_tiny", "--whole_word_masking"]
    with pytest.raises(app.UsageError, match="TFRecords carry their masks.*--do_whole_word_mask"):
        _run(argv)


def test_the_default_warmup_longer_than_a_short_run_is_a_usage_error_naming_the_flag(tmp_path):
    with pytest.raises(app.UsageError, match=r"--num_warmup_steps=10000 \(the default\) exceeds "
                       r"--num_train_steps=10; pass a smaller --num_warmup_steps"):
        _run([f"--vocab_file={tmp_path / 'vocab.txt'}", f"--input_files={tmp_path / 'a.txt'}",
              f"--model_dir={tmp_path / 'run'}", "--preset=bert_tiny", "--num_train_steps=10",
              "--save_checkpoints_steps=10"])

