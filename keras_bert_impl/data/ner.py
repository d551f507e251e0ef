"""CoNLL-format NER sentences, and their alignment to WordPiece tokens.

One token per line, the word in the first column and its tag in the last,
columns separated by whitespace or tabs, a blank line between sentences,
`-DOCSTART-` lines skipped (each ends a sentence). For training, a word's tag is placed on its first
wordpiece; the other wordpieces, [CLS], [SEP] and padding get label -1 and
sample weight 0, so they are ignored in the loss.
"""

import dataclasses
import io
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from keras_bert_impl.data.bad_records import BadRecords
from keras_bert_impl.data.text_files import read_utf8

if TYPE_CHECKING:
    from keras_bert_impl.text.preprocessor import BertPreprocessor
    from keras_bert_impl.text.tokenizer import BertTokenizer

IGNORED_LABEL = -1


@dataclasses.dataclass
class TaggedSentences:
    """Words and their tags, one list per sentence, with where each sentence starts."""

    words: list[list[str]]
    tags: list[list[str]]
    sources: list[str]
    skipped_records: int = 0


def read_conll(path: str, skip_bad_records: bool = False) -> TaggedSentences:
    """Reads a CoNLL file; a line without a tag column makes its sentence a bad record.

    >>> data = read_conll("conll2003/train.txt")
    >>> data.words[0], data.tags[0][:2]
    (['EU', 'rejects', 'German', ...], ['B-ORG', 'O'])
    """
    bad = BadRecords(skip_bad_records)
    data = TaggedSentences([], [], [])
    words, tags, start, broken = [], [], None, None

    def finish():
        if broken:
            bad.report(broken)
        elif words:
            data.words.append(list(words))
            data.tags.append(list(tags))
            data.sources.append(f"{path}:{start}")

    for line, text in enumerate(io.StringIO(read_utf8(path), newline=None), start=1):
        # Tab-separated columns when there are tabs (trailing ones are not a column),
        # else separated by ASCII spaces: a no-break space is part of a word ("10\u00a0000").
        line_text = text.strip()
        fields = (line_text.split("\t") if "\t" in line_text
                  else [field for field in line_text.split(" ") if field])
        fields = [field.strip() for field in fields]
        # A document start ends a sentence even without a blank line after it.
        if not text.strip() or fields[0] == "-DOCSTART-":
            finish()
            words, tags, start, broken = [], [], None, None
            continue
        start = start or line
        if len(fields) < 2 or not fields[0] or not fields[-1]:
            broken = broken or (
                f"{path}:{line}: expected a word and a tag separated by whitespace, "
                f"found {text.rstrip(chr(13) + chr(10))!r}"
            )
            continue
        if any(char.isspace() for char in fields[-1]):
            broken = broken or (
                f"{path}:{line}: the tag {fields[-1]!r} holds whitespace: columns separated "
                "by tabs and spaces on one line?")
            continue
        words.append(fields[0])
        tags.append(fields[-1])
    finish()
    data.skipped_records = bad.skipped
    return data


