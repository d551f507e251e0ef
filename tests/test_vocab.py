"""learn_vocabulary / bert-vocab: a vocabulary that fits BertTokenizer and its corpus."""

import gzip

import pytest
import tensorflow as tf
from absl import app, flags

from keras_bert_impl.cli import vocab as vocab_cli
from keras_bert_impl.text.tokenizer import BertTokenizer
from keras_bert_impl.text.vocab_file import read_vocab_file, write_vocab_file
from keras_bert_impl.text.vocabulary import DEFAULT_RESERVED_TOKENS, learn_vocabulary


@pytest.fixture(scope="module")
def corpus():
    from pydoc_data.topics import topics

    return [line for text in topics.values() for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def learned(corpus):
    return learn_vocabulary(corpus, vocab_size=3000, num_unused_tokens=3)


def test_reserved_then_unused_tokens_come_first_and_nothing_repeats(learned):
    assert learned[:8] == list(DEFAULT_RESERVED_TOKENS) + ["[unused0]", "[unused1]", "[unused2]"]
    assert len(learned) == len(set(learned)) <= 3000


def test_the_learned_vocabulary_tokenizes_its_corpus_without_unknowns(learned, corpus, tmp_path):
    path = str(tmp_path / "vocab.txt")
    write_vocab_file(learned, path)
    assert read_vocab_file(path)[0] == learned
    tokenizer = BertTokenizer(path)
    ids = tokenizer.tokenize(tf.constant(corpus)).flat_values.numpy()
    assert (ids == tokenizer.unk_id).mean() < 0.001
    # Frequent words are whole tokens, rarer ones are split into ## pieces.
    assert "function" in learned
    assert any(token.startswith("##") for token in learned)


def test_words_are_normalised_as_the_tokenizer_normalises_them():
    texts = ["Café CAFÉ café naïve Naïve, «quoted»!"] * 20
    uncased = learn_vocabulary(texts, vocab_size=100, reserved_tokens=["[UNK]"])
    assert {"cafe", "naive", "«", ","} <= set(uncased)
    assert not {"Café", "é", "N"} & set(uncased)
    cased = learn_vocabulary(texts, vocab_size=100, lower_case=False, reserved_tokens=["[UNK]"])
    assert {"Café", "CAFÉ", "Naïve"} <= set(cased)


def test_a_vocab_size_without_room_beyond_the_reserved_tokens_is_an_error():
    with pytest.raises(ValueError, match="vocab_size=5 leaves no room beyond the 5 reserved"):
        learn_vocabulary(["a b c"], vocab_size=5)


def test_an_alphabet_larger_than_vocab_size_is_kept_with_a_warning(caplog):
    texts = ["".join(chr(0x4E00 + i) for i in range(start, start + 40)) for start in (0, 40)]
    with caplog.at_level("WARNING"):
        vocab = learn_vocabulary(texts, vocab_size=60)
    assert len(vocab) > 60 and all(chr(0x4E00 + i) in vocab for i in range(80))
    assert f"has {len(vocab)} tokens, more than vocab_size=60" in caplog.text


def test_texts_without_words_are_an_error():
    with pytest.raises(ValueError, match="no words found"):
        learn_vocabulary(["", " \t"], vocab_size=50)


@pytest.fixture
def parsed_flags():
    before = set(flags.FLAGS)
    vocab_cli.define_flags()
    yield flags.FLAGS
    flags.FLAGS.unparse_flags()
    for name in set(flags.FLAGS) - before:
        delattr(flags.FLAGS, name)


def test_bert_vocab_writes_a_vocabulary_from_globbed_files_into_a_new_directory(
        tmp_path, corpus, parsed_flags, capsys):
    (tmp_path / "a.txt").write_text("\n".join(corpus[:3000]), encoding="utf-8")
    (tmp_path / "b.txt").write_text("\n".join(corpus[3000:]), encoding="utf-8")
    output = tmp_path / "new" / "vocab.txt"
    parsed_flags(
        [
            "bert-vocab",
            f"--input_files={tmp_path}/*.txt",
            f"--output_file={output}",
            "--vocab_size=2000",
            "--nolower_case",
        ]
    )
    vocab_cli.main([])
    tokens, _ = read_vocab_file(str(output))
    assert tokens[:5] == list(DEFAULT_RESERVED_TOKENS)
    assert len(tokens) <= 2000
    assert "The" in tokens  # cased
    # Said as the other tools say what they do, not as an absl INFO log line.
    assert capsys.readouterr().out.startswith("Learning a 2000-token vocabulary from 2 files\n")


def test_bert_vocab_reads_gzip_files_as_the_pretraining_tools_do(tmp_path, corpus, parsed_flags):
    text = "\n".join(corpus[:3000])
    with gzip.open(tmp_path / "a.txt.gz", "wt", encoding="utf-8") as f:
        f.write(text)
    (tmp_path / "plain.txt").write_text(text, encoding="utf-8")
    vocabularies = []
    for name in ("a.txt.gz", "plain.txt"):
        output = tmp_path / f"{name}.vocab"
        parsed_flags(["bert-vocab", f"--input_files={tmp_path / name}",
                      f"--output_file={output}", "--vocab_size=800"])
        vocab_cli.main([])
        vocabularies.append(read_vocab_file(str(output))[0])
    # The learner breaks ties between merges in hash order, so compare the alphabet.
    from_gzip, from_plain = ({t for t in v if len(t.removeprefix("##")) == 1}
                             for v in vocabularies)
    assert from_gzip == from_plain and "the" in vocabularies[0]


def test_bert_vocab_refuses_a_truncated_gzip_file_as_the_pretraining_tools_do(
        tmp_path, corpus, parsed_flags):
    whole = gzip.compress("\n".join(corpus[:3000]).encode("utf-8"))
    (tmp_path / "cut.txt.gz").write_bytes(whole[:len(whole) // 2])
    parsed_flags(["bert-vocab", f"--input_files={tmp_path / 'cut.txt.gz'}",
                  f"--output_file={tmp_path / 'vocab.txt'}", "--vocab_size=800"])
    with pytest.raises(ValueError, match="cut.txt.gz"):
        vocab_cli.main([])
    assert not (tmp_path / "vocab.txt").exists()


def test_bert_vocab_names_a_glob_that_matches_nothing(tmp_path, parsed_flags):
    parsed_flags(["bert-vocab", f"--input_files={tmp_path}/none*.txt", "--output_file=x"])
    with pytest.raises(app.UsageError, match="no file matches .*none"):
        vocab_cli.main([])


def test_bert_vocab_refuses_a_directory_as_output_before_learning(tmp_path, corpus, parsed_flags):
    (tmp_path / "a.txt").write_text("\n".join(corpus[:3000]), encoding="utf-8")
    parsed_flags(["bert-vocab", f"--input_files={tmp_path / 'a.txt'}",
                  f"--output_file={tmp_path}", "--vocab_size=800"])
    with pytest.raises(app.UsageError, match="is a directory"):
        vocab_cli.main([])


def test_an_existing_vocabulary_is_kept_unless_overwrite(tmp_path, corpus, parsed_flags):
    (tmp_path / "a.txt").write_text("\n".join(corpus[:3000]), encoding="utf-8")
    output = tmp_path / "vocab.txt"
    output.write_text("[PAD]\n[UNK]\n", encoding="utf-8")
    parsed_flags(["bert-vocab", f"--input_files={tmp_path / 'a.txt'}",
                  f"--output_file={output}", "--vocab_size=800"])
    with pytest.raises(app.UsageError, match="exists; pass --overwrite to replace it"):
        vocab_cli.main([])
    assert output.read_text(encoding="utf-8") == "[PAD]\n[UNK]\n"
    flags.FLAGS.unparse_flags()
    parsed_flags(["bert-vocab", f"--input_files={tmp_path / 'a.txt'}",
                  f"--output_file={output}", "--vocab_size=800", "--overwrite"])
    vocab_cli.main([])
    assert len(read_vocab_file(str(output))[0]) == 800
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "vocab.txt"]


def test_a_failed_write_leaves_the_earlier_vocabulary_whole(tmp_path, monkeypatch):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\nold\n", encoding="utf-8")

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(tf.io.gfile, "rename", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_vocab_file(["[PAD]", "new"], str(path))
    assert path.read_text(encoding="utf-8") == "[PAD]\nold\n"
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.txt"]


def test_an_empty_reserved_token_is_a_flag_error(parsed_flags):
    with pytest.raises(flags.IllegalFlagValueError, match="empty token"):
        parsed_flags(["bert-vocab", "--input_files=a.txt", "--output_file=v.txt",
                      "--reserved_tokens=[PAD],[UNK],[CLS],[SEP],[MASK],"])


def test_limit_alphabet_keeps_rare_characters_from_crowding_out_pieces(corpus):
    rare = [chr(0x20000 + i) for i in range(300)]  # CJK Extension B, each seen once
    texts = corpus[:3000] + [" ".join(rare)]
    everything = learn_vocabulary(texts, vocab_size=1000)
    limited = learn_vocabulary(texts, vocab_size=1000, limit_alphabet=100)
    assert set(rare) <= set(everything)
    # The 100 most frequent characters: the corpus's own, then a few of the ties.
    assert len([token for token in limited if len(token) == 1]) <= 100
    assert len(set(rare) & set(limited)) < 100
    pieces = [len([t for t in v if len(t.removeprefix("##")) > 1]) for v in (everything, limited)]
    assert pieces[1] > pieces[0]
