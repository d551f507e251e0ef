"""A training loop of one's own under tf.distribute, as the README shows it: the package's
datasets, loss, optimizer, fp16 loss scaling and checkpoint pieces outside `fit`."""

import numpy as np
from two_replicas import run_on_two_replicas


def test_a_custom_loop_on_two_replicas_resumes_to_the_weights_of_an_uninterrupted_run(
        tmp_path, shared_data, uncased_vocab):
    def train(checkpoint_dir, steps, weights):
        # A loss scale that overflows: skipped steps read batches but are not counted.
        result = run_on_two_replicas(
            "custom_training_loop", uncased_vocab, str(shared_data / "sample_text.txt"),
            str(tmp_path / checkpoint_dir), str(steps), str(tmp_path / weights), str(2**20))
        assert result.returncode == 0, result.stderr[-3000:]
        return np.load(tmp_path / weights)

    uninterrupted = train("whole", 4, "whole.npz")
    assert uninterrupted["steps_read"] > 4, "no step was skipped"
    train("resumed", 2, "half.npz")
    # The data position (the steps read, as pipeline batches in start_step) and dropout's
    # seed states come back with the checkpoint: the same batches and masks, the same weights.
    resumed = train("resumed", 4, "resumed.npz")
    assert sorted(uninterrupted.files) == sorted(resumed.files) and uninterrupted.files
    for name in uninterrupted.files:
        np.testing.assert_array_equal(uninterrupted[name], resumed[name], err_msg=name)
