"""Preemption-safe training state: model, optimizer and step in model_dir/checkpoints."""

import math
import os
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf
from absl import logging


class TrainingCheckpoint:
    """Saves and restores the model, the optimizer (whose `iterations` is the step),
    the model's random-seed states (dropout) and how many batches the run has consumed.

    A restarted run calls `restore()` first; the data position is restored by
    the caller skipping the returned number of batches of its deterministic
    input stream, because iterator state does not survive distribution
    strategies. It equals the step unless steps were skipped: fp16 loss
    scaling does not count a step whose gradients overflowed, but its batch
    was read. Non-chief workers of a multi-worker run save into a private
    directory, as tf.distribute requires every worker to save, keeping only
    their newest copy; every worker restores the chief's newest checkpoint,
    so all resume from the same step and weights.

    ```python
    checkpoint = TrainingCheckpoint(model_dir, pretrainer, optimizer)
    position = checkpoint.restore()
    pretrainer.fit(ds.skip(position), callbacks=[checkpoint.callback()], ...)
    ```
    """

    def __init__(
        self,
        model_dir: str,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        is_chief: bool = True,
        task_id: int = 0,
        max_to_keep: int = 3,
    ):
        self.model = model
        # A subdirectory: model_dir itself receives the final Google-format
        # checkpoint, whose `checkpoint` state file would hide these.
        owner = model_dir if is_chief else os.path.join(model_dir, f".worker_{task_id}")
        directory = os.path.join(owner, "checkpoints")
        self._chief_directory = os.path.join(model_dir, "checkpoints")
        self.restored_from: str | None = None
        self.optimizer = optimizer
        self.batches = tf.Variable(0, dtype=tf.int64, trainable=False, name="batches_consumed",
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        # TF's tracking of a Keras model leaves out its seed states; without them a
        # resumed run would draw again the dropout masks of the steps it already took.
        self._seed_states = seed_states(model)
        # The optimizer tracks the model's trainable variables, so it carries them.
        self._checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                               batches=self.batches, seed_states=self._seed_states)
        self.manager = tf.train.CheckpointManager(
            self._checkpoint, directory, max_to_keep=max_to_keep if is_chief else 1,
            checkpoint_name="ckpt"
        )

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore(self) -> int:
        """Restores the newest checkpoint if there is one; returns the batches to skip.

        A newest checkpoint that cannot be read (a truncated or corrupt file) is
        passed over, with a warning, for the newest older one that can. What a save
        killed midway left in this worker's directory (`ckpt-N_temp/`, as large as
        a checkpoint) is deleted: no save runs while a run restores.
        """
        for leftover in tf.io.gfile.glob(os.path.join(self.manager.directory, "ckpt-*_temp*")):
            if tf.io.gfile.isdir(leftover):
                tf.io.gfile.rmtree(leftover)
            else:
                tf.io.gfile.remove(leftover)
        if not self.optimizer.built:
            # Slots must exist before restoring into them.
            self.optimizer.build(self.model.trainable_variables)
        self.restored_from = None
        candidates = _newest_first(self._chief_directory)
        for path in candidates:
            try:
                self._restore_from(path)
            except _DamagedCheckpoint as error:
                logging.warning("%s", error)
                continue
            self.restored_from = path
            return int(self.batches.numpy())
        if candidates:
            raise ValueError(f"no checkpoint in {self._chief_directory} can be read "
                             f"({', '.join(candidates)}); use another model_dir to start afresh")
        return 0

    def _restore_from(self, path: str) -> None:
        self.batches.assign(0)  # not what a damaged newer checkpoint left
        try:
            # The prefix's reader: tf.train.list_variables takes a "directory" first, and
            # TF's ram:// calls any prefix of a file one.
            names = list(tf.compat.v1.train.NewCheckpointReader(path).get_variable_to_shape_map())
        except tf.errors.OpError as error:
            raise _DamagedCheckpoint(path, error) from None
        shards = tf.io.gfile.glob(f"{path}.data-*-of-*")
        expected = int(shards[0].rsplit("-of-", 1)[1]) if shards else 1
        if len(shards) != expected:
            # TensorFlow reports a missing data file as an UNKNOWN error at restore.
            raise _DamagedCheckpoint(path, FileNotFoundError(
                f"{len(shards)} of its {expected} data file(s) found"))
        saved = {name.split("/")[0] for name in names}
        counts_batches = "batches" in saved
        # Checkpoints written before the batch count or the seed states were
        # saved hold the rest.
        checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer,
            **({"batches": self.batches} if counts_batches else {}),
            **({"seed_states": self._seed_states} if "seed_states" in saved else {}))
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except (IndexError, tf.errors.DataLossError) as error:  # a short or corrupt data file
            raise _DamagedCheckpoint(path, error) from None
        except (ValueError, AssertionError, tf.errors.OpError) as error:
            saved_scaling = any(name.startswith("optimizer/dynamic_scale/") for name in names)
            scaling = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
            if saved_scaling != scaling:
                raise ValueError(
                    f"{path} was written by a run {'with' if saved_scaling else 'without'} "
                    "fp16 loss scaling: resume it with "
                    f"--mixed_precision={'fp16' if saved_scaling else 'bf16 or none'}, "
                    "as it started (the optimizer state is saved in another layout)"
                ) from None
            raise ValueError(
                f"{path}: this model cannot resume from the checkpoint, which a run with "
                f"another configuration wrote; use another model_dir ({error})") from None
        if not counts_batches or self.batches.numpy() == 0:
            self.batches.assign(self.step)  # no count saved: the step is the position

    def save(self) -> str:
        return self.manager.save(checkpoint_number=self.step)

    def callback(self) -> keras.callbacks.Callback:
        """A callback that saves at the end of every epoch."""
        return _SaveAtEpochEnd(self)


