"""Serving latency and throughput of text-in SavedModel exports.

For each preset (a randomly initialised BertClassifier; weights do not change
timing) it prints one line per configuration:

* in-process SavedModel, raw strings -> logits: p50/p99 latency at batch 1 and
  sequences/s at --batch_size;
* already-tokenized baselines at --batch_size: the keras-hub BertBackbone fed
  id tensors (graph and XLA), and a HuggingFace `tokenizers` + Keras pipeline;
  tokenizer-only throughput of the embedded TF-Text tokenizer vs HuggingFace's;
* gRPC overhead at batch 1: in-process and gRPC calls interleaved, the
  median of their paired differences (wall and process CPU time), so load
  from other processes cancels out;
* gRPC through `keras_bert_impl.serving` (batch-1 requests from 1/8/32
  concurrent clients, server batching off and on): requests/s, p50/p99,
  process CPU ms per request, rows per model call, and batched/unbatched
  throughput. The clients run in this process, so their CPU is counted too.

--seq_length_buckets exports with bucketed lengths (a batch is padded only to
the bucket its longest text needs), --short_texts sends 10-30-word lines, and
--jit_compile exports the model part compiled with XLA; --sections picks the
parts to run.

PyTorch and ONNX Runtime rows are printed only when those packages are installed.

    python benchmarks/serving.py --presets=bert_mini,bert_base --seq_length=128

Batching with short requests:

    python benchmarks/serving.py --presets=bert_mini --text_file=.../sample_text.txt \
        --short_texts --seq_length_buckets=16,32,64,128 --sections=in_process,grpc

Smoke run: --presets=bert_tiny --seq_length=32 --batch_size=4 --requests=4 \
    --clients=1,2 --iterations=3
"""

import concurrent.futures
import functools
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
flags.DEFINE_integer("seq_length", 128, "Sequence length of the export and baselines.")
flags.DEFINE_integer("batch_size", 32, "Batch size of the throughput rows.")
flags.DEFINE_integer("iterations", 30, "Timed calls per in-process configuration.")
flags.DEFINE_integer("requests", 50, "Requests per gRPC client.")
flags.DEFINE_list("clients", ["1", "8", "32"], "Concurrent gRPC clients.")
flags.DEFINE_string("vocab_file", str(_SHARED / "vocab" / "bert-base-uncased.txt"),
                    "WordPiece vocabulary.")
flags.DEFINE_string("text_file", str(_SHARED / "corpus" / "en" / "pg1342_pride_and_prejudice.txt"),
                    "Text to send: its non-empty lines.")
flags.DEFINE_integer("batch_timeout_micros", 2000, "Server batching wait.")
flags.DEFINE_list("allowed_batch_sizes", [], "Server batching: pad merged batches to these "
                  "sizes (ending with the max batch size); bounds the shapes XLA compiles for.")
flags.DEFINE_integer("untimed_rounds", 0, "Rounds of each gRPC configuration run before timing "
                     "(XLA exports compile once per batch and sequence shape).")
flags.DEFINE_list("seq_length_buckets", [], "Bucketed export lengths, ending with --seq_length.")
flags.DEFINE_bool("short_texts", False, "Send lines of 10-30 words instead of lines over 40 chars.")
flags.DEFINE_bool("jit_compile", False, "Export the model part compiled with XLA.")
flags.DEFINE_list("sections", ["in_process", "baselines", "tokenizers", "grpc"],
                  "Parts to run: in_process, baselines, tokenizers, grpc.")


