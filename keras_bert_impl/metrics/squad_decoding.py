"""From start/end logits to answer texts: the original n-best span decoding.

For every window of a question, the `n_best_size` best start and end tokens
(not padding, a departure from the original that only an untrained model meets)
are paired; pairs outside the context, ending before they start, longer than
`max_answer_length` tokens, or starting at a token better covered by another
window are dropped. The best pair over all windows wins. For SQuAD v2.0 the
[CLS] score (the smallest over windows) is the "no answer" score; the answer
is "" when it beats the best span by more than `null_score_diff_threshold`.
"""

import dataclasses

import numpy as np

from keras_bert_impl.data.squad import SquadExamples
from keras_bert_impl.data.squad_windows import SquadFeatures


@dataclasses.dataclass
class Candidate:
    text: str
    start_char: int
    end_char: int
    score: float


def decode_answers(
    examples: SquadExamples,
    features: SquadFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> tuple[dict[str, str], dict[str, list[Candidate]]]:
    """Returns (question id -> answer text, question id -> its n-best candidates).

    Answer texts are cut from the original context by character offsets, so
    they keep its spelling, case and spacing; a span may start or end inside a
    word, at a wordpiece boundary, as the original's `get_final_text`
    (`squad_windows.piece_char_spans` says when).
    """
    windows_of = {}
    for feature, example in enumerate(features.example_index):
        windows_of.setdefault(int(example), []).append(feature)
    predictions, nbest = {}, {}
    for index, example in enumerate(examples.examples):
        candidates = {}
        null_score = None
        for feature in windows_of.get(index, []):
            starts, ends = start_logits[feature], end_logits[feature]
            token_to_word = features.token_to_word[feature]
            # Padding takes no place among the n best (the original's can): a served
            # export's bucket width would otherwise change its answers.
            padding = features.inputs["input_mask"][feature] == 0
            starts = np.where(padding, -np.inf, starts)
            ends = np.where(padding, -np.inf, ends)
            feature_null = float(starts[0] + ends[0])
            if null_score is None or feature_null < null_score:
                null_score = feature_null
            for start in _top(starts, n_best_size):
                for end in _top(ends, n_best_size):
                    if token_to_word[start] < 0 or token_to_word[end] < 0:
                        continue
                    if not features.max_context[feature, start]:
                        continue
                    if end < start or end - start + 1 > max_answer_length:
                        continue
                    start_char = features.token_chars[feature, start, 0]
                    end_char = features.token_chars[feature, end, 1]
                    score = float(starts[start] + ends[end])
                    key = (int(start_char), int(end_char))
                    if key not in candidates or candidates[key].score < score:
                        candidates[key] = Candidate(
                            example.context[key[0]:key[1]], *key, score)
        ranked = sorted(candidates.values(), key=lambda c: c.score, reverse=True)[:n_best_size]
        best = ranked[0] if ranked else Candidate("", -1, -1, float("-inf"))
        answer = best.text
        if version_2_with_negative and null_score is not None:
            if null_score - best.score > null_score_diff_threshold:
                answer = ""
            ranked = ranked + [Candidate("", -1, -1, null_score)]
            ranked.sort(key=lambda c: c.score, reverse=True)
        predictions[example.question_id] = answer
        nbest[example.question_id] = ranked
    return predictions, nbest


def _top(logits: np.ndarray, count: int) -> np.ndarray:
    return np.argsort(-logits, kind="stable")[:count]