class _DamagedCheckpoint(Exception):
    def __init__(self, path: str, error: Exception):
        super().__init__(f"{path}: the checkpoint is damaged and cannot be read "
                         f"({type(error).__name__}: {str(error).strip()[:200]}); trying an "
                         "older one")


def _newest_first(directory: str) -> list[str]:
    """The checkpoints the `checkpoint` state file lists, newest first."""
    state = tf.train.get_checkpoint_state(directory)
    if state is None or not state.model_checkpoint_path:
        return []
    paths = [state.model_checkpoint_path, *reversed(state.all_model_checkpoint_paths)]
    return [path for index, path in enumerate(paths) if path not in paths[:index]]


def seed_states(model: keras.Model) -> list[keras.Variable]:
    """The state variables of the model's `SeedGenerator`s: `variables` without `weights`."""
    weights = {id(weight) for weight in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


class _SaveAtEpochEnd(keras.callbacks.Callback):
    def __init__(self, checkpoint: TrainingCheckpoint):
        super().__init__()
        self.checkpoint = checkpoint
        self._batches_in_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._batches_in_epoch = 0

    def on_train_batch_end(self, batch, logs=None):
        # Called once per execution of `steps_per_execution` steps (Keras 3.10 passes its
        # first step as `batch`, later versions its last); a last execution the data cut
        # short counts whole, as Keras counts it.
        steps = self.params.get("steps")
        self._batches_in_epoch += self.model.steps_per_execution
        if steps is not None:
            self._batches_in_epoch = min(self._batches_in_epoch, steps)

    def on_epoch_end(self, epoch, logs=None):
        self.checkpoint.batches.assign_add(self._batches_in_epoch)
        self.checkpoint.save()


# Batches fp16 loss scaling may skip in a row: by then it has divided its scale by 2**64,
# so gradients that still overflow are not finite.
MOST_BATCHES_WITHOUT_A_STEP = 64


def fit_to_step(
    model: keras.Model,
    dataset_from: Callable[[int], tf.data.Dataset | tf.distribute.DistributedDataset],
    checkpoint: TrainingCheckpoint,
    num_train_steps: int,
    steps_per_epoch: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    **fit_kwargs,
) -> keras.callbacks.History | None:
    """Trains from the restored checkpoint until the optimizer has applied
    `num_train_steps` steps, saving at the end of every `steps_per_epoch` batches.

    `dataset_from(batches)` is the endless input stream with its first `batches`
    batches skipped. A step fp16 loss scaling skips on overflow reads a batch but
    applies nothing and does not advance the learning-rate schedule, so the run
    reads on until that many steps are applied, as the original's `global_step`
    counts them: its length and final learning rate never depend on where
    checkpoints fall. Steps read after the planned batches (as many as were
    skipped) run one per execution, so the run ends exactly at the budget.
    `MOST_BATCHES_WITHOUT_A_STEP` skipped in a row are a `FloatingPointError`.
    Returns the last `fit`'s History; None when the checkpoint is already at the
    budget.
    """
    history = None
    steps_per_execution = model.steps_per_execution
    # One for all rounds: a round may be shorter than the limit on skipped steps.
    budget = _StepBudget(num_train_steps, checkpoint.step)
    try:
        while checkpoint.step < num_train_steps:
            step, batches = checkpoint.step, int(checkpoint.batches.numpy())
            if history is not None and model.steps_per_execution != 1:
                model.steps_per_execution, model.train_function = 1, None
            initial_epoch = batches // steps_per_epoch
            history = model.fit(
                dataset_from(batches),
                initial_epoch=initial_epoch,
                epochs=initial_epoch + math.ceil((num_train_steps - step) / steps_per_epoch),
                steps_per_epoch=steps_per_epoch,
                callbacks=[checkpoint.callback(), budget, *callbacks],
                **fit_kwargs,
            )
            if int(checkpoint.batches.numpy()) == batches:
                raise ValueError(f"the training data ended after {batches} batches, at step "
                                 f"{step} of {num_train_steps}; it must repeat")
    finally:
        if model.steps_per_execution != steps_per_execution:
            model.steps_per_execution, model.train_function = steps_per_execution, None
    return history


class _StepBudget(keras.callbacks.Callback):
    """Ends training at `last_step` optimizer steps, inside an epoch if need be; raises
    once `MOST_BATCHES_WITHOUT_A_STEP` batches in a row applied no step."""

    def __init__(self, last_step: int, step: int):
        super().__init__()
        self.last_step, self._step, self._skipped = last_step, step, 0

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self._skipped = self._skipped + self.model.steps_per_execution if step == self._step else 0
        self._step = step
        if step >= self.last_step:
            self.model.stop_training = True
        if self._skipped >= MOST_BATCHES_WITHOUT_A_STEP:
            raise FloatingPointError(
                f"no step was applied in the last {self._skipped} batches (at step {step}): "
                "fp16 loss scaling skipped every one, halving its scale each time, so their "
                "gradients are not finite at any scale (is the loss finite?)")
