"""BERT's self-attention sublayer: multi-head attention, output projection, residual LayerNorm."""

import math

import keras
import tensorflow as tf

from keras_bert_impl.layers.dense import BertDense
from keras_bert_impl.layers.dropout import BertDropout


def additive_attention_mask(input_mask: tf.Tensor) -> tf.Tensor:
    """The original's mask: 0 where attending is allowed, -10000 at padding keys.

    `input_mask` is [batch, seq] with 1 for real tokens; the result is float32
    [batch, 1, 1, seq] and broadcasts over heads and query positions.
    """
    mask = tf.cast(input_mask, "float32")
    return ((1.0 - mask) * -10000.0)[:, tf.newaxis, tf.newaxis, :]


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class BertAttention(keras.layers.Layer):
    """Multi-head self-attention as BERT's `attention/self` and `attention/output` scopes.

    Query, key and value kernels are [hidden, hidden] (the checkpoint shapes)
    and all heads run as one batched matmul. Scores get the additive mask and
    the softmax runs in float32 even under mixed precision. The mask is the
    integer padding mask ([batch, seq], 1 = real token) so that autocasting
    never rounds the -10000 adder to bfloat16. The output is
    LayerNorm(x + dropout(dense(context))), i.e. post-LN.

    ```python
    attention = BertAttention(hidden_size=768, num_heads=12)
    y = attention(x, input_mask)  # [batch, seq, hidden]
    ```
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        attention_dropout: float = 0.1,
        hidden_dropout: float = 0.1,
        initializer_range: float = 0.02,
        layer_norm_epsilon: float = 1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.hidden_dropout = hidden_dropout
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon
        self.head_size = hidden_size // num_heads

        def projection(name):
            return BertDense(
                hidden_size,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
                dtype=self.dtype_policy,
                name=name,
            )

        self.query = projection("query")
        self.key = projection("key")
        self.value = projection("value")
        self.output_dense = projection("dense")
        self.attention_dropout_layer = BertDropout(
            attention_dropout, dtype=self.dtype_policy, name="attention_dropout"
        )
        self.output_dropout = BertDropout(
            hidden_dropout, dtype=self.dtype_policy, name="output_dropout"
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="LayerNorm"
        )

    def build(self, x_shape, input_mask_shape=None):
        shape = (None, None, self.hidden_size)
        for layer in (self.query, self.key, self.value, self.output_dense, self.layer_norm):
            layer.build(shape)
        self.built = True

    def _split_heads(self, x, batch, seq):
        """[batch, seq, hidden] -> [batch, heads, seq, head_size]."""
        return tf.transpose(tf.reshape(x, [batch, seq, self.num_heads, self.head_size]),
                            [0, 2, 1, 3])

    def call(self, x, input_mask, training=None, query_positions=None):
        """`query_positions` [batch, Q]: outputs only at these positions, [batch, Q, hidden],
        each still attending over every token; all a head reading a few positions needs."""
        batch, seq = tf.shape(x)[0], tf.shape(x)[1]
        if query_positions is None:
            queries_from, query_seq = x, seq
        else:
            queries_from = tf.gather(x, query_positions, batch_dims=1)
            query_seq = tf.shape(query_positions)[1]
        # Scaling the queries equals the original's scaling of the scores and
        # touches seq x hidden numbers instead of heads x seq x seq.
        query = self._split_heads(self.query(queries_from), batch, query_seq) * (
            1.0 / math.sqrt(self.head_size))
        key = self._split_heads(self.key(x), batch, seq)
        value = self._split_heads(self.value(x), batch, seq)

        # Batched matmuls, not tf.einsum: TF's CPU einsum kernel is ~10x slower in
        # bfloat16 (no oneDNN path), which made mixed_bfloat16 graph training slow.
        scores = tf.matmul(query, key, transpose_b=True)
        scores = tf.cast(scores, "float32") + additive_attention_mask(input_mask)
        probs = tf.cast(tf.nn.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.attention_dropout_layer(probs, training=training)
        context = tf.transpose(tf.matmul(probs, value), [0, 2, 1, 3])
        context = tf.reshape(context, [batch, query_seq, self.hidden_size])

        output = self.output_dropout(self.output_dense(context), training=training)
        return self.layer_norm(output + queries_from)

    def compute_output_shape(self, x_shape, input_mask_shape=None, query_positions_shape=None):
        if query_positions_shape is None:
            return x_shape
        return (x_shape[0], query_positions_shape[1], x_shape[2])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "attention_dropout": self.attention_dropout,
            "hidden_dropout": self.hidden_dropout,
            "initializer_range": self.initializer_range,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
