"""Pretraining TFRecords: our tool, the original layout, metadata checks (issue 3)."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_bert_impl.data import tfrecords
from keras_bert_impl.data.pretraining import pretraining_dataset
from keras_bert_impl.text.tokenizer import BertTokenizer

SEQ, P = 32, 5


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab):
    return BertTokenizer(uncased_vocab, lower_case=True)


def _original_example(seed):
    """A record as google-research/bert's create_pretraining_data.py writes it."""
    rng = np.random.default_rng(seed)
    length = int(rng.integers(8, SEQ))
    input_ids = [101] + rng.integers(1000, 5000, length - 2).tolist() + [102]
    input_ids += [0] * (SEQ - length)
    segment_ids = [0] * (length // 2) + [1] * (length - length // 2) + [0] * (SEQ - length)
    positions = sorted(rng.choice(np.arange(1, length - 1), 3, replace=False).tolist())
    masked_ids = [input_ids[p] for p in positions]
    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    feature = {
        "input_ids": ints(input_ids),
        "input_mask": ints([1] * length + [0] * (SEQ - length)),
        "segment_ids": ints(segment_ids),
        "masked_lm_positions": ints(positions + [0] * (P - 3)),
        "masked_lm_ids": ints(masked_ids + [0] * (P - 3)),
        "masked_lm_weights": tf.train.Feature(
            float_list=tf.train.FloatList(value=[1.0] * 3 + [0.0] * (P - 3))),
        "next_sentence_labels": ints([seed % 2]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example, {
        "input_word_ids": input_ids, "input_mask": [1] * length + [0] * (SEQ - length),
        "input_type_ids": segment_ids, "masked_lm_positions": positions + [0] * (P - 3),
        "masked_lm_ids": masked_ids + [0] * (P - 3),
        "masked_lm_weights": [1.0] * 3 + [0.0] * (P - 3), "next_sentence_labels": seed % 2}


def test_records_in_the_original_layout_are_read_into_our_names_and_dtypes(tokenizer, tmp_path):
    path = str(tmp_path / "original.tfrecord")
    expected = []
    with tf.io.TFRecordWriter(path) as writer:
        for seed in range(6):
            example, features = _original_example(seed)
            writer.write(example.SerializeToString())
            expected.append(features)
    ds = pretraining_dataset(path, tokenizer, seq_length=SEQ, max_predictions_per_seq=P,
                             batch_size=3, seed=1, num_epochs=1, instance_shuffle_buffer=1)
    dtypes = {k: v.dtype for k, v in ds.element_spec.items()}
    assert dtypes == {"input_word_ids": tf.int32, "input_mask": tf.int32,
                      "input_type_ids": tf.int32, "masked_lm_positions": tf.int32,
                      "masked_lm_ids": tf.int32, "masked_lm_weights": tf.float32,
                      "next_sentence_labels": tf.int32}
    assert ds.element_spec["next_sentence_labels"].shape.as_list() == [3]
    rows = [{k: v[i] for k, v in b.items()} for b in ds.as_numpy_iterator() for i in range(3)]
    assert len(rows) == 6
    for row, want in zip(rows, expected):
        for key, value in want.items():
            np.testing.assert_array_equal(row[key], value, err_msg=key)


def test_a_length_mismatch_in_original_records_names_file_and_feature(tokenizer, tmp_path):
    path = str(tmp_path / "original.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(_original_example(0)[0].SerializeToString())
    with pytest.raises(ValueError, match=r"original.tfrecord.*'input_ids' has length 32, "
                                         r"expected 64"):
        pretraining_dataset(path, tokenizer, seq_length=64, max_predictions_per_seq=P)


def _ids_below(example, limit):
    for name in ("input_ids", "masked_lm_ids"):
        values = example.features.feature[name].int64_list.value
        values[:] = [min(v, limit - 1) for v in values]
    return example


def test_original_records_of_another_vocabulary_are_an_error_naming_the_file(
        uncased_vocab, tmp_path):
    """Records without metadata carry no vocabulary hash: ids past the vocabulary are
    found up front in the first records, and in any batch read later (on a GPU an
    out-of-range lookup would give zeros, silently)."""
    small_vocab = tmp_path / "vocab_3000.txt"
    lines = pathlib.Path(uncased_vocab).read_text(encoding="utf-8").splitlines(keepends=True)
    small_vocab.write_text("".join(lines[:3000]), encoding="utf-8")
    small = BertTokenizer(str(small_vocab))
    up_front = str(tmp_path / "original.tfrecord")
    with tf.io.TFRecordWriter(up_front) as writer:  # ids up to 5000
        writer.write(_original_example(0)[0].SerializeToString())
    with pytest.raises(ValueError, match=r"original.tfrecord' hold token id \d+, outside the "
                                         r"vocabulary of 3000 tokens"):
        pretraining_dataset(up_front, small, seq_length=SEQ, max_predictions_per_seq=P)
    negative = _ids_below(_original_example(0)[0], 3000)
    negative.features.feature["masked_lm_ids"].int64_list.value[0] = -1
    with tf.io.TFRecordWriter(up_front) as writer:
        writer.write(negative.SerializeToString())
    with pytest.raises(ValueError, match="hold token id -1, outside the vocabulary"):
        pretraining_dataset(up_front, small, seq_length=SEQ, max_predictions_per_seq=P)
    # Only the first record's lengths are checked on their own; a later one of other
    # lengths is named too, not left to a parse error mid-training.
    shorter, _ = _original_example(1)
    shorter.features.feature["input_mask"].int64_list.value.pop()
    with tf.io.TFRecordWriter(up_front) as writer:
        writer.write(_original_example(2)[0].SerializeToString())
        writer.write(shorter.SerializeToString())
    with pytest.raises(ValueError, match=r"original.tfrecord' cannot be parsed as seq_length=32"):
        pretraining_dataset(up_front, BertTokenizer(uncased_vocab), seq_length=SEQ,
                            max_predictions_per_seq=P)
    later = str(tmp_path / "later.tfrecord")
    fits = _ids_below(_original_example(0)[0], 3000)
    with tf.io.TFRecordWriter(later) as writer:
        for _ in range(1000):
            writer.write(fits.SerializeToString())
        writer.write(_original_example(1)[0].SerializeToString())
    ds = pretraining_dataset(later, small, seq_length=SEQ, max_predictions_per_seq=P,
                             batch_size=8, num_epochs=1)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="token id outside the vocabulary of 3000 tokens"):
        for _ in ds:
            pass


def _create_records(outputs: str, input_file, uncased_vocab,
                    dupe_factor: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "keras_bert_impl.cli.create_pretraining_data",
               f"--input_file={input_file}",
               f"--output_file={outputs}", f"--vocab_file={uncased_vocab}",
               "--do_lower_case", f"--max_seq_length={SEQ}",
               f"--max_predictions_per_seq={P}", f"--dupe_factor={dupe_factor}",
               "--random_seed=7",
               "--do_whole_word_mask"]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def generated_records(shared_data, uncased_vocab, tmp_path_factory):
    """bert-create-pretraining-data run as a real subprocess on sample_text.txt."""
    out = tmp_path_factory.mktemp("records")
    result = _create_records(f"{out / 'a.tfrecord'},{out / 'b.tfrecord'}",
                             shared_data / "sample_text.txt", uncased_vocab)
    return out, result.stdout


def test_a_rerun_with_the_same_seed_writes_the_same_bytes(generated_records, shared_data,
                                                         uncased_vocab, tmp_path):
    # protobuf orders a record's feature map by the process's memory layout unless asked not to.
    out, _ = generated_records
    _create_records(f"{tmp_path / 'a.tfrecord'},{tmp_path / 'b.tfrecord'}",
                    shared_data / "sample_text.txt", uncased_vocab)
    for name in ("a.tfrecord", "b.tfrecord"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_dupe_factor_is_the_number_of_passes_over_the_corpus(generated_records, shared_data,
                                                           uncased_vocab, tmp_path):
    out, _ = generated_records  # --dupe_factor=2
    _create_records(str(tmp_path / "once.tfrecord"), shared_data / "sample_text.txt",
                    uncased_vocab, dupe_factor=1)
    once = json.loads((tmp_path / ".once.metadata.json").read_text())["num_instances"]
    twice = sum(json.loads((out / f".{name}.metadata.json").read_text())["num_instances"]
                for name in ("a", "b"))
    # Each pass draws its own pairs and short targets, so the count varies a little.
    assert once > 0 and 1.6 * once < twice < 2.4 * once


def test_the_tool_writes_original_layout_records_with_metadata(generated_records, tokenizer):
    out, stdout = generated_records
    assert "Wrote" in stdout
    assert "every next-sentence pair is a random one" not in stdout
    metadata = json.loads((out / ".a.metadata.json").read_text())
    assert metadata["seq_length"] == SEQ and metadata["max_predictions_per_seq"] == P
    assert metadata["vocab_sha256"] == tokenizer.vocab_sha256
    assert metadata["dupe_factor"] == 2 and metadata["do_whole_word_mask"] is True
    assert metadata["chinese_words"] == "jieba"  # a test dependency
    record = next(iter(tf.data.TFRecordDataset(str(out / "a.tfrecord"))))
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    assert sorted(feature) == sorted(["input_ids", "input_mask", "segment_ids",
                                      "masked_lm_positions", "masked_lm_ids",
                                      "masked_lm_weights", "next_sentence_labels"])
    assert feature["masked_lm_weights"].WhichOneof("kind") == "float_list"
    assert feature["input_ids"].WhichOneof("kind") == "int64_list"
    assert len(feature["input_ids"].int64_list.value) == SEQ


def test_a_directory_of_the_tools_output_reads_as_records_beside_its_metadata(
        generated_records):
    from keras_bert_impl.data.corpus import expand_file_patterns
    from keras_bert_impl.data.pretraining import is_tfrecord_input

    out, _ = generated_records
    files = expand_file_patterns(str(out / "*"))
    assert str(out / ".a.metadata.json") in files and is_tfrecord_input(files)


def test_a_shard_pattern_for_the_original_trainer_finds_only_records(generated_records,
                                                                     tokenizer, tmp_path):
    """run_pretraining.py globs --input_file (e.g. `a.tfrecord*`) and reads every match
    as records: the metadata must not match. Metadata of the earlier name still reads."""
    out, _ = generated_records
    assert tf.io.gfile.glob(str(out / "a.tfrecord*")) == [str(out / "a.tfrecord")]
    legacy = tmp_path / "a.tfrecord"
    legacy.write_bytes((out / "a.tfrecord").read_bytes())
    metadata = json.loads((out / ".a.metadata.json").read_text())
    (tmp_path / "a.tfrecord.metadata.json").write_text(json.dumps({**metadata, "seq_length": 7}))
    with pytest.raises(ValueError, match=r"a.tfrecord.metadata.json\) but this run expects "
                                         r"seq_length=" + str(SEQ)):
        pretraining_dataset(str(legacy), tokenizer, seq_length=SEQ, max_predictions_per_seq=P)


def test_generated_records_round_trip_through_the_dataset(generated_records, tokenizer):
    out, _ = generated_records
    metadata = [json.loads((out / f".{n}.metadata.json").read_text()) for n in "ab"]
    total = sum(m["num_instances"] for m in metadata)
    ds = pretraining_dataset(str(out / "*.tfrecord*"), tokenizer, seq_length=SEQ,
                             max_predictions_per_seq=P, batch_size=1, num_epochs=1, seed=1)
    rows = list(ds.as_numpy_iterator())
    assert len(rows) == total > 0
    for row in rows:
        weights = row["masked_lm_weights"][0]
        positions = row["masked_lm_positions"][0][weights > 0]
        masked = row["input_word_ids"][0][positions]
        assert len(positions) >= 1
        assert np.mean(masked == tokenizer.mask_id) > 0 or len(positions) < 3
        assert row["input_word_ids"][0][0] == tokenizer.cls_id
    assert {int(r["next_sentence_labels"][0]) for r in rows} == {0, 1}
    endless = pretraining_dataset(str(out / "*.tfrecord*"), tokenizer, seq_length=SEQ,
                                  max_predictions_per_seq=P, batch_size=1, seed=1)
    assert endless.cardinality() == tf.data.INFINITE_CARDINALITY


def test_metadata_mismatch_is_a_clear_error(generated_records, tokenizer, cased_vocab):
    out, _ = generated_records
    records = str(out / "a.tfrecord")
    with pytest.raises(ValueError, match=r"a.tfrecord.*max_predictions_per_seq=5.*expects "
                                         r"max_predictions_per_seq=20"):
        pretraining_dataset(records, tokenizer, seq_length=SEQ, max_predictions_per_seq=20)
    with pytest.raises(ValueError, match="seq_length=32.*expects seq_length=128"):
        pretraining_dataset(records, tokenizer, seq_length=128, max_predictions_per_seq=P)
    with pytest.raises(ValueError, match="vocab_sha256"):
        pretraining_dataset(records, BertTokenizer(cased_vocab, lower_case=False),
                            seq_length=SEQ, max_predictions_per_seq=P)


def test_records_named_without_a_tfrecord_suffix_are_read_as_records(tokenizer, tmp_path):
    # The original tool names its output freely, e.g. tf_examples_00000.
    path = str(tmp_path / "tf_examples_00000")
    with tf.io.TFRecordWriter(path) as writer:
        for seed in range(3):
            writer.write(_original_example(seed)[0].SerializeToString())
    ds = pretraining_dataset(path, tokenizer, seq_length=SEQ, max_predictions_per_seq=P,
                             batch_size=3, seed=1, num_epochs=1)
    batch = next(ds.as_numpy_iterator())
    assert sorted(batch["next_sentence_labels"].tolist()) == [0, 0, 1]


def test_a_mix_of_record_and_text_files_is_an_error(tokenizer, tmp_path, shared_data):
    records = str(tmp_path / "a.tfrecord")
    with tf.io.TFRecordWriter(records) as writer:
        writer.write(_original_example(0)[0].SerializeToString())
    with pytest.raises(ValueError, match="mix TFRecords.*a.tfrecord.*and text"):
        pretraining_dataset([records, str(shared_data / "sample_text.txt")], tokenizer,
                            seq_length=SEQ, max_predictions_per_seq=P)


def test_records_named_freely_beside_records_named_tfrecord_are_all_records(tokenizer, tmp_path):
    paths = [str(tmp_path / "a.tfrecord"), str(tmp_path / "tf_examples_b")]
    for seed, path in enumerate(paths):
        with tf.io.TFRecordWriter(path) as writer:
            writer.write(_original_example(seed)[0].SerializeToString())
    ds = pretraining_dataset(paths, tokenizer, seq_length=SEQ, max_predictions_per_seq=P,
                             batch_size=2, seed=1, num_epochs=1)
    assert next(ds.as_numpy_iterator())["input_word_ids"].shape == (2, SEQ)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_a_rerun_stopped_while_writing_keeps_the_earlier_records_and_only_them(
        stop, generated_records, uncased_vocab, shared_data, tokenizer, tmp_path):
    out, _ = generated_records
    kept = tmp_path / "a.tfrecord"
    kept.write_bytes((out / "a.tfrecord").read_bytes())
    metadata = (out / ".a.metadata.json").read_text()
    (tmp_path / ".a.metadata.json").write_text(metadata)
    rerun = subprocess.Popen(
        [sys.executable, "-m", "keras_bert_impl.cli.create_pretraining_data",
         f"--input_file={shared_data / 'sample_text.txt'}", f"--output_file={kept}",
         f"--vocab_file={uncased_vocab}", f"--max_seq_length={SEQ}",
         f"--max_predictions_per_seq={P}", "--dupe_factor=100000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = tmp_path / ".a.tfrecord.partial"  # hidden: no shard pattern of a.tfrecord matches
    try:
        deadline = time.monotonic() + 300  # hang guard only
        while not (partial.exists() and partial.stat().st_size):
            assert rerun.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        rerun.send_signal(stop)
        rerun.wait(timeout=60)
    assert kept.read_bytes() == (out / "a.tfrecord").read_bytes()
    assert (tmp_path / ".a.metadata.json").read_text() == metadata
    # Ctrl-C removes the unfinished file; after SIGKILL it stays, and no pattern reads it.
    assert partial.exists() == (stop == signal.SIGKILL)
    assert tf.io.gfile.glob(str(tmp_path / "a.tfrecord*")) == [str(kept)]
    expected = json.loads(metadata)["num_instances"]
    rows = pretraining_dataset(str(tmp_path / "*"), tokenizer, seq_length=SEQ,
                               max_predictions_per_seq=P, batch_size=1, num_epochs=1)
    assert sum(1 for _ in rows) == expected


def test_a_truncated_record_file_is_an_error_naming_it_before_training_starts(
        generated_records, tokenizer, tmp_path):
    # Read lazily, it failed only when training reached the cut, unnamed, at every resume.
    out, _ = generated_records
    data = (out / "a.tfrecord").read_bytes()
    (tmp_path / "cut.tfrecord").write_bytes(data[:-100])
    with pytest.raises(ValueError, match=r"cut.tfrecord' are damaged \(truncated or corrupt\): "
                       r"truncated record at \d+"):
        pretraining_dataset(str(tmp_path / "cut.tfrecord"), tokenizer, seq_length=SEQ,
                            max_predictions_per_seq=P, batch_size=4)


def test_each_input_pipeline_checks_the_files_it_reads_once_per_process(
        generated_records, tokenizer, tmp_path, monkeypatch):
    # A TPU host builds one pipeline per core in turn: each read every file of the corpus.
    out, _ = generated_records
    data = (out / "a.tfrecord").read_bytes()
    good, cut = tmp_path / "good.tfrecord", tmp_path / "cut.tfrecord"
    good.write_bytes(data)
    cut.write_bytes(data[:-100])
    reads = []
    monkeypatch.setattr(tfrecords, "_check_every_record_reads",
                        lambda path, check=tfrecords._check_every_record_reads:
                        (reads.append(os.path.basename(path)), check(path)))

    def pipeline(index):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index)
        return pretraining_dataset(f"{good},{cut}", tokenizer, seq_length=SEQ,
                                   max_predictions_per_seq=P, batch_size=4, seed=1,
                                   input_context=context)

    for _ in range(3):
        pipeline(0)  # reads good.tfrecord only: files are sharded, two files for two pipelines
    assert reads == ["good.tfrecord"]
    with pytest.raises(ValueError, match=r"cut.tfrecord' are damaged"):
        pipeline(1)
    good.write_bytes(data[:-100])  # a changed file is checked again
    with pytest.raises(ValueError, match=r"good.tfrecord' are damaged"):
        pipeline(0)


def test_the_tool_refuses_output_files_whose_metadata_would_collide(
        shared_data, uncased_vocab, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keras_bert_impl.cli.create_pretraining_data",
         f"--input_file={shared_data / 'sample_text.txt'}", f"--vocab_file={uncased_vocab}",
         f"--output_file={tmp_path / 'a.tfrecord'},{tmp_path / 'a.tfrecords'}"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert "whose metadata would both be" in result.stderr and ".a.metadata.json" in result.stderr
    assert not list(tmp_path.iterdir())


def test_the_tool_refuses_a_dupe_factor_below_one():
    from absl import flags

    from keras_bert_impl.cli import create_pretraining_data as tool

    before = set(flags.FLAGS)
    tool.define_flags()
    try:
        with pytest.raises(flags.IllegalFlagValueError, match="--dupe_factor must be at least 1"):
            flags.FLAGS(["bert-create-pretraining-data", "--output_file=a.tfrecord",
                         "--vocab_file=vocab.txt", "--dupe_factor=0"])
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


def test_empty_records_beside_metadata_are_an_error_not_a_hang(generated_records, tokenizer,
                                                              tmp_path):
    out, _ = generated_records
    emptied = tmp_path / "a.tfrecord"
    emptied.write_bytes(b"")
    (tmp_path / ".a.metadata.json").write_text(
        (out / ".a.metadata.json").read_text())
    with pytest.raises(ValueError, match="a.tfrecord.*hold no records"):
        pretraining_dataset(str(emptied), tokenizer, seq_length=SEQ, max_predictions_per_seq=P)


def test_serialized_examples_round_trip(tmp_path):
    features = {"input_word_ids": np.arange(SEQ, dtype=np.int32),
                "input_mask": np.ones(SEQ, np.int32),
                "input_type_ids": np.zeros(SEQ, np.int32),
                "masked_lm_positions": np.array([1, 2, 0, 0, 0], np.int32),
                "masked_lm_ids": np.array([7, 8, 0, 0, 0], np.int32),
                "masked_lm_weights": np.array([1, 1, 0, 0, 0], np.float32),
                "next_sentence_labels": np.int32(1)}
    parsed = tfrecords.parse_fn(SEQ, P)(tf.constant([tfrecords.serialize_example(features)]))
    for key, value in features.items():
        np.testing.assert_array_equal(parsed[key].numpy()[0], value)


def _run_tool_in_process(tool, output_file, shared_data, uncased_vocab):
    """`bert-create-pretraining-data` on sample_text.txt in this process; flags removed after."""
    from absl import flags

    before = set(flags.FLAGS)
    tool.define_flags()
    try:
        flags.FLAGS(["bert-create-pretraining-data", f"--output_file={output_file}",
                     f"--input_file={shared_data / 'sample_text.txt'}",
                     f"--vocab_file={uncased_vocab}", f"--max_seq_length={SEQ}"])
        tool.main([])
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)


def test_an_output_file_that_is_a_directory_is_refused_before_the_corpus_is_read(
        uncased_vocab, shared_data, tmp_path):
    from absl import app

    from keras_bert_impl.cli import create_pretraining_data as tool

    (tmp_path / "out").mkdir()
    with pytest.raises(app.UsageError, match=r"--output_file=.*out is a directory"):
        _run_tool_in_process(tool, tmp_path / "out", shared_data, uncased_vocab)
    assert list(tmp_path.iterdir()) == [tmp_path / "out"]  # no .partial file left behind


def test_the_tool_logs_plain_progress_lines_into_a_file_or_pipe(
        uncased_vocab, shared_data, tmp_path, monkeypatch, capsys):
    from keras_bert_impl.cli import create_pretraining_data as tool

    monkeypatch.setattr(tool.ProgressLines, "interval", 0.0)  # a line per batch written
    _run_tool_in_process(tool, tmp_path / "a.tfrecord", shared_data, uncased_vocab)
    out = capsys.readouterr().out  # captured: not a terminal
    assert "\r" not in out and "\b" not in out and "\x1b" not in out
    counts = [int(line.split()[0]) for line in out.splitlines() if " instances (" in line]
    assert counts and counts == sorted(counts)
    assert f"Wrote {counts[-1]} instances to " in out


@pytest.mark.parametrize("failure", ["no instances", "interrupted"])
def test_a_run_that_writes_nothing_or_is_interrupted_leaves_no_unfinished_file(
        failure, uncased_vocab, shared_data, tmp_path, monkeypatch):
    from absl import app

    from keras_bert_impl.cli import create_pretraining_data as tool

    def instances(dataset, paths):  # what the writer leaves before each way of ending
        for path in paths:
            tf.io.gfile.GFile(path, "w").close()
        if failure == "interrupted":
            raise KeyboardInterrupt
        return [0] * len(paths), 0, 0

    monkeypatch.setattr(tool, "_write_instances", instances)
    with pytest.raises(app.UsageError if failure == "no instances" else KeyboardInterrupt,
                       match="the corpus gave no instances" if failure == "no instances"
                       else None):
        _run_tool_in_process(tool, tmp_path / "a.tfrecord", shared_data, uncased_vocab)
    assert list(tmp_path.iterdir()) == []


def test_an_output_file_named_twice_is_refused_and_earlier_output_kept(
        uncased_vocab, shared_data, tmp_path):
    from absl import app, flags

    from keras_bert_impl.cli import create_pretraining_data as tool

    earlier = tmp_path / "x.tfrecord"
    earlier.write_bytes(b"earlier records")
    before = set(flags.FLAGS)
    tool.define_flags()
    try:
        flags.FLAGS(["bert-create-pretraining-data",
                     f"--output_file={earlier},{tmp_path}/./x.tfrecord",
                     f"--input_file={shared_data / 'sample_text.txt'}",
                     f"--vocab_file={uncased_vocab}", f"--max_seq_length={SEQ}"])
        with pytest.raises(app.UsageError, match=r"--output_file names .*x.tfrecord more than "
                                                 "once"):
            tool.main([])
    finally:
        flags.FLAGS.unparse_flags()
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
    assert list(tmp_path.iterdir()) == [earlier] and earlier.read_bytes() == b"earlier records"


def test_a_corpus_of_one_line_documents_is_told_nsp_pairs_are_all_random(uncased_vocab, tmp_path):
    # A paragraph per line with blank lines between, as the Chinese sample corpus is.
    paragraphs = [f"paragraph {i} has several sentences . it goes on and on ." for i in range(30)]
    corpus = tmp_path / "paragraphs.txt"
    corpus.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "keras_bert_impl.cli.create_pretraining_data",
         f"--input_file={corpus}", f"--output_file={tmp_path / 'out.tfrecord'}",
         f"--vocab_file={uncased_vocab}", f"--max_seq_length={SEQ}",
         f"--max_predictions_per_seq={P}", "--dupe_factor=1"],
        check=False, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "every next-sentence pair is a random one" in result.stdout
    assert "split paragraphs at sentence ends" in result.stdout
