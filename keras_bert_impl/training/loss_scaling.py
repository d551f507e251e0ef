"""fp16 loss scaling whose skip-or-apply decision is the same on every replica."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class ReplicaConsistentLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """`keras.optimizers.LossScaleOptimizer` that skips a step on all replicas at once.

    Keras checks each replica's own gradients for inf/NaN before they are
    summed and then follows one replica's verdict: when another replica
    overflowed, its infinite gradient reaches the weights (NaN), and across
    workers the replicas take different branches and hang in the all-reduce.
    Here the replicas first agree: if any overflowed, every replica sees a
    non-finite gradient, so all skip the step and halve the scale together.
    """

    def apply(self, grads, trainable_variables=None):
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            grads = _non_finite_everywhere_if_anywhere(grads, self.check_finite(grads), context)
        return super().apply(grads, trainable_variables)


def _non_finite_everywhere_if_anywhere(grads, finite, context):
    overflows = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(~finite, tf.float32))
    factor = tf.where(overflows > 0, float("nan"), 1.0)
    grads = list(grads)
    # One NaN gradient is enough for `check_finite` to see it.
    for i, grad in enumerate(grads):
        if grad is None:
            continue
        if isinstance(grad, tf.IndexedSlices):
            grads[i] = tf.IndexedSlices(grad.values * tf.cast(factor, grad.dtype), grad.indices,
                                        grad.dense_shape)
        else:
            grads[i] = grad * tf.cast(factor, grad.dtype)
        break
    return grads


def with_replica_consistent_loss_scaling(optimizer: keras.optimizers.Optimizer,
                                         wrap: bool) -> keras.optimizers.Optimizer:
    """The optimizer with loss scaling that agrees across replicas.

    Replaces an unbuilt Keras `LossScaleOptimizer` by the same settings here,
    and wraps a plain optimizer when `wrap` (what Keras' `compile` does under
    `mixed_float16`). A built one keeps its state and is left alone.
    """
    if isinstance(optimizer, ReplicaConsistentLossScaleOptimizer):
        return optimizer
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        if optimizer.built:
            return optimizer
        config = optimizer.get_config()
        return ReplicaConsistentLossScaleOptimizer(
            optimizer.inner_optimizer, initial_scale=config["initial_scale"],
            dynamic_growth_steps=config["dynamic_growth_steps"], name=config["name"])
    if wrap and isinstance(optimizer, keras.optimizers.Optimizer):
        return ReplicaConsistentLossScaleOptimizer(optimizer)
    return optimizer
