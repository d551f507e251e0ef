"""Serving latency and throughput of text-in SavedModel exports, against tokenized baselines.

For each preset (a randomly initialised BertClassifier, 2 classes; weights do
not change timing) it prints one line per row and number:

* in_process: our text-in SavedModel (raw strings -> logits, tokenization
  inside), exported as a graph and with jit_compile (XLA); baselines: the same
  dimensions fed the ids our export computes inside (padded alike): keras-hub's
  BertBackbone (graph, XLA), PyTorch `transformers` BertForSequenceClassification
  (eager and torch.compile, inference_mode) and ONNX Runtime on an export of that
  PyTorch model (optimisation level all, intra-op threads = CPUs, with and without
  onnxruntime.transformers' BERT fusions). All fp32, or with --precision=bf16 all
  bfloat16: our exports with dtype_policy=mixed_bfloat16, keras-hub's backbone under
  mixed_bfloat16, PyTorch with bf16 weights and under CPU autocast (ONNX Runtime's CPU
  provider has no bf16 MatMul kernel, so it sits out). Sequences/s at --batch_size
  and p50/p99 at batch 1, wall and process CPU; the rows take turns in rounds
  after untimed warm-up calls. Batch 1 is timed twice: "steady", calls back to
  back (a busy single client), and "after N ms idle", each call after an idle
  pause (a lightly loaded server; --idle_ms). Then "ours text-in / best
  tokenized baseline" (sequences/s: above 1 means ours is faster) and "batch=1 p50
  ours / ONNX Runtime" for each regime (latency: below 1 means ours is faster). "reference"
  rows time our exports' tokenized signature: the difference is tokenization. Our
  classifier runs its last block's queries, attention output and feed-forward only at
  [CLS], the baselines at every position: a line prints their matmul FLOPs over ours
  (1.27x at bert_mini, seq 128), so the ratios compare the models as served, not the
  speed per FLOP;
* tokenizers: throughput of the embedded TF-Text tokenizer vs HuggingFace's,
  and a HuggingFace `tokenizers` + Keras pipeline;
* grpc: overhead at batch 1 (in-process and gRPC calls interleaved, the
  median of their paired differences, wall and process CPU time), then
  `keras_bert_impl.serving` with batch-1 requests from 1/8/32 concurrent
  clients, server batching off and on: requests/s, p50/p99, process CPU ms per
  request, rows per model call, and batched/unbatched throughput. The clients
  run in this process, so their CPU is counted too. Before them, the served
  export's in-process CPU per row at batch 1 and at the largest batch: their
  ratio is the most batching can gain on this machine.

--seq_length_buckets exports with bucketed lengths (a batch is padded only to
the bucket its longest text needs), --short_texts sends 10-30-word lines, and
--jit_compile serves the XLA export in the grpc section; --sections picks the
parts to run. The baselines need `pip install -e ".[bench]"` (torch,
transformers, onnx, onnxruntime).

Ours against the baselines (bert_mini, seq 128, batch 32):

    python benchmarks/serving.py --presets=bert_mini --seq_length=128 --batch_size=32 \
        --sections=in_process,baselines --iterations=30

Batching with short requests:

    python benchmarks/serving.py --presets=bert_mini --text_file=.../sample_text.txt \
        --short_texts --seq_length_buckets=16,32,64,128 --sections=in_process,grpc

The same in bf16 (on CPUs with AVX512_BF16 or AMX):

    python benchmarks/serving.py --presets=bert_mini --seq_length=128 --batch_size=32 \
        --sections=in_process,baselines --iterations=30 --precision=bf16

Under 100 timed calls, a row prints p50 and the maximum instead of p99 (which is then
the maximum, near enough).

Smoke run: --presets=bert_tiny --seq_length=32 --batch_size=4 --requests=4 \
    --clients=1,2 --iterations=3 --notorch_compile
"""

import concurrent.futures
import functools
import importlib.metadata
import itertools
import os
import pathlib
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from keras_bert_impl import BertConfig, BertEncoder, BertPreprocessor, BertTokenizer
from keras_bert_impl.export import export_saved_model
from keras_bert_impl.models.classifier import BertClassifier
from keras_bert_impl.serving import Client, start_server
from keras_bert_impl.serving.batching_parameters import BatchingOptions

_SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["bert_mini", "bert_base"], "BertConfig presets to measure.")
flags.DEFINE_enum("precision", "fp32", ["fp32", "bf16"], "Precision of every row: bf16 "
                  "exports with dtype_policy=mixed_bfloat16 and runs the baselines in bf16.")
flags.DEFINE_integer("seq_length", 128, "Sequence length of the export and baselines.")
flags.DEFINE_integer("batch_size", 32, "Batch size of the throughput rows.")
flags.DEFINE_integer("iterations", 30, "Timed calls per in-process configuration.")
flags.DEFINE_integer("warmup", 2, "Untimed calls of each in-process row at each batch size.")
flags.DEFINE_integer("rounds", 3, "The in-process rows take turns in this many rounds.")
flags.DEFINE_integer("idle_ms", 50, "Batch-1 'after idle' rows: the pause before each timed call "
                     "(a lightly loaded server; on this VM every runtime's batch-1 call is "
                     "~1.5x slower after tens of ms idle than back to back).")
flags.DEFINE_integer("settle_calls", 5, "Batch-1 'steady' rows: untimed calls before each "
                     "round's timed ones, so that they are timed back to back.")
flags.DEFINE_bool("spin_wait", False, "Let PyTorch's OpenMP and ONNX Runtime's intra-op threads "
                  "spin between parallel regions (their defaults). Off, they sleep: on shared "
                  "cores a spinning thread waits for a descheduled one and calls slow down "
                  "2-20x.")
flags.DEFINE_bool("torch_compile", True, "Also time torch.compile (compiling takes minutes "
                  "on a small CPU).")
flags.DEFINE_integer("requests", 50, "Requests per gRPC client.")
flags.DEFINE_list("clients", ["1", "8", "32"], "Concurrent gRPC clients.")
flags.DEFINE_string("vocab_file", str(_SHARED / "vocab" / "bert-base-uncased.txt"),
                    "WordPiece vocabulary.")
flags.DEFINE_string("text_file", str(_SHARED / "corpus" / "en" / "pg1342_pride_and_prejudice.txt"),
                    "Text to send: its non-empty lines.")
flags.DEFINE_integer("batch_timeout_micros", 2000, "Server batching wait.")
flags.DEFINE_integer("num_batch_threads", 2, "Server batching: concurrent model calls.")
flags.DEFINE_list("allowed_batch_sizes", [], "Server batching: pad merged batches to these "
                  "sizes (ending with the max batch size); bounds the shapes XLA compiles for.")
flags.DEFINE_integer("untimed_rounds", 0, "Rounds of each gRPC configuration run before timing "
                     "(XLA exports compile once per batch and sequence shape).")
flags.DEFINE_list("seq_length_buckets", [], "Bucketed export lengths, ending with --seq_length.")
flags.DEFINE_bool("short_texts", False, "Send lines of 10-30 words instead of lines over 40 chars.")
flags.DEFINE_bool("jit_compile", False, "gRPC sections: serve the export whose model part is "
                  "compiled with XLA (the in-process rows time both).")
flags.DEFINE_list("sections", ["in_process", "baselines", "tokenizers", "grpc"],
                  "Parts to run: in_process (ours), baselines (tokenized keras-hub, PyTorch, "
                  "ONNX Runtime), tokenizers, grpc.")


