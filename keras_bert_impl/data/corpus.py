"""Pretraining corpora as streams of documents.

The original BERT corpus format: one sentence per line, a blank line between
documents. Files may be plain or gzip-compressed (``.gz``; a truncated or
corrupt one is an error before reading starts) and are named by
comma-separated glob patterns. TFDS text datasets are read the same way: each
example's text is a document and each of its non-blank lines a sentence.

A document is a ``tf.string`` vector of its stripped, non-blank lines. Reading
streams: memory is bounded by the longest document, and documents longer than
``max_document_sentences`` lines (a file with no blank lines is one huge
document) are cut into consecutive documents of that many lines. Bytes that
are not valid UTF-8 are dropped, as the original's ``convert_to_unicode``
(``errors="ignore"``) did.
"""

from __future__ import annotations

import gzip
import unicodedata
import warnings
import zlib
from collections.abc import Sequence

import tensorflow as tf

from keras_bert_impl.data.file_checks import once_per_file_version
from keras_bert_impl.data.tfds_datasets import load_tfds

ONE_SENTENCE_DOCUMENTS_WARNING = (
    "Warning: every next-sentence pair is a random one: the documents have one line each. "
    "NSP learns from documents of several lines, one sentence per line (blank lines between "
    "documents); split paragraphs at sentence ends (. ! ? 。！？) first.")

DEFAULT_MAX_DOCUMENT_SENTENCES = 1000
# A sentence this long is text that was never split into lines: all of it past
# max_seq_length tokens is dropped by truncation.
UNSPLIT_LINE_BYTES = 100_000


