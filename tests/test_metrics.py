"""Task metrics against hand-computed cases: accuracy/F1, conlleval entities, official SQuAD."""

import numpy as np
import pytest

from keras_bert_impl.metrics import classification, ner, squad


def test_accuracy_is_the_fraction_of_correct_predictions():
    assert classification.accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75


def test_f1_is_for_the_positive_class():
    # tp = 1, predicted positives = 1, actual positives = 2 -> 2*1/(1+2)
    assert classification.f1([0, 1, 1, 0], [0, 1, 0, 0]) == pytest.approx(2 / 3)
    assert classification.f1([0, 1, 1, 0], [0, 1, 0, 0], positive=0) == pytest.approx(0.8)


def test_f1_without_positives_anywhere_is_zero():
    assert classification.f1([0, 0], [0, 0]) == 0.0


def test_matthews_correlation_as_glue_scores_cola():
    # tp=2 tn=1 fp=1 fn=1: (2*1 - 1*1) / sqrt(3*3*2*2)
    assert classification.matthews_correlation([1, 1, 1, 0, 0], [1, 1, 0, 1, 0]) == (
        pytest.approx(1 / 6))
    assert classification.matthews_correlation([0, 1, 2, 0], [0, 1, 2, 0]) == 1.0
    assert classification.matthews_correlation([0, 1, 0, 1], [1, 0, 1, 0]) == -1.0
    # Three classes, Gorodkin's form: (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2))
    assert classification.matthews_correlation([0, 0, 1, 2], [0, 1, 1, 1]) == pytest.approx(
        (2 * 4 - (1 * 2 + 3 * 1 + 0 * 1)) / np.sqrt((16 - 10) * (16 - 6)))


def test_matthews_correlation_of_a_single_class_is_zero_where_undefined():
    assert classification.matthews_correlation([1, 0, 1], [1, 1, 1]) == 0.0
    assert classification.matthews_correlation([1, 1], [1, 1]) == 0.0


def test_classification_metrics_reject_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        classification.accuracy([0, 1], [0])


