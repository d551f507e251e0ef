"""TensorBoard summaries of training runs, on one step axis across restarts."""

import keras


class StepTensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` writing each epoch's scalars at the optimizer's step.

    The tools' epochs are checkpoint intervals: at the epoch index, a run resumed
    with another `--save_checkpoints_steps` would log the same index twice with two
    meanings. The step (`optimizer.iterations`, saved in the checkpoints) is one
    axis for the whole run, as the original's `global_step`.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(int(self.model.optimizer.iterations.numpy()), logs)
