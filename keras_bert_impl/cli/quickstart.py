"""bert-quickstart: pretrain a tiny BERT from scratch, offline, in 2-11 minutes on 2 CPU cores.

    bert-quickstart                       # Python's own help texts as the corpus
    bert-quickstart --corpus='books/*.txt' --steps=5000
    bert-quickstart --tfds_name=imdb_reviews   # a TFDS dataset already on disk

Steps: build a corpus in the BERT format (one sentence per line, a blank
line between documents) and hold out every tenth document; learn a
WordPiece vocabulary; pretrain MLM + NSP with `model.fit`; measure MLM
accuracy on the held-out documents; export a fill-mask SavedModel, serve it
over gRPC on a free loopback port and ask it to fill masked held-out
sentences. A rerun with the same --output_dir and flags resumes or reuses the
training; with other flags it stops and names them.

Writes OUTPUT_DIR/corpus, vocab.txt and model/ (encoder.keras, a Google-format
bert_model.ckpt, training checkpoints/ and TensorBoard logs/).
"""

import json
import os
import re
import tempfile
import unicodedata

from absl import app, flags

from keras_bert_impl.cli import (
    progress_verbosity,
    quiet_absl_logging,
    require_positive,
    run_tool,
)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines this tool's flags (once); done at start-up, not import, so importing one
    tool never defines or requires flags of another in the same process."""
    if "corpus" in FLAGS:
        return
    flags.DEFINE_list("corpus", None, "Text files in the BERT corpus format (default: Python's "
                      "help topics from pydoc_data); globs allowed.")
    flags.DEFINE_string("tfds_name", None,
                        "A TFDS text dataset (already downloaded) as the corpus.")
    flags.DEFINE_string("tfds_text_key", "text", "The text feature of --tfds_name.")
    flags.DEFINE_integer("max_documents", 20000, "Documents read from --tfds_name.", lower_bound=1)
    flags.DEFINE_string("output_dir", os.path.join(tempfile.gettempdir(), "bert_quickstart"),
                        "Corpus, vocabulary, checkpoints, final model and export.")
    flags.DEFINE_integer("steps", 2000, "Training steps.", lower_bound=1)
    flags.DEFINE_integer("vocab_size", 4000, "WordPiece vocabulary size to learn.")
    flags.DEFINE_integer("seq_length", 64, "Sequence length.")
    flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
    flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate (tiny models like it high).")
    flags.DEFINE_bool("lower_case", True, "Lower-case and strip accents.")
    require_positive("learning_rate")
    flags.mark_flags_as_mutual_exclusive(["corpus", "tfds_name"])


HELD_OUT_EVERY = 10
MAX_PREDICTIONS = 10
SHOW_SENTENCES = 4
# What the corpus, the vocabulary and the checkpoints of --output_dir depend on.
RUN_FLAGS = ("corpus", "tfds_name", "tfds_text_key", "max_documents", "steps", "vocab_size",
             "seq_length", "batch_size", "learning_rate", "lower_case")
SETTINGS_FILE = "quickstart_flags.json"


def main(argv: list[str]) -> None:
    del argv
    quiet_absl_logging()
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    same_run = _check_same_run()
    train_file, held_out_file, held_out_documents = _write_corpus()
    _record_run()
    vocab_file = _learn_vocabulary(train_file, reuse=same_run)
    run = _pretrain(train_file, vocab_file)
    _evaluate(run, held_out_file)
    _serve_fill_mask(run, vocab_file, held_out_documents)


def _run_settings() -> dict:
    return {name: FLAGS[name].value for name in RUN_FLAGS}


def _check_same_run() -> bool:
    """Whether --output_dir holds a run with these flags, which this one continues.

    Resuming needs the flags of the run that wrote --output_dir: another corpus or
    vocabulary would give every trained embedding row another token. Without a
    checkpoint there is nothing to resume, and a run that failed before one (say, with
    a vocabulary size too small) does not hold the directory.
    """
    path = os.path.join(FLAGS.output_dir, SETTINGS_FILE)
    checkpoints = os.path.join(FLAGS.output_dir, "model", "checkpoints", "checkpoint")
    if not os.path.exists(path) or not os.path.exists(checkpoints):
        return False
    with open(path, encoding="utf-8") as f:
        previous = json.load(f)
    changed = [f"--{name}: {previous.get(name)!r} then, {value!r} now"
               for name, value in _run_settings().items() if previous.get(name) != value]
    if changed:
        raise app.UsageError(
            f"--output_dir={FLAGS.output_dir} holds a run with other flags ("
            + "; ".join(changed) + "); rerun with those or use another --output_dir")
    return True


def _record_run() -> None:
    """Written once the corpus is, so that a run that fails before leaves no claim."""
    with open(os.path.join(FLAGS.output_dir, SETTINGS_FILE), "w", encoding="utf-8") as f:
        json.dump(_run_settings(), f, indent=2)


def _documents() -> list[list[str]]:
    from keras_bert_impl.cli import default_corpus

    if FLAGS.corpus:
        import gzip

        from keras_bert_impl.data.corpus import (
            check_corpus_file,
            expand_file_patterns,
            is_gzip,
        )

        documents = []
        for path in expand_file_patterns(FLAGS.corpus):
            check_corpus_file(path)
            with (gzip.open(path, "rt", encoding="utf-8", errors="ignore") if is_gzip(path)
                  else open(path, encoding="utf-8", errors="ignore")) as f:
                documents.extend(_split_documents(f.read()))
        return documents
    if FLAGS.tfds_name:
        import tensorflow_datasets as tfds

        examples = tfds.load(FLAGS.tfds_name, split="train", download=False)
        documents = []
        for example in examples.take(FLAGS.max_documents).as_numpy_iterator():
            text = example[FLAGS.tfds_text_key].decode("utf-8", errors="ignore")
            documents.append(re.split(r"(?<=[.!?])\s+", " ".join(text.split())))
        return documents
    return default_corpus.help_topic_documents()


def _split_documents(text: str) -> list[list[str]]:
    blocks = re.split(r"\n\s*\n", text)
    return [[line.strip() for line in block.splitlines() if line.strip()] for block in blocks]


def _write_corpus() -> tuple[str, str, list[list[str]]]:
    from keras_bert_impl.cli.default_corpus import write_corpus
    from keras_bert_impl.data import corpus

    documents = [doc for doc in _documents() if doc]
    held_out = documents[HELD_OUT_EVERY - 1::HELD_OUT_EVERY]
    train = [doc for i, doc in enumerate(documents) if (i + 1) % HELD_OUT_EVERY]
    if len(train) < 2 or not held_out:
        raise app.UsageError(
            f"the corpus has {len(documents)} documents; the quickstart needs at least "
            f"{HELD_OUT_EVERY} (blank lines separate documents)")
    directory = os.path.join(FLAGS.output_dir, "corpus")
    os.makedirs(directory, exist_ok=True)
    train_file = os.path.join(directory, "train.txt")
    held_out_file = os.path.join(directory, "held_out.txt")
    write_corpus(train, train_file)
    write_corpus(held_out, held_out_file)
    sentences = sum(len(doc) for doc in documents)
    print(f"Corpus: {len(documents)} documents, {sentences} sentences "
          f"({len(held_out)} documents held out) in {directory}")
    if sum(len(doc) > 1 for doc in documents) < len(documents) / 10:
        print(corpus.ONE_SENTENCE_DOCUMENTS_WARNING)
    return train_file, held_out_file, held_out


def _learn_vocabulary(train_file: str, reuse: bool) -> str:
    """Learns vocab.txt, or with `reuse` keeps the one the earlier run trained with: the
    learner does not give the same vocabulary twice (huggingface/tokenizers#1794)."""
    from keras_bert_impl.text.vocab_file import read_vocab_file, write_vocab_file
    from keras_bert_impl.text.vocabulary import learn_vocabulary

    vocab_file = os.path.join(FLAGS.output_dir, "vocab.txt")
    if reuse and os.path.exists(vocab_file):
        vocab, _ = read_vocab_file(vocab_file)
        print(f"Vocabulary: {len(vocab)} WordPiece tokens, kept from the earlier run in "
              f"{vocab_file}")
        return vocab_file
    with open(train_file, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    vocab = learn_vocabulary(lines, vocab_size=FLAGS.vocab_size, lower_case=FLAGS.lower_case)
    # Whole or absent (written aside, then renamed): a run killed while writing must not
    # leave a vocabulary to reuse.
    write_vocab_file(vocab, vocab_file)
    print(f"Vocabulary: {len(vocab)} WordPiece tokens learned, written to {vocab_file}")
    return vocab_file


def _pretrain(train_file: str, vocab_file: str):
    from keras_bert_impl.config import BertConfig
    from keras_bert_impl.data.pretraining import pretraining_dataset
    from keras_bert_impl.training.pretraining import PretrainingRun

    with open(vocab_file, encoding="utf-8") as f:
        vocab_size = sum(1 for _ in f)
    config = BertConfig.from_preset("bert_tiny", vocab_size=vocab_size,
                                    max_position_embeddings=max(FLAGS.seq_length, 128))
    steps_per_execution = _largest_divisor_up_to(FLAGS.steps, 50)
    run = PretrainingRun(os.path.join(FLAGS.output_dir, "model"), vocab_file,
                         FLAGS.lower_case, config)
    run.build(learning_rate=FLAGS.learning_rate, num_train_steps=FLAGS.steps,
              num_warmup_steps=FLAGS.steps // 10, jit_compile=True,
              steps_per_execution=steps_per_execution)
    if run.checkpoint.step >= FLAGS.steps:
        state = f"; already trained, kept from the earlier run in {run.model_dir}"
    elif run.initial_step:
        state = f"; resuming at step {run.checkpoint.step}"
    else:
        state = ""
    print(f"Pretraining BERT-tiny (L2, H128) for {FLAGS.steps} steps of {FLAGS.batch_size} x "
          f"{FLAGS.seq_length} tokens (MLM + NSP){state}")
    run.fit(
        lambda context, start_step: pretraining_dataset(
            train_file, run.tokenizer, seq_length=FLAGS.seq_length,
            max_predictions_per_seq=MAX_PREDICTIONS, batch_size=FLAGS.batch_size, seed=1,
            input_context=context, start_step=start_step),
        num_train_steps=FLAGS.steps,
        save_checkpoints_steps=_largest_divisor_up_to(FLAGS.steps, FLAGS.steps // 4,
                                                      steps_per_execution),
        verbose=progress_verbosity(),
    )
    run.save_final_model()
    print(f"Model in {run.model_dir} (encoder.keras, Google-format bert_model.ckpt, training "
          f"checkpoints/); TensorBoard: tensorboard --logdir={run.log_dir}")
    return run


def _largest_divisor_up_to(steps: int, limit: int, multiple_of: int = 1) -> int:
    """The largest multiple of `multiple_of` that divides `steps` and is at most `limit`."""
    candidates = [n for n in range(multiple_of, max(limit, multiple_of) + 1, multiple_of)
                  if steps % n == 0]
    return candidates[-1] if candidates else steps


def _evaluate(run, held_out_file: str) -> None:
    from keras_bert_impl.data.pretraining import pretraining_dataset
    from keras_bert_impl.training.summaries import write_evaluation

    held_out = pretraining_dataset(
        held_out_file, run.tokenizer, seq_length=FLAGS.seq_length,
        max_predictions_per_seq=MAX_PREDICTIONS, batch_size=FLAGS.batch_size, seed=2,
        num_epochs=1, drop_remainder=False)
    # A known length, so that evaluate does not run past the end of the data.
    steps = int(held_out.reduce(0, lambda count, _: count + 1))
    scores = run.pretrainer.evaluate(held_out, steps=steps, return_dict=True, verbose=0)
    write_evaluation(run.log_dir, run.checkpoint.step, scores)
    print(f"Held-out documents: MLM accuracy {scores['mlm_accuracy']:.3f} "
          f"(MLM loss {scores['mlm_loss']:.3f}), NSP accuracy {scores['nsp_accuracy']:.3f}")


def _masked_sentences(held_out_documents: list[list[str]],
                      vocab: set[str]) -> list[tuple[str, str]]:
    """Held-out sentences with one whole, in-vocabulary word (or Chinese character) masked."""
    chosen = []
    for sentence in (s for doc in held_out_documents for s in doc):
        example = _mask_a_word(sentence, vocab) or _mask_an_ideograph(sentence, vocab)
        if example:
            chosen.append(example)
        if len(chosen) == SHOW_SENTENCES:
            break
    return chosen


def _mask_a_word(sentence: str, vocab: set[str]) -> tuple[str, str] | None:
    words = sentence.split()
    if not 6 <= len(words) <= 25:
        return None
    for i in range(len(words) // 3, 2 * len(words) // 3 + 1):
        word = words[i].lower() if FLAGS.lower_case else words[i]
        if word.isalpha() and len(word) > 2 and word in vocab:
            return " ".join(words[:i] + ["[MASK]"] + words[i + 1:]), word
    return None


def _mask_an_ideograph(sentence: str, vocab: set[str]) -> tuple[str, str] | None:
    """Chinese has no spaces between words; BERT reads each ideograph as one."""
    ideographs = [i for i, char in enumerate(sentence)
                  if unicodedata.name(char, "").startswith("CJK") and char in vocab]
    if not 8 <= len(sentence) <= 60 or len(ideographs) < len(sentence) // 2:
        return None
    i = ideographs[len(ideographs) // 2]
    return sentence[:i] + "[MASK]" + sentence[i + 1:], sentence[i]


def _serve_fill_mask(run, vocab_file: str, held_out_documents: list[list[str]]) -> None:
    from keras_bert_impl.export.saved_model import export_saved_model
    from keras_bert_impl.serving import Client, start_server

    # Absolute, as TF Serving requires of a base path (the printed command line uses it too).
    export_base = os.path.abspath(os.path.join(FLAGS.output_dir, "export"))
    version_dir = export_saved_model(
        run.pretrainer, export_base, vocab_file=vocab_file, lower_case=FLAGS.lower_case,
        seq_length=FLAGS.seq_length, version=1, top_k=5, overwrite=True)
    server = start_server(export_base, model_name="bert", port=0, host="127.0.0.1")
    try:
        print(f"Exported {version_dir}; serving it over gRPC at 127.0.0.1:{server.port}")
        examples = _masked_sentences(held_out_documents, set(run.tokenizer.vocab))
        if not examples:
            print("No held-out sentence of 6-25 words (or 8-60 Chinese characters) to fill in.")
            return
        with Client(f"127.0.0.1:{server.port}", model_name="bert") as client:
            answers = client.predict([masked for masked, _ in examples])
        print("Fill-mask on held-out sentences (top 5 from the served model):")
        for (masked, word), tokens in zip(examples, answers["top_k_tokens"]):
            guesses = list(tokens[0])
            print(f"  {masked}\n    answer: {word!r} predicted: {guesses}")
    finally:
        server.stop()
    print(f"Serve it yourself: python -m keras_bert_impl.serving.model_server --port=8500 "
          f"--rest_api_port=8501 --model_name=bert --model_base_path={export_base}")


def run():
    run_tool(__name__, define_flags, main)


if __name__ == "__main__":
    run()
