"""Checks on requests: `serving_tokenized` ids the model has rows for, 0/1 masks, equal
shapes; as many texts as text pairs.

An embedding lookup with an id outside its table does not fail under XLA or
on a GPU: it reads a clamped or zero row, and the answer is silently wrong.
The export checks the three inputs in the graph before the model runs, so a
bad request fails with INVALID_ARGUMENT naming the input, in a graph export
and a `jit_compile` one alike (XLA drops `Assert` ops, so the checks stay
outside the compiled call).
"""

import tensorflow as tf

from keras_bert_impl.config import BertConfig


def _check(condition: tf.Tensor, template: str, *values: tf.Tensor) -> tf.Operation:
    """An Assert whose error reads as one sentence: `template` with `{}` filled by `values`."""
    return tf.debugging.Assert(condition, [tf.strings.format(template, values, summarize=-1)])


def _in_range(values: tf.Tensor, limit: int, message: str) -> tf.Operation:
    return _check(tf.reduce_all((values >= 0) & (values < limit)),
                  message + "; got values from {} to {}",
                  tf.reduce_min(values), tf.reduce_max(values))


def check_tokenized_inputs(features: dict[str, tf.Tensor],
                           config: BertConfig) -> dict[str, tf.Tensor]:
    """The three encoder inputs [batch, seq], passed on only once they are valid for `config`."""
    word_ids = features["input_word_ids"]
    shape = tf.shape(word_ids)
    checks = [
        _check(tf.reduce_all(tf.equal(tf.shape(features[name]), shape)),
               f"{name} has shape {{}} but input_word_ids has {{}}; they must agree",
               tf.shape(features[name]), shape)
        for name in ("input_mask", "input_type_ids")]
    checks += [
        _check((shape[1] >= 1) & (shape[1] <= config.max_position_embeddings),
               "the sequence length (dimension 1) must be 1 to max_position_embeddings="
               f"{config.max_position_embeddings}, got {{}}", shape[1]),
        _in_range(word_ids, config.vocab_size,
                  f"input_word_ids must be token ids in [0, {config.vocab_size}) (the "
                  "vocabulary size)"),
        _in_range(features["input_type_ids"], config.type_vocab_size,
                  f"input_type_ids must be segment ids in [0, {config.type_vocab_size})"),
        _in_range(features["input_mask"], 2, "input_mask must be 1 (token) or 0 (padding)"),
    ]
    with tf.control_dependencies(checks):
        return {name: tf.identity(value) for name, value in features.items()}


def check_text_pairs(text: tf.Tensor, text_pair: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`text` and `text_pair` [batch], passed on only when they have the same length
    (each head would otherwise fail in its own words, or pair texts up wrongly)."""
    check = _check(tf.equal(tf.size(text), tf.size(text_pair)),
                   "text has {} rows but text_pair has {}; send one text_pair per text",
                   tf.size(text), tf.size(text_pair))
    with tf.control_dependencies([check]):
        return tf.identity(text), tf.identity(text_pair)
