"""Reading and writing checkpoints with the original google-research/bert variable names.

Both directions go through the model's `google_variable_map()` (original TF1
name -> Keras variable, same shapes), so a released `bert_model.ckpt` loads
with no conversion step, and a saved checkpoint is read by the original TF1
code (`tf.compat.v1.train.Saver`, `tf.train.init_from_checkpoint`).
"""

import dataclasses
import os
import re

import keras
import numpy as np
import tensorflow as tf
from absl import logging

# Optimizer state and counters that training checkpoints carry beside the weights.
_OPTIMIZER_SUFFIXES = ("/adam_m", "/adam_v", "/Adam", "/Adam_1", "/Momentum", "/lamb_m", "/lamb_v")
_OPTIMIZER_NAMES = ("global_step", "beta1_power", "beta2_power", "good_steps", "loss_scale")


@dataclasses.dataclass
class CheckpointLoadResult:
    """What `load_google_checkpoint` did.

    `loaded`: model variables assigned from the checkpoint. `unused`:
    checkpoint weights the model has no variable for (e.g. `cls/...` heads when
    loading an encoder). `optimizer_variables`: optimizer slots and counters,
    skipped quietly. `missing`: head variables the checkpoint lacks, left at
    their initial values (only with `allow_missing_heads=True`).
    """

    path: str
    loaded: list[str]
    unused: list[str]
    optimizer_variables: list[str]
    missing: list[str]


def _is_optimizer_variable(name: str) -> bool:
    return name in _OPTIMIZER_NAMES or name.endswith(_OPTIMIZER_SUFFIXES)


def _variable_map(model) -> dict[str, keras.Variable]:
    if not hasattr(model, "google_variable_map"):
        raise TypeError(
            f"{type(model).__name__} has no google_variable_map(); expected a BertEncoder, "
            "BertPretrainer or a fine-tuning model built on a BertEncoder."
        )
    return model.google_variable_map()


def resolve_checkpoint_prefix(path: str | os.PathLike) -> str:
    """The checkpoint prefix for a prefix, a `.index`/`.data-*` file name or a directory.

    A directory resolves through its `checkpoint` state file, else to its only
    `*.index` file.
    """
    path = os.fspath(path)
    # A prefix first: on some file systems (TF's ram://) a prefix of a file is also a directory.
    if tf.io.gfile.isdir(path) and not tf.io.gfile.exists(path + ".index"):
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        indexes = sorted(tf.io.gfile.glob(os.path.join(path, "*.index")))
        if len(indexes) == 1:
            return indexes[0][: -len(".index")]
        if not indexes:
            raise FileNotFoundError(f"No checkpoint (*.index file) in directory {path}.")
        raise ValueError(
            f"Directory {path} holds several checkpoints and no `checkpoint` state file; "
            f"pass one prefix: {[i[: -len('.index')] for i in indexes]}."
        )
    prefix = path
    if prefix.endswith(".index"):
        prefix = prefix[: -len(".index")]
    elif ".data-" in os.path.basename(prefix):
        prefix = prefix[: prefix.rindex(".data-")]
    if not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError(
            f"No checkpoint at {path}: expected the index file {prefix}.index "
            "(pass the prefix, e.g. .../bert_model.ckpt, or its directory)."
        )
    return prefix


def _encoder_layer_count(names) -> int:
    numbers = {int(match.group(1)) for name in names
               if (match := re.match(r"bert/encoder/layer_(\d+)/", name))}
    return max(numbers) + 1 if numbers else 0


def _read_checkpoint(prefix: str):
    try:
        # The prefix's reader itself: tf.train.load_checkpoint takes a "directory" first.
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
        return reader, reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError, IndexError, RuntimeError) as e:
        message = getattr(e, "message", str(e))
        raise ValueError(f"Cannot read checkpoint {prefix}: {message}") from e


