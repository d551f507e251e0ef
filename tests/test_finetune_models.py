"""BertClassifier, BertTokenClassifier, BertSpanLabeler: outputs, init, names, serialization."""

import warnings

import harness
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_impl.config import BertConfig
from keras_bert_impl.models.classifier import BertClassifier
from keras_bert_impl.models.encoder import BertEncoder
from keras_bert_impl.models.span_labeler import BertSpanLabeler
from keras_bert_impl.models.token_classifier import BertTokenClassifier
from keras_bert_impl.training.optimization import create_optimizer

CONFIG = {"vocab_size": 60, "hidden_size": 32, "num_hidden_layers": 1,
          "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 32}


def encoder():
    return BertEncoder(BertConfig(**CONFIG))


def inputs(batch=3, seq=8):
    rng = np.random.default_rng(0)
    return {
        "input_word_ids": rng.integers(0, 60, (batch, seq)).astype("int32"),
        "input_mask": np.ones((batch, seq), "int32"),
        "input_type_ids": np.zeros((batch, seq), "int32"),
    }


BUILDERS = {
    "classifier": lambda: BertClassifier(encoder(), num_classes=3),
    "token_classifier": lambda: BertTokenClassifier(encoder(), num_classes=5),
    "span_labeler": lambda: BertSpanLabeler(encoder()),
}


def test_output_shapes_and_dtypes():
    assert BUILDERS["classifier"]()(inputs()).shape == (3, 3)
    assert BUILDERS["token_classifier"]()(inputs()).shape == (3, 8, 5)
    spans = BUILDERS["span_labeler"]()(inputs())
    assert spans["start_logits"].shape == spans["end_logits"].shape == (3, 8)
    assert spans["start_logits"].dtype == "float32"


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_head_is_truncated_normal_002_not_glorot(kind):
    model = BUILDERS[kind]()
    weights = model.head.output_weights.numpy()
    # Truncated at two standard deviations; glorot here would reach ~0.35.
    assert np.abs(weights).max() <= 0.04
    assert 0.01 < weights.std() < 0.03
    assert np.all(model.head.output_bias.numpy() == 0)


def test_google_variable_names_of_the_heads():
    classifier = BUILDERS["classifier"]()
    names = classifier.google_variable_map()
    assert names["output_weights"].shape == (3, 32) and names["output_bias"].shape == (3,)
    assert "bert/embeddings/word_embeddings" in names
    spans = BUILDERS["span_labeler"]().google_variable_map()
    assert spans["cls/squad/output_weights"].shape == (2, 32)
    assert spans["cls/squad/output_bias"].shape == (2,)
    tagger = BUILDERS["token_classifier"]().google_variable_map()
    assert tagger["output_weights"].shape == (5, 32)


def test_dropout_only_in_training():
    model = BertClassifier(encoder(), num_classes=2, dropout=0.5)
    x = inputs()
    harness.assert_outputs_close(model(x), model(x))
    assert not np.allclose(model(x, training=True), model(x, training=True))


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_serializes_and_round_trips_through_keras_files(kind, tmp_path):
    model = BUILDERS[kind]()
    harness.assert_rebuilds_from_config(model, inputs())
    harness.assert_keras_file_round_trip(model, inputs(), tmp_path)
    harness.assert_predicts_from_tf_data(model, inputs())


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_mixed_bfloat16_outputs_are_float32(kind):
    harness.assert_mixed_bfloat16_outputs_float32(BUILDERS[kind], inputs())


def test_span_labeler_compiles_with_xla():
    harness.assert_jit_compile_matches(BUILDERS["span_labeler"](), inputs())


def test_token_classifier_ignores_zero_weight_positions_in_the_loss():
    model = BUILDERS["token_classifier"]()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = inputs(batch=1)
    labels = np.zeros((1, 8), "int32")
    weights = np.zeros((1, 8), "float32")
    weights[0, 1] = 1.0
    other = labels.copy()
    other[0, 2:] = 4  # differs only where the weight is 0
    loss = model.evaluate(x, labels, sample_weight=weights, verbose=0)
    assert loss == pytest.approx(model.evaluate(x, other, sample_weight=weights, verbose=0))


def test_bert_finetune_ner_loss_is_the_mean_over_labelled_wordpieces_not_all_positions():
    from keras_bert_impl.cli.finetune_tasks import NerTask

    loss = NerTask.compile_args(None)["loss"]
    logits = np.random.default_rng(0).normal(size=(2, 8, 5)).astype("float32")
    labels = np.ones((2, 8), "int32")
    weights = np.zeros((2, 8), "float32")
    weights[:, 1:4] = 1.0  # three words a row, the rest [CLS], [SEP], ## pieces, padding
    per_position = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    expected = float(np.sum(weights * per_position) / weights.sum())
    assert float(loss(labels, logits, sample_weight=weights)) == pytest.approx(expected)


@pytest.mark.parametrize("kind", ["token_classifier", "span_labeler"])
def test_labelers_train_without_warning_about_or_decaying_the_pooler_they_never_read(kind):
    model = BUILDERS[kind]()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if kind == "span_labeler":
        labels = {"start_logits": np.array([1, 2, 3]), "end_logits": np.array([2, 3, 4])}
        model.compile(optimizer=create_optimizer(1e-2, 10, 1),
                      loss={"start_logits": loss, "end_logits": loss})
    else:
        labels = np.ones((3, 8), "int32")
        model.compile(optimizer=create_optimizer(1e-2, 10, 1), loss=loss)
    pooler = model.encoder.pooler_layer
    pooler_paths = {weight.path for weight in pooler.weights}
    before = {weight.path: weight.numpy() for weight in model.weights}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(inputs(), labels, epochs=2, verbose=0)
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]
    for weight in model.weights:
        changed = not np.array_equal(weight.numpy(), before[weight.path])
        assert changed == (weight.path not in pooler_paths), weight.path
    assert pooler.trainable  # the encoder itself is untouched, and still counted
    assert sum(w.numpy().size for w in model.trainable_weights + model.non_trainable_weights) \
        == sum(w.numpy().size for w in model.weights)


