"""Tokenizing text in which a literal `[MASK]` stands for the mask token.

The original BERT basic tokenizer splits `[MASK]` into `[`, `mask`, `]`;
fill-mask requests need it kept whole, as HuggingFace keeps special tokens.
"""

from typing import TYPE_CHECKING

import tensorflow as tf

if TYPE_CHECKING:
    from keras_bert_impl.text.tokenizer import BertTokenizer

MASK_TEXT = "[MASK]"


def tokenize_with_mask_token(tokenizer: "BertTokenizer", texts: tf.Tensor) -> tf.RaggedTensor:
    """Strings [batch] -> int32 ids [batch, (tokens)], each literal `[MASK]` -> `mask_id`.

    The text between masks is tokenized as usual, so everything else matches
    `tokenizer.tokenize`.
    """
    if tokenizer.mask_id is None:
        raise ValueError(f"{tokenizer.vocab_file}: the vocabulary has no [MASK] token, which a "
                         "masked-LM export needs")
    pieces = tf.strings.split(texts, sep=MASK_TEXT)  # [batch, (masks + 1)]
    piece_ids = tf.cast(tokenizer.tokenize(pieces.flat_values), tf.int32)  # [pieces, (tokens)]
    piece_index = tf.ragged.range(pieces.row_lengths())
    followed_by_mask = piece_index < tf.expand_dims(pieces.row_lengths() - 1, 1)
    mask_counts = tf.cast(followed_by_mask.flat_values, tf.int64)
    masks = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(mask_counts)], tf.constant(tokenizer.mask_id, tf.int32)),
        mask_counts)
    with_masks = tf.concat([piece_ids, masks], axis=1)
    return tf.RaggedTensor.from_row_lengths(with_masks, pieces.row_lengths()).merge_dims(1, 2)
