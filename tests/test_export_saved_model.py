"""`export_saved_model`: raw strings in, the Keras model's exact outputs out, for TF Serving.

The exports are reloaded in a fresh Python that imports only tensorflow and
tensorflow_text, after the vocabulary file they were built from is deleted.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from keras_bert_impl.config import BertConfig
from keras_bert_impl.export import (
    MIN_TF_SERVING_VERSION,
    UnsupportedOpsError,
    check_serving_ops,
    export_saved_model,
    saved_model_ops,
)
from keras_bert_impl.export.op_allowlist import TF_TEXT_2_12_OPS, tf_2_12_core_ops
from keras_bert_impl.export.warmup import WARMUP_FILE
from keras_bert_impl.models.classifier import BertClassifier
from keras_bert_impl.models.encoder import BertEncoder
from keras_bert_impl.models.pretrainer import BertPretrainer
from keras_bert_impl.models.span_labeler import BertSpanLabeler
from keras_bert_impl.models.token_classifier import BertTokenClassifier
from keras_bert_impl.serving import Client, ServingError, start_server
from keras_bert_impl.text.preprocessor import BertPreprocessor
from keras_bert_impl.text.tokenizer import BertTokenizer

SEQ_LENGTH = 32
LABELS = ["negative", "neutral", "positive"]
TEXTS = ["The quick brown fox jumps over the lazy dog.", "北京欢迎你，上海也欢迎你！",
         "Crème brûlée à la française, naïve café", "I love it 😀👍🏽 so much!!!",
         "A very long sentence " + "that keeps going " * 20]
PAIRS = ["Is it good?", "是的", "Ça va très bien", "🎉", "short"]
MLM_TEXTS = ["Paris is the [MASK] of France.", "北京是[MASK]国的首都。",
             "No mask here 😀", "[MASK] [MASK] café"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory, uncased_vocab):
    """A pair classifier with labels, a fill-mask pretrainer, a tagger and a bucketed QA model
    exported in-process, and a bucketed encoder exported by the `bert-export` command (in a
    subprocess, meanwhile)."""
    root = tmp_path_factory.mktemp("exports")
    vocab = str(root / "vocab.txt")
    shutil.copy(uncased_vocab, vocab)
    keras.utils.set_random_seed(7)
    encoder = BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=30522))
    encoder.save(str(root / "encoder.keras"))
    command = subprocess.Popen(
        [sys.executable, "-m", "keras_bert_impl.cli.export", f"--model={root / 'encoder.keras'}",
         f"--vocab_file={vocab}", f"--export_dir={root / 'encoder'}",
         f"--seq_length={SEQ_LENGTH}", "--seq_length_buckets=16,32"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    models = {"classifier": BertClassifier(encoder, num_classes=3),
              "mlm": BertPretrainer(encoder), "encoder": encoder}
    dirs = {
        "classifier": export_saved_model(models["classifier"], str(root / "classifier"), vocab,
                                         seq_length=SEQ_LENGTH, pair_inputs=True, labels=LABELS),
        "mlm": export_saved_model(models["mlm"], str(root / "mlm"), vocab,
                                  seq_length=SEQ_LENGTH, top_k=3),
        "tagger": export_saved_model(BertTokenClassifier(encoder, num_classes=3),
                                     str(root / "tagger"), vocab, seq_length=SEQ_LENGTH,
                                     labels=LABELS),
        "qa": export_saved_model(BertSpanLabeler(encoder), str(root / "qa"), vocab,
                                 seq_length=SEQ_LENGTH, seq_length_buckets=[16, SEQ_LENGTH],
                                 pair_inputs=True, doc_stride=8, n_best_size=3),
    }
    stdout, stderr = command.communicate(timeout=600)
    assert command.returncode == 0, stderr[-3000:]
    dirs["encoder"] = str(root / "encoder" / "1")
    assert f"Exported {dirs['encoder']}" in stdout
    tokenizer = BertTokenizer(vocab)
    os.remove(vocab)  # the exports must carry their own copy
    return {"root": root, "dirs": dirs, "models": models, "tokenizer": tokenizer}


RELOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
    assert not [m for m in sys.modules if m.startswith("keras_bert_impl")]
    with open(sys.argv[1]) as f:
        dirs, texts, pairs, mlm_texts, features, out = json.load(f)
    results = {}
    def run(name, signature, **inputs):
        for k, v in signature(**{n: tf.constant(x) for n, x in inputs.items()}).items():
            results[name + "/" + k] = v.numpy()
    clf = tf.saved_model.load(dirs["classifier"]).signatures
    run("classifier", clf["serving_default"], text=texts, text_pair=pairs)
    run("classifier_ids", clf["serving_tokenized"], **features["classifier"])
    run("mlm", tf.saved_model.load(dirs["mlm"]).signatures["serving_default"], text=mlm_texts)
    run("tagger", tf.saved_model.load(dirs["tagger"]).signatures["serving_default"], text=texts)
    qa = tf.saved_model.load(dirs["qa"]).signatures["serving_default"]
    run("qa", qa, text=pairs, text_pair=texts)
    run("qa_short", qa, text=pairs[:2], text_pair=texts[:2])
    enc = tf.saved_model.load(dirs["encoder"]).signatures
    run("encoder", enc["serving_default"], text=texts)
    run("encoder_ids", enc["serving_tokenized"], **features["encoder"])
    run("encoder_short", enc["serving_default"], text=texts[:2])
    run("encoder_short_ids", enc["serving_tokenized"], **features["encoder_short"])
    np.savez(out, **results)
""")