def test_classifier_logits_and_gradients_equal_the_full_sequence_computation():
    keras.utils.set_random_seed(3)
    config = BertConfig(**{**CONFIG, "num_hidden_layers": 2, "hidden_dropout_prob": 0.0,
                           "attention_probs_dropout_prob": 0.0})
    classifier = BertClassifier(BertEncoder(config), num_classes=3)
    features = {k: tf.constant(v) for k, v in inputs().items()}
    features["input_mask"] = tf.constant(np.arange(8)[None, :] < [[8], [5], [2]], tf.int32)

    def logits_and_gradients(logits_of):
        with tf.GradientTape() as tape:
            logits = logits_of(features)
            loss = tf.reduce_sum(tf.nn.log_softmax(logits)[:, 1])
        return logits, tape.gradient(loss, classifier.trainable_variables)

    logits, gradients = logits_and_gradients(lambda x: classifier(x, training=True))
    full_logits, full_gradients = logits_and_gradients(lambda x: classifier.head(
        classifier.encoder(x, training=True)["pooled_output"]))
    np.testing.assert_allclose(logits, full_logits, rtol=1e-5, atol=1e-6)
    for variable, gradient, full in zip(classifier.trainable_variables, gradients, full_gradients):
        np.testing.assert_allclose(tf.convert_to_tensor(gradient), tf.convert_to_tensor(full),
                                   rtol=1e-4, atol=1e-6, err_msg=variable.path)


