"""Original-format (google-research/bert) checkpoints: load, save, and clear errors."""

import math
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_impl import (
    BertConfig,
    BertEncoder,
    load_google_checkpoint,
    save_google_checkpoint,
)

CONFIG = BertConfig.from_preset(
    "bert_tiny", vocab_size=101, max_position_embeddings=32, num_attention_heads=4
)


def original_variables(config: BertConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights under the names and shapes that google-research/bert's modeling.py creates."""
    h, ffn = config.hidden_size, config.intermediate_size
    shapes = {
        "bert/embeddings/word_embeddings": (config.vocab_size, h),
        "bert/embeddings/token_type_embeddings": (config.type_vocab_size, h),
        "bert/embeddings/position_embeddings": (config.max_position_embeddings, h),
        "bert/embeddings/LayerNorm/gamma": (h,),
        "bert/embeddings/LayerNorm/beta": (h,),
        "bert/pooler/dense/kernel": (h, h),
        "bert/pooler/dense/bias": (h,),
    }
    for i in range(config.num_hidden_layers):
        scope = f"bert/encoder/layer_{i}"
        for name in (
            "attention/self/query",
            "attention/self/key",
            "attention/self/value",
            "attention/output/dense",
        ):
            shapes[f"{scope}/{name}/kernel"] = (h, h)
            shapes[f"{scope}/{name}/bias"] = (h,)
        shapes[f"{scope}/intermediate/dense/kernel"] = (h, ffn)
        shapes[f"{scope}/intermediate/dense/bias"] = (ffn,)
        shapes[f"{scope}/output/dense/kernel"] = (ffn, h)
        shapes[f"{scope}/output/dense/bias"] = (h,)
        for name in ("attention/output/LayerNorm", "output/LayerNorm"):
            shapes[f"{scope}/{name}/gamma"] = (h,)
            shapes[f"{scope}/{name}/beta"] = (h,)
    rng = np.random.default_rng(seed)
    return {
        name: ((1.0 if name.endswith("gamma") else 0.0) + rng.normal(0, 0.1, shape)).astype(
            "float32"
        )
        for name, shape in shapes.items()
    }


def write_with_tf1_saver(prefix: str, values: dict[str, np.ndarray]) -> None:
    """An independent writer: TF1 variables in a graph, saved by tf.compat.v1.train.Saver."""
    with tf.Graph().as_default():
        variables = [
            tf.compat.v1.get_variable(name, initializer=value) for name, value in values.items()
        ]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, prefix, write_meta_graph=False)


def original_bert_forward(w: dict[str, np.ndarray], config: BertConfig, ids, mask, types):
    """modeling.py's forward pass in numpy, reading the weights by their checkpoint names."""

    def layer_norm(x, scope):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * w[f"{scope}/gamma"] + w[f"{scope}/beta"]

    def dense(x, scope):
        return x @ w[f"{scope}/kernel"] + w[f"{scope}/bias"]

    def gelu(x):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

    batch, seq = ids.shape
    heads, size = config.num_attention_heads, config.attention_head_size
    x = (
        w["bert/embeddings/word_embeddings"][ids]
        + w["bert/embeddings/token_type_embeddings"][types]
        + w["bert/embeddings/position_embeddings"][:seq]
    )
    x = layer_norm(x, "bert/embeddings/LayerNorm")
    adder = (1.0 - mask[:, None, None, :]) * -10000.0
    for i in range(config.num_hidden_layers):
        scope = f"bert/encoder/layer_{i}"

        def split(t):
            return t.reshape(batch, seq, heads, size).transpose(0, 2, 1, 3)

        q, k, v = (
            split(dense(x, f"{scope}/attention/self/{n}")) for n in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + adder
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, heads * size)
        attended = layer_norm(
            dense(context, f"{scope}/attention/output/dense") + x,
            f"{scope}/attention/output/LayerNorm",
        )
        ffn = dense(gelu(dense(attended, f"{scope}/intermediate/dense")), f"{scope}/output/dense")
        x = layer_norm(ffn + attended, f"{scope}/output/LayerNorm")
    pooled = np.tanh(dense(x[:, 0], "bert/pooler/dense"))
    return x, pooled


def inputs(seq=12):
    rng = np.random.default_rng(5)
    mask = (np.arange(seq)[None, :] < np.array([[seq], [seq - 4]])).astype("int32")
    return {
        "input_word_ids": rng.integers(0, CONFIG.vocab_size, (2, seq)).astype("int32"),
        "input_mask": mask,
        "input_type_ids": rng.integers(0, 2, (2, seq)).astype("int32"),
    }


@pytest.fixture(scope="module")
def tf1_checkpoint(tmp_path_factory):
    """A checkpoint as the original pretraining leaves it: with heads and Adam slots."""
    weights = original_variables(CONFIG)
    extra = {
        "cls/predictions/output_bias": np.zeros([CONFIG.vocab_size], "float32"),
        "cls/seq_relationship/output_weights": np.ones([2, CONFIG.hidden_size], "float32"),
        "bert/pooler/dense/kernel/adam_m": np.zeros([CONFIG.hidden_size] * 2, "float32"),
        "bert/pooler/dense/kernel/adam_v": np.zeros([CONFIG.hidden_size] * 2, "float32"),
        "global_step": np.array(7, "int64"),
    }
    prefix = str(tmp_path_factory.mktemp("tf1") / "bert_model.ckpt")
    write_with_tf1_saver(prefix, {**weights, **extra})
    return prefix, weights


