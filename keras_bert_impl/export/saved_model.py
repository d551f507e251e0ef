"""`export_saved_model`: a SavedModel that takes raw strings, for TensorFlow Serving."""

import contextlib
import os
import tempfile
import uuid
from collections.abc import Sequence

import keras
import tensorflow as tf

from keras_bert_impl.config import BertConfig
from keras_bert_impl.export.op_allowlist import check_serving_ops
from keras_bert_impl.export.precision import with_dtype_policy
from keras_bert_impl.export.serving_head import ServingContext, serving_head_for
from keras_bert_impl.export.tokenized_inputs import (
    check_text_pairs,
    check_tokenized_inputs,
)
from keras_bert_impl.export.warmup import write_warmup_requests
from keras_bert_impl.models.encoder import INPUT_NAMES
from keras_bert_impl.text.preprocessor import BertPreprocessor
from keras_bert_impl.text.tokenizer import BertTokenizer


def _encoder_config(model: keras.Model) -> BertConfig | None:
    config = getattr(model, "config", None) or getattr(getattr(model, "encoder", None), "config",
                                                       None)
    return config if isinstance(config, BertConfig) else None


def _write_labels_file(labels: Sequence[str], directory: str) -> str:
    for index, label in enumerate(labels):
        if not label or label != label.strip() or "\n" in label:
            raise ValueError(f"label #{index} {label!r} must be non-empty without surrounding "
                             "whitespace or newlines (labels.txt holds one per line)")
    path = os.path.join(directory, "labels.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(label + "\n" for label in labels))
    return path


def export_saved_model(model: keras.Model, export_base: str, vocab_file: str,
                       lower_case: bool = True, seq_length: int = 128, version: int = 1,
                       pair_inputs: bool = False, top_k: int = 5,
                       labels: Sequence[str] | str | None = None,
                       seq_length_buckets: Sequence[int] | None = None,
                       max_chars_per_token: int = 100, overwrite: bool = False,
                       model_name: str = "bert", doc_stride: int = 128,
                       max_query_length: int = 64, max_answer_length: int = 30,
                       n_best_size: int = 20, jit_compile: bool = False,
                       version_2_with_negative: bool = False,
                       null_score_diff_threshold: float = 0.0,
                       dtype_policy: str | None = None) -> str:
    """Writes `export_base/<version>/`, a SavedModel with the tokenizer inside.

    Signatures: `serving_default` takes `text` (and `text_pair` when
    `pair_inputs`), tf.string [batch]; `serving_tokenized` takes the three int32
    encoder inputs [batch, seq]. Outputs depend on the model kind (see the
    `*_serving.py` heads). The preprocessing is the training `BertPreprocessor`;
    the vocabulary (and `labels`, a list or a labels.txt path, for classifiers)
    travel as assets. `seq_length_buckets` (ending with `seq_length`) pads each
    batch only to the smallest bucket its longest text fits. A `BertSpanLabeler`
    reads contexts in windows moving by `doc_stride` tokens, keeps the first
    `max_query_length` question tokens and answers with at most
    `max_answer_length` tokens, chosen among each window's `n_best_size`
    best starts and ends, as the original `write_predictions`; with
    `version_2_with_negative` (SQuAD v2.0) it answers "" when the [CLS] score beats the
    best span by more than `null_score_diff_threshold`. The export keeps these options
    (e.g. `tf.saved_model.load(path).doc_stride[0]`). `jit_compile=True`
    compiles the model call (not the tokenizer) with XLA; stock
    `tensorflow_model_server` runs such a model on CPU only when started with
    `--xla_cpu_compilation_enabled=true`, so it is off by default. `dtype_policy`
    ("mixed_bfloat16", "mixed_float16" or "float32"; default: as the model was built)
    serves a copy of the model computing in that precision, with the same weights and
    output dtypes: bf16 is much faster on CPUs with AVX512_BF16 or AMX (without XLA,
    whose CPU bf16 matmuls are slow) and on TPUs. The version is
    written under a temporary name and renamed when complete, so a polling
    server never loads half of it; the ops are checked against TensorFlow
    Serving 2.12. `model_name` is the name the warm-up requests
    (`assets.extra/tf_serving_warmup_requests`) address; give the server's
    `--model_name`. Returns the version directory.

    ```python
    export_saved_model(classifier, "/models/bert", vocab_file="vocab.txt", version=2)
    ```
    """
    if not isinstance(version, int) or version < 0:
        raise ValueError(f"version must be a non-negative int (a directory name TF Serving "
                         f"orders by), got {version!r}")
    export_dir = os.path.join(export_base, str(version))
    if tf.io.gfile.exists(export_dir) and not overwrite:
        raise FileExistsError(f"{export_dir} already exists; export a new version number (TF "
                              "Serving serves the highest) or pass overwrite=True (bert-export: "
                              "--overwrite)")
    buckets = tuple(seq_length_buckets or ())
    if buckets and (list(buckets) != sorted(set(buckets)) or buckets[-1] != seq_length):
        raise ValueError(f"seq_length_buckets {list(buckets)} must increase and end with "
                         f"seq_length={seq_length}")

    if dtype_policy is not None:
        model = with_dtype_policy(model, dtype_policy)
    tokenizer = BertTokenizer(vocab_file, lower_case=lower_case,
                              max_chars_per_token=max_chars_per_token)
    config = _encoder_config(model)
    if config is not None and config.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"{vocab_file} has {tokenizer.vocab_size} tokens but the model's "
                         f"vocab_size is {config.vocab_size}; export with the vocabulary it was "
                         "trained on")
    if config is not None and not 1 <= seq_length <= config.max_position_embeddings:
        raise ValueError(f"seq_length={seq_length} must be 1 to the model's "
                         f"max_position_embeddings={config.max_position_embeddings}")
    if tf.io.gfile.exists(export_base) and not tf.io.gfile.isdir(export_base):
        raise ValueError(f"export_base {export_base} is a file; give a directory (versions "
                         "are written under it)")
    # tf.io.gfile throughout, so that gs:// (or any TF file system) is written, not a
    # local directory named "gs:".
    created_base = not tf.io.gfile.exists(export_base)
    tf.io.gfile.makedirs(export_base)
    try:
        with tempfile.TemporaryDirectory(prefix="bert-export-") as scratch:
            labels_file = labels
            if labels is not None and not isinstance(labels, str):
                labels_file = _write_labels_file(list(labels), scratch)
            context = ServingContext(tokenizer, BertPreprocessor(tokenizer, seq_length),
                                     pair_inputs, top_k, labels_file, buckets, doc_stride,
                                     max_query_length, max_answer_length,
                                     n_best_size=n_best_size, jit_compile=jit_compile,
                                     version_2_with_negative=version_2_with_negative,
                                     null_score_diff_threshold=null_score_diff_threshold)
            head = serving_head_for(model, context)
            if labels is not None and not head.takes_labels:
                raise ValueError(f"labels are served by classifiers and token classifiers; a "
                                 f"{type(model).__name__} export has no output to name with them")
            # Not a number: servers polling export_base never load it.
            staging = os.path.join(export_base, f".{version}-incomplete-{uuid.uuid4().hex[:12]}")
            tf.io.gfile.makedirs(staging)
            try:
                _write(model, head, tokenizer, staging, pair_inputs, config)
                check_serving_ops(staging)
                write_warmup_requests(staging, _warmup_requests(head, pair_inputs, tokenizer),
                                      model_name=model_name)
                _remove_tree(export_dir)  # overwrite=True
                _publish(staging, export_dir)
            except BaseException:
                _remove_tree(staging)
                raise
    except BaseException:
        if created_base and not tf.io.gfile.listdir(export_base):
            _remove_tree(export_base)  # a failed first export leaves no empty base behind
        raise
    return export_dir


