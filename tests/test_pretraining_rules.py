"""The original create_pretraining_data.py's rules, one at a time and sharper than the
corpus-level statistics of test_pretraining_data.py can tell them: random replacements from
the whole vocabulary, no change beyond the recorded predictions, the pair truncation, the
share of random next sentences, short_seq_prob and the defaults."""

import inspect
import random

import numpy as np
import tensorflow as tf

from keras_bert_impl.data import instances
from keras_bert_impl.data.masking import mask_batch
from keras_bert_impl.data.pretraining import pretraining_dataset

VOCAB_SIZE, MASK, CLS, SEP, PAD, WORD = 30522, 103, 101, 102, 0, 5000


def _batch(rows=256, seq=64):
    ids = np.full((rows, seq), WORD, np.int32)
    ids[:, 0], ids[:, -1] = CLS, SEP
    return {"input_word_ids": tf.constant(ids), "input_mask": tf.ones([rows, seq], tf.int32)}


def _mask(features, max_predictions_per_seq, seed=(1, 2)):
    return mask_batch(features, tf.constant(seed, tf.int64), masked_lm_prob=0.15,
                      max_predictions_per_seq=max_predictions_per_seq, vocab_size=VOCAB_SIZE,
                      mask_id=MASK, special_ids=(CLS, SEP, PAD))


def test_random_replacements_are_drawn_uniformly_from_the_whole_vocabulary():
    # The original: vocab_words[rng.randint(0, len(vocab_words) - 1)].
    out = _mask(_batch(), max_predictions_per_seq=20)
    ids = out["input_word_ids"].numpy()
    replaced = ids[(ids != WORD) & (ids != MASK) & (ids != CLS) & (ids != SEP)]
    assert len(replaced) > 150  # ~10 % of 2560 chosen tokens
    assert abs(replaced.mean() - VOCAB_SIZE / 2) < 3000  # uniform mean; s.e. ~550
    assert replaced.max() > 0.9 * VOCAB_SIZE and replaced.min() < 0.1 * VOCAB_SIZE


def test_no_token_is_changed_beyond_the_max_predictions_per_seq_recorded_ones():
    # 15 % of 64 tokens is 10 > 3: only 3 tokens may be chosen, and every changed
    # token must be one the model is asked to predict.
    features = _batch(rows=64)
    out = _mask(features, max_predictions_per_seq=3)
    before = features["input_word_ids"].numpy()
    after = out["input_word_ids"].numpy()
    weights = out["masked_lm_weights"].numpy()
    positions = out["masked_lm_positions"].numpy()
    np.testing.assert_array_equal(weights.sum(1), 3)
    for row in range(len(before)):
        changed = set(np.nonzero(after[row] != before[row])[0].tolist())
        assert changed <= set(positions[row][weights[row] > 0].tolist()), row


def _original_truncate(len_a, len_b, max_num_tokens, rng):
    """The original's truncate_seq_pair on lengths: (kept_a, front_a, kept_b, front_b)."""
    a, b = list(range(len_a)), list(range(len_b))
    while len(a) + len(b) > max_num_tokens:
        trunc = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del trunc[0]
        else:
            trunc.pop()
    return len(a), (a[0] if a else 0), len(b), (b[0] if b else 0)


def _truncate(len_a, len_b, max_num_tokens, seed):
    spans = {"a_start": tf.constant(0), "a_end": tf.constant(len_a),
             "b_start": tf.constant(1000), "b_end": tf.constant(1000 + len_b),
             "is_random": tf.constant(False)}
    spans = {k: tf.reshape(v, [1]) for k, v in spans.items()}
    out = instances._truncate(spans, max_num_tokens, tf.constant([seed, 7], tf.int64))
    a_start, a_end = int(out["a_start"][0]), int(out["a_end"][0])
    b_start, b_end = int(out["b_start"][0]) - 1000, int(out["b_end"][0]) - 1000
    return a_end - a_start, a_start, b_end - b_start, b_start


