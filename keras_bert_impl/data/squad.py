"""SQuAD v1.1/v2.0 JSON: questions over contexts, with answers mapped to words.

As the original `run_squad.py`, a context is split into words with each word's
character span kept (`char_to_word_offset`), answers are mapped from character
offsets to words (`squad_windows` goes on to wordpieces and doc_stride
windows). Words break at whitespace and, as BERT's basic tokenizer does
anyway, around each punctuation mark and CJK character, so answers inside
Chinese text (which has no spaces) map to their own characters.
"""

import dataclasses
import json
import re
import unicodedata

import numpy as np

from keras_bert_impl.data.bad_records import LONE_SURROGATE, BadRecords, lone_surrogate
from keras_bert_impl.data.text_files import read_utf8
from keras_bert_impl.text.basic_tokenization import CJK_CHARACTERS


@dataclasses.dataclass
class SquadExample:
    """One question with its context, context words and answers.

    `word_spans[i]` is the [start, end) character span of word i in
    `context`; `start_word`/`end_word` locate the first answer (-1 when the
    question has none, i.e. a v2.0 unanswerable question, and in evaluation
    data, which label no span).
    """

    question_id: str
    question: str
    context: str
    word_spans: list[tuple[int, int]]
    answers: list[str]
    start_word: int
    end_word: int
    is_impossible: bool


@dataclasses.dataclass
class SquadExamples:
    examples: list[SquadExample]
    skipped_records: int = 0

    def gold_answers(self) -> dict[str, list[str]]:
        """Question id -> answer texts, what the official evaluation compares with."""
        return {example.question_id: example.answers for example in self.examples}


