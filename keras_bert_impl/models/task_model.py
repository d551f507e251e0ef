"""`BertTaskModel`: the shared base of models built on a `BertEncoder`."""

import contextlib
import inspect
from collections.abc import Mapping

import keras
import tensorflow as tf

from keras_bert_impl.models.frozen_layers import freeze_layer_paths, frozen_layer_paths
from keras_bert_impl.training.loss_scaling import with_replica_consistent_loss_scaling
from keras_bert_impl.training.strategy import jit_compile_under


class BertTaskModel(keras.Model):
    """A functional model over `self.encoder` that serializes by its constructor arguments.

    Subclasses set `self.encoder` and extend `get_config()` with their own
    arguments; the encoder is stored as a nested Keras object and rebuilt
    before the subclass constructor runs. `trainable=False` freezes the whole
    model; `frozen_layers` (paths of frozen layers outside the encoder, which
    `get_config` records) brings frozen heads back frozen from a `.keras` file.
    """

    # While `fit`/`evaluate` run on a dataset: its element spec (see `_building_from`).
    _data_spec = None

    #: Whether the task's outputs read the encoder's pooled output. Those that do not
    #: (span and token labelers) get no gradient for the pooler: it is left out of the
    #: weights the training step differentiates and updates, as the original
    #: optimizer skipped variables without gradients, rather than Keras warning
    #: "Gradients do not exist for variables ['pooler/kernel', 'pooler/bias']". The
    #: optimizer still builds its slots from `trainable_variables` (in `compile`, as
    #: `load_model` does), so saved optimizer state keeps one layout.
    reads_pooled_output = True

    def __init__(self, *args, trainable: bool = True, frozen_layers=(), **kwargs):
        super().__init__(*args, **kwargs)
        # Keras' functional constructor applies `trainable` before it tracks the layers,
        # where it would freeze nothing. (Setting True would unfreeze a frozen encoder.)
        if not trainable:
            self.trainable = False
        # Frozen heads and other layers outside the encoder (which records its own).
        freeze_layer_paths(self, frozen_layers)

    def _unread_pooler_weights(self) -> list:
        if self.reads_pooled_output:
            return []
        pooler = getattr(getattr(self, "encoder", None), "pooler_layer", None)
        return list(pooler.weights) if pooler is not None else []

    @property
    def trainable_weights(self) -> list:
        unread = {id(weight) for weight in self._unread_pooler_weights()}
        return [weight for weight in super().trainable_weights if id(weight) not in unread]

    @property
    def non_trainable_weights(self) -> list:
        unread = {id(weight) for weight in self._unread_pooler_weights()}
        return super().non_trainable_weights + [
            weight for weight in super().trainable_weights if id(weight) in unread]

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`; a `tf.data` dataset is not "shuffled" by default (it cannot
        be: Keras' default `shuffle=True` only warns so, on every call).

        Under a distribution strategy a `tf.data.Dataset` is read once per epoch, as
        without one (the model is built from its element spec). A dataset already
        distributed (`strategy.experimental_distribute_dataset`) is read once more to
        build the model, as Keras does: one that reshuffles each pass then trains in
        its second order."""
        given = inspect.signature(keras.Model.fit).bind_partial(self, *args, **kwargs).arguments
        self._check_data_arguments(given)
        if "shuffle" not in given and isinstance(
                given.get("x"), (tf.data.Dataset, tf.distribute.DistributedDataset)):
            kwargs["shuffle"] = False
        with self._building_from(given.get("x")):
            return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        given = inspect.signature(keras.Model.evaluate).bind_partial(self, *args, **kwargs)
        self._check_data_arguments(given.arguments)
        with self._building_from(given.arguments.get("x")):
            return super().evaluate(*args, **kwargs)

    @contextlib.contextmanager
    def _building_from(self, data):
        """While `fit`/`evaluate` run: the element spec of `data`, a dataset of dense
        tensors, for `_maybe_symbolic_build`."""
        spec = data.element_spec if isinstance(data, tf.data.Dataset) else None
        dense = spec is not None and all(
            isinstance(leaf, tf.TensorSpec) for leaf in tf.nest.flatten(spec))
        outer = self._data_spec
        # Past Keras' attribute tracking, which would wrap the spec's dicts in TrackedDicts
        # that Keras' own losses then take for single tensors.
        object.__setattr__(self, "_data_spec", spec if dense else None)
        try:
            yield
        finally:  # fit's validation runs evaluate inside fit
            object.__setattr__(self, "_data_spec", outer)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy Keras reads a batch here to build compiled losses and metrics.
        # That is a pass of its own over the dataset: one that reshuffles each pass then
        # trains in its second order (and a resumed run, skipping the batches trained
        # on, reads other data than it skips). Shapes and dtypes are all the build needs:
        # the dataset's element spec gives them. Other data: this worker's first
        # replica's part of a batch (Keras averages a distributed batch with
        # `strategy.reduce`, which fails on dict batches under MultiWorkerMirroredStrategy).
        if iterator is not None and self._distribute_strategy is not None:
            if self._data_spec is not None:
                data_batch = self._data_spec
            else:
                for *_, batches in iterator:  # (begin, end, iterator) in Keras >= 3.11
                    data_batch = tf.nest.map_structure(self._local_part, next(batches))
                    break
            iterator = None
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _local_part(self, value):
        if isinstance(value, tf.distribute.DistributedValues):
            return self.distribute_strategy.experimental_local_results(value)[0]
        return value

    def _check_data_arguments(self, given: dict) -> None:
        """Hook: raises for `fit`/`evaluate` arguments (by name) the model cannot take."""

    def compile(self, optimizer="rmsprop", *args, jit_compile: bool | str = "auto",
                auto_scale_loss: bool = True, **kwargs):
        """`keras.Model.compile`, with XLA left off where the strategy cannot run it.

        Loss scaling (Keras' own under `mixed_float16`, or a `LossScaleOptimizer`
        passed in) skips overflowing steps on all replicas together.

        Builds the optimizer for `trainable_variables` right away, as `load_model`
        does before it restores a saved optimizer; left to the first training step, it
        would be built for `trainable_weights`, without an unread pooler's slots, and a
        saved model would reload with its optimizer state dropped.
        """
        if optimizer is not None:
            optimizer = with_replica_consistent_loss_scaling(
                keras.optimizers.get(optimizer),
                # The encoder's policy: a functional model's own is not saved, and a model
                # loaded under another global policy would report that one.
                wrap=auto_scale_loss and self.encoder.dtype_policy.name == "mixed_float16")
        super().compile(optimizer, *args,
                        jit_compile=jit_compile_under(self.distribute_strategy, jit_compile),
                        auto_scale_loss=auto_scale_loss, **kwargs)
        if self.built and self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def checked_inputs(self, inputs, names) -> dict:
        """`inputs[name]` for `names`, as int32 [batch, seq] tensors; a ValueError saying
        what is wrong otherwise, where the functional graph's own check is bypassed
        (Keras has already named missing keys)."""
        what = type(self).__name__
        if not isinstance(inputs, Mapping):
            # Not a TypeError: Keras' build under a strategy passes only a ValueError on as
            # it is, and buries any other in "Unable to automatically build the model".
            raise ValueError(f"{what} takes a dict of {list(names)}, got a "  # noqa: TRY004
                             f"{type(inputs).__name__}")
        checked = {}
        for name in names:
            value = keras.ops.convert_to_tensor(inputs[name])
            if len(value.shape) != 2:
                raise ValueError(f"{what} input {name!r} has shape {tuple(value.shape)}; "
                                 "expected [batch, sequence] (rank 2)")
            checked[name] = keras.ops.cast(value, "int32")
        return checked

    def make_train_function(self, force=False):
        strategy = self.distribute_strategy
        if strategy.num_replicas_in_sync == 1 or (self.train_function is not None and not force):
            return super().make_train_function(force)
        # Keras' own multi-replica step loop fails with steps_per_execution > 1
        # (keras-team/keras#19246). This is the classic TPU loop instead:
        # `steps_per_execution` steps run in one graph call (one program on a
        # TPU) and the metrics are read once at the end. A finite dataset ends
        # the loop before a step without data (a plain next() would still run
        # the step's data-free updates, the optimizer's step count among them).
        # XLA is off here (`compile`); a TPU compiles the step anyway.
        step = self.train_step
        steps_per_execution = self.steps_per_execution

        @tf.function
        def train_steps(iterator):
            steps_run = tf.constant(0)
            for _ in tf.range(steps_per_execution):
                batch = iterator.get_next_as_optional()
                if not batch.has_value():
                    break
                strategy.run(step, args=(batch.get_value(),))
                steps_run += 1
            return steps_run, self.get_metrics_result()

        def train_function(iterator):
            steps_run, logs = train_steps(iterator)
            if steps_run == 0:
                raise StopIteration
            return logs

        self.train_function = train_function
        return self.train_function

    def compile_from_config(self, config: dict) -> None:
        """Compiles a loaded model as it was saved (Keras skips models that override
        `compile`), so `load_model` restores the optimizer and its state."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    def get_config(self) -> dict:
        return {
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "name": self.name,
            "trainable": self.trainable,
            "frozen_layers": frozen_layer_paths(self, skip=[self.encoder]),
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(
            config["encoder"], custom_objects=custom_objects
        )
        return cls(**config)