def load_texts(count: int) -> list[str]:
    with open(FLAGS.text_file, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    if FLAGS.short_texts:
        lines = [line for line in lines if 10 <= len(line.split()) <= 30]
    else:
        lines = [line for line in lines if len(line) > 40]
    return (lines * (count // max(len(lines), 1) + 1))[:count]


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1e3
    return f"p50={np.percentile(ms, 50):.2f} ms p99={np.percentile(ms, 99):.2f} ms"


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


def bench_in_process(preset, export_dir, texts) -> None:
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    one = tf.constant(texts[:1])
    report(preset, "SavedModel in-process text->logits batch=1",
           percentiles(timed(lambda: signature(text=one), FLAGS.iterations)))
    batch = tf.constant(texts[:FLAGS.batch_size])
    times = timed(lambda: signature(text=batch), FLAGS.iterations)
    report(preset, f"SavedModel in-process text->logits batch={FLAGS.batch_size}",
           f"{FLAGS.batch_size / statistics.median(times):.1f} seq/s")


def bench_tokenized_baselines(preset, config, texts, preprocessor):
    import keras_hub
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config.vocab_size, num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads, hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size, dropout=0.0,
        max_sequence_length=max(config.max_position_embeddings, FLAGS.seq_length))
    features = preprocessor(tf.constant(texts[:FLAGS.batch_size]))
    hub_inputs = {"token_ids": features["input_word_ids"],
                  "segment_ids": features["input_type_ids"],
                  "padding_mask": features["input_mask"]}
    def pooled(x):
        return backbone(x, training=False)["pooled_output"]

    for mode, jit in (("graph", False), ("xla", True)):
        call = tf.function(pooled, jit_compile=jit, autograph=False)
        times = timed(functools.partial(call, hub_inputs), FLAGS.iterations)
        report(preset, f"keras-hub BertBackbone tokenized {mode} batch={FLAGS.batch_size}",
               f"{FLAGS.batch_size / statistics.median(times):.1f} seq/s")


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
    for package in ("torch", "onnxruntime"):
        try:
            __import__(package)
        except ImportError:
            report(preset, f"{package} baseline", "skipped: not installed")


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
        calls = (lambda text: {k: v.numpy() for k, v in signature(text=tf.constant([text])).items()},
                 lambda text: client.predict([text]))
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


def bench_grpc(preset, export_base, texts):
    unbatched = {}
    for batching in (False, True):
        allowed = tuple(int(size) for size in FLAGS.allowed_batch_sizes)
        options = BatchingOptions(max_batch_size=allowed[-1] if allowed else max(32, FLAGS.batch_size),
                                  batch_timeout_micros=FLAGS.batch_timeout_micros,
                                  num_batch_threads=2,
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
                report(preset, f"gRPC batch=1 clients={clients} batching={'on' if batching else 'off'}",
                       f"{rate:.1f} req/s {percentiles(latencies)} {cpu_ms:.2f} CPU ms/req "
                       f"{rows_per_call:.1f} rows/call{extra}")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    tokenizer = BertTokenizer(FLAGS.vocab_file)
    preprocessor = BertPreprocessor(tokenizer, FLAGS.seq_length)
    texts = load_texts(max(1000, FLAGS.batch_size))
    buckets = [int(b) for b in FLAGS.seq_length_buckets] or None
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs; "
          f"buckets={buckets} short_texts={FLAGS.short_texts} jit_compile={FLAGS.jit_compile}")
    for preset in FLAGS.presets:
        config = BertConfig.from_preset(preset, vocab_size=tokenizer.vocab_size)
        classifier = BertClassifier(BertEncoder(config), num_classes=2)
        with tempfile.TemporaryDirectory() as export_base:
            export_dir = export_saved_model(classifier, export_base, FLAGS.vocab_file,
                                            seq_length=FLAGS.seq_length,
                                            seq_length_buckets=buckets,
                                            jit_compile=FLAGS.jit_compile)
            if "in_process" in FLAGS.sections:
                bench_in_process(preset, export_dir, texts)
            if "baselines" in FLAGS.sections:
                bench_tokenized_baselines(preset, config, texts, preprocessor)
            if "tokenizers" in FLAGS.sections:
                bench_tokenizers(preset, texts, tokenizer, preprocessor, classifier)
            if "grpc" in FLAGS.sections:
                bench_grpc_overhead(preset, export_dir, export_base, texts)
                bench_grpc(preset, export_base, texts)


if __name__ == "__main__":
    app.run(main)
