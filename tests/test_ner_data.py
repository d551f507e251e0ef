"""CoNLL reader and the alignment of word tags to first wordpieces."""

import re

import numpy as np
import pytest

from keras_bert_impl.data import ner
from keras_bert_impl.data.bad_records import BadRecordError
from keras_bert_impl.data.ner import check_entity_tags, check_tags, read_conll


def write(tmp_path, text):
    path = tmp_path / "train.conll"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_reads_first_column_as_word_and_last_as_tag_skipping_docstart(tmp_path):
    path = write(tmp_path, "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
                           "Peter\tB-PER\nBlackburn\tI-PER\n")
    data = read_conll(path)
    assert data.words == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert data.tags == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    assert data.sources == [f"{path}:3", f"{path}:6"]


def test_a_document_start_ends_the_sentence_before_it(tmp_path):
    # conlleval reads the two B-ORG words as two entities: no blank line must not join them.
    path = write(tmp_path, "EU B-ORG\n-DOCSTART- -X- -X- O\nCommission B-ORG\n")
    data = read_conll(path)
    assert data.words == [["EU"], ["Commission"]]
    assert data.sources == [f"{path}:1", f"{path}:3"]


def test_trailing_tabs_and_spaces_are_not_a_column(tmp_path):
    path = write(tmp_path, "EU\tB-ORG\t\nrejects\tO \t\n\nPeter   B-PER   \n")
    data = read_conll(path)
    assert data.words == [["EU", "rejects"], ["Peter"]]
    assert data.tags == [["B-ORG", "O"], ["B-PER"]]


def test_only_ascii_spaces_separate_space_separated_columns(tmp_path):
    data = read_conll(write(tmp_path, "10\u00a0000 CD B-NP O\nmen NNS I-NP O\n"))
    assert data.words == [["10\u00a0000", "men"]] and data.tags == [["O", "O"]]


def test_a_tag_holding_spaces_after_a_tab_is_an_error_not_a_new_class(tmp_path):
    path = write(tmp_path, "EU\tNNP B-NP B-ORG\n")
    with pytest.raises(BadRecordError, match=rf"{path}:1: the tag 'NNP B-NP B-ORG' holds "
                       "whitespace"):
        read_conll(path)


def test_a_line_without_a_tag_is_an_error_naming_file_and_line(tmp_path):
    path = write(tmp_path, "EU B-ORG\nrejects\n\nok O\n")
    with pytest.raises(BadRecordError, match=rf"{path}:2: expected a word and a tag"):
        read_conll(path)
    data = read_conll(path, skip_bad_records=True)
    assert data.words == [["ok"]] and data.skipped_records == 1
    with pytest.raises(BadRecordError, match=r"found '\\tB-ORG'"):  # the line as it is
        read_conll(write(tmp_path, "\tB-ORG\n"))


def test_bytes_that_are_not_utf8_are_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "train.conll"
    path.write_bytes(b"EU B-ORG\n\nM\xfcller B-PER\n")
    with pytest.raises(ValueError, match=rf"{path}:3: not valid UTF-8"):
        read_conll(str(path))


def test_an_unknown_eval_tag_is_bad_data(tmp_path):
    data = read_conll(write(tmp_path, "a B-PER\n\nb B-XYZ\n"))
    with pytest.raises(BadRecordError, match=r"train.conll:3: tag\(s\) \['B-XYZ'\]"):
        check_tags(data, ["B-PER", "O"])
    assert check_tags(data, ["B-PER", "O"], skip_bad_records=True).skipped_records == 1


def test_entity_tags_in_every_scheme_conlleval_scores_are_accepted(tmp_path):
    data = read_conll(write(tmp_path, "EU I-ORG\nrejects O\n\nNew B-LOC\nYork E-LOC\n"
                                      "Paris S-LOC\nDr I-PER\nX B-PER\n"))
    assert check_entity_tags(data).tags == data.tags


