"""LAMB as in You et al. (2019) and the original BERT large-batch recipe."""

import keras
import tensorflow as tf
from keras import ops

from keras_bert_impl.training.gradient_clipping import PerReplicaGlobalNormClipping
from keras_bert_impl.training.weight_decay_exclusion import (
    SerializedWeightDecayExclusion,
)


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class BertLamb(SerializedWeightDecayExclusion, PerReplicaGlobalNormClipping,
               keras.optimizers.Lamb):
    """LAMB with the weight decay inside the layer-wise trust ratio.

    Keras' `Lamb` decays the weights outside the update, so the trust ratio
    ||w|| / ||update|| never sees the decay term. The paper (and the LAMB used
    for BERT) adds `weight_decay * w` to the Adam update first and scales the
    sum by the ratio. Variables excluded from weight decay (LayerNorm, bias)
    are also excluded from layer adaptation (ratio 1), as in the original.

    ```python
    opt = BertLamb(1e-3, weight_decay=0.01, epsilon=1e-6, global_clipnorm=1.0)
    opt.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))  # Keras' gamma/beta too
    ```
    """

    def _apply_weight_decay(self, variables):
        # Keras' decoupled decay step; here the decay is part of `update_step`.
        return

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        # Summed per row first, as BertAdamW: see there.
        gradient = ops.cast(tf.convert_to_tensor(gradient), variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        m_hat = ops.divide(m, 1.0 - ops.power(ops.cast(self.beta_1, variable.dtype), step))
        v_hat = ops.divide(v, 1.0 - ops.power(ops.cast(self.beta_2, variable.dtype), step))
        update = ops.divide(m_hat, ops.add(ops.sqrt(v_hat), self.epsilon))
        if self._use_weight_decay(variable):
            if self.weight_decay:
                decay = ops.cast(self.weight_decay, variable.dtype)
                update = ops.add(update, ops.multiply(decay, variable))
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            u_norm = ops.sqrt(ops.sum(ops.square(update)))
            ratio = ops.where(
                ops.logical_and(ops.greater(w_norm, 0), ops.greater(u_norm, 0)),
                w_norm / u_norm,
                1.0,
            )
            update = ops.multiply(ratio, update)
        self.assign_sub(variable, ops.multiply(lr, update))
