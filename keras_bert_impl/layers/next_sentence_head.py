"""The next-sentence-prediction head, as BERT's `cls/seq_relationship`."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class NextSentenceHead(keras.layers.Layer):
    """Two logits from the pooled output: 0 = actual next segment, 1 = random.

    `output_weights` is stored [2, hidden] and multiplied with transpose_b,
    as in the original, so Google checkpoints map onto it without reshaping.
    Logits are float32.

    ```python
    nsp_logits = NextSentenceHead()(pooled_output)  # [batch, 2]
    ```
    """

    def __init__(self, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range

    def build(self, pooled_shape):
        self.output_weights = self.add_weight(
            shape=(2, pooled_shape[-1]),
            initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_range),
            name="output_weights",
        )
        self.output_bias = self.add_weight(shape=(2,), initializer="zeros", name="output_bias")

    def call(self, pooled_output):
        logits = tf.matmul(
            pooled_output, tf.cast(self.output_weights, pooled_output.dtype), transpose_b=True
        )
        return tf.cast(logits, "float32") + tf.cast(self.output_bias, "float32")

    def compute_output_shape(self, pooled_shape):
        return (pooled_shape[0], 2)

    def compute_output_spec(self, pooled_output):
        return keras.KerasTensor((pooled_output.shape[0], 2), dtype="float32")

    def get_config(self) -> dict:
        return {**super().get_config(), "initializer_range": self.initializer_range}
