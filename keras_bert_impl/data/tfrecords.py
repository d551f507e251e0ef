"""Pretraining TFRecords in the original ``create_pretraining_data.py`` layout.

Each record is a ``tf.train.Example`` with the original feature names and
types, so our files and the original script's are interchangeable:

| record feature | type | length | our feature |
|---|---|---|---|
| ``input_ids`` | int64 | seq_length | ``input_word_ids`` int32 |
| ``input_mask`` | int64 | seq_length | ``input_mask`` int32 |
| ``segment_ids`` | int64 | seq_length | ``input_type_ids`` int32 |
| ``masked_lm_positions`` | int64 | P | ``masked_lm_positions`` int32 |
| ``masked_lm_ids`` | int64 | P | ``masked_lm_ids`` int32 |
| ``masked_lm_weights`` | float | P | ``masked_lm_weights`` float32 |
| ``next_sentence_labels`` | int64 | 1 | ``next_sentence_labels`` int32 [] |

Beside each record file ``dir/F.tfrecord`` our tool writes ``dir/.F.metadata.json``
(hidden, and not named after the record file, so a shard pattern such as
``F.tfrecord*`` given to the original ``run_pretraining.py`` finds only records;
``F.tfrecord.metadata.json`` from earlier versions is still read) with the
generation parameters (seq length, max predictions, vocabulary sha256,
masked_lm_prob, dupe_factor, ...). Reading checks them, and for files without
metadata (the original script's) checks the first record's feature lengths
and that the token ids of its first records fit the vocabulary, so a mismatch is
an error naming the file and the field rather than "Can't parse serialized
Example" or an out-of-range lookup mid-training (on a GPU, silent zeros).
Every batch read is checked against the vocabulary size too.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence

import tensorflow as tf
from google.protobuf.message import DecodeError

from keras_bert_impl.data.corpus import files_may_be_shuffled, pipeline_seed
from keras_bert_impl.data.file_checks import once_per_file_version

METADATA_SUFFIX = ".metadata.json"
PARTIAL_SUFFIX = ".partial"
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".record")

# Our feature name -> the original record's feature name.
RECORD_NAMES = {
    "input_word_ids": "input_ids",
    "input_mask": "input_mask",
    "input_type_ids": "segment_ids",
    "masked_lm_positions": "masked_lm_positions",
    "masked_lm_ids": "masked_lm_ids",
    "masked_lm_weights": "masked_lm_weights",
    "next_sentence_labels": "next_sentence_labels",
}
_SEQUENCE_FEATURES = ("input_word_ids", "input_mask", "input_type_ids")
_PREDICTION_FEATURES = ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")


def looks_like_tfrecord(path: str) -> bool:
    """Whether the file's name says TFRecords (``.tfrecord``, ``.record-00001``, ...)."""
    return any(path.endswith(suffix) or f"{suffix}-" in path for suffix in TFRECORD_SUFFIXES)


def starts_with_a_record(path: str) -> bool:
    """Whether the file begins with a well-formed TFRecord (length and checksums agree).

    The original ``create_pretraining_data.py`` names its output freely, so a
    file's name cannot tell; text or gzip bytes fail the length checksum.
    """
    try:
        return next(iter(tf.data.TFRecordDataset(path).take(1)), None) is not None
    except tf.errors.DataLossError:
        return False


def metadata_path(record_path: str) -> str:
    """``dir/.F.metadata.json`` for ``dir/F.tfrecord`` (see the module docstring)."""
    directory, name = os.path.split(record_path)
    for suffix in TFRECORD_SUFFIXES:
        if name.endswith(suffix):
            name = name[:-len(suffix)]
            break
    return os.path.join(directory, f".{name}{METADATA_SUFFIX}")


def partial_path(record_path: str) -> str:
    """``dir/.F.partial``: where ``dir/F`` is written until it is complete. Hidden, and
    not named after the record file, so no shard pattern (``F*``) of a later run reads
    an interrupted one's records."""
    directory, name = os.path.split(record_path)
    return os.path.join(directory, f".{name}{PARTIAL_SUFFIX}")


def is_side_file(path: str) -> bool:
    """Metadata or an unfinished record file: never records to read."""
    return path.endswith((METADATA_SUFFIX, PARTIAL_SUFFIX))


def metadata_paths(record_path: str) -> tuple[str, str]:
    """Where the metadata is written, and where earlier versions wrote it."""
    return metadata_path(record_path), record_path + METADATA_SUFFIX


