"""Exports in another precision than the model's: bf16 matmuls inside, the same weights,
inputs and output dtypes outside, and the model left as it was."""

import json
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_bert_impl.config import BertConfig
from keras_bert_impl.export import export_saved_model, with_dtype_policy
from keras_bert_impl.models.classifier import BertClassifier
from keras_bert_impl.models.encoder import BertEncoder
from keras_bert_impl.models.pretrainer import BertPretrainer

SEQ_LENGTH = 32
TEXTS = ["The quick brown fox jumps over the lazy dog.", "北京欢迎你，上海也欢迎你！",
         "Crème brûlée à la française 😀"]
PAIRS = ["Is it good?", "是的", "Ça va très bien"]


def _config():
    return BertConfig.from_preset("bert_tiny", vocab_size=30522)


def matmuls(export_dir: str) -> dict[str, set[str]]:
    """dtype -> the names of the MatMul and BatchMatMulV2 nodes of that dtype in the
    SavedModel's functions (e.g. "bert_classifier_1/logits_1/Tensordot/MatMul")."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    found = {}
    for function in saved_model.meta_graphs[0].graph_def.library.function:
        for node in function.node_def:
            if node.op in ("MatMul", "BatchMatMulV2"):
                found.setdefault(tf.dtypes.as_dtype(node.attr["T"].type).name, set()).add(
                    node.name)
    return found


def matmul_dtypes(export_dir: str) -> set[str]:
    return set(matmuls(export_dir))


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(11)
    return BertClassifier(BertEncoder(_config()), num_classes=3)


@pytest.fixture(scope="module")
def exports(classifier, uncased_vocab, tmp_path_factory):
    """The float32 pair classifier exported as it is and with dtype_policy=mixed_bfloat16."""
    root = tmp_path_factory.mktemp("precision")
    return {policy: export_saved_model(classifier, str(root / str(policy)), uncased_vocab,
                                       seq_length=SEQ_LENGTH, pair_inputs=True,
                                       dtype_policy=policy)
            for policy in (None, "mixed_bfloat16")}


def _serve(export_dir, signature="serving_default", **inputs):
    outputs = tf.saved_model.load(export_dir).signatures[signature](
        **{name: tf.constant(value) for name, value in inputs.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def test_a_bfloat16_export_multiplies_in_bfloat16_but_for_the_float32_logits_head(exports):
    assert matmul_dtypes(exports[None]) == {"float32"}
    found = matmuls(exports["mixed_bfloat16"])
    assert len(found["bfloat16"]) > 10, "every encoder matmul: attention, dense, pooler"
    assert found["float32"] and all("/logits" in name for name in found["float32"])


def test_a_bfloat16_export_keeps_the_signatures_and_output_dtypes(exports):
    float32 = tf.saved_model.load(exports[None]).signatures
    bfloat16 = tf.saved_model.load(exports["mixed_bfloat16"]).signatures
    assert set(bfloat16) == set(float32)
    for name in float32:
        assert bfloat16[name].structured_input_signature == float32[name].structured_input_signature
        assert bfloat16[name].structured_outputs == float32[name].structured_outputs


def test_a_bfloat16_export_gives_the_float32_logits_within_bfloat16_rounding(exports):
    float32 = _serve(exports[None], text=TEXTS, text_pair=PAIRS)
    bfloat16 = _serve(exports["mixed_bfloat16"], text=TEXTS, text_pair=PAIRS)
    # bf16 keeps 8 significant bits: relative error ~2^-8 per operation.
    np.testing.assert_allclose(bfloat16["logits"], float32["logits"], atol=2e-2)
    np.testing.assert_allclose(bfloat16["probabilities"].sum(axis=1), 1.0, rtol=1e-6)
    assert not np.array_equal(bfloat16["logits"], float32["logits"])


LOGITS_SCRIPT = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
texts, pairs = json.loads(sys.argv[2])
signature = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
print(json.dumps(signature(text=tf.constant(texts), text_pair=tf.constant(pairs))["logits"]
                 .numpy().tolist()))
"""


