"""CMRC 2018 evaluation: exact match and F1 over Chinese characters.

The official SQuAD F1 splits answers at whitespace, so a Chinese answer
(no spaces) is one token and F1 collapses to exact match. The CMRC 2018
script (`cmrc2018_evaluate.py`) instead lower-cases, drops its list of
punctuation marks, segments "mixed" text into one token per Chinese
character and one per other word, and scores the longest common
*substring* of the token lists. Other words are split by nltk's Treebank
word tokenizer, as the official `nltk.word_tokenize` splits them ("3.5" and
"1,000" stay whole); its sentence splitting first, which needs the punkt
model, is left out, as the runs between Chinese characters in an answer are
short. Scores are percentages.
"""

import re
from collections.abc import Mapping, Sequence

from nltk.tokenize import NLTKWordTokenizer

from keras_bert_impl.metrics.squad import best_over_gold_scores, overlap_f1

# The official list; its two-character "……" never equals one character, so "…" is kept.
_CMRC_PUNCTUATION = frozenset("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』")
_CHINESE = re.compile(r"[\u4e00-\u9fa5]")
_OTHER_WORDS = NLTKWordTokenizer()


def mixed_segmentation(text: str) -> list[str]:
    """Lower-cased tokens without punctuation: each Chinese character alone, other words whole.

    >>> mixed_segmentation("1994年由Kim Jung-ju创立。")
    ['1994', '年', '由', 'kim', 'jungju', '创', '立']
    """
    tokens, run = [], []
    for char in text.lower().strip():
        if char in _CMRC_PUNCTUATION:
            continue
        if _CHINESE.match(char):
            tokens.extend(_OTHER_WORDS.tokenize("".join(run)))
            run = []
            tokens.append(char)
        else:
            run.append(char)
    tokens.extend(_OTHER_WORDS.tokenize("".join(run)))
    return tokens


def _without_punctuation(text: str) -> str:
    return "".join(char for char in text.lower().strip() if char not in _CMRC_PUNCTUATION)


def _longest_common_substring(first: list[str], second: list[str]) -> int:
    best = 0
    previous = [0] * (len(second) + 1)
    for a in first:
        current = [0] * (len(second) + 1)
        for j, b in enumerate(second):
            if a == b:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc_f1(prediction: str, ground_truth: str) -> float:
    """F1 of the longest common run of mixed-segmentation tokens (0 when none is shared)."""
    prediction_tokens = mixed_segmentation(prediction)
    truth_tokens = mixed_segmentation(ground_truth)
    common = _longest_common_substring(truth_tokens, prediction_tokens)
    return overlap_f1(common, len(prediction_tokens), len(truth_tokens))


def cmrc_exact_match(prediction: str, ground_truth: str) -> float:
    """1.0 when the texts are equal after lower-casing and dropping punctuation."""
    return float(_without_punctuation(prediction) == _without_punctuation(ground_truth))


def cmrc_scores(
    gold_answers: Mapping[str, Sequence[str]], predictions: Mapping[str, str]
) -> dict[str, float]:
    """`exact_match` and `f1` in percent, each the max over a question's gold answers.

    A question missing from `predictions` scores 0, as in the official script.

    >>> cmrc_scores({"q1": ["北京大学"]}, {"q1": "北京大"})
    {'exact_match': 0.0, 'f1': 85.71428571428571}
    """
    return best_over_gold_scores(gold_answers, predictions, cmrc_exact_match, cmrc_f1)
