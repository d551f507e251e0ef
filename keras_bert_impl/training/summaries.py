"""TensorBoard summaries of training runs, on one step axis across restarts.

The runs sit under `model_dir/logs` as Keras writes them: `train/` (the training
metrics, `learning_rate` and `steps_per_second` at each checkpoint interval's end)
and `validation/` (evaluations), with Keras' `epoch_` prefix on every tag, so a
metric's training and evaluation curves share one chart.
"""

import os
import time

import keras
import numpy as np
import tensorflow as tf


class StepTensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` writing each epoch's scalars at the optimizer's step.

    The tools' epochs are checkpoint intervals: at the epoch index, a run resumed
    with another `--save_checkpoints_steps` would log the same index twice with two
    meanings. The step (`optimizer.iterations`, saved in the checkpoints) is one
    axis for the whole run, as the original's `global_step`. `steps_per_second` is
    taken over each interval's wall time, its checkpoint save included (and, in the
    first interval after a start, tracing and compilation), as the original's
    `global_step/sec`.
    """

    # Not Keras' `write_steps_per_second`: it also times and writes (nowhere, at
    # update_freq="epoch") a scalar after every batch, ~0.1 ms of Python per step.

    def on_train_batch_end(self, batch, logs=None):
        # Keras' writes every batch's logs as scalars even at update_freq="epoch", where no
        # writer takes them; each call at a new step keeps ~0.2 kB in TensorFlow (~1 GB
        # over a million steps).
        super().on_train_batch_end(batch, None if self.update_freq == "epoch" else logs)

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._interval_start = (time.monotonic(), self._step())

    def on_epoch_end(self, epoch, logs=None):
        step = self._step()
        started, first_step = self._interval_start
        logs = {**(logs or {}),
                "steps_per_second": (step - first_step) / (time.monotonic() - started)}
        super().on_epoch_end(step, logs)

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())


def write_evaluation(log_dir: str, step: int, results: dict) -> None:
    """Writes the numbers among `results` (e.g. `eval_results.json`'s) to the
    `validation` run under `log_dir`, at the optimizer step they were measured at,
    tagged as `StepTensorBoard` tags the training metrics (`epoch_accuracy`)."""
    writer = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))
    with writer.as_default(step=step):
        for name, value in results.items():
            value = np.asarray(value)  # Python, NumPy and eager TensorFlow numbers alike
            if value.ndim == 0 and np.issubdtype(value.dtype, np.number):
                tf.summary.scalar(f"epoch_{name}", float(value))
    writer.close()
