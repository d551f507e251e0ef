"""`bert-finetune` end to end in subprocesses, on real labelled data from ../shared/data."""

import json
import os
import random
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from two_replicas import run_on_two_replicas


def finetune(*flags, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "keras_bert_impl.cli.finetune", *flags],
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if check and result.returncode != 0:
        raise AssertionError(f"bert-finetune failed:\n{result.stderr[-3000:]}")
    return result


def results(model_dir):
    with open(os.path.join(model_dir, "eval_results.json"), encoding="utf-8") as f:
        return json.load(f)


def small_config(tmp_path, vocab_size):
    """A one-layer, 64-wide BERT: learns the lexical cues of these sets in a few hundred steps."""
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps({"vocab_size": vocab_size, "hidden_size": 64,
                                "num_hidden_layers": 1, "num_attention_heads": 1,
                                "intermediate_size": 256}))
    return path


def sst2_split(shared_data, tmp_path, train_size=3000, eval_size=400):
    rows = (shared_data / "glue/SST-2/train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    rows = [row for row in rows if 3 <= len(row.split("\t")[0].split()) <= 20]
    random.Random(0).shuffle(rows)
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    train.write_text("sentence\tlabel\n" + "\n".join(rows[:train_size]) + "\n", encoding="utf-8")
    dev.write_text("sentence\tlabel\n" + "\n".join(rows[train_size:train_size + eval_size])
                   + "\n", encoding="utf-8")
    labels = [row.rsplit("\t", 1)[1] for row in rows[train_size:train_size + eval_size]]
    return str(train), str(dev), labels


def test_classify_learns_sst2_beyond_the_majority_class_and_exports(
        shared_data, uncased_vocab, tmp_path):
    train, dev, dev_labels = sst2_split(shared_data, tmp_path)
    model_dir, export_dir = tmp_path / "model", tmp_path / "export"
    config = small_config(tmp_path, vocab_size=30522)
    finetune("--task=classify", f"--train_file={train}", f"--eval_file={dev}",
             f"--vocab_file={uncased_vocab}", f"--bert_config={config}",
             f"--model_dir={model_dir}", "--seq_length=32", "--batch_size=32",
             "--num_train_steps=200", "--learning_rate=7e-4", "--save_checkpoints_steps=100",
             f"--export_dir={export_dir}")
    scores = results(model_dir)
    majority = max(dev_labels.count("0"), dev_labels.count("1")) / len(dev_labels)
    assert scores["accuracy"] > majority + 0.1, (scores, majority)
    assert 0.0 <= scores["f1"] <= 1.0 and scores["skipped_records"] == 0
    assert (model_dir / "labels.txt").read_text() == "0\n1\n"
    assert (export_dir / "1" / "saved_model.pb").exists()
    # How training read texts, for a later bert-export of model.keras.
    assert json.loads((model_dir / "export_options.json").read_text()) == {
        "lower_case": True, "seq_length": 32, "pair_inputs": False,
        "labels_file": "labels.txt"}
    assert any(name.startswith("events") for name in os.listdir(model_dir / "logs" / "train"))

    # The exported classifier answers raw strings through the server like the Keras model.
    from keras_bert_impl.serving import Client, start_server
    from keras_bert_impl.text.preprocessor import BertPreprocessor
    from keras_bert_impl.text.tokenizer import BertTokenizer

    texts = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate"]
    model = keras.saving.load_model(model_dir / "model.keras", compile=False)
    logits = model(BertPreprocessor(BertTokenizer(uncased_vocab), 32)(np.array(texts)))
    server = start_server(str(export_dir), model_name="bert", port=0)
    client = Client(f"127.0.0.1:{server.port}", model_name="bert", timeout=60)
    try:
        served = client.predict(texts)
    finally:
        client.close()
        server.stop()
    np.testing.assert_allclose(served["logits"], logits, atol=1e-5)
    assert list(served["label"]) == [
        ["0", "1"][i] for i in np.argmax(logits, axis=-1)]


def classify_on(text, uncased_vocab, tmp_path):
    """bert-finetune --task=classify trained and evaluated on a .tsv of `text`; its result."""
    train = tmp_path / "train.tsv"
    train.write_text(text, encoding="utf-8")
    return finetune("--task=classify", f"--train_file={train}", f"--eval_file={train}",
                    f"--vocab_file={uncased_vocab}", "--preset=bert_tiny",
                    f"--model_dir={tmp_path / 'model'}", check=False)


def test_a_malformed_row_stops_the_run_naming_file_and_line(uncased_vocab, tmp_path):
    result = classify_on("sentence\tlabel\ngood\t1\nbad row\t0\textra\n", uncased_vocab, tmp_path)
    assert result.returncode != 0
    assert f"{tmp_path / 'train.tsv'}:3: expected 2 tab-separated fields" in result.stderr


def test_a_file_without_the_default_columns_is_an_error_naming_the_column_flags(
        uncased_vocab, tmp_path):
    result = classify_on("Quality\t#1 String\t#2 String\n1\ta\tb\n", uncased_vocab, tmp_path)
    assert result.returncode != 0
    assert ("lacks column(s) ['sentence', 'label']; name the file's columns with "
            "--text_a_column, --text_b_column (pairs) and --label_column, or, for a file without "
            "a header line, pass --noheader and their numbers") in result.stderr


def test_ner_learns_entities_that_an_all_o_tagger_never_finds(shared_data, cased_vocab, tmp_path):
    sentences = (shared_data / "ner/conll2003/train.txt").read_text(encoding="utf-8").split("\n\n")
    sentences = [s for s in sentences if s.strip() and not s.startswith("-DOCSTART-")]
    train, dev = tmp_path / "train.txt", tmp_path / "dev.txt"
    train.write_text("\n\n".join(sentences[:2000]) + "\n", encoding="utf-8")
    dev.write_text("\n\n".join(sentences[2000:2300]) + "\n", encoding="utf-8")
    config = small_config(tmp_path, vocab_size=28996)
    model_dir = tmp_path / "model"
    finetune("--task=ner", f"--train_file={train}", f"--eval_file={dev}",
             f"--vocab_file={cased_vocab}", "--nolower_case", f"--bert_config={config}",
             f"--model_dir={model_dir}", "--seq_length=32", "--batch_size=16",
             "--num_train_steps=300", "--learning_rate=1e-3", "--save_checkpoints_steps=300")
    scores = results(model_dir)
    # Tagging everything "O" finds no entity: precision, recall and F1 are all 0.
    assert scores["f1"] > 0.2, scores
    labels = (model_dir / "labels.txt").read_text().split()
    assert labels == sorted(labels) and "B-PER" in labels and "O" in labels


def test_squad_on_cmrc_predicts_and_scores_every_eval_question(shared_data, chinese_vocab,
                                                                 tmp_path):
    with open(shared_data / "qa/cmrc2018/cmrc2018_trial.json", encoding="utf-8") as f:
        trial = json.load(f)  # 5 of its 1002 answer_start values are off by one
    absent = trial["data"][0]["paragraphs"][0]["qas"][0]
    absent["answers"][0]["text"] = "不在文中的答案"  # the one bad training record
    train = tmp_path / "train.json"
    train.write_text(json.dumps(trial, ensure_ascii=False), encoding="utf-8")
    articles = json.loads(json.dumps(trial["data"][1:11]))
    broken = articles[0]["paragraphs"][0]["qas"][0]
    broken["answers"][0]["answer_start"] += 1
    articles[1]["paragraphs"][0]["qas"][0]["question"] = ""
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps({"version": "v1.0", "data": articles}, ensure_ascii=False),
                   encoding="utf-8")
    from keras_bert_impl.checkpoints.google import save_google_checkpoint
    from keras_bert_impl.config import BertConfig
    from keras_bert_impl.metrics.squad_cmrc import cmrc_scores
    from keras_bert_impl.models.encoder import BertEncoder

    pretrained = BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=21128))
    checkpoint = save_google_checkpoint(pretrained, str(tmp_path / "google" / "bert_model.ckpt"))
    model_dir = tmp_path / "model"
    run = finetune("--task=squad", f"--train_file={train}", f"--eval_file={dev}",
                   f"--vocab_file={chinese_vocab}", "--preset=bert_tiny",
                   f"--model_dir={model_dir}", f"--init_checkpoint={checkpoint}",
                   "--learning_rate=5e-5",
                   "--seq_length=64", "--doc_stride=32", "--max_query_length=16",
                   "--batch_size=32", "--num_train_steps=20", "--skip_bad_records",
                   "--squad_metric=cmrc2018")
    assert (f"Started from {checkpoint}: 39 variables; cls/squad/output_weights, "
            "cls/squad/output_bias start fresh") in run.stdout
    # Started from the Google-format checkpoint: 20 small steps barely move the embeddings
    # (each at most ~3x the learning rate: the original AdamW has no bias correction).
    tuned = keras.saving.load_model(model_dir / "model.keras", compile=False)
    np.testing.assert_allclose(tuned.encoder.get_embedding_table().numpy(),
                               pretrained.get_embedding_table().numpy(), atol=5e-3)
    scores = results(model_dir)
    assert scores["skipped_records"] == 1
    with open(model_dir / "predictions.json", encoding="utf-8") as f:
        predictions = json.load(f)
    gold = {qa["id"]: [answer["text"] for answer in qa["answers"]]
            for article in articles for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]}
    # As the official script: every question of the file is predicted and counts.
    assert sorted(predictions) == sorted(gold)
    assert all(isinstance(answer, str) for answer in predictions.values())
    expected = cmrc_scores(gold, predictions)
    assert scores["exact_match"] == pytest.approx(expected["exact_match"])
    assert scores["f1"] == pytest.approx(expected["f1"])


