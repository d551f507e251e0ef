"""`bert-export` flags for XLA and for QA exports reach `export_saved_model`; misuse is refused."""

import inspect
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags
from tensorflow.core.protobuf import saved_model_pb2

from keras_bert_impl import BertPreprocessor, BertTokenizer
from keras_bert_impl.config import BertConfig
from keras_bert_impl.export import export_saved_model
from keras_bert_impl.models.classifier import BertClassifier
from keras_bert_impl.models.encoder import BertEncoder
from keras_bert_impl.models.span_labeler import BertSpanLabeler

QA_OPTIONS = {"doc_stride": 8, "max_query_length": 6, "max_answer_length": 3}


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """A tiny encoder and a span labeler on it, saved as .keras files."""
    root = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(3)
    encoder = BertEncoder(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=64))
    paths = {"encoder": str(root / "encoder.keras"), "qa": str(root / "qa.keras"),
             "classifier": str(root / "classifier.keras")}
    encoder.save(paths["encoder"])
    BertSpanLabeler(encoder).save(paths["qa"])
    BertClassifier(encoder, num_classes=2).save(paths["classifier"])
    return paths


def _xla_functions(export_dir):
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    return [function for function in saved_model.meta_graphs[0].graph_def.library.function
            if function.attr["_XlaMustCompile"].b]


def test_qa_export_command_keeps_its_window_options_and_compiles_the_model_with_xla(
        saved_models, uncased_vocab, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keras_bert_impl.cli.export", f"--model={saved_models['qa']}",
         f"--vocab_file={uncased_vocab}", f"--export_dir={tmp_path / 'qa'}", "--seq_length=32",
         "--pair_inputs", "--jit_compile",
         *(f"--{name}={value}" for name, value in QA_OPTIONS.items())],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    export_dir = str(tmp_path / "qa" / "1")
    assert f"Exported {export_dir}" in result.stdout

    assert _xla_functions(export_dir), "--jit_compile marks the model call for XLA"
    loaded = tf.saved_model.load(export_dir)
    assert {name: int(getattr(loaded, name)[0].numpy()) for name in QA_OPTIONS} == QA_OPTIONS
    context = " ".join(f"word{i} is number {i}." for i in range(40))  # many 8-token windows
    served = loaded.signatures["serving_default"](text=tf.constant(["Which word?"]),
                                                  text_pair=tf.constant([context]))
    start, end = int(served["start_char"][0]), int(served["end_char"][0])
    answer = served["answer"][0].numpy().decode()
    assert 0 <= start < end and context[start:end] == answer
    assert len(answer.split()) <= QA_OPTIONS["max_answer_length"]


def test_the_flags_default_to_the_library_defaults(bert_export):
    library = inspect.signature(export_saved_model).parameters
    for name in (*QA_OPTIONS, "jit_compile"):
        assert flags.FLAGS[name].default == library[name].default, name
    assert flags.FLAGS["jit_compile"].default is False
def test_qa_window_flags_for_a_model_that_is_not_a_span_labeler_are_refused(
        saved_models, bert_export):
    with pytest.raises(app.UsageError, match=r"\(--doc_stride, --max_answer_length\) apply "
                                             r"only to a BertSpanLabeler; .* is a BertEncoder"):
        bert_export(f"--model={saved_models['encoder']}", "--doc_stride=8",
                    "--max_answer_length=3")
    assert not os.path.exists(flags.FLAGS.export_dir), "nothing is written"


def test_top_k_for_a_model_without_a_masked_lm_head_is_refused(saved_models, bert_export):
    with pytest.raises(app.UsageError, match=r"--top_k applies only to a masked-LM export "
                                             r"\(a BertPretrainer\); .* is a BertClassifier"):
        bert_export(f"--model={saved_models['classifier']}", "--top_k=3")
    assert not os.path.exists(flags.FLAGS.export_dir), "nothing is written"


