"""The tf.distribute strategy named on the command line."""

import glob
import hashlib
import json
import os
import signal
import sys
import threading

import tensorflow as tf
from absl import logging

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")


def get_strategy(name: str = "default", tpu: str = "") -> tf.distribute.Strategy:
    """Returns the strategy `name` (one of STRATEGIES), connecting to the TPU for "tpu".

    `tpu` is the TPU as TPUClusterResolver takes it: a TPU name or grpc://
    address, "local" for the chips of this machine (a TPU VM, Colab), or ""
    for "find it" (see `tpu_address`). "multi_worker" reads the cluster from
    the TF_CONFIG environment variable (see `_multi_worker_strategy`).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.OneDeviceStrategy(devices[0].name)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return _multi_worker_strategy()
    if name == "tpu":
        address = tpu_address(tpu)
        if not address and not any(os.environ.get(v) for v in _RESOLVER_VARIABLES):
            raise ValueError(
                "--strategy=tpu: no TPU found: this machine has no TPU chips (/dev/accel*) and "
                f"none of {', '.join(_RESOLVER_VARIABLES + ('COLAB_TPU_ADDR',))} is set; pass "
                "--tpu=NAME or --tpu=grpc://HOST:8470, or run on a TPU VM or Colab's TPU runtime")
        # An address nobody answers at hangs in TensorFlow's connect without a word.
        named = address or os.environ.get("TPU_NAME") or "(from the environment)"
        print(f"Connecting to the TPU {named}", file=sys.stderr, flush=True)
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        try:
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except tf.errors.NotFoundError as error:
            raise ValueError(f"--strategy=tpu --tpu={address}: no TPU found there "
                             f"({error.message.splitlines()[0]})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}; got {name!r}")


def _multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    """MultiWorkerMirroredStrategy on TF_CONFIG's cluster, checked first; SIGTERM kept fatal.

    TensorFlow's preemption notifier takes over SIGTERM when the strategy
    connects, so without a `PreemptionCheckpointHandler` a worker would log
    the signal and train on until the scheduler's SIGKILL. The handler from
    before (by default, ending the process) is restored: the worker ends at once,
    its peers fail on the lost worker within seconds, and a restart resumes from
    the newest checkpoint.
    """
    tasks = _tf_config_tasks(os.environ.get("TF_CONFIG", ""))
    if tasks > 1:
        print(f"Joining the {tasks} tasks of TF_CONFIG's cluster; this waits until every one "
              "has started", file=sys.stderr, flush=True)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if main_thread:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return strategy


def _tf_config_tasks(text: str) -> int:
    """The number of tasks in TF_CONFIG's cluster; a ValueError naming TF_CONFIG if malformed."""
    if not text:
        return 1  # one worker on its own, as MultiWorkerMirroredStrategy takes it
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {text[:200]}") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object: {text[:200]}")  # noqa: TRY004
    cluster, task = config.get("cluster"), config.get("task")
    if not cluster:
        return 1  # no cluster: one worker on its own, as TensorFlow takes it
    if not isinstance(cluster, dict):
        raise ValueError(f'TF_CONFIG\'s "cluster" must map task types to addresses: '  # noqa: TRY004
                         f"{text[:200]}")
    if not isinstance(task, dict) or "type" not in task:
        raise ValueError('TF_CONFIG needs a "task" with this process\'s "type" and "index" '
                         f"in the cluster: {text[:200]}")
    if task["type"] == "evaluator":  # evaluates beside the cluster, not in it
        return 1
    addresses = cluster.get(task["type"])
    if not isinstance(addresses, list):
        raise ValueError(f"TF_CONFIG's task type {task['type']!r} is not in its cluster "  # noqa: TRY004
                         f"({', '.join(map(str, cluster))})")
    index = task.get("index", 0)
    if isinstance(index, str) and index.isascii() and index.isdigit():
        index = int(index)
    if not isinstance(index, int) or not 0 <= index < len(addresses):
        raise ValueError(f"TF_CONFIG's task index {index!r} is not one of the "
                         f"{len(addresses)} {task['type']!r} addresses")
    return sum(len(a) for a in cluster.values() if isinstance(a, list))


def check_workers_agree(strategy: tf.distribute.Strategy, values: dict) -> None:
    """On every worker of a multi-worker run, a ValueError naming the `values` the workers
    differ on (flags, the checkpoint each would resume from); one worker alone, nothing.

    Workers started with different batch sizes or step counts would otherwise train on
    without a word or fail later in a collective op with a message that names neither.
    Each value is hashed (48 bits) and the hashes are all-gathered.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if (not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None
            or sum(len(tasks) for tasks in resolver.cluster_spec().as_dict().values()) < 2):
        return
    names = sorted(values)
    codes = []
    for name in names:
        text = json.dumps(values[name], sort_keys=True, default=str)
        digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")
        codes += [digest >> 24, digest & 0xFFFFFF]  # float32 holds 24-bit integers exactly
    row = tf.constant([codes], tf.float32)
    gathered = strategy.gather(
        strategy.experimental_distribute_values_from_function(lambda context: row), axis=0)
    rows = gathered.numpy()
    differ = [name for i, name in enumerate(names)
              if (rows[:, 2 * i:2 * i + 2] != rows[0, 2 * i:2 * i + 2]).any()]
    if differ:
        raise ValueError(
            f"the workers of this run differ in {', '.join(differ)}; start every worker with "
            "the same flags and files, and a --model_dir all of them share")


# What TPUClusterResolver reads for tpu="" (TPU Nodes, GKE).
_RESOLVER_VARIABLES = ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS")
_TPU_DEVICE_FILES = ("/dev/accel*", "/dev/vfio/[0-9]*")


def tpu_address(tpu: str) -> str:
    """`tpu`, except that "" becomes "local" on a machine with TPU chips attached,
    or the `grpc://` address in COLAB_TPU_ADDR (Colab's former TPU Node runtime).

    TPUClusterResolver resolves "" only from TPU_NAME or GKE's variable; a
    TPU VM, which is what Colab's TPU runtime is now, sets neither, and ""
    fails there with "Please provide a TPU Name to connect to". The resolver
    never reads COLAB_TPU_ADDR, so a runtime that still sets it beside its
    own chips is local too.
    """
    if tpu or any(os.environ.get(name) for name in _RESOLVER_VARIABLES):
        return tpu
    if any(glob.glob(pattern) for pattern in _TPU_DEVICE_FILES):
        return "local"
    if address := os.environ.get("COLAB_TPU_ADDR"):
        return address if address.startswith("grpc://") else "grpc://" + address
    return tpu


def input_pipelines_are_remote(strategy: tf.distribute.Strategy) -> bool:
    """True when tf.data runs in TPU host servers rather than in this process.

    So it is on a TPU Node and on the other hosts of a multi-host TPU: their
    TensorFlow servers load no custom ops, so TF-Text's tokenizer ops fail
    there with "Op type not registered", and only core-op pipelines (such as
    reading pretraining TFRecords) run.
    """
    if not isinstance(strategy, tf.distribute.TPUStrategy):
        return False
    return bool(strategy.cluster_resolver.cluster_spec().as_dict())


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
