"""The command-line tools can live in one process: flags are defined when a tool starts."""

import importlib
import subprocess
import sys

import pytest
from absl import flags

import keras_bert_impl  # noqa: F401 - TensorFlow and absl define their own flags on import

TOOLS = ("vocab", "export", "pretrain", "quickstart", "finetune", "create_pretraining_data")


def test_importing_every_tool_defines_no_flags_and_nothing_collides():
    before = set(flags.FLAGS)
    for tool in TOOLS:
        importlib.import_module(f"keras_bert_impl.cli.{tool}")
    assert set(flags.FLAGS) == before


def test_a_tool_defines_its_flags_once_at_start_up():
    before = set(flags.FLAGS)
    export = importlib.import_module("keras_bert_impl.cli.export")
    export.define_flags()
    export.define_flags()
    try:
        assert {"vocab_file", "export_dir", "lower_case"} <= set(flags.FLAGS)
    finally:
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


def test_help_through_a_console_script_lists_the_tools_flags_and_description():
    # pip's console-script wrapper is the __main__ module: it defines no flags.
    wrapper = "import sys; from keras_bert_impl.cli.vocab import run; sys.exit(run())"
    result = subprocess.run([sys.executable, "-c", wrapper, "--helpshort"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert "learn a WordPiece vocabulary" in result.stdout
    assert "--output_file: Where to write the vocabulary" in result.stdout
    assert "--vocab_size=30522 --lower_case" in result.stdout  # the example keeps its lines


@pytest.mark.parametrize("tool, flag", [
    ("pretrain", "--save_checkpoints_steps=0"),  # divided by zero after building the model
    ("pretrain", "--save_checkpoints_steps=-1"),  # trained nothing and saved it as final
    ("pretrain", "--num_train_steps=0"),
    ("pretrain", "--num_warmup_steps=-1"),
    ("finetune", "--save_checkpoints_steps=0"),
    ("finetune", "--n_best_size=0"),
    ("create_pretraining_data", "--max_document_sentences=0"),
    ("create_pretraining_data", "--dupe_factor=0"),
    ("quickstart", "--steps=0"),
    ("pretrain", "--learning_rate=-0.01"),  # gradient ascent: the loss climbed, no error
    ("pretrain", "--learning_rate=nan"),
    ("pretrain", "--weight_decay_rate=-1"),
    ("quickstart", "--learning_rate=0"),
    ("finetune", "--num_train_epochs=0"),  # trained one step and exported it
    ("vocab", "--num_unused_tokens=-5"),
    ("vocab", "--reserved_tokens="),  # a vocabulary every other tool refuses
    ("vocab", "--reserved_tokens=[PAD],[UNK],[CLS]"),
    ("export", "--seq_length_buckets=16,x,128"),
])
def test_counts_and_step_intervals_below_their_minimum_are_flag_errors(tool, flag):
    module = importlib.import_module(f"keras_bert_impl.cli.{tool}")
    before = set(flags.FLAGS)
    module.define_flags()
    try:
        with pytest.raises(flags.IllegalFlagValueError, match=flag.split("=")[0][2:]):
            flags.FLAGS([f"bert-{tool}", flag])
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


def test_a_usage_error_found_while_running_is_one_line_not_the_flag_listing(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Some text.\n", encoding="utf-8")
    wrapper = "import sys; from keras_bert_impl.cli.vocab import run; sys.exit(run())"
    result = subprocess.run(
        [sys.executable, "-c", wrapper, f"--input_files={corpus}", f"--output_file={tmp_path}"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1
    assert f"--output_file={tmp_path} is a directory; name a file in it" in result.stderr
    assert "--vocab_size" not in result.stderr + result.stdout  # no flag listing
    assert "Traceback" not in result.stderr


def test_bad_input_found_while_running_is_one_line_with_the_traceback_on_request(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n", encoding="utf-8")
    wrapper = "import sys; from keras_bert_impl.cli.vocab import run; sys.exit(run())"
    command = [sys.executable, "-c", wrapper, f"--input_files={blank}",
               f"--output_file={tmp_path / 'vocab.txt'}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1
    assert "ValueError: corpus file" in result.stderr and "holds no text" in result.stderr
    assert "Traceback" not in result.stderr and "--verbosity=1" in result.stderr
    verbose = subprocess.run([*command, "--verbosity=1"], capture_output=True, text=True,
                             timeout=300, check=False)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_a_tensorflow_file_system_error_is_one_line_too(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Some text here.\n", encoding="utf-8")
    (tmp_path / "a_file").write_text("")
    wrapper = "import sys; from keras_bert_impl.cli.vocab import run; sys.exit(run())"
    result = subprocess.run(
        [sys.executable, "-c", wrapper, f"--input_files={corpus}",
         f"--output_file={tmp_path / 'a_file' / 'vocab.txt'}"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1
    assert f"FailedPreconditionError: {tmp_path / 'a_file'} is not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_error_raised_inside_a_graph_is_said_without_its_op_stack():
    import tensorflow as tf

    from keras_bert_impl.cli import _one_line

    @tf.function
    def lookup(ids):
        return tf.gather(tf.zeros([3, 2]), ids)

    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        lookup(tf.constant([5]))
    assert _one_line(raised.value).startswith("indices[0] = 5 is not in [0, 3)")
    assert "defined at" not in _one_line(raised.value)



def test_verbosity_1_shows_the_traceback_of_a_tool_that_quiets_absl(tmp_path, uncased_vocab):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n", encoding="utf-8")
    wrapper = "import sys; from keras_bert_impl.cli.pretrain import run; sys.exit(run())"
    command = [sys.executable, "-c", wrapper, f"--vocab_file={uncased_vocab}",
               f"--input_files={blank}", f"--model_dir={tmp_path / 'run'}",
               "--preset=bert_tiny", "--num_train_steps=2", "--num_warmup_steps=1"]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert quiet.returncode == 1 and "holds no text" in quiet.stderr
    assert "Traceback" not in quiet.stderr
    verbose = subprocess.run([*command, "--verbosity=1"], capture_output=True, text=True,
                             timeout=300, check=False)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_importing_the_model_server_defines_no_flags():
    """Its --version is also bert-export's; each program defines its flags when it runs."""
    before = set(flags.FLAGS)
    importlib.import_module("keras_bert_impl.serving.model_server")
    assert set(flags.FLAGS) == before


class _Stdout:
    def __init__(self, terminal=False, closed=False):
        self.terminal, self.closed = terminal, closed

    def isatty(self):
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self.terminal


@pytest.mark.parametrize("stdout, environment, verbose", [
    (_Stdout(terminal=True), {}, 1),  # Keras' live bar
    (_Stdout(), {}, 2),  # a log file or pipe: one line per interval
    (_Stdout(), {"JPY_PARENT_PID": "7"}, 1),  # a notebook's `!tool` cell renders the bar
    (_Stdout(), {"COLAB_RELEASE_TAG": "release-colab"}, 1),
    (_Stdout(closed=True), {}, 0),
    (None, {}, 0),
])
def test_progress_is_a_bar_where_it_renders_and_lines_where_it_is_logged(
        stdout, environment, verbose, monkeypatch):
    from keras_bert_impl import cli

    for name in cli.NOTEBOOK_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdout", stdout)
    assert cli.progress_verbosity() == verbose


@pytest.mark.parametrize("tool", ["pretrain", "finetune"])
def test_short_help_lists_the_distribution_flags_a_tool_shares_with_another(tool):
    # Defined once in keras_bert_impl.cli, they are still this tool's key flags.
    wrapper = f"import sys; from keras_bert_impl.cli.{tool} import run; sys.exit(run())"
    result = subprocess.run([sys.executable, "-c", wrapper, "--helpshort"],
                            capture_output=True, text=True, timeout=300, check=False)
    for name in ("strategy", "tpu", "jit_compile", "mixed_precision", "steps_per_execution",
                 "save_checkpoints_steps"):
        assert f"--{name}:" in result.stdout or f"--[no]{name}:" in result.stdout, name


def _flag_defaults(tool: str, names: tuple[str, ...]) -> dict:
    module = importlib.import_module(f"keras_bert_impl.cli.{tool}")
    before = set(flags.FLAGS)
    module.define_flags()
    try:
        return {name: flags.FLAGS[name].default for name in names}
    finally:
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


def test_create_pretraining_data_defaults_to_the_original_flags():
    assert _flag_defaults("create_pretraining_data", (
        "do_lower_case", "do_whole_word_mask", "max_seq_length", "max_predictions_per_seq",
        "random_seed", "dupe_factor", "masked_lm_prob", "short_seq_prob")) == {
        "do_lower_case": True, "do_whole_word_mask": False, "max_seq_length": 128,
        "max_predictions_per_seq": 20, "random_seed": 12345, "dupe_factor": 10,
        "masked_lm_prob": 0.15, "short_seq_prob": 0.1}


def test_finetune_defaults_to_the_original_recipe():
    # run_classifier.py: 5e-5, 3 epochs, warmup over the first tenth; AdamW's 0.01 decay.
    assert _flag_defaults("finetune", (
        "warmup_proportion", "learning_rate", "weight_decay_rate", "num_train_epochs",
        "batch_size")) == {
        "warmup_proportion": 0.1, "learning_rate": 5e-5, "weight_decay_rate": 0.01,
        "num_train_epochs": 3.0, "batch_size": 32}

