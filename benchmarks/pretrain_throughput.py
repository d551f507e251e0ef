"""Pretraining throughput and MFU: our BertPretrainer fit vs keras-nlp (and PyTorch) BERT.

One line per (implementation, preset, mode): training tokens/s (batch x seq
positions; the synthetic batches have no padding), ms per step (median over
timed chunks), achieved model TFLOP/s and MFU against this machine's measured
matmul peak at the same precision, with or without XLA, whichever is faster
(the higher of the measurement at start-up and the one right after the row's
own timing, in its process). Model FLOPs count the training step as 3x the
forward matmuls (encoder, pooler, the MLM transform and vocabulary decoder at
the P masked positions), identical for every implementation, so MFU is
throughput in common units (PaLM's model FLOPs). HFU counts the FLOPs a row
executes: ours computes the last block only where the heads read it ([CLS] and
the P masked positions), fewer; transformers' BertForPreTraining, as shipped,
decodes the vocabulary at every position, more (2.4x the model FLOPs at
bert_mini). Also prints the input pipeline's examples/s when --corpus is given.

Every configuration runs in its own Python process, so dtype policies,
compiled functions and allocators never leak between rows. Steps are timed
inside one long `fit` (between `on_train_batch_end` calls), as in a real
run, which leaves out the per-`fit` set-up and tf.data teardown. Importing
keras_bert_impl turns on TensorFlow's BFC CPU allocator; the references run
with TensorFlow's default allocator, and with `--reference_allocators`
including `bfc` they also run with ours, so both ratios are printed. With
`--rounds=N` every row runs N times, in turn with the others, and keeps its
fastest run: the shared VM this was written on drifts by up to 15 % in speed
over minutes, which one run per row turns into a ratio.

    python benchmarks/pretrain_throughput.py --presets=bert_mini,bert_small \
        --corpus=../shared/data/corpus/en/pg1342_pride_and_prejudice.txt \
        --vocab_file=../shared/data/vocab/bert-base-uncased.txt
"""

import itertools
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags
from matmul_peak import matmul_peak_flops

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["bert_mini", "bert_small"], "BertConfig presets.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("seq_length", 128, "Sequence length.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence (P).")
flags.DEFINE_integer("vocab_size", 30522, "Vocabulary size.")
flags.DEFINE_integer("steps", 60, "Timed training steps per configuration.")
flags.DEFINE_integer("steps_per_execution", 10, "Steps per tf.function call (ours).")
flags.DEFINE_list("modes", ["graph", "xla", "graph_bf16", "xla_bf16"],
                  "graph = tf.function; xla = jit_compile; a _bf16 suffix adds mixed_bfloat16.")
flags.DEFINE_list("references", ["keras_nlp", "torch"],
                  "Reference implementations to run side by side (torch is skipped if absent).")
flags.DEFINE_integer("matmul_size", 2048, "Size of the square matmul that measures the peak.")
flags.DEFINE_string("corpus", None, "Raw-text corpus for the input pipeline measurement.")
flags.DEFINE_string("vocab_file", None, "Vocabulary for the input pipeline measurement.")
flags.DEFINE_integer("pipeline_batches", 100, "Batches timed for the input pipeline.")
flags.DEFINE_list("reference_allocators", ["default", "bfc"],
                  "TensorFlow CPU allocators the keras_nlp reference runs under.")
flags.DEFINE_integer("warmup_executions", 2, "Executions of steps_per_execution steps not timed.",
                     lower_bound=1)
flags.DEFINE_integer("rounds", 1, "Rounds over all rows; each row keeps its best round, so a "
                     "slow spell of a shared machine does not decide a ratio.")
flags.DEFINE_string("only", None, "Internal: run one 'implementation:preset:mode' and print it.")


