"""SQuAD reader: answers mapped to words, bad records, doc_stride windows; the CMRC metric."""

import json

import numpy as np
import pytest

from keras_bert_impl.data.bad_records import BadRecordError
from keras_bert_impl.data.squad import context_words, read_squad
from keras_bert_impl.data.squad_windows import squad_features


def write_squad(tmp_path, paragraphs):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"paragraphs": paragraphs}]}),
                    encoding="utf-8")
    return str(path)


def qa(qid, question, answers, **extra):
    return {"id": qid, "question": question, "answers": answers, **extra}


def test_context_words_split_at_spaces_punctuation_and_cjk_characters():
    assert context_words("Hi, 北京 now") == [(0, 2), (2, 3), (4, 5), (5, 6), (7, 10)]


def test_answer_offsets_map_to_words(tmp_path):
    context = "The Broncos beat the Panthers, 24-10."
    path = write_squad(tmp_path, [{"context": context, "qas": [
        qa("q1", "Who won?", [{"text": "Broncos", "answer_start": 4}]),
        qa("q2", "Score?", [{"text": "24-10", "answer_start": 31}])]}])
    examples = read_squad(path).examples
    for example in examples:
        start = example.word_spans[example.start_word][0]
        end = example.word_spans[example.end_word][1]
        assert context[start:end] == example.answers[0]


def answer_text(example):
    return example.context[example.word_spans[example.start_word][0]:
                           example.word_spans[example.end_word][1]]


def test_a_training_answer_off_its_offset_labels_the_nearest_occurrence_of_its_text(tmp_path):
    context = "France won. Paris is in France, and France is in Europe."
    second = context.index("France", 1)
    path = write_squad(tmp_path, [{"context": context, "qas": [
        qa("off-by-one", "Where?", [{"text": "France", "answer_start": second - 1}]),
        qa("far-off", "Where?", [{"text": "France", "answer_start": len(context) - 3}])]}])
    off_by_one, far_off = read_squad(path).examples
    assert off_by_one.word_spans[off_by_one.start_word][0] == second
    assert far_off.word_spans[far_off.start_word][0] == context.rindex("France")
    assert answer_text(off_by_one) == answer_text(far_off) == "France"


@pytest.mark.parametrize("answer_start", [45, 45.0, "45"])
def test_answer_start_written_as_a_float_or_a_string_still_labels_that_occurrence(
        tmp_path, answer_start):
    context = "Paris is in France. The capital of France is Paris."
    path = write_squad(tmp_path, [{"context": context, "qas": [
        qa("q", "Capital?", [{"text": "Paris", "answer_start": answer_start}])]}])
    (example,) = read_squad(path).examples
    assert example.word_spans[example.start_word][0] == 45


@pytest.mark.parametrize("answer_start", [True, 4.5, "four", -1, [4]])
def test_an_answer_start_that_is_no_offset_is_an_error_naming_it(tmp_path, answer_start):
    path = write_squad(tmp_path, [{"context": "Paris is in France.", "qas": [
        qa("q", "Where?", [{"text": "France", "answer_start": answer_start}])]}])
    with pytest.raises(ValueError, match=r"\(id 'q'\).answers\[0\].answer_start: expected a "
                       r"character offset"):
        read_squad(path)


@pytest.mark.parametrize("answer, reason", [
    ({"text": "France"}, "answer 0 has no answer_start"),
    ({"text": " ", "answer_start": 5}, "answer 0 has no text")])
def test_a_training_answer_without_an_offset_or_text_is_a_bad_record(tmp_path, answer, reason):
    path = write_squad(tmp_path, [{"context": "Paris is in France.", "qas": [
        qa("q", "Where?", [answer])]}])
    with pytest.raises(BadRecordError, match=reason):
        read_squad(path)


def test_a_training_answer_absent_from_the_context_is_a_bad_record(tmp_path):
    path = write_squad(tmp_path, [{"context": "Paris is in France.", "qas": [
        qa("good", "Where?", [{"text": "France", "answer_start": 12}]),
        qa("absent", "Where?", [{"text": "Spain", "answer_start": 12}])]}])
    with pytest.raises(BadRecordError,
                       match=r"question id 'absent': answer 'Spain' does not occur in the context"):
        read_squad(path)
    squad = read_squad(path, skip_bad_records=True)
    assert [e.question_id for e in squad.examples] == ["good"] and squad.skipped_records == 1