def squad_flags(train_file, eval_file, **overrides):
    from types import SimpleNamespace

    values = {"train_file": train_file, "eval_file": eval_file, "seq_length": 32,
              "doc_stride": 8, "max_query_length": 8, "version_2_with_negative": False,
              "skip_bad_records": False}
    return SimpleNamespace(**{**values, **overrides})


def write_long_context_squad(path, questions=3):
    context = " ".join(f"word{i}" for i in range(40)) + " the answer is paris ."
    qas = [{"id": f"q{i}", "question": f"where {i}?",
            "answers": [{"text": "paris", "answer_start": context.index("paris")}]}
           for i in range(questions)]
    with tf.io.gfile.GFile(str(path), "w") as f:
        f.write(json.dumps({"data": [{"paragraphs": [{"context": context, "qas": qas}]}]}))
    return str(path)


def test_squad_epochs_count_questions_not_context_windows(uncased_vocab, tmp_path):
    """The original run_squad.py: num_train_steps = questions / batch_size * epochs."""
    from keras_bert_impl.cli.finetune_tasks import SquadTask
    from keras_bert_impl.text.tokenizer import BertTokenizer

    data = write_long_context_squad(tmp_path / "train.json", questions=3)
    task = SquadTask(squad_flags(data, data), BertTokenizer(uncased_vocab), None)
    assert len(task.train.start_positions) > 3 * 5  # each long context makes many windows
    assert task.num_train_examples == 3


