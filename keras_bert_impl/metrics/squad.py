"""SQuAD evaluation: the official v1.1/v2.0 exact match and token F1.

The normalisation is the official script's: lower-case, drop punctuation,
drop the articles a/an/the, collapse whitespace. Scores are percentages, as
the official script prints them. The two scripts differ where an answer
normalises to nothing ("the", "."): v1.1 scores such a pair F1 0, v2.0 drops
such gold answers and scores empty against empty as a match. For v2.0 a
question with no gold answer is scored against the empty string, so
predicting "" is the right answer there.
"""

import collections
import functools
import re
import string
from collections.abc import Callable, Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official normalisation: lower, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, ground_truth: str) -> float:
    """1.0 when the normalised texts are equal."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str, *, empty_matches_empty: bool = True) -> float:
    """Token-overlap F1 of the normalised texts. An empty side scores equality, as
    v2.0's script; with `empty_matches_empty=False` it scores 0, as v1.1's."""
    prediction_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    if not prediction_tokens or not truth_tokens:
        return float(empty_matches_empty and prediction_tokens == truth_tokens)
    common = collections.Counter(prediction_tokens) & collections.Counter(truth_tokens)
    return overlap_f1(sum(common.values()), len(prediction_tokens), len(truth_tokens))


def overlap_f1(common: int, prediction_length: int, truth_length: int) -> float:
    """F1 of a prediction and a gold answer, token lists sharing `common` tokens (0 when none)."""
    if common == 0:
        return 0.0
    precision = common / prediction_length
    recall = common / truth_length
    return 2 * precision * recall / (precision + recall)


def best_over_gold_scores(
    gold_answers: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
    exact_match: Callable[[str, str], float], f1: Callable[[str, str], float],
) -> dict[str, float]:
    """Mean `exact_match` and `f1` in percent, each the max over a question's gold answers.

    A question missing from `predictions`, or with no gold answer, scores 0,
    as in the official v1.1 and CMRC scripts.
    """
    if not gold_answers:
        raise ValueError("no questions to score: the evaluation set is empty")
    exact = total_f1 = 0.0
    for question_id, answers in gold_answers.items():
        prediction = predictions.get(question_id)
        if prediction is None or not answers:
            continue
        exact += max(exact_match(prediction, truth) for truth in answers)
        total_f1 += max(f1(prediction, truth) for truth in answers)
    count = len(gold_answers)
    return {"exact_match": 100.0 * exact / count, "f1": 100.0 * total_f1 / count}


def squad_scores(
    gold_answers: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
    version_2_with_negative: bool = False,
) -> dict[str, float]:
    """`exact_match` and `f1` in percent, each the max over a question's gold answers,
    as the official v1.1 script (or v2.0's with `version_2_with_negative`) scores them.

    `gold_answers` maps question id to its answer texts (empty for a v2.0
    unanswerable question). A question missing from `predictions` scores 0 in
    v1.1 and is left out in v2.0, as each official script does.

    >>> squad_scores({"q1": ["the Eiffel Tower"]}, {"q1": "Eiffel tower."})
    {'exact_match': 100.0, 'f1': 100.0}
    """
    if version_2_with_negative:
        gold_answers = {question_id: [a for a in answers if normalize_answer(a)]
                        for question_id, answers in gold_answers.items()
                        if question_id in predictions}
        if not gold_answers:
            raise ValueError("none of the questions has a prediction to score")
    with_empty_answer = {question_id: list(answers) or [""]
                         for question_id, answers in gold_answers.items()}
    return best_over_gold_scores(
        with_empty_answer, predictions, exact_match_score,
        functools.partial(f1_score, empty_matches_empty=version_2_with_negative))