def model_flops_per_step(config, batch: int, seq: int, predictions: int) -> float:
    """Training FLOPs (3x forward) of the matmuls of one MLM + NSP step."""
    h, ffn, layers, vocab = (config.hidden_size, config.intermediate_size,
                             config.num_hidden_layers, config.vocab_size)
    tokens = batch * seq
    encoder = layers * (2 * tokens * (4 * h * h + 2 * h * ffn) + 2 * 2 * batch * seq * seq * h)
    heads = 2 * batch * predictions * (h * h + h * vocab) + 2 * batch * (h * h + 2 * h)
    return 3 * (encoder + heads)


def all_position_decoder_flops_per_step(config, batch: int, seq: int, predictions: int) -> float:
    """Training FLOPs transformers' BertForPreTraining adds to the counted ones: its MLM
    transform and vocabulary decoder run at every position, not only the P masked ones."""
    h, vocab = config.hidden_size, config.vocab_size
    return 3 * 2 * batch * (seq - predictions) * (h * h + h * vocab)


def unexecuted_flops_per_step(config, batch: int, seq: int, predictions: int) -> float:
    """Model FLOPs our pretrainer skips: the last block's query, attention output and
    feed-forward rows that no head reads (all but [CLS] and the P masked positions)."""
    h, ffn = config.hidden_size, config.intermediate_size
    rows = batch * (seq - 1 - predictions)
    return 3 * 2 * rows * (2 * h * h + 2 * h * ffn + 2 * seq * h)


def synthetic_features(vocab_size: int, batch: int, seq: int, predictions: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq), predictions, replace=False)
                                  for _ in range(batch)]), axis=1).astype("int32")
    return {
        "input_word_ids": rng.integers(5, vocab_size, (batch, seq)).astype("int32"),
        "input_mask": np.ones((batch, seq), "int32"),
        "input_type_ids": (np.arange(seq)[None] >= seq // 2).repeat(batch, 0).astype("int32"),
        "masked_lm_positions": positions,
        "masked_lm_ids": rng.integers(5, vocab_size, (batch, predictions)).astype("int32"),
        "masked_lm_weights": np.ones((batch, predictions), "float32"),
        "next_sentence_labels": rng.integers(0, 2, (batch,)).astype("int32"),
    }


def _time_fit(model, dataset, steps: int, chunk: int) -> float:
    """Median seconds per step between executions of `chunk` steps inside one `fit`."""
    import keras

    ends = []

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    executions = FLAGS.warmup_executions + max(2, steps // chunk)
    model.fit(dataset, steps_per_epoch=executions * chunk, epochs=1, verbose=0,
              callbacks=[StepTimer()])
    timed = ends[FLAGS.warmup_executions - 1:]
    return statistics.median((b - a) / chunk for a, b in itertools.pairwise(timed))


def _policy(mode: str) -> str:
    return "mixed_bfloat16" if mode.endswith("bf16") else "float32"


def ours(config, mode: str, features) -> float:
    import keras
    import tensorflow as tf

    from keras_bert_impl import BertEncoder
    from keras_bert_impl.models.pretrainer import BertPretrainer
    from keras_bert_impl.training.optimization import create_optimizer

    keras.config.set_dtype_policy(_policy(mode))
    model = BertPretrainer(BertEncoder(config))
    model.compile(optimizer=create_optimizer(1e-4, num_train_steps=10**6, num_warmup_steps=100),
                  jit_compile=mode.startswith("xla"), steps_per_execution=FLAGS.steps_per_execution)
    dataset = tf.data.Dataset.from_tensors(features).repeat()
    return _time_fit(model, dataset, FLAGS.steps, FLAGS.steps_per_execution)


def keras_nlp(config, mode: str, features) -> float:
    import keras
    import keras_hub
    import tensorflow as tf

    keras.config.set_dtype_policy(_policy(mode))
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size, num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads, hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size,
        max_sequence_length=config.max_position_embeddings)
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, global_clipnorm=1.0),
                  jit_compile=mode.startswith("xla"), steps_per_execution=FLAGS.steps_per_execution)
    x = {"token_ids": features["input_word_ids"], "segment_ids": features["input_type_ids"],
         "padding_mask": features["input_mask"].astype(bool),
         "mask_positions": features["masked_lm_positions"]}
    dataset = tf.data.Dataset.from_tensors(
        (x, features["masked_lm_ids"], features["masked_lm_weights"])).repeat()
    return _time_fit(model, dataset, FLAGS.steps, FLAGS.steps_per_execution)


