"""The three `bert-finetune` tasks: their data, model, loss, evaluation and export.

Each task reads its files when constructed (so bad records stop the run
before any training) and offers the same small interface to `finetune.py`.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_bert_impl.data import classification, ner, squad, squad_windows
from keras_bert_impl.metrics import classification as classification_metrics
from keras_bert_impl.metrics.ner import entity_scores
from keras_bert_impl.metrics.squad import squad_scores
from keras_bert_impl.metrics.squad_cmrc import cmrc_scores
from keras_bert_impl.metrics.squad_decoding import decode_answers
from keras_bert_impl.models.classifier import BertClassifier
from keras_bert_impl.models.span_labeler import BertSpanLabeler
from keras_bert_impl.models.token_classifier import BertTokenClassifier


def _sparse_loss(reduction="sum_over_batch_size"):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)


class ClassifyTask:
    """Texts or text pairs with one label each, from TSV/CSV/JSONL files or a TFDS dataset."""

    def __init__(self, flags, tokenizer, preprocessor):
        self.flags = flags
        self.preprocessor = preprocessor
        if flags.tfds_name:
            if not flags.header:
                raise ValueError("--noheader is for --train_file/--eval_file; a TFDS dataset "
                                 "names its features")
            train, evaluation = (
                classification.read_tfds_glue(
                    flags.tfds_name, split, data_dir=flags.tfds_data_dir,
                    label_column=flags.label_column, skip_bad_records=flags.skip_bad_records)
                for split in (flags.tfds_train_split, flags.tfds_eval_split))
        else:
            read = {"text_a_column": flags.text_a_column, "text_b_column": flags.text_b_column,
                    "label_column": flags.label_column, "header": flags.header,
                    "skip_bad_records": flags.skip_bad_records}
            try:
                train = classification.read_classification_file(flags.train_file, **read)
                evaluation = classification.read_classification_file(flags.eval_file, **read)
            except classification.NotAFieldNumberError as error:
                raise ValueError(
                    f"--noheader picks columns by field number, from 0: --{error.argument}="
                    f"{error.column!r} is not one (GLUE's CoLA: --text_a_column=3 "
                    "--label_column=1)") from None
            except classification.MissingColumnsError as error:
                hint = ("; pick the columns by number with --text_a_column, --text_b_column "
                        "(pairs) and --label_column" if not flags.header else
                        "; name the file's columns with --text_a_column, --text_b_column "
                        "(pairs) and --label_column, or, for a file without a header line, "
                        "pass --noheader and their numbers")
                raise ValueError(f"{error}{hint}") from None
        train_source, eval_source = _sources(flags)
        require_examples(len(train.labels), train_source, train.skipped_records)
        # TFDS names every class; a file only shows the labels it holds.
        self.labels = train.label_names or classification.sorted_labels(train.labels)
        if len(self.labels) < 2:
            raise ValueError(f"{train_source}: every training example has the label "
                             f"{self.labels[0]!r}; a classifier needs examples of at least "
                             "two labels")
        self.train, self.train_ids = classification.encode_labels(train, self.labels)
        self.eval, self.eval_ids = classification.encode_labels(
            evaluation, self.labels, skip_bad_records=flags.skip_bad_records)
        require_examples(len(self.eval_ids), eval_source, self.eval.skipped_records)
        self.num_train_examples = len(self.train_ids)
        self.skipped_records = self.train.skipped_records + self.eval.skipped_records

    def build_model(self, encoder: keras.Model) -> keras.Model:
        return BertClassifier(encoder, num_classes=len(self.labels))

    def compile_args(self) -> dict:
        return {"loss": _sparse_loss(),
                "metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    def train_dataset(self, batch_size: int, seed: int, skip: int = 0) -> tf.data.Dataset:
        """The seeded, endless training batches from the `skip`-th on."""
        return classification.classification_dataset(
            self.train, self.train_ids, self.preprocessor, batch_size,
            shuffle=True, repeat=True, seed=seed, skip_batches=skip)

    def evaluate(self, model: keras.Model, batch_size: int, model_dir: str) -> dict:
        dataset = classification.classification_dataset(
            self.eval, self.eval_ids, self.preprocessor, batch_size)
        predictions = np.argmax(model.predict(dataset, verbose=0), axis=-1)
        results = {"accuracy": classification_metrics.accuracy(self.eval_ids, predictions),
                   "mcc": classification_metrics.matthews_correlation(self.eval_ids, predictions)}
        if len(self.labels) == 2:
            results["f1"] = classification_metrics.f1(self.eval_ids, predictions, positive=1)
        return results

    def export_options(self) -> dict:
        """`export_saved_model` arguments that serve texts as training read them."""
        return {"lower_case": self.flags.lower_case, "seq_length": self.flags.seq_length,
                "pair_inputs": self.train.texts_b is not None}


class NerTask:
    """CoNLL files: a tag per word, scored by entity as conlleval."""

    def __init__(self, flags, tokenizer, preprocessor):
        self.flags = flags
        self.tokenizer = tokenizer
        skip = flags.skip_bad_records
        train = ner.check_entity_tags(ner.read_conll(flags.train_file, skip), skip)
        require_examples(len(train.words), flags.train_file, train.skipped_records)
        self.labels = classification.sorted_labels([t for tags in train.tags for t in tags])
        evaluation = ner.check_tags(ner.read_conll(flags.eval_file, skip), self.labels, skip)
        require_examples(len(evaluation.words), flags.eval_file, evaluation.skipped_records)
        self.train_inputs, self.train_labels, _ = ner.ner_features(
            train, tokenizer, preprocessor, self.labels)
        self.eval = evaluation
        self.eval_inputs, _, self.eval_positions = ner.ner_features(
            evaluation, tokenizer, preprocessor)
        self.num_train_examples = len(train.words)
        self.skipped_records = train.skipped_records + evaluation.skipped_records

    def build_model(self, encoder: keras.Model) -> keras.Model:
        return BertTokenClassifier(encoder, num_classes=len(self.labels))

    def compile_args(self) -> dict:
        # The mean over the labelled wordpieces (each word's first), not over every
        # position: padding would otherwise shrink the loss and its gradient.
        return {"loss": _sparse_loss(reduction="mean_with_sample_weight"),
                "weighted_metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    def train_dataset(self, batch_size: int, seed: int, skip: int = 0) -> tf.data.Dataset:
        """The seeded, endless training batches from the `skip`-th on."""
        return ner.ner_dataset(self.train_inputs, self.train_labels, batch_size,
                               shuffle=True, repeat=True, seed=seed).skip(skip)

    def evaluate(self, model: keras.Model, batch_size: int, model_dir: str) -> dict:
        logits = model.predict(self.eval_inputs, batch_size=batch_size, verbose=0)
        predicted = ner.predicted_tags(logits, self.eval_positions, self.eval, self.labels)
        return entity_scores(self.eval.tags, predicted)

    def export_options(self) -> dict:
        """`export_saved_model` arguments that serve texts as training read them."""
        return {"lower_case": self.flags.lower_case, "seq_length": self.flags.seq_length}


class SquadTask:
    """SQuAD v1.1/v2.0 JSON: answer spans in doc_stride windows, official EM/F1.

    As the original run_squad.py, an epoch is the number of training
    *questions* in batches, although a long context yields several windows.
    """

    labels: tuple[str, ...] = ()  # spans have no labels file

    def __init__(self, flags, tokenizer, preprocessor):
        self.flags = flags
        warn_if_windows_never_overlap(flags.seq_length, flags.doc_stride, flags.max_query_length)
        windows = {"seq_length": flags.seq_length, "doc_stride": flags.doc_stride,
                   "max_query_length": flags.max_query_length}
        train = squad.read_squad(flags.train_file, skip_bad_records=flags.skip_bad_records,
                                 version_2_with_negative=flags.version_2_with_negative)
        require_examples(len(train.examples), flags.train_file, train.skipped_records)
        self.train = squad_windows.squad_features(train, tokenizer, **windows)
        self.eval_examples = squad.read_squad(
            flags.eval_file, version_2_with_negative=flags.version_2_with_negative,
            is_training=False)
        require_examples(len(self.eval_examples.examples), flags.eval_file, 0)
        self.eval = squad_windows.squad_features(self.eval_examples, tokenizer, **windows)
        self.num_train_examples = len(train.examples)
        self.skipped_records = train.skipped_records

    def build_model(self, encoder: keras.Model) -> keras.Model:
        return BertSpanLabeler(encoder)

    def compile_args(self) -> dict:
        return {"loss": {"start_logits": _sparse_loss(), "end_logits": _sparse_loss()},
                "loss_weights": {"start_logits": 0.5, "end_logits": 0.5}}

    def train_dataset(self, batch_size: int, seed: int, skip: int = 0) -> tf.data.Dataset:
        """The seeded, endless training batches from the `skip`-th on."""
        return squad_windows.squad_dataset(self.train, batch_size, shuffle=True, repeat=True,
                                   seed=seed).skip(skip)

    def evaluate(self, model: keras.Model, batch_size: int, model_dir: str) -> dict:
        outputs = model.predict(self.eval.inputs, batch_size=batch_size, verbose=0)
        predictions, _ = decode_answers(
            self.eval_examples, self.eval, outputs["start_logits"], outputs["end_logits"],
            n_best_size=self.flags.n_best_size, max_answer_length=self.flags.max_answer_length,
            version_2_with_negative=self.flags.version_2_with_negative,
            null_score_diff_threshold=self.flags.null_score_diff_threshold)
        with tf.io.gfile.GFile(os.path.join(model_dir, "predictions.json"), "w") as f:
            f.write(json.dumps(predictions, ensure_ascii=False, indent=2))
        if self.flags.squad_metric == "cmrc2018":
            return cmrc_scores(self.eval_examples.gold_answers(), predictions)
        return squad_scores(self.eval_examples.gold_answers(), predictions,
                            version_2_with_negative=self.flags.version_2_with_negative)

    def export_options(self) -> dict:
        """`export_saved_model` arguments that serve texts as training read them.

        text = question, text_pair = context, in the training windows, answering
        "" by the same v2.0 rule as `evaluate`.
        """
        names = ("lower_case", "seq_length", "doc_stride", "max_query_length",
                 "max_answer_length", "n_best_size", "version_2_with_negative",
                 "null_score_diff_threshold")
        return {"pair_inputs": True, **{name: getattr(self.flags, name) for name in names}}


def require_examples(count: int, source: str, skipped: int) -> None:
    """An empty training or evaluation set is an error before any training, naming its source."""
    if count == 0:
        raise ValueError(f"{source}: no examples to use"
                         + (f" (all {skipped} records were bad and skipped)" if skipped else ""))


def _sources(flags) -> tuple[str, str]:
    if flags.tfds_name:
        return (f"--tfds_name={flags.tfds_name} split {flags.tfds_train_split!r}",
                f"--tfds_name={flags.tfds_name} split {flags.tfds_eval_split!r}")
    return flags.train_file, flags.eval_file


def warn_if_windows_never_overlap(seq_length: int, doc_stride: int, max_query_length: int) -> None:
    """Logs a warning when consecutive context windows cannot overlap; ValueError, as
    the original run_squad.py, when a question of `max_query_length` would leave a
    window no room for context.

    A window holds seq_length - 3 - question tokens of the context; when
    `doc_stride` is at least that, an answer that crosses a window boundary
    is in no window whole, so it can be neither learned nor predicted.
    """
    room = seq_length - 3 - max_query_length
    if room <= 0:
        raise ValueError(f"--seq_length={seq_length} must be greater than "
                         f"--max_query_length={max_query_length} + 3, or a long question "
                         "leaves no room for the context (the original run_squad.py's check)")
    if doc_stride >= room:
        logging.warning(
            "--doc_stride=%d is not below the %d context tokens a window holds "
            "(--seq_length=%d - 3 - --max_query_length=%d): windows of long questions do not "
            "overlap and answers across their boundaries are lost; lower --doc_stride or "
            "raise --seq_length (the original run_squad.py: 384, stride 128)",
            doc_stride, room, seq_length, max_query_length)


TASKS = {"classify": ClassifyTask, "ner": NerTask, "squad": SquadTask}