@pytest.mark.parametrize("is_training", [True, False])
def test_text_cut_inside_a_surrogate_pair_is_a_bad_record_naming_the_question(
        tmp_path, is_training):
    path = write_squad(tmp_path, [
        {"context": "Paris is in France.", "qas": [
            qa("good", "Where?", [{"text": "France", "answer_start": 12}]),
            qa("cut", "Where \ud83d?", [{"text": "France", "answer_start": 12}])]},
        {"context": "Cut \ud83d here.", "qas": [
            qa("in context", "What?", [{"text": "Cut", "answer_start": 0}])]}])
    with pytest.raises(BadRecordError, match=r"\(id 'cut'\): holds half of a UTF-16 surrogate"):
        read_squad(path, is_training=is_training)
    squad = read_squad(path, is_training=is_training, skip_bad_records=True)
    assert [e.question_id for e in squad.examples] == ["good"] and squad.skipped_records == 2


def test_evaluation_data_keep_every_question_with_its_answer_texts(tmp_path):
    """The official scripts score every question in the file, offsets play no part."""
    path = write_squad(tmp_path, [
        {"context": "Paris is in France.", "qas": [
            qa("absent", "Where?", [{"text": "Spain", "answer_start": 3}]),
            qa("no-offset", "Where?", [{"text": "France"}, {"text": "in France"}]),
            qa("empty-question", "", [{"text": "Paris", "answer_start": 0}]),
            qa("impossible", "Who?", [], is_impossible=True)]},
        {"context": " ", "qas": [qa("empty-context", "Why?", [{"text": "x", "answer_start": 0}])]},
    ])
    squad = read_squad(path, is_training=False)
    assert squad.gold_answers() == {"absent": ["Spain"], "no-offset": ["France", "in France"],
                                    "empty-question": ["Paris"], "impossible": [],
                                    "empty-context": ["x"]}
    assert squad.skipped_records == 0
    assert all(example.start_word == example.end_word == -1 for example in squad.examples)


def test_an_empty_question_is_a_question(tmp_path, uncased_vocab):
    from keras_bert_impl.text.tokenizer import BertTokenizer

    path = write_squad(tmp_path, [{"context": "Paris is in France.", "qas": [
        qa("q", " ", [{"text": "France", "answer_start": 12}])]}])
    (example,) = read_squad(path).examples
    features = squad_features(read_squad(path), BertTokenizer(uncased_vocab), seq_length=16)
    assert answer_text(example) == "France"
    # [CLS] [SEP] paris is in france . [SEP]: the answer is token 5.
    assert (features.start_positions[0], features.end_positions[0]) == (5, 5)


def test_only_the_first_answer_needs_a_matching_offset(tmp_path):
    """The first answer labels the span; the others only count as texts for EM/F1."""
    path = write_squad(tmp_path, [{"context": "Paris is in France.", "qas": [
        qa("q1", "Where?", [{"text": "France", "answer_start": 12},
                            {"text": "in France", "answer_start": 0}])]}])
    (example,) = read_squad(path).examples
    assert example.answers == ["France", "in France"]


def test_an_empty_training_context_holds_no_answer(tmp_path):
    path = write_squad(tmp_path, [{"context": "  ", "qas": [
        qa("q", "Why?", [{"text": "x", "answer_start": 0}])]}])
    with pytest.raises(BadRecordError, match=r"question id 'q': answer 'x' does not occur"):
        read_squad(path)


@pytest.mark.parametrize("data, where", [
    (["an article"], r"data\[0\]: expected an object, found str"),
    ([{"paragraphs": [{"context": None, "qas": []}]}],
     r"data\[0\].paragraphs\[0\].context: expected a string, found NoneType"),
    ([{"paragraphs": [{"context": "c", "qas": ["q"]}]}],
     r"data\[0\].paragraphs\[0\].qas: expected a list of objects"),
    # A missing or misspelt key would drop questions or train on an empty text.
    ([{"paragraphs": [{"qas": []}]}],
     r"data\[0\].paragraphs\[0\]: no 'context' key \(found \['qas'\]\)"),
    ([{"paragraphs": [{"context": "c", "qa": []}]}],
     r"data\[0\].paragraphs\[0\]: no 'qas' key \(found \['context', 'qa'\]\)"),
    ([{"paragraph": []}], r"data\[0\]: no 'paragraphs' key"),
])
def test_a_file_of_another_shape_is_an_error_naming_where(tmp_path, data, where):
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": data}), encoding="utf-8")
    with pytest.raises(ValueError, match=where):
        read_squad(str(path))


