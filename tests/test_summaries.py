"""Evaluation results in TensorBoard beside the training curves."""

import keras
import numpy as np
import tensorflow as tf

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
