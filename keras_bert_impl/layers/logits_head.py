"""A dense output layer stored as the original fine-tuning heads store it."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class LogitsHead(keras.layers.Layer):
    """Logits `x @ output_weights^T + output_bias`, float32, for the fine-tuning heads.

    `output_weights` is [units, hidden] as in the original `run_classifier.py`
    and `run_squad.py` (multiplied with transpose_b), initialised from a
    truncated normal with stddev `initializer_range`, so Google checkpoints
    map onto it without reshaping. Works on [batch, hidden] and
    [batch, seq, hidden] inputs.

    ```python
    logits = LogitsHead(units=3)(pooled_output)  # [batch, 3]
    ```
    """

    def __init__(self, units: int, initializer_range: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.initializer_range = initializer_range

    def build(self, input_shape):
        self.output_weights = self.add_weight(
            shape=(self.units, input_shape[-1]),
            initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_range),
            name="output_weights",
        )
        self.output_bias = self.add_weight(
            shape=(self.units,), initializer="zeros", name="output_bias"
        )

    def call(self, inputs):
        inputs = tf.cast(inputs, "float32")
        weights = tf.cast(self.output_weights, "float32")
        logits = tf.tensordot(inputs, weights, axes=[[-1], [1]])
        return logits + tf.cast(self.output_bias, "float32")

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(tuple(inputs.shape[:-1]) + (self.units,), dtype="float32")

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "initializer_range": self.initializer_range,
        }