def test_squad_warns_when_doc_stride_leaves_windows_without_overlap(
        uncased_vocab, tmp_path, caplog):
    from keras_bert_impl.cli.finetune_tasks import SquadTask
    from keras_bert_impl.text.tokenizer import BertTokenizer

    data = write_long_context_squad(tmp_path / "train.json", questions=1)
    tokenizer = BertTokenizer(uncased_vocab)
    SquadTask(squad_flags(data, data, doc_stride=20), tokenizer, None)
    assert "--doc_stride=20 is not below the 21 context tokens" not in caplog.text
    SquadTask(squad_flags(data, data, doc_stride=21), tokenizer, None)
    assert "--doc_stride=21 is not below the 21 context tokens a window holds" in caplog.text
    # Whether a question that long occurs is up to the data: refused up front.
    with pytest.raises(ValueError, match="--seq_length=64 must be greater than "
                                         "--max_query_length=61 \\+ 3"):
        SquadTask(squad_flags(data, data, seq_length=64, max_query_length=61), tokenizer, None)


@pytest.fixture
def train(tmp_path):
    """A two-row, two-label classification file: enough for setups refused or run one step."""
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\ngood\t1\nbad\t0\n", encoding="utf-8")
    return path


def finetune_in_process(monkeypatch, *flag_args):
    """Runs the `bert-finetune` entry point in this process, where tfds.testing.mock_data acts.

    Returns the exit code; the tool's flags are removed afterwards.
    """
    from absl import flags

    from keras_bert_impl.cli import finetune as tool

    before = set(flags.FLAGS)
    monkeypatch.setattr(sys, "argv", ["bert-finetune", *flag_args])
    try:
        with pytest.raises(SystemExit) as exit_:
            tool.run()
    finally:
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
    return exit_.value.code


