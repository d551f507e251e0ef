"""Evaluation results in TensorBoard beside the training curves."""

import numpy as np
import tensorflow as tf

from keras_bert_impl.training.summaries import write_evaluation


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
