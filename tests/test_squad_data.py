"""SQuAD reader: answers mapped to words, bad records, doc_stride windows."""

import json

import pytest

from keras_bert_impl.data.bad_records import BadRecordError
from keras_bert_impl.data.squad import context_words, read_squad


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


def test_an_answer_that_does_not_match_its_offset_names_the_question(tmp_path):
    path = write_squad(tmp_path, [{"context": "Paris is in France.", "qas": [
        qa("good", "Where?", [{"text": "France", "answer_start": 12}]),
        qa("off-by-one", "Where?", [{"text": "France", "answer_start": 11}])]}])
    with pytest.raises(BadRecordError, match=r"question id 'off-by-one': answer 'France' does not"):
        read_squad(path)
    squad = read_squad(path, skip_bad_records=True)
    assert [e.question_id for e in squad.examples] == ["good"] and squad.skipped_records == 1


def test_an_empty_context_is_a_bad_record(tmp_path):
    path = write_squad(tmp_path, [{"context": "  ", "qas": [qa("q", "Why?", [])]}])
    with pytest.raises(BadRecordError, match=r"question id 'q': the context is empty"):
        read_squad(path)


def test_unanswerable_questions_need_version_2(tmp_path):
    path = write_squad(tmp_path, [{"context": "Paris is in France.", "qas": [
        qa("q", "Who?", [], is_impossible=True)]}])
    with pytest.raises(BadRecordError, match="is_impossible is set"):
        read_squad(path)
    (example,) = read_squad(path, version_2_with_negative=True).examples
    assert example.is_impossible and example.answers == [] and example.start_word == -1


def test_real_cmrc_trial_set_has_a_few_mismatched_offsets(shared_data):
    path = str(shared_data / "qa/cmrc2018/cmrc2018_trial.json")
    with pytest.raises(BadRecordError, match="TRIAL_210_QUERY_0"):
        read_squad(path)
    squad = read_squad(path, skip_bad_records=True)
    assert len(squad.examples) + squad.skipped_records == 1002
    example = squad.examples[0]
    span = example.context[example.word_spans[example.start_word][0]:
                           example.word_spans[example.end_word][1]]
    assert span == example.answers[0] == "踢爆"