def test_classify_trains_on_a_tfds_glue_pair_task_with_its_class_names(
        uncased_vocab, tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    model_dir, export_dir = tmp_path / "model", tmp_path / "export"
    with tfds.testing.mock_data(num_examples=24,
                                    policy=tfds.testing.MockPolicy.USE_CODE):
        code = finetune_in_process(
            monkeypatch, "--task=classify", "--tfds_name=glue/mnli",
            "--tfds_eval_split=validation_matched", f"--vocab_file={uncased_vocab}",
            "--preset=bert_tiny", f"--model_dir={model_dir}", "--seq_length=32",
            "--batch_size=8", "--num_train_steps=3", f"--tfds_data_dir={tmp_path / 'tfds'}",
            f"--export_dir={export_dir}")
    assert code in (None, 0)
    # Classes and their order come from the dataset's ClassLabel, not from sorting.
    assert (model_dir / "labels.txt").read_text() == "entailment\nneutral\ncontradiction\n"
    scores = results(model_dir)
    assert 0.0 <= scores["accuracy"] <= 1.0 and "f1" not in scores
    assert scores["skipped_records"] == 0
    # premise/hypothesis are a pair: the export takes text and text_pair.
    import tensorflow as tf

    signature = tf.saved_model.load(str(export_dir / "1")).signatures["serving_default"]
    assert set(signature.structured_input_signature[1]) == {"text", "text_pair"}


@pytest.mark.parametrize("tfds_name, splits", [
    ("glue/sst2", ["train", "validation"]),
    # As run_classifier.py's MnliProcessor: MNLI has no split named validation.
    ("glue/mnli", ["train", "validation_matched"]),
    ("glue/mnli:2.0.0", ["train", "validation_matched"]),
])
def test_a_tfds_set_is_evaluated_on_its_development_split(
        tfds_name, splits, uncased_vocab, tmp_path, monkeypatch):
    from keras_bert_impl.data import classification

    read = []

    def record_and_stop(name, split, **kwargs):
        read.append(split)
        if len(read) == 2:
            raise KeyboardInterrupt
        return [], {}

    monkeypatch.setattr(classification, "read_tfds_glue", record_and_stop)
    with pytest.raises(KeyboardInterrupt):
        finetune_in_process(monkeypatch, "--task=classify", f"--tfds_name={tfds_name}",
                            f"--vocab_file={uncased_vocab}", "--preset=bert_tiny",
                            f"--model_dir={tmp_path / 'model'}")
    assert read == splits


@pytest.mark.parametrize("flag_args, message", [
    (["--train_file=train.tsv", "--eval_file=dev.tsv", "--tfds_name=glue/sst2"],
     "--tfds_name=glue/sst2 cannot be combined with --train_file or --eval_file"),
    (["--tfds_name=glue/sst2", "--eval_file=dev.tsv"], "cannot be combined with"),
    (["--train_file=train.tsv"], "give the data as --train_file and --eval_file"),
    ([], "give the data as --train_file and --eval_file"),
])
def test_data_source_flags_must_name_exactly_one_source(
        flag_args, message, uncased_vocab, tmp_path, monkeypatch, capsys):
    code = finetune_in_process(monkeypatch, "--task=classify", *flag_args,
                               f"--vocab_file={uncased_vocab}", "--preset=bert_tiny",
                               f"--model_dir={tmp_path}")
    assert code == 1
    assert message in capsys.readouterr().err


def test_tfds_data_is_for_classification_only(uncased_vocab, tmp_path, monkeypatch, capsys):
    code = finetune_in_process(monkeypatch, "--task=ner", "--tfds_name=conll2003",
                               f"--vocab_file={uncased_vocab}", "--preset=bert_tiny",
                               f"--model_dir={tmp_path}")
    assert code == 1
    assert "--tfds_name is for --task=classify; --task=ner reads" in capsys.readouterr().err


def test_squad_runs_on_a_remote_file_system_with_the_original_defaults_and_v2_export(
        uncased_vocab, tmp_path, monkeypatch):
    """gs:// works as TF's in-memory ram:// does: data, vocabulary and --model_dir go
    through tf.io.gfile. Without --seq_length squad windows are 384 tokens (run_squad.py);
    a v2.0 run exports with its no-answer rule."""
    from keras_bert_impl import export
    from keras_bert_impl.cli import finetune_tasks

    root = "ram://finetune_remote"
    tf.io.gfile.makedirs(root)
    tf.io.gfile.copy(uncased_vocab, f"{root}/vocab.txt", overwrite=True)
    data = write_long_context_squad(f"{root}/squad.json", questions=2)
    seen = {}

    class RecordingSquadTask(finetune_tasks.SquadTask):
        def __init__(self, flags, tokenizer, preprocessor):
            seen["seq_length"] = flags.seq_length
            super().__init__(flags, tokenizer, preprocessor)

    monkeypatch.setitem(finetune_tasks.TASKS, "squad", RecordingSquadTask)
    monkeypatch.setattr(export, "export_saved_model",
                        lambda model, export_dir, **options: seen.update(options))
    code = finetune_in_process(
        monkeypatch, "--task=squad", f"--train_file={data}", f"--eval_file={data}",
        f"--vocab_file={root}/vocab.txt", "--preset=bert_tiny", f"--model_dir={root}/model",
        "--batch_size=2", "--num_train_steps=1", "--version_2_with_negative",
        "--null_score_diff_threshold=1.5", f"--export_dir={tmp_path / 'export'}")
    assert code in (None, 0)
    assert seen["seq_length"] == 384 and seen["doc_stride"] == 128
    assert seen["version_2_with_negative"] is True
    assert seen["null_score_diff_threshold"] == 1.5
    with tf.io.gfile.GFile(f"{root}/model/eval_results.json") as f:
        scores = json.load(f)
    with tf.io.gfile.GFile(f"{root}/model/predictions.json") as f:
        assert sorted(json.load(f)) == ["q0", "q1"]
    assert scores["skipped_records"] == 0 and 0.0 <= scores["f1"] <= 100.0
    assert tf.io.gfile.exists(f"{root}/model/model.keras")


def test_a_setup_that_cannot_work_stops_before_training_naming_the_flag(
        train, uncased_vocab, tmp_path, monkeypatch, capsys):
    data = [f"--train_file={train}", f"--eval_file={train}", f"--vocab_file={uncased_vocab}",
            f"--model_dir={tmp_path / 'model'}", "--num_train_steps=1"]
    code = finetune_in_process(monkeypatch, "--task=classify", *data,
                               f"--bert_config={small_config(tmp_path, 600)}")
    assert code == 1
    assert "vocab_size 600 does not match the 30522 tokens of --vocab_file" in \
        capsys.readouterr().err
    code = finetune_in_process(monkeypatch, "--task=classify", *data, "--preset=bert_tiny",
                               "--seq_length=1024")
    assert code == 1 and "--seq_length=1024 exceeds max_position_embeddings=512" in \
        capsys.readouterr().err
    (tmp_path / "export" / "1").mkdir(parents=True)
    code = finetune_in_process(monkeypatch, "--task=classify", *data, "--preset=bert_tiny",
                               f"--export_dir={tmp_path / 'export'}", "--export_version=1")
    assert code == 1 and "already holds version 1" in capsys.readouterr().err
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    code = finetune_in_process(monkeypatch, "--task=classify", *data, "--preset=bert_tiny",
                               f"--export_dir={a_file}")
    assert code == 1 and f"--export_dir={a_file} is a file" in capsys.readouterr().err
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(b"PK\x03\x04 cut short")
    code = finetune_in_process(monkeypatch, "--task=classify", *data,
                               f"--init_checkpoint={damaged}")
    assert code == 1 and f"--init_checkpoint={damaged}: not a .keras archive" in \
        capsys.readouterr().err
    assert not (tmp_path / "model" / "checkpoints").exists()
    code = finetune_in_process(monkeypatch, "--task=classify", *data[:-2], "--preset=bert_tiny",
                               f"--model_dir={a_file}")
    assert code == 1 and f"--model_dir={a_file} is a file" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--learning_rate=-0.01", "--learning_rate=nan",
                                  "--num_train_epochs=0", "--num_train_epochs=-1",
                                  "--warmup_proportion=2", "--export_version=-1"])