def test_a_bfloat16_export_gives_the_same_logits_under_tensorflow_2_12(exports, tf_2_12_python):
    """TensorFlow Serving 2.12 has CPU kernels for every bf16 op the export uses."""
    result = subprocess.run(
        [tf_2_12_python, "-c", LOGITS_SCRIPT, exports["mixed_bfloat16"],
         json.dumps([TEXTS, PAIRS])],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    logits = np.array(json.loads(result.stdout.splitlines()[-1]))
    expected = _serve(exports["mixed_bfloat16"], text=TEXTS, text_pair=PAIRS)["logits"]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


def test_the_exported_model_is_left_in_its_own_precision(classifier, exports):
    assert classifier.dtype_policy.name == "float32"
    assert classifier.encoder.compute_dtype == "float32"
    features = {"input_word_ids": tf.constant([[101, 7592, 102]]),
                "input_mask": tf.constant([[1, 1, 1]]), "input_type_ids": tf.constant([[0, 0, 0]])}
    served = _serve(exports[None], "serving_tokenized", **features)
    np.testing.assert_allclose(classifier(features, training=False).numpy(), served["logits"],
                               rtol=1e-5, atol=1e-6)


def test_a_copy_in_another_precision_holds_the_same_weights(classifier):
    copy = with_dtype_policy(classifier, "mixed_bfloat16")
    assert copy.encoder.compute_dtype == "bfloat16"
    assert copy.head.compute_dtype == "float32", "the logits head stays pinned to float32"
    assert [w.path for w in copy.weights] == [w.path for w in classifier.weights]
    for ours, theirs in zip(copy.weights, classifier.weights):
        assert ours.dtype == theirs.dtype == "float32"
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert keras.config.dtype_policy().name == "float32", "the global policy is restored"


def test_a_model_built_in_bfloat16_can_be_exported_in_float32(uncased_vocab, tmp_path):
    keras.utils.set_random_seed(12)
    pretrainer = BertPretrainer(BertEncoder(_config(), dtype="mixed_bfloat16"))
    as_built = export_saved_model(pretrainer, str(tmp_path / "as_built"), uncased_vocab,
                                  seq_length=SEQ_LENGTH)
    float32 = export_saved_model(pretrainer, str(tmp_path / "float32"), uncased_vocab,
                                 seq_length=SEQ_LENGTH, dtype_policy="float32")
    assert matmul_dtypes(as_built) == {"bfloat16"}
    assert matmul_dtypes(float32) == {"float32"}
    texts = ["Paris is the [MASK] of France."]
    assert _serve(float32, text=texts)["top_k_scores"].dtype == np.float32


@pytest.mark.parametrize("policy", ["bfloat16", "float16", "int8", "mixed_bf16", ""])
def test_a_policy_that_would_change_the_weights_or_is_unknown_is_refused(classifier, policy,
                                                                         tmp_path):
    with pytest.raises(ValueError, match="dtype_policy must be one of .*mixed_bfloat16"):
        export_saved_model(classifier, str(tmp_path / "export"), "unused-vocab.txt",
                           dtype_policy=policy)
    assert not (tmp_path / "export").exists()


def test_a_model_without_a_bert_encoder_is_refused():
    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="has no BertEncoder to set a dtype_policy on"):
        with_dtype_policy(model, "mixed_bfloat16")


def test_the_export_command_serves_a_float32_model_in_bfloat16(bert_export, tmp_path):
    keras.utils.set_random_seed(13)
    BertEncoder(_config()).save(str(tmp_path / "encoder.keras"))
    export_dir = os.path.join(
        bert_export(f"--model={tmp_path / 'encoder.keras'}", "--mixed_precision=bf16"), "1")
    assert matmul_dtypes(export_dir) == {"bfloat16"}
    outputs = _serve(export_dir, text=TEXTS)
    assert outputs["pooled_output"].dtype == np.float32
    assert outputs["sequence_output"].shape == (3, SEQ_LENGTH, 128)