def compile_and_fit(model, epochs=1):
    """Compiles `model` with the BERT optimizer and fits it on three examples."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if isinstance(model, BertSpanLabeler):
        labels = {"start_logits": np.array([1, 2, 3]), "end_logits": np.array([2, 3, 4])}
        loss = {"start_logits": loss, "end_logits": loss}
    elif isinstance(model, BertTokenClassifier):
        labels = np.ones((3, 8), "int32")
    else:
        labels = np.array([0, 1, 2])
    model.compile(optimizer=create_optimizer(1e-3, 10, 1), loss=loss)
    model.fit(inputs(), labels, epochs=epochs, verbose=0)
    return labels


def test_a_compiled_classifier_loads_compiled_with_its_optimizer_state(tmp_path):
    encoder_ = encoder()
    encoder_.trainable = False
    classifier = BertClassifier(encoder_, num_classes=3)
    labels = compile_and_fit(classifier)
    classifier.save(tmp_path / "classifier.keras")
    loaded = keras.models.load_model(tmp_path / "classifier.keras")
    assert [v.path for v in loaded.trainable_variables] == [
        v.path for v in classifier.trainable_variables]  # the head only
    assert int(loaded.optimizer.iterations) == 1
    for saved, restored in zip(classifier.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(saved, restored)
    loaded.fit(inputs(), labels, epochs=1, verbose=0)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_every_task_model_reloads_with_its_optimizer_state(kind, tmp_path):
    model = BUILDERS[kind]()
    compile_and_fit(model, epochs=2)
    model.save(tmp_path / "model.keras")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.models.load_model(tmp_path / "model.keras")
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    assert int(loaded.optimizer.iterations) == 2
    assert [v.path for v in loaded.optimizer.variables] == [
        v.path for v in model.optimizer.variables]
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(saved, restored, err_msg=saved.path)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_a_frozen_head_and_encoder_sublayer_stay_frozen_with_the_optimizer_state(kind, tmp_path):
    model = BUILDERS[kind]()
    head = [layer for layer in model.layers if layer is not model.encoder and layer.weights][-1]
    head.trainable = False
    model.encoder.get_layer("layer_0").attention.trainable = False
    compile_and_fit(model, epochs=2)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert [v.path for v in loaded.trainable_variables] == [
        v.path for v in model.trainable_variables]
    assert int(loaded.optimizer.iterations) == 2
    assert [v.path for v in loaded.optimizer.variables] == [
        v.path for v in model.optimizer.variables]


def test_classifier_takes_ids_of_any_numeric_dtype_as_its_int32_inputs():
    classifier = BUILDERS["classifier"]()
    expected = classifier(inputs()).numpy()
    for dtype in ("int64", "float64"):
        converted = {name: value.astype(dtype) for name, value in inputs().items()}
        np.testing.assert_array_equal(classifier(converted), expected)


@pytest.mark.parametrize("kind", ["classifier", "token_classifier"])
def test_a_mixed_precision_model_predicts_the_same_after_loading_under_another_policy(
        kind, tmp_path):
    """Its head (and the dropout before it) are float32 whatever the global policy is
    when the model is built or loaded: the head's input was rounded to bfloat16 before,
    and not after loading into a float32 process."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = BUILDERS[kind]()
    finally:
        keras.config.set_dtype_policy(previous)
    predict = tf.function(lambda m, x: m(x), jit_compile=True, reduce_retracing=True)
    expected = predict(model, inputs()).numpy()
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.encoder.dtype_policy.name == "mixed_bfloat16"
    np.testing.assert_array_equal(tf.function(lambda x: loaded(x), jit_compile=True)(inputs()),
                                  expected)