@pytest.mark.parametrize("text, tags", [
    # A sentence-classification TSV read as CoNLL: the label is the "tag".
    ("sentence\tlabel\na fine movie\t1\n", "['1', 'label']"),
    ('{"version": "v1.1", "data": []}\n', "['[]}']"),
    ("Paris PER\n", "['PER']"),  # no prefix: conlleval would not score it as an entity
    ("Paris B-\n", "['B-']"),
])
def test_tags_that_are_not_entity_tags_are_bad_records(tmp_path, text, tags):
    data = read_conll(write(tmp_path, text))
    with pytest.raises(BadRecordError, match=rf"train.conll:1: tag\(s\) {re.escape(tags)} are "
                                             r"not entity tags .*is this a CoNLL NER file\?"):
        check_entity_tags(data)
    assert check_entity_tags(data, skip_bad_records=True).skipped_records == 1


def test_real_conll_files(shared_data):
    conll = read_conll(str(shared_data / "ner/conll2003/train.txt"))
    assert len(conll.words) == 14041
    assert conll.words[0][:3] == ["EU", "rejects", "German"]
    assert conll.tags[0][:3] == ["B-ORG", "O", "B-MISC"]
    wnut = read_conll(str(shared_data / "ner/wnut17/wnut17train.conll"))
    assert len(wnut.words) == 3394
    assert np.mean([len(w) == len(t) for w, t in zip(wnut.words, wnut.tags)]) == 1.0
    # Their tags are entity tags (IOB1 and IOB2): every sentence is kept.
    assert len(check_entity_tags(conll).words) == 14041
    assert len(check_entity_tags(wnut).words) == 3394


def test_tags_go_on_first_wordpieces_and_other_positions_are_ignored(cased_vocab):
    from keras_bert_impl.text.preprocessor import BertPreprocessor
    from keras_bert_impl.text.tokenizer import BertTokenizer

    tokenizer = BertTokenizer(cased_vocab, lower_case=False)
    data = ner.TaggedSentences([["British", "lamb", "."]], [["B-MISC", "O", "O"]], ["s"])
    tags = ["B-MISC", "O"]
    inputs, labels, positions = ner.ner_features(
        data, tokenizer, BertPreprocessor(tokenizer, seq_length=8), tags)
    tokens = [t.decode() for t in tokenizer.id_to_token(inputs["input_word_ids"][0]).numpy()]
    assert tokens == ["[CLS]", "British", "la", "##mb", ".", "[SEP]", "[PAD]", "[PAD]"]
    assert labels[0].tolist() == [-1, 0, 1, -1, 1, -1, -1, -1]
    assert positions[0].tolist() == [1, 2, 4]


def test_words_cut_by_seq_length_have_no_position(cased_vocab):
    from keras_bert_impl.text.preprocessor import BertPreprocessor
    from keras_bert_impl.text.tokenizer import BertTokenizer

    tokenizer = BertTokenizer(cased_vocab, lower_case=False)
    data = ner.TaggedSentences([["a", "b", "c", "d"]], [["O"] * 4], ["s"])
    _, _, positions = ner.ner_features(
        data, tokenizer, BertPreprocessor(tokenizer, seq_length=4), ["O"])
    assert positions[0].tolist() == [1, 2, -1, -1]
    assert ner.predicted_tags(np.zeros((1, 4, 1)), positions, data, ["O"]) == [["O"] * 4]


def test_ignored_positions_get_weight_zero_and_a_valid_label_in_the_training_batches():
    inputs = {"input_word_ids": np.ones((2, 4), np.int32)}
    labels = np.array([[-1, 2, -1, 0], [-1, 1, 1, -1]], np.int32)
    (_, batch_labels, weights), = ner.ner_dataset(inputs, labels, batch_size=2)
    assert weights.numpy().tolist() == [[0, 1, 0, 1], [0, 1, 1, 0]]
    assert batch_labels.numpy().tolist() == [[0, 2, 0, 0], [0, 1, 1, 0]]


def test_a_word_cut_by_seq_length_is_predicted_o_whatever_the_logits_say():
    data = ner.TaggedSentences([["a", "b", "c"]], [["B-PER", "B-PER", "B-PER"]], ["s"])
    positions = np.array([[1, 2, -1]], np.int32)
    logits = np.zeros((1, 4, 2))
    logits[..., 0] = 1.0  # B-PER everywhere, [SEP] and padding included
    assert ner.predicted_tags(logits, positions, data, ["B-PER", "O"]) == [
        ["B-PER", "B-PER", "O"]]
