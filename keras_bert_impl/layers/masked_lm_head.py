"""The masked-LM head: transform the masked positions, decode with the tied embeddings."""

import keras
import tensorflow as tf

from keras_bert_impl.layers.activations import get_activation
from keras_bert_impl.layers.dense import BertDense


class MaskedLMHead(keras.layers.Layer):
    """Predicts the vocabulary at the masked positions, as BERT's `cls/predictions`.

    Gathers `masked_lm_positions` from the sequence output first, so the
    transform (dense + activation + LayerNorm) and the [P, vocab] decoder run
    on P positions per example instead of the whole sequence. The decoder is
    the word-embedding table (`embedding_table`, [vocab, hidden], shared with
    the encoder) plus a per-token output bias. Logits are float32. The table
    is a live variable, so the head is rebuilt by the model that owns it
    (`BertPretrainer` serializes the encoder, not the head).

    ```python
    head = MaskedLMHead(encoder.get_embedding_table(), activation="gelu")
    logits = head(sequence_output, masked_lm_positions)  # [batch, P, vocab]
    ```
    """

    def __init__(
        self,
        embedding_table: keras.Variable,
        activation: str = "gelu",
        initializer_range: float = 0.02,
        layer_norm_epsilon: float = 1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.embedding_table = embedding_table
        self.activation = activation
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon
        vocab_size, hidden_size = embedding_table.shape
        self.dense = BertDense(
            hidden_size,
            activation=get_activation(activation),
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype=self.dtype_policy,
            name="dense",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="LayerNorm"
        )
        self.vocab_size = vocab_size

    def build(self, sequence_output_shape, masked_lm_positions_shape=None):
        hidden_size = self.embedding_table.shape[-1]
        self.dense.build((None, None, hidden_size))
        self.layer_norm.build((None, None, hidden_size))
        self.output_bias = self.add_weight(
            shape=(self.vocab_size,), initializer="zeros", name="output_bias"
        )

    def call(self, sequence_output, masked_lm_positions=None):
        """Without `masked_lm_positions`, `sequence_output` holds only the masked positions."""
        masked = (sequence_output if masked_lm_positions is None
                  else tf.gather(sequence_output, masked_lm_positions, batch_dims=1))
        batch, predictions = tf.shape(masked)[0], tf.shape(masked)[1]
        # One [batch * P, hidden] x [hidden, vocab] product. Broadcast over the
        # batch, its gradient for the table would be one [vocab, hidden] matmul
        # per example, summed afterwards ([batch, vocab, hidden] in memory).
        masked = tf.reshape(masked, [-1, masked.shape[-1]])
        masked = self.layer_norm(self.dense(masked))
        table = tf.cast(self.embedding_table, masked.dtype)
        logits = tf.matmul(masked, table, transpose_b=True)
        logits = tf.cast(logits, "float32") + tf.cast(self.output_bias, "float32")
        return tf.reshape(logits, [batch, predictions, self.vocab_size])

    def compute_output_spec(self, sequence_output, masked_lm_positions=None):
        positions = sequence_output if masked_lm_positions is None else masked_lm_positions
        return keras.KerasTensor(
            (sequence_output.shape[0], positions.shape[1], self.vocab_size),
            dtype="float32",
        )
