"""BertDense is Keras' Dense computed as one 2-D matmul, whatever the input's rank."""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_impl.layers.dense import BertDense


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 8), (2, 3, 4, 8)])
def test_outputs_equal_keras_dense_for_any_number_of_leading_axes(shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    ours = BertDense(6, activation="tanh")
    reference = keras.layers.Dense(6, activation="tanh")
    ours.build(shape)
    reference.build(shape)
    reference.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(x), reference(x), atol=1e-6)
    assert ours(x).shape == shape[:-1] + (6,)


def test_a_sequence_input_with_unknown_length_runs_as_one_matmul_in_the_graph():
    dense = BertDense(16)
    function = tf.function(dense).get_concrete_function(
        tf.TensorSpec([None, None, 8], tf.float32))
    ops = collections.Counter(op.type for op in function.graph.get_operations())
    assert ops["MatMul"] == 1 and ops["BatchMatMulV2"] == 0, ops
    assert function(tf.ones([3, 7, 8])).shape == (3, 7, 16)


def test_keeps_float32_weights_and_computes_in_bfloat16_under_mixed_precision():
    dense = BertDense(4, dtype="mixed_bfloat16")
    y = dense(np.ones((2, 3, 8), "float32"))
    assert dense.kernel.dtype == "float32" and y.dtype == "bfloat16"


def test_round_trips_through_its_config():
    dense = BertDense(4, activation="relu", name="proj")
    assert isinstance(keras.layers.deserialize(keras.layers.serialize(dense)), BertDense)
    assert BertDense.from_config(dense.get_config()).get_config() == dense.get_config()