def test_pair_truncation_keeps_the_original_lengths_b_first_on_ties():
    for len_a in range(1, 40, 3):
        for len_b in range(1, 40, 3):
            expected = _original_truncate(len_a, len_b, 29, random.Random(0))
            got = _truncate(len_a, len_b, 29, seed=0)
            assert (got[0], got[2]) == (expected[0], expected[2]), (len_a, len_b)


def test_pair_truncation_drops_from_the_front_or_the_back_with_probability_one_half():
    # 60 + 60 tokens into 61: 29 dropped from A, 30 from B, each from the front w.p. 0.5,
    # so over 200 seeds the mean front drops are 14.5 and 15 with a standard error of 0.19.
    fronts_a, fronts_b = zip(*[(a_front, b_front) for _, a_front, _, b_front in
                               (_truncate(60, 60, 61, seed) for seed in range(200))])
    assert 13.5 < np.mean(fronts_a) < 15.5 and 14 < np.mean(fronts_b) < 16


def _document(first_id: int, sentence_length: int = 8, num_sentences: int = 40) -> dict:
    """A tokenized document of equal sentences with consecutive ids from `first_id`."""
    size = sentence_length * num_sentences
    return {"tokens": tf.range(first_id, first_id + size),
            "word_starts": tf.ones([size], tf.int32),
            "sentence_lengths": tf.fill([num_sentences], sentence_length)}


def test_next_sentence_b_is_random_half_of_the_time():
    document, other = _document(1000), _document(2000)

    @tf.function
    def labels(seed):
        return instances.create_instances(document, other, seed, seq_length=64,
                                          short_seq_prob=0.0, cls_id=CLS,
                                          sep_id=SEP)["next_sentence_labels"]

    all_labels = np.concatenate([labels(tf.constant([s, 3], tf.int64)).numpy()
                                 for s in range(300)])
    assert len(all_labels) > 1200  # ~8-sentence chunks, ~7 instances per document
    # ~0.53: a document's last chunk can be one sentence, whose B is always random.
    assert 0.45 < all_labels.mean() < 0.57  # s.e. ~0.011


def _first_instance_lengths(short_seq_prob, seeds=300):
    """Lengths of the first instance of a long document, for seeds where its B is the
    actual next text (a random B can run out of sentences and come out short anyway)."""
    document = _document(1000)

    @tf.function
    def first(seed):
        features = instances.create_instances(document, document, seed, seq_length=64,
                                              short_seq_prob=short_seq_prob, cls_id=CLS,
                                              sep_id=SEP)
        return (tf.reduce_sum(features["input_mask"][0]),
                features["next_sentence_labels"][0])

    lengths = [first(tf.constant([s, 5], tf.int64)) for s in range(seeds)]
    return np.array([int(n) for n, label in lengths if int(label) == 0])


def test_short_seq_prob_of_documents_target_a_shorter_random_length():
    # The first chunk of a long document fills seq_length unless its target was drawn short
    # (w.p. short_seq_prob, uniform in [2, seq_length - 3]).
    assert (_first_instance_lengths(0.0, seeds=60) == 64).all()
    lengths = _first_instance_lengths(0.1, seeds=1000)
    assert len(lengths) > 400
    # ~0.08 (0.084 measured, standard error ~0.012): bounds over 4 standard errors away.
    assert 0.03 < np.mean(lengths < 56) < 0.15


def test_pretraining_dataset_defaults_to_the_original_rates():
    parameters = inspect.signature(pretraining_dataset).parameters
    defaults = {name: parameters[name].default for name in (
        "seq_length", "max_predictions_per_seq", "masked_lm_prob", "short_seq_prob")}
    assert defaults == {"seq_length": 128, "max_predictions_per_seq": 20,
                        "masked_lm_prob": 0.15, "short_seq_prob": 0.1}
