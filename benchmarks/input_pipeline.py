"""Input-pipeline throughput and memory: pretraining_dataset alone, no model.

Prints one line per configuration: examples/s and tokens/s (real tokens, padding
not counted) for dynamic
masking from raw text and for reading pre-generated TFRecords, with 1 and 2
parallel calls, and the peak resident memory while streaming a corpus made
by repeating the shared corpora ``--corpus_repeats`` times (streaming keeps
it flat as the corpus grows).

    python benchmarks/input_pipeline.py --vocab_file=../shared/data/vocab/bert-base-uncased.txt \
        --corpus_dir=../shared/data/corpus --corpus_repeats=20 --num_batches=200

Smoke run: the command above with --corpus_repeats=1 --num_batches=3 --batch_size=8.
"""

import itertools
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary.")
flags.DEFINE_bool("lower_case", True, "Lower-case (uncased vocabulary).")
flags.DEFINE_string("corpus_dir", None, "Directory of .txt corpora (searched recursively).")
flags.DEFINE_integer("corpus_repeats", 20, "Times the corpora are repeated into the big file.")
flags.DEFINE_integer("seq_length", 128, "Sequence length.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("num_batches", 200, "Batches timed per configuration (after one warm-up).")
flags.DEFINE_list("parallel_calls", ["1", "2"], "num_parallel_calls values to compare.")
flags.DEFINE_bool("whole_word_masking", False, "Benchmark with whole-word masking.")
flags.DEFINE_string("memory_probe", None, "Internal: run only the streaming-memory probe on "
                    "this corpus file and print its peak RSS.")
flags.mark_flags_as_required(["vocab_file"])


def _make_corpus(directory: pathlib.Path) -> pathlib.Path:
    sources = sorted(pathlib.Path(FLAGS.corpus_dir).rglob("*.txt"))
    if not sources:
        raise app.UsageError(f"--corpus_dir={FLAGS.corpus_dir}: no .txt files")
    path = directory / "big_corpus.txt"
    with open(path, "wb") as out:
        for _ in range(FLAGS.corpus_repeats):
            for source in sources:
                out.write(source.read_bytes().replace(b"\r\n", b"\n"))
                out.write(b"\n\n")
    return path


def _dataset(files, tokenizer, parallel_calls, num_epochs=None):
    from keras_bert_impl.data.pretraining import pretraining_dataset

    return pretraining_dataset(
        files, tokenizer, seq_length=FLAGS.seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq, batch_size=FLAGS.batch_size,
        whole_word_masking=FLAGS.whole_word_masking, seed=1, num_epochs=num_epochs,
        num_parallel_calls=parallel_calls)


def _time(dataset) -> tuple[float, float]:
    iterator = iter(dataset)
    next(iterator)
    tokens = 0
    start = time.perf_counter()
    for _ in range(FLAGS.num_batches):
        tokens += int(next(iterator)["input_mask"].numpy().sum())
    elapsed = time.perf_counter() - start
    return FLAGS.num_batches * FLAGS.batch_size / elapsed, tokens / elapsed


def _write_records(corpus: pathlib.Path, out: pathlib.Path, tokenizer) -> str:
    import tensorflow as tf

    from keras_bert_impl.data import tfrecords

    path = str(out / "bench.tfrecord")
    dataset = _dataset(str(corpus), tokenizer, 2, num_epochs=1)
    with tf.io.TFRecordWriter(path) as writer:
        for batch in itertools.islice(dataset.as_numpy_iterator(), FLAGS.num_batches + 1):
            for row in range(FLAGS.batch_size):
                writer.write(tfrecords.serialize_example({k: v[row] for k, v in batch.items()}))
    tfrecords.write_metadata(path, {"seq_length": FLAGS.seq_length,
                                    "max_predictions_per_seq": FLAGS.max_predictions_per_seq,
                                    "vocab_sha256": tokenizer.vocab_sha256})
    return path


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory_probe(tokenizer) -> None:
    """Streams the whole corpus once and prints the peak RSS of this process."""
    dataset = _dataset(FLAGS.memory_probe, tokenizer, 2, num_epochs=1)
    batches = sum(1 for _ in dataset.as_numpy_iterator())
    print(f"probe batches={batches} peak_rss_mib={_peak_rss_mib():.0f}")


def main(argv):
    del argv
    from keras_bert_impl.text.tokenizer import BertTokenizer

    tokenizer = BertTokenizer(FLAGS.vocab_file, lower_case=FLAGS.lower_case)
    if FLAGS.memory_probe:
        _memory_probe(tokenizer)
        return
    if not FLAGS.corpus_dir:
        raise app.UsageError("--corpus_dir is required")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        corpus = _make_corpus(tmp)
        size_mib = corpus.stat().st_size / 2**20
        print(f"corpus: {corpus.stat().st_size / 2**20:.1f} MiB "
              f"({FLAGS.corpus_repeats} repeats of {FLAGS.corpus_dir})")
        for calls in map(int, FLAGS.parallel_calls):
            examples, tokens = _time(_dataset(str(corpus), tokenizer, calls))
            print(f"raw text, dynamic masking, parallel_calls={calls}: "
                  f"{examples:.0f} examples/s, {tokens:.0f} tokens/s (not padding)")
        records = _write_records(corpus, tmp, tokenizer)
        for calls in map(int, FLAGS.parallel_calls):
            examples, tokens = _time(_dataset(records, tokenizer, calls))
            print(f"TFRecords, static masks, parallel_calls={calls}: "
                  f"{examples:.0f} examples/s, {tokens:.0f} tokens/s (not padding)")
        # Fresh processes, so the peak belongs to the streaming pass alone.
        for name, path in (("a tenth of the corpus", _head(corpus, tmp, 0.1)),
                           ("the whole corpus", corpus)):
            probe = subprocess.run(
                [sys.executable, __file__, f"--vocab_file={FLAGS.vocab_file}",
                 f"--lower_case={FLAGS.lower_case}", f"--memory_probe={path}",
                 f"--seq_length={FLAGS.seq_length}", f"--batch_size={FLAGS.batch_size}",
                 f"--max_predictions_per_seq={FLAGS.max_predictions_per_seq}"],
                capture_output=True, text=True, check=True,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            line = probe.stdout.strip().splitlines()[-1]
            print(f"streaming {name} ({path.stat().st_size / 2**20:.1f} of {size_mib:.1f} MiB): "
                  f"{line}")


def _head(corpus: pathlib.Path, directory: pathlib.Path, fraction: float) -> pathlib.Path:
    path = directory / "head.txt"
    with open(corpus, "rb") as src, open(path, "wb") as out:
        out.write(src.read(int(corpus.stat().st_size * fraction)))
        out.write(b"\n\n")
    return path


if __name__ == "__main__":
    app.run(main)
