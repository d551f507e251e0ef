"""The encoder's and heads' registered layers rebuild from their configs: same settings, same
outputs. (BertDense and BertDropout, Keras layers with another kernel: test_dense, test_dropout.)"""

import inspect

import keras
import numpy as np
import pytest

from keras_bert_impl.layers.attention import BertAttention
from keras_bert_impl.layers.embeddings import BertEmbeddings
from keras_bert_impl.layers.logits_head import LogitsHead
from keras_bert_impl.layers.next_sentence_head import NextSentenceHead
from keras_bert_impl.layers.transformer_block import TransformerBlock

RNG = np.random.default_rng(0)
HIDDEN = RNG.normal(size=(2, 5, 32)).astype("float32")
MASK = np.array([[1] * 5, [1, 1, 1, 0, 0]], "int32")
IDS = RNG.integers(0, 50, (2, 5)).astype("int32")
TYPES = np.array([[0, 0, 1, 1, 1]] * 2, "int32")

# Every setting away from its default, so that a setting the config drops shows.
LAYERS = {
    "attention": (lambda: BertAttention(32, 4, attention_dropout=0.2, hidden_dropout=0.3,
                                        initializer_range=0.05, layer_norm_epsilon=1e-6),
                  (HIDDEN, MASK)),
    "embeddings": (lambda: BertEmbeddings(50, 32, max_position_embeddings=16, type_vocab_size=3,
                                          dropout=0.2, initializer_range=0.05,
                                          layer_norm_epsilon=1e-6),
                   (IDS, TYPES)),
    "transformer_block": (lambda: TransformerBlock(32, 4, 48, activation="relu",
                                                   hidden_dropout=0.2, attention_dropout=0.3,
                                                   initializer_range=0.05,
                                                   layer_norm_epsilon=1e-6),
                          (HIDDEN, MASK)),
    "logits_head": (lambda: LogitsHead(3, initializer_range=0.05), (HIDDEN[:, 0],)),
    "next_sentence_head": (lambda: NextSentenceHead(initializer_range=0.05), (HIDDEN[:, 0],)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_a_layer_rebuilt_from_its_config_has_its_settings_and_outputs(name):
    make, args = LAYERS[name]
    layer = make()
    expected = keras.ops.convert_to_numpy(layer(*args))
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(rebuilt) is type(layer)
    config = layer.get_config()
    for parameter in list(inspect.signature(type(layer).__init__).parameters.values())[1:]:
        if parameter.kind is parameter.VAR_KEYWORD:
            continue
        assert parameter.name in config, parameter.name
        assert config[parameter.name] != parameter.default, parameter.name  # all set above
    assert rebuilt.get_config() == config
    rebuilt(*args)
    rebuilt.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rebuilt(*args)), expected, atol=1e-6)
