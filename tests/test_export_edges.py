"""Export heads at their edges: fill-mask padding rows, the exact fit of a bucket, a word at
the [SEP] slot, an answer exactly max_answer_length long, the null score over windows, the
warm-up requests, the op allowlist, and export options refused."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from test_finetune_export import tiny_encoder

from keras_bert_impl.data.squad import SquadExample, SquadExamples, context_words
from keras_bert_impl.data.squad_windows import squad_features
from keras_bert_impl.export import export_saved_model
from keras_bert_impl.export.warmup import WARMUP_FILE
from keras_bert_impl.metrics.squad_decoding import decode_answers
from keras_bert_impl.models.classifier import BertClassifier
from keras_bert_impl.models.pretrainer import BertPretrainer
from keras_bert_impl.models.span_labeler import BertSpanLabeler
from keras_bert_impl.models.token_classifier import BertTokenClassifier
from keras_bert_impl.text.tokenizer import BertTokenizer


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(0)


def _serve(path, **texts):
    signature = tf.saved_model.load(path).signatures["serving_default"]
    outputs = signature(**{name: tf.constant(value) for name, value in texts.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def test_fill_mask_rows_with_fewer_masks_are_padded_with_zero_scores(tmp_path, uncased_vocab):
    path = export_saved_model(BertPretrainer(tiny_encoder(30522)), str(tmp_path / "mlm"),
                              uncased_vocab, seq_length=16, top_k=2)
    served = _serve(path, text=["a [MASK] b [MASK]", "no mask here"])
    assert served["top_k_ids"].shape == (2, 2, 2)
    assert (served["top_k_scores"][0] > 0).all()
    assert (served["top_k_ids"][1] == -1).all() and (served["top_k_tokens"][1] == b"").all()
    assert (served["top_k_scores"][1] == 0).all()


def test_a_batch_that_fills_a_bucket_exactly_is_served_at_that_bucket(tmp_path, uncased_vocab):
    path = export_saved_model(tiny_encoder(30522), str(tmp_path / "enc"), uncased_vocab,
                              seq_length=32, seq_length_buckets=[16, 32])
    letters = list("abcdefghijklmno")
    fits = _serve(path, text=[" ".join(letters[:14])])  # 14 tokens + [CLS] + [SEP] = 16
    over = _serve(path, text=[" ".join(letters[:15])])
    assert fits["sequence_output"].shape[1] == 16
    assert over["sequence_output"].shape[1] == 32


def test_a_word_that_would_start_at_the_sep_slot_is_cut_as_the_ner_reader_cuts_it(
        tmp_path, cased_vocab):
    from keras_bert_impl.data.ner import TaggedSentences, ner_features
    from keras_bert_impl.text.preprocessor import BertPreprocessor

    tags = ["B-LOC", "O"]
    path = export_saved_model(BertTokenClassifier(tiny_encoder(28996), num_classes=2),
                              str(tmp_path / "ner"), cased_vocab, lower_case=False,
                              seq_length=16, labels=tags)
    words = list("abcdefghijklmno")  # 15 one-piece words; room for 14
    served = _serve(path, text=[" ".join(words)])
    tokenizer = BertTokenizer(cased_vocab, lower_case=False)
    _, _, positions = ner_features(TaggedSentences([words], [["O"] * 15], ["s"]), tokenizer,
                                   BertPreprocessor(tokenizer, 16))
    assert positions[0].tolist() == list(range(1, 15)) + [-1]
    assert served["tag_ids"][0].tolist()[:14] != [-1] * 14
    assert served["tag_ids"][0, 14] == -1 and served["tags"][0, 14] == b""


def test_an_answer_exactly_max_answer_length_tokens_long_is_served(tmp_path, uncased_vocab):
    tokenizer = BertTokenizer(uncased_vocab)
    model = BertSpanLabeler(tiny_encoder(30522))
    # "apple" carries the start direction and "banana" the end one, so the best span is
    # apple ... banana, four tokens.
    rng = np.random.default_rng(0)
    start_direction, end_direction = rng.normal(size=(2, 32)).astype("float32")
    end_direction -= start_direction * (end_direction @ start_direction) / (
        start_direction @ start_direction)
    table = model.encoder.get_embedding_table()
    ids = [[tokenizer.vocab.index("apple")], [tokenizer.vocab.index("banana")]]
    table.assign(tf.tensor_scatter_nd_update(table, ids, [20 * start_direction,
                                                          20 * end_direction]))
    model.head.output_weights.assign(np.stack([start_direction, end_direction]))
    question, context = "What?", "I like apple pie and banana bread."
    path = export_saved_model(model, str(tmp_path / "qa"), uncased_vocab, seq_length=32,
                              pair_inputs=True, max_answer_length=4)
    served = _serve(path, text=[question], text_pair=[context])

    examples = SquadExamples([SquadExample("q", question, context, context_words(context), [],
                                           -1, -1, True)])
    features = squad_features(examples, tokenizer, seq_length=32)
    outputs = model.predict(features.inputs, verbose=0)
    predictions, _ = decode_answers(examples, features, outputs["start_logits"],
                                    outputs["end_logits"], max_answer_length=4)
    assert predictions["q"] == "apple pie and banana"
    assert served["answer"][0].decode() == "apple pie and banana"


def test_the_warmup_requests_address_the_given_model_name(tmp_path, uncased_vocab):
    path = export_saved_model(tiny_encoder(30522), str(tmp_path / "enc"), uncased_vocab,
                              seq_length=16, model_name="encoder-v2")
    names = {prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
             .model_spec.name
             for record in tf.data.TFRecordDataset(os.path.join(path, WARMUP_FILE))
             .as_numpy_iterator()}
    assert names == {"encoder-v2"}


@pytest.mark.parametrize("options, words", [
    ({"seq_length_buckets": [8, 16]}, "must increase and end with seq_length=32"),
    ({"seq_length_buckets": [32, 16]}, "must increase"),
])
def test_buckets_must_increase_and_end_at_seq_length(tmp_path, uncased_vocab, options, words):
    with pytest.raises(ValueError, match=words):
        export_saved_model(tiny_encoder(30522), str(tmp_path / "enc"), uncased_vocab,
                           seq_length=32, **options)
    assert not (tmp_path / "enc").exists()


@pytest.mark.parametrize("labels, words", [
    (["negative", " positive"], "label #1 ' positive' must be non-empty without surrounding"),
    (["negative", "positive "], "label #1 'positive ' must be non-empty without surrounding"),
    (["negative"], "lists 1 labels but the classifier has num_classes=2"),
    (["a", "b", "c"], "lists 3 labels but the classifier has num_classes=2"),
])
def test_classifier_labels_must_be_one_clean_name_per_class(tmp_path, uncased_vocab, labels,
                                                           words):
    with pytest.raises(ValueError, match=words):
        export_saved_model(BertClassifier(tiny_encoder(30522), num_classes=2),
                           str(tmp_path / "clf"), uncased_vocab, seq_length=16, labels=labels)


def test_a_squad_v2_export_takes_the_smallest_cls_score_over_the_windows_as_null_score(
        tmp_path, uncased_vocab):
    tokenizer = BertTokenizer(uncased_vocab)
    model = BertSpanLabeler(tiny_encoder(30522))
    question = "Where?"
    context = " ".join(f"w{i}" for i in range(30)) + " the answer is paris ."
    options = {"doc_stride": 8, "max_query_length": 4}
    # A threshold this low answers "" always: the served score is then the null score.
    path = export_saved_model(model, str(tmp_path / "qa"), uncased_vocab, seq_length=32,
                              pair_inputs=True, version_2_with_negative=True,
                              null_score_diff_threshold=-1e9, **options)
    served = _serve(path, text=[question], text_pair=[context])
    examples = SquadExamples([SquadExample("q", question, context, context_words(context), [],
                                           -1, -1, True)])
    features = squad_features(examples, tokenizer, seq_length=32, **options)
    assert len(features.example_index) > 2, "the context must span several windows"
    outputs = model.predict(features.inputs, verbose=0)
    cls = outputs["start_logits"][:, 0] + outputs["end_logits"][:, 0]
    assert cls.max() - cls.min() > 1e-5  # the windows' [CLS] scores differ (by ~1e-4)
    assert served["answer"][0] == b"" and served["start_char"][0] == -1
    assert served["score"][0] == pytest.approx(cls.min(), abs=1e-6)


def test_xla_ops_are_not_among_the_ops_tf_serving_2_12_is_assumed_to_run():
    from keras_bert_impl.export.op_allowlist import tf_2_12_core_ops

    assert not [op for op in tf_2_12_core_ops() if op.startswith("Xla")]