def test_iob2_entities_start_at_b():
    assert ner.get_entities(["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]) == [
        ("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4)]


def test_iob1_i_after_o_or_another_type_opens_an_entity():
    assert ner.get_entities(["O", "I-LOC", "I-LOC"]) == [("LOC", 1, 2)]
    assert ner.get_entities(["I-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]
    # In IOB1, B- only separates two adjacent entities of the same type.
    assert ner.get_entities(["I-PER", "I-PER", "B-PER"]) == [("PER", 0, 1), ("PER", 2, 2)]


def test_i_of_another_type_after_b_is_a_new_entity_as_conlleval():
    assert ner.get_entities(["B-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]


def test_iobes_tags_are_scored_like_conlleval():
    assert ner.get_entities(["S-PER", "B-LOC", "E-LOC", "O"]) == [("PER", 0, 0), ("LOC", 1, 2)]


def test_entity_scores_are_micro_averaged_over_sentences():
    truth = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    prediction = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "B-MISC"]]
    # correct: PER, ORG = 2; found: PER, ORG, ORG, MISC = 4; expected: PER, LOC, ORG = 3
    scores = ner.entity_scores(truth, prediction)
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_an_entity_with_a_wrong_boundary_is_wrong():
    scores = ner.entity_scores([["B-PER", "I-PER"]], [["B-PER", "O"]])
    assert scores == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_entity_scores_reject_sentences_of_different_lengths():
    with pytest.raises(ValueError, match="sentence 0: 2 true tags but 1 predicted"):
        ner.entity_scores([["O", "O"]], [["O"]])


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The Cat", "cat"),                      # case and a leading article
        ("an apple, a pear", "apple pear"),      # articles and punctuation
        ("theater anatomy", "theater anatomy"),  # articles only as whole words
        ("A-B", "ab"),                           # punctuation removed, not spaced
        ("  Hello\tWorld\n", "hello world"),     # whitespace collapsed
        ("the the the", ""),
        ("踢爆。", "踢爆。"),                    # non-ASCII punctuation is kept
    ],
)
def test_official_normalisation(text, normalized):
    assert squad.normalize_answer(text) == normalized


def test_token_f1_counts_overlapping_normalised_tokens():
    # pred [cat, sat], truth [cat, sat, on, mat]: precision 1, recall 1/2
    assert squad.f1_score("the cat sat", "Cat sat on a mat") == pytest.approx(2 / 3)
    assert squad.f1_score("dog", "cat") == 0.0


def test_scores_take_the_best_gold_answer_and_are_percentages():
    gold = {"q1": ["Denver Broncos", "The Broncos"], "q2": ["Carolina"]}
    scores = squad.squad_scores(gold, {"q1": "broncos", "q2": "Carolina Panthers"})
    # q1: "The Broncos" normalises to "broncos": EM 1, F1 1;
    # q2: EM 0, F1 2*(1/2*1)/(1/2+1) = 2/3
    assert scores["exact_match"] == 50.0
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_unanswerable_questions_are_right_only_with_an_empty_answer():
    gold = {"q1": [], "q2": []}
    assert squad.squad_scores(gold, {"q1": "", "q2": "something"},
                              version_2_with_negative=True) == {
        "exact_match": 50.0, "f1": 50.0}


@pytest.mark.parametrize("gold, prediction, v1, v2", [
    # (EM, F1) of the official evaluate-v1.1.py and evaluate-v2.0.py
    (["the"], "a", (100.0, 0.0), (100.0, 100.0)),
    (["the", "Paris"], "", (100.0, 0.0), (0.0, 0.0)),
    ([".", "Paris"], "", (100.0, 0.0), (0.0, 0.0)),
    (["Paris"], "paris.", (100.0, 100.0), (100.0, 100.0)),
])
def test_answers_that_normalise_to_nothing_score_as_each_official_script(
        gold, prediction, v1, v2):
    for version_2, expected in ((False, v1), (True, v2)):
        scores = squad.squad_scores({"q": gold}, {"q": prediction},
                                    version_2_with_negative=version_2)
        assert (scores["exact_match"], scores["f1"]) == expected, version_2


def test_a_question_without_prediction_scores_zero_in_v1_and_is_left_out_in_v2():
    gold = {"q1": ["a b"], "q2": ["c"]}
    assert squad.squad_scores(gold, {"q2": "c"}) == {"exact_match": 50.0, "f1": 50.0}
    assert squad.squad_scores(gold, {"q2": "c"}, version_2_with_negative=True) == {
        "exact_match": 100.0, "f1": 100.0}
    with pytest.raises(ValueError, match="none of the questions has a prediction"):
        squad.squad_scores(gold, {"q9": "c"}, version_2_with_negative=True)


def test_accuracy_accepts_numpy_arrays():
    assert classification.accuracy(np.array([[1], [2]]), np.array([1, 2])) == 1.0


def test_token_f1_counts_a_repeated_token_as_often_as_both_answers_hold_it():
    # Official evaluate-v1.1.py: Counter(prediction) & Counter(truth) -> x twice in common.
    # precision 2/3, recall 2/3
    assert squad.f1_score("x x y", "x x z") == pytest.approx(2 / 3)
    # x once in the truth: it is shared once. precision 1/3, recall 1/2
    assert squad.f1_score("x x y", "x z") == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


@pytest.mark.parametrize("tags, entities", [
    # S- is a whole entity: the next tag, whatever it is, starts another.
    (["S-PER", "S-PER"], [("PER", 0, 0), ("PER", 1, 1)]),
    (["S-PER", "B-PER", "E-PER"], [("PER", 0, 0), ("PER", 1, 2)]),
    # B- followed by S- of the same type: two entities, the first one token long.
    (["B-PER", "S-PER"], [("PER", 0, 0), ("PER", 1, 1)]),
    # E- closes an entity; an E- right after one is a one-token entity (IOE).
    (["E-PER", "E-PER"], [("PER", 0, 0), ("PER", 1, 1)]),
    (["I-PER", "E-PER", "E-PER"], [("PER", 0, 1), ("PER", 2, 2)]),
])
def test_iobes_chunks_end_at_s_and_e_tags_even_before_the_same_type(tags, entities):
    assert ner.get_entities(tags) == entities


def test_adjacent_one_token_entities_of_one_type_score_as_separate_entities():
    truth = [["S-LOC", "S-LOC", "O"]]
    assert ner.entity_scores(truth, truth) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    # Merging them into one entity finds neither.
    assert ner.entity_scores(truth, [["B-LOC", "E-LOC", "O"]])["f1"] == 0.0


def test_matthews_correlation_counts_a_class_that_only_the_predictions_hold():
    labels, predictions = [0, 0, 1, 1], [0, 2, 1, 1]
    # Gorodkin over classes {0, 1, 2}: c=3, s=4, t=(2, 2, 0), p=(1, 2, 1)
    expected = (3 * 4 - (2 * 1 + 2 * 2 + 0 * 1)) / np.sqrt((16 - (1 + 4 + 1)) * (16 - (4 + 4)))
    assert classification.matthews_correlation(labels, predictions) == pytest.approx(expected)
