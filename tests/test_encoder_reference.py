"""BertEncoder and the MLM head against an independent implementation: keras-hub.

keras-hub 0.32's backbone uses the tanh-approximate GELU, LayerNorm epsilon
1e-12 and post-LN blocks, so with the same weights the two must agree to 1e-4
at every position, real or padding. Its checkpoint layout differs (q/k/v
kernels [hidden, heads, head_size]), which the copy below reshapes.
"""

import keras
import keras_hub
import numpy as np
import pytest

from keras_bert_impl import BertConfig, BertEncoder

CONFIG = BertConfig.from_preset(
    "bert_tiny", vocab_size=211, max_position_embeddings=40, num_attention_heads=4
)


def randomize_all_weights(encoder: BertEncoder, seed: int = 0) -> None:
    """Non-trivial biases and LayerNorm parameters, so that every weight's mapping matters."""
    rng = np.random.default_rng(seed)
    for name, variable in encoder.google_variable_map().items():
        shape = variable.shape
        if name.endswith("/gamma"):
            variable.assign(1.0 + rng.normal(0, 0.2, shape).astype("float32"))
        elif name.endswith(("/beta", "/bias")):
            variable.assign(rng.normal(0, 0.2, shape).astype("float32"))
        else:
            variable.assign(rng.normal(0, 0.1, shape).astype("float32"))


def keras_hub_copy(encoder: BertEncoder) -> keras_hub.models.BertBackbone:
    config = encoder.config
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size,
        dropout=0.0,
        max_sequence_length=config.max_position_embeddings,
        num_segments=config.type_vocab_size,
    )
    weights = {name: v.numpy() for name, v in encoder.google_variable_map().items()}
    heads, head_size = config.num_attention_heads, config.attention_head_size
    hidden = config.hidden_size

    def copy(variable, name, shape=None):
        value = weights[name]
        variable.assign(value if shape is None else value.reshape(shape))

    copy(backbone.get_layer("token_embedding").embeddings, "bert/embeddings/word_embeddings")
    copy(
        backbone.get_layer("segment_embedding").embeddings, "bert/embeddings/token_type_embeddings"
    )
    copy(
        backbone.get_layer("position_embedding").position_embeddings,
        "bert/embeddings/position_embeddings",
    )
    copy(backbone.get_layer("embeddings_layer_norm").gamma, "bert/embeddings/LayerNorm/gamma")
    copy(backbone.get_layer("embeddings_layer_norm").beta, "bert/embeddings/LayerNorm/beta")
    for i in range(config.num_hidden_layers):
        block = backbone.get_layer(f"transformer_layer_{i}")
        attention = block._self_attention_layer
        scope = f"bert/encoder/layer_{i}"
        for part, dense in (
            ("query", attention.query_dense),
            ("key", attention.key_dense),
            ("value", attention.value_dense),
        ):
            copy(dense.kernel, f"{scope}/attention/self/{part}/kernel", (hidden, heads, head_size))
            copy(dense.bias, f"{scope}/attention/self/{part}/bias", (heads, head_size))
        copy(
            attention.output_dense.kernel,
            f"{scope}/attention/output/dense/kernel",
            (heads, head_size, hidden),
        )
        copy(attention.output_dense.bias, f"{scope}/attention/output/dense/bias")
        copy(block._self_attention_layer_norm.gamma, f"{scope}/attention/output/LayerNorm/gamma")
        copy(block._self_attention_layer_norm.beta, f"{scope}/attention/output/LayerNorm/beta")
        copy(block._feedforward_intermediate_dense.kernel, f"{scope}/intermediate/dense/kernel")
        copy(block._feedforward_intermediate_dense.bias, f"{scope}/intermediate/dense/bias")
        copy(block._feedforward_output_dense.kernel, f"{scope}/output/dense/kernel")
        copy(block._feedforward_output_dense.bias, f"{scope}/output/dense/bias")
        copy(block._feedforward_layer_norm.gamma, f"{scope}/output/LayerNorm/gamma")
        copy(block._feedforward_layer_norm.beta, f"{scope}/output/LayerNorm/beta")
    copy(backbone.get_layer("pooled_dense").kernel, "bert/pooler/dense/kernel")
    copy(backbone.get_layer("pooled_dense").bias, "bert/pooler/dense/bias")
    return backbone


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(3)
    encoder = BertEncoder(CONFIG)
    randomize_all_weights(encoder)
    return encoder, keras_hub_copy(encoder)