def _features(exports, texts, pairs=None, seq_length=SEQ_LENGTH):
    preprocessor = BertPreprocessor(exports["tokenizer"], seq_length)
    return preprocessor(tf.constant(texts) if pairs is None
                        else (tf.constant(texts), tf.constant(pairs)))


def _reload_in(python: str, exports, name: str) -> dict[str, np.ndarray]:
    """Outputs of the exports computed by RELOAD_SCRIPT in a fresh `python`."""
    root = exports["root"]
    features = {"classifier": _features(exports, TEXTS, PAIRS),
                "encoder": _features(exports, TEXTS),
                "encoder_short": _features(exports, TEXTS[:2], seq_length=16)}
    features = {kind: {k: v.numpy().tolist() for k, v in f.items()} for kind, f in features.items()}
    request = root / f"{name}_request.json"
    request.write_text(json.dumps([{k: str(v) for k, v in exports["dirs"].items()}, TEXTS,
                                   PAIRS, MLM_TEXTS, features, str(root / f"{name}.npz")]))
    env = {**os.environ, "PYTHONPATH": ""}
    result = subprocess.run([python, "-c", RELOAD_SCRIPT, str(request)],
                            capture_output=True, text=True, env=env, cwd=str(root), timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(root / f"{name}.npz", allow_pickle=True))


@pytest.fixture(scope="module")
def reloaded(exports):
    """Outputs of the exports computed by a fresh Python without this package."""
    return _reload_in(sys.executable, exports, "reloaded")


def test_exports_give_the_same_outputs_under_tensorflow_2_12(exports, reloaded, tf_2_12_python):
    """The op allowlist checks op names; this runs the kernels of TensorFlow 2.12."""
    under_2_12 = _reload_in(tf_2_12_python, exports, "tf_2_12")
    assert set(under_2_12) == set(reloaded)
    for name, expected in reloaded.items():
        if expected.dtype.kind in "fc":
            assert_same_as_keras(under_2_12[name], expected)
        else:
            np.testing.assert_array_equal(under_2_12[name], expected, err_msg=name)


def assert_same_as_keras(served, keras_output):
    """Graph-mode kernels may round differently from eager Keras in the last bit."""
    np.testing.assert_allclose(served, keras_output, rtol=1e-5, atol=1e-6)


def test_classifier_export_gives_the_keras_outputs_for_text_pairs(exports, reloaded):
    # The embedded preprocessing produces exactly the training preprocessor's ids:
    # raw strings in give bit-identical outputs to those ids fed to serving_tokenized.
    for output in ("logits", "probabilities", "label"):
        np.testing.assert_array_equal(reloaded[f"classifier/{output}"],
                                      reloaded[f"classifier_ids/{output}"])
    logits = exports["models"]["classifier"](_features(exports, TEXTS, PAIRS)).numpy()
    assert_same_as_keras(reloaded["classifier/logits"], logits)
    assert_same_as_keras(reloaded["classifier/probabilities"], tf.nn.softmax(logits).numpy())
    assert [b.decode() for b in reloaded["classifier/label"]] == \
        [LABELS[i] for i in logits.argmax(-1)]