def read_squad(
    path: str, version_2_with_negative: bool = False, skip_bad_records: bool = False,
    is_training: bool = True,
) -> SquadExamples:
    """Reads a SQuAD-format JSON file (local or any `tf.io.gfile` path, e.g. gs://).

    Training data label the span of the first answer. Its `answer_start`
    may be off (the CMRC 2018 trial set has a few off-by-one offsets): the
    occurrence of its text nearest to `answer_start` is used, much as the
    original's whitespace words and `_improve_answer_span` tolerate it. Bad
    training records, named by question id: an answer text absent from the
    context, an answerable question without answers, or (unless
    `version_2_with_negative`) an `is_impossible` question.

    Evaluation data (`is_training=False`) need only answer texts: every
    question is kept, so it is predicted and scored as the official scripts
    score every question in the file; their ids must be unique. A question
    without an `id`, or with an `is_impossible`, `question` or `answers` of
    another type, is an error naming where it is, in either mode.

    >>> squad = read_squad("cmrc2018_trial.json")
    >>> squad.examples[0].answers
    ['踢爆']
    """
    try:
        document = json.loads(read_utf8(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise ValueError(f"{path}: expected SQuAD JSON, an object with a 'data' list")  # noqa: TRY004
    bad = BadRecords(skip_bad_records)
    examples, places = [], {}
    for a, article in enumerate(document["data"]):
        where = f"{path}: data[{a}]"
        for p, paragraph in enumerate(_objects(article, "paragraphs", where)):
            if "context" not in paragraph:
                raise ValueError(f"{where}.paragraphs[{p}]: no 'context' key (found "
                                 f"{sorted(paragraph)})")
            context = paragraph["context"]
            if not isinstance(context, str):
                raise ValueError(f"{where}.paragraphs[{p}].context: expected a string, found "  # noqa: TRY004
                                 f"{type(context).__name__}")
            word_spans = context_words(context)
            char_to_word = _char_to_word(context, word_spans)
            cut_context = lone_surrogate([context])
            for q, qa in enumerate(_objects(paragraph, "qas", f"{where}.paragraphs[{p}]")):
                place = f"data[{a}].paragraphs[{p}].qas[{q}]"
                fields = _question_fields(qa, f"{path}: {place}")
                texts = [fields.question, *(answer.get("text") for answer in fields.answers)]
                if (cut := cut_context or lone_surrogate(texts)) is not None:
                    bad.report(f"{path}: {place} (id {fields.question_id!r}): "
                               f"{'its context ' if cut_context else ''}{LONE_SURROGATE}{cut}")
                    continue
                if is_training:
                    example = _training_example(path, fields, context, word_spans, char_to_word,
                                                version_2_with_negative, bad)
                else:
                    if fields.question_id in places:  # predictions and scores are keyed by id
                        raise ValueError(f"{path}: {place}: question id {fields.question_id!r} "
                                         f"is also the id of {places[fields.question_id]}")
                    places[fields.question_id] = place
                    example = _evaluation_example(fields, context, word_spans)
                if example is not None:
                    examples.append(example)
    return SquadExamples(examples, bad.skipped)


def _objects(parent, key: str, where: str, required: bool = True) -> list[dict]:
    """`parent[key]`, a list of JSON objects; anything else, or no such key when it is
    `required` (a misspelt "qa" would drop its questions), is an error naming where."""
    if not isinstance(parent, dict):
        raise ValueError(f"{where}: expected an object, found {type(parent).__name__}")  # noqa: TRY004
    if required and key not in parent:
        raise ValueError(f"{where}: no {key!r} key (found {sorted(parent)})")
    items = parent.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError(f"{where}.{key}: expected a list of objects")
    return items


@dataclasses.dataclass(frozen=True)
class _QuestionFields:
    question_id: str
    question: str
    is_impossible: bool
    answers: list[dict]


def _question_fields(qa: dict, where: str) -> _QuestionFields:
    """A `qas` entry's fields, checked: a malformed one is an error naming where."""
    question_id = qa.get("id")
    if isinstance(question_id, int) and not isinstance(question_id, bool):
        question_id = str(question_id)
    if not isinstance(question_id, str) or not question_id:
        raise ValueError(f"{where}: expected a non-empty string 'id', found {question_id!r}")
    where = f"{where} (id {question_id!r})"
    if "question" not in qa:
        raise ValueError(f"{where}: no 'question' key (found {sorted(qa)})")
    question = qa["question"]
    if not isinstance(question, str):
        raise ValueError(f"{where}: 'question' must be a string, found "  # noqa: TRY004
                         f"{type(question).__name__}")
    is_impossible = qa.get("is_impossible", False)
    if not isinstance(is_impossible, bool):
        raise ValueError(f"{where}: 'is_impossible' must be true or false, "  # noqa: TRY004
                         f"found {is_impossible!r}")
    answers = _objects(qa, "answers", where, required=False)
    for index, answer in enumerate(answers):
        if not isinstance(answer.get("text", ""), str):
            raise ValueError(f"{where}.answers[{index}].text: expected a string, found "  # noqa: TRY004
                             f"{type(answer['text']).__name__}")
        if "answer_start" in answer:
            answers[index] = {**answer, "answer_start": _answer_start(
                answer["answer_start"], f"{where}.answers[{index}].answer_start")}
    return _QuestionFields(question_id, question, is_impossible, answers)


def _answer_start(value, where: str) -> int:
    """A character offset as JSON tools write it: 45, 45.0 or "45"; anything else is an error."""
    as_float = isinstance(value, float) and value.is_integer()
    as_text = isinstance(value, str) and value.strip().isascii() and value.strip().isdigit()
    if as_float or as_text:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{where}: expected a character offset (a non-negative integer), "
                         f"found {value!r}")
    return value


def _evaluation_example(fields, context, word_spans):
    answers = [] if fields.is_impossible else [answer.get("text", "") for answer in fields.answers]
    return SquadExample(
        question_id=fields.question_id,
        question=fields.question,
        context=context,
        word_spans=word_spans,
        answers=[text for text in answers if text],
        start_word=-1,
        end_word=-1,
        is_impossible=fields.is_impossible,
    )


def _training_example(path, fields, context, word_spans, char_to_word, version_2, bad):
    question_id, is_impossible = fields.question_id, fields.is_impossible
    where = f"{path}: question id {question_id!r}"
    if is_impossible and not version_2:
        bad.report(f"{where}: is_impossible is set but --version_2_with_negative is not")
        return None
    answers = [] if is_impossible else fields.answers
    if not is_impossible and not answers:
        bad.report(f"{where}: no answers for an answerable question")
        return None
    for index, answer in enumerate(answers):
        if not answer.get("text", "").strip():
            bad.report(f"{where}: answer {index} has no text")
            return None
    start_word = end_word = -1
    if answers:
        if "answer_start" not in answers[0]:
            bad.report(f"{where}: answer 0 has no answer_start")
            return None
        text = answers[0]["text"]
        start = _nearest_occurrence(context, text, answers[0]["answer_start"])
        if start is None:
            bad.report(f"{where}: answer {text!r} does not occur in the context")
            return None
        start_word = char_to_word[start]
        end_word = char_to_word[start + len(text) - 1]
    return SquadExample(
        question_id=question_id,
        question=fields.question,
        context=context,
        word_spans=word_spans,
        answers=[answer["text"] for answer in answers],
        start_word=start_word,
        end_word=end_word,
        is_impossible=is_impossible,
    )


def _nearest_occurrence(context: str, text: str, start: int) -> int | None:
    """Where `text` occurs in `context` nearest to `start` (the earlier on ties), else None."""
    if start >= 0 and context[start:start + len(text)] == text:
        return start
    best = None
    found = context.find(text)
    while found != -1:
        if best is None or abs(found - start) < abs(best - start):
            best = found
        found = context.find(text, found + 1)
    return best


def context_words(context: str) -> list[tuple[int, int]]:
    """[start, end) character spans of the words of `context`.

    >>> context_words("Hi, 北京 now")
    [(0, 2), (2, 3), (4, 5), (5, 6), (7, 10)]
    """
    spans = []
    start = None
    for position, char in enumerate(context):
        if _is_whitespace(char):
            if start is not None:
                spans.append((start, position))
            start = None
        elif _is_punctuation(char) or _is_cjk(char):
            if start is not None:
                spans.append((start, position))
            spans.append((position, position + 1))
            start = None
        elif start is None:
            start = position
    if start is not None:
        spans.append((start, len(context)))
    return spans


def _char_to_word(context, word_spans):
    char_to_word = np.zeros(len(context), dtype=np.int64)
    word = 0
    for position in range(len(context)):
        while word + 1 < len(word_spans) and word_spans[word + 1][0] <= position:
            word += 1
        char_to_word[position] = word
    return char_to_word


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r\u2028\u2029" or unicodedata.category(char) == "Zs"


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


_CJK = re.compile(f"[{CJK_CHARACTERS}]")


def _is_cjk(char: str) -> bool:
    # Called for every character of every context: one compiled match is the quickest.
    return _CJK.match(char) is not None
