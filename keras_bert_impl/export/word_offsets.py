"""Words of raw text with their byte offsets, split as the fine-tuning readers split them.

Words break at whitespace and around every punctuation mark and CJK
ideograph (the basic tokenizer's character classes), exactly as
`keras_bert_impl.data.squad.context_words` does in Python, so an exported QA
model sees the words its SQuAD reader made and can point back into the
request text. An exported NER model gets a tag for each of these words,
which are not always the words of its CoNLL training data: a CoNLL word
with punctuation inside, such as "U.S." or "1-0", is one tagged word there
but several here ("U", ".", "S", "."), as HuggingFace's BERT pipelines
split words too (each piece is tagged on its own).
"""

import tensorflow as tf
import tensorflow_text as tf_text

from keras_bert_impl.text.basic_tokenization import (
    _CJK_IDEOGRAPHS,
    _PUNCTUATION,
    _WHITESPACE,
)

_OWN_WORD = f"[{_PUNCTUATION}{_CJK_IDEOGRAPHS}]"


def split_words(texts: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
    """Strings [batch] -> (words, begin, end): RaggedTensors [batch, (words)], byte offsets."""
    # TF-Text's regex split ends a text at its first NUL byte. "\x01" stands in for it
    # while splitting: also a control character (no separator, dropped by the
    # tokenizer) and one byte for one, so the offsets hold and the words are cut
    # from the text as it came.
    searchable = tf.strings.regex_replace(texts, "\x00", "\x01")
    _, begin, end = tf_text.regex_split_with_offsets(
        searchable, delim_regex_pattern=f"{_WHITESPACE}|{_OWN_WORD}",
        keep_delim_regex_pattern=_OWN_WORD)
    flat_texts = tf.gather(texts, begin.value_rowids())
    words = begin.with_flat_values(
        tf.strings.substr(flat_texts, begin.flat_values, end.flat_values - begin.flat_values))
    return words, begin, end


def word_pieces(tokenizer, words: tf.RaggedTensor, unk_for_empty: bool) -> tf.RaggedTensor:
    """Words [batch, (words)] -> wordpiece ids [batch, (words), (pieces)], each word alone.

    With `unk_for_empty`, a word that tokenizes to nothing becomes [UNK] (as
    the NER reader does, so every word keeps a tag).
    """
    pieces = tokenizer.tokenize(words.flat_values)
    if unk_for_empty:
        unk = tf.fill([pieces.nrows(), 1], tf.constant(tokenizer.unk_id, pieces.dtype))
        padded = tf.concat([pieces, tf.RaggedTensor.from_tensor(unk)], axis=1)
        keep = tf.maximum(pieces.row_lengths(), 1)
        positions = tf.ragged.range(padded.row_lengths())
        pieces = tf.ragged.boolean_mask(padded, positions < tf.expand_dims(keep, 1))
    return tf.RaggedTensor.from_row_splits(pieces, tf.cast(words.row_splits, pieces.row_splits.dtype))


def first_piece_positions(pieces: tf.RaggedTensor) -> tf.RaggedTensor:
    """Pieces [batch, (words), (pieces)] -> where each word starts in its row's pieces."""
    counts = pieces.values.row_lengths()
    starts = tf.cumsum(counts, exclusive=True)
    with_total = tf.concat([starts, [tf.reduce_sum(counts)]], axis=0)
    row_starts = tf.gather(with_total, pieces.row_splits[:-1])
    local = starts - tf.repeat(row_starts, pieces.row_lengths())
    return tf.RaggedTensor.from_row_splits(local, pieces.row_splits)


def char_offsets(texts: tf.Tensor, byte_begin: tf.Tensor, byte_end: tf.Tensor):
    """Byte offsets [batch] into `texts` -> character offsets (int32), for clients' strings."""
    prefix = tf.strings.substr(texts, tf.zeros_like(byte_begin), byte_begin)
    start = tf.strings.length(prefix, unit="UTF8_CHAR")
    span = tf.strings.substr(texts, byte_begin, byte_end - byte_begin)
    return start, start + tf.strings.length(span, unit="UTF8_CHAR")