def test_masked_lm_export_fills_each_literal_mask(exports, reloaded):
    tokenizer, pretrainer = exports["tokenizer"], exports["models"]["mlm"]
    # "[MASK]" written in the text is the mask token, not "[", "mask", "]".
    pieces = ["paris is the", "of france."]
    ids = tokenizer.tokenize(tf.constant(pieces)).to_list()
    expected_ids = ids[0] + [tokenizer.mask_id] + ids[1]
    features = BertPreprocessor(tokenizer, SEQ_LENGTH).pack([tf.ragged.constant([expected_ids])])
    position = expected_ids.index(tokenizer.mask_id) + 1  # after [CLS]
    logits = pretrainer({**features, "masked_lm_positions": tf.constant([[position]])})
    probabilities = tf.nn.softmax(logits["mlm_logits"][0, 0]).numpy()
    top = np.argsort(-probabilities)[:3]
    np.testing.assert_array_equal(reloaded["mlm/top_k_ids"][0, 0], top)
    assert_same_as_keras(reloaded["mlm/top_k_scores"][0, 0], probabilities[top])
    assert [t.decode() for t in reloaded["mlm/top_k_tokens"][0, 0]] == \
        [tokenizer.vocab[i] for i in top]
    # Rows hold as many mask slots as the row with most masks; the rest is padding.
    assert reloaded["mlm/top_k_ids"].shape == (4, 2, 3)
    assert (reloaded["mlm/top_k_ids"][2] == -1).all()
    assert (reloaded["mlm/top_k_tokens"][0, 1] == b"").all()
    assert (reloaded["mlm/top_k_ids"][3] >= 0).all()


def test_masked_lm_export_ignores_a_mask_id_in_padding(exports):
    mask_id = exports["tokenizer"].mask_id
    signature = tf.saved_model.load(exports["dirs"]["mlm"]).signatures["serving_tokenized"]
    ids = np.zeros((1, SEQ_LENGTH), np.int32)
    ids[0, :4] = [101, mask_id, 102, mask_id]  # the second [MASK] lies in the padding
    mask = (np.arange(SEQ_LENGTH) < 3).astype(np.int32)[None]
    outputs = signature(input_word_ids=tf.constant(ids), input_mask=tf.constant(mask),
                        input_type_ids=tf.zeros_like(ids))
    assert outputs["top_k_ids"].shape == (1, 1, 3)
    assert (outputs["top_k_ids"].numpy() >= 0).all()


def test_encoder_export_pads_each_batch_to_its_bucket_only(exports, reloaded):
    encoder = exports["models"]["encoder"]
    for name, texts, length in (("encoder", TEXTS, SEQ_LENGTH), ("encoder_short", TEXTS[:2], 16)):
        assert reloaded[f"{name}/sequence_output"].shape == (len(texts), length, 128)
        expected = encoder(_features(exports, texts, seq_length=length))
        for output in ("pooled_output", "sequence_output"):
            np.testing.assert_array_equal(reloaded[f"{name}/{output}"],
                                          reloaded[f"{name}_ids/{output}"])
            assert_same_as_keras(reloaded[f"{name}/{output}"], expected[output].numpy())


def test_exports_use_only_ops_tf_serving_2_12_links(exports):
    assert MIN_TF_SERVING_VERSION == "2.12"
    for path in exports["dirs"].values():
        ops = saved_model_ops(path)
        text_ops = {op for op in ops if not hasattr(tf.raw_ops, op)}
        assert text_ops and text_ops <= TF_TEXT_2_12_OPS  # the tokenizer is in the graph
        assert not [op for op in ops if op.startswith("Xla")]
        check_serving_ops(path)


def test_a_graph_with_round_robin_trim_is_refused(tmp_path):
    class Packer(tf.Module):
        @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)] * 2)
        def trim(self, a, b):
            first, second = tf_text.RoundRobinTrimmer(max_seq_length=4).trim([a, b])
            return first.flat_values, second.flat_values

    tf.saved_model.save(Packer(), str(tmp_path))
    with pytest.raises(UnsupportedOpsError, match="RoundRobinTrim.*Op type not registered"):
        check_serving_ops(str(tmp_path))