def load_texts(count: int) -> list[str]:
    with open(FLAGS.text_file, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    if FLAGS.short_texts:
        lines = [line for line in lines if 10 <= len(line.split()) <= 30]
    else:
        lines = [line for line in lines if len(line) > 40]
    return (lines * (count // max(len(lines), 1) + 1))[:count]


def percentiles(seconds: list[float]) -> str:
    """p50 and p99, or p50 and the maximum where under 100 samples leave p99 the maximum."""
    ms = np.array(seconds) * 1e3
    if len(ms) < 100:
        return f"p50={np.percentile(ms, 50):.2f} ms max={ms.max():.2f} ms (n={len(ms)})"
    return f"p50={np.percentile(ms, 50):.2f} ms p99={np.percentile(ms, 99):.2f} ms"


def baseline_flops_ratio(config, seq: int) -> float:
    """Matmul FLOPs of a baseline's forward over ours: our classifier runs the last block's
    queries, attention output and feed-forward only at [CLS], the baselines at every position."""
    h, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    block = 2 * seq * (4 * h * h + 2 * h * ffn) + 4 * seq * seq * h
    cls_only_block = 2 * seq * 2 * h * h + 2 * (2 * h * h + 2 * h * ffn) + 4 * seq * h
    return layers * block / ((layers - 1) * block + cls_only_block)


def timed(fn, iterations: int) -> list[float]:
    fn()  # warm-up (tracing)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def report(preset: str, what: str, text: str) -> None:
    print(f"{preset:10s} seq={FLAGS.seq_length:<4d} {what:58s} {text}", flush=True)


def tokenized_features(preprocessor, texts: list[str], buckets) -> dict[str, np.ndarray]:
    """The ids the text-in export computes inside: padded to the same bucket, so baselines
    fed them see the same positions (they compute more on them: `baseline_flops_ratio`)."""
    features = {name: value.numpy() for name, value in preprocessor(tf.constant(texts)).items()}
    if buckets:
        longest = features["input_mask"].sum(axis=1).max()
        length = min(b for b in buckets if b >= longest)
        features = {name: value[:, :length] for name, value in features.items()}
    return features


def ours_rows(export_dirs: dict[bool, str], texts: list[str], features: dict[int, dict]) -> dict:
    """Text-in signatures called in-process on raw strings (tokenization inside); and, for
    reference (how much of it is tokenization), the same exports' tokenized signatures."""
    rows = {}
    for jit_compile, export_dir in export_dirs.items():
        signatures = tf.saved_model.load(export_dir).signatures
        mode = "XLA" if jit_compile else "graph"
        rows[f"ours: text-in SavedModel {mode}"] = {
            batch: functools.partial(lambda function, s: function(text=s)["logits"].numpy(),
                                     signatures["serving_default"], tf.constant(texts[:batch]))
            for batch in features}
        rows[f"reference: our export's tokenized signature {mode}"] = {
            batch: functools.partial(lambda function, x: function(**x)["logits"].numpy(),
                                     signatures["serving_tokenized"],
                                     {name: tf.constant(value) for name, value in f.items()})
            for batch, f in features.items()}
    return rows


def keras_hub_rows(config, features: dict[int, dict]) -> dict:
    """keras-hub's BertBackbone (same dimensions) fed the same ids; pooled output."""
    import keras_hub
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size, num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads, hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size, dropout=0.0,
        max_sequence_length=max(config.max_position_embeddings, FLAGS.seq_length),
        dtype=_keras_policy())
    rows = {}
    for mode, jit in (("graph", False), ("XLA", True)):
        call = tf.function(lambda x: backbone(x, training=False)["pooled_output"],
                           jit_compile=jit, autograph=False)
        calls = {}
        for batch, f in features.items():
            inputs = {"token_ids": tf.constant(f["input_word_ids"]),
                      "segment_ids": tf.constant(f["input_type_ids"]),
                      "padding_mask": tf.constant(f["input_mask"])}
            calls[batch] = functools.partial(lambda c, x: c(x).numpy(), call, inputs)
        rows[f"keras-hub BertBackbone tokenized {mode}"] = calls
    return rows


def _keras_policy() -> str:
    return "mixed_bfloat16" if FLAGS.precision == "bf16" else "float32"


def torch_model(config, num_classes: int, attention: str = "sdpa"):
    """transformers' BertForSequenceClassification with our dimensions and tanh-GELU."""
    import transformers
    hf_config = transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size, hidden_act="gelu_new",
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size, layer_norm_eps=1e-12,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=num_classes)
    hf_config._attn_implementation = attention
    return transformers.BertForSequenceClassification(hf_config).eval()


def _torch_inputs(features: dict[str, np.ndarray]) -> tuple:
    import torch
    return tuple(torch.from_numpy(features[name].astype(np.int64))
                 for name in ("input_word_ids", "input_mask", "input_type_ids"))


def torch_rows(model, features: dict[int, dict]) -> dict:
    """PyTorch eager (and torch.compile with --torch_compile) under inference_mode; in bf16
    both with bf16 weights and under CPU autocast (float32 weights, as ours)."""
    import copy

    import torch
    torch.set_num_threads(os.cpu_count())

    def run(module, autocast, inputs):
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            return module(*inputs).logits.float().numpy()

    if FLAGS.precision == "bf16":
        variants = {"bf16 weights": (copy.deepcopy(model).to(torch.bfloat16), False),
                    "bf16 autocast": (model, True)}
    else:
        variants = {"": (model, False)}
    modules = {}
    for suffix, (module, autocast) in variants.items():
        name = f"PyTorch transformers {{}} {suffix}".rstrip()
        modules[name.format("eager")] = (module, autocast)
        if FLAGS.torch_compile:
            modules[name.format("torch.compile")] = (torch.compile(module, dynamic=False),
                                                     autocast)
    return {name: {batch: functools.partial(run, module, autocast, _torch_inputs(f))
                   for batch, f in features.items()}
            for name, (module, autocast) in modules.items()}


def onnx_rows(model, config, features: dict[int, dict], scratch: str) -> dict:
    """ONNX Runtime on an export of the PyTorch model: graph optimisation level all, and
    with onnxruntime.transformers' BERT fusions (Attention, SkipLayerNorm, FastGelu).
    Checks both against PyTorch's logits, so a broken export cannot look fast."""
    import onnxruntime
    import torch
    from onnxruntime.transformers import optimizer
    # The eager attention graph is the pattern ORT's Attention fusion recognises.
    exported = torch_model(config, model.num_labels, attention="eager")
    exported.load_state_dict(model.state_dict())
    names = ("input_ids", "attention_mask", "token_type_ids")
    # Example ids with padding, so the traced graph keeps the attention mask.
    example = _torch_inputs(features[max(features)])
    path = os.path.join(scratch, "bert.onnx")
    torch.onnx.export(exported, example, path, input_names=list(names), output_names=["logits"],
                      dynamic_axes={name: {0: "batch", 1: "seq"} for name in names},
                      opset_version=17, dynamo=False)
    fused = optimizer.optimize_model(path, model_type="bert",
                                     num_heads=config.num_attention_heads,
                                     hidden_size=config.hidden_size, opt_level=0)
    fused_path = os.path.join(scratch, "bert_fused.onnx")
    fused.save_model_to_file(fused_path)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = os.cpu_count()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning",
                                     "1" if FLAGS.spin_wait else "0")
    rows = {}
    for name, model_path in (("ONNX Runtime", path), ("ONNX Runtime + BERT fusions", fused_path)):
        session = onnxruntime.InferenceSession(model_path, options,
                                               providers=["CPUExecutionProvider"])
        calls = {}
        for batch, f in features.items():
            feeds = dict(zip(names, (t.numpy() for t in _torch_inputs(f))))
            with torch.inference_mode():
                expected = model(*_torch_inputs(f)).logits.numpy()
            np.testing.assert_allclose(session.run(["logits"], feeds)[0], expected,
                                       atol=1e-4, err_msg=f"{name} differs from PyTorch")
            calls[batch] = functools.partial(lambda s, x: s.run(["logits"], x)[0], session, feeds)
        rows[name] = calls
    return rows


