"""SQuAD examples as encoder inputs: `[CLS] question [SEP] window [SEP]` for each
doc_stride window, with answer labels and each token's word and characters.

As the original `run_squad.py`: words are mapped to wordpieces, the answer to
its tightest wordpiece span, and long contexts cut into overlapping windows of
`seq_length` tokens moving by `doc_stride`; a token is decoded from the window
that gives it the most context.
"""

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from keras_bert_impl.data.squad import SquadExamples

if TYPE_CHECKING:
    from keras_bert_impl.text.tokenizer import BertTokenizer

_UNK = "[UNK]"


@dataclasses.dataclass
class SquadFeatures:
    """Encoder inputs for every window, and how to map its tokens back to words.

    `token_to_word` [n, seq] is the context word of each token (-1 for the
    question, special tokens and padding); `token_chars` [n, seq, 2] its
    [start, end) characters in the context (see `piece_char_spans`);
    `max_context` marks tokens whose window gives them the most context on
    both sides (the window the original decodes them from).
    """

    inputs: dict[str, np.ndarray]
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray
    token_to_word: np.ndarray
    max_context: np.ndarray
    token_chars: np.ndarray


def squad_features(
    examples: SquadExamples,
    tokenizer: "BertTokenizer",
    seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
) -> SquadFeatures:
    """`[CLS] question [SEP] window [SEP]` for each doc_stride window of each example.

    A window that does not contain the answer (or any window of an
    unanswerable question) is labelled with start = end = 0, the [CLS]
    token, as in the original.
    """
    items = examples.examples
    questions = _tokenize(tokenizer, [example.question for example in items])
    words = [example.context[s:e] for example in items for s, e in example.word_spans]
    word_pieces = _tokenize(tokenizer, words)
    answers = _tokenize(tokenizer, [example.answers[0] if example.answers else ""
                                    for example in items])
    features = {name: [] for name in ("ids", "types", "mask", "start", "end", "example",
                                      "token_to_word", "max_context", "token_chars")}
    word_offset = 0
    for index, example in enumerate(items):
        query = questions[index][:max_query_length]
        pieces, piece_to_word, word_to_piece, piece_chars = [], [], [], []
        for word, (word_start, word_end) in enumerate(example.word_spans):
            word_to_piece.append(len(pieces))
            ids = word_pieces[word_offset + word]
            for piece, (start, end) in zip(ids, piece_char_spans(
                    [tokenizer.vocab[i] for i in ids], word_end - word_start)):
                pieces.append(piece)
                piece_to_word.append(word)
                piece_chars.append((word_start + start, word_start + end))
        word_offset += len(example.word_spans)
        answer_start = answer_end = None
        if example.start_word >= 0:
            answer_start = word_to_piece[example.start_word]
            answer_end = (word_to_piece[example.end_word + 1] - 1
                          if example.end_word + 1 < len(word_to_piece) else len(pieces) - 1)
            answer_start, answer_end = _improve_answer_span(
                pieces, answer_start, answer_end, answers[index])
        max_tokens = seq_length - len(query) - 3
        if max_tokens < 1:
            raise ValueError(f"seq_length={seq_length} leaves no room for the context after a "
                             f"{len(query)}-token question; lower --max_query_length")
        spans = _doc_spans(len(pieces), max_tokens, doc_stride)
        for span_index, (span_start, span_length) in enumerate(spans):
            ids = [tokenizer.cls_id] + query + [tokenizer.sep_id]
            types = [0] * len(ids)
            token_to_word = [-1] * len(ids)
            max_context = [False] * len(ids)
            token_chars = [(-1, -1)] * len(ids)
            for i in range(span_length):
                position = span_start + i
                ids.append(pieces[position])
                types.append(1)
                token_to_word.append(piece_to_word[position])
                max_context.append(_is_max_context(spans, span_index, position))
                token_chars.append(piece_chars[position])
            ids.append(tokenizer.sep_id)
            types.append(1)
            token_to_word.append(-1)
            max_context.append(False)
            token_chars.append((-1, -1))
            start = end = 0
            if answer_start is not None:
                span_end = span_start + span_length - 1
                if span_start <= answer_start and answer_end <= span_end:
                    offset = len(query) + 2 - span_start
                    start, end = answer_start + offset, answer_end + offset
            padding = seq_length - len(ids)
            features["ids"].append(ids + [0] * padding)
            features["types"].append(types + [0] * padding)
            features["mask"].append([1] * len(ids) + [0] * padding)
            features["token_to_word"].append(token_to_word + [-1] * padding)
            features["max_context"].append(max_context + [False] * padding)
            features["token_chars"].append(token_chars + [(-1, -1)] * padding)
            features["start"].append(start)
            features["end"].append(end)
            features["example"].append(index)
    return SquadFeatures(
        inputs={
            "input_word_ids": np.array(features["ids"], np.int32).reshape(-1, seq_length),
            "input_mask": np.array(features["mask"], np.int32).reshape(-1, seq_length),
            "input_type_ids": np.array(features["types"], np.int32).reshape(-1, seq_length),
        },
        start_positions=np.array(features["start"], np.int32),
        end_positions=np.array(features["end"], np.int32),
        example_index=np.array(features["example"], np.int32),
        token_to_word=np.array(features["token_to_word"], np.int32).reshape(-1, seq_length),
        max_context=np.array(features["max_context"], bool).reshape(-1, seq_length),
        token_chars=np.array(features["token_chars"], np.int32).reshape(-1, seq_length, 2),
    )


def piece_char_spans(pieces: list[str], word_length: int) -> list[tuple[int, int]]:
    """[start, end) characters of each wordpiece within its word of `word_length` characters.

    Where the pieces spell the word character for character (lower-casing and
    accent stripping keep most words' lengths), each piece gets its own
    characters, so an answer may start or end inside a word as the original's
    `get_final_text` allows; otherwise (an [UNK], a decomposed accent) every
    piece spans the whole word.
    """
    lengths = [len(piece[2:] if i and piece.startswith("##") else piece)
               for i, piece in enumerate(pieces)]
    if _UNK in pieces or sum(lengths) != word_length:
        return [(0, word_length)] * len(pieces)
    ends = np.cumsum(lengths).tolist()
    return [(end - length, end) for end, length in zip(ends, lengths)]


def _tokenize(tokenizer, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer.tokenize(tf.constant(texts, dtype=tf.string)).to_list()


def _doc_spans(num_pieces: int, max_tokens: int, doc_stride: int) -> list[tuple[int, int]]:
    spans, start = [], 0
    while start < num_pieces:
        length = min(num_pieces - start, max_tokens)
        spans.append((start, length))
        if start + length == num_pieces:
            break
        start += min(length, doc_stride)
    return spans or [(0, 0)]


def _improve_answer_span(pieces, start, end, answer_pieces):
    """The tightest piece span equal to the tokenized answer, as the original does."""
    for new_start in range(start, end + 1):
        for new_end in range(end, new_start - 1, -1):
            if pieces[new_start:new_end + 1] == answer_pieces:
                return new_start, new_end
    return start, end


def _is_max_context(spans, span_index, position) -> bool:
    best_score, best_index = None, None
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best_index = score, index
    return best_index == span_index


def squad_dataset(
    features: SquadFeatures, batch_size: int, shuffle: bool = False, repeat: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of (inputs, {"start_logits": start, "end_logits": end}) for `model.fit`."""
    targets = {"start_logits": features.start_positions, "end_logits": features.end_positions}
    dataset = tf.data.Dataset.from_tensor_slices((features.inputs, targets))
    if shuffle:
        dataset = dataset.shuffle(len(features.start_positions), seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