def test_a_core_op_newer_than_tensorflow_2_12_is_refused(tmp_path):
    """The check uses TensorFlow 2.12's op list, not the installed TensorFlow's."""
    class Segments(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32),
                                      tf.TensorSpec([None], tf.int32)])
        def segment_max(self, values, ids):
            return tf.raw_ops.SegmentMaxV2(data=values, segment_ids=ids, num_segments=3)

    tf.saved_model.save(Segments(), str(tmp_path))
    assert "SegmentMaxV2" in saved_model_ops(str(tmp_path))  # TF 2.21 runs it
    with pytest.raises(UnsupportedOpsError, match="SegmentMaxV2"):
        check_serving_ops(str(tmp_path))
    core = tf_2_12_core_ops()
    assert {"MatMul", "StatefulPartitionedCall", "VarHandleOp", "StringSplitV2"} <= core
    assert not {"SegmentMaxV2", "RaggedFillEmptyRows", "XlaDot"} & core


def test_export_command_numbers_versions_after_the_newest(tmp_path):
    from keras_bert_impl.cli.export import next_version
    assert next_version(str(tmp_path / "missing")) == 1
    # Only ASCII digits name a version: "²" and "٣" pass str.isdigit().
    for name in ("1", "7", ".7-incomplete-x", "notes", "²", "٣٣"):
        (tmp_path / name).mkdir()
    assert next_version(str(tmp_path)) == 8


def test_export_refuses_to_overwrite_a_version(exports):
    with pytest.raises(FileExistsError,
                       match=r"already exists.*overwrite=True \(bert-export: --overwrite\)"):
        export_saved_model(exports["models"]["encoder"], str(exports["root"] / "encoder"),
                           vocab_file="unused.txt", version=1)
    leftovers = [n for n in os.listdir(exports["root"] / "encoder") if n != "1"]
    assert leftovers == []


def test_export_rejects_a_vocabulary_of_the_wrong_size(exports, cased_vocab, tmp_path):
    with pytest.raises(ValueError, match="28996 tokens but the model's vocab_size is 30522"):
        export_saved_model(exports["models"]["encoder"], str(tmp_path), vocab_file=cased_vocab,
                           lower_case=False)


