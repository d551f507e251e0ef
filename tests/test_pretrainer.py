"""BertPretrainer: MLM + NSP heads with the original numerics, loss and checkpoint names."""

import math
import warnings

import harness
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_impl import BertConfig, BertEncoder
from keras_bert_impl.models.pretrainer import BertPretrainer
from keras_bert_impl.training.optimization import create_optimizer

VOCAB, SEQ, P, BATCH = 97, 16, 4, 3


def tiny_config(**overrides) -> BertConfig:
    return BertConfig.from_preset("bert_tiny", vocab_size=VOCAB, max_position_embeddings=64,
                                  **overrides)


def make_features(batch=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    weights = np.ones((batch, P), "float32")
    weights[0, -2:] = 0.0  # padded prediction slots, as the data pipeline writes them
    return {
        "input_word_ids": rng.integers(1, VOCAB, (batch, SEQ)).astype("int32"),
        "input_mask": np.ones((batch, SEQ), "int32"),
        "input_type_ids": (np.arange(SEQ)[None, :] >= SEQ // 2).repeat(batch, 0).astype("int32"),
        "masked_lm_positions": rng.integers(1, SEQ, (batch, P)).astype("int32"),
        "masked_lm_ids": rng.integers(1, VOCAB, (batch, P)).astype("int32"),
        "masked_lm_weights": weights,
        "next_sentence_labels": rng.integers(0, 2, (batch,)).astype("int32"),
    }


def model_inputs(features):
    names = ("input_word_ids", "input_mask", "input_type_ids", "masked_lm_positions")
    return {name: features[name] for name in names}


@pytest.fixture(scope="module")
def pretrainer():
    keras.utils.set_random_seed(1)
    return BertPretrainer(BertEncoder(tiny_config()))


def _gelu(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_takes_the_whole_feature_dict_and_returns_float32_logits(pretrainer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "structure of inputs doesn't match" warning
        outputs = pretrainer(make_features())
    assert outputs["mlm_logits"].shape == (BATCH, P, VOCAB)
    assert outputs["nsp_logits"].shape == (BATCH, 2)
    assert outputs["mlm_logits"].dtype == tf.float32
    assert outputs["nsp_logits"].dtype == tf.float32


def test_mlm_logits_are_the_original_transform_and_tied_decoder_at_masked_positions(pretrainer):
    features = make_features()
    variables = {k: np.asarray(v) for k, v in pretrainer.google_variable_map().items()}
    encoder_inputs = {k: features[k] for k in ("input_word_ids", "input_mask", "input_type_ids")}
    sequence = np.asarray(pretrainer.encoder(encoder_inputs)["sequence_output"])
    gathered = np.take_along_axis(sequence, features["masked_lm_positions"][..., None], axis=1)
    prefix = "cls/predictions/"
    hidden = _gelu(gathered @ variables[prefix + "transform/dense/kernel"]
                   + variables[prefix + "transform/dense/bias"])
    hidden = _layer_norm(hidden, variables[prefix + "transform/LayerNorm/gamma"],
                         variables[prefix + "transform/LayerNorm/beta"])
    word_embeddings = variables["bert/embeddings/word_embeddings"]
    expected = hidden @ word_embeddings.T + variables[prefix + "output_bias"]
    np.testing.assert_allclose(pretrainer(features)["mlm_logits"], expected, atol=1e-4, rtol=1e-4)


def test_decoder_is_the_encoders_word_embedding_variable(pretrainer):
    assert pretrainer.mlm_head.embedding_table is pretrainer.encoder.get_embedding_table()
    paths = [v.path for v in pretrainer.trainable_variables]
    assert len(paths) == len(set(paths))


def test_nsp_logits_are_pooled_output_times_transposed_output_weights(pretrainer):
    features = make_features()
    encoder_inputs = {k: features[k] for k in ("input_word_ids", "input_mask", "input_type_ids")}
    pooled = np.asarray(pretrainer.encoder(encoder_inputs)["pooled_output"])
    variables = pretrainer.google_variable_map()
    weights = np.asarray(variables["cls/seq_relationship/output_weights"])
    assert weights.shape == (2, 128)
    expected = pooled @ weights.T + np.asarray(variables["cls/seq_relationship/output_bias"])
    np.testing.assert_allclose(pretrainer(features)["nsp_logits"], expected, atol=1e-5)


def test_loss_is_the_original_weighted_mlm_mean_plus_nsp_mean(pretrainer):
    features = make_features()
    outputs = pretrainer(features)
    log_probs = np.asarray(tf.nn.log_softmax(outputs["mlm_logits"]))
    mlm_nll = -np.take_along_axis(log_probs, features["masked_lm_ids"][..., None], -1)[..., 0]
    weights = features["masked_lm_weights"]
    mlm = (weights * mlm_nll).sum() / (weights.sum() + 1e-5)
    nsp_log_probs = np.asarray(tf.nn.log_softmax(outputs["nsp_logits"]))
    nsp = -np.take_along_axis(nsp_log_probs, features["next_sentence_labels"][:, None], -1).mean()
    loss = pretrainer.compute_loss(x=features, y_pred=outputs)
    np.testing.assert_allclose(float(loss), mlm + nsp, rtol=1e-5)


def test_labels_missing_from_the_feature_dict_are_a_clear_error(pretrainer):
    features = make_features()
    labels = {name: features.pop(name) for name in ("masked_lm_ids", "next_sentence_labels")}
    pretrainer.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"lacks \['masked_lm_ids', 'next_sentence_labels'\].*"
                       r"not as a separate y"):
        pretrainer.fit(features, labels, epochs=1, verbose=0)


def test_sample_and_class_weights_are_a_clear_error_not_silently_ignored(pretrainer):
    features = make_features()
    pretrainer.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="sample_weight and class_weight are not taken"):
        pretrainer.fit(features, sample_weight=np.ones(BATCH, "float32"), verbose=0)
    with pytest.raises(ValueError, match="sample_weight and class_weight are not taken"):
        pretrainer.fit(features, class_weight={0: 1.0, 1: 2.0}, verbose=0)
    with pytest.raises(ValueError, match="sample_weight and class_weight are not taken"):
        pretrainer.evaluate(features, sample_weight=np.ones(BATCH, "float32"), verbose=0)
    with pytest.raises(ValueError, match="sample_weight and class_weight are not taken"):
        pretrainer.evaluate(features, None, None, 0, np.ones(BATCH, "float32"))  # positional


def test_mlm_accuracy_counts_only_positions_with_weight(pretrainer):
    features = make_features()
    logits = np.full((BATCH, P, VOCAB), -10.0, "float32")
    ids = features["masked_lm_ids"]
    for b in range(BATCH):
        for p in range(P):
            logits[b, p, ids[b, p]] = 10.0
    logits[0, -2:] = 0.0  # wrong, but these slots have weight 0
    logits[0, -2:, (ids[0, -2:] + 1) % VOCAB] = 10.0
    nsp_logits = np.zeros((BATCH, 2), "float32")
    pretrainer.reset_metrics()
    pretrainer.compute_metrics(features, None, {"mlm_logits": logits, "nsp_logits": nsp_logits})
    assert float(pretrainer.mlm_accuracy.result()) == 1.0


def test_mlm_accuracy_hit_is_argmax_equals_label(pretrainer):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(BATCH, P, VOCAB)).astype("float32")
    labels = rng.integers(0, VOCAB, (BATCH, P)).astype("int32")
    labels[:, ::2] = logits.argmax(-1)[:, ::2]  # half the slots right, the rest mostly wrong
    features = {**make_features(), "masked_lm_ids": labels,
                "masked_lm_weights": np.ones((BATCH, P), "float32")}
    pretrainer.reset_metrics()
    pretrainer.compute_metrics(
        features, None, {"mlm_logits": logits, "nsp_logits": np.zeros((BATCH, 2), "float32")})
    expected = (logits.argmax(-1) == labels).mean()
    assert float(pretrainer.mlm_accuracy.result()) == pytest.approx(expected)


def test_on_a_tie_for_the_top_logit_only_the_first_index_is_a_hit_as_argmax(pretrainer):
    # bfloat16 logits tie often (2.5 % of positions in a check at initialisation).
    logits = np.zeros((BATCH, P, VOCAB), "float32")
    logits[..., 3] = logits[..., 7] = 2.0
    labels = np.full((BATCH, P), 7, "int32")
    labels[0] = 3
    features = {**make_features(), "masked_lm_ids": labels,
                "masked_lm_weights": np.ones((BATCH, P), "float32")}
    pretrainer.reset_metrics()
    pretrainer.compute_metrics(
        features, None, {"mlm_logits": logits, "nsp_logits": np.zeros((BATCH, 2), "float32")})
    assert float(pretrainer.mlm_accuracy.result()) == pytest.approx(1 / BATCH)


def test_mlm_accuracy_is_the_weighted_fraction_of_hits(pretrainer):
    features = make_features()
    ids = features["masked_lm_ids"]
    logits = np.zeros((BATCH, P, VOCAB), "float32")
    np.put_along_axis(logits, ((ids + 1) % VOCAB)[..., None], 5.0, -1)  # every top-1 wrong
    logits[1, :, :] = 0.0
    np.put_along_axis(logits[1], ids[1][..., None], 5.0, -1)  # but example 1 is right
    pretrainer.reset_metrics()
    pretrainer.compute_metrics(
        features, None, {"mlm_logits": logits, "nsp_logits": np.zeros((BATCH, 2), "float32")})
    weights = features["masked_lm_weights"]
    accuracy = float(pretrainer.mlm_accuracy.result())
    assert accuracy == pytest.approx(weights[1].sum() / weights.sum())


def test_decoder_and_its_gradients_are_2d_matmuls_over_all_masked_positions(pretrainer):
    # A [batch, P, hidden] x [hidden, vocab] product broadcast over the batch
    # makes the table's gradient a [batch, vocab, hidden] batched matmul.
    features = {name: tf.constant(value) for name, value in make_features().items()}
    table = pretrainer.encoder.get_embedding_table()

    def loss_and_gradient(x):
        with tf.GradientTape() as tape:
            loss = pretrainer.compute_loss(x=x, y_pred=pretrainer(x, training=True))
        return tape.gradient(loss, table.value)

    graph = tf.function(loss_and_gradient).get_concrete_function(features).graph
    vocab_outputs = [op for op in graph.get_operations() if op.type.endswith("MatMul")
                     or op.type.startswith("BatchMatMul")
                     if VOCAB in op.outputs[0].shape.as_list()]
    assert sorted(op.type for op in vocab_outputs) == ["MatMul", "MatMul"]  # logits, table grad
    assert all(op.outputs[0].shape.rank == 2 for op in vocab_outputs)


def _full_sequence_outputs(pretrainer, features, training):
    """The heads on the whole `sequence_output`, as the original computes them."""
    encoded = pretrainer.encoder(
        {k: features[k] for k in ("input_word_ids", "input_mask", "input_type_ids")},
        training=training)
    return {"mlm_logits": pretrainer.mlm_head(encoded["sequence_output"],
                                              features["masked_lm_positions"]),
            "nsp_logits": pretrainer.nsp_head(encoded["pooled_output"])}


def test_a_batch_without_masked_positions_gives_empty_mlm_logits(pretrainer):
    features = model_inputs(make_features())
    features["masked_lm_positions"] = np.zeros((BATCH, 0), "int32")
    for outputs in (pretrainer(features), tf.function(pretrainer, jit_compile=True)(features)):
        assert outputs["mlm_logits"].shape == (BATCH, 0, VOCAB)
        full = _full_sequence_outputs(pretrainer, features, False)
        np.testing.assert_allclose(outputs["nsp_logits"], full["nsp_logits"],
                                   rtol=1e-5, atol=1e-6)


def test_a_mixed_precision_encoder_in_a_float32_model_computes_as_the_full_graph():
    # As a model trained under mixed_bfloat16 and loaded in a float32 process.
    pretrainer = BertPretrainer(BertEncoder(tiny_config(), dtype="mixed_bfloat16"))
    features = model_inputs(make_features())
    outputs, full = pretrainer(features), _full_sequence_outputs(pretrainer, features, False)
    for name in ("mlm_logits", "nsp_logits"):
        np.testing.assert_allclose(outputs[name], full[name], rtol=1e-6, atol=1e-6)


def test_loss_and_every_gradient_equal_the_full_sequence_computation():
    keras.utils.set_random_seed(2)
    pretrainer = BertPretrainer(BertEncoder(tiny_config(hidden_dropout_prob=0.0,
                                                        attention_probs_dropout_prob=0.0)))
    features = {name: tf.constant(value) for name, value in make_features().items()}
    features["input_mask"] = tf.constant(np.arange(SEQ)[None, :] < [[SEQ], [9], [5]], tf.int32)

    def loss_and_gradients(outputs_of):
        with tf.GradientTape() as tape:
            loss = pretrainer.compute_loss(x=features, y_pred=outputs_of(features))
        return loss, tape.gradient(loss, pretrainer.trainable_variables)

    loss, gradients = loss_and_gradients(lambda x: pretrainer(x, training=True))
    full_loss, full_gradients = loss_and_gradients(
        lambda x: _full_sequence_outputs(pretrainer, x, training=True))
    np.testing.assert_allclose(loss, full_loss, rtol=1e-6)
    for variable, gradient, full in zip(pretrainer.trainable_variables, gradients, full_gradients):
        np.testing.assert_allclose(tf.convert_to_tensor(gradient), tf.convert_to_tensor(full),
                                   rtol=1e-4, atol=1e-6, err_msg=variable.path)


def test_the_last_blocks_feed_forward_runs_only_at_cls_and_the_masked_positions(pretrainer):
    features = {name: tf.constant(value) for name, value in make_features().items()}
    graph = tf.function(lambda x: pretrainer(x, training=True)).get_concrete_function(
        features).graph
    intermediate = pretrainer.encoder.config.intermediate_size
    rows = sorted(op.outputs[0].shape[0] for op in graph.get_operations()
                  if op.type == "MatMul" and op.outputs[0].shape[-1] == intermediate)
    assert rows == [BATCH * (1 + P), BATCH * SEQ]  # bert_tiny: two blocks


def test_google_variable_map_names_every_variable_once_in_original_shapes(pretrainer):
    mapping = pretrainer.google_variable_map()
    heads = {name: tuple(v.shape) for name, v in mapping.items() if name.startswith("cls/")}
    assert heads == {
        "cls/predictions/transform/dense/kernel": (128, 128),
        "cls/predictions/transform/dense/bias": (128,),
        "cls/predictions/transform/LayerNorm/gamma": (128,),
        "cls/predictions/transform/LayerNorm/beta": (128,),
        "cls/predictions/output_bias": (VOCAB,),
        "cls/seq_relationship/output_weights": (2, 128),
        "cls/seq_relationship/output_bias": (2,),
    }
    assert set(pretrainer.encoder.google_variable_map()) <= set(mapping)
    mapped = {id(v) for v in mapping.values()}
    assert mapped == {id(v) for v in pretrainer.weights}


def test_head_kernels_are_truncated_normal_with_stddev_0_02(pretrainer):
    mapping = pretrainer.google_variable_map()
    for name in ("cls/predictions/transform/dense/kernel", "cls/seq_relationship/output_weights"):
        values = np.asarray(mapping[name])
        assert np.abs(values).max() <= 2 * 0.02 + 1e-7, name
        assert 0.01 < values.std() < 0.02, name  # truncation at 2 sigma narrows the spread
    assert not np.asarray(mapping["cls/predictions/output_bias"]).any()
    assert np.allclose(mapping["cls/predictions/transform/LayerNorm/gamma"], 1.0)
    assert pretrainer.mlm_head.layer_norm.epsilon == 1e-12


def test_rebuilds_from_config(pretrainer):
    harness.assert_rebuilds_from_config(pretrainer, make_features())


def test_keras_file_round_trip_gives_identical_outputs(pretrainer, tmp_path):
    harness.assert_keras_file_round_trip(pretrainer, make_features(), tmp_path)


def test_runs_under_jit_compile(pretrainer):
    harness.assert_jit_compile_matches(pretrainer, model_inputs(make_features()), atol=1e-4)


def test_predicts_from_tf_data(pretrainer):
    harness.assert_predicts_from_tf_data(pretrainer, model_inputs(make_features()))


def test_mixed_bfloat16_gives_float32_logits_close_to_float32():
    harness.assert_mixed_bfloat16_outputs_float32(
        lambda: BertPretrainer(BertEncoder(tiny_config())), make_features(), atol=0.15)


def test_fit_under_mixed_bfloat16_with_steps_per_execution_reports_the_four_metrics():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(2)
        model = BertPretrainer(BertEncoder(tiny_config()))
        model.compile(optimizer=create_optimizer(1e-3, num_train_steps=40, num_warmup_steps=0),
                      steps_per_execution=2)
        dataset = tf.data.Dataset.from_tensors(make_features(batch=8)).repeat()
        history = model.fit(dataset, steps_per_epoch=4, epochs=2, verbose=0, shuffle=False).history
    finally:
        keras.config.set_dtype_policy(previous)
    for name in ("loss", "mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"):
        assert np.isfinite(history[name]).all(), name
    assert history["mlm_loss"][-1] < history["mlm_loss"][0]
    assert int(model.optimizer.iterations.numpy()) == 8


def test_a_frozen_head_stays_frozen_through_a_keras_file(tmp_path):
    pretrainer = BertPretrainer(BertEncoder(tiny_config()))
    pretrainer.get_layer("predictions").trainable = False
    pretrainer.save(tmp_path / "pretrainer.keras")
    loaded = keras.models.load_model(tmp_path / "pretrainer.keras")
    assert not loaded.get_layer("predictions").trainable
    assert [v.path for v in loaded.trainable_variables] == [
        v.path for v in pretrainer.trainable_variables]


def test_a_copy_from_its_config_and_weights_keeps_the_head_tied_to_the_encoder(pretrainer):
    copy = type(pretrainer).from_config(pretrainer.get_config())
    copy.set_weights(pretrainer.get_weights())
    assert copy.mlm_head.embedding_table is copy.encoder.get_embedding_table()
    features = make_features()
    for name, value in pretrainer(features).items():
        np.testing.assert_array_equal(copy(features)[name].numpy(), value.numpy())