def test_a_missing_or_damaged_keras_file_is_named_as_such(saved_models, bert_export, tmp_path):
    with pytest.raises(app.UsageError, match=r"--model=.*absent.keras: no such file"):
        bert_export(f"--model={tmp_path / 'absent.keras'}")
    truncated = tmp_path / "truncated.keras"
    with open(saved_models["encoder"], "rb") as f:
        truncated.write_bytes(f.read()[:1000])
    with pytest.raises(app.UsageError, match=r"truncated.keras: not a .keras archive \(a zip "
                       r"file\); the file is damaged, truncated or of another format"):
        bert_export(f"--model={truncated}")


def test_a_keras_file_with_damaged_contents_is_named(saved_models, bert_export, tmp_path):
    import zipfile

    damaged = tmp_path / "damaged.keras"
    with zipfile.ZipFile(saved_models["encoder"]) as source, \
            zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, b"{not json" if item.filename == "config.json" else data)
    with pytest.raises(app.UsageError, match=r"--model=.*damaged.keras: cannot be loaded as a "
                                             r"Keras model"):
        bert_export(f"--model={damaged}")


def test_labels_for_a_model_without_a_label_output_are_refused(
        saved_models, bert_export, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("negative\npositive\n")
    with pytest.raises(ValueError, match="a BertEncoder export has no output to name with them"):
        bert_export(f"--model={saved_models['encoder']}", f"--labels_file={labels}")
    assert not (tmp_path / "export").exists()  # a failed first export leaves no empty base
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"a_file is a file; give a directory"):
        export_saved_model(keras.saving.load_model(saved_models["encoder"]), str(a_file),
                           vocab_file=flags.FLAGS.vocab_file, seq_length=32)


@pytest.mark.parametrize("recorded, working_directory", [
    ("labels.txt", "elsewhere"),  # as bert-finetune writes it: relative to the options file
    ("run/labels.txt", "."),  # as it wrote it before: from the training's working directory
])
def test_the_labels_recorded_beside_a_fine_tuned_model_are_found(
        saved_models, bert_export, tmp_path, monkeypatch, recorded, working_directory):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    shutil.copy(saved_models["classifier"], model_dir / "model.keras")
    (model_dir / "labels.txt").write_text("negative\npositive\n")
    (model_dir / "export_options.json").write_text(json.dumps({
        "lower_case": True, "seq_length": 32, "pair_inputs": False,
        "labels_file": recorded}))
    (tmp_path / working_directory).mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path / working_directory)
    bert_export(f"--model={model_dir / 'model.keras'}")
    served = tf.saved_model.load(str(tmp_path / "export" / "1")).signatures["serving_default"](
        text=tf.constant(["a movie"]))
    labels = ["negative", "positive"]  # the recorded labels file's, in its order
    assert served["label"][0].numpy().decode() == labels[int(np.argmax(served["logits"][0]))]


def test_a_sequence_length_beyond_the_position_table_is_refused_before_writing(
        saved_models, bert_export, tmp_path):
    with pytest.raises(ValueError, match=r"seq_length=65 must be 1 to the model's "
                                         r"max_position_embeddings=64"):
        bert_export(f"--model={saved_models['encoder']}", "--seq_length=65")
    assert not (tmp_path / "export").exists()


def test_an_export_to_another_tensorflow_file_system_is_written_there(
        saved_models, uncased_vocab, tmp_path, monkeypatch):
    # gs:// from Colab or a TPU VM: os.makedirs("gs://b/x") made a local "gs:" directory.
    # A file:// URL takes the same path through TensorFlow's file systems.
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    base = f"file://{tmp_path}/exports/bert"
    encoder = keras.saving.load_model(saved_models["encoder"])
    path = export_saved_model(encoder, base, vocab_file=uncased_vocab, seq_length=16)
    assert path == f"{base}/1"
    assert os.listdir(tmp_path / "exports" / "bert") == ["1"]  # no staging left behind
    assert (tmp_path / "exports/bert/1/assets.extra/tf_serving_warmup_requests").is_file()
    assert os.listdir(tmp_path / "cwd") == []
    outputs = tf.saved_model.load(path).signatures["serving_default"](
        text=tf.constant(["hello world"]))
    features = BertPreprocessor(BertTokenizer(uncased_vocab), 16)(tf.constant(["hello world"]))
    expected = encoder(features)["pooled_output"]
    np.testing.assert_allclose(outputs["pooled_output"], expected, atol=1e-5)


