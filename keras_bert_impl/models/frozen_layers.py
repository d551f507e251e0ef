"""Which layers of a model are frozen, as paths that survive `get_config`/`from_config`.

Keras serializes a layer's `trainable` flag only for layers it rebuilds from
their own config; ours rebuild their sublayers in the constructor, so a frozen
head or attention sublayer would come back trainable (and a saved optimizer
would no longer match the trainable variables it was built for).
"""

from collections.abc import Iterable

import keras


def _children(layer) -> list:
    return [child for child in layer._flatten_layers(include_self=False, recursive=False)
            if not isinstance(child, keras.layers.InputLayer)]


def frozen_layer_paths(model: keras.Layer, skip: Iterable[keras.Layer] = ()) -> list[str]:
    """Paths ("layer_0/attention") of the outermost frozen layers under `model`.

    Layers in `skip` (and what they hold) are left out: they record their own.
    """
    skipped = {id(layer) for layer in skip}
    paths = []

    def visit(layer, prefix):
        for child in _children(layer):
            if id(child) in skipped:
                continue
            path = prefix + child.name
            if not child.trainable:
                paths.append(path)  # freezing it freezes everything it holds
            else:
                visit(child, path + "/")

    if model.trainable:
        visit(model, "")
    return paths


def freeze_layer_paths(model: keras.Layer, paths: Iterable[str]) -> None:
    """Sets `trainable = False` on the layers `frozen_layer_paths` named."""
    for path in paths:
        layer = model
        for name in path.split("/"):
            layer = next((child for child in _children(layer) if child.name == name), None)
            if layer is None:
                raise ValueError(f"{model.name} has no layer {path!r} to freeze")
        layer.trainable = False
