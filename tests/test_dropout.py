"""BertDropout: Keras Dropout semantics with a Threefry mask; the original's dropout sites."""

import json
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_bert_impl import BertClassifier, BertConfig, BertEncoder
from keras_bert_impl.layers.dropout import BertDropout


def test_is_the_identity_outside_training():
    x = tf.random.normal([4, 16])
    np.testing.assert_array_equal(BertDropout(0.5)(x, training=False), x)
    np.testing.assert_array_equal(BertDropout(0.5)(x), x)


def test_drops_at_the_rate_and_scales_what_it_keeps():
    x = tf.ones([200, 1000])
    y = BertDropout(0.1, seed=3)(x, training=True).numpy()
    dropped = np.mean(y == 0)
    # 200k Bernoulli(0.1) draws: the standard deviation of the fraction is ~0.0007.
    assert abs(dropped - 0.1) < 0.005
    np.testing.assert_allclose(y[y != 0], 1 / 0.9, rtol=1e-6)


def test_each_call_draws_a_new_mask_and_a_seed_repeats_the_sequence():
    x = tf.ones([64, 64])
    first, second = BertDropout(0.5, seed=7), BertDropout(0.5, seed=7)
    a1, a2 = first(x, training=True), first(x, training=True)
    assert not np.array_equal(a1, a2)
    np.testing.assert_array_equal(second(x, training=True), a1)
    np.testing.assert_array_equal(second(x, training=True), a2)


def test_under_jit_compile_and_bfloat16_the_mask_keeps_the_input_dtype():
    layer = BertDropout(0.25, seed=1, dtype="mixed_bfloat16")
    x = tf.ones([32, 128], "bfloat16")
    y = tf.function(lambda x: layer(x, training=True), jit_compile=True)(x)
    assert y.dtype == tf.bfloat16
    values = np.unique(y.numpy().astype("float32"))
    np.testing.assert_allclose(values, [0.0, 4 / 3], rtol=1e-2)


def test_gradient_flows_only_through_kept_positions():
    layer = BertDropout(0.5, seed=2)
    x = tf.ones([16, 16])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        total = tf.reduce_sum(y)
    grad = tape.gradient(total, x).numpy()
    np.testing.assert_array_equal(grad != 0, y.numpy() != 0)
    np.testing.assert_allclose(grad[grad != 0], 2.0)


def test_rebuilds_from_its_config():
    layer = BertDropout(0.3, seed=5, name="drop")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is BertDropout
    assert (clone.rate, clone.seed, clone.name) == (0.3, 5, "drop")


def test_noise_shape_drops_whole_rows_as_keras_dropout_also_under_xla():
    layer = BertDropout(0.5, noise_shape=(None, 1), seed=1)
    x = tf.ones([64, 8])
    for y in (layer(x, training=True), tf.function(
            lambda x: layer(x, training=True), jit_compile=True)(x)):
        y = y.numpy()
        assert all(len(set(row)) == 1 for row in y)  # each row kept or dropped whole
        assert 0 < np.mean(y[:, 0] == 0) < 1
    assert BertDropout.from_config(layer.get_config()).noise_shape == (None, 1)


def test_each_replica_of_a_strategy_draws_its_own_mask(tmp_path):
    """The seed state is mirrored; without the replica id folded in, replicas dropped alike."""
    script = tmp_path / "mirrored_dropout.py"
    script.write_text(MIRRORED_DROPOUT_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    first_call, second_call = json.loads(result.stdout.strip().splitlines()[-1])
    for replica_0, replica_1 in (first_call, second_call):
        assert replica_0 != replica_1
        assert 0 < sum(replica_0) < 64 and 0 < sum(replica_1) < 64
    assert first_call[0] != second_call[0]


MIRRORED_DROPOUT_SCRIPT = """
import json
import tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_bert_impl.layers.dropout import BertDropout

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    layer = BertDropout(0.5, seed=1)
    layer.build((1, 64))

@tf.function
def kept():
    return strategy.run(lambda: tf.cast(layer(tf.ones([1, 64]), training=True)[0] > 0, tf.int32))

calls = [[r.numpy().tolist() for r in strategy.experimental_local_results(kept())]
         for _ in range(2)]
print(json.dumps(calls))
"""


# Each of the original's dropout sites on its own: any one left out, the others still made
# training differ from inference, and no test noticed.


def _encoder_inputs(vocab_size: int, batch: int = 4, seq: int = 16) -> dict:
    ids = np.random.default_rng(0).integers(0, vocab_size, (batch, seq)).astype("int32")
    return {"input_word_ids": ids, "input_mask": np.ones_like(ids),
            "input_type_ids": np.zeros_like(ids)}


def test_the_embeddings_drop_their_output_at_hidden_dropout_prob_in_training():
    keras.utils.set_random_seed(0)
    encoder = BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=97,
                                                 hidden_dropout_prob=0.5))
    x = _encoder_inputs(97)
    trained = encoder.embedding_layer(x["input_word_ids"], x["input_type_ids"], training=True)
    # A LayerNorm's output is never exactly 0: the zeros are dropped values.
    assert 0.4 < np.mean(np.asarray(trained) == 0.0) < 0.6
    inferred = encoder.embedding_layer(x["input_word_ids"], x["input_type_ids"])
    assert np.mean(np.asarray(inferred) == 0.0) == 0.0


def test_attention_probabilities_are_dropped_in_training():
    keras.utils.set_random_seed(0)
    # Hidden dropout off: only attention_probs_dropout_prob can make training differ.
    encoder = BertEncoder(BertConfig.from_preset(
        "bert_tiny", vocab_size=97, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.3))
    x = _encoder_inputs(97)
    trained = np.asarray(encoder(x, training=True)["sequence_output"])
    inferred = np.asarray(encoder(x, training=False)["sequence_output"])
    assert np.abs(trained - inferred).max() > 1e-3


def test_the_classifier_drops_the_pooled_output_in_training():
    keras.utils.set_random_seed(0)
    encoder = BertEncoder(BertConfig.from_preset(
        "bert_tiny", vocab_size=97, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    classifier = BertClassifier(encoder, num_classes=3, dropout=0.5)
    x = _encoder_inputs(97)
    trained, inferred = classifier(x, training=True), classifier(x, training=False)
    assert np.abs(np.asarray(trained) - np.asarray(inferred)).max() > 1e-4