def test_a_span_labeler_export_without_pair_inputs_is_refused(saved_models, bert_export):
    with pytest.raises(app.UsageError, match="BertSpanLabeler is exported with --pair_inputs"):
        bert_export(f"--model={saved_models['qa']}")


@pytest.mark.parametrize("name", sorted(QA_OPTIONS))
def test_a_qa_window_option_below_one_is_refused_at_start_up(bert_export, name):
    with pytest.raises(flags.IllegalFlagValueError, match=name):
        bert_export("--model=unused.keras", f"--{name}=0")


def test_a_model_from_bert_finetune_is_exported_with_the_settings_it_was_trained_with(
        saved_models, bert_export, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model = model_dir / "model.keras"
    shutil.copy(saved_models["qa"], model)
    (model_dir / "export_options.json").write_text(json.dumps({
        "pair_inputs": True, "lower_case": True, "seq_length": 48, **QA_OPTIONS,
        "n_best_size": 5, "version_2_with_negative": True, "null_score_diff_threshold": 1.5}))
    bert_export(f"--model={model}", "--doc_stride=4")  # and --seq_length=32, given
    loaded = tf.saved_model.load(str(tmp_path / "export" / "1"))
    assert int(loaded.doc_stride[0]) == 4  # a flag given wins
    assert int(loaded.max_answer_length[0]) == QA_OPTIONS["max_answer_length"]
    assert int(loaded.n_best_size[0]) == 5 and int(loaded.version_2_with_negative[0]) == 1
    assert float(loaded.null_score_diff_threshold[0]) == 1.5
    served = loaded.signatures["serving_default"](
        text=tf.constant(["Which?"]), text_pair=tf.constant(["word " * 100]))
    assert served["start_logits"].shape[1] == 32


def test_a_fill_mask_export_of_a_checkpoint_without_masked_lm_head_points_to_the_encoder(
        bert_export, tmp_path):
    from keras_bert_impl.checkpoints.google import save_google_checkpoint

    encoder = BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=30522))
    checkpoint = save_google_checkpoint(encoder, tmp_path / "bert_model.ckpt")
    with pytest.raises(app.UsageError, match=r"has no masked-LM head \(it lacks cls/predictions/.*"
                       "export its encoder "
                       "with --model_kind=encoder"):
        bert_export(f"--init_checkpoint={checkpoint}", "--preset=bert_tiny",
                    "--model_kind=masked_lm")
    assert not (tmp_path / "export").exists()


def test_a_fill_mask_export_needs_no_next_sentence_head(bert_export, tmp_path):
    from keras_bert_impl.checkpoints.google import save_google_checkpoint
    from keras_bert_impl.models.pretrainer import BertPretrainer

    pretrainer = BertPretrainer(BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=30522)))
    full = tf.train.load_checkpoint(save_google_checkpoint(pretrainer, tmp_path / "full" / "ckpt"))
    names = [name for name in full.get_variable_to_shape_map()
             if not name.startswith("cls/seq_relationship/")]
    without_nsp = str(tmp_path / "bert_model.ckpt")
    tf.raw_ops.SaveV2(prefix=without_nsp, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[full.get_tensor(name) for name in names])
    bert_export(f"--init_checkpoint={without_nsp}", "--preset=bert_tiny", "--model_kind=masked_lm")
    assert os.path.isdir(tmp_path / "export" / "1")

