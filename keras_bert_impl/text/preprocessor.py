"""`BertPreprocessor`: texts -> the three encoder inputs, packed as the original BERT."""

import tensorflow as tf

from keras_bert_impl.text.tokenizer import BertTokenizer

_MIN_SEQ_LENGTH = {1: 3, 2: 5}


def truncated_pair_lengths(
    length_a: tf.Tensor, length_b: tf.Tensor, budget: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Lengths left by the original `_truncate_seq_pair`, in closed form.

    The original pops one token at a time from the end of the longer segment
    (the second on ties) until `length_a + length_b <= budget`. That leaves
    the shorter segment whole when it fits in its half, and otherwise splits
    the budget evenly, the first segment taking the odd token.
    """
    half_a = (budget + 1) // 2
    half_b = budget // 2
    kept_a = tf.minimum(length_a, tf.maximum(budget - length_b, half_a))
    kept_b = tf.minimum(length_b, tf.maximum(budget - length_a, half_b))
    return kept_a, kept_b


class BertPreprocessor(tf.Module):
    """Packs texts or text pairs as `[CLS] a [SEP] (b [SEP])` into fixed-length inputs.

    Returns int32 `input_word_ids`, `input_mask` and `input_type_ids` of shape
    [batch, seq_length]. A single text keeps its first `seq_length - 2`
    wordpieces; a pair is truncated by the original `_truncate_seq_pair` rule
    (drop the last token of the longer segment, the second on ties, until it
    fits). Pure graph ops: works in `tf.data`, `tf.function` and a SavedModel.

    ```python
    pre = BertPreprocessor(BertTokenizer("vocab.txt"), seq_length=128)
    pre(tf.constant(["a sentence"]))["input_word_ids"]      # [1, 128]
    pre((tf.constant(["premise"]), tf.constant(["hypothesis"])))
    ```
    """

    def __init__(self, tokenizer: BertTokenizer, seq_length: int = 128):
        super().__init__(name="bert_preprocessor")
        if not isinstance(seq_length, int) or seq_length < _MIN_SEQ_LENGTH[1]:
            raise ValueError(
                f"seq_length must be an int >= {_MIN_SEQ_LENGTH[1]} "
                f"([CLS], [SEP] and one token), got {seq_length!r}"
            )
        self.tokenizer = tokenizer
        self.seq_length = seq_length

    def __call__(self, texts) -> dict[str, tf.Tensor]:
        """`texts`: strings [batch], or a tuple `(texts_a, texts_b)` of strings [batch]."""
        if not isinstance(texts, tuple):
            texts = (texts,)
        if len(texts) not in _MIN_SEQ_LENGTH:
            raise ValueError(f"texts must be strings or a pair of strings, got a {len(texts)}-tuple")
        return self.pack([self.tokenizer.tokenize(t) for t in texts])

    def pack(self, segments: list[tf.RaggedTensor]) -> dict[str, tf.Tensor]:
        """Truncates and packs 1 or 2 id segments (RaggedTensor [batch, (tokens)]) into the inputs."""
        if len(segments) not in _MIN_SEQ_LENGTH:
            raise ValueError(f"pack takes 1 or 2 segments, got {len(segments)}")
        if self.seq_length < _MIN_SEQ_LENGTH[len(segments)]:
            raise ValueError(
                f"seq_length={self.seq_length} is too short for pairs: need >= "
                f"{_MIN_SEQ_LENGTH[2]} ([CLS], 2 x [SEP] and one token of each segment)"
            )
        segments = [tf.cast(segment, tf.int32) for segment in segments]
        if len(segments) == 1:
            segments = [segments[0][:, : self.seq_length - 2]]
        else:
            first, second = segments
            kept_first, kept_second = truncated_pair_lengths(
                first.row_lengths(), second.row_lengths(), self.seq_length - 3
            )
            segments = [_keep_prefix(first, kept_first), _keep_prefix(second, kept_second)]

        batch_size = segments[0].nrows()
        cls = tf.fill([batch_size, 1], self.tokenizer.cls_id)
        sep = tf.fill([batch_size, 1], self.tokenizer.sep_id)
        pieces, types = [cls], [tf.zeros_like(cls)]
        for type_id, segment in enumerate(segments):
            pieces += [segment, sep]
            types += [tf.ones_like(segment) * type_id, tf.fill([batch_size, 1], type_id)]
        word_ids = tf.concat(pieces, axis=1)
        type_ids = tf.concat(types, axis=1)
        shape = [None, self.seq_length]
        return {
            "input_word_ids": word_ids.to_tensor(self.tokenizer.pad_id, shape=shape),
            "input_mask": tf.ones_like(word_ids).to_tensor(0, shape=shape),
            "input_type_ids": type_ids.to_tensor(0, shape=shape),
        }


def _keep_prefix(segment: tf.RaggedTensor, lengths: tf.Tensor) -> tf.RaggedTensor:
    """The first `lengths[i]` tokens of each row."""
    positions = tf.ragged.range(segment.row_lengths(), dtype=segment.row_splits.dtype)
    keep = positions < tf.expand_dims(tf.cast(lengths, positions.dtype), 1)
    return tf.ragged.boolean_mask(segment, keep)
