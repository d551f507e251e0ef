"""AdamW as the original BERT's `AdamWeightDecayOptimizer`: no bias correction."""

import keras
import tensorflow as tf
from keras import ops

from keras_bert_impl.training.gradient_clipping import PerReplicaGlobalNormClipping
from keras_bert_impl.training.weight_decay_exclusion import (
    SerializedWeightDecayExclusion,
)


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class BertAdamW(SerializedWeightDecayExclusion, PerReplicaGlobalNormClipping,
                keras.optimizers.AdamW):
    """Keras' `AdamW` with the original BERT update, `lr * m / (sqrt(v) + epsilon)`.

    The original optimizer has no Adam bias correction: its linear warmup
    plays that part. Keras scales each step by `sqrt(1 - beta_2^t) / (1 - beta_1^t)`,
    about 0.3 at step 2 and still 0.8 at step 1,000, so short fine-tuning runs
    would move the weights several times less than BERT's recipe. The decoupled
    decay (`w -= lr * weight_decay * w`, before the update) is Keras' and equals
    the original's `update += weight_decay * w`. `bias_correction=True` gives
    Keras' Adam update back.

    `create_optimizer` builds it with the whole recipe (warmup and linear decay, weight
    decay 0.01 except on LayerNorm and biases, epsilon 1e-6, clipping to norm 1.0);
    made directly it has Keras' AdamW defaults, so give them:

    ```python
    opt = BertAdamW(1e-4, weight_decay=0.01, epsilon=1e-6, global_clipnorm=1.0)
    opt.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))  # from weight_decay_exclusion
    ```
    """

    def __init__(self, *args, bias_correction: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad and not bias_correction:
            raise ValueError("amsgrad needs bias_correction=True; the original BERT "
                             "optimizer has neither")
        self.bias_correction = bias_correction

    def update_step(self, gradient, variable, learning_rate):
        if self.bias_correction:
            return super().update_step(gradient, variable, learning_rate)
        lr = ops.cast(learning_rate, variable.dtype)
        # An embedding's IndexedSlices gradient is summed per row first: squaring
        # it sparse would square each occurrence of a token instead of its total.
        gradient = ops.cast(tf.convert_to_tensor(gradient), variable.dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        self.assign_sub(variable, ops.divide(ops.multiply(m, lr),
                                             ops.add(ops.sqrt(v), self.epsilon)))

    def get_config(self) -> dict:
        return {**super().get_config(), "bias_correction": self.bias_correction}
