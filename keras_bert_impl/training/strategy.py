"""The tf.distribute strategy named on the command line."""

import tensorflow as tf

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
