"""Activation functions by the names used in bert_config.json files."""

import math
from collections.abc import Callable

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_bert_impl")
def gelu(x: tf.Tensor) -> tf.Tensor:
    """GELU with the tanh approximation, exactly as the original BERT `modeling.gelu`."""
    x = tf.convert_to_tensor(x)
    cdf = 0.5 * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))
    return x * cdf


@keras.saving.register_keras_serializable(package="keras_bert_impl")
def gelu_exact(x: tf.Tensor) -> tf.Tensor:
    """GELU with the exact erf, as HuggingFace's and keras-hub's "gelu"."""
    return tf.nn.gelu(x, approximate=False)


ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "gelu": gelu,
    "gelu_new": gelu,  # HuggingFace's name for the tanh approximation.
    "gelu_exact": gelu_exact,
    "relu": keras.activations.relu,
    "tanh": keras.activations.tanh,
    "swish": keras.activations.silu,
    "silu": keras.activations.silu,
    "linear": keras.activations.linear,
}


def get_activation(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """The activation function for a `hidden_act` name ("gelu" is the tanh approximation).

    ```python
    dense = keras.layers.Dense(3072, activation=get_activation("gelu"))
    ```
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[key]
