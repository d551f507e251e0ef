"""Masked-LM masking of packed batches, drawn with stateless random ops.

The rule is the original ``create_masked_lm_predictions``:

* candidates are the real tokens other than ``[CLS]``/``[SEP]`` (and never
  padding);
* the number to predict per sequence is
  ``min(max_predictions_per_seq, max(1, round(num_tokens * masked_lm_prob)))``
  where ``num_tokens`` counts every real token including ``[CLS]``/``[SEP]``
  (the original's count; TF-Text's ``RandomItemSelector`` instead takes the
  ceiling over the selectable tokens);
* candidates are visited in a random order and taken while they fit; with
  whole-word masking a candidate is a whole word (all its wordpieces), and a
  word that would overflow the count is skipped, as the original does;
* each chosen token becomes ``[MASK]`` with probability 0.8, stays unchanged
  with 0.1 and becomes a uniformly random vocabulary id with 0.1.

TF-Text's ``mask_language_model`` is not used because its
``MaskValuesChooser`` draws from stateful random ops: under a parallel
``tf.data`` map the draws depend on thread timing, so a seed could not
reproduce a batch (which resuming a run needs). Here every draw comes from a
per-batch seed, so the same seed gives the same masks.
"""

from __future__ import annotations

import tensorflow as tf

MASK_PROB = 0.8
KEEP_PROB = 0.1


def num_to_predict(input_mask: tf.Tensor, masked_lm_prob: float,
                   max_predictions_per_seq: int) -> tf.Tensor:
    """The original's per-sequence prediction count, int32 [batch]."""
    # float64 as Python's round(n * p): in float32, 190 * 0.15 rounds to 29, not 28.
    num_tokens = tf.cast(tf.reduce_sum(input_mask, axis=1), tf.float64)
    count = tf.cast(tf.round(num_tokens * tf.constant(masked_lm_prob, tf.float64)), tf.int32)
    return tf.minimum(max_predictions_per_seq, tf.maximum(1, count))


def mask_batch(features: dict[str, tf.Tensor],
               seed: tf.Tensor,
               *,
               masked_lm_prob: float,
               max_predictions_per_seq: int,
               vocab_size: int,
               mask_id: int,
               special_ids: tuple[int, ...],
               whole_word_masking: bool = False) -> dict[str, tf.Tensor]:
    """Masks a packed batch.

    Args:
      features: ``input_word_ids``, ``input_mask`` (int32 [batch, seq]) and,
        for whole-word masking, ``word_starts`` (int32 [batch, seq], 1 where a
        token begins a word).
      seed: int32/int64 [2], the stateless seed of this batch.
      special_ids: ids never chosen ([CLS], [SEP], [PAD]).

    Returns:
      ``features`` with ``input_word_ids`` masked and ``word_starts`` dropped,
      plus ``masked_lm_positions``, ``masked_lm_ids`` (int32 [batch, P]) and
      ``masked_lm_weights`` (float32 [batch, P]), padded with 0 as the
      original.
    """
    ids = features["input_word_ids"]
    input_mask = features["input_mask"]
    order_seed, value_seed, token_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3))

    candidate = tf.cast(input_mask, tf.bool)
    for special in special_ids:
        candidate = tf.logical_and(candidate, tf.not_equal(ids, special))
    budget = num_to_predict(input_mask, masked_lm_prob, max_predictions_per_seq)
    if whole_word_masking:
        word_starts = tf.cast(features["word_starts"], tf.bool)
        chosen = _choose_whole_words(candidate, word_starts, budget, order_seed)
    else:
        chosen = _choose_tokens(candidate, budget, order_seed)

    draw = tf.random.stateless_uniform(tf.shape(ids), value_seed)
    random_ids = tf.random.stateless_uniform(
        tf.shape(ids), token_seed, minval=0, maxval=vocab_size, dtype=tf.int32)
    replacement = tf.where(draw < MASK_PROB, tf.cast(mask_id, ids.dtype),
                           tf.where(draw < MASK_PROB + KEEP_PROB, ids, random_ids))
    masked_ids = tf.where(chosen, replacement, ids)

    positions, weights = _chosen_positions(chosen, max_predictions_per_seq)
    result = {k: v for k, v in features.items() if k != "word_starts"}
    result["input_word_ids"] = masked_ids
    result["masked_lm_positions"] = positions
    result["masked_lm_ids"] = tf.gather(ids, positions, batch_dims=1) * tf.cast(weights, tf.int32)
    result["masked_lm_weights"] = weights
    return result


