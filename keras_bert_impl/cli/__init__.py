"""Command-line tools (absl flags), each with a run() entry for its console script."""

import logging
import math
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from absl import app, flags
from absl import logging as absl_logging

if TYPE_CHECKING:  # the tools import TensorFlow only once their flags parse
    import tensorflow as tf

    from keras_bert_impl.config import BertConfig

# --mixed_precision of bert-pretrain, bert-finetune and bert-export: Keras policy names.
MIXED_PRECISION_POLICIES = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16", "none": "float32"}


def define_distribution_flags() -> tuple[str, ...]:
    """Defines the flags bert-pretrain and bert-finetune share for where and how the step
    runs; returns their names, which the tool declares its key flags (for `--helpshort`)."""
    from keras_bert_impl.training.strategy import STRATEGIES

    flags.DEFINE_enum("strategy", "default", STRATEGIES, "tf.distribute strategy.")
    flags.DEFINE_string("tpu", "", "TPU for --strategy=tpu: a name or grpc:// address, 'local' for "
                        "this machine's chips (TPU VM, Colab); '' finds either.")
    flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.")
    flags.DEFINE_enum("mixed_precision", "none", list(MIXED_PRECISION_POLICIES),
                      "Train in bf16 (TPUs; CPUs with AVX512_BF16 or AMX, best without "
                      "--jit_compile), fp16 with loss scaling (GPUs) or none (float32). The "
                      "saved model and its export compute in the same precision "
                      "(bert-export --mixed_precision=none re-exports it in float32).")
    flags.DEFINE_integer("steps_per_execution", 1, "Training steps per tf.function call (one "
                         "TPU program; e.g. 100 there). --save_checkpoints_steps and the step "
                         "count must be multiples of it.", lower_bound=1)
    return "strategy", "tpu", "jit_compile", "mixed_precision", "steps_per_execution"


def check_global_batch_splits(flag: str, batch_size: int, strategy: "tf.distribute.Strategy",
                              strategy_flag: str) -> None:
    """The global batch is split evenly over the replicas (TPUs need equal static shapes;
    tf.distribute's `get_per_replica_batch_size` would fail only once training starts)."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise app.UsageError(f"--{flag}={batch_size} is the global batch: it must split evenly "
                             f"over the {replicas} replicas of --strategy={strategy_flag}")


def check_steps_per_execution(steps_per_execution: int, save_checkpoints_steps: int,
                              num_train_steps: int, steps_from: str | None = None) -> None:
    """Keras runs whole executions: a checkpoint interval or a step budget that is not a
    multiple of `steps_per_execution` would train past it, and the saved data position
    would be wrong. `steps_from` names the flag a derived step count came from."""
    steps = steps_per_execution
    if save_checkpoints_steps % steps:
        raise app.UsageError(f"--save_checkpoints_steps={save_checkpoints_steps} must be a "
                             f"multiple of --steps_per_execution={steps}")
    if num_train_steps % steps:
        given = (f"{steps_from} gives {num_train_steps} steps, which" if steps_from
                 else f"--num_train_steps={num_train_steps}")
        lower, upper = num_train_steps // steps * steps, (num_train_steps // steps + 1) * steps
        raise app.UsageError(
            f"{given} must be a multiple of --steps_per_execution={steps}: pass "
            f"--num_train_steps={upper}" + (f" or {lower}" if lower else ""))


def check_mixed_precision_for_tpu(strategy_flag: str, mixed_precision: str | None) -> None:
    """fp16 loss scaling is for GPUs; TPUs compute in bfloat16."""
    if strategy_flag == "tpu" and mixed_precision == "fp16":
        raise app.UsageError("--mixed_precision=fp16 on a TPU: TPUs compute in bfloat16, which "
                             "needs no loss scaling; use --mixed_precision=bf16")


def require_positive(*names: str) -> None:
    """Flag validators: each of `names` a finite number > 0 (a negative learning rate
    would train by gradient ascent, without any error)."""
    for name in names:
        flags.register_validator(
            name, lambda value: value is None or (math.isfinite(value) and value > 0),
            message=f"--{name} must be a finite number > 0")


def load_keras_file(path: str, flag: str):
    """The model in a `.keras` file; a usage error naming `flag` and the file when it is
    missing or damaged (Keras itself reports a damaged archive as "File not found")."""
    import zipfile

    import keras
    import tensorflow as tf

    import keras_bert_impl  # noqa: F401  (registers the model classes for loading)

    if not tf.io.gfile.exists(path):
        raise app.UsageError(f"{flag}={path}: no such file")
    with tf.io.gfile.GFile(path, "rb") as f:
        try:
            is_zip = zipfile.is_zipfile(f)
        except tf.errors.OpError:  # GFile refuses the seek before a file shorter than a zip end
            is_zip = False
        if not is_zip:
            raise app.UsageError(f"{flag}={path}: not a .keras archive (a zip file); "
                                 "the file is damaged, truncated or of another format")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:
        raise app.UsageError(f"{flag}={path}: cannot be loaded as a Keras model "
                             f"({type(error).__name__}: {error})") from None


def bert_config_from_flags(bert_config: str | None, preset: str | None, vocab_file: str):
    """`--bert_config`'s BertConfig, else `--preset`'s sized to `--vocab_file`'s vocabulary."""
    from keras_bert_impl.config import BertConfig
    from keras_bert_impl.text.vocab_file import read_vocab_file

    if bert_config:
        return BertConfig.from_json_file(bert_config)
    tokens, _ = read_vocab_file(vocab_file)
    return BertConfig.from_preset(preset, vocab_size=len(tokens))


