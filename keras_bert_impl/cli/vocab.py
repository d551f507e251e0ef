r"""bert-vocab: learn a WordPiece vocabulary from raw text files.

Words are split exactly as BertTokenizer splits them, so the vocabulary fits
the tokenizer that will use it (pass the same --lower_case to both). Learning is
not deterministic (the trainer breaks ties in hash order), so an existing
--output_file is kept unless --overwrite: the vocabulary a model was trained with
cannot be learned again.

    bert-vocab --input_files='corpus/*.txt' --output_file=vocab.txt \
        --vocab_size=30522 --lower_case --num_unused_tokens=99
"""

import os

from absl import app, flags

from keras_bert_impl.cli import quiet_absl_logging, run_tool

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines this tool's flags (once); done at start-up, not import, so importing one
    tool never defines or requires flags of another in the same process."""
    if "input_files" in FLAGS:
        return
    flags.DEFINE_list("input_files", None, "UTF-8 text files, plain or .gz; globs allowed "
                      "(comma-separated).")
    flags.DEFINE_string("output_file", None, "Where to write the vocabulary, one token per line.")
    flags.DEFINE_integer("vocab_size", 30522, "Number of tokens, reserved ones included; more "
                         "when the corpus alphabet alone needs more (a warning says so).")
    flags.DEFINE_bool("lower_case", True, "Lower-case and strip accents (an uncased vocabulary).")
    flags.DEFINE_list(
        "reserved_tokens", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "Tokens written first."
    )
    flags.DEFINE_integer(
        "num_unused_tokens", 0, "[unused0]..[unusedN-1] written after the reserved tokens.",
        lower_bound=0,
    )
    flags.DEFINE_integer(
        "limit_alphabet", None, "Keep only this many of the most frequent characters (e.g. "
        "1000, HuggingFace's default); rarer ones become [UNK]. Default: every character.",
        lower_bound=1)
    flags.DEFINE_bool("overwrite", False, "Replace an existing --output_file.")
    flags.mark_flags_as_required(["input_files", "output_file"])
    flags.register_validator(
        "reserved_tokens", lambda tokens: all(token.strip() for token in tokens),
        message="--reserved_tokens holds an empty token (a trailing or doubled comma?)")
    flags.register_validator(
        "reserved_tokens", lambda tokens: not _missing_special_tokens(tokens),
        message="--reserved_tokens must include [PAD], [UNK], [CLS] and [SEP], which the "
                "tokenizer and the packer need (and [MASK] for pretraining)")


def _missing_special_tokens(tokens) -> list[str]:
    from keras_bert_impl.text.tokenizer import REQUIRED_TOKENS

    return [token for token in REQUIRED_TOKENS.values() if token not in tokens]


def main(argv: list[str]) -> None:
    del argv
    quiet_absl_logging()
    import tensorflow as tf

    from keras_bert_impl.data.corpus import check_corpus_file, lines_dataset
    from keras_bert_impl.text.vocab_file import partial_vocab_path, write_vocab_file
    from keras_bert_impl.text.vocabulary import learn_vocabulary

    files = expand_globs(FLAGS.input_files)
    for path in files:  # as the pretraining tools check them: no empty or damaged file
        check_corpus_file(path)
    # Before the learning, which takes long on a big corpus, not after it.
    if tf.io.gfile.isdir(FLAGS.output_file):
        raise app.UsageError(f"--output_file={FLAGS.output_file} is a directory; name a file in it")
    if tf.io.gfile.exists(FLAGS.output_file) and not FLAGS.overwrite:
        raise app.UsageError(
            f"--output_file={FLAGS.output_file} exists; pass --overwrite to replace it (learning "
            "is not deterministic: a vocabulary a model was trained with cannot be made again)")
    tf.io.gfile.makedirs(os.path.dirname(FLAGS.output_file) or ".")
    _check_writable(partial_vocab_path(FLAGS.output_file))
    print(f"Learning a {FLAGS.vocab_size}-token vocabulary from {len(files)} file"
          f"{'' if len(files) == 1 else 's'}", flush=True)
    vocab = learn_vocabulary(
        tf.data.Dataset.from_tensor_slices(files).flat_map(lines_dataset),
        vocab_size=FLAGS.vocab_size,
        lower_case=FLAGS.lower_case,
        reserved_tokens=FLAGS.reserved_tokens,
        num_unused_tokens=FLAGS.num_unused_tokens,
        limit_alphabet=FLAGS.limit_alphabet,
    )
    write_vocab_file(vocab, FLAGS.output_file)
    print(f"Wrote {len(vocab)} tokens to {FLAGS.output_file}")


def _check_writable(path: str) -> None:
    """Fails now, not after the learning, where the vocabulary could not be written."""
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(path, "w") as f:
            f.write("\n")  # opening alone creates nothing
        tf.io.gfile.remove(path)
    except tf.errors.OpError as error:
        raise app.UsageError(f"--output_file: cannot write beside it ({path}: "
                             f"{error.message})") from None


def expand_globs(patterns: list[str]) -> list[str]:
    """Files matching each pattern, in order; a pattern that matches nothing is an error."""
    import tensorflow as tf

    files = []
    for pattern in patterns:
        matches = sorted(tf.io.gfile.glob(pattern))
        if not matches:
            raise app.UsageError(f"--input_files: no file matches {pattern!r}")
        directories = [path for path in matches if tf.io.gfile.isdir(path)]
        if directories:
            raise app.UsageError(f"--input_files: {pattern!r} matches the directory "
                                 f"{directories[0]}; name the files in it")
        files += matches
    return files


def run():
    run_tool(__name__, define_flags, main)


if __name__ == "__main__":
    run()