def test_a_value_that_would_train_wrongly_is_a_flag_error(
        train, flag, uncased_vocab, tmp_path, monkeypatch, capsys):
    code = finetune_in_process(monkeypatch, "--task=classify", f"--train_file={train}",
                               f"--eval_file={train}", f"--vocab_file={uncased_vocab}",
                               f"--model_dir={tmp_path / 'model'}", "--preset=bert_tiny", flag)
    assert code == 1 and f"flag {flag.split('=')[0]}=" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_a_training_set_with_a_single_label_is_refused(
        uncased_vocab, tmp_path, monkeypatch, capsys):
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\ngood\t1\nfine\t1\n", encoding="utf-8")
    assert finetune_in_process(monkeypatch, "--task=classify", f"--train_file={train}",
                               f"--eval_file={train}", f"--vocab_file={uncased_vocab}",
                               f"--model_dir={tmp_path / 'model'}", "--preset=bert_tiny",
                               "--num_train_steps=1") == 1
    assert ("every training example has the label '1'; a classifier needs examples of at "
            "least two labels") in capsys.readouterr().err


def test_an_empty_training_or_evaluation_set_is_named_before_training(
        uncased_vocab, tmp_path, monkeypatch, capsys):
    train, empty = tmp_path / "train.tsv", tmp_path / "empty.tsv"
    train.write_text("sentence\tlabel\ngood\t1\nbad\t0\n", encoding="utf-8")
    empty.write_text("sentence\tlabel\n", encoding="utf-8")
    common = [f"--vocab_file={uncased_vocab}", "--preset=bert_tiny",
              f"--model_dir={tmp_path / 'model'}", "--num_train_steps=1"]
    for files in ([f"--train_file={empty}", f"--eval_file={train}"],
                  [f"--train_file={train}", f"--eval_file={empty}"]):
        assert finetune_in_process(monkeypatch, "--task=classify", *files, *common) == 1
        assert f"bert-finetune: ValueError: {empty}: no examples to use" in (
            capsys.readouterr().err)
    assert not (tmp_path / "model" / "checkpoints").exists()