@pytest.fixture
def encoder():
    return BertEncoder(CONFIG)


def test_loads_a_tf1_checkpoint_and_computes_the_original_formulas(tf1_checkpoint, encoder):
    prefix, weights = tf1_checkpoint
    load_google_checkpoint(encoder, prefix)
    x = inputs()
    sequence, pooled = original_bert_forward(
        weights, CONFIG, x["input_word_ids"], x["input_mask"].astype("float32"), x["input_type_ids"]
    )
    out = encoder(x)
    np.testing.assert_allclose(out["sequence_output"], sequence, atol=1e-4)
    np.testing.assert_allclose(out["pooled_output"], pooled, atol=1e-4)


def test_load_reports_unused_weights_and_optimizer_state_separately(tf1_checkpoint, encoder):
    result = load_google_checkpoint(encoder, tf1_checkpoint[0])
    assert result.unused == ["cls/predictions/output_bias", "cls/seq_relationship/output_weights"]
    assert result.optimizer_variables == [
        "bert/pooler/dense/kernel/adam_m",
        "bert/pooler/dense/kernel/adam_v",
        "global_step",
    ]
    assert len(result.loaded) == len(encoder.weights)
    assert result.missing == []


def test_accepts_the_directory_and_the_file_names(tf1_checkpoint, encoder):
    prefix, weights = tf1_checkpoint
    for path in (os.path.dirname(prefix), prefix + ".index", prefix + ".data-00000-of-00001"):
        encoder.get_embedding_table().assign(np.zeros([CONFIG.vocab_size, CONFIG.hidden_size]))
        assert load_google_checkpoint(encoder, path).path == prefix
        np.testing.assert_array_equal(
            encoder.get_embedding_table().numpy(), weights["bert/embeddings/word_embeddings"]
        )


