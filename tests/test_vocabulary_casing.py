"""A lower-casing setting that cannot fit the vocabulary is caught, as the original
run_* scripts' `validate_case_matches_checkpoint` catches it from a checkpoint's name."""

import os
import subprocess
import sys
import warnings

import pytest

from keras_bert_impl.text.casing import vocabulary_casing
from keras_bert_impl.text.tokenizer import BertTokenizer


@pytest.mark.parametrize("name, casing", [
    ("bert-base-uncased.txt", "uncased"),
    ("bert-base-chinese.txt", "uncased"),  # Google's Chinese model lower-cases its input
    ("bert-base-cased.txt", "cased"),
    ("multilingual-cased.txt", "cased"),
])
def test_googles_vocabularies_say_whether_they_are_cased(shared_data, name, casing):
    tokens = (shared_data / "vocab" / name).read_text(encoding="utf-8").splitlines()
    assert vocabulary_casing(tokens)[0] == casing


def test_a_vocabulary_with_few_words_or_mixed_casing_is_not_judged():
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert vocabulary_casing(specials + ["Hello", "World"])[0] is None
    words = [f"word{i}" for i in range(2000)]
    assert vocabulary_casing(specials + words)[0] == "uncased"
    mixed = words + [f"Name{i}" for i in range(10)]  # 0.5 % capitalised
    assert vocabulary_casing(specials + mixed) == (None, 10)
    accented = words + [f"caf\u00e9{i}" for i in range(10)]  # unreachable when lower-cased
    assert vocabulary_casing(specials + accented) == (None, 0)


def test_a_script_without_case_that_lower_casing_would_change_is_not_called_uncased():
    # Hangul syllables have no capitals, but lower-casing's NFD splits them into jamo:
    # --nolower_case is right for such a vocabulary (learned with bert-vocab --nolower_case).
    hangul = [chr(0xAC00 + 37 * i % 11172) + chr(0xAC00 + 11 * i % 11172) for i in range(1500)]
    latin = [f"word{i}" for i in range(500)]
    assert vocabulary_casing(["[UNK]", *hangul, *latin])[0] is None


def test_the_tokenizer_warns_when_lower_casing_cannot_fit_its_vocabulary(
        cased_vocab, uncased_vocab):
    with pytest.warns(UserWarning, match="vocabulary is cased .* lower-casing is on"):
        BertTokenizer(cased_vocab, lower_case=True)
    with pytest.warns(UserWarning, match="vocabulary is uncased .* but lower-casing is off"):
        BertTokenizer(uncased_vocab, lower_case=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BertTokenizer(cased_vocab, lower_case=False)
        BertTokenizer(uncased_vocab, lower_case=True)


def _tool(name, *flags):
    return subprocess.run([sys.executable, "-m", f"keras_bert_impl.cli.{name}", *flags],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.parametrize("tool, vocab, flag, advice", [
    ("finetune", "bert-base-cased.txt", "--task=classify", "pass --nolower_case"),
    ("pretrain", "bert-base-uncased.txt", "--nolower_case", "pass --lower_case"),
    ("create_pretraining_data", "bert-base-cased.txt", "--do_lower_case",
     "pass --nodo_lower_case"),
])
def test_a_tool_refuses_a_lower_casing_flag_that_cannot_fit_the_vocabulary_and_writes_nothing(
        shared_data, tmp_path, tool, vocab, flag, advice):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("One sentence.\nAnother one.\n\nA second document.\n", encoding="utf-8")
    vocab_file = shared_data / "vocab" / vocab
    output = tmp_path / "output"
    flags = {
        "finetune": [f"--train_file={corpus}", f"--eval_file={corpus}", "--preset=bert_tiny",
                     f"--model_dir={output}"],
        "pretrain": [f"--input_files={corpus}", "--preset=bert_tiny", f"--model_dir={output}"],
        "create_pretraining_data": [f"--input_file={corpus}", f"--output_file={output}"],
    }[tool]
    result = _tool(tool, f"--vocab_file={vocab_file}", flag, *flags)
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"--vocab_file={vocab_file}: the vocabulary is" in result.stderr
    assert advice in result.stderr
    assert not output.exists()


def test_export_refuses_lower_casing_off_for_an_uncased_vocabulary(bert_export, tmp_path):
    from absl import app

    from keras_bert_impl.checkpoints.google import save_google_checkpoint
    from keras_bert_impl.config import BertConfig
    from keras_bert_impl.models.encoder import BertEncoder

    encoder = BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=30522))
    checkpoint = save_google_checkpoint(encoder, tmp_path / "bert_model.ckpt")
    with pytest.raises(app.UsageError, match="vocabulary is uncased.*pass --lower_case"):
        bert_export(f"--init_checkpoint={checkpoint}", "--preset=bert_tiny",
                    "--model_kind=encoder", "--nolower_case")
    assert not (tmp_path / "export").exists()