def time_rows(rows: dict, batch: int, settle: int = 0,
              idle: float = 0.0) -> dict[str, np.ndarray]:
    """[iterations, 2] wall and process-CPU seconds per call of every row at `batch`.

    Each row is first called --warmup times (tracing, XLA/Inductor compiles, ORT arenas).
    The --iterations calls are split into --rounds; in each round every row runs its share
    in turn after a short pause (thread pools that spin after a call go idle), so load from
    other processes falls on all rows alike. In a round, a row first makes `settle` untimed
    calls; `idle` seconds of sleep precede each timed call.
    """
    for calls in rows.values():
        for _ in range(FLAGS.warmup):
            calls[batch]()
    times = {name: [] for name in rows}
    for round_index in range(FLAGS.rounds):
        share = len(range(round_index, FLAGS.iterations, FLAGS.rounds))
        for name, calls in rows.items():
            time.sleep(0.2)
            for _ in range(settle):
                calls[batch]()
            for _ in range(share):
                time.sleep(idle)
                wall, cpu = time.perf_counter(), time.process_time()
                calls[batch]()
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: np.array(t) for name, t in times.items()}


def bench_in_process(preset, rows: dict) -> None:
    """Every row at --batch_size (seq/s) and at batch 1 (p50/p99), then ours against the best."""
    batch = FLAGS.batch_size
    throughput = {}
    for name, t in time_rows(rows, batch).items():
        throughput[name] = batch / np.median(t[:, 0])
        report(preset, f"{name} batch={batch}",
               f"{throughput[name]:.1f} seq/s ({np.median(t[:, 0]) * 1e3:.1f} ms/call, "
               f"{np.median(t[:, 1]) * 1e3:.1f} CPU ms/call, median of {len(t)})")
    regimes = {"steady": {"settle": FLAGS.settle_calls},
               f"after {FLAGS.idle_ms} ms idle": {"idle": FLAGS.idle_ms / 1e3}}
    p50 = {regime: {} for regime in regimes}
    for regime, timing in regimes.items():
        for name, t in time_rows(rows, 1, **timing).items():
            p50[regime][name] = np.median(t[:, 0]) * 1e3
            report(preset, f"{name} batch=1 {regime}",
                   f"{percentiles(t[:, 0])} ({np.median(t[:, 1]) * 1e3:.2f} CPU ms/call)")
    ours = [name for name in rows if name.startswith("ours:")]
    others = [name for name in rows if not name.startswith(("ours:", "reference:"))]
    if not ours or not others:
        return
    report_ratio(preset, f"ours text-in / best tokenized baseline batch={batch}", throughput,
                 max(ours, key=throughput.get), max(others, key=throughput.get), "seq/s", 1)
    if not FLAGS.seq_length_buckets:
        config = BertConfig.from_preset(preset)
        report(preset, "baselines' matmul FLOPs / ours (last block at every position)",
               f"{baseline_flops_ratio(config, FLAGS.seq_length):.3f}x")
    onnx = [name for name in others if name.startswith("ONNX Runtime")]
    for regime, latency in p50.items():
        if onnx:
            report_ratio(preset, f"batch=1 p50 ours / ONNX Runtime, {regime}", latency,
                         min(ours, key=latency.get), min(onnx, key=latency.get), "ms", 2)


