"""What a restart in the same --model_dir may change (check_or_record_run_flags with each
tool's RESUME_FLAGS), checked in this process without training; the CLI tests run two
flags of each tool end to end."""

import json

import pytest
import tensorflow as tf
from absl import app, flags

from keras_bert_impl.cli import finetune, pretrain
from keras_bert_impl.cli.run_flags import RUN_FLAGS_FILE, check_or_record_run_flags

TOOLS = {
    "finetune": (finetune, ["--task=squad", "--vocab_file=vocab.txt", "--train_file=train.json",
                            "--eval_file=dev.json", "--preset=bert_tiny"], ("train_file",)),
    "pretrain": (pretrain, ["--vocab_file=vocab.txt", "--input_files=corpus.txt",
                            "--preset=bert_tiny"], ("input_files",)),
}


@pytest.fixture
def record(tmp_path):
    """record(tool, *flags): parses the tool's flags for tmp_path/run and checks or records
    them as a (re)start of the run there does."""
    before = set(flags.FLAGS)
    model_dir = tmp_path / "run"

    def check(tool, *argv):
        module, base, paths = TOOLS[tool]
        module.define_flags()
        flags.FLAGS.unparse_flags()
        flags.FLAGS([f"bert-{tool}", f"--model_dir={model_dir}", *base, *argv])
        check_or_record_run_flags(str(model_dir), module.RESUME_FLAGS, paths=paths)

    yield check
    flags.FLAGS.unparse_flags()
    for name in set(flags.FLAGS) - before:
        delattr(flags.FLAGS, name)


def _checkpoint(model_dir):
    checkpoint = tf.train.Checkpoint(step=tf.Variable(1))
    tf.train.CheckpointManager(checkpoint, str(model_dir / "checkpoints"), max_to_keep=1,
                               checkpoint_name="ckpt").save()


@pytest.mark.parametrize("tool, changed", [
    ("finetune", "--learning_rate=1e-4"), ("finetune", "--warmup_proportion=0.2"),
    ("finetune", "--weight_decay_rate=0.0"), ("finetune", "--batch_size=16"),
    ("finetune", "--seq_length=256"), ("finetune", "--seed=1"), ("finetune", "--nolower_case"),
    ("finetune", "--doc_stride=64"), ("finetune", "--max_query_length=32"),
    ("finetune", "--version_2_with_negative"),
    ("pretrain", "--optimizer=lamb"), ("pretrain", "--learning_rate=5e-5"),
    ("pretrain", "--num_warmup_steps=10"), ("pretrain", "--weight_decay_rate=0.0"),
    ("pretrain", "--max_predictions_per_seq=5"), ("pretrain", "--whole_word_masking"),
    ("pretrain", "--seq_length=64"), ("pretrain", "--train_batch_size=8"),
])
def test_a_restart_that_changes_the_data_or_the_schedule_is_refused(tmp_path, record, tool,
                                                                    changed):
    record(tool)
    _checkpoint(tmp_path / "run")
    name = changed[2:].split("=")[0].removeprefix("no")
    with pytest.raises(app.UsageError, match=f"--{name}: "):
        record(tool, changed)


@pytest.mark.parametrize("tool, changed", [
    ("finetune", "--save_checkpoints_steps=10"), ("finetune", "--n_best_size=5"),
    ("finetune", "--max_answer_length=10"), ("finetune", "--num_train_epochs=9"),
    ("pretrain", "--num_train_steps=5"), ("pretrain", "--save_checkpoints_steps=10"),
])
def test_a_restart_may_change_what_leaves_the_consumed_batches_as_they_were(
        tmp_path, record, tool, changed):
    record(tool)
    _checkpoint(tmp_path / "run")
    record(tool, changed)


def test_a_run_killed_before_its_first_checkpoint_starts_afresh_with_new_flags(tmp_path,
                                                                               record):
    record("finetune", "--batch_size=32")
    record("finetune", "--batch_size=16")  # nothing to resume: not refused, recorded anew
    assert json.loads((tmp_path / "run" / RUN_FLAGS_FILE).read_text())["batch_size"] == 16


def test_a_record_written_before_a_flag_existed_resumes_and_gains_it(tmp_path, record):
    record("finetune")
    path = tmp_path / "run" / RUN_FLAGS_FILE
    older = json.loads(path.read_text())
    del older["seed"]
    path.write_text(json.dumps(older))
    _checkpoint(tmp_path / "run")
    record("finetune", "--seed=3")
    assert json.loads(path.read_text())["seed"] == 3


def test_a_record_of_a_relative_data_path_matches_it_given_absolute(tmp_path, record,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    record("finetune")  # --train_file=train.json, relative
    path = tmp_path / "run" / RUN_FLAGS_FILE
    older = json.loads(path.read_text())
    older["train_file"] = "train.json"  # as older versions recorded it
    path.write_text(json.dumps(older))
    _checkpoint(tmp_path / "run")
    record("finetune", f"--train_file={tmp_path / 'train.json'}")
    with pytest.raises(app.UsageError, match="--train_file: "):
        record("finetune", f"--train_file={tmp_path / 'other.json'}")