def torch_bert(config, mode: str, features) -> float:
    import numpy as np
    import torch
    import transformers

    hf_config = transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size, hidden_act="gelu_new",
        max_position_embeddings=config.max_position_embeddings)
    model = transformers.BertForPreTraining(hf_config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    labels = np.full(features["input_word_ids"].shape, -100, "int64")
    np.put_along_axis(labels, features["masked_lm_positions"], features["masked_lm_ids"], 1)
    batch = {
        "input_ids": torch.from_numpy(features["input_word_ids"].astype("int64")),
        "attention_mask": torch.from_numpy(features["input_mask"].astype("int64")),
        "token_type_ids": torch.from_numpy(features["input_type_ids"].astype("int64")),
        "labels": torch.from_numpy(labels),
        "next_sentence_label": torch.from_numpy(features["next_sentence_labels"].astype("int64")),
    }
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode.endswith("bf16"))

    def step():
        optimizer.zero_grad()
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(FLAGS.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def input_pipeline_examples_per_second() -> float:
    from keras_bert_impl import BertTokenizer
    from keras_bert_impl.data.pretraining import pretraining_dataset

    tokenizer = BertTokenizer(FLAGS.vocab_file)
    dataset = pretraining_dataset(
        FLAGS.corpus, tokenizer, seq_length=FLAGS.seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq, batch_size=FLAGS.batch_size,
        seed=1)
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(FLAGS.pipeline_batches):
        next(iterator)
    return FLAGS.pipeline_batches * FLAGS.batch_size / (time.perf_counter() - start)


IMPLEMENTATIONS = {"ours": ours, "keras_nlp": keras_nlp, "torch": torch_bert}


def run_one(spec: str) -> None:
    """Child process: times one 'implementation:preset:mode' and prints its seconds per step."""
    from keras_bert_impl import BertConfig

    name, preset, mode = spec.split(":")
    config = BertConfig.from_preset(preset, vocab_size=FLAGS.vocab_size)
    features = synthetic_features(config.vocab_size, FLAGS.batch_size, FLAGS.seq_length,
                                  FLAGS.max_predictions_per_seq)
    print(f"SECONDS_PER_STEP {IMPLEMENTATIONS[name](config, mode, features)!r}", flush=True)
    dtype = "bfloat16" if mode.endswith("bf16") else "float32"
    print(f"PEAK_TFLOPS {matmul_peak_flops(FLAGS.matmul_size, dtype) / 1e12!r}", flush=True)


def time_in_subprocess(name: str, preset: str, mode: str,
                       allocator: str | None) -> tuple[float, float] | str:
    """(seconds per step, matmul peak TFLOP/s measured right after) of one
    configuration in a fresh process, or why it did not run."""
    env = dict(os.environ)
    # PyTorch's OpenMP threads spin after each op by default and take the cores from the
    # rest of a small model's step (2-6x slower steps on a 2-core VM).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if allocator is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = "true" if allocator == "bfc" else "false"
    flag_args = [arg for arg in sys.argv[1:] if not arg.startswith("--only")]
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *flag_args, f"--only={name}:{preset}:{mode}"],
        env=env, capture_output=True, text=True, check=False)
    values = {line.split()[0]: float(line.split()[1]) for line in result.stdout.splitlines()
              if line.startswith(("SECONDS_PER_STEP ", "PEAK_TFLOPS "))}
    if len(values) == 2:
        return values["SECONDS_PER_STEP"], values["PEAK_TFLOPS"]
    lines = (result.stderr or result.stdout).strip().splitlines()
    # A crash dump ends with a list of extension modules; its first line says what happened.
    reason = next((line for line in lines if line.startswith("Fatal Python error")),
                  lines[-1] if lines else "")
    return f"exit code {result.returncode}: {reason}"