def report_ratio(preset, what: str, values: dict, ours: str, other: str, unit: str,
                 digits: int) -> None:
    report(preset, what, f"{values[ours] / values[other]:.2f}x ({ours} {values[ours]:.{digits}f} "
                         f"vs {other} {values[other]:.{digits}f} {unit})")


def bench_tokenizers(preset, texts, tokenizer, preprocessor, classifier):
    from tokenizers import BertWordPieceTokenizer
    hf = BertWordPieceTokenizer(FLAGS.vocab_file, lowercase=tokenizer.lower_case)
    hf.enable_truncation(FLAGS.seq_length)
    hf.enable_padding(length=FLAGS.seq_length)
    batch = texts[:FLAGS.batch_size]
    tf_batch = tf.constant(batch)
    embedded = tf.function(preprocessor.__call__, autograph=False)
    hf_times = timed(lambda: hf.encode_batch(batch), FLAGS.iterations)
    tf_times = timed(lambda: embedded(tf_batch), FLAGS.iterations)
    report(preset, f"tokenizer only: HuggingFace tokenizers batch={FLAGS.batch_size}",
           f"{FLAGS.batch_size / statistics.median(hf_times):.1f} texts/s")
    report(preset, f"tokenizer only: embedded TF-Text graph batch={FLAGS.batch_size}",
           f"{FLAGS.batch_size / statistics.median(tf_times):.1f} texts/s")
    model = tf.function(lambda f: classifier(f, training=False), autograph=False)

    def pipeline():
        encodings = hf.encode_batch(batch)
        model({"input_word_ids": tf.constant([e.ids for e in encodings], tf.int32),
               "input_mask": tf.constant([e.attention_mask for e in encodings], tf.int32),
               "input_type_ids": tf.constant([e.type_ids for e in encodings], tf.int32)})

    times = timed(pipeline, FLAGS.iterations)
    report(preset, f"HF tokenizers + Keras classifier batch={FLAGS.batch_size}",
           f"{FLAGS.batch_size / statistics.median(times):.1f} seq/s")