@pytest.mark.parametrize("is_training", [True, False])
@pytest.mark.parametrize("question, error", [
    ({"question": "Who?", "answers": []},
     r"qas\[0\]: expected a non-empty string 'id', found None"),
    (qa("", "Who?", []), r"qas\[0\]: expected a non-empty string 'id', found ''"),
    (qa("q", "Who?", {"text": "Paris", "answer_start": 0}),
     r"qas\[0\] \(id 'q'\).answers: expected a list of objects"),
    (qa("q", "Who?", ["Paris"]), r"qas\[0\] \(id 'q'\).answers: expected a list of objects"),
    (qa("q", "Who?", [{"text": 5, "answer_start": 0}]),
     r"qas\[0\] \(id 'q'\).answers\[0\].text: expected a string, found int"),
    (qa("q", "Who?", [], is_impossible="false"),
     r"qas\[0\] \(id 'q'\): 'is_impossible' must be true or false, found 'false'"),
    (qa("q", ["Who?"], []), r"qas\[0\] \(id 'q'\): 'question' must be a string, found list"),
    ({"id": "q", "answers": []}, r"qas\[0\] \(id 'q'\): no 'question' key"),
])
def test_a_malformed_question_is_an_error_naming_it(tmp_path, question, error, is_training):
    path = write_squad(tmp_path, [{"context": "Paris is in France.", "qas": [question]}])
    with pytest.raises(ValueError, match=r"train.json: data\[0\].paragraphs\[0\]." + error):
        read_squad(path, version_2_with_negative=True, is_training=is_training)


def test_evaluation_questions_need_unique_ids_as_their_scores_are_keyed_by_id(tmp_path):
    answers = [{"text": "Paris", "answer_start": 0}]
    path = write_squad(tmp_path, [
        {"context": "Paris is in France.", "qas": [qa("q1", "Who?", answers)]},
        {"context": "Paris is big.",
         "qas": [qa(7, "What?", answers), qa("q1", "Where?", answers)]}])
    with pytest.raises(ValueError, match=r"data\[0\].paragraphs\[1\].qas\[1\]: question id "
                       r"'q1' is also the id of data\[0\].paragraphs\[0\].qas\[0\]"):
        read_squad(path, is_training=False)
    assert [e.question_id for e in read_squad(path).examples] == ["q1", "7", "q1"]


def test_unanswerable_questions_need_version_2(tmp_path):
    path = write_squad(tmp_path, [{"context": "Paris is in France.", "qas": [
        qa("q", "Who?", [], is_impossible=True)]}])
    with pytest.raises(BadRecordError, match="is_impossible is set"):
        read_squad(path)
    (example,) = read_squad(path, version_2_with_negative=True).examples
    assert example.is_impossible and example.answers == [] and example.start_word == -1


def test_real_cmrc_trial_set_trains_on_every_question_despite_off_by_one_offsets(shared_data):
    path = str(shared_data / "qa/cmrc2018/cmrc2018_trial.json")
    squad = read_squad(path)  # 5 answer_start values are off by one, 2 questions are empty
    assert len(squad.examples) == 1002 and squad.skipped_records == 0
    assert answer_text(squad.examples[0]) == squad.examples[0].answers[0] == "踢爆"
    (off_by_one,) = [e for e in squad.examples if e.question_id == "TRIAL_210_QUERY_0"]
    assert answer_text(off_by_one) == off_by_one.answers[0] == "俗名龙尖"
    assert len(read_squad(path, is_training=False).examples) == 1002


def test_long_contexts_become_doc_stride_windows_labelled_with_the_answer(tmp_path, uncased_vocab):
    from keras_bert_impl.text.tokenizer import BertTokenizer

    tokenizer = BertTokenizer(uncased_vocab)
    context = " ".join(f"w{i}" for i in range(30)) + " the answer is paris ."
    start = context.index("paris")
    path = write_squad(tmp_path, [{"context": context, "qas": [
        qa("q", "where?", [{"text": "paris", "answer_start": start}])]}])
    examples = read_squad(path)
    features = squad_features(examples, tokenizer, seq_length=24, doc_stride=8,
                              max_query_length=4)
    assert len(features.example_index) > 2
    ids = features.inputs["input_word_ids"]
    found = 0
    for row in range(len(ids)):
        s, e = features.start_positions[row], features.end_positions[row]
        if s == 0:
            assert e == 0  # [CLS]: the answer is not (wholly) in this window
            continue
        found += 1
        assert tokenizer.id_to_token(ids[row, s:e + 1]).numpy().tolist() == [b"paris"]
        assert features.inputs["input_type_ids"][row, s] == 1
    assert found >= 1
    # Every context token is the max-context token of exactly one window.
    words = features.token_to_word
    owners = {}
    for row in range(len(ids)):
        for col in np.flatnonzero(features.max_context[row]):
            owners.setdefault(words[row, col], []).append(row)
    assert all(len(rows) >= 1 for rows in owners.values())


