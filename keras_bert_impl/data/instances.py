"""Sentence-pair instances for next-sentence prediction, in the graph.

``create_instances`` is the original ``create_instances_from_document`` as
TensorFlow ops: sentences of a document are accumulated into a chunk until
the chunk reaches the target length (``seq_length - 3``, or with probability
``short_seq_prob`` a uniform length in ``[2, seq_length - 3]``, drawn once per
document as the original does); the chunk is split at a random sentence
boundary into segment A and B. With probability 0.5 (always when the chunk is
one sentence) B is instead a run of sentences from a random point of another
document, label 1, and the unused sentences of the chunk go back to the
document; otherwise label 0 (B is the actual next text).

The "other document" is the most recent earlier document of the shuffled
document stream whose text differs. The first document of a stream has none:
its chunks keep their actual next text, except a one-sentence chunk, which
(like every chunk of the original's one-document corpus) takes B from its own
document.

Truncation is the original ``truncate_seq_pair``: tokens are dropped one at a
time from the longer segment (B on ties) until the pair fits
``seq_length - 3``, each from the front or the back with probability 0.5.
The resulting lengths are computed in closed form and the number dropped from
the front is a Binomial(dropped, 0.5) draw, which has the original's
distribution.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text


def create_instances(document: dict[str, tf.Tensor],
                     other: dict[str, tf.Tensor],
                     seed: tf.Tensor,
                     *,
                     other_is_another_document: bool | tf.Tensor = True,
                     seq_length: int,
                     short_seq_prob: float,
                     cls_id: int,
                     sep_id: int) -> dict[str, tf.Tensor]:
    """All instances of one document, packed ``[CLS] A [SEP] B [SEP]``.

    Args:
      document, other: ``tokens`` and ``word_starts`` (int32 [tokens]) and
        ``sentence_lengths`` (int32 [sentences], each > 0).
      seed: int64 [2], the stateless seed of this document.
      other_is_another_document: False when `other` is `document` itself (no
        other text yet): only one-sentence chunks then take a random B.

    Returns:
      int32 ``input_word_ids``, ``input_mask``, ``input_type_ids``,
      ``word_starts`` [instances, seq_length] and ``next_sentence_labels``
      [instances].
    """
    max_num_tokens = seq_length - 3
    target_seed, chunk_seed, trunc_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3))
    target_draw = tf.random.stateless_uniform([2], target_seed)
    short_target = 2 + tf.cast(target_draw[1] * (max_num_tokens - 1), tf.int32)
    target_length = tf.where(target_draw[0] < short_seq_prob,
                             tf.minimum(short_target, max_num_tokens), max_num_tokens)

    spans = _chunk_spans(document["sentence_lengths"], other["sentence_lengths"],
                         target_length, chunk_seed, other_is_another_document)
    spans = _truncate(spans, max_num_tokens, trunc_seed)

    num_own_tokens = tf.size(document["tokens"])
    offset = tf.where(spans["is_random"], num_own_tokens, 0)
    tokens = tf.concat([document["tokens"], other["tokens"]], axis=0)
    word_starts = tf.concat([document["word_starts"], other["word_starts"]], axis=0)
    a_index = tf.ragged.range(spans["a_start"], spans["a_end"])
    b_index = tf.ragged.range(spans["b_start"] + offset, spans["b_end"] + offset)

    ids, type_ids = tf_text.combine_segments(
        [tf.gather(tokens, a_index), tf.gather(tokens, b_index)],
        start_of_sequence_id=cls_id, end_of_segment_id=sep_id)
    starts, _ = tf_text.combine_segments(
        [tf.gather(word_starts, a_index), tf.gather(word_starts, b_index)],
        start_of_sequence_id=1, end_of_segment_id=1)
    shape = [None, seq_length]
    return {
        "input_word_ids": ids.to_tensor(shape=shape),
        "input_mask": tf.ones_like(ids).to_tensor(shape=shape),
        "input_type_ids": tf.cast(type_ids, tf.int32).to_tensor(shape=shape),
        "word_starts": starts.to_tensor(shape=shape),
        "next_sentence_labels": tf.cast(spans["is_random"], tf.int32),
    }


def _chunk_spans(lengths: tf.Tensor, other_lengths: tf.Tensor,
                 target_length: tf.Tensor, seed: tf.Tensor,
                 random_b_allowed: bool | tf.Tensor = True) -> dict[str, tf.Tensor]:
    """Token spans [start, end) of segment A and B of every instance."""
    num_sentences = tf.size(lengths)
    ends = tf.cumsum(lengths)
    starts = ends - lengths
    other_ends = tf.cumsum(other_lengths)
    other_starts = other_ends - other_lengths
    num_other = tf.size(other_lengths)
    # Each instance consumes at least one sentence, so there are at most
    # num_sentences instances and as many rows of draws.
    draws = tf.random.stateless_uniform([num_sentences, 3], seed)

    positions = tf.range(num_sentences)
    other_positions = tf.range(num_other)

    def body(chunk_start, count, spans):
        # The chunk ends at the first sentence that brings it to the target
        # length, or at the end of the document.
        reached = tf.logical_and(positions >= chunk_start,
                                 ends - starts[chunk_start] >= target_length)
        i = tf.where(tf.reduce_any(reached),
                     tf.cast(tf.argmax(tf.cast(reached, tf.int32)), tf.int32),
                     num_sentences - 1)
        draw = draws[count]
        chunk_size = i - chunk_start + 1
        a_size = tf.where(chunk_size >= 2,
                          1 + tf.cast(draw[0] * tf.cast(chunk_size - 1, tf.float32), tf.int32),
                          1)
        a_size = tf.minimum(a_size, tf.maximum(chunk_size - 1, 1))
        a_last = chunk_start + a_size - 1
        a_start, a_end = starts[chunk_start], ends[a_last]
        is_random = tf.logical_or(tf.equal(chunk_size, 1),
                                  tf.logical_and(random_b_allowed, draw[1] < 0.5))

        target_b = target_length - (a_end - a_start)
        random_start = tf.minimum(tf.cast(draw[2] * tf.cast(num_other, tf.float32), tf.int32),
                                  num_other - 1)
        reached_b = tf.logical_and(other_positions >= random_start,
                                   other_ends - other_starts[random_start] >= target_b)
        random_last = tf.where(tf.reduce_any(reached_b),
                               tf.cast(tf.argmax(tf.cast(reached_b, tf.int32)), tf.int32),
                               num_other - 1)
        b_start = tf.where(is_random, other_starts[random_start], a_end)
        b_end = tf.where(is_random, other_ends[random_last], ends[i])

        row = tf.stack([a_start, a_end, b_start, b_end, tf.cast(is_random, tf.int32)])
        spans = tf.tensor_scatter_nd_update(spans, [[count]], row[None])
        # A random B leaves the chunk's unused sentences for the next chunk.
        last_used = tf.where(is_random, a_last, i)
        return last_used + 1, count + 1, spans

    _, count, spans = tf.while_loop(
        lambda chunk_start, *_: chunk_start < num_sentences,
        body,
        (0, 0, tf.zeros([num_sentences, 5], tf.int32)))
    spans = spans[:count]
    return {"a_start": spans[:, 0], "a_end": spans[:, 1],
            "b_start": spans[:, 2], "b_end": spans[:, 3],
            "is_random": tf.cast(spans[:, 4], tf.bool)}


def _truncate(spans: dict[str, tf.Tensor], max_num_tokens: int,
              seed: tf.Tensor) -> dict[str, tf.Tensor]:
    """The original ``truncate_seq_pair`` on spans (see the module docstring)."""
    length_a = spans["a_end"] - spans["a_start"]
    length_b = spans["b_end"] - spans["b_start"]
    excess = tf.maximum(length_a + length_b - max_num_tokens, 0)
    gap = tf.abs(length_a - length_b)
    shorter = tf.minimum(length_a, length_b)
    # First the longer one shrinks to the shorter's length; then they
    # alternate, B first.
    rest = tf.maximum(excess - gap, 0)
    final_a = tf.where(excess <= gap,
                       tf.where(length_a > length_b, length_a - excess, length_a),
                       shorter - rest // 2)
    final_b = tf.where(excess <= gap,
                       tf.where(length_a > length_b, length_b, length_b - excess),
                       shorter - (rest + 1) // 2)
    drop_a, drop_b = length_a - final_a, length_b - final_b
    seed_a, seed_b = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    front_a = _binomial_half(drop_a, seed_a)
    front_b = _binomial_half(drop_b, seed_b)
    return {"a_start": spans["a_start"] + front_a,
            "a_end": spans["a_end"] - (drop_a - front_a),
            "b_start": spans["b_start"] + front_b,
            "b_end": spans["b_end"] - (drop_b - front_b),
            "is_random": spans["is_random"]}


def _binomial_half(counts: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    return tf.random.stateless_binomial(
        tf.shape(counts), seed, counts=tf.cast(counts, tf.float32), probs=0.5,
        output_dtype=tf.int32)