def write_metadata(record_path: str, metadata: dict) -> None:
    with tf.io.gfile.GFile(metadata_path(record_path), "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)


def _existing_metadata_path(record_path: str) -> str | None:
    return next((p for p in metadata_paths(record_path) if tf.io.gfile.exists(p)), None)


def read_metadata(record_path: str) -> dict | None:
    """The metadata beside ``record_path``, None when there is none."""
    path = _existing_metadata_path(record_path)
    if path is None:
        return None
    with tf.io.gfile.GFile(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"pretraining metadata {path!r} is not valid JSON: {error}") from None


def serialize_example(features: dict) -> bytes:
    """One instance (numpy/python values under our names) as an original record."""
    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))

    record = {RECORD_NAMES[name]: ints(_flat(features[name]))
              for name in RECORD_NAMES if name != "masked_lm_weights"}
    record["masked_lm_weights"] = tf.train.Feature(float_list=tf.train.FloatList(
        value=[float(v) for v in _flat(features["masked_lm_weights"])]))
    # Deterministic: protobuf otherwise orders the feature map by the process's memory
    # layout, so reruns with one seed would write equal records as different bytes.
    return tf.train.Example(features=tf.train.Features(feature=record)).SerializeToString(
        deterministic=True)


def _flat(value) -> list:
    return list(getattr(value, "reshape", lambda _: [value])(-1))


def check_record_files(files: Sequence[str], seq_length: int, max_predictions_per_seq: int,
                       vocab_sha256: str | None = None, vocab_size: int | None = None) -> None:
    """Raises ValueError naming the file and field that does not match, or the file that
    is damaged.

    Every record's length and checksums are read first (a pass over the files, at
    the speed of the disk): a truncated or corrupt file would otherwise fail only
    when training reaches it, without its name, and again at every resume.
    """
    for path in files:
        _check_record_file(path, seq_length, max_predictions_per_seq, vocab_sha256, vocab_size)


@once_per_file_version
def _check_record_file(path, seq_length, max_predictions_per_seq, vocab_sha256, vocab_size):
    metadata = read_metadata(path)
    if metadata is not None:
        _check_metadata(path, metadata, seq_length, max_predictions_per_seq, vocab_sha256)
    _check_first_record(path, seq_length, max_predictions_per_seq)
    _check_every_record_reads(path)
    if vocab_size is not None:
        _check_token_ids(path, seq_length, max_predictions_per_seq, vocab_size)


# Records whose token ids are checked up front; the rest are checked as batches are read.
_RECORDS_CHECKED_FOR_IDS = 1000


def _check_token_ids(path, seq_length, max_predictions_per_seq, vocab_size):
    parse = parse_fn(seq_length, max_predictions_per_seq)
    try:
        batch = next(iter(
            tf.data.TFRecordDataset(path).batch(_RECORDS_CHECKED_FOR_IDS).map(parse)))
    except tf.errors.OpError as error:  # a later record of other feature lengths
        raise ValueError(f"pretraining records {path!r} cannot be parsed as seq_length="
                         f"{seq_length}, max_predictions_per_seq={max_predictions_per_seq}: "
                         f"{_reason(error)}") from None
    ids = _token_ids(batch)
    for token_id in (int(tf.reduce_max(ids)), int(tf.reduce_min(ids))):
        if not 0 <= token_id < vocab_size:
            raise ValueError(
                f"pretraining records {path!r} hold token id {token_id}, outside the "
                f"vocabulary of {vocab_size} tokens: they were written with another "
                "vocabulary; pass that one")


def _token_ids(features: dict) -> tf.Tensor:
    """Every vocabulary id of parsed features (inputs and masked labels), flat."""
    return tf.concat([tf.reshape(features[name], [-1])
                      for name in ("input_word_ids", "masked_lm_ids")], 0)


def _reason(error: tf.errors.OpError) -> str:
    return re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:.*$", "", error.message)


@tf.autograph.experimental.do_not_convert
def _count(count, records):
    return count + tf.size(records, out_type=tf.int64)


def _check_every_record_reads(path):
    try:
        tf.data.TFRecordDataset(path).batch(4096).reduce(tf.constant(0, tf.int64), _count)
    except tf.errors.OpError as error:
        raise ValueError(f"pretraining records {path!r} are damaged (truncated or corrupt): "
                         f"{_reason(error)}") from None


def _check_metadata(path, metadata, seq_length, max_predictions_per_seq, vocab_sha256):
    expected = {"seq_length": seq_length, "max_predictions_per_seq": max_predictions_per_seq}
    if vocab_sha256 is not None and metadata.get("vocab_sha256") is not None:
        expected["vocab_sha256"] = vocab_sha256
    for field, value in expected.items():
        if field not in metadata:
            raise ValueError(f"pretraining metadata {_existing_metadata_path(path)!r} lacks "
                             f"{field!r}")
        if metadata[field] != value:
            raise ValueError(
                f"pretraining records {path!r} were written with {field}={metadata[field]!r} "
                f"(see {_existing_metadata_path(path)}) but this run expects {field}={value!r}")