def test_save_then_load_round_trip_is_exact(tmp_path, encoder):
    x = inputs()
    prefix = save_google_checkpoint(encoder, tmp_path / "out" / "bert_model.ckpt")
    assert prefix == str(tmp_path / "out" / "bert_model.ckpt")
    restored = BertEncoder(CONFIG)
    load_google_checkpoint(restored, tmp_path / "out")
    for ours, theirs in zip(encoder.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(encoder(x)["pooled_output"], restored(x)["pooled_output"])


def test_a_prefix_loads_where_the_file_system_also_calls_it_a_directory(encoder):
    # TensorFlow's in-memory ram:// (the tests' stand-in for gs://) reports any prefix of a
    # file as a directory: "ram://.../bert_model.ckpt" beside its .index file.
    prefix = save_google_checkpoint(encoder, "ram://prefix_and_directory/bert_model.ckpt")
    assert tf.io.gfile.isdir(prefix)
    restored = BertEncoder(CONFIG)
    assert load_google_checkpoint(restored, prefix).path == prefix
    for ours, theirs in zip(encoder.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_saved_checkpoint_has_the_original_names_and_restores_in_tf1(tmp_path, encoder):
    prefix = save_google_checkpoint(encoder, str(tmp_path / "bert_model.ckpt"))
    reader = tf.train.load_checkpoint(prefix)
    np.testing.assert_array_equal(
        reader.get_tensor("bert/embeddings/word_embeddings"), encoder.get_embedding_table().numpy()
    )
    expected = original_variables(CONFIG)
    assert reader.get_variable_to_shape_map() == {n: list(v.shape) for n, v in expected.items()}
    with tf.Graph().as_default():
        variables = {
            name: tf.compat.v1.get_variable(name, shape=value.shape, dtype=tf.float32)
            for name, value in expected.items()
        }
        with tf.compat.v1.Session() as session:
            tf.compat.v1.train.Saver(list(variables.values())).restore(session, prefix)
            kernel = session.run(variables["bert/encoder/layer_1/attention/self/key/kernel"])
    mapped = encoder.google_variable_map()["bert/encoder/layer_1/attention/self/key/kernel"]
    np.testing.assert_array_equal(kernel, mapped.numpy())


def test_missing_variable_is_an_error_naming_it_and_assigns_nothing(tmp_path, encoder):
    values = original_variables(CONFIG)
    del values["bert/encoder/layer_1/output/LayerNorm/beta"]
    write_with_tf1_saver(str(tmp_path / "bert_model.ckpt"), values)
    before = [w.numpy() for w in encoder.weights]
    with pytest.raises(
        ValueError, match="lacks 1 variable.*bert/encoder/layer_1/output/LayerNorm/beta"
    ):
        load_google_checkpoint(encoder, tmp_path / "bert_model.ckpt")
    for old, variable in zip(before, encoder.weights, strict=True):
        np.testing.assert_array_equal(old, variable.numpy())


def test_a_pretrained_checkpoint_for_a_fine_tuning_model_points_at_allow_missing_heads(
        tf1_checkpoint):
    from keras_bert_impl.models.classifier import BertClassifier

    classifier = BertClassifier(BertEncoder(CONFIG), num_classes=2)
    with pytest.raises(ValueError, match="output_weights.*pass allow_missing_heads=True"):
        load_google_checkpoint(classifier, tf1_checkpoint[0])
    load_google_checkpoint(classifier, tf1_checkpoint[0], allow_missing_heads=True)


def test_mis_shaped_variable_is_an_error_naming_it_and_both_shapes(tf1_checkpoint):
    small_vocab = BertEncoder(BertConfig.from_dict({**CONFIG.to_dict(), "vocab_size": 50}))
    with pytest.raises(
        ValueError,
        match=r"word_embeddings: checkpoint shape \[101, 128\], model shape \[50, 128\]",
    ):
        load_google_checkpoint(small_vocab, tf1_checkpoint[0])


def test_a_checkpoint_with_more_layers_than_the_model_is_an_error(tf1_checkpoint):
    shallower = BertEncoder(BertConfig.from_dict({**CONFIG.to_dict(), "num_hidden_layers": 1}))
    with pytest.raises(ValueError, match=r"has 2 encoder layers .* but the model has 1"):
        load_google_checkpoint(shallower, tf1_checkpoint[0])


def test_a_checkpoint_of_other_names_is_an_error_saying_so(tmp_path, encoder):
    tf.train.Checkpoint(model=encoder).write(str(tmp_path / "keras_object_ckpt"))
    with pytest.raises(ValueError, match="none of the model's variables.*original-format"):
        load_google_checkpoint(encoder, tmp_path / "keras_object_ckpt")


def test_missing_heads_are_allowed_only_when_asked(tf1_checkpoint, encoder):
    class EncoderWithHead:
        head = keras.Variable(np.zeros([3, CONFIG.hidden_size], "float32"), name="output_weights")

        def google_variable_map(self):
            return {**encoder.google_variable_map(), "output_weights": self.head}

    model = EncoderWithHead()
    with pytest.raises(ValueError, match="output_weights"):
        load_google_checkpoint(model, tf1_checkpoint[0])
    result = load_google_checkpoint(model, tf1_checkpoint[0], allow_missing_heads=True)
    assert result.missing == ["output_weights"]


def test_nonexistent_path_is_a_clear_error(tmp_path, encoder):
    with pytest.raises(FileNotFoundError, match="No checkpoint at .*nowhere/bert_model.ckpt"):
        load_google_checkpoint(encoder, tmp_path / "nowhere" / "bert_model.ckpt")
    with pytest.raises(FileNotFoundError, match=r"No checkpoint \(\*.index file\) in directory"):
        load_google_checkpoint(encoder, tmp_path)


def test_a_directory_of_several_checkpoints_asks_for_one_prefix(tmp_path, encoder):
    for name in ("model.ckpt-100", "model.ckpt-200"):
        write_with_tf1_saver(str(tmp_path / name), original_variables(CONFIG))
    os.remove(tmp_path / "checkpoint")
    with pytest.raises(ValueError, match="several checkpoints.*model.ckpt-100.*model.ckpt-200"):
        load_google_checkpoint(encoder, tmp_path)


def corrupted_copy(tf1_checkpoint, tmp_path, suffix, damage):
    source = os.path.dirname(tf1_checkpoint[0])
    shutil.copytree(source, tmp_path / "copy")
    path = str(tmp_path / "copy" / "bert_model.ckpt") + suffix
    with open(path, "rb") as f:
        content = f.read()
    with open(path, "wb") as f:
        f.write(damage(content))
    return str(tmp_path / "copy" / "bert_model.ckpt")


@pytest.mark.parametrize(
    "suffix, damage, message",
    [
        (".index", lambda b: b[: len(b) // 2], "Cannot read checkpoint .*copy/bert_model.ckpt"),
        (".index", lambda b: b"", "Cannot read checkpoint .*too short"),
        (
            ".data-00000-of-00001",
            lambda b: b[: len(b) // 2],
            "Cannot read variable bert/.* from checkpoint .*truncated or corrupt",
        ),
        (".data-00000-of-00001", lambda b: bytes(len(b)), "Cannot read variable .*Checksum"),
    ],
    ids=["truncated-index", "empty-index", "truncated-data", "zeroed-data"],
)
def test_corrupt_files_are_clear_errors(tf1_checkpoint, tmp_path, encoder, suffix, damage, message):
    prefix = corrupted_copy(tf1_checkpoint, tmp_path, suffix, damage)
    with pytest.raises(ValueError, match=message):
        load_google_checkpoint(encoder, prefix)


def test_a_model_without_a_variable_map_is_a_type_error(tf1_checkpoint):
    with pytest.raises(TypeError, match="Dense has no google_variable_map"):
        load_google_checkpoint(keras.layers.Dense(2), tf1_checkpoint[0])