def _publish(staging: str, export_dir: str) -> None:
    """Moves the finished version into place: on a local disk by one atomic rename; on
    other file systems (gs://, s3://), where renaming a directory copies its objects one
    by one anyway, file by file with saved_model.pb last, so that a server polling the
    base finds no model to load before the rest is there."""
    if "://" not in staging:
        os.rename(staging, export_dir)
        return
    files = [os.path.join(directory, name)
             for directory, _, names in tf.io.gfile.walk(staging) for name in names]
    for path in sorted(files, key=lambda path: os.path.basename(path) == "saved_model.pb"):
        target = export_dir + path[len(staging):]
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.rename(path, target)
    _remove_tree(staging)


def _remove_tree(path: str) -> None:
    # On object stores a directory whose objects are gone may no longer exist.
    with contextlib.suppress(tf.errors.NotFoundError):
        tf.io.gfile.rmtree(path)


def _write(model, head, tokenizer, path: str, pair_inputs: bool,
           config: BertConfig | None) -> None:
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    for resource in head.resources():
        archive.track(resource)
    for name, value in head.export_options().items():
        dtype = tf.float32 if isinstance(value, float) else tf.int32
        archive.add_variable_collection(
            name, [tf.Variable(value, dtype=dtype, trainable=False, name=name)])
    text_spec = tf.TensorSpec([None], tf.string, name="text")
    if pair_inputs:
        def serve_text(text, text_pair):
            return head.text_outputs(list(check_text_pairs(text, text_pair)))
        text_signature = [text_spec, tf.TensorSpec([None], tf.string, name="text_pair")]
    else:
        def serve_text(text):
            return head.text_outputs([text])
        text_signature = [text_spec]

    def serve_tokenized(input_word_ids, input_mask, input_type_ids):
        features = {"input_word_ids": input_word_ids, "input_mask": input_mask,
                    "input_type_ids": input_type_ids}
        if config is not None:
            features = check_tokenized_inputs(features, config)
        return head.outputs(features)

    archive.add_endpoint("serving_default", serve_text, input_signature=text_signature)
    archive.add_endpoint("serving_tokenized", serve_tokenized, input_signature=[
        tf.TensorSpec([None, None], tf.int32, name=name) for name in INPUT_NAMES])
    archive.write_out(path, verbose=False)


def _warmup_requests(head, pair_inputs: bool, tokenizer) -> list[tuple[str, dict]]:
    # One row each: a server batching with any max_batch_size, even 1, replays them.
    texts = head.warmup_texts()
    requests = []
    for text, pair in zip(texts, reversed(texts)):
        text_inputs = {"text": [text], **({"text_pair": [pair]} if pair_inputs else {})}
        features = head.context.pack(
            [head.tokenize(tf.constant(t)) for t in text_inputs.values()])
        requests += [("serving_default", text_inputs),
                     ("serving_tokenized", {k: v.numpy() for k, v in features.items()})]
    return requests