def expand_file_patterns(patterns: str | Sequence[str]) -> list[str]:
    """Returns the sorted files matched by comma-separated glob patterns.

    Raises ValueError naming a pattern that matches nothing, or a directory.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    files = []
    for pattern in (p.strip() for group in patterns for p in str(group).split(",")):
        if not pattern:
            continue
        matched = sorted(tf.io.gfile.glob(pattern))
        if not matched:
            raise ValueError(f"input file pattern {pattern!r} matches no files")
        for path in matched:
            if tf.io.gfile.isdir(path):
                raise ValueError(f"input file pattern {pattern!r} matches the directory {path}; "
                                 f"name the files in it (e.g. {path}/*.txt)")
        files.extend(matched)
    if not files:
        raise ValueError(f"no input files given (patterns: {list(patterns)!r})")
    return files


def is_gzip(path: str) -> bool:
    return path.endswith(".gz")


@once_per_file_version
def check_corpus_file(path: str) -> None:
    """Raises ValueError when a corpus file holds no line with text, or is a damaged
    gzip file; warns when its first line with text is over `UNSPLIT_LINE_BYTES`, or
    when over 1 % of its first MB is not UTF-8 (another encoding, dropped byte by byte).

    A file without text would add nothing, and a corpus of them would give an
    endless stream of nothing. Text is what the tokenizer keeps: not whitespace
    (Unicode's too), control or format characters, combining marks, or U+FFFD. TensorFlow's
    reader stops silently where a truncated gzip file ends, so a `.gz` file is
    read to its end-of-stream marker and CRC first (about 150 MB of text a
    second on one core). A line is a sentence, so a file that was never split
    into lines would train on its first max_seq_length tokens alone.
    """
    with tf.io.gfile.GFile(path, "rb") as raw:
        if not is_gzip(path):
            first = _first_text_line(raw)
            raw.seek(0)
            _warn_unless_utf8(path, raw.read(_UTF8_SAMPLE_BYTES))
        else:
            try:
                with gzip.GzipFile(fileobj=raw) as lines:
                    first = _first_text_line(lines)
                    lines.seek(0)
                    _warn_unless_utf8(path, lines.read(_UTF8_SAMPLE_BYTES))
                    while lines.read(1 << 24):
                        pass
            except (EOFError, OSError, zlib.error) as e:
                raise ValueError(
                    f"corpus file {path!r} is not a complete gzip file ({e}): it was probably "
                    "cut short while copied or downloaded; copy it again") from None
    if first is None:
        raise ValueError(
            f"corpus file {path!r} holds no text: expected one sentence per line with a "
            "blank line between documents")
    length = len(first.rstrip(b"\r\n"))
    if length > UNSPLIT_LINE_BYTES:
        warnings.warn(
            f"corpus file {path!r} starts with a line of {length:,} bytes: each line is "
            "one sentence (in pretraining, a sentence's tokens past the sequence length are "
            "dropped); split the text into sentences, one per line, with a blank line "
            "between documents", stacklevel=2)


_UTF8_SAMPLE_BYTES = 1 << 20
# Invalid UTF-8 is dropped, as the original did; a file with this share of it in its
# first MB is most likely in another encoding (GBK, Big5, Latin-1, ...).
_NOT_UTF8_SHARE = 0.01


def _warn_unless_utf8(path: str, sample: bytes) -> None:
    valid = len(sample.decode("utf-8", "ignore").encode("utf-8"))
    if sample and len(sample) - valid > max(3, _NOT_UTF8_SHARE * len(sample)):
        warnings.warn(
            f"corpus file {path!r} is not UTF-8: {len(sample) - valid:,} of its first "
            f"{len(sample):,} bytes are not valid UTF-8 and are dropped, as the original "
            "did; convert it first (e.g. iconv -f gb18030 -t utf-8 for Chinese text in "
            "GBK)", stacklevel=3)


def _first_text_line(lines) -> bytes | None:
    return next((line for line in lines if _has_text(line)), None)


def _has_text(line: bytes) -> bool:
    return any(_is_text(c) for c in line.decode("utf-8", "ignore"))


def _is_text(character: str) -> bool:
    # Combining marks alone carry no text: the uncased tokenizer strips them all.
    return not (character.isspace() or character == "\ufffd"
                or unicodedata.category(character) in ("Cc", "Cf", "Mn", "Me"))


def cut_unsplit_lines(lines: tf.Tensor) -> tf.Tensor:
    """Each line's first `UNSPLIT_LINE_BYTES` bytes (a character cut in two is dropped).

    Tokenizing takes ~1,400 bytes of memory per byte of a line, so a book on one line
    (tens of MB) would take all of a machine's memory, to keep its first tokens alone.
    100,000 bytes hold the first max_seq_length tokens of any line with words of up to
    ~190 bytes on average.
    """
    return _valid_utf8(tf.strings.substr(lines, 0, UNSPLIT_LINE_BYTES))


def _valid_utf8(lines: tf.Tensor) -> tf.Tensor:
    return tf.strings.unicode_transcode(
        lines, input_encoding="UTF-8", output_encoding="UTF-8", errors="ignore")


def documents_from_lines(lines: tf.data.Dataset,
                         max_document_sentences: int = DEFAULT_MAX_DOCUMENT_SENTENCES,
                         chunk_size: int = 4096) -> tf.data.Dataset:
    """Groups a stream of lines into documents at blank lines.

    Lines are handled in chunks of ``chunk_size`` with vectorized ops; the
    open document at the end of a chunk (fewer than
    ``max_document_sentences`` lines) is carried into the next one. The
    stream must end with a blank line (``lines_dataset`` adds one per file) so
    that the last document is emitted.
    """
    def step(carry, chunk):
        # str.strip() strips Unicode whitespace (U+3000, U+00A0, ...), tf.strings.strip
        # only ASCII: a line of ideographic spaces is blank, as in the original.
        chunk = tf.strings.regex_replace(_valid_utf8(chunk), _OUTER_WHITESPACE, "")
        lines = tf.concat([carry, chunk], axis=0)
        index = tf.range(tf.size(lines))
        blank = tf.equal(lines, "")
        doc_id = tf.cumsum(tf.cast(blank, tf.int32))
        num_closed = doc_id[-1]
        # Position of a line in its document, to cut over-long documents.
        doc_start = tf.math.unsorted_segment_min(index, doc_id, num_closed + 1)
        position = index - tf.gather(doc_start, doc_id) - tf.cast(doc_id > 0, tf.int32)
        part = position // max_document_sentences
        open_size = tf.reduce_sum(tf.cast(
            tf.logical_and(tf.equal(doc_id, num_closed), tf.logical_not(blank)), tf.int32))
        complete = tf.logical_or(
            doc_id < num_closed, part < open_size // max_document_sentences)
        keep = tf.logical_and(complete, tf.logical_not(blank))
        carried = tf.logical_and(tf.logical_not(complete), tf.logical_not(blank))
        key = tf.stack([tf.boolean_mask(doc_id, keep), tf.boolean_mask(part, keep)], axis=1)
        new_document = tf.reduce_any(tf.not_equal(key[1:], key[:-1]), axis=1)
        row_ids = tf.cumsum(tf.cast(new_document, tf.int64))
        row_ids = tf.concat([tf.zeros([tf.minimum(tf.shape(key)[0], 1)], tf.int64), row_ids], 0)
        documents = tf.RaggedTensor.from_value_rowids(tf.boolean_mask(lines, keep), row_ids)
        return tf.boolean_mask(lines, carried), documents

    return (lines.batch(chunk_size)
            .scan(tf.zeros([0], tf.string), step)
            .unbatch())


# Python's str.isspace() characters: ASCII and Unicode whitespace (RE2's \s lacks \v).
_UNICODE_SPACE = r"[\s\x{0B}\p{Z}\x{1C}-\x{1F}\x{85}]"
_OUTER_WHITESPACE = rf"^{_UNICODE_SPACE}+|{_UNICODE_SPACE}+$"


def lines_dataset(path: tf.Tensor) -> tf.data.Dataset:
    """The lines of one corpus file (plain or gzip), then a closing blank line."""
    compression = tf.where(tf.strings.regex_full_match(path, r".*\.gz"), "GZIP", "")
    lines = tf.data.TextLineDataset(path, compression_type=compression)
    return lines.concatenate(tf.data.Dataset.from_tensors(tf.constant("")))


def file_documents(files: Sequence[str],
                   max_document_sentences: int = DEFAULT_MAX_DOCUMENT_SENTENCES,
                   input_context: tf.distribute.InputContext | None = None,
                   num_epochs: int | None = 1,
                   seed: int | None = None,
                   cycle_length: int = 8,
                   num_parallel_calls: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
    """Documents from corpus files, interleaved over files.

    Each worker of ``input_context`` reads its own share of the files when
    there are at least as many files as workers, else every worker reads all
    files and keeps every n-th document; either way workers see disjoint
    documents. The file order is shuffled each epoch with ``seed``, which must
    be the same on every worker: when documents are sharded, all workers need
    the same order (so with ``seed=None`` it is then the given order).
    """
    num_shards, shard = _shard_of(input_context)
    shard_files = num_shards > 1 and len(files) >= num_shards
    for path in files[shard::num_shards] if shard_files else files:
        check_corpus_file(path)
    file_ds = tf.data.Dataset.from_tensor_slices(list(files))
    if shard_files:
        file_ds = file_ds.shard(num_shards, shard)
    if files_may_be_shuffled(len(files), num_shards, shard_files, seed):
        file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    file_ds = file_ds.repeat(num_epochs)
    documents = file_ds.interleave(
        lambda path: documents_from_lines(lines_dataset(path), max_document_sentences),
        cycle_length=min(cycle_length, len(files)),
        block_length=1,
        num_parallel_calls=num_parallel_calls,
        deterministic=True)
    if num_shards > 1 and not shard_files:
        documents = documents.shard(num_shards, shard)
    return documents


def pipeline_seed(seed: int | None, pipeline_id: int) -> int | None:
    """The run's seed made distinct per input pipeline, for what each shuffles on its own."""
    return None if seed is None else seed * 1009 + pipeline_id


def resume_seed(seed: int | None, start_step: int) -> int | None:
    """The seed of a stream restarted at batch `start_step` rather than skipped to it."""
    if seed is None or start_step == 0:
        return seed
    return (seed * 1_000_003 + start_step) % 2**62


def files_may_be_shuffled(num_files: int, num_shards: int, shard_files: bool,
                          seed: int | None) -> bool:
    """Whether the file order may be shuffled: sharding by element needs one order everywhere."""
    return num_files > 1 and (shard_files or num_shards == 1 or seed is not None)


def tfds_documents(name: str,
                   text_key: str = "text",
                   split: str = "train",
                   data_dir: str | None = None,
                   max_document_sentences: int = DEFAULT_MAX_DOCUMENT_SENTENCES,
                   input_context: tf.distribute.InputContext | None = None,
                   num_epochs: int | None = 1) -> tf.data.Dataset:
    """Documents from a TFDS text dataset: one example is one document.

    ``text_key`` names the feature holding the text (e.g. ``text`` for
    ``wikipedia/20230601.en``); its non-blank lines are the sentences.
    """
    dataset, _ = load_tfds(name, split, data_dir, shuffle_files=False)
    if text_key not in dataset.element_spec:
        raise ValueError(
            f"TFDS dataset {name!r} has no text feature {text_key!r}; "
            f"its features are {sorted(dataset.element_spec)}")
    num_shards, shard = _shard_of(input_context)
    if num_shards > 1:
        dataset = dataset.shard(num_shards, shard)

    def split_lines(example):
        lines = tf.strings.split(example[text_key], "\n")
        lines = tf.boolean_mask(lines, tf.strings.strip(lines) != "")
        return tf.data.Dataset.from_tensor_slices(lines).concatenate(
            tf.data.Dataset.from_tensors(tf.constant("")))

    lines = dataset.repeat(num_epochs).flat_map(split_lines)
    return documents_from_lines(lines, max_document_sentences)


def _shard_of(input_context: tf.distribute.InputContext | None) -> tuple[int, int]:
    if input_context is None:
        return 1, 0
    return input_context.num_input_pipelines, input_context.input_pipeline_id
