"""One post-LN Transformer encoder block, as BERT's `encoder/layer_N` scope."""

import keras

from keras_bert_impl.layers.activations import get_activation
from keras_bert_impl.layers.attention import BertAttention
from keras_bert_impl.layers.dense import BertDense
from keras_bert_impl.layers.dropout import BertDropout


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class TransformerBlock(keras.layers.Layer):
    """Self-attention then the feed-forward network, each followed by residual + LayerNorm.

    Sublayers follow the original scopes: `attention` (self + output),
    `intermediate` (dense + activation, "gelu" = tanh approximation) and
    `output_dense`/`output_layer_norm` (`output/dense`, `output/LayerNorm`).

    ```python
    block = TransformerBlock(hidden_size=768, num_heads=12, intermediate_size=3072)
    y = block(x, input_mask)  # input_mask: [batch, seq], 1 = real token
    ```
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        activation: str = "gelu",
        hidden_dropout: float = 0.1,
        attention_dropout: float = 0.1,
        initializer_range: float = 0.02,
        layer_norm_epsilon: float = 1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.activation = activation
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon

        def dense(units, name, activation=None):
            return BertDense(
                units,
                activation=activation,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
                dtype=self.dtype_policy,
                name=name,
            )

        self.attention = BertAttention(
            hidden_size,
            num_heads,
            attention_dropout=attention_dropout,
            hidden_dropout=hidden_dropout,
            initializer_range=initializer_range,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="attention",
        )
        self.intermediate = dense(intermediate_size, "intermediate", get_activation(activation))
        self.output_dense = dense(hidden_size, "output_dense")
        self.output_dropout = BertDropout(
            hidden_dropout, dtype=self.dtype_policy, name="output_dropout"
        )
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="output_layer_norm"
        )

    def build(self, x_shape, input_mask_shape=None):
        self.attention.build(x_shape, input_mask_shape)
        self.intermediate.build((None, None, self.hidden_size))
        self.output_dense.build((None, None, self.intermediate_size))
        self.output_layer_norm.build((None, None, self.hidden_size))
        self.built = True

    def call(self, x, input_mask, training=None, query_positions=None):
        """`query_positions` [batch, Q]: the block's outputs at those positions alone."""
        attended = self.attention(x, input_mask, training=training,
                                  query_positions=query_positions)
        output = self.output_dense(self.intermediate(attended))
        output = self.output_dropout(output, training=training)
        return self.output_layer_norm(output + attended)

    def compute_output_shape(self, x_shape, input_mask_shape=None, query_positions_shape=None):
        if query_positions_shape is None:
            return x_shape
        return (x_shape[0], query_positions_shape[1], x_shape[2])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "activation": self.activation,
            "hidden_dropout": self.hidden_dropout,
            "attention_dropout": self.attention_dropout,
            "initializer_range": self.initializer_range,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