def _random_ranks(valid: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A random order of the valid items per row: (order, rank of each item)."""
    keys = tf.random.stateless_uniform(tf.shape(valid), seed)
    keys = tf.where(valid, keys, 2.0)
    order = tf.argsort(keys, axis=1, stable=True)
    rank = tf.argsort(order, axis=1, stable=True)
    return order, rank


def _choose_tokens(candidate: tf.Tensor, budget: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    _, rank = _random_ranks(candidate, seed)
    return tf.logical_and(candidate, rank < budget[:, None])


def _choose_whole_words(candidate: tf.Tensor, word_starts: tf.Tensor,
                        budget: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Greedy whole-word choice in a random word order, as the original."""
    seq_length = tf.shape(candidate)[1]
    # A continuation piece right after a non-candidate ([CLS]/[SEP]) starts a
    # word of its own, so a word never spans a segment boundary.
    previous_candidate = tf.pad(candidate[:, :-1], [[0, 0], [1, 0]])
    starts = tf.logical_and(candidate,
                            tf.logical_or(word_starts, tf.logical_not(previous_candidate)))
    word_index = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1
    word_index = tf.where(candidate, word_index, seq_length)
    num_words = tf.reduce_sum(tf.cast(starts, tf.int32), axis=1)
    rows = tf.range(tf.shape(candidate)[0])[:, None] * (seq_length + 1)
    word_lengths = tf.math.unsorted_segment_sum(
        tf.ones_like(word_index), word_index + rows,
        tf.shape(candidate)[0] * (seq_length + 1))
    word_lengths = tf.reshape(word_lengths, [-1, seq_length + 1])[:, :seq_length]
    is_word = tf.range(seq_length)[None, :] < num_words[:, None]

    order, rank = _random_ranks(is_word, seed)
    lengths_in_order = tf.gather(word_lengths, order, batch_dims=1)
    valid_in_order = tf.gather(is_word, order, batch_dims=1)

    def take(count, step):
        length, valid = step
        fits = tf.logical_and(valid, count + length <= budget)
        return count + tf.where(fits, length, 0), fits

    _, taken_in_order = tf.scan(
        lambda state, step: take(state[0], step),
        (tf.transpose(lengths_in_order), tf.transpose(valid_in_order)),
        initializer=(tf.zeros_like(budget), tf.zeros_like(budget, tf.bool)))
    taken_in_order = tf.transpose(taken_in_order)
    word_taken = tf.gather(taken_in_order, rank, batch_dims=1)
    word_taken = tf.pad(word_taken, [[0, 0], [0, 1]])
    return tf.logical_and(candidate, tf.gather(word_taken, word_index, batch_dims=1))


def _chosen_positions(chosen: tf.Tensor, max_predictions_per_seq: int
                      ) -> tuple[tf.Tensor, tf.Tensor]:
    """Ascending positions of the chosen tokens, padded to P with 0 / weight 0."""
    batch = tf.shape(chosen)[0]
    seq_length = tf.shape(chosen)[1]
    positions = tf.range(seq_length)[None, :] + tf.zeros_like(chosen, tf.int32)
    keys = tf.where(chosen, positions, seq_length)
    keys = tf.concat([keys, tf.fill([batch, max_predictions_per_seq], seq_length)], axis=1)
    keys = tf.sort(keys, axis=1)[:, :max_predictions_per_seq]
    weights = tf.cast(keys < seq_length, tf.float32)
    positions = tf.where(keys < seq_length, keys, 0)
    return positions, weights
