"""Tokenizer throughput: our TF-Text BertTokenizer vs HuggingFace `tokenizers`.

Prints texts/s and wordpieces/s per configuration, one line each, and how
often each HuggingFace tokenizer's ids agree with ours (ours equal the
original BERT FullTokenizer; see tests/test_tokenizer.py).

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


def _best_seconds(run, repeats: int) -> float:
    run()  # warm-up: tracing, thread pools
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _report(name: str, batch_size: int, seconds: float, texts: int, tokens: int, note=""):
    print(
        f"{name:<34} batch={batch_size:<4} texts/s={texts / seconds:>10.0f} "
        f"wordpieces/s={tokens / seconds:>11.0f} {note}"
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
    ours = tokenizer.tokenize(tf.constant(texts)).to_list()
    num_tokens = sum(len(ids) for ids in ours)
    print(f"{len(texts)} texts, {num_tokens} wordpieces, vocab {FLAGS.vocab_file}")

    rivals = _huggingface_tokenizers()
    for batch_size in (int(b) for b in FLAGS.batch_sizes):
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        tensors = [tf.constant(b) for b in batches]
        for name, function in (
            ("keras_bert_impl BertTokenizer", tokenize),
            ("keras_bert_impl BertPreprocessor", pack),
        ):
            seconds = _best_seconds(
                lambda f=function, ts=tensors: [f(t) for t in ts], FLAGS.repeats
            )
            _report(name, batch_size, seconds, len(texts), num_tokens)
        for name, encode in rivals.items():
            seconds = _best_seconds(lambda e=encode, bs=batches: [e(b) for b in bs], FLAGS.repeats)
            theirs = [ids for b in batches for ids in encode(b)]
            agree = sum(a == b for a, b in zip(ours, theirs)) / len(texts)
            _report(name, batch_size, seconds, len(texts), num_tokens, f"same ids={agree:.4f}")


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
