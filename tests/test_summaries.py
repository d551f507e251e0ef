"""Evaluation results in TensorBoard beside the training curves."""

import types

import keras
import numpy as np
import tensorflow as tf

from keras_bert_impl.training import summaries
from keras_bert_impl.training.summaries import StepTensorBoard, write_evaluation


def _scalars(directory):
    return {value.tag: (event.step, float(tf.make_ndarray(value.tensor)))
            for path in directory.glob("events.*")
            for event in tf.compat.v1.train.summary_iterator(str(path))
            for value in event.summary.value}


def test_evaluation_numbers_of_any_kind_go_to_the_validation_run_at_their_step(tmp_path):
    write_evaluation(str(tmp_path), 120, {
        "accuracy": 0.75, "exact_match": 81, "mcc": np.float32(0.5), "f1": np.array(0.25),
        "mlm_loss": tf.constant(2.5), "labels": ["a", "b"], "version": "v1", "exact": True})
    assert _scalars(tmp_path / "validation") == {
        "epoch_accuracy": (120, 0.75), "epoch_exact_match": (120, 81.0),
        "epoch_mcc": (120, 0.5), "epoch_f1": (120, 0.25), "epoch_mlm_loss": (120, 2.5)}


class _ScalarNames:
    """tf.summary, recording the names of the scalars asked for."""

    def __init__(self):
        self.names = []

    def __getattr__(self, name):
        return getattr(tf.summary, name)

    def scalar(self, name, *args, **kwargs):
        self.names.append(name)
        return tf.summary.scalar(name, *args, **kwargs)


def test_step_tensorboard_makes_no_scalars_per_batch_at_epoch_frequency(tmp_path):
    # Keras' TensorBoard makes one scalar per logged value and batch even where no writer
    # takes them, and TensorFlow keeps memory for each new step: RSS grew without end.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callback = StepTensorBoard(str(tmp_path))
    callback._summary_module = spy = _ScalarNames()
    data = tf.data.Dataset.from_tensors((tf.ones([4, 2]), tf.ones([4, 1]))).repeat()
    model.fit(data, steps_per_epoch=5, epochs=2, verbose=0, callbacks=[callback], shuffle=False)
    assert sorted(spy.names) == sorted(
        ["epoch_loss", "epoch_learning_rate", "epoch_steps_per_second"] * 2)


def test_training_scalars_are_written_at_the_optimizer_step_and_rate_of_that_interval(
        tmp_path, monkeypatch):
    # A run resumed at step 100: its intervals end at steps 105 and 110, not at epochs 0, 1.
    clock = iter([0.0, 10.0, 10.0, 12.5])  # interval starts and ends, in seconds
    monkeypatch.setattr(summaries, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(100)
    data = tf.data.Dataset.from_tensors((tf.ones([4, 2]), tf.ones([4, 1]))).repeat()
    model.fit(data, steps_per_epoch=5, epochs=2, verbose=0, shuffle=False,
              callbacks=[summaries.StepTensorBoard(str(tmp_path))])
    steps = {}
    for path in (tmp_path / "train").glob("events.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if not value.tag.startswith("epoch_"):
                    continue  # the model's config, written as text
                steps.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    assert sorted(steps["epoch_loss"]) == [105, 110]
    # 5 steps in 10 s, then 5 steps in 2.5 s: the rate of each interval, not step / time.
    assert steps["epoch_steps_per_second"] == {105: 0.5, 110: 2.0}
    assert np.isfinite(list(steps["epoch_learning_rate"].values())).all()
