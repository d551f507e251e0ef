r"""bert-create-pretraining-data: raw text to pretraining TFRecords (static masking).

The flags and the records are the original ``create_pretraining_data.py``'s,
so its outputs and ours feed either trainer. The instances come from the same
graph as ``pretraining_dataset``: ``--dupe_factor`` passes over the corpus,
each with fresh NSP pairs and masks. The corpus is streamed (memory bounded
by shuffle buffers, not by the corpus size); instances are shuffled within a
buffer rather than globally. Beside each output file ``F.tfrecord`` goes
``.F.metadata.json`` with the generation parameters, checked at read time (a
pattern ``F.tfrecord*`` for the original trainer does not pick it up).

    bert-create-pretraining-data --input_file='corpus/*.txt' \
        --output_file=/tmp/train.tfrecord --vocab_file=vocab.txt \
        --max_seq_length=128 --max_predictions_per_seq=20 --dupe_factor=5
"""

import os
import time

from absl import app, flags

from keras_bert_impl.cli import check_lower_case_fits, progress_verbosity, run_tool

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines this tool's flags (once); done at start-up, not import, so importing one
    tool never defines or requires flags of another in the same process."""
    if "input_file" in FLAGS:
        return
    flags.DEFINE_string("input_file", None,
                        "Input raw text file (or comma-separated list of files, globs allowed; "
                        "plain or .gz).")
    flags.DEFINE_string("output_file", None, "Output TF example file (or comma-separated list).")
    flags.DEFINE_string("vocab_file", None,
                        "The vocabulary file that the BERT model was trained on.")
    flags.DEFINE_bool("do_lower_case", True, "Whether to lower case the input text.")
    flags.DEFINE_bool("do_whole_word_mask", False,
                      "Whether to use whole word masking rather than per-WordPiece masking. "
                      "Chinese words need jieba (pip install 'keras_bert_impl[zh]'); without "
                      "it each Chinese character is a word, as in Google's original.")
    flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length.")
    flags.DEFINE_integer("max_predictions_per_seq", 20, "Maximum number of masked LM predictions "
                         "per sequence.")
    flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
    flags.DEFINE_integer("dupe_factor", 10, "Number of times to duplicate the input data (with "
                         "different masks).")
    flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
    flags.DEFINE_float("short_seq_prob", 0.1, "Probability of creating sequences which are shorter "
                       "than the maximum length.")
    flags.DEFINE_string("tfds_name", None, "Read a TFDS text dataset (e.g. wikipedia/20230601.en) "
                        "instead of --input_file.")
    flags.DEFINE_string("tfds_text_key", "text", "The TFDS feature holding the text.")
    flags.DEFINE_string("tfds_split", "train", "The TFDS split.")
    flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory.")
    flags.DEFINE_integer("max_document_sentences", 1000,
                         "Documents with more lines are cut into several (bounded memory).",
                         lower_bound=1)
    flags.DEFINE_integer("shuffle_buffer", 10000, "Documents and instances shuffled within buffers "
                         "of this size.", lower_bound=1)
    flags.mark_flags_as_required(["output_file", "vocab_file"])
    flags.register_validator("dupe_factor", lambda value: value >= 1,
                             "--dupe_factor must be at least 1 (passes over the corpus)")


def main(argv: list[str]) -> None:
    del argv
    if bool(FLAGS.input_file) == bool(FLAGS.tfds_name):
        raise app.UsageError("give exactly one of --input_file and --tfds_name")
    import tensorflow as tf

    from keras_bert_impl.data import chinese_words, corpus, tfrecords
    from keras_bert_impl.data.pretraining import pretraining_dataset
    from keras_bert_impl.text.tokenizer import BertTokenizer

    check_lower_case_fits(FLAGS.vocab_file, FLAGS.do_lower_case, flag="do_lower_case")
    tokenizer = BertTokenizer(FLAGS.vocab_file, lower_case=FLAGS.do_lower_case)
    dataset = pretraining_dataset(
        FLAGS.input_file, tokenizer,
        seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        batch_size=256,
        masked_lm_prob=FLAGS.masked_lm_prob,
        short_seq_prob=FLAGS.short_seq_prob,
        whole_word_masking=FLAGS.do_whole_word_mask,
        seed=FLAGS.random_seed,
        num_epochs=FLAGS.dupe_factor,
        drop_remainder=False,
        input_format="text",
        tfds_name=FLAGS.tfds_name,
        tfds_text_key=FLAGS.tfds_text_key,
        tfds_split=FLAGS.tfds_split,
        tfds_data_dir=FLAGS.tfds_data_dir,
        document_shuffle_buffer=FLAGS.shuffle_buffer,
        instance_shuffle_buffer=FLAGS.shuffle_buffer,
        max_document_sentences=FLAGS.max_document_sentences,
    )
    output_files = [f.strip() for f in FLAGS.output_file.split(",") if f.strip()]
    normalized = [os.path.normpath(path) for path in output_files]
    repeated = [path for i, path in enumerate(output_files) if normalized[i] in normalized[:i]]
    if repeated:
        raise app.UsageError(f"--output_file names {repeated[0]} more than once; give each "
                             "output file once")
    metadata = [os.path.normpath(tfrecords.metadata_path(path)) for path in output_files]
    shared = [i for i, path in enumerate(metadata) if path in metadata[:i]]
    if shared:
        first = output_files[metadata.index(metadata[shared[0]])]
        raise app.UsageError(f"--output_file names {first} and {output_files[shared[0]]}, whose "
                             f"metadata would both be {metadata[shared[0]]}; name them apart")
    for path in output_files:
        if tf.io.gfile.isdir(path):  # found before the corpus is read, not at the end
            raise app.UsageError(f"--output_file={path} is a directory; name a file in it")
        tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    # Records go to hidden temporary files renamed at the end: a failed or interrupted
    # run leaves earlier output and its metadata as they were, and no file a shard
    # pattern would read.
    partial_files = [tfrecords.partial_path(path) for path in output_files]
    try:
        counts, total, random_next = _write_instances(dataset, partial_files)
        if total == 0:
            raise app.UsageError("the corpus gave no instances; see the input files")
    except BaseException:  # also Ctrl-C: an unfinished file is no output
        for path in partial_files:
            if tf.io.gfile.exists(path):
                tf.io.gfile.remove(path)
        raise
    for partial, path in zip(partial_files, output_files):
        for metadata in tfrecords.metadata_paths(path):
            if tf.io.gfile.exists(metadata):
                tf.io.gfile.remove(metadata)
        tf.io.gfile.rename(partial, path, overwrite=True)
    for path, count in zip(output_files, counts):
        tfrecords.write_metadata(path, {
            "seq_length": FLAGS.max_seq_length,
            "max_predictions_per_seq": FLAGS.max_predictions_per_seq,
            "vocab_file": FLAGS.vocab_file,
            "vocab_sha256": tokenizer.vocab_sha256,
            "do_lower_case": FLAGS.do_lower_case,
            "do_whole_word_mask": FLAGS.do_whole_word_mask,
            "chinese_words": ("jieba" if chinese_words.jieba_available() else "characters")
                             if FLAGS.do_whole_word_mask else None,
            "masked_lm_prob": FLAGS.masked_lm_prob,
            "short_seq_prob": FLAGS.short_seq_prob,
            "dupe_factor": FLAGS.dupe_factor,
            "random_seed": FLAGS.random_seed,
            "input_file": FLAGS.input_file,
            "tfds_name": FLAGS.tfds_name,
            "num_instances": count,
        })
    print(f"Wrote {total} instances to {', '.join(output_files)}")
    if total >= 20 and random_next == total:
        print(corpus.ONE_SENTENCE_DOCUMENTS_WARNING)


def _write_instances(dataset, paths: list[str]) -> tuple[list[int], int, int]:
    """Writes the instances round-robin into `paths`, with a progress bar; returns the
    count per file, the total and how many have a random next sentence."""
    import keras
    import tensorflow as tf

    from keras_bert_impl.data import tfrecords

    writers = [tf.io.TFRecordWriter(path) for path in paths]
    counts = [0] * len(writers)
    verbosity = progress_verbosity()
    progress = (ProgressLines("instances") if verbosity == 2 else
                keras.utils.Progbar(None, unit_name="instance", verbose=verbosity))
    total = random_next = 0
    try:
        for batch in dataset.as_numpy_iterator():
            size = len(batch["next_sentence_labels"])
            random_next += int(batch["next_sentence_labels"].sum())
            for row in range(size):
                index = total % len(writers)
                writers[index].write(tfrecords.serialize_example(
                    {name: values[row] for name, values in batch.items()}))
                counts[index] += 1
                total += 1
            progress.add(size)
        progress.update(total, finalize=True)  # ends the bar's line
    finally:
        for writer in writers:
            writer.close()
    return counts, total, random_next


class ProgressLines:
    """Progress for a log file or pipe, where Keras' bar (with no known total, its
    verbose=2 prints nothing until the end) would redraw itself at every update: a
    plain line every `interval` seconds."""

    interval = 60.0

    def __init__(self, unit: str):
        self.unit = unit
        self.count = 0
        self.start = self.last = time.monotonic()

    def add(self, count: int) -> None:
        self.count += count
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            print(f"{self.count} {self.unit} ({self.count / (now - self.start):.0f}/s)",
                  flush=True)

    def update(self, current: int, finalize: bool = False) -> None:
        """Progbar's end of the line; the tool's closing line says the total."""


def run():
    run_tool(__name__, define_flags, main)


if __name__ == "__main__":
    run()