def padded_batch(seq: int):
    rng = np.random.default_rng(1)
    lengths = np.array([seq, seq - 5, 4, 1])
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
    ids = rng.integers(0, CONFIG.vocab_size, (4, seq)).astype("int32")
    types = rng.integers(0, 2, (4, seq)).astype("int32")
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}


@pytest.mark.parametrize("seq", [40, 23])
def test_matches_keras_hub_at_real_and_padding_positions(models, seq):
    encoder, backbone = models
    inputs = padded_batch(seq)
    ours = encoder(inputs)
    theirs = backbone(
        {
            "token_ids": inputs["input_word_ids"],
            "padding_mask": inputs["input_mask"],
            "segment_ids": inputs["input_type_ids"],
        }
    )
    np.testing.assert_allclose(ours["sequence_output"], theirs["sequence_output"], atol=1e-4)
    np.testing.assert_allclose(ours["pooled_output"], theirs["pooled_output"], atol=1e-4)
    # The comparison is meaningful: outputs are far from trivial and differ across positions.
    assert np.std(np.asarray(ours["sequence_output"])) > 0.1


def test_the_reference_uses_the_same_tanh_gelu(models):
    _, backbone = models
    activation = backbone.get_layer(
        "transformer_layer_0"
    )._feedforward_intermediate_dense.activation
    x = np.linspace(-4, 4, 33).astype("float32")
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(activation(x), expected, atol=1e-6)


def test_mlm_head_matches_keras_hubs_masked_lm_head_with_the_original_settings(models):
    """BertPretrainer's `cls/predictions` head against keras-hub's `MaskedLMHead`.

    keras-hub's `BertMaskedLM` builds its head with the erf GELU and LayerNorm
    epsilon 1e-5; the original `cls/predictions/transform` uses BERT's tanh
    GELU and 1e-12, which the reference head is given here.
    """
    from keras_bert_impl.models.pretrainer import BertPretrainer

    encoder, backbone = models
    pretrainer = BertPretrainer(encoder)
    inputs = padded_batch(40)
    positions = np.array([[1, 7, 39], [0, 2, 34], [3, 1, 0], [0, 0, 0]], "int32")

    rng = np.random.default_rng(5)
    variables = pretrainer.google_variable_map()
    for name in ("transform/dense/kernel", "transform/dense/bias", "transform/LayerNorm/gamma",
                 "transform/LayerNorm/beta", "output_bias"):
        variable = variables[f"cls/predictions/{name}"]
        offset = 1.0 if name.endswith("gamma") else 0.0
        variable.assign(offset + rng.normal(0, 0.2, variable.shape).astype("float32"))
    ours = pretrainer({**inputs, "masked_lm_positions": positions})["mlm_logits"]

    head = keras_hub.layers.MaskedLMHead(
        vocabulary_size=CONFIG.vocab_size,
        token_embedding=backbone.token_embedding,
        intermediate_activation=lambda x: keras.activations.gelu(x, approximate=True),
        layer_norm_epsilon=1e-12,
    )
    sequence = backbone({"token_ids": inputs["input_word_ids"],
                         "padding_mask": inputs["input_mask"],
                         "segment_ids": inputs["input_type_ids"]})["sequence_output"]
    head(sequence, mask_positions=positions)  # builds the head's variables
    for variable, name in ((head._intermediate_dense.kernel, "transform/dense/kernel"),
                           (head._intermediate_dense.bias, "transform/dense/bias"),
                           (head._intermediate_layer_norm.gamma, "transform/LayerNorm/gamma"),
                           (head._intermediate_layer_norm.beta, "transform/LayerNorm/beta"),
                           (head._bias, "output_bias")):
        variable.assign(np.asarray(variables[f"cls/predictions/{name}"]))
    theirs = head(sequence, mask_positions=positions)
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)
    assert np.std(np.asarray(ours)) > 0.5
