"""Global-norm clipping of each replica's own gradient, as the original TPU recipe."""

import tensorflow as tf


class PerReplicaGlobalNormClipping:
    """Optimizer mixin: `global_clipnorm` bounds each replica's gradient, then they are averaged.

    The original clipped every TPU shard's gradient to norm 1.0 and
    `CrossShardOptimizer` summed them (see `create_optimizer` for what that
    changes). Keras also clips inside each
    replica, before the all-reduce, but there the gradient is of the loss
    divided by the number of replicas R, so a plain `global_clipnorm=1.0`
    would bound each shard at R instead of 1. Clipping at `global_clipnorm / R`
    gives exactly `mean_r(clip(g_r, global_clipnorm))`; with one replica it is
    Keras' own clipping.
    """

    def _clip_gradients(self, grads):
        if not self.global_clipnorm or self.global_clipnorm <= 0:
            return super()._clip_gradients(grads)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        clip_norm = self.global_clipnorm / replicas
        if all(grad is None or grad.dtype == tf.float32 for grad in grads):
            clipped, _ = tf.clip_by_global_norm(grads, clip_norm)
            return clipped
        # Half-precision gradients (a half-precision encoder, maybe under float32 heads):
        # their squares overflow float16, and tf.clip_by_global_norm cannot add norms of
        # several dtypes, so the norm is taken in float32.
        clipped, _ = tf.clip_by_global_norm(
            [None if grad is None else tf.cast(grad, tf.float32) for grad in grads], clip_norm)
        return [None if grad is None else tf.cast(value, grad.dtype)
                for grad, value in zip(grads, clipped)]
