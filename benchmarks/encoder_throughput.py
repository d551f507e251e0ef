"""Forward throughput and peak memory of BertEncoder, graph mode vs XLA.

Prints one line per (preset, batch size, mode): sequences/s and milliseconds
per step (from the median step), achieved GFLOP/s, MFU against a matmul peak
measured at the policy's compute dtype, with and without XLA, before and after
each row (the highest: oneDNN's bf16 matmul runs at about twice XLA's on
CPUs), and the process's peak resident memory (RSS) during that configuration
with its rise over the RSS the row started at (memory earlier rows left
behind counts in the peak, not in the rise).

    python benchmarks/encoder_throughput.py --presets=bert_mini,bert_base \
        --batch_sizes=1,32 --seq_length=128 --steps=20

Smoke run: --presets=bert_tiny --batch_sizes=2 --seq_length=16 --steps=2.
"""

import time

# First: importing the package keeps TensorFlow's start-up lines quiet.
from keras_bert_impl import BertConfig, BertEncoder  # isort: skip

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags
from matmul_peak import matmul_peak_flops

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["bert_mini", "bert_base"], "BertConfig presets to measure.")
flags.DEFINE_list("batch_sizes", ["1", "32"], "Batch sizes to measure.")
flags.DEFINE_integer("seq_length", 128, "Sequence length.")
flags.DEFINE_integer("vocab_size", 30522, "Vocabulary size.")
flags.DEFINE_integer("steps", 20, "Timed forward steps per configuration.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps first (tracing and XLA compilation).")
flags.DEFINE_list("modes", ["graph", "xla"], "graph = tf.function without XLA; xla = jit_compile.")
flags.DEFINE_string("dtype_policy", "float32", "Keras dtype policy, e.g. mixed_bfloat16.")
flags.DEFINE_integer(
    "matmul_size", 2048, "Side of the square matmul that measures the peak (0: skip MFU)."
)


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    """The process's peak resident memory since the last `reset_peak_rss()` (Linux VmHWM)."""
    return _status_mib("VmHWM")


def reset_peak_rss() -> None:
    """Resets VmHWM to the current RSS (Linux >= 4.0), so each configuration gets its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def forward_flops(config: BertConfig, batch: int, seq: int) -> float:
    """Multiply-add FLOPs (x2) of the encoder's matmuls for one forward step."""
    h, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = batch * seq
    per_layer = 2 * tokens * (4 * h * h + 2 * h * ffn) + 2 * 2 * batch * seq * seq * h
    return layers * per_layer  # the pooler is not run: only sequence_output is fetched


def _seconds(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def measure(preset: str, batch: int, mode: str) -> tuple[float, str]:
    """(the row's GFLOP/s, its line less the MFU)."""
    config = BertConfig.from_preset(
        preset,
        vocab_size=FLAGS.vocab_size,
        max_position_embeddings=max(512, FLAGS.seq_length),
    )
    reset_peak_rss()
    start_rss = _status_mib("VmRSS")
    encoder = BertEncoder(config)
    rng = np.random.default_rng(0)
    shape = (batch, FLAGS.seq_length)
    inputs = {
        "input_word_ids": tf.constant(rng.integers(0, config.vocab_size, shape), tf.int32),
        "input_mask": tf.ones(shape, tf.int32),
        "input_type_ids": tf.zeros(shape, tf.int32),
    }
    forward = tf.function(
        lambda x: encoder(x, training=False)["sequence_output"], jit_compile=(mode == "xla")
    )
    for _ in range(FLAGS.warmup_steps):
        forward(inputs).numpy()
    # The median step is robust to the occasional stall of a shared machine.
    seconds = float(
        np.median([_seconds(lambda: forward(inputs).numpy()) for _ in range(FLAGS.steps)])
    )
    gflops = forward_flops(config, batch, FLAGS.seq_length) / seconds / 1e9
    peak_rss = peak_rss_mib()
    return gflops, (
        f"{preset:<12} batch={batch:<3d} seq={FLAGS.seq_length:<4d} mode={mode:<5} "
        f"{batch / seconds:9.1f} seq/s  {1000 * seconds:8.2f} ms/step  "
        f"{gflops:8.1f} GFLOP/s  MFU={{mfu}}  peak_rss={peak_rss:7.0f} MiB "
        f"(+{peak_rss - start_rss:.0f})"
    )


def main(argv):
    del argv
    keras.config.set_dtype_policy(FLAGS.dtype_policy)
    dtype = keras.config.dtype_policy().compute_dtype
    peak = matmul_peak_flops(FLAGS.matmul_size, dtype) / 1e9 if FLAGS.matmul_size else 0.0
    print(
        f"TensorFlow {tf.__version__}, {FLAGS.dtype_policy}, "
        f"{dtype} matmul {FLAGS.matmul_size}^3 peak: {peak:.1f} GFLOP/s",
        flush=True,
    )
    for mode in FLAGS.modes:
        if mode not in ("graph", "xla"):
            raise app.UsageError(f"--modes: unknown mode {mode!r}; expected graph or xla.")
    for preset in FLAGS.presets:
        for batch in (int(b) for b in FLAGS.batch_sizes):
            for mode in FLAGS.modes:
                gflops, line = measure(preset, batch, mode)
                if FLAGS.matmul_size:
                    # The peak drifts on a shared VM: the higher measurement, the lower MFU.
                    peak = max(peak, matmul_peak_flops(FLAGS.matmul_size, dtype) / 1e9)
                    print(line.format(mfu=f"{100 * gflops / peak:5.1f}% of {peak:.0f}"),
                          flush=True)
                else:
                    print(line.format(mfu="n/a"), flush=True)


if __name__ == "__main__":
    app.run(main)
