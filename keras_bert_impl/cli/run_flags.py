"""The flags a training run in --model_dir started with, so that a restart resumes the same run.

A checkpoint holds weights, optimizer state and a count of batches consumed; what
those batches were (batch size, sequence length, data, casing, seed) and the
learning-rate schedule come from the flags. A restart with other values would go on
silently from a data position or a schedule step that means something else.
"""

import json
import os

import tensorflow as tf
from absl import app, flags

from keras_bert_impl.training.strategy import check_workers_agree

RUN_FLAGS_FILE = "run_flags.json"


def check_or_record_run_flags(model_dir: str, names: list[str], write: bool = True,
                              paths: tuple[str, ...] = (), derived: dict | None = None,
                              strategy: tf.distribute.Strategy | None = None,
                              workers_agree_on: dict | None = None) -> None:
    """Refuses a restart whose `names` flags differ from those of the run it would resume;
    records them (when `write`, i.e. on the chief) for a run that starts afresh. Call
    `check_model_dir` first, before anything slow.

    `paths` name flags holding local file names (or lists of them), compared as absolute
    paths, so that `data/train.tsv` and `/home/me/data/train.tsv` are the same file.
    `derived` adds values computed from several flags (e.g. the step count that
    `--num_train_epochs` gives), compared as flags are, so that flags that do not change
    them may.
    """
    values = {name: _plain(flags.FLAGS[name].value) for name in names}
    values = {name: _absolute(value) if name in paths else value
              for name, value in values.items()} | (derived or {})
    path = os.path.join(model_dir, RUN_FLAGS_FILE)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if strategy is not None:
        # The flags as given (not made absolute: hosts may mount a shared disk elsewhere).
        check_workers_agree(strategy, {
            **{f"--{name}": _plain(flags.FLAGS[name].value) for name in names},
            **(derived or {}), **(workers_agree_on or {}),
            "the checkpoint to resume from": latest and os.path.basename(latest)})
    resuming = latest is not None
    if resuming and tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            try:
                previous = json.loads(f.read())
            except ValueError as error:
                raise app.UsageError(f"{path} is damaged ({error}); it records the flags of "
                                     "the run in --model_dir") from None
        # Older records hold paths as given, relative to the directory the run started in.
        previous = {name: _absolute(value) if name in paths else value
                    for name, value in previous.items()}
        changed = [f"{name if name in (derived or {}) else '--' + name}: {previous[name]!r} "
                   f"then, {value!r} now"
                   for name, value in values.items() if name in previous
                   and previous[name] != value]
        if changed:
            raise app.UsageError(
                f"--model_dir={model_dir} holds a run started with other flags ("
                + "; ".join(changed) + "); resume it with those, or use another --model_dir")
        values = {**previous, **values}
    if write:
        tf.io.gfile.makedirs(model_dir)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(values, indent=2))


def check_model_dir(model_dir: str) -> None:
    """A --model_dir that is a file is a usage error now, not a TensorBoard error mid-fit."""
    if tf.io.gfile.exists(model_dir) and not tf.io.gfile.isdir(model_dir):
        raise app.UsageError(f"--model_dir={model_dir} is a file; give a directory")


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _absolute(value):
    """Local file names made absolute; URLs (gs://...) and non-strings as they are."""
    if isinstance(value, list):
        return [_absolute(item) for item in value]
    if isinstance(value, str) and value and "://" not in value:
        return os.path.abspath(value)
    return value
