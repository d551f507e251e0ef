"""The tf.distribute strategy named on the command line."""

import tensorflow as tf
from absl import logging

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")


def get_strategy(name: str = "default", tpu: str = "") -> tf.distribute.Strategy:
    """Returns the strategy `name` (one of STRATEGIES), connecting to the TPU for "tpu".

    `tpu` is the TPU address as TPUClusterResolver takes it: "" on Colab,
    "local" on a TPU VM, or a grpc:// address. "multi_worker" reads the
    cluster from the TF_CONFIG environment variable.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.OneDeviceStrategy(devices[0].name)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}; got {name!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints, summaries and the final model."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    task_type, index = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and index == 0 and not has_chief


def task_id(strategy: tf.distribute.Strategy) -> int:
    """This worker's index in a multi-worker cluster (0 without one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return (resolver.task_id or 0) if resolver is not None else 0


def jit_compile_under(strategy: tf.distribute.Strategy, jit_compile: bool | str) -> bool | str:
    """`jit_compile` for a training step run by `strategy`: off where XLA cannot compile it.

    A TPU compiles every replica step anyway. With more than one replica on
    CPUs or GPUs the Keras 3 step fails under XLA: variables of other
    replicas are out of the compiled cluster's reach and the cross-replica
    collectives have no XLA kernels (keras-team/keras#19005, #20763), so the
    step runs as a TensorFlow graph instead, with a warning.
    """
    if not jit_compile or jit_compile == "auto":
        return jit_compile
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return False
    if strategy.num_replicas_in_sync > 1:
        logging.warning(
            "jit_compile is ignored under %s with %d replicas: Keras 3 cannot compile a "
            "multi-replica step with XLA; it runs as a TensorFlow graph.",
            type(strategy).__name__, strategy.num_replicas_in_sync)
        return False
    return jit_compile