def test_a_file_without_header_trains_on_numbered_columns_and_its_labels_bind_a_resume(
        uncased_vocab, tmp_path, monkeypatch, capsys):
    train = tmp_path / "train.tsv"  # GLUE CoLA's layout: source, label, original mark, text
    train.write_text("gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n"
                     "gj04\t0\t*\tThe more does Bill smoke.\n", encoding="utf-8")
    common = ["--task=classify", f"--train_file={train}", f"--eval_file={train}",
              f"--vocab_file={uncased_vocab}", "--preset=bert_tiny",
              f"--model_dir={tmp_path / 'model'}", "--num_train_steps=1", "--batch_size=2",
              "--seq_length=16", "--noheader", "--text_a_column=3", "--label_column=1"]
    assert finetune_in_process(monkeypatch, *common) in (None, 0)
    assert (tmp_path / "model" / "labels.txt").read_text() == "0\n1\n"
    assert {"accuracy", "mcc", "f1"} <= set(results(tmp_path / "model"))
    capsys.readouterr()
    # A resume whose training file now holds another label would give the head's ids new
    # meanings under the restored weights.
    with train.open("a", encoding="utf-8") as f:
        f.write("gj04\t2\t?\tThe book was written by John.\n")
    assert finetune_in_process(monkeypatch, *common) == 1
    assert "labels: ['0', '1'] then, ['0', '1', '2'] now" in capsys.readouterr().err
    assert (tmp_path / "model" / "labels.txt").read_text() == "0\n1\n"


def test_an_export_version_without_an_export_dir_is_refused(
        train, uncased_vocab, tmp_path, monkeypatch, capsys):
    assert finetune_in_process(monkeypatch, "--task=classify", f"--train_file={train}",
                               f"--eval_file={train}", f"--vocab_file={uncased_vocab}",
                               "--preset=bert_tiny", f"--model_dir={tmp_path / 'model'}",
                               "--export_version=3") == 1
    assert "--export_version=3 needs --export_dir" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_noheader_needs_column_numbers(train, uncased_vocab, tmp_path, monkeypatch, capsys):
    assert finetune_in_process(monkeypatch, "--task=classify", f"--train_file={train}",
                               f"--eval_file={train}", f"--vocab_file={uncased_vocab}",
                               "--preset=bert_tiny", f"--model_dir={tmp_path / 'model'}",
                               "--noheader", "--label_column=1") == 1
    assert ("--noheader picks columns by field number, from 0: --text_a_column='sentence' is "
            "not one") in capsys.readouterr().err


def test_two_workers_fine_tune_in_lockstep_and_only_the_chief_writes_results(
        uncased_vocab, tmp_path):
    from two_workers import run_two_workers

    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "good fun\t1\nbad film\t0\n" * 4, encoding="utf-8")
    model_dir, export_dir = tmp_path / "model", tmp_path / "export"
    chief_output, other_output = run_two_workers([
                     sys.executable, "-m", "keras_bert_impl.cli.finetune",
                     "--strategy=multi_worker", "--task=classify", f"--train_file={train}",
                     f"--eval_file={train}", f"--vocab_file={uncased_vocab}",
                     "--preset=bert_tiny", f"--model_dir={model_dir}", "--seq_length=16",
                     "--batch_size=4", "--num_train_steps=2", f"--export_dir={export_dir}"])
    scores = results(model_dir)
    assert set(scores) >= {"accuracy", "mcc", "f1", "skipped_records"}
    assert (model_dir / "model.keras").exists() and (export_dir / "1").is_dir()
    assert "Model: " in chief_output and "Model: " not in other_output
    # The evaluation is in TensorBoard beside the training curves, at the step it was
    # measured; one set of summaries, the chief's.
    evaluation = {value.tag: (event.step, tf.make_ndarray(value.tensor).item())
                  for path in (model_dir / "logs" / "validation").glob("events.*")
                  for event in tf.compat.v1.train.summary_iterator(str(path))
                  for value in event.summary.value}
    assert evaluation == {f"epoch_{name}": (2, pytest.approx(scores[name]))
                          for name in ("accuracy", "mcc", "f1")}
    assert list((model_dir / "logs" / "train").glob("events.*"))
    assert not list(model_dir.glob(".worker_1/**/events.*"))
    weights = {}
    for directory in (model_dir, model_dir / ".worker_1"):
        reader = tf.train.load_checkpoint(str(directory / "checkpoints"))
        weights[directory] = {name: reader.get_tensor(name) for name, _ in
                              tf.train.list_variables(str(directory / "checkpoints"))
                              if "_trainable_variables" in name}
    chief, other = weights.values()
    assert chief.keys() == other.keys() and chief
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)


