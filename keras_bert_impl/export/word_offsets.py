"""Words of raw text with their byte offsets, split as the fine-tuning readers split them.

Words break at whitespace and around every punctuation mark and CJK
ideograph (the basic tokenizer's character classes), as
`keras_bert_impl.data.squad.context_words` does in Python, so an exported QA
model sees the words its SQuAD reader made and can point back into the
request text. (The two differ only on punctuation assigned after Unicode 14:
Python 3.11's tables do not know it, RE2's here do.) An exported NER model gets
a tag for each of these words, which are not always the words of its CoNLL
training data: a CoNLL word with punctuation inside, such as "U.S." or "1-0", is
one tagged word there but several here ("U", ".", "S", "."), as HuggingFace's
BERT pipelines split words too (each piece is tagged on its own).
"""

from typing import TYPE_CHECKING

import tensorflow as tf
import tensorflow_text as tf_text

from keras_bert_impl.text.basic_tokenization import (
    CJK_IDEOGRAPHS,
    PUNCTUATION,
    WHITESPACE,
)

if TYPE_CHECKING:
    from keras_bert_impl.text.tokenizer import BertTokenizer

_OWN_WORD = f"[{PUNCTUATION}{CJK_IDEOGRAPHS}]"


def split_words(texts: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
    """Strings [batch] -> (words, begin, end): RaggedTensors [batch, (words)], byte offsets."""
    # TF-Text's regex split ends a text at its first NUL byte. "\x01" stands in for it
    # while splitting: also a control character (no separator, dropped by the
    # tokenizer) and one byte for one, so the offsets hold and the words are cut
    # from the text as it came.
    searchable = tf.strings.regex_replace(texts, "\x00", "\x01")
    _, begin, end = tf_text.regex_split_with_offsets(
        searchable, delim_regex_pattern=f"{WHITESPACE}|{_OWN_WORD}",
        keep_delim_regex_pattern=_OWN_WORD)
    flat_texts = tf.gather(texts, begin.value_rowids())
    words = begin.with_flat_values(
        tf.strings.substr(flat_texts, begin.flat_values, end.flat_values - begin.flat_values))
    return words, begin, end


def word_pieces(tokenizer: "BertTokenizer", words: tf.RaggedTensor,
                unk_for_empty: bool) -> tf.RaggedTensor:
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
    row_splits = tf.cast(words.row_splits, pieces.row_splits.dtype)
    return tf.RaggedTensor.from_row_splits(pieces, row_splits)


def piece_byte_spans(tokenizer: "BertTokenizer", words: tf.RaggedTensor, begin: tf.RaggedTensor,
                     pieces: tf.RaggedTensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """Byte [begin, end) of each wordpiece in its text, [batch, (words), (pieces)] each.

    `words`/`begin` are `split_words`' and `pieces` `word_pieces`'. As
    `keras_bert_impl.data.squad_windows.piece_char_spans`: where a word's pieces spell
    it character for character, each piece covers its own characters;
    otherwise (an [UNK], a decomposed accent, bytes that are not UTF-8) every
    piece covers the whole word.
    """
    flat = pieces.values  # [all words, (pieces)]
    word_of_piece = flat.value_rowids()
    texts = tokenizer.id_to_token(flat.flat_values)
    later = tf.ragged.range(flat.row_lengths()).flat_values > 0
    texts = tf.where(later, tf.strings.regex_replace(texts, "^##", ""), texts)
    lengths = tf.strings.length(texts, unit="UTF8_CHAR")
    word_lengths = tf.reduce_sum(flat.with_flat_values(lengths), axis=1)
    ends_in_word = tf.cumsum(lengths) - tf.repeat(tf.cumsum(word_lengths, exclusive=True),
                                                  flat.row_lengths())

    # Byte offset of every character of every word, and of its end.
    word_texts = words.flat_values
    _, char_bytes = tf.strings.unicode_decode_with_offsets(word_texts, "UTF-8", errors="replace")
    word_bytes = tf.cast(tf.strings.length(word_texts), char_bytes.dtype)
    char_bytes = tf.concat([char_bytes, tf.expand_dims(word_bytes, 1)], axis=1)
    num_chars = tf.cast(char_bytes.row_lengths() - 1, lengths.dtype)
    spelled = tf.gather((word_lengths == num_chars)
                        & ~tf.reduce_any(tf.equal(flat, tokenizer.unk_id), axis=1), word_of_piece)

    def byte_in_word(char):
        char = tf.clip_by_value(char, 0, tf.gather(num_chars, word_of_piece))
        return tf.gather(char_bytes.flat_values,
                         tf.gather(char_bytes.row_splits, word_of_piece)
                         + tf.cast(char, char_bytes.row_splits.dtype))

    word_begin = tf.cast(tf.gather(begin.flat_values, word_of_piece), word_bytes.dtype)
    start = tf.where(spelled, byte_in_word(ends_in_word - lengths), 0)
    end = tf.where(spelled, byte_in_word(ends_in_word), tf.gather(word_bytes, word_of_piece))
    return (pieces.with_flat_values(word_begin + start),
            pieces.with_flat_values(word_begin + end))


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
