"""SQuAD doc_stride windows and n-best decoding across several windows, as the original
run_squad.py: the null score, the window a token is decoded from, the n-best cut, coverage
when doc_stride exceeds the room, multi-piece answer ends and ties between occurrences."""

import numpy as np
import pytest
from test_squad_data import qa, write_squad

from keras_bert_impl.data.squad import read_squad
from keras_bert_impl.data.squad_windows import squad_features
from keras_bert_impl.metrics.squad_decoding import decode_answers

LONG_CONTEXT = " ".join(f"w{i}" for i in range(30)) + " the answer is paris ."


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab):
    from keras_bert_impl.text.tokenizer import BertTokenizer

    return BertTokenizer(uncased_vocab)


def _long_example(tmp_path, tokenizer, version_2=False):
    answers = [] if version_2 else [{"text": "paris", "answer_start": LONG_CONTEXT.index("paris")}]
    path = write_squad(tmp_path, [{"context": LONG_CONTEXT, "qas": [
        qa("q", "where?", answers, **({"is_impossible": True} if version_2 else {}))]}])
    examples = read_squad(path, version_2_with_negative=version_2)
    features = squad_features(examples, tokenizer, seq_length=24, doc_stride=8,
                              max_query_length=4)
    assert len(features.example_index) > 2, "the context must span several windows"
    return examples, features


def _token_of_word(features, row, word):
    (column,) = np.flatnonzero(features.token_to_word[row] == word)
    return column


def _word_of(examples, text):
    example = examples.examples[0]
    return next(i for i, (s, e) in enumerate(example.word_spans) if example.context[s:e] == text)


def test_the_null_score_is_the_smallest_cls_score_over_the_windows(tmp_path, tokenizer):
    examples, features = _long_example(tmp_path, tokenizer, version_2=True)
    paris = _word_of(examples, "paris")
    starts = np.zeros(features.inputs["input_word_ids"].shape)
    ends = np.zeros_like(starts)
    starts[:, 0] = ends[:, 0] = 5.0  # [CLS] scores 10 in every window ...
    starts[0, 0] = ends[0, 0] = 0.5  # ... but 1 in the first: the null score is 1
    (row,) = [r for r in range(len(starts)) if (features.token_to_word[r] == paris).any()
              and features.max_context[r, _token_of_word(features, r, paris)]]
    column = _token_of_word(features, row, paris)
    starts[row, column] = ends[row, column] = 2.5  # "paris" scores 5
    predictions, nbest = decode_answers(examples, features, starts, ends,
                                        version_2_with_negative=True)
    assert predictions == {"q": "paris"}  # 1 - 5 does not exceed the threshold 0
    assert [c.score for c in nbest["q"] if c.text == ""] == [1.0]


def test_a_token_is_decoded_from_the_window_that_gives_it_most_context(tmp_path, tokenizer):
    examples, features = _long_example(tmp_path, tokenizer)
    windows_of = {}  # word -> (window, its first token there, most context there)
    for row in range(len(features.example_index)):
        for column in np.flatnonzero(features.token_to_word[row] >= 0):
            word = features.token_to_word[row, column]
            if all(place[0] != row for place in windows_of.get(word, [])):
                windows_of.setdefault(word, []).append(
                    (row, column, bool(features.max_context[row, column])))
    word, places = next((w, p) for w, p in windows_of.items()
                        if len(p) > 1 and sum(best for _, _, best in p) == 1)
    (best_row, best_column, _), = [p for p in places if p[2]]
    other_row, other_column, _ = next(p for p in places if not p[2])
    starts = np.zeros(features.inputs["input_word_ids"].shape)
    ends = np.zeros_like(starts)
    starts[other_row, other_column] = ends[other_row, other_column] = 10.0
    starts[best_row, best_column] = ends[best_row, best_column] = 1.0
    _, nbest = decode_answers(examples, features, starts, ends)
    start, end = features.token_chars[best_row, best_column]  # that wordpiece's characters
    assert nbest["q"][0].text == examples.examples[0].context[start:end]
    assert nbest["q"][0].score == 2.0  # its score in the window where it has most context


def test_the_n_best_list_holds_at_most_n_best_size_candidates(tmp_path, tokenizer):
    examples, features = _long_example(tmp_path, tokenizer)
    rng = np.random.default_rng(0)
    # Context tokens score highest, so that the best starts and ends make spans.
    starts = rng.normal(size=features.inputs["input_word_ids"].shape)
    starts += 10.0 * (features.token_to_word >= 0)
    ends = starts
    for n_best_size in (1, 3, 5):
        _, nbest = decode_answers(examples, features, starts, ends, n_best_size=n_best_size)
        assert 1 <= len(nbest["q"]) <= n_best_size
        scores = [c.score for c in nbest["q"]]
        assert scores == sorted(scores, reverse=True)


def test_windows_cover_every_context_token_when_doc_stride_exceeds_the_room(tmp_path,
                                                                           tokenizer):
    examples, _ = _long_example(tmp_path, tokenizer)
    # 16 - 3 - 3 question tokens leave 10 context tokens a window; the stride is larger.
    features = squad_features(examples, tokenizer, seq_length=16, doc_stride=64,
                              max_query_length=4)
    covered = set(features.token_to_word[features.token_to_word >= 0].tolist())
    assert covered == set(range(len(examples.examples[0].word_spans)))


def test_a_training_answer_ending_in_a_word_of_several_wordpieces_labels_all_of_them(
        tmp_path, tokenizer):
    context = "They ate Johnsonville sausages at noon."
    answer = "Johnsonville sausages"
    path = write_squad(tmp_path, [{"context": context, "qas": [
        qa("q", "What?", [{"text": answer, "answer_start": context.index(answer)}])]}])
    features = squad_features(read_squad(path), tokenizer, seq_length=32)
    start, end = features.start_positions[0], features.end_positions[0]
    ids = features.inputs["input_word_ids"][0, start:end + 1].tolist()
    pieces = [t.decode() for t in tokenizer.id_to_token(ids).numpy()]
    assert pieces == ["johnson", "##ville", "sausage", "##s"]


def test_a_training_answer_equally_far_from_two_occurrences_labels_the_earlier(tmp_path):
    context = "ab cd ab"  # "ab" at 0 and at 6; answer_start 3 is as far from both
    path = write_squad(tmp_path, [{"context": context, "qas": [
        qa("q", "Which?", [{"text": "ab", "answer_start": 3}])]}])
    (example,) = read_squad(path).examples
    assert example.word_spans[example.start_word][0] == 0
