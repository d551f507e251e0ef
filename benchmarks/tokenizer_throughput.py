"""Tokenizer throughput: our TF-Text BertTokenizer vs HuggingFace `tokenizers`.

Prints texts/s and wordpieces/s per configuration, one line each, and how
often each HuggingFace tokenizer's ids agree with ours (ours equal the
original BERT FullTokenizer; see tests/test_tokenizer.py).

Ours is measured three ways, each a batch per call:
* `tf.function`: called from Python through a `tf.function`, as user code does;
* `signature`: through its concrete function, as a SavedModel signature is
  called (no Python argument binding per call);
* `tf.data`: inside a `tf.data` pipeline run from C++ (no Python per batch),
  as training feeds it and TensorFlow Serving runs the embedded graph.
An empty `tf.function` call is timed too: the floor every Python-called graph
pays per batch, whatever it computes.

    python benchmarks/tokenizer_throughput.py --vocab_file=vocab.txt \
        --input_file=corpus.txt --num_texts=20000 --batch_sizes=32,256
"""

import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary.")
flags.DEFINE_string("input_file", None, "UTF-8 text, one text per non-empty line.")
flags.DEFINE_bool("lower_case", True, "Uncased vocabulary.")
flags.DEFINE_integer("num_texts", 20000, "Texts to tokenize per configuration.")
flags.DEFINE_list("batch_sizes", ["32", "256"], "Batch sizes to measure.")
flags.DEFINE_integer("repeats", 3, "Timed passes per configuration; the best is reported.")
flags.mark_flags_as_required(["vocab_file", "input_file"])


def _read_texts(path: str, n: int) -> list[str]:
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    if not lines:
        raise app.UsageError(f"--input_file {path} has no non-empty lines")
    return (lines * (n // len(lines) + 1))[:n]


def _best_times(runs: dict, repeats: int) -> dict:
    """name -> (best wall seconds, best CPU seconds of this process) over `repeats` passes.

    The configurations take turns within each pass, so load from other
    processes on a shared machine hits them alike; CPU time (all threads)
    is the steadier measure there.
    """
    for run in runs.values():
        run()  # warm-up: tracing, thread pools
    best = {name: (float("inf"), float("inf")) for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


FLOOR = "empty tf.function (call floor)"


def _report(name: str, batch_size: int, times: tuple, texts: int, tokens: int | None,
            note=""):
    wall, cpu = times
    # The call-floor row tokenizes nothing: no wordpieces/s.
    rate = f"{tokens / wall:>9.0f}" if tokens is not None else f"{'-':>9}"
    print(
        f"{name:<34} batch={batch_size:<4} texts/s={texts / wall:>8.0f} "
        f"texts/cpu-s={texts / cpu:>8.0f} wordpieces/s={rate} {note}"
    )


def main(argv):
    del argv
    import tensorflow as tf

    from keras_bert_impl.text.preprocessor import BertPreprocessor
    from keras_bert_impl.text.tokenizer import BertTokenizer

    texts = _read_texts(FLAGS.input_file, FLAGS.num_texts)
    tokenizer = BertTokenizer(FLAGS.vocab_file, lower_case=FLAGS.lower_case)
    preprocessor = BertPreprocessor(tokenizer, seq_length=128)
    spec = [tf.TensorSpec([None], tf.string)]
    tokenize = tf.function(lambda t: tokenizer.tokenize(t).flat_values, input_signature=spec)
    pack = tf.function(lambda t: preprocessor(t)["input_word_ids"], input_signature=spec)
    empty = tf.function(tf.shape, input_signature=spec)
    ours = tokenizer.tokenize(tf.constant(texts)).to_list()
    num_tokens = sum(len(ids) for ids in ours)
    print(f"{len(texts)} texts, {num_tokens} wordpieces, vocab {FLAGS.vocab_file}")

    rivals = _huggingface_tokenizers()
    for batch_size in (int(b) for b in FLAGS.batch_sizes):
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        tensors = [tf.constant(b) for b in batches]
        runs = {}
        for name, function in (
            (FLOOR, empty),
            ("BertTokenizer tf.function", tokenize),
            ("BertTokenizer signature", tokenize.get_concrete_function()),
            ("BertPreprocessor tf.function", pack),
        ):
            runs[name] = lambda f=function, ts=tensors: [f(t) for t in ts]
        for name, function in (("BertTokenizer tf.data", tokenize),
                               ("BertPreprocessor tf.data", pack)):
            runs[name] = _in_tf_data(texts, batch_size, function)
        for name, encode in rivals.items():
            runs[name] = lambda e=encode, bs=batches: [e(b) for b in bs]
        for name, times in _best_times(runs, FLAGS.repeats).items():
            note, tokens = "", None if name == FLOOR else num_tokens
            if name in rivals:
                theirs = [ids for b in batches for ids in rivals[name](b)]
                note = f"same ids={sum(a == b for a, b in zip(ours, theirs)) / len(texts):.4f}"
            _report(name, batch_size, times, len(texts), tokens, note)


def _in_tf_data(texts: list[str], batch_size: int, function):
    """A callable that maps `function` over the batches and reduces in one C++ loop."""
    import tensorflow as tf

    batches = tf.data.Dataset.from_tensor_slices(texts).batch(batch_size).map(function)
    return lambda: batches.reduce(tf.constant(0), lambda n, ids: n + tf.size(ids))


def _huggingface_tokenizers() -> dict:
    """encode(batch of str) -> list of id lists, for each HuggingFace tokenizer installed."""
    rivals = {}
    try:
        from tokenizers import BertWordPieceTokenizer
    except ImportError:
        print("tokenizers not installed: skipping BertWordPieceTokenizer")
    else:
        wordpiece = BertWordPieceTokenizer(FLAGS.vocab_file, lowercase=FLAGS.lower_case)
        rivals["tokenizers BertWordPieceTokenizer"] = lambda batch: [
            e.ids for e in wordpiece.encode_batch(batch, add_special_tokens=False)
        ]
    try:
        from transformers import BertTokenizerFast
    except ImportError:
        print("transformers not installed: skipping BertTokenizerFast")
    else:
        fast = BertTokenizerFast(FLAGS.vocab_file, do_lower_case=FLAGS.lower_case)
        rivals["transformers BertTokenizerFast"] = lambda batch: fast(
            batch, add_special_tokens=False
        )["input_ids"]
    return rivals


if __name__ == "__main__":
    app.run(main)
