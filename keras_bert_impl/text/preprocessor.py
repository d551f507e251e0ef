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
    fits); a pair whose second text has no wordpieces is packed as the first
    text alone, as the original's `if tokens_b:`. Pure graph ops: works in
    `tf.data`, `tf.function` and a SavedModel.

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
            raise ValueError(
                f"texts must be strings or a pair of strings, got a {len(texts)}-tuple"
            )
        inputs = self.pack([self.tokenizer.tokenize(t) for t in texts])
        # A known batch size stays known (TPUs compile for static shapes).
        for tensor in inputs.values():
            tensor.set_shape([_static_batch_size(texts[0]), self.seq_length])
        return inputs

    def pack(self, segments: list[tf.RaggedTensor]) -> dict[str, tf.Tensor]:
        """Truncates and packs 1 or 2 id segments (ragged [batch, (tokens)]) into the inputs."""
        if len(segments) not in _MIN_SEQ_LENGTH:
            raise ValueError(f"pack takes 1 or 2 segments, got {len(segments)}")
        if self.seq_length < _MIN_SEQ_LENGTH[len(segments)]:
            raise ValueError(
                f"seq_length={self.seq_length} is too short for pairs: need >= "
                f"{_MIN_SEQ_LENGTH[2]} ([CLS], 2 x [SEP] and one token of each segment)"
            )
        rows = [tf.get_static_value(segment.nrows()) for segment in segments]
        if len(rows) == 2 and None not in rows and rows[0] != rows[1]:
            raise ValueError(f"the first segment has {rows[0]} texts but the second has "
                             f"{rows[1]}; pairs need one second text per first text")
        # Dense arithmetic on positions rather than ragged concatenation: it
        # adds no Assert ops to the graph (they break TPU input pipelines) and
        # costs less per call.
        lengths = [tf.expand_dims(segment.row_lengths(), 1) for segment in segments]
        single_length = tf.minimum(lengths[0], self.seq_length - 2)
        closed = [tf.ones_like(lengths[0], tf.bool)]  # whether a segment gets its [SEP]
        if len(segments) == 1:
            lengths = [single_length]
        else:
            # As the original's `if tokens_b:`, a second text without tokens
            # leaves a single-segment input: no second [SEP], single truncation.
            no_b = tf.equal(lengths[1], 0)
            kept_a, kept_b = truncated_pair_lengths(*lengths, budget=self.seq_length - 3)
            lengths = [tf.where(no_b, single_length, kept_a), kept_b]
            closed.append(tf.logical_not(no_b))
        tokens = [
            tf.cast(segment, tf.int32).to_tensor(0, shape=[None, self.seq_length])
            for segment in segments
        ]
        batch_size = tf.shape(tokens[0])[0]
        position = tf.range(self.seq_length, dtype=lengths[0].dtype)[tf.newaxis, :]
        word_ids = tf.fill([batch_size, self.seq_length], self.tokenizer.pad_id)
        type_ids = tf.zeros([batch_size, self.seq_length], tf.int32)
        # Segment i starts after [CLS] and the previous segments and their [SEP]s.
        start = tf.ones_like(lengths[0])
        for type_id, (segment, length, has_sep) in enumerate(zip(tokens, lengths, closed)):
            in_segment = (position >= start) & (position < start + length)
            index = tf.clip_by_value(position - start, 0, self.seq_length - 1)
            from_segment = tf.gather(segment, index, batch_dims=1)
            word_ids = tf.where(in_segment, from_segment, word_ids)
            is_sep = (position == start + length) & has_sep
            word_ids = tf.where(is_sep, self.tokenizer.sep_id, word_ids)
            type_ids = tf.where(in_segment | is_sep, type_id, type_ids)
            start += length + tf.cast(has_sep, length.dtype)
        word_ids = tf.where(position == 0, self.tokenizer.cls_id, word_ids)
        inputs = {
            "input_word_ids": word_ids,
            "input_mask": tf.cast(position < start, tf.int32),
            "input_type_ids": type_ids,
        }
        for tensor in inputs.values():
            tensor.set_shape([rows[0], self.seq_length])
        return inputs


def _static_batch_size(texts) -> int | None:
    shape = tf.TensorShape(texts.shape if hasattr(texts, "shape") else [len(texts)])
    return shape[0] if shape.rank else None
