"""Pretraining throughput and MFU: our BertPretrainer fit vs keras-nlp (and PyTorch) BERT.

One line per (implementation, preset, mode): training tokens/s, ms per step
(median over timed chunks), achieved model TFLOP/s and MFU against this
machine's measured matmul peak at the same precision. Model FLOPs count the
training step as 3x the forward matmuls (encoder, pooler, the MLM transform
and vocabulary decoder at the P masked positions), identical for every
implementation. Also prints the input pipeline's examples/s when --corpus
is given.

    python benchmarks/pretrain_throughput.py --presets=bert_mini,bert_small \
        --corpus=../shared/data/corpus/en/pg1342_pride_and_prejudice.txt \
        --vocab_file=../shared/data/vocab/bert-base-uncased.txt
"""

import statistics
import time

from absl import app, flags

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


def model_flops_per_step(config, batch: int, seq: int, predictions: int) -> float:
    """Training FLOPs (3x forward) of the matmuls of one MLM + NSP step."""
    h, ffn, layers, vocab = (config.hidden_size, config.intermediate_size,
                             config.num_hidden_layers, config.vocab_size)
    tokens = batch * seq
    encoder = layers * (2 * tokens * (4 * h * h + 2 * h * ffn) + 2 * 2 * batch * seq * seq * h)
    heads = 2 * batch * predictions * (h * h + h * vocab) + 2 * batch * (h * h + 2 * h)
    return 3 * (encoder + heads)


def matmul_peak_tflops(size: int, dtype: str) -> float:
    """The best TFLOP/s of a large XLA matmul over 10 runs, at `dtype`."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size]), dtype)
    matmul = tf.function(lambda a, b: tf.matmul(a, b), jit_compile=True)
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(10):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12


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
    """Median seconds per step over timed `fit` calls of `chunk` steps (after a warm-up call)."""
    model.fit(dataset, steps_per_epoch=chunk, epochs=1, verbose=0, shuffle=False)
    per_step = []
    for _ in range(max(1, steps // chunk)):
        start = time.perf_counter()
        model.fit(dataset, steps_per_epoch=chunk, epochs=1, verbose=0, shuffle=False)
        per_step.append((time.perf_counter() - start) / chunk)
    return statistics.median(per_step)


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


def main(argv):
    del argv
    from keras_bert_impl import BertConfig

    peaks = {"float32": matmul_peak_tflops(FLAGS.matmul_size, "float32"),
             "mixed_bfloat16": matmul_peak_tflops(FLAGS.matmul_size, "bfloat16")}
    print(f"matmul peak: fp32 {peaks['float32'] * 1e3:.1f} GFLOP/s, "
          f"bf16 {peaks['mixed_bfloat16'] * 1e3:.1f} GFLOP/s", flush=True)
    if FLAGS.corpus and FLAGS.vocab_file:
        print(f"input pipeline: {input_pipeline_examples_per_second():.0f} examples/s "
              f"(seq {FLAGS.seq_length}, P {FLAGS.max_predictions_per_seq})", flush=True)
    names = ["ours"] + list(FLAGS.references)
    batch, seq, predictions = FLAGS.batch_size, FLAGS.seq_length, FLAGS.max_predictions_per_seq
    for preset in FLAGS.presets:
        config = BertConfig.from_preset(preset, vocab_size=FLAGS.vocab_size)
        features = synthetic_features(config.vocab_size, batch, seq, predictions)
        flops = model_flops_per_step(config, batch, seq, predictions)
        best = {}
        for name in names:
            for mode in FLAGS.modes:
                try:
                    seconds = IMPLEMENTATIONS[name](config, mode, features)
                except ImportError as error:
                    print(f"{name:9s} {preset:10s} {mode:8s} skipped: {error}", flush=True)
                    break
                tokens_per_second = batch * seq / seconds
                mfu = flops / seconds / 1e12 / peaks[_policy(mode)]
                precision = _policy(mode)
                if name != "ours":
                    best[precision] = max(best.get(precision, 0.0), tokens_per_second)
                best.setdefault(("ours", precision), 0.0)
                if name == "ours":
                    best[("ours", precision)] = max(best[("ours", precision)], tokens_per_second)
                print(f"{name:9s} {preset:10s} {mode:8s} {tokens_per_second:9.0f} tokens/s "
                      f"{seconds * 1e3:8.1f} ms/step {flops / seconds / 1e12 * 1e3:8.1f} GFLOP/s "
                      f"MFU {mfu:6.1%}", flush=True)
        for precision in ("float32", "mixed_bfloat16"):
            if best.get(precision) and best.get(("ours", precision)):
                print(f"ratio     {preset:10s} {precision:14s} ours / best reference = "
                      f"{best[('ours', precision)] / best[precision]:.2f}x", flush=True)


if __name__ == "__main__":
    app.run(main)