def load_google_checkpoint(
    model: keras.Model, path: str | os.PathLike, *, allow_missing_heads: bool = False
) -> CheckpointLoadResult:
    """Assigns a model's variables from an original-format BERT checkpoint.

    Every variable of `model.google_variable_map()` must be in the checkpoint
    with the same shape; otherwise nothing is assigned and the error names the
    variable (and both shapes). With `allow_missing_heads=True`, variables
    outside `bert/` (task heads, e.g. a fresh classifier's `output_weights`)
    may be absent and keep their initial values.

    ```python
    encoder = BertEncoder(BertConfig.from_json_file("uncased_L-12_H-768_A-12/bert_config.json"))
    result = load_google_checkpoint(encoder, "uncased_L-12_H-768_A-12/bert_model.ckpt")
    result.unused  # ['cls/predictions/output_bias', ...]
    ```
    """
    variables = _variable_map(model)
    prefix = resolve_checkpoint_prefix(path)
    reader, shapes = _read_checkpoint(prefix)

    absent = [name for name in variables if name not in shapes]
    missing = [name for name in absent if allow_missing_heads and not name.startswith("bert/")]
    required = [name for name in absent if name not in missing]
    if variables and len(absent) == len(variables):
        raise ValueError(
            f"Checkpoint {prefix} has none of the model's variables (e.g. {absent[0]}); "
            f"is it an original-format BERT checkpoint? It holds: {sorted(shapes)[:5]} ..."
        )
    if required:
        heads = [name for name in required if not name.startswith("bert/")]
        raise ValueError(
            f"Checkpoint {prefix} lacks {len(required)} variable(s) the model needs: "
            f"{', '.join(required[:10])}{' ...' if len(required) > 10 else ''}"
            + ("; to start those heads from their initial values (a pretrained encoder for "
               "fine-tuning), pass allow_missing_heads=True" if heads else "")
        )
    layers = _encoder_layer_count(shapes)
    model_layers = _encoder_layer_count(variables)
    if layers > model_layers:
        raise ValueError(
            f"Checkpoint {prefix} has {layers} encoder layers (bert/encoder/layer_0.."
            f"layer_{layers - 1}) but the model has {model_layers}: is num_hidden_layers in "
            "the config right?")
    mismatched = [
        f"{name}: checkpoint shape {list(shapes[name])}, model shape {list(variable.shape)}"
        for name, variable in variables.items()
        if name in shapes and list(shapes[name]) != list(variable.shape)
    ]
    if mismatched:
        raise ValueError(
            f"Checkpoint {prefix} does not fit the model (is the config right?): "
            + "; ".join(mismatched)
        )

    values = {}
    for name, variable in variables.items():
        if name in missing:
            continue
        try:
            values[name] = np.asarray(reader.get_tensor(name)).astype(variable.dtype)
        except (tf.errors.OpError, IndexError, RuntimeError) as e:
            message = getattr(e, "message", str(e))
            raise ValueError(
                f"Cannot read variable {name} from checkpoint {prefix} (truncated or corrupt "
                f"data file?): {message}"
            ) from e
    for name, value in values.items():
        variables[name].assign(value)

    extra = sorted(set(shapes) - set(variables))
    result = CheckpointLoadResult(
        path=prefix,
        loaded=list(values),
        unused=[name for name in extra if not _is_optimizer_variable(name)],
        optimizer_variables=[name for name in extra if _is_optimizer_variable(name)],
        missing=missing,
    )
    logging.info("Loaded %d variables from %s.", len(result.loaded), prefix)
    if result.unused:
        logging.info("Checkpoint variables not used by the model: %s", ", ".join(result.unused))
    if result.missing:
        logging.info(
            "Model variables not in the checkpoint (kept initial values): %s",
            ", ".join(result.missing),
        )
    return result


def save_google_checkpoint(model: keras.Model, path: str | os.PathLike) -> str:
    """Writes the model's variables under their original TF1 names; returns the prefix.

    The files (`path.index`, `path.data-00000-of-00001`) are a V2 tensor
    bundle as TF1's `Saver` writes, with a `checkpoint` state file beside them,
    so `tf.train.load_checkpoint(path).get_tensor("bert/embeddings/word_embeddings")`
    and the original BERT scripts read it.

    ```python
    save_google_checkpoint(encoder, "out/bert_model.ckpt")
    ```
    """
    variables = _variable_map(model)
    prefix = os.fspath(path)
    directory = os.path.dirname(prefix) or "."
    tf.io.gfile.makedirs(directory)
    names = sorted(variables)
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.convert_to_tensor(variables[name]) for name in names],
    )
    # The `checkpoint` state file (a CheckpointState text proto) lets a reader
    # pass the directory; the relative path keeps the directory movable.
    name = os.path.basename(prefix).replace("\\", "\\\\").replace('"', '\\"')
    with tf.io.gfile.GFile(os.path.join(directory, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    return prefix