def test_a_labels_file_saved_with_windows_line_ends_is_named_as_such(exports, uncased_vocab,
                                                                      tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_bytes("正面\r\n负面\r\n中性\r\n".encode())
    with pytest.raises(ValueError, match="labels.txt:1: the labels file has Windows line ends"):
        export_saved_model(exports["models"]["classifier"], str(tmp_path / "out"),
                           vocab_file=uncased_vocab, seq_length=SEQ_LENGTH,
                           pair_inputs=True, labels=str(labels))


def test_export_rejects_a_model_without_a_serving_head(uncased_vocab, tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="no serving head.*BertClassifier"):
        export_saved_model(model, str(tmp_path), vocab_file=uncased_vocab)


@pytest.fixture(scope="module")
def served(exports):
    server = start_server(str(exports["dirs"]["classifier"]).rsplit(os.sep, 1)[0],
                          model_name="bert", rest_api_port=0, file_system_poll_wait_seconds=0)
    yield server
    server.stop()


def test_served_classifier_answers_multilingual_pairs_over_grpc(exports, reloaded, served):
    client = Client(f"127.0.0.1:{served.port}")
    outputs = client.predict(TEXTS, PAIRS)
    np.testing.assert_array_equal(outputs["logits"], reloaded["classifier/logits"])
    assert outputs["label"].tolist() == [b.decode() for b in reloaded["classifier/label"]]
    signatures = client.metadata()
    assert set(signatures) == {"serving_default", "serving_tokenized"}
    assert signatures["serving_default"]["inputs"] == {
        "text": {"dtype": "string", "shape": [-1]},
        "text_pair": {"dtype": "string", "shape": [-1]}}
    with pytest.raises(ServingError) as raised:
        client.predict(TEXTS)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Missing but required: {text_pair}" in str(raised.value)


def test_served_classifier_over_rest_matches_grpc(reloaded, served):
    import urllib.request
    body = json.dumps({"instances": [{"text": t, "text_pair": p} for t, p in zip(TEXTS, PAIRS)]})
    url = f"http://127.0.0.1:{served.rest_api_port}/v1/models/bert:predict"
    with urllib.request.urlopen(urllib.request.Request(url, data=body.encode())) as reply:
        predictions = json.loads(reply.read())["predictions"]
    np.testing.assert_array_equal(np.array([p["logits"] for p in predictions], np.float32),
                                  reloaded["classifier/logits"])
    assert [p["label"] for p in predictions] == [b.decode() for b in reloaded["classifier/label"]]


def test_served_tokenized_signature_takes_the_three_int32_inputs(exports, served):
    client = Client(f"127.0.0.1:{served.port}")
    assert sorted(client.metadata()["serving_tokenized"]["inputs"]) == [
        "input_mask", "input_type_ids", "input_word_ids"]
    features = _features(exports, TEXTS, PAIRS)
    got = client.predict_tensors({k: v.numpy() for k, v in features.items()},
                                 signature_name="serving_tokenized")
    assert_same_as_keras(got["logits"], exports["models"]["classifier"](features).numpy())


def _warmup_requests(export_dir):
    path = os.path.join(export_dir, WARMUP_FILE)
    return [prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator()]


def test_warmup_requests_are_one_row_prediction_logs_of_both_signatures(exports, served):
    requests = _warmup_requests(exports["dirs"]["classifier"])
    assert {r.model_spec.signature_name for r in requests} == {"serving_default",
                                                               "serving_tokenized"}
    for request in requests:
        assert {tensor.tensor_shape.dim[0].size for tensor in request.inputs.values()} == {1}
    assert served.manager.servable("bert").warm_up() == len(requests)


def test_an_export_loads_under_batching_of_one_row_at_a_time(exports):
    from keras_bert_impl.serving.batching_parameters import BatchingOptions
    base = os.path.dirname(exports["dirs"]["classifier"])
    with start_server(base, model_name="bert", enable_batching=True,
                      batching=BatchingOptions(max_batch_size=1),
                      file_system_poll_wait_seconds=0) as server:
        client = Client(f"127.0.0.1:{server.port}", "bert")
        assert client.status()[0]["state"] == "AVAILABLE"
        assert client.predict(TEXTS[:1], PAIRS[:1])["logits"].shape[0] == 1


def test_warmup_runs_at_load_unless_disabled_as_enable_model_warmup_false(exports):
    base = os.path.dirname(exports["dirs"]["classifier"])
    records = len(_warmup_requests(exports["dirs"]["classifier"]))
    for warm_up, calls in ((True, records), (False, 0)):
        with start_server(base, model_name="bert", file_system_poll_wait_seconds=0,
                          enable_model_warmup=warm_up) as handle:
            assert handle.model_calls("bert") == calls


def test_batched_requests_of_mixed_lengths_give_the_unbatched_outputs(exports):
    # The bucketed encoder pads each merged batch to the bucket of its longest
    # text; rows of shorter texts must not change (padding is masked out).
    from keras_bert_impl.serving.batching_parameters import BatchingOptions
    export_dir = exports["dirs"]["encoder"]
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    texts = [TEXTS[i % 2] if i % 3 else TEXTS[4] for i in range(6)]
    options = BatchingOptions(max_batch_size=8, batch_timeout_micros=300_000)
    results, barrier = [None] * len(texts), threading.Barrier(len(texts))
    with start_server(os.path.dirname(export_dir), enable_batching=True, batching=options,
                      file_system_poll_wait_seconds=0) as server:
        calls_before = server.model_calls()

        def request(index):
            client = Client(f"127.0.0.1:{server.port}")
            barrier.wait()
            results[index] = client.predict([texts[index]])

        threads = [threading.Thread(target=request, args=(i,)) for i in range(len(texts))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert server.model_calls() - calls_before < len(texts)
    for text, batched in zip(texts, results):
        alone = signature(text=tf.constant([text]))
        length = alone["sequence_output"].shape[1]
        assert batched["sequence_output"].shape[1] >= length
        assert_same_as_keras(batched["pooled_output"], alone["pooled_output"].numpy())
        assert_same_as_keras(batched["sequence_output"][:, :length],
                             alone["sequence_output"].numpy())


@pytest.fixture(scope="module")
def xla_export(exports):
    """The pair classifier exported with `jit_compile=True`."""
    vocab = str(exports["root"] / "xla_vocab.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in exports["tokenizer"].vocab))
    return export_saved_model(exports["models"]["classifier"], str(exports["root"] / "xla"),
                              vocab, seq_length=SEQ_LENGTH, pair_inputs=True, labels=LABELS,
                              jit_compile=True)


def test_jit_compiled_export_compiles_only_the_model_and_gives_the_same_numbers(
        xla_export, reloaded):
    export_dir = xla_export
    check_serving_ops(export_dir)
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    compiled = [function for function in saved_model.meta_graphs[0].graph_def.library.function
                if function.attr["_XlaMustCompile"].b]
    assert compiled, "the model call is marked for XLA"
    assert not {node.op for function in compiled for node in function.node_def} & TF_TEXT_2_12_OPS
    outputs = tf.saved_model.load(export_dir).signatures["serving_default"](
        text=tf.constant(TEXTS), text_pair=tf.constant(PAIRS))
    # XLA fuses and reorders float operations, so equal within float32 rounding.
    np.testing.assert_allclose(outputs["logits"].numpy(), reloaded["classifier/logits"],
                               rtol=1e-4, atol=1e-5)
    assert outputs["label"].numpy().tolist() == reloaded["classifier/label"].tolist()


_GOOD_IDS = {"input_word_ids": [[101, 7592, 102, 0]], "input_mask": [[1, 1, 1, 0]],
             "input_type_ids": [[0, 0, 0, 0]]}


@pytest.mark.parametrize("kind", ["graph", "xla"])
@pytest.mark.parametrize("bad, error", [
    ({"input_word_ids": [[101, 30522, 102, 0]]},
     r"input_word_ids must be token ids in \[0, 30522\).*from 0 to 30522"),
    ({"input_word_ids": [[101, -1, 102, 0]]}, "input_word_ids must be .* from -1 to 102"),
    ({"input_type_ids": [[0, 2, 0, 0]]}, r"input_type_ids must be segment ids in \[0, 2\)"),
    ({"input_mask": [[1, 2, 1, 0]]}, "input_mask must be 1 .* or 0"),
    ({"input_mask": [[1, 1, 1]]}, r"input_mask has shape \[1 3\] but input_word_ids has \[1 4\]"),
    ({name: [[]] for name in _GOOD_IDS}, "sequence length .* must be 1 to .*, got 0"),
    ({name: [[0] * 513] for name in _GOOD_IDS}, "max_position_embeddings=512, got 513"),
])
def test_tokenized_ids_outside_the_model_tables_are_refused_even_under_xla(
        exports, xla_export, kind, bad, error):
    """XLA clamps an out-of-range lookup instead of failing: without the checks these
    requests would get silently wrong answers from the XLA export."""
    export_dir = exports["dirs"]["classifier"] if kind == "graph" else xla_export
    signature = tf.saved_model.load(export_dir).signatures["serving_tokenized"]
    good = {name: tf.constant(value, tf.int32) for name, value in _GOOD_IDS.items()}
    assert signature(**good)["logits"].shape == [1, 3]
    inputs = {**good, **{name: tf.constant(value, tf.int32, shape=np.shape(value))
                         for name, value in bad.items()}}
    with pytest.raises(tf.errors.InvalidArgumentError, match=error):
        signature(**inputs)


def test_server_answers_bad_token_ids_with_invalid_argument_and_keeps_serving(served):
    client = Client(f"127.0.0.1:{served.port}", signature_name="serving_tokenized")
    good = {name: np.array(value, np.int32) for name, value in _GOOD_IDS.items()}
    with pytest.raises(ServingError) as raised:
        client.predict_tensors({**good, "input_word_ids": np.array([[101, 99999, 102, 0]],
                                                                   np.int32)})
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "input_word_ids must be token ids in [0, 30522)" in str(raised.value)
    assert "Detected at node" not in str(raised.value)
    assert client.predict_tensors(good)["logits"].shape == (1, 3)