def test_classify_is_refused_where_tpu_hosts_run_the_input_pipelines(
        train, uncased_vocab, tmp_path, monkeypatch, capsys):
    from keras_bert_impl.training import strategy

    monkeypatch.setattr(strategy, "input_pipelines_are_remote", lambda _: True)
    code = finetune_in_process(monkeypatch, "--task=classify", f"--train_file={train}",
                               f"--eval_file={train}", f"--vocab_file={uncased_vocab}",
                               "--preset=bert_tiny", f"--model_dir={tmp_path / 'model'}")
    assert code == 1 and "TF-Text's ops, which this TPU's hosts lack" in capsys.readouterr().err


def test_an_encoder_saved_by_a_bf16_pretraining_run_fine_tunes_in_float32(
        train, uncased_vocab, tmp_path, monkeypatch):
    from keras_bert_impl.config import BertConfig
    from keras_bert_impl.models.encoder import BertEncoder

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:  # as `bert-pretrain --mixed_precision=bf16` saves it
        pretrained = BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=30522),
                                 name="bert")
        pretrained.save(tmp_path / "encoder.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    code = finetune_in_process(
        monkeypatch, "--task=classify", f"--train_file={train}", f"--eval_file={train}",
        f"--vocab_file={uncased_vocab}", f"--init_checkpoint={tmp_path / 'encoder.keras'}",
        f"--model_dir={tmp_path / 'model'}", "--num_train_steps=1", "--batch_size=2",
        "--seq_length=8", "--warmup_proportion=1")  # the one step's learning rate is 0
    assert code in (None, 0)
    tuned = keras.saving.load_model(tmp_path / "model" / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in tuned.encoder._flatten_layers()} == {"float32"}
    for tuned_weight, pretrained_weight in zip(tuned.encoder.weights, pretrained.weights):
        np.testing.assert_array_equal(tuned_weight, pretrained_weight)


def test_bf16_fine_tuning_saves_and_exports_a_model_that_computes_in_bf16(
        uncased_vocab, tmp_path, monkeypatch):
    from test_export_precision import matmuls

    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\ngood\t1\nbad\t0\nfine\t1\nawful\t0\n", encoding="utf-8")
    try:
        code = finetune_in_process(
            monkeypatch, "--task=classify", f"--train_file={train}", f"--eval_file={train}",
            f"--vocab_file={uncased_vocab}", "--preset=bert_tiny", "--mixed_precision=bf16",
            f"--model_dir={tmp_path / 'model'}", f"--export_dir={tmp_path / 'export'}",
            "--num_train_steps=2", "--batch_size=2", "--seq_length=8")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert code in (None, 0)
    assert np.isfinite(results(tmp_path / "model")["accuracy"])
    tuned = keras.saving.load_model(tmp_path / "model" / "model.keras", compile=False)
    assert tuned.encoder.compute_dtype == "bfloat16"
    assert tuned.encoder.weights[0].dtype == "float32"
    found = matmuls(str(tmp_path / "export" / "1"))
    assert found["bfloat16"] and all("/logits" in name for name in found.get("float32", ()))


def test_several_steps_per_execution_train_and_checkpoint_at_the_same_steps(
        uncased_vocab, tmp_path, monkeypatch):
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\ngood\t1\nbad\t0\nfine\t1\nawful\t0\n", encoding="utf-8")
    code = finetune_in_process(
        monkeypatch, "--task=classify", f"--train_file={train}", f"--eval_file={train}",
        f"--vocab_file={uncased_vocab}", "--preset=bert_tiny", "--steps_per_execution=3",
        f"--model_dir={tmp_path / 'model'}", "--num_train_steps=6",
        "--save_checkpoints_steps=3", "--batch_size=2", "--seq_length=8")
    assert code in (None, 0)
    state = tf.train.get_checkpoint_state(str(tmp_path / "model" / "checkpoints"))
    assert [os.path.basename(path) for path in state.all_model_checkpoint_paths] == [
        "ckpt-3", "ckpt-6"]
    reader = tf.train.load_checkpoint(state.model_checkpoint_path)
    assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 6
    assert reader.get_tensor("batches/.ATTRIBUTES/VARIABLE_VALUE") == 6
    with zipfile.ZipFile(tmp_path / "model" / "model.keras") as saved:
        assert json.loads(saved.read("config.json"))["compile_config"]["steps_per_execution"] == 3


