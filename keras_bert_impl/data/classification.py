"""Labelled texts for classification from TSV, CSV, JSON-lines files or TFDS.

`.tsv` is split on tabs with no quoting (GLUE's files hold quote characters
and may start with a byte-order mark), `.csv` is standard CSV, `.jsonl` holds
one JSON object per line. The first line of a TSV/CSV file is its header and
columns are picked by name; a file without a header line (GLUE's CoLA) is read
with `header=False` and columns picked by number, from 0. Every record
remembers its file and line so a bad label found later can still be named.
"""

import csv
import dataclasses
import io
import json
import math
import pathlib
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from keras_bert_impl.data.bad_records import LONE_SURROGATE, BadRecords, lone_surrogate
from keras_bert_impl.data.text_files import read_utf8
from keras_bert_impl.data.tfds_datasets import load_tfds

if TYPE_CHECKING:
    from keras_bert_impl.text.preprocessor import BertPreprocessor


class MissingColumnsError(ValueError):
    """A labelled file's header lacks a column the reader was told to read."""


class NotAFieldNumberError(ValueError):
    """A column given for a file without header is not a field number."""

    def __init__(self, argument: str, column):
        super().__init__(f"{argument}={column!r} is not a field number; a file without a "
                         "header line picks its columns by number, from 0")
        self.argument, self.column = argument, column


@dataclasses.dataclass
class LabeledTexts:
    """Texts (pairs when `texts_b` is set), their string labels and where each came from."""

    texts_a: list[str]
    texts_b: list[str] | None
    labels: list[str]
    sources: list[str]
    skipped_records: int = 0
    # All labels in class-index order when the source defines them (TFDS), else None.
    label_names: list[str] | None = None


def read_classification_file(
    path: str,
    text_a_column: str = "sentence",
    text_b_column: str | None = None,
    label_column: str = "label",
    skip_bad_records: bool = False,
    header: bool = True,
) -> LabeledTexts:
    """Reads a `.tsv`, `.csv` or `.jsonl` file of labelled texts.

    A row with the wrong number of fields, a missing column or an empty
    label is a bad record: an error naming file and line, or (with
    `skip_bad_records`) skipped and counted in `skipped_records`. With
    `header=False` a TSV/CSV file has no header line, the columns are field
    numbers counted from 0 (as run_classifier.py's `line[3]`), and every row
    has as many fields as the first.

    >>> data = read_classification_file("SST-2/train.tsv")
    >>> data.texts_a[0], data.labels[0]
    ('hide new secretions from the parental units ', '0')
    >>> data = read_classification_file("CoLA/train.tsv", text_a_column=3, label_column=1,
    ...                                 header=False)
    """
    suffix = pathlib.Path(path).suffix.lower()
    readers = {".tsv": _tsv_rows, ".csv": _csv_rows, ".jsonl": _jsonl_rows}
    if suffix not in readers:
        raise ValueError(f"{path}: unknown file type {suffix!r}; expected .tsv, .csv or .jsonl")
    if not header:
        if suffix == ".jsonl":
            raise ValueError(f"{path}: a JSON-lines file names its fields; header=False is "
                             "for .tsv and .csv files")
        text_a_column, text_b_column, label_column = (
            None if column is None else _field_number(argument, column)
            for argument, column in (("text_a_column", text_a_column),
                                     ("text_b_column", text_b_column),
                                     ("label_column", label_column)))
    columns = [text_a_column, label_column] + ([text_b_column] if text_b_column else [])
    bad = BadRecords(skip_bad_records)
    data = LabeledTexts([], [] if text_b_column else None, [], [])
    for line, row in readers[suffix](path, columns, bad, header):
        where = f"{path}:{line}"
        missing = [column for column in columns if row.get(column) is None]
        if missing:
            bad.report(f"{where}: missing field(s) {missing}")
            continue
        wrong = [column for column in columns[:1] + columns[2:]
                 if not isinstance(row[column], str)]
        if wrong:
            bad.report(f"{where}: field(s) {wrong} must be strings, found "
                       f"{[type(row[column]).__name__ for column in wrong]}")
            continue
        label = _label(row[label_column])
        if label is None:
            bad.report(f"{where}: column {label_column!r} must be a string or an integer, "
                       f"found {row[label_column]!r}")
            continue
        if not label:
            bad.report(f"{where}: empty label in column {label_column!r}")
            continue
        data.texts_a.append(row[text_a_column])
        if text_b_column:
            data.texts_b.append(row[text_b_column])
        data.labels.append(label)
        data.sources.append(where)
    data.skipped_records = bad.skipped
    return data


