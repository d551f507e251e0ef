"""``pretraining_dataset``: raw text (or TFRecords) to MLM + NSP batches.

The pipeline, all TensorFlow ops except jieba for Chinese whole-word masking:

    files ─ shuffle, shard ─ parallel interleave ─ lines ─ documents
      ─ shuffle documents ─ tokenize (TF-Text WordPiece) ─ pair with the
      previous document ─ NSP instances (instances.py) ─ shuffle instances
      ─ batch (static shapes) ─ mask (masking.py) ─ prefetch

Every random choice is a stateless op fed by a seed drawn from
``tf.data.Dataset.random(seed)``, so a seed fixes the whole stream
(``tf.data`` keeps element order under parallel calls) for a given batch size
per input pipeline: masks are drawn per batch, so the same seed on another
number of replicas yields the same examples with other masks (TFRecords hold
their masks). Each pass over the
corpus draws new NSP pairs and new masks (dynamic masking), and so does each
new iteration of a finite dataset, e.g. each ``fit`` epoch.

Resuming: a dataset built with the same arguments and ``start_step=n`` yields
exactly the batches from the n-th on of the stream that ``start_step=0``
yields (the skipped batches are read and tokenized but not masked), which
costs time in proportion to n. With ``reseed_on_resume=True`` it is instead
a fresh stream whose seed mixes ``seed`` and n: a resume costs nothing, and
the run stays deterministic for the steps it restarted at, but it no longer
continues the interrupted order (documents read before the restart can come
again before the others do, as in a new pass). Without a seed the stream is
random either way and nothing is skipped. With the default
``num_epochs=None`` the stream is endless, so ``fit`` needs
``steps_per_epoch`` and keeps one iterator across epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import tensorflow as tf
from absl import logging

from keras_bert_impl.data import chinese_words, corpus, tfrecords
from keras_bert_impl.data.instances import create_instances
from keras_bert_impl.data.masking import mask_batch

if TYPE_CHECKING:
    from keras_bert_impl.text.tokenizer import BertTokenizer

# Documents tokenized per call (amortizes the TF-Text op overhead).
TOKENIZE_BATCH_SIZE = 64
FEATURE_NAMES = ("input_word_ids", "input_mask", "input_type_ids", "masked_lm_positions",
                 "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")


def pretraining_dataset(text_files: str | Sequence[str] | None,
                        tokenizer: BertTokenizer,
                        seq_length: int = 128,
                        max_predictions_per_seq: int = 20,
                        batch_size: int = 32,
                        masked_lm_prob: float = 0.15,
                        short_seq_prob: float = 0.1,
                        whole_word_masking: bool = False,
                        seed: int | None = None,
                        input_context: tf.distribute.InputContext | None = None,
                        *,
                        num_epochs: int | None = None,
                        start_step: int = 0,
                        reseed_on_resume: bool = False,
                        drop_remainder: bool = True,
                        input_format: str = "auto",
                        tfds_name: str | None = None,
                        tfds_text_key: str = "text",
                        tfds_split: str = "train",
                        tfds_data_dir: str | None = None,
                        document_shuffle_buffer: int = 1000,
                        instance_shuffle_buffer: int = 1000,
                        max_document_sentences: int = corpus.DEFAULT_MAX_DOCUMENT_SENTENCES,
                        num_parallel_calls: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
    """Batches of BERT pretraining features, one dict per batch.

    Features: ``input_word_ids``, ``input_mask``, ``input_type_ids`` (int32
    [batch, seq_length]), ``masked_lm_positions``, ``masked_lm_ids`` (int32
    [batch, max_predictions_per_seq]), ``masked_lm_weights`` (float32, same
    shape) and ``next_sentence_labels`` (int32 [batch]; 0 = B is the actual
    next text, 1 = B is random).

    Args:
      text_files: comma-separated glob patterns or a list of them. Raw text in
        the original format (plain or ``.gz``), or TFRecords (files ending in
        ``.tfrecord``/``.tfrecords``/``.record``, or ``input_format="tfrecord"``)
        written by ``bert-create-pretraining-data`` or the original
        ``create_pretraining_data.py``; those carry their own masks and are
        checked against ``seq_length``, ``max_predictions_per_seq`` and the
        tokenizer's vocabulary. None when ``tfds_name`` is given.
      tokenizer: a ``BertTokenizer``; its vocabulary needs ``[MASK]``.
      seq_length: tokens per instance, [CLS] and [SEP]s included.
      max_predictions_per_seq: masked positions per instance (the padded
        width of the ``masked_lm_*`` features).
      batch_size: the global batch size; with ``input_context`` each pipeline
        batches ``input_context.get_per_replica_batch_size(batch_size)``.
      masked_lm_prob: share of an instance's tokens to mask (rounded, at least
        one, at most ``max_predictions_per_seq``), as the original.
      short_seq_prob: share of instances built to a random shorter length, as
        the original (so fine-tuning on short texts meets familiar lengths).
      whole_word_masking: mask all wordpieces of a word together (Chinese
        words found by jieba, see ``chinese_words``).
      seed: fixes the stream, together with TensorFlow's global seed (tf.data
        mixes an op seed with it; ``bert-pretrain`` sets both from ``--seed``,
        e.g. by ``keras.utils.set_random_seed``); None draws a fresh one.
      input_context: from ``strategy.distribute_datasets_from_function``;
        each input pipeline reads disjoint documents.
      num_epochs: passes over the corpus (None: endless).
      start_step: number of this pipeline's batches to skip, to resume a run
        deterministically. Each training step reads ``num_replicas_in_sync //
        num_input_pipelines`` batches of every pipeline, so a run resumed at
        step S passes S times that (``PretrainingRun`` does).
      reseed_on_resume: resume at ``start_step`` with a stream reseeded from it
        instead of skipping (see the module docstring).
      drop_remainder: keep True for static shapes (TPUs, XLA).
      input_format: ``"auto"`` (by file name or content), ``"text"`` or ``"tfrecord"``.
      tfds_name, tfds_text_key, tfds_split, tfds_data_dir: read a TFDS text
        dataset instead of files, one example per document.
      document_shuffle_buffer, instance_shuffle_buffer: sizes of the shuffle
        buffers over documents and over the instances made from them.
      max_document_sentences: longer documents are cut (bounded memory).
      num_parallel_calls: parallelism of the tokenizing and masking maps.

    Example:

    >>> ds = pretraining_dataset("corpus/*.txt", tokenizer, seq_length=128,
    ...                          batch_size=32, seed=1)
    >>> pretrainer.fit(ds, steps_per_epoch=1000, epochs=10)
    """
    _check_arguments(seq_length, max_predictions_per_seq, batch_size, masked_lm_prob,
                     short_seq_prob, start_step, max_document_sentences)
    if seed is None or reseed_on_resume:
        seed = corpus.resume_seed(seed, start_step)
        start_step = 0
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    pipeline_seed = corpus.pipeline_seed(
        seed, 0 if input_context is None else input_context.input_pipeline_id)

    if tfds_name is None:
        files = [f for f in corpus.expand_file_patterns(text_files)
                 if not tfrecords.is_side_file(f)]
        if is_tfrecord_input(files, input_format):
            return _marked_endless_if(num_epochs is None, tfrecords.tfrecord_dataset(
                files, seq_length=seq_length, max_predictions_per_seq=max_predictions_per_seq,
                batch_size=batch_size, vocab_sha256=getattr(tokenizer, "vocab_sha256", None),
                vocab_size=getattr(tokenizer, "vocab_size", None),
                seed=seed, input_context=input_context, num_epochs=num_epochs,
                start_step=start_step, drop_remainder=drop_remainder,
                shuffle_buffer=instance_shuffle_buffer, num_parallel_calls=num_parallel_calls))
        mask_id = _mask_id(tokenizer)
        documents = corpus.file_documents(
            files, max_document_sentences, input_context=input_context,
            num_epochs=num_epochs, seed=seed)
    else:
        mask_id = _mask_id(tokenizer)
        documents = corpus.tfds_documents(
            tfds_name, tfds_text_key, tfds_split, tfds_data_dir, max_document_sentences,
            input_context=input_context, num_epochs=num_epochs)

    documents = documents.shuffle(document_shuffle_buffer, seed=pipeline_seed,
                                  reshuffle_each_iteration=True)
    tokenize = _document_tokenizer(tokenizer, whole_word_masking)
    documents = (documents.ragged_batch(TOKENIZE_BATCH_SIZE)
                 .map(tokenize, num_parallel_calls=num_parallel_calls)
                 .unbatch())
    documents = documents.filter(lambda document: tf.size(document["sentence_lengths"]) > 0)

    pairs = tf.data.Dataset.zip(_pair_with_previous(documents), _seeds(pipeline_seed, 0))

    def instances(pair, seed_pair):
        document, other, has_other = pair
        features = create_instances(
            document, other, seed_pair, other_is_another_document=has_other,
            seq_length=seq_length,
            short_seq_prob=short_seq_prob, cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id)
        if not whole_word_masking:
            del features["word_starts"]
        return features

    examples = pairs.map(instances, num_parallel_calls=num_parallel_calls).unbatch()
    examples = examples.shuffle(instance_shuffle_buffer, seed=pipeline_seed,
                                reshuffle_each_iteration=True)
    batches = examples.batch(batch_size, drop_remainder=drop_remainder)
    batches = tf.data.Dataset.zip(batches, _seeds(pipeline_seed, 1)).skip(start_step)

    def mask(features, seed_pair):
        return mask_batch(features, seed_pair, masked_lm_prob=masked_lm_prob,
                          max_predictions_per_seq=max_predictions_per_seq,
                          vocab_size=tokenizer.vocab_size, mask_id=mask_id,
                          special_ids=(tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id),
                          whole_word_masking=whole_word_masking)

    batches = batches.map(mask, num_parallel_calls=num_parallel_calls)
    batches = batches.map(lambda features: {name: features[name] for name in FEATURE_NAMES})
    options = tf.data.Options()
    options.deterministic = seed is not None
    return _marked_endless_if(num_epochs is None,
                              batches.with_options(options).prefetch(tf.data.AUTOTUNE))


def _marked_endless_if(endless: bool, batches: tf.data.Dataset) -> tf.data.Dataset:
    """Declares an endless stream infinite. tf.data cannot infer it through the
    pipeline, so `ds.take(n)` would have unknown length and Keras' `evaluate`
    would warn "Your input ran out of data" when it ends."""
    if not endless:
        return batches
    return batches.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))


def _check_arguments(seq_length, max_predictions_per_seq, batch_size, masked_lm_prob,
                     short_seq_prob, start_step, max_document_sentences) -> None:
    if seq_length < 5:
        raise ValueError(f"seq_length must be at least 5 ([CLS] A [SEP] B [SEP] with two "
                         f"tokens of text), got {seq_length}")
    if max_predictions_per_seq < 1:
        raise ValueError(f"max_predictions_per_seq must be >= 1, got {max_predictions_per_seq}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 < masked_lm_prob <= 1.0:
        raise ValueError(f"masked_lm_prob must be in (0, 1], got {masked_lm_prob}")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise ValueError(f"short_seq_prob must be in [0, 1], got {short_seq_prob}")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    if max_document_sentences < 1:
        raise ValueError(f"max_document_sentences must be >= 1, got {max_document_sentences}")


def _mask_id(tokenizer) -> int:
    if tokenizer.mask_id is None:
        raise ValueError(
            f"vocabulary {tokenizer.vocab_file!r} has no [MASK] token; masked-LM "
            "pretraining needs one")
    return tokenizer.mask_id


def is_tfrecord_input(files: list[str], input_format: str = "auto") -> bool:
    """Whether `files` are pretraining TFRecords: by `input_format`, else by name or content."""
    if input_format not in ("auto", "text", "tfrecord"):
        raise ValueError(f"input_format must be 'auto', 'text' or 'tfrecord', got {input_format!r}")
    if input_format != "auto":
        return input_format == "tfrecord"
    files = [f for f in files if not tfrecords.is_side_file(f)]
    records = [f for f in files
               if tfrecords.looks_like_tfrecord(f) or tfrecords.starts_with_a_record(f)]
    if records and len(records) < len(files):
        text = [f for f in files if f not in records]
        raise ValueError(f"input files mix TFRecords ({records[0]!r}) and text ({text[0]!r}); "
                         "give one kind (or set input_format)")
    return bool(records)


def _seeds(seed: int | None, stream: int) -> tf.data.Dataset:
    """An endless stream of stateless seeds (int64 [2])."""
    stream_seed = None if seed is None else seed * 2 + stream
    return tf.data.Dataset.random(seed=stream_seed, rerandomize_each_iteration=True).batch(2)


def _document_tokenizer(tokenizer, whole_word_masking: bool):
    """A map function over a ragged batch of documents [docs, (lines)].

    Tokenizing many documents in one call amortizes the op overhead. Returns
    per document ``tokens`` and ``word_starts`` [docs, (tokens)] and the
    lengths of its non-empty sentences [docs, (sentences)].
    """
    use_jieba = whole_word_masking and chinese_words.jieba_available()
    if whole_word_masking and not use_jieba:
        logging.warning("jieba is not installed: whole-word masking masks Chinese text, if any, "
                        "character by character (as Google's original); for Chinese words "
                        "pip install 'keras_bert_impl[zh]'")

    def by_tokenizer_words(lines):
        if not whole_word_masking:
            tokens = tokenizer.tokenize(lines)
            return tokens, tf.ones_like(tokens.flat_values)
        words = tokenizer.tokenize_words(lines)
        first_piece = tf.ragged.range(words.values.row_lengths()).flat_values
        return words.merge_dims(1, 2), tf.cast(tf.equal(first_piece, 0), tf.int32)

    def tokenize(documents):
        lines = corpus.cut_unsplit_lines(documents.flat_values)
        if use_jieba:
            has_han = tf.reduce_any(tf.strings.regex_full_match(lines, chinese_words.HAN_PATTERN))
            tokens, word_starts = tf.cond(
                has_han,
                lambda: chinese_words.tokenize_with_jieba_words(lines, tokenizer),
                lambda: by_tokenizer_words(lines))
        else:
            tokens, word_starts = by_tokenizer_words(lines)
        tokens = tf.cast(tokens, tf.int32)
        word_starts = tokens.with_flat_values(tf.cast(word_starts, tf.int32))
        # Empty lines are dropped row by row: a ragged mask over [docs, lines, tokens]
        # would pad every line of the batch to the longest (GBs for one huge line).
        non_empty = tokens.row_lengths() > 0
        kept = tf.where(non_empty)[:, 0]
        per_document = tf.reduce_sum(tf.RaggedTensor.from_row_splits(
            tf.cast(non_empty, tf.int64), documents.row_splits), axis=1)
        sentences = tf.RaggedTensor.from_row_lengths(tf.gather(tokens, kept), per_document)
        starts = tf.RaggedTensor.from_row_lengths(tf.gather(word_starts, kept), per_document)
        return {"tokens": sentences.merge_dims(1, 2),
                "word_starts": starts.merge_dims(1, 2),
                "sentence_lengths": tf.cast(sentences.row_lengths(axis=2), tf.int32)}

    return tokenize


def _pair_with_previous(documents: tf.data.Dataset) -> tf.data.Dataset:
    """(document, other document, whether the other is another text) triples; the
    other is the most recent earlier document of another text (the document
    itself when there is none yet, at the start of a stream).

    A repeated stream of a small corpus often puts copies of one document next
    to each other (the shuffle buffer holds several epochs); pairing with the
    previous element would then take a "random" B from A's own document, as
    the original's retries for another document avoid. So the two most recent
    distinct documents are kept.
    """
    def has_text(document):
        return tf.size(document["sentence_lengths"]) > 0

    def same_text(a, b):
        return tf.logical_and(
            tf.equal(tf.size(a["tokens"]), tf.size(b["tokens"])),
            tf.reduce_all(tf.equal(a["tokens"][:tf.size(b["tokens"])],
                                   b["tokens"][:tf.size(a["tokens"])])))

    def pick(condition, a, b):
        return {key: tf.cond(condition, lambda key=key: a[key], lambda key=key: b[key])
                for key in a}

    def step(state, document):
        last, before_last = state
        repeated = tf.logical_and(has_text(last), same_text(last, document))
        use_last = tf.logical_and(has_text(last), tf.logical_not(repeated))
        other = pick(use_last, last, pick(has_text(before_last), before_last, document))
        has_other = tf.logical_or(use_last, has_text(before_last))
        return (document, pick(repeated, before_last, last)), (document, other, has_other)

    empty = {key: tf.zeros([0], tf.int32) for key in ("tokens", "word_starts", "sentence_lengths")}
    return documents.scan((empty, empty), step)