def check_seq_length_fits(seq_length: int, config: "BertConfig", source: str) -> None:
    """--seq_length beyond the model's position table is a usage error naming both."""
    if seq_length > config.max_position_embeddings:
        raise app.UsageError(f"--seq_length={seq_length} exceeds max_position_embeddings="
                             f"{config.max_position_embeddings} of {source}")


def check_lower_case_fits(vocab_file: str, lower_case: bool, flag: str = "lower_case") -> None:
    """A usage error when `--vocab_file`'s casing cannot fit `--<flag>`, as the original
    run_* scripts refuse a cased checkpoint with lower-casing (and the reverse)."""
    from keras_bert_impl.text.casing import casing_mismatch
    from keras_bert_impl.text.vocab_file import read_vocab_file

    if mismatch := casing_mismatch(read_vocab_file(vocab_file)[0], lower_case):
        raise app.UsageError(f"--vocab_file={vocab_file}: {mismatch}; pass "
                             f"{'--no' + flag if lower_case else '--' + flag}")


def run_tool(module_name: str, define_flags: Callable[[], None], main: Callable) -> None:
    """Defines a tool's flags and runs its `main` under absl.

    Started through its console script, the `__main__` module is pip's
    wrapper, which defines no flags and has no docstring, so `--help` would
    list neither; the tool's flags and description are lent to it.
    """
    define_flags()
    tool, main_module = sys.modules[module_name], sys.modules["__main__"]
    if main_module is not tool:
        for flag in flags.FLAGS.get_key_flags_for_module(module_name):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
        if not main_module.__doc__:
            main_module.__doc__ = tool.__doc__
    app.run(_short_usage_errors(main))


def quiet_absl_logging() -> None:
    """absl's INFO logs off (TensorFlow's SavedModel writer logs every asset), unless
    --verbosity was given: setting absl's verbosity also overwrites the flag, which
    decides whether errors show their traceback."""
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)


def progress_verbosity() -> int:
    """Keras' `verbose` for long work: a live progress bar on a terminal or in a notebook
    (Jupyter's and Colab's `!tool` cells render it); one line per epoch (checkpoint
    interval) when the output goes to a file or a pipe, where the bar's carriage returns
    and backspaces would fill the log with every update (Keras' "auto" draws the bar
    whenever the OS is POSIX); nothing without a usable stdout."""
    try:
        terminal = sys.stdout.isatty()
    except (AttributeError, ValueError):  # no stdout (None), or a closed one
        return 0
    in_notebook = any(name in os.environ for name in NOTEBOOK_ENVIRONMENT)
    return 1 if terminal or in_notebook else 2


# Set by Jupyter (and so Colab) for its kernels and inherited by the commands they run.
NOTEBOOK_ENVIRONMENT = ("JPY_PARENT_PID", "COLAB_RELEASE_TAG")


def _short_usage_errors(main: Callable) -> Callable:
    """`main`, with a usage error found while it runs (a taken export version, flags that
    disagree with the run in --model_dir) said in one line, as absl says a flag parsing
    error, instead of after the tool's whole flag listing; and bad input (ValueError,
    OSError, TensorFlow's OpError: a damaged file, a corpus without text, settings that
    contradict each other, a file system refusing a write) said in one line, with the
    traceback only at --verbosity=1 or more."""

    def run(argv):
        tool = os.path.basename(sys.argv[0])
        try:
            return main(argv)
        except app.UsageError as error:
            sys.stderr.write(f"{tool}: {error}\n"
                             "Pass --helpshort or --helpfull to see help on flags.\n")
            _quiet_teardown()
            sys.exit(error.exitcode)
        except (ValueError, OSError, *_tensorflow_errors()) as error:
            if flags.FLAGS.verbosity >= 1:
                raise
            sys.stderr.write(f"{tool}: {type(error).__name__}: {_one_line(error)}\n"
                             "(Pass --verbosity=1 to see the traceback.)\n")
            _quiet_teardown()
            sys.exit(1)

    return run


def _tensorflow_errors() -> tuple[type, ...]:
    """TensorFlow's OpError (a file system refusing a write, bad data met in a graph),
    once TensorFlow is loaded (the tools import it lazily)."""
    tensorflow = sys.modules.get("tensorflow")
    return (tensorflow.errors.OpError,) if tensorflow is not None else ()


def _one_line(error: Exception) -> str:
    """The message; for an error raised in a graph, without the Python stack of the op
    it ran ("Detected at node ... defined at ...") and the node names."""
    message = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in message.splitlines()
             if line.strip() and not line.startswith((" ", "\t"))
             and not line.startswith(("Graph execution error", "Detected at node"))]
    return " ".join(lines) or message.strip()


def _quiet_teardown() -> None:
    """After the one-line error, no TensorFlow warnings from objects torn down at exit
    (a checkpoint that failed to restore warns of its unrestored values)."""
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].get_logger().setLevel(logging.ERROR)
