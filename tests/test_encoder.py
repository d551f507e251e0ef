"""BertEncoder: the contract in DESIGN.md, original numerics and the shared model checks."""

import harness
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_impl import BertConfig, BertEncoder
from keras_bert_impl.layers.activations import gelu, get_activation

VOCAB = 97
SEQ = 16


def tiny_config(**overrides) -> BertConfig:
    return BertConfig.from_preset(
        "bert_tiny", vocab_size=VOCAB, max_position_embeddings=64, **overrides
    )


def make_inputs(batch=3, seq=SEQ, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.array([seq, seq // 2, 3][:batch] + [seq] * max(0, batch - 3))
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
    types = ((np.arange(seq)[None, :] >= lengths[:, None] // 2) * mask).astype("int32")
    ids = rng.integers(1, VOCAB, (batch, seq)).astype("int32") * mask
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}


@pytest.fixture(scope="module")
def encoder():
    keras.utils.set_random_seed(1)
    return BertEncoder(tiny_config())


def test_outputs_have_the_documented_shapes_and_float32(encoder):
    out = encoder(make_inputs())
    assert out["sequence_output"].shape == (3, SEQ, 128)
    assert out["pooled_output"].shape == (3, 128)
    assert len(out["encoder_outputs"]) == 2
    for x in [out["sequence_output"], out["pooled_output"], *out["encoder_outputs"]]:
        assert x.dtype == tf.float32
    np.testing.assert_array_equal(out["encoder_outputs"][-1], out["sequence_output"])


def test_pooled_output_is_tanh_dense_of_the_first_token(encoder):
    out = encoder(make_inputs())
    first = out["sequence_output"][:, 0, :]
    expected = np.tanh(
        first @ encoder.pooler_layer.kernel.numpy() + encoder.pooler_layer.bias.numpy()
    )
    np.testing.assert_allclose(out["pooled_output"], expected, atol=1e-5)


def test_outputs_at_chosen_positions_equal_the_full_sequence_there(encoder):
    inputs = make_inputs()  # rows of 16, 8 and 3 real tokens: padding is still masked
    full = encoder(inputs)
    positions = np.array([[0, 5, 5], [0, 7, 1], [2, 0, 0]], "int32")
    np.testing.assert_allclose(
        encoder.sequence_output_at(inputs, positions),
        np.take_along_axis(full["sequence_output"].numpy(), positions[..., None], axis=1),
        rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(encoder.pooled_output(inputs), full["pooled_output"],
                               rtol=1e-5, atol=1e-6)


def test_padding_content_does_not_change_outputs_at_real_positions(encoder):
    inputs = make_inputs()
    other = {k: v.copy() for k, v in inputs.items()}
    padding = inputs["input_mask"] == 0
    other["input_word_ids"][padding] = 7
    other["input_type_ids"][padding] = 1
    a, b = encoder(inputs), encoder(other)
    real = inputs["input_mask"].astype(bool)
    np.testing.assert_allclose(
        np.asarray(a["sequence_output"])[real], np.asarray(b["sequence_output"])[real], atol=1e-6
    )
    np.testing.assert_allclose(a["pooled_output"], b["pooled_output"], atol=1e-6)
    changed = np.abs(
        np.asarray(a["sequence_output"])[padding] - np.asarray(b["sequence_output"])[padding]
    )
    assert changed.max() > 1e-3  # the padding positions themselves did see the new tokens


def test_mask_hides_keys_as_if_they_were_absent(encoder):
    inputs = make_inputs(batch=1)
    inputs["input_mask"][0, 10:] = 0
    truncated = {k: v[:, :10] for k, v in inputs.items()}
    full = encoder(inputs)["sequence_output"][:, :10]
    np.testing.assert_allclose(full, encoder(truncated)["sequence_output"], atol=1e-5)


def test_sequences_shorter_than_max_positions_use_the_first_position_rows(encoder):
    ids, types = make_inputs()["input_word_ids"], make_inputs()["input_type_ids"]
    np.testing.assert_allclose(encoder.embedding_layer(ids[:, :5], types[:, :5]),
                               encoder.embedding_layer(ids, types)[:, :5], atol=1e-6)
    assert encoder(make_inputs(seq=5))["sequence_output"].shape == (3, 5, 128)


def test_sequence_longer_than_max_positions_is_a_clear_error(encoder):
    with pytest.raises(
        ValueError, match="Sequence length 65 exceeds max_position_embeddings \\(64\\)"
    ):
        encoder(make_inputs(seq=65))


def test_a_sequence_too_long_for_a_graph_of_unknown_length_is_a_clear_error(encoder):
    spec = tf.TensorSpec([None, None], tf.int32)
    predict = tf.function(lambda x: encoder(x)["pooled_output"], input_signature=[
        dict.fromkeys(("input_word_ids", "input_mask", "input_type_ids"), spec)])
    assert predict(make_inputs(seq=64)).shape == (3, 128)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"sequence length exceeds max_position_embeddings \(64\)"):
        predict(make_inputs(seq=65))


def test_ragged_token_ids_are_a_clear_error_pointing_to_packing(encoder):
    ids = tf.ragged.constant([[101, 7592, 102], [101, 102]])
    with pytest.raises(TypeError, match="not ragged ones .* pack them with BertPreprocessor"):
        encoder({"input_word_ids": ids, "input_mask": tf.ones_like(ids),
                 "input_type_ids": tf.zeros_like(ids)})


def test_dropout_applies_only_in_training(encoder):
    inputs = make_inputs()
    np.testing.assert_array_equal(
        encoder(inputs)["pooled_output"], encoder(inputs, training=False)["pooled_output"]
    )
    trained = encoder(inputs, training=True)["sequence_output"]
    assert np.abs(trained - encoder(inputs)["sequence_output"]).max() > 1e-3


def test_variables_have_the_original_checkpoint_names_and_shapes(encoder):
    names = encoder.google_variable_map()
    assert len(names) == 5 + 16 * 2 + 2
    assert {id(v) for v in names.values()} == {id(v) for v in encoder.weights}
    shapes = {name: tuple(v.shape) for name, v in names.items()}
    assert shapes["bert/embeddings/word_embeddings"] == (VOCAB, 128)
    assert shapes["bert/embeddings/token_type_embeddings"] == (2, 128)
    assert shapes["bert/embeddings/position_embeddings"] == (64, 128)
    assert shapes["bert/encoder/layer_1/attention/self/query/kernel"] == (128, 128)
    assert shapes["bert/encoder/layer_1/attention/self/value/bias"] == (128,)
    assert shapes["bert/encoder/layer_0/attention/output/dense/kernel"] == (128, 128)
    assert shapes["bert/encoder/layer_0/attention/output/LayerNorm/gamma"] == (128,)
    assert shapes["bert/encoder/layer_0/intermediate/dense/kernel"] == (128, 512)
    assert shapes["bert/encoder/layer_0/output/dense/kernel"] == (512, 128)
    assert shapes["bert/encoder/layer_1/output/LayerNorm/beta"] == (128,)
    assert shapes["bert/pooler/dense/kernel"] == (128, 128)
    assert encoder.get_embedding_table() is names["bert/embeddings/word_embeddings"]


def test_every_kernel_and_table_is_truncated_normal_with_stddev_0_02(encoder):
    for name, variable in encoder.google_variable_map().items():
        values = variable.numpy()
        if name.endswith(("/bias", "/beta")):
            np.testing.assert_array_equal(values, 0, err_msg=name)
        elif name.endswith("/gamma"):
            np.testing.assert_array_equal(values, 1, err_msg=name)
        else:
            assert np.abs(values).max() <= 0.04 + 1e-6, name
            # A normal(0, 0.02) truncated at two stddevs has stddev 0.02 * 0.8796.
            assert abs(values.std() - 0.02 * 0.8796) < 0.002, name


def test_every_kernel_and_table_is_its_own_random_draw(encoder):
    # As the original's one initializer per variable. An unseeded Keras initializer
    # instance shared by two weights gives both the same values (the longer one's
    # first rows repeat the shorter one).
    first_values = {name: variable.numpy().ravel()[:64].tobytes()
                    for name, variable in encoder.google_variable_map().items()
                    if not name.endswith(("/bias", "/beta", "/gamma"))}
    repeated = [name for name in first_values
                if list(first_values.values()).count(first_values[name]) > 1]
    assert not repeated


def test_layer_norms_use_epsilon_1e_12(encoder):
    norms = [encoder.embedding_layer.layer_norm]
    for block in encoder.transformer_layers:
        norms += [block.attention.layer_norm, block.output_layer_norm]
    assert [n.epsilon for n in norms] == [1e-12] * 5


def test_gelu_is_the_original_tanh_approximation():
    x = np.linspace(-5, 5, 101).astype("float32")
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(gelu(x), expected, atol=1e-6)
    assert get_activation("gelu") is gelu
    with pytest.raises(ValueError, match="Unknown activation 'gelu_fast'"):
        get_activation("gelu_fast")


def test_hidden_act_selects_the_feed_forward_activation():
    keras.utils.set_random_seed(2)
    tanh_gelu = BertEncoder(tiny_config(hidden_act="gelu"))
    exact = BertEncoder(tiny_config(hidden_act="gelu_exact"))
    exact.set_weights(tanh_gelu.get_weights())
    inputs = make_inputs()
    difference = np.abs(tanh_gelu(inputs)["sequence_output"] - exact(inputs)["sequence_output"])
    assert 0 < difference.max() < 1e-2


def test_frozen_encoder_blocks_or_sublayers_stay_frozen_through_keras_files(tmp_path):
    assert BertEncoder(tiny_config(), trainable=False).trainable_variables == []
    encoder = BertEncoder(tiny_config())
    encoder.get_layer("layer_0").trainable = False
    encoder.get_layer("layer_1").attention.trainable = False
    trainable = [v.path for v in encoder.trainable_variables]
    assert not any(path.startswith(("layer_0/", "layer_1/attention/")) for path in trainable)
    assert any(path.startswith("layer_1/") for path in trainable)
    encoder.save(tmp_path / "encoder.keras")
    loaded = keras.models.load_model(tmp_path / "encoder.keras")
    assert [v.path for v in loaded.trainable_variables] == trainable


def test_a_block_reports_the_shape_of_its_outputs_at_query_positions(encoder):
    x = keras.Input((SEQ, 128))
    mask = keras.Input((SEQ,), dtype="int32")
    positions = keras.Input((3,), dtype="int32")
    block = encoder.transformer_layers[-1]
    assert block(x, mask, query_positions=positions).shape == (None, 3, 128)
    assert block.attention(x, mask, query_positions=positions).shape == (None, 3, 128)


def test_accepts_a_config_dict_and_exposes_the_config():
    encoder = BertEncoder(tiny_config().to_dict())
    assert encoder.config == tiny_config()
    assert len(encoder.transformer_layers) == 2


def test_rebuilds_from_config(encoder):
    harness.assert_rebuilds_from_config(encoder, make_inputs())


def test_keras_file_round_trip_gives_identical_outputs(encoder, tmp_path):
    restored = harness.assert_keras_file_round_trip(encoder, make_inputs(), tmp_path)
    assert restored.config == encoder.config


def test_an_explicit_mixed_policy_survives_saving_and_loading(tmp_path):
    """Saved in bf16 and loaded in a float32 process, the model is still bf16."""
    encoder = BertEncoder(tiny_config(), dtype="mixed_bfloat16")
    assert encoder.dtype_policy.name == "mixed_bfloat16"
    path = str(tmp_path / "encoder.keras")
    encoder.save(path)
    restored = keras.saving.load_model(path)
    assert restored.dtype_policy.name == "mixed_bfloat16"
    assert {layer.dtype_policy.name for layer in restored.layers
            if layer.weights and layer.name not in ("embeddings",)} >= {"mixed_bfloat16"}
    np.testing.assert_array_equal(restored(make_inputs())["sequence_output"],
                                  encoder(make_inputs())["sequence_output"])


def test_predicts_from_tf_data(encoder):
    harness.assert_predicts_from_tf_data(encoder, make_inputs())


def test_runs_under_jit_compile(encoder):
    harness.assert_jit_compile_matches(encoder, make_inputs())


def test_mixed_bfloat16_gives_float32_outputs_close_to_float32():
    harness.assert_mixed_bfloat16_outputs_float32(lambda: BertEncoder(tiny_config()), make_inputs())


def test_trains_under_jit_compile_with_gradients_for_every_variable(encoder):
    inputs = make_inputs()

    @tf.function(jit_compile=True)
    def gradients(x):
        with tf.GradientTape() as tape:
            out = encoder(x, training=True)
            loss = tf.reduce_sum(out["sequence_output"] ** 2) + tf.reduce_sum(out["pooled_output"])
        return tape.gradient(loss, encoder.trainable_variables)

    grads = gradients(inputs)
    assert len(grads) == len(encoder.google_variable_map())
    for variable, grad in zip(encoder.trainable_variables, grads, strict=True):
        assert grad is not None, variable.path
        assert np.all(np.isfinite(tf.convert_to_tensor(grad))), variable.path


def test_graph_uses_plain_matmuls_that_have_fast_cpu_kernels_in_float32_and_bfloat16():
    # TF's CPU Einsum has no oneDNN bfloat16 kernel (~10x slower), and a weight
    # broadcast over a batched matmul runs ~1.5x slower than one 2-D MatMul.
    encoder = BertEncoder(tiny_config())
    spec = {name: tf.TensorSpec([None, None], tf.int32) for name in make_inputs()}
    graph = tf.function(lambda x: encoder(x)).get_concrete_function(spec).graph
    ops = [op.type for op in graph.get_operations()]
    layers = encoder.config.num_hidden_layers
    assert "Einsum" not in ops
    assert ops.count("MatMul") == 6 * layers + 1  # q, k, v, output, 2 feed-forward; pooler
    assert ops.count("BatchMatMulV2") == 2 * layers  # attention scores and context


def test_keras_export_serves_the_sequence_and_pooled_outputs(encoder, tmp_path):
    encoder.export(str(tmp_path / "encoder"), verbose=False)
    inputs = make_inputs()
    served = tf.saved_model.load(str(tmp_path / "encoder")).signatures["serving_default"](
        **{name: tf.constant(value, tf.int32) for name, value in inputs.items()})
    assert sorted(served) == ["pooled_output", "sequence_output"]
    expected = encoder(inputs)
    for name in served:
        np.testing.assert_allclose(served[name], expected[name], atol=1e-5)