def test_a_mixed_float16_model_loaded_in_a_float32_process_still_scales_its_loss(tmp_path):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        BUILDERS["classifier"]().save(tmp_path / "model.keras")
    finally:
        keras.config.set_dtype_policy(previous)
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    loaded.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert isinstance(loaded.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("kind", ["classifier", "pretrainer"])
@pytest.mark.parametrize("bad, words", [
    (lambda x: {k: v[0] for k, v in x.items()},
     "input 'input_word_ids' has shape (8,); expected [batch, sequence]"),
    (lambda x: {k: v[None] for k, v in x.items()}, "has shape (1, 3, 8)"),
    (lambda x: tuple(x.values()), "takes a dict of ['input_word_ids'"),
])
def test_malformed_inputs_are_errors_saying_what_is_wrong(kind, bad, words):
    from keras_bert_impl.models.pretrainer import BertPretrainer
    model = BUILDERS["classifier"]() if kind == "classifier" else BertPretrainer(encoder())
    features = inputs()
    if kind == "pretrainer":
        features["masked_lm_positions"] = np.ones((3, 2), "int32")
    with pytest.raises(ValueError) as raised:
        model(bad(features))
    assert words in str(raised.value)


def _one_step_of_fit(kind, strategy, initial_weights):
    config = BertConfig(**CONFIG, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rows = inputs(batch=64)
    with strategy.scope():
        if kind == "classifier":
            model = BertClassifier(BertEncoder(config), num_classes=3)
            model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
            data = (rows, np.arange(64) % 3)
        elif kind == "token_classifier":  # with per-token sample weights
            model = BertTokenClassifier(BertEncoder(config), num_classes=5, dropout=0.0)
            model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
            data = (rows, np.arange(64 * 8).reshape(64, 8) % 5,
                    (np.arange(64 * 8).reshape(64, 8) % 3 == 0).astype("float32"))
        else:  # a dict of targets
            model = BertSpanLabeler(BertEncoder(config))
            model.compile(optimizer=keras.optimizers.SGD(0.5),
                          loss={"start_logits": loss, "end_logits": loss})
            data = (rows, {"start_logits": np.arange(64) % 8, "end_logits": np.arange(64) % 5})
    model.set_weights(initial_weights or model.get_weights())
    dataset = tf.data.Dataset.from_tensor_slices(data)
    dataset = dataset.shuffle(64, seed=1, reshuffle_each_iteration=True).batch(8).repeat()
    start = model.get_weights()
    model.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0)
    return start, model.get_weights()


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_fit_under_a_strategy_trains_on_the_batches_it_would_without_one(kind):
    """Under a strategy Keras read a batch to build the model: a throwaway pass of the
    dataset, so a reshuffling one trained in its second order, and a resumed
    `bert-finetune`, skipping the batches trained on in the first, read other data."""
    initial, plain = _one_step_of_fit(kind, tf.distribute.get_strategy(), None)
    _, distributed = _one_step_of_fit(kind, tf.distribute.OneDeviceStrategy("/cpu:0"), initial)
    assert max(np.abs(a - b).max() for a, b in zip(plain, initial)) > 1e-3  # it trained
    for before, after in zip(plain, distributed):
        np.testing.assert_allclose(after, before, atol=1e-6)


def test_under_a_strategy_fit_and_evaluate_read_each_dataset_once_per_pass():
    passes = {"train": 0, "validation": 0}
    rows = inputs(batch=16)

    def counted(name):
        def examples():
            passes[name] += 1
            for i in range(16):
                yield {k: v[i] for k, v in rows.items()}, i % 3
        signature = ({k: tf.TensorSpec([8], tf.int32) for k in rows},
                     tf.TensorSpec([], tf.int64))
        dataset = tf.data.Dataset.from_generator(examples, output_signature=signature)
        return dataset.batch(4).apply(tf.data.experimental.assert_cardinality(4))

    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        model = BUILDERS["classifier"]()
        model.compile(optimizer="sgd",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(counted("train"), validation_data=counted("validation"), epochs=2, verbose=0)
    assert passes == {"train": 2, "validation": 2}
    model.evaluate(counted("validation"), verbose=0)
    assert passes["validation"] == 3


def test_under_a_strategy_inputs_that_are_not_a_dict_are_named_as_such():
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        model = BUILDERS["classifier"]()
        model.compile(optimizer="sgd",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rows = inputs(batch=8)
    dataset = tf.data.Dataset.from_tensor_slices((tuple(rows.values()), np.zeros(8))).batch(4)
    with pytest.raises(ValueError, match=r"BertClassifier takes a dict of \['input_word_ids'"):
        model.fit(dataset, verbose=0)
