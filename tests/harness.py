"""Checks every model must pass, shared by the models' test files.

Each helper takes a model (or a function that builds one) and a batch of
inputs, and asserts one behaviour: rebuilding from `get_config`, a `.keras`
save/load round trip, `predict` over a `tf.data` pipeline, mixed_bfloat16
with float32 outputs, and `jit_compile`. Outputs may be nested dicts/lists.
"""

import pathlib
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf


def flat_outputs(outputs) -> list[np.ndarray]:
    """The model's outputs as a flat list of numpy arrays, in a fixed order."""
    return [np.asarray(x) for x in tf.nest.flatten(outputs)]


def assert_outputs_close(actual, expected, atol: float = 1e-6, rtol: float = 1e-6) -> None:
    actual, expected = flat_outputs(actual), flat_outputs(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol)


def assert_rebuilds_from_config(model: keras.Model, inputs) -> keras.Model:
    """`from_config(get_config())` rebuilds the model; with copied weights, outputs are the same."""
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    assert_outputs_close(clone(inputs), model(inputs))
    return clone


def assert_keras_file_round_trip(
    model: keras.Model, inputs, directory: pathlib.Path
) -> keras.Model:
    """Saving to `.keras` and loading gives the same class, config and identical outputs."""
    path = pathlib.Path(directory) / f"{model.name}.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    assert restored.get_config() == model.get_config()
    assert_outputs_close(restored(inputs), model(inputs), atol=0, rtol=0)
    return restored


def assert_predicts_from_tf_data(model: keras.Model, inputs, batch_size: int = 2) -> None:
    """`predict` over a batched `tf.data.Dataset` equals calling the model on the tensors."""
    dataset = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
    assert_outputs_close(model.predict(dataset, verbose=0), model(inputs), atol=1e-5, rtol=1e-5)


def assert_jit_compile_matches(model: keras.Model, inputs, atol: float = 1e-5) -> None:
    """The model compiles with XLA (`jit_compile=True`) and gives the eager outputs."""
    compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)
    assert_outputs_close(compiled(inputs), model(inputs, training=False), atol=atol, rtol=atol)


def assert_mixed_bfloat16_outputs_float32(
    build_model: Callable[[], keras.Model], inputs, atol: float = 0.1
) -> None:
    """Under mixed_bfloat16 every float output is float32 and close to the float32 model's.

    `build_model` is called once under each policy; the float32 weights are
    copied into the mixed-precision model so that only the arithmetic differs.
    """
    reference = build_model()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = build_model()
    finally:
        keras.config.set_dtype_policy(previous)
    mixed.set_weights(reference.get_weights())
    outputs = mixed(inputs)
    for x in tf.nest.flatten(outputs):
        if x.dtype.is_floating:
            assert x.dtype == tf.float32, f"output dtype {x.dtype}, expected float32"
    assert_outputs_close(outputs, reference(inputs), atol=atol, rtol=0)