def test_a_model_dir_of_another_configuration_is_a_two_line_error(train, uncased_vocab,
                                                                 tmp_path):
    common = ["--task=classify", f"--train_file={train}", f"--eval_file={train}",
              f"--vocab_file={uncased_vocab}", f"--model_dir={tmp_path / 'model'}",
              "--num_train_steps=1", "--batch_size=2", "--seq_length=8"]
    finetune(*common, "--preset=bert_tiny")
    result = finetune(*common, "--preset=bert_mini", check=False)
    assert result.returncode == 1
    # Nothing after it: not the half-restored checkpoint's warnings as it is torn down.
    assert result.stderr.splitlines()[-2:] == result.stderr.splitlines(), result.stderr
    assert "this model cannot resume from the checkpoint" in result.stderr


def test_ner_on_a_file_that_is_not_conll_is_an_error_naming_it(train, uncased_vocab,
                                                              tmp_path, monkeypatch, capsys):
    code = finetune_in_process(
        monkeypatch, "--task=ner", f"--train_file={train}", f"--eval_file={train}",
        f"--vocab_file={uncased_vocab}", "--preset=bert_tiny",
        f"--model_dir={tmp_path / 'model'}", "--num_train_steps=1")
    assert code == 1
    assert f"{train}:1: tag(s) ['0', '1', 'label'] are not entity tags" in capsys.readouterr().err


def test_epochs_give_the_originals_step_count_rounded_down(train, uncased_vocab, tmp_path,
                                                           monkeypatch):
    # run_classifier.py: int(2 examples / batch 2 * 1.5 epochs) = 1 step, not 2.
    code = finetune_in_process(
        monkeypatch, "--task=classify", f"--train_file={train}", f"--eval_file={train}",
        f"--vocab_file={uncased_vocab}", "--preset=bert_tiny",
        f"--model_dir={tmp_path / 'model'}", "--num_train_epochs=1.5", "--batch_size=2",
        "--seq_length=8")
    assert code in (None, 0)
    reader = tf.train.load_checkpoint(str(tmp_path / "model" / "checkpoints"))
    assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 1


@pytest.mark.parametrize("step_flags, error", [
    (["--num_train_steps=5"], ("--num_train_steps=5 must be a multiple of "
                               "--steps_per_execution=2: pass --num_train_steps=6 or 4")),
    (["--num_train_epochs=3"], ("--num_train_epochs=3 gives 3 steps, which must be a multiple "
                                "of --steps_per_execution=2: pass --num_train_steps=4 or 2")),
    (["--num_train_steps=4", "--save_checkpoints_steps=3"],
     "--save_checkpoints_steps=3 must be a multiple of --steps_per_execution=2"),
])
def test_step_counts_that_executions_would_overrun_are_refused_before_anything_is_written(
        train, uncased_vocab, tmp_path, monkeypatch, capsys, step_flags, error):
    code = finetune_in_process(
        monkeypatch, "--task=classify", f"--train_file={train}", f"--eval_file={train}",
        f"--vocab_file={uncased_vocab}", "--preset=bert_tiny", "--steps_per_execution=2",
        "--batch_size=2", f"--model_dir={tmp_path / 'model'}", *step_flags)
    assert code == 1 and error in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_a_global_batch_that_does_not_split_over_the_replicas_is_refused(
        train, uncased_vocab, tmp_path):
    result = run_on_two_replicas(
        "keras_bert_impl.cli.finetune", "--task=classify", f"--train_file={train}",
        f"--eval_file={train}", f"--vocab_file={uncased_vocab}", "--preset=bert_tiny",
        "--strategy=mirrored", "--batch_size=3", f"--model_dir={tmp_path / 'model'}")
    assert result.returncode == 1, result.stderr[-3000:]
    assert ("--batch_size=3 is the global batch: it must split evenly over the 2 replicas"
            in result.stderr)
    assert not (tmp_path / "model").exists()


def test_fp16_loss_scaling_on_a_tpu_is_refused_before_anything_is_written(
        train, uncased_vocab, tmp_path, monkeypatch, capsys):
    code = finetune_in_process(
        monkeypatch, "--task=classify", f"--train_file={train}", f"--eval_file={train}",
        f"--vocab_file={uncased_vocab}", "--preset=bert_tiny", "--strategy=tpu",
        "--mixed_precision=fp16", f"--model_dir={tmp_path / 'model'}")
    assert code == 1 and "use --mixed_precision=bf16" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_a_keras_checkpoint_holds_the_size_so_a_preset_beside_it_is_refused(
        train, uncased_vocab, tmp_path, monkeypatch, capsys):
    code = finetune_in_process(
        monkeypatch, "--task=classify", f"--train_file={train}", f"--eval_file={train}",
        f"--vocab_file={uncased_vocab}", f"--init_checkpoint={tmp_path / 'encoder.keras'}",
        "--preset=bert_base", f"--model_dir={tmp_path / 'model'}")
    assert code == 1
    assert "encoder.keras holds the model's config; drop --preset" in capsys.readouterr().err