def ner_features(
    data: TaggedSentences, tokenizer: "BertTokenizer", preprocessor: "BertPreprocessor",
    tag_list: list[str] | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Encoder inputs, wordpiece labels and the first-wordpiece position of every word.

    Words are tokenized by the `BertTokenizer` one by one (the CoNLL words
    are the unit that carries a tag) and packed by the `BertPreprocessor`
    as `[CLS] pieces [SEP]`, truncated at its `seq_length`. A word the
    tokenizer turns into nothing (a lone control character) becomes [UNK] so
    it keeps its tag. Returns `(inputs, labels, word_positions)`: labels
    [n, seq] int32 with -1 where ignored (all -1 when `tag_list` is None);
    `word_positions` [n, max_words] int32, -1 for words cut by truncation
    and for padding.
    """
    flat_words = [word for sentence in data.words for word in sentence]
    pieces = tokenizer.tokenize(tf.constant(flat_words, dtype=tf.string))
    counts = pieces.row_lengths().numpy()
    if np.any(counts == 0):
        pieces = tf.RaggedTensor.from_row_lengths(
            _unk_for_empty(pieces, tokenizer.unk_id), np.maximum(counts, 1)
        )
        counts = np.maximum(counts, 1)
    sentence_lengths = [len(sentence) for sentence in data.words]
    per_sentence = tf.RaggedTensor.from_row_lengths(pieces, sentence_lengths)
    inputs = preprocessor.pack([per_sentence.merge_dims(1, 2)])
    inputs = {name: value.numpy() for name, value in inputs.items()}
    seq_length = inputs["input_word_ids"].shape[1]

    tag_index = {tag: i for i, tag in enumerate(tag_list or [])}
    labels = np.full((len(data.words), seq_length), IGNORED_LABEL, dtype=np.int32)
    max_words = max(sentence_lengths, default=0)
    word_positions = np.full((len(data.words), max(max_words, 1)), -1, dtype=np.int32)
    word = 0
    for row, sentence_tags in enumerate(data.tags):
        position = 1  # after [CLS]
        for column, tag in enumerate(sentence_tags):
            if position < seq_length - 1:
                word_positions[row, column] = position
                if tag_list is not None:
                    labels[row, position] = tag_index[tag]
            position += counts[word]
            word += 1
    return inputs, labels, word_positions


def _unk_for_empty(pieces: tf.RaggedTensor, unk_id: int) -> np.ndarray:
    values = []
    for row in pieces.to_list():
        values.extend(row or [unk_id])
    return np.asarray(values, dtype=np.int32)


def ner_dataset(
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    batch_size: int,
    shuffle: bool = False,
    repeat: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of (inputs, labels, sample weights) for `model.fit`.

    Ignored positions (label -1) get label 0 and weight 0, so a plain sparse
    cross-entropy skips them.
    """
    weights = (labels != IGNORED_LABEL).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, np.maximum(labels, 0), weights))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)


def check_tags(data: TaggedSentences, tag_list: list[str], skip_bad_records: bool = False):
    """Keeps the sentences whose tags are all in `tag_list`; others are bad records."""
    known = set(tag_list)

    def problem(tags):
        unknown = sorted(set(tags) - known)
        return unknown and f"tag(s) {unknown} are not among the training tags {tag_list}"

    return _keep_sentences(data, problem, skip_bad_records)


ENTITY_TAG_PREFIXES = ("B", "I", "E", "S")


def check_entity_tags(data: TaggedSentences, skip_bad_records: bool = False):
    """Keeps the sentences whose tags are all entity tags, `O` or a prefix of
    `ENTITY_TAG_PREFIXES`, a hyphen and a type (IOB1, IOB2, IOBES: what conlleval scores);
    others are bad records. A file of another kind read as CoNLL (a TSV of sentences and
    labels, JSON) has no such tags, and entity scores of it would mean nothing."""

    def is_entity_tag(tag):
        prefix, _, entity_type = tag.partition("-")
        return tag == "O" or (prefix in ENTITY_TAG_PREFIXES and bool(entity_type))

    def problem(tags):
        others = sorted({tag for tag in tags if not is_entity_tag(tag)})
        return others and (
            f"tag(s) {others} are not entity tags (O, or B-, I-, E- or S- and a type, as "
            "conlleval scores them): is this a CoNLL NER file?")

    return _keep_sentences(data, problem, skip_bad_records)


def _keep_sentences(data: TaggedSentences, problem, skip_bad_records: bool) -> TaggedSentences:
    """The sentences whose tags `problem` finds nothing wrong with; the rest are bad records."""
    bad = BadRecords(skip_bad_records)
    kept = TaggedSentences([], [], [], data.skipped_records)
    for words, tags, where in zip(data.words, data.tags, data.sources):
        message = problem(tags)
        if message:
            bad.report(f"{where}: {message}")
            continue
        kept.words.append(words)
        kept.tags.append(tags)
        kept.sources.append(where)
    kept.skipped_records += bad.skipped
    return kept


def predicted_tags(
    logits: np.ndarray, word_positions: np.ndarray, data: TaggedSentences, tag_list: list[str]
) -> list[list[str]]:
    """Each word's tag from the logits at its first wordpiece; "O" for a truncated word."""
    predictions = np.argmax(logits, axis=-1)
    result = []
    for row, words in enumerate(data.words):
        tags = []
        for column in range(len(words)):
            position = word_positions[row, column]
            tags.append(tag_list[predictions[row, position]] if position >= 0 else "O")
        result.append(tags)
    return result