def test_decoding_recovers_an_answer_from_its_logits(tmp_path, uncased_vocab):
    from keras_bert_impl.metrics.squad_decoding import decode_answers
    from keras_bert_impl.text.tokenizer import BertTokenizer

    context = "The Eiffel Tower is in Paris, France."
    path = write_squad(tmp_path, [{"context": context, "qas": [
        qa("q", "Where is it?", [{"text": "Paris, France", "answer_start": 23}])]}])
    examples = read_squad(path)
    features = squad_features(examples, BertTokenizer(uncased_vocab), seq_length=32)
    starts = np.zeros((1, 32))
    ends = np.zeros((1, 32))
    starts[0, features.start_positions[0]] = 3.0
    ends[0, features.end_positions[0]] = 2.0
    predictions, nbest = decode_answers(examples, features, starts, ends)
    assert predictions == {"q": "Paris, France"}  # the context's own text and spacing
    assert nbest["q"][0].score == 5.0
    # Too long for max_answer_length=2 tokens: the best span is something else.
    short, _ = decode_answers(examples, features, starts, ends, max_answer_length=2)
    assert short["q"] != "Paris, France"


@pytest.mark.parametrize("context, answer, expected", [
    ("Johnsonville sausages were first made in 1945.", "Johnson", "Johnson"),
    ("Johnsonville sausages were first made in 1945.", "sausage", "sausage"),
    # A decomposed accent: the pieces do not spell the word, so the answer is the whole word.
    ("Cafe\u0301ville sausages were first made in 1945.", "Cafe\u0301", "Cafe\u0301ville")])
def test_a_predicted_span_inside_a_word_is_cut_at_its_wordpieces_as_get_final_text(
        tmp_path, uncased_vocab, context, answer, expected):
    from keras_bert_impl.metrics.squad_decoding import decode_answers
    from keras_bert_impl.text.tokenizer import BertTokenizer

    path = write_squad(tmp_path, [{"context": context, "qas": [
        qa("q", "What?", [{"text": answer, "answer_start": context.index(answer)}])]}])
    examples = read_squad(path)
    features = squad_features(examples, BertTokenizer(uncased_vocab), seq_length=32)
    starts, ends = np.zeros((1, 32)), np.zeros((1, 32))
    starts[0, features.start_positions[0]] = ends[0, features.end_positions[0]] = 5.0
    predictions, nbest = decode_answers(examples, features, starts, ends)
    assert predictions == {"q": expected}
    assert context[nbest["q"][0].start_char:nbest["q"][0].end_char] == expected


def test_version_2_predicts_no_answer_when_cls_scores_higher(tmp_path, uncased_vocab):
    from keras_bert_impl.metrics.squad_decoding import decode_answers
    from keras_bert_impl.text.tokenizer import BertTokenizer

    path = write_squad(tmp_path, [{"context": "Paris is in France.", "qas": [
        qa("q", "Who?", [], is_impossible=True)]}])
    examples = read_squad(path, version_2_with_negative=True)
    features = squad_features(examples, BertTokenizer(uncased_vocab), seq_length=16)
    starts, ends = np.zeros((1, 16)), np.zeros((1, 16))
    starts[0, 0] = ends[0, 0] = 4.0
    starts[0, 6] = ends[0, 6] = 1.0
    predictions, _ = decode_answers(examples, features, starts, ends,
                                    version_2_with_negative=True)
    assert predictions == {"q": ""}


def test_cmrc_metric_scores_chinese_answers_by_character_where_squad_f1_sees_one_token():
    from keras_bert_impl.metrics.squad import f1_score
    from keras_bert_impl.metrics.squad_cmrc import (
        cmrc_exact_match,
        cmrc_f1,
        cmrc_scores,
        mixed_segmentation,
    )

    assert f1_score("北京大", "北京大学") == 0.0  # no spaces: one token each
    assert cmrc_f1("北京大", "北京大学") == pytest.approx(2 * 1 * 0.75 / 1.75)
    # The longest common run, not a subsequence: 北/大/京 against 北/京/大/学 shares one.
    assert cmrc_f1("北大京", "北京大学") == pytest.approx(2 / 7)
    assert cmrc_f1("上海", "北京") == 0.0
    assert mixed_segmentation("1994年由Kim Jung-ju创立。") == [
        "1994", "年", "由", "kim", "jungju", "创", "立"]
    # Numbers stay whole, as nltk.word_tokenize in the official script keeps them.
    assert mixed_segmentation("3.5亿元") == ["3.5", "亿", "元"]
    assert cmrc_f1("3.5亿", "3.5亿元") == pytest.approx(0.8)
    assert cmrc_f1("000米", "1,000米") == pytest.approx(0.5)
    assert cmrc_exact_match("《红楼梦》", "红楼梦") == 1.0
    assert cmrc_exact_match("Kim Jung-ju", "kim jungju") == 1.0
    assert cmrc_exact_match("红楼", "红楼梦") == 0.0
    scores = cmrc_scores({"a": ["红楼梦", "《红楼梦》"], "b": ["北京大学"], "c": ["上海"]},
                         {"a": "红楼梦", "b": "北京大"})
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 * 0.75 / 1.75) / 3)