def _client_run(target: str, texts: list[str], index: int) -> list[float]:
    """One client sending --requests batch-1 requests in turn; their latencies."""
    client = Client(target, timeout=120)
    latencies = []
    for step in range(FLAGS.requests):
        text = texts[(index * FLAGS.requests + step) % len(texts)]
        start = time.perf_counter()
        client.predict([text])
        latencies.append(time.perf_counter() - start)
    client.close()
    return latencies


def bench_grpc_overhead(preset, export_dir, export_base, texts):
    """In-process and gRPC batch-1 calls interleaved; the median of their paired differences."""
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    with start_server(export_base, file_system_poll_wait_seconds=0) as server:
        client = Client(f"127.0.0.1:{server.port}", timeout=120)
        def in_process(text):
            return {k: v.numpy() for k, v in signature(text=tf.constant([text])).items()}

        calls = (in_process, lambda text: client.predict([text]))
        rows = []
        for step in range(3 + FLAGS.iterations * 10):
            row = []
            for call in calls:
                wall, cpu = time.perf_counter(), time.process_time()
                call(texts[step % len(texts)])
                row += [time.perf_counter() - wall, time.process_time() - cpu]
            rows.append(row)
        client.close()
    ms = np.array(rows[3:]) * 1e3
    report(preset, "batch=1 in-process vs gRPC, interleaved",
           f"in-process p50 {np.median(ms[:, 0]):.2f} ms, gRPC p50 {np.median(ms[:, 2]):.2f} ms; "
           f"gRPC adds {np.median(ms[:, 2] - ms[:, 0]):.2f} ms wall, "
           f"{np.median(ms[:, 3] - ms[:, 1]):.2f} ms CPU (paired medians)")


def bench_row_cost(preset, export_dir, texts):
    """In-process CPU per row of the served export at batch 1 and at the largest batch.

    Their ratio bounds what server batching can gain on this machine: merging
    requests saves each call's fixed cost, never the per-row compute.
    """
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    largest = max([int(size) for size in FLAGS.allowed_batch_sizes] or [32])
    cost = {}
    for batch in (1, largest):
        chunks = [tf.constant([texts[(step * batch + row) % len(texts)] for row in range(batch)])
                  for step in range(FLAGS.iterations)]
        for chunk in chunks[:8]:  # compiles the common buckets; the median absorbs the rest
            signature(text=chunk)
        cpu = []
        for chunk in chunks:
            start = time.process_time()
            signature(text=chunk)["probabilities"].numpy()
            cpu.append((time.process_time() - start) / batch)
        cost[batch] = statistics.median(cpu) * 1e3
    report(preset, "in-process CPU per row by batch size",
           f"batch 1: {cost[1]:.2f} ms, batch {largest}: {cost[largest]:.2f} ms; batching "
           f"can gain at most {cost[1] / cost[largest]:.2f}x here")