def _label(value) -> str | None:
    """A label as text: JSON's 1 and 1.0 are both "1"; None for booleans, lists, 0.5 ..."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value).strip()
    return None


def _field_number(argument: str, column) -> str:
    """A column of a file without header: a field number from 0, as text (the row's key)."""
    text = str(column).strip()
    if not (text.isascii() and text.isdigit()):
        raise NotAFieldNumberError(argument, column)
    return str(int(text))


def _header_rows(path, rows, columns, bad, what, has_header=True):
    if not has_header:
        yield from _numbered_rows(path, rows, columns, bad, what)
        return
    try:
        line, header = next(rows)
    except StopIteration:
        raise ValueError(f"{path}: the file is empty; expected a header line") from None
    absent = [column for column in columns if column not in header]
    if absent:
        raise MissingColumnsError(f"{path}:{line}: header {header} lacks column(s) {absent}")
    repeated = [column for column in columns if header.count(column) > 1]
    if repeated:
        raise ValueError(f"{path}:{line}: header {header} names column(s) {repeated} more "
                         "than once; which one to read is ambiguous")
    for line, fields in rows:
        if fields == [""] or not fields:
            continue
        if len(fields) != len(header):
            bad.report(
                f"{path}:{line}: expected {len(header)} {what} fields as the header, "
                f"found {len(fields)}"
            )
            continue
        yield line, dict(zip(header, fields))


def _numbered_rows(path, rows, columns, bad, what):
    """Rows of a file without header, keyed by field number; the first row sets the width."""
    width = None
    for line, fields in rows:
        if fields == [""] or not fields:
            continue
        if width is None:
            width = len(fields)
            beyond = [int(column) for column in columns if int(column) >= width]
            if beyond:
                raise MissingColumnsError(
                    f"{path}:{line}: the first row has {width} {what} fields (numbered from "
                    f"0); there is no field {beyond}")
        if len(fields) != width:
            bad.report(f"{path}:{line}: expected {width} {what} fields as the first row, "
                       f"found {len(fields)}")
            continue
        yield line, {str(number): field for number, field in enumerate(fields)}
    if width is None:
        raise ValueError(f"{path}: the file is empty")


def _tsv_rows(path, columns, bad, header=True):
    def rows():
        for line, text in enumerate(io.StringIO(read_utf8(path), newline=""), start=1):
            yield line, text.rstrip("\r\n").split("\t")

    return _header_rows(path, rows(), columns, bad, "tab-separated", header)


def _csv_rows(path, columns, bad, header=True):
    def rows():
        reader = csv.reader(io.StringIO(read_utf8(path), newline=""), strict=True)
        start = 1
        try:
            for fields in reader:
                yield start, fields
                start = reader.line_num + 1
        except csv.Error as error:
            # An unclosed quote would swallow the rest of the file into one field.
            raise ValueError(f"{path}:{start}: malformed CSV record ({error})") from None

    return _header_rows(path, rows(), columns, bad, "comma-separated", header)


def _jsonl_rows(path, columns, bad, header=True):
    for line, text in enumerate(io.StringIO(read_utf8(path), newline=None), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            bad.report(f"{path}:{line}: not a JSON object ({error.msg})")
            continue
        if not isinstance(row, dict):
            bad.report(f"{path}:{line}: expected a JSON object, found {type(row).__name__}")
            continue
        if (cut := lone_surrogate(row.values())) is not None:
            bad.report(f"{path}:{line}: {LONE_SURROGATE}{cut}")
            continue
        yield line, row


def read_tfds_glue(
    name: str,
    split: str,
    data_dir: str | None = None,
    label_column: str = "label",
    skip_bad_records: bool = False,
) -> LabeledTexts:
    """Reads a GLUE-style task from TensorFlow Datasets, e.g. `glue/sst2` or `glue/mrpc`.

    The text features are the dataset's: one (`sentence`) for single texts,
    two in the dataset's order for pairs (`sentence1`/`sentence2`,
    `question`/`sentence`, `premise`/`hypothesis`, ...). Labels are the
    class names of the dataset's `ClassLabel`, and `label_names` lists all of
    them in class-index order, so the number of classes comes from the
    dataset, not from the labels a split happens to hold. An example without
    a label (-1, as GLUE's test splits) is a bad record.

    >>> data = read_tfds_glue("glue/mrpc", split="validation")
    >>> data.label_names, data.texts_b is not None
    (['not_equivalent', 'equivalent'], True)
    """
    import tensorflow_datasets as tfds

    dataset, info = load_tfds(name, split, data_dir)
    if label_column not in info.features:
        raise ValueError(f"{name}: no label feature {label_column!r} in {list(info.features)}")
    label_feature = info.features[label_column]
    if not isinstance(label_feature, tfds.features.ClassLabel):
        raise TypeError(
            f"{name}: feature {label_column!r} is {label_feature}, not a ClassLabel; "
            "classification needs classes (regression sets such as glue/stsb are not supported)"
        )
    text_features = [
        key for key, feature in info.features.items() if isinstance(feature, tfds.features.Text)
    ]
    if len(text_features) not in (1, 2):
        raise ValueError(
            f"{name}: expected one text feature or a pair of them, found {text_features}"
        )
    a_column = text_features[0]
    b_column = text_features[1] if len(text_features) == 2 else None
    bad = BadRecords(skip_bad_records)
    data = LabeledTexts([], [] if b_column else None, [], [], label_names=list(label_feature.names))
    for index, example in enumerate(tfds.as_numpy(dataset)):
        where = f"{name}[{split}] example {index}"
        label = int(example[label_column])
        if not 0 <= label < label_feature.num_classes:
            bad.report(f"{where}: label {label} is not a class of {name} (unlabelled split?)")
            continue
        data.texts_a.append(example[a_column].decode("utf-8"))
        if b_column:
            data.texts_b.append(example[b_column].decode("utf-8"))
        data.labels.append(label_feature.int2str(label))
        data.sources.append(where)
    data.skipped_records = bad.skipped
    return data


def sorted_labels(labels: list[str]) -> list[str]:
    """The distinct labels, sorted numerically when all are numbers, else as text.

    The order is total (equal numbers such as "1" and "1.0" by their text, NaN
    last), so every process, resumed or exporting, gives labels the same ids.

    >>> sorted_labels(["10", "2", "2"])
    ['2', '10']
    """
    distinct = set(labels)
    try:
        numbers = {label: float(label) for label in distinct}
    except ValueError:
        return sorted(distinct)
    return sorted(distinct, key=lambda label: (math.isnan(numbers[label]),
                                               0.0 if math.isnan(numbers[label])
                                               else numbers[label], label))


def encode_labels(
    data: LabeledTexts, label_list: list[str], skip_bad_records: bool = False
) -> tuple[LabeledTexts, np.ndarray]:
    """Maps labels to their index in `label_list`; an unknown label is a bad record.

    Returns the records kept (skipped ones counted into `skipped_records`)
    and their int32 label ids.
    """
    index = {label: i for i, label in enumerate(label_list)}
    bad = BadRecords(skip_bad_records)
    keep = []
    for position, (label, where) in enumerate(zip(data.labels, data.sources)):
        if label not in index:
            bad.report(f"{where}: label {label!r} is not one of the training labels {label_list}")
            continue
        keep.append(position)
    kept = LabeledTexts(
        texts_a=[data.texts_a[i] for i in keep],
        texts_b=[data.texts_b[i] for i in keep] if data.texts_b is not None else None,
        labels=[data.labels[i] for i in keep],
        sources=[data.sources[i] for i in keep],
        skipped_records=data.skipped_records + bad.skipped,
        label_names=data.label_names,
    )
    ids = np.array([index[label] for label in kept.labels], dtype=np.int32)
    return kept, ids


def classification_dataset(
    data: LabeledTexts,
    label_ids: np.ndarray,
    preprocessor: "BertPreprocessor",
    batch_size: int,
    shuffle: bool = False,
    repeat: bool = False,
    seed: int | None = None,
    skip_batches: int = 0,
) -> tf.data.Dataset:
    """Batches of (encoder inputs, label ids), tokenized and packed by `preprocessor`.

    The `BertPreprocessor` runs inside the tf.data graph, the same one the
    export embeds. `skip_batches` starts at that batch of the same order, as a
    resumed run does, without tokenizing the ones before it.
    """
    texts = (data.texts_a,) if data.texts_b is None else (data.texts_a, data.texts_b)
    dataset = tf.data.Dataset.from_tensor_slices((texts, label_ids))
    if shuffle:
        dataset = dataset.shuffle(len(label_ids), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=repeat).skip(skip_batches)

    def pack(batch_texts, labels):
        inputs = preprocessor(batch_texts[0] if len(texts) == 1 else tuple(batch_texts))
        return inputs, labels

    return dataset.map(pack, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
