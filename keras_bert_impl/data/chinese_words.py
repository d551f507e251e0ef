"""Chinese word boundaries for whole-word masking, found with jieba.

WordPiece marks no word boundary between Chinese characters (each is its own
token), so whole-word masking needs a segmenter. Runs of Han characters are
cut into words by jieba (the optional extra ``zh``); the text between them is
left whole and its words come from the tokenizer as usual. Splitting only at
Han runs keeps the token ids identical to tokenizing the whole line, since the
tokenizer already splits around every Han character. Without jieba each
character is its own word.

This step runs as a ``tf.numpy_function`` (jieba is Python) and only on
documents that contain Han characters.
"""

from __future__ import annotations

import atexit
import logging
import re
import time
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from keras_bert_impl.text.basic_tokenization import CJK_CHARACTERS as _HAN_CLASS

if TYPE_CHECKING:
    from keras_bert_impl.text.tokenizer import BertTokenizer

_HAN_RUN = re.compile(f"([{_HAN_CLASS}]+)")
HAN_PATTERN = f".*[{_HAN_CLASS}].*"


def jieba_available() -> bool:
    try:
        import jieba  # noqa: F401
    except ImportError:
        return False
    return True


class _Shutdown:
    """Lets a pipeline still running at interpreter exit finish its jieba calls.

    Python stops threads that ask for the GIL once it finalizes, and an
    iterator deleted then waits forever for the call such a thread was making.
    At exit the calls turn trivial, and the exit waits until none has run for
    a moment, so none is left in flight when the iterator goes.
    """

    def __init__(self):
        self.exiting = False
        self.last_call = 0.0
        self._registered = False

    def register(self):
        if not self._registered:
            self._registered = True
            atexit.register(self.drain)

    def drain(self, quiet_for: float = 0.5, at_most: float = 10.0):
        self.exiting = True
        deadline = time.monotonic() + at_most
        while time.monotonic() < deadline and time.monotonic() - self.last_call < quiet_for:
            time.sleep(0.05)


_SHUTDOWN = _Shutdown()


def _segment(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _SHUTDOWN.last_call = time.monotonic()
    if _SHUTDOWN.exiting:  # nobody reads these any more
        return (lines.astype(object).reshape([-1]), np.ones(len(lines), np.int64),
                np.zeros(len(lines), bool))
    import jieba

    jieba.setLogLevel(logging.WARNING)
    segments, counts, is_han = [], [], []
    for raw in lines:
        line = raw.decode("utf-8", "ignore")
        count = 0
        for part in _HAN_RUN.split(line):
            if not part:
                continue
            han = bool(_HAN_RUN.fullmatch(part))
            words = jieba.lcut(part) if han else [part]
            segments.extend(word.encode("utf-8") for word in words)
            is_han.extend([han] * len(words))
            count += len(words)
        counts.append(count)
    return (np.array(segments, dtype=object).reshape([-1]),
            np.array(counts, dtype=np.int64),
            np.array(is_han, dtype=bool))


def tokenize_with_jieba_words(lines: tf.Tensor,
                              tokenizer: BertTokenizer) -> tuple[tf.Tensor, tf.Tensor]:
    """Tokens of ``lines`` and a word-start flag per token, jieba words for Han.

    Returns ``tokens`` (int32 RaggedTensor [lines, (tokens)]) and
    ``word_starts`` (int32 [all tokens], aligned with ``tokens.flat_values``).
    """
    _SHUTDOWN.register()
    segments, counts, is_han = tf.numpy_function(
        _segment, [lines], [tf.string, tf.int64, tf.bool], stateful=False)
    segments.set_shape([None])
    counts.set_shape([None])
    is_han.set_shape([None])
    words = tokenizer.tokenize_words(segments)  # [segments, (words), (pieces)]
    pieces_per_word = words.values.row_lengths()
    first_piece = tf.equal(tf.ragged.range(pieces_per_word).flat_values, 0)
    word_in_segment = tf.repeat(tf.ragged.range(words.row_lengths()).flat_values,
                                pieces_per_word)
    han_piece = tf.repeat(tf.repeat(is_han, words.row_lengths()), pieces_per_word)
    word_starts = tf.logical_and(
        first_piece, tf.logical_or(tf.logical_not(han_piece), tf.equal(word_in_segment, 0)))
    tokens = tf.RaggedTensor.from_row_lengths(words.merge_dims(1, 2), counts).merge_dims(1, 2)
    return tokens, tf.cast(word_starts, tf.int32)