def bench_grpc(preset, export_base, texts):
    unbatched = {}
    for batching in (False, True):
        allowed = tuple(int(size) for size in FLAGS.allowed_batch_sizes)
        largest = allowed[-1] if allowed else max(32, FLAGS.batch_size)
        options = BatchingOptions(max_batch_size=largest,
                                  batch_timeout_micros=FLAGS.batch_timeout_micros,
                                  num_batch_threads=FLAGS.num_batch_threads,
                                  allowed_batch_sizes=allowed) if batching else None
        with start_server(export_base, enable_batching=batching, batching=options,
                          file_system_poll_wait_seconds=0) as server:
            target = f"127.0.0.1:{server.port}"
            Client(target).predict(texts[:1])  # connection and warm-up
            for clients in [int(c) for c in FLAGS.clients]:
                for _ in range(FLAGS.untimed_rounds):
                    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                        list(pool.map(functools.partial(_client_run, target, texts),
                                      range(clients)))
                calls, cpu = server.model_calls(), time.process_time()
                start = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                    runs = pool.map(functools.partial(_client_run, target, texts), range(clients))
                    latencies = list(itertools.chain.from_iterable(runs))
                elapsed = time.perf_counter() - start
                cpu_ms = (time.process_time() - cpu) * 1e3 / len(latencies)
                rows_per_call = len(latencies) / max(server.model_calls() - calls, 1)
                rate = len(latencies) / elapsed
                extra = ""
                if batching and clients in unbatched:
                    extra = f" = {rate / unbatched[clients]:.2f}x unbatched"
                else:
                    unbatched[clients] = rate
                state = "on" if batching else "off"
                report(preset, f"gRPC batch=1 clients={clients} batching={state}",
                       f"{rate:.1f} req/s {percentiles(latencies)} {cpu_ms:.2f} CPU ms/req "
                       f"{rows_per_call:.1f} rows/call{extra}")


def export(classifier, scratch: str, buckets, jit_compile: bool) -> str:
    """The text-in SavedModel version directory, under scratch/graph or scratch/xla."""
    return export_saved_model(classifier, os.path.join(scratch, "xla" if jit_compile else "graph"),
                              FLAGS.vocab_file, seq_length=FLAGS.seq_length,
                              seq_length_buckets=buckets, jit_compile=jit_compile,
                              dtype_policy=_keras_policy())


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    tokenizer = BertTokenizer(FLAGS.vocab_file)
    preprocessor = BertPreprocessor(tokenizer, FLAGS.seq_length)
    texts = load_texts(max(1000, FLAGS.batch_size))
    buckets = [int(b) for b in FLAGS.seq_length_buckets] or None
    batch_sizes = (FLAGS.batch_size, 1)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs; "
          f"buckets={buckets} short_texts={FLAGS.short_texts} jit_compile={FLAGS.jit_compile} "
          f"precision={FLAGS.precision}")
    for preset in FLAGS.presets:
        config = BertConfig.from_preset(preset, vocab_size=tokenizer.vocab_size)
        classifier = BertClassifier(BertEncoder(config), num_classes=2)
        with tempfile.TemporaryDirectory() as scratch:
            export_dir = functools.cache(functools.partial(export, classifier, scratch, buckets))
            rows = {}
            features = {batch: tokenized_features(preprocessor, texts[:batch], buckets)
                        for batch in batch_sizes}
            if "in_process" in FLAGS.sections:
                rows |= ours_rows({jit: export_dir(jit) for jit in (False, True)}, texts,
                                  features)
            if "baselines" in FLAGS.sections:
                # libgomp reads this when PyTorch loads it, on the first import below.
                os.environ.setdefault("OMP_WAIT_POLICY",
                                      "ACTIVE" if FLAGS.spin_wait else "PASSIVE")
                rows |= keras_hub_rows(config, features)
                model = torch_model(config, classifier.num_classes)
                rows |= torch_rows(model, features)
                if FLAGS.precision == "fp32":
                    rows |= onnx_rows(model, config, features, scratch)
                else:
                    print("ONNX Runtime sits out: its CPU provider has no bf16 MatMul kernel")
                print(", ".join(f"{package} {importlib.metadata.version(package)}" for package in
                                ("keras-hub", "torch", "transformers", "onnxruntime")))
            if rows:
                bench_in_process(preset, rows)
            if "tokenizers" in FLAGS.sections:
                bench_tokenizers(preset, texts, tokenizer, preprocessor, classifier)
            if "grpc" in FLAGS.sections:
                served = export_dir(FLAGS.jit_compile)
                bench_grpc_overhead(preset, served, os.path.dirname(served), texts)
                bench_row_cost(preset, served, texts)
                bench_grpc(preset, os.path.dirname(served), texts)


if __name__ == "__main__":
    app.run(main)