def _check_first_record(path, seq_length, max_predictions_per_seq):
    try:
        first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    except tf.errors.OpError as error:
        raise ValueError(f"pretraining records {path!r} cannot be read: {error.message}") from None
    if first is None:
        raise ValueError(f"pretraining records {path!r} hold no records")
    try:
        example = tf.train.Example.FromString(first.numpy())
    except DecodeError as error:
        raise ValueError(f"{path!r} does not hold tf.train.Example records: {error}") from None
    record = example.features.feature
    lengths = dict.fromkeys(_SEQUENCE_FEATURES, seq_length)
    lengths.update(dict.fromkeys(_PREDICTION_FEATURES, max_predictions_per_seq))
    lengths["next_sentence_labels"] = 1
    for name, length in lengths.items():
        record_name = RECORD_NAMES[name]
        if record_name not in record:
            raise ValueError(f"pretraining records {path!r} lack the feature {record_name!r}; "
                             f"expected the features {sorted(RECORD_NAMES.values())}")
        feature = record[record_name]
        found = len(getattr(feature, feature.WhichOneof("kind")).value)
        if found != length:
            raise ValueError(
                f"pretraining records {path!r}: feature {record_name!r} has length {found}, "
                f"expected {length} (seq_length={seq_length}, "
                f"max_predictions_per_seq={max_predictions_per_seq})")


def parse_fn(seq_length: int, max_predictions_per_seq: int, vocab_size: int | None = None):
    """A function: serialized record batch [batch] -> our feature dict; with `vocab_size`,
    an InvalidArgumentError for a token id outside the vocabulary."""
    spec = {RECORD_NAMES[name]: tf.io.FixedLenFeature([seq_length], tf.int64)
            for name in _SEQUENCE_FEATURES}
    spec.update({RECORD_NAMES[name]: tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64)
                 for name in ("masked_lm_positions", "masked_lm_ids")})
    spec["masked_lm_weights"] = tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32)
    spec["next_sentence_labels"] = tf.io.FixedLenFeature([1], tf.int64)

    def parse(serialized):
        record = tf.io.parse_example(serialized, spec)
        features = {name: tf.cast(record[RECORD_NAMES[name]], tf.int32)
                    for name in RECORD_NAMES if name != "masked_lm_weights"}
        features["masked_lm_weights"] = record["masked_lm_weights"]
        features["next_sentence_labels"] = tf.reshape(features["next_sentence_labels"], [-1])
        if vocab_size is not None:
            ids = _token_ids(features)
            outside = tf.logical_or(ids < 0, ids >= vocab_size)
            with tf.control_dependencies([tf.debugging.Assert(
                    tf.logical_not(tf.reduce_any(outside)),
                    [(f"a pretraining record holds a token id outside the vocabulary of "
                      f"{vocab_size} tokens: the records were written with another "
                      "vocabulary; pass that one. Such ids:"), tf.boolean_mask(ids, outside)],
                    summarize=3)]):
                features = {name: tf.identity(value) for name, value in features.items()}
        return features

    return parse


def tfrecord_dataset(files: Sequence[str],
                     seq_length: int,
                     max_predictions_per_seq: int,
                     batch_size: int,
                     *,
                     vocab_sha256: str | None = None,
                     vocab_size: int | None = None,
                     seed: int | None = None,
                     input_context: tf.distribute.InputContext | None = None,
                     num_epochs: int | None = None,
                     start_step: int = 0,
                     drop_remainder: bool = True,
                     shuffle_buffer: int = 1000,
                     num_parallel_calls: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
    """Batches read from pretraining TFRecords (ours or the original's).

    The masks are the ones stored in the records (static masking, as the
    original ``run_pretraining.py``). ``batch_size`` is per input pipeline.
    Records are sharded by file when there are at least as many files as
    pipelines, else by record. ``seed`` is the run's seed, the same on every
    pipeline: sharding by record needs one file order everywhere.
    """
    files = [f for f in files if not is_side_file(f)]
    num_shards = 1 if input_context is None else input_context.num_input_pipelines
    shard = 0 if input_context is None else input_context.input_pipeline_id
    shard_files = num_shards > 1 and len(files) >= num_shards
    check_record_files(files[shard::num_shards] if shard_files else files, seq_length,
                       max_predictions_per_seq, vocab_sha256, vocab_size)
    file_ds = tf.data.Dataset.from_tensor_slices(list(files))
    if shard_files:
        file_ds = file_ds.shard(num_shards, shard)
    if files_may_be_shuffled(len(files), num_shards, shard_files, seed):
        file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    records = file_ds.repeat(num_epochs).interleave(
        tf.data.TFRecordDataset, cycle_length=min(8, len(files)),
        num_parallel_calls=num_parallel_calls, deterministic=True)
    if num_shards > 1 and not shard_files:
        records = records.shard(num_shards, shard)
    records = records.shuffle(shuffle_buffer, seed=pipeline_seed(seed, shard),
                              reshuffle_each_iteration=True)
    batches = records.batch(batch_size, drop_remainder=drop_remainder).skip(start_step)
    batches = batches.map(parse_fn(seq_length, max_predictions_per_seq, vocab_size),
                          num_parallel_calls=num_parallel_calls)
    options = tf.data.Options()
    options.deterministic = seed is not None
    return batches.with_options(options).prefetch(tf.data.AUTOTUNE)
