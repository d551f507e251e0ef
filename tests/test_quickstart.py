"""bert-quickstart, the README's first command, end to end in a subprocess (few steps)."""

import ast
import contextlib
import subprocess

import pytest
import tensorflow as tf
from absl import flags

from keras_bert_impl.cli import quickstart


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("quickstart")
    result = subprocess.run(
        ["bert-quickstart", f"--output_dir={output_dir}", "--steps=20", "--vocab_size=1500",
         "--batch_size=16", "--seq_length=32"],
        capture_output=True, text=True, timeout=600, check=False)
    return output_dir, result


def test_quickstart_trains_evaluates_exports_and_answers_fill_mask_over_grpc(quickstart_run):
    output_dir, result = quickstart_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Corpus: " in out and "documents held out" in out
    assert "WordPiece tokens learned" in out
    accuracy = float(out.split("Held-out documents: MLM accuracy ")[1].split()[0])
    assert 0.0 <= accuracy <= 1.0
    assert "serving it over gRPC at 127.0.0.1:" in out
    assert f"TensorBoard: tensorboard --logdir={output_dir / 'model' / 'logs'}" in out
    # Captured output is not a terminal: one line per interval, no progress bar redrawn.
    assert "\r" not in out and "\b" not in out
    answers = [line for line in out.splitlines() if "answer:" in line and "predicted:" in line]
    assert len(answers) >= 2
    for line in answers:
        predicted = ast.literal_eval(line.split("predicted:")[1].strip())
        assert len(predicted) == 5 and all(predicted)  # top 5 from the served model


def test_quickstart_leaves_corpus_vocab_checkpoints_model_and_export(quickstart_run):
    output_dir, result = quickstart_run
    assert result.returncode == 0
    corpus = (output_dir / "corpus" / "train.txt").read_text(encoding="utf-8")
    assert "\n\n" in corpus  # documents separated by blank lines, the BERT format
    assert (output_dir / "corpus" / "held_out.txt").stat().st_size > 0
    vocab = (output_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} <= set(vocab)
    model = output_dir / "model"
    for name in ("encoder.keras", "bert_model.ckpt.index", "bert_config.json", "vocab.txt"):
        assert (model / name).exists(), name
    assert (model / "checkpoints" / "ckpt-20.index").exists()
    assert (output_dir / "export" / "1" / "saved_model.pb").exists()
    # The held-out evaluation sits in TensorBoard beside the training curves.
    evaluated = {value.tag: event.step
                 for path in (model / "logs" / "validation").glob("events.*")
                 for event in tf.compat.v1.train.summary_iterator(str(path))
                 for value in event.summary.value}
    assert evaluated["epoch_mlm_accuracy"] == evaluated["epoch_nsp_accuracy"] == 20


def test_a_rerun_with_other_flags_stops_before_touching_the_trained_run(quickstart_run):
    output_dir, result = quickstart_run
    assert result.returncode == 0
    vocab = (output_dir / "vocab.txt").read_bytes()
    rerun = subprocess.run(
        ["bert-quickstart", f"--output_dir={output_dir}", "--steps=20", "--vocab_size=1500",
         "--batch_size=16", "--seq_length=32", "--nolower_case"],
        capture_output=True, text=True, timeout=600, check=False)
    assert rerun.returncode != 0
    assert "--lower_case: True then, False now" in rerun.stderr
    assert (output_dir / "vocab.txt").read_bytes() == vocab


@contextlib.contextmanager
def _flags(argv):
    before = set(flags.FLAGS)
    quickstart.define_flags()
    try:
        flags.FLAGS(["bert-quickstart", *argv])
        yield
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


class _StopBeforeTraining(Exception):
    pass


def _stop(*args, **kwargs):
    raise _StopBeforeTraining


def test_a_rerun_with_the_same_flags_trains_on_the_vocabulary_it_started_with(
        quickstart_run, monkeypatch):
    # The vocabulary learner is not deterministic: learning again would give the
    # checkpoint's embedding rows other tokens.
    output_dir, result = quickstart_run
    assert result.returncode == 0
    vocab = (output_dir / "vocab.txt").read_bytes()
    monkeypatch.setattr(quickstart, "_pretrain", _stop)
    argv = [f"--output_dir={output_dir}", "--steps=20", "--vocab_size=1500", "--batch_size=16",
            "--seq_length=32"]
    with _flags(argv), pytest.raises(_StopBeforeTraining):
        quickstart.main([])
    assert (output_dir / "vocab.txt").read_bytes() == vocab


def test_a_rerun_of_a_finished_run_says_it_keeps_the_trained_model(
        quickstart_run, monkeypatch, capsys):
    output_dir, result = quickstart_run
    assert result.returncode == 0
    monkeypatch.setattr(quickstart, "_evaluate", _stop)
    argv = [f"--output_dir={output_dir}", "--steps=20", "--vocab_size=1500", "--batch_size=16",
            "--seq_length=32"]
    with _flags(argv), pytest.raises(_StopBeforeTraining):
        quickstart.main([])
    assert (f"for 20 steps of 16 x 32 tokens (MLM + NSP); already trained, kept from the "
            f"earlier run in {output_dir / 'model'}\n") in capsys.readouterr().out


def test_a_run_that_fails_before_training_leaves_the_output_dir_free(tmp_path):
    with _flags([f"--output_dir={tmp_path}", "--corpus=books/*.txt"]), \
            pytest.raises(ValueError, match="matches no files"):
        quickstart.main([])
    with _flags([f"--output_dir={tmp_path}"]):
        assert not quickstart._check_same_run()  # the default corpus may use it


def test_a_gzip_corpus_is_read_as_its_text(tmp_path, monkeypatch):
    import gzip

    text = "The cat sat on the mat.\nIt was warm.\n\nA dog ran home.\nIt was late.\n"
    with gzip.open(tmp_path / "corpus.txt.gz", "wt", encoding="utf-8") as f:
        f.write(text)
    with _flags([f"--output_dir={tmp_path / 'out'}", f"--corpus={tmp_path / 'corpus.txt.gz'}"]):
        assert quickstart._documents() == [["The cat sat on the mat.", "It was warm."],
                                           ["A dog ran home.", "It was late."]]
    (tmp_path / "cut.txt.gz").write_bytes((tmp_path / "corpus.txt.gz").read_bytes()[:30])
    with _flags([f"--output_dir={tmp_path / 'out'}", f"--corpus={tmp_path / 'cut.txt.gz'}"]), \
            pytest.raises(ValueError, match="cut.txt.gz' is not a complete gzip file"):
        quickstart._documents()


def test_a_run_that_fails_before_its_first_checkpoint_does_not_hold_the_output_dir(tmp_path):
    with _flags([f"--output_dir={tmp_path}", "--vocab_size=5"]), \
            pytest.raises(ValueError, match="vocab_size=5"):
        quickstart.main([])
    with _flags([f"--output_dir={tmp_path}"]):
        assert not quickstart._check_same_run()  # a fresh start, not "rerun with those"


def test_fill_mask_examples_from_chinese_text_mask_one_ideograph():
    from keras_bert_impl.cli.quickstart import _masked_sentences

    sentence = "满纸荒唐言，一把辛酸泪！都云作者痴，谁解其中味？"
    examples = _masked_sentences([[sentence], ["太短了。"]], vocab=set(sentence))
    assert len(examples) == 1
    masked, answer = examples[0]
    assert masked.count("[MASK]") == 1 and masked.replace("[MASK]", answer) == sentence
    assert "\u4e00" <= answer <= "\u9fff"
    assert _masked_sentences([[sentence]], vocab=set()) == []  # nothing it could predict