def main(argv):
    del argv
    if FLAGS.only:
        run_one(FLAGS.only)
        return
    from keras_bert_impl import BertConfig

    peaks = {"float32": matmul_peak_flops(FLAGS.matmul_size, "float32") / 1e12,
             "mixed_bfloat16": matmul_peak_flops(FLAGS.matmul_size, "bfloat16") / 1e12}
    print(f"matmul peak: fp32 {peaks['float32'] * 1e3:.1f} GFLOP/s, "
          f"bf16 {peaks['mixed_bfloat16'] * 1e3:.1f} GFLOP/s", flush=True)
    if FLAGS.corpus and FLAGS.vocab_file:
        print(f"input pipeline: {input_pipeline_examples_per_second():.0f} examples/s "
              f"(seq {FLAGS.seq_length}, P {FLAGS.max_predictions_per_seq})", flush=True)
    runs = [("ours", None)]
    for name in FLAGS.references:
        allocators = FLAGS.reference_allocators if name == "keras_nlp" else [None]
        runs += [(name, allocator) for allocator in allocators]
    batch, seq, predictions = FLAGS.batch_size, FLAGS.seq_length, FLAGS.max_predictions_per_seq
    for preset in FLAGS.presets:
        config = BertConfig.from_preset(preset, vocab_size=FLAGS.vocab_size)
        flops = model_flops_per_step(config, batch, seq, predictions)
        speeds, rows = {}, []
        for name, allocator in runs:
            label = name if allocator is None else f"{name}[{allocator}]"
            modes = FLAGS.modes
            if name == "torch":  # PyTorch runs eagerly: one row per precision.
                modes = sorted({"eager_bf16" if mode.endswith("bf16") else "eager"
                                for mode in FLAGS.modes})
            rows += [(label, name, mode, allocator) for mode in modes]
        best = {}
        for _ in range(FLAGS.rounds):
            for label, name, mode, allocator in rows:
                result = time_in_subprocess(name, preset, mode, allocator)
                if isinstance(result, str):
                    print(f"{label:17s} {preset:10s} {mode:10s} did not run: {result}", flush=True)
                elif label not in best.get(mode, {}) or result[0] < best[mode][label][0]:
                    best.setdefault(mode, {})[label] = result
        for label, name, mode, _allocator in rows:
            if label in best.get(mode, {}):
                seconds, child_peak = best[mode][label]
                # This VM's matmul peak drifts by up to 1.4x between runs; the
                # higher of the two measurements gives the conservative MFU.
                peak = max(peaks[_policy(mode)], child_peak)
                tokens_per_second = batch * seq / seconds
                speeds[(label, _policy(mode))] = max(
                    speeds.get((label, _policy(mode)), 0.0), tokens_per_second)
                mfu = flops / seconds / 1e12 / peak
                executed = ""
                if name == "ours":
                    hfu = (flops - unexecuted_flops_per_step(config, batch, seq, predictions)
                           ) / seconds / 1e12 / peak
                    executed = f" HFU {hfu:6.1%}"
                elif name == "torch":
                    hfu = (flops + all_position_decoder_flops_per_step(config, batch, seq,
                                                                       predictions)
                           ) / seconds / 1e12 / peak
                    executed = f" HFU {hfu:6.1%}"
                print(f"{label:17s} {preset:10s} {mode:10s} {tokens_per_second:9.0f} tokens/s "
                      f"{seconds * 1e3:8.1f} ms/step {flops / seconds / 1e12 * 1e3:8.1f} GFLOP/s "
                      f"MFU {mfu:6.1%}{executed} (peak {peak * 1e3:.0f})", flush=True)
        for precision in ("float32", "mixed_bfloat16"):
            ours_speed = speeds.get(("ours", precision))
            for (label, label_precision), speed in speeds.items():
                if label != "ours" and label_precision == precision and ours_speed:
                    print(f"ratio     {preset:10s} {precision:14s} ours / {label} = "
                          f"{ours_speed / speed:.2f}x (best mode of each)", flush=True)


if __name__ == "__main__":
    app.run(main)
