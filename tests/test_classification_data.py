"""Classification readers: TSV/CSV/JSONL files, labels, bad records, TFDS GLUE."""

import json

import numpy as np
import pytest
import tensorflow as tf

from keras_bert_impl.data.bad_records import BadRecordError
from keras_bert_impl.data.classification import (
    encode_labels,
    read_classification_file,
    read_tfds_glue,
    sorted_labels,
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_tsv_has_no_quoting_and_may_start_with_a_bom(tmp_path):
    path = write(tmp_path, "train.tsv", '\ufefflabel\tsentence\n1\t"quoted" it\'s\n0\tplain\n')
    data = read_classification_file(path)
    assert data.texts_a == ['"quoted" it\'s', "plain"]
    assert data.labels == ["1", "0"]
    assert data.sources == [f"{path}:2", f"{path}:3"]


def test_csv_is_standard_csv_with_quoted_commas_and_newlines(tmp_path):
    path = write(tmp_path, "train.csv", 'sentence,label\n"a, b",pos\n"two\nlines",neg\nc,pos\n')
    data = read_classification_file(path)
    assert data.texts_a == ["a, b", "two\nlines", "c"]
    assert data.labels == ["pos", "neg", "pos"]
    assert data.sources[2] == f"{path}:5"


def test_jsonl_reads_pairs_by_column_name(tmp_path):
    rows = [{"q": "first?", "p": "answer", "y": 1}, {"q": "second?", "p": "other", "y": 0}]
    path = write(tmp_path, "train.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    data = read_classification_file(path, text_a_column="q", text_b_column="p", label_column="y")
    assert data.texts_a == ["first?", "second?"]
    assert data.texts_b == ["answer", "other"]
    assert data.labels == ["1", "0"]


def test_a_malformed_tsv_row_is_an_error_naming_file_and_line(tmp_path):
    path = write(tmp_path, "train.tsv", "sentence\tlabel\ngood\t1\nbad\t1\textra\n")
    with pytest.raises(BadRecordError, match=rf"{path}:3: expected 2 tab-separated fields"):
        read_classification_file(path)


def test_bytes_that_are_not_utf8_are_an_error_naming_file_and_line(tmp_path):
    for name in ("train.tsv", "train.csv", "train.jsonl"):
        path = tmp_path / name
        path.write_bytes(b"sentence\tlabel\ngood\t1\ncaf\xe9\t0\n")
        with pytest.raises(ValueError, match=rf"{path}:3: not valid UTF-8"):
            read_classification_file(str(path))


def test_a_file_system_failure_is_an_os_error_naming_the_path():
    # TensorFlow's own error (UnimplementedError here; PermissionDenied, an object store's)
    # named neither the reader nor always the path.
    with pytest.raises(OSError, match="cannot read nosuchfs://bucket/train.tsv: File system "
                                      "scheme 'nosuchfs' not implemented"):
        read_classification_file("nosuchfs://bucket/train.tsv")


def test_an_unclosed_csv_quote_is_an_error_not_the_rest_of_the_file_in_one_field(tmp_path):
    rows = "".join(f"row {i},1\n" for i in range(6))
    path = write(tmp_path, "train.csv", f'sentence,label\nok,0\n"unclosed,1\n{rows}')
    for skip in (False, True):
        with pytest.raises(ValueError, match=rf"{path}:3: malformed CSV record"):
            read_classification_file(path, skip_bad_records=skip)


def test_bad_rows_are_skipped_and_counted_when_asked(tmp_path):
    path = write(tmp_path, "train.tsv", "sentence\tlabel\ngood\t1\nbad\t1\textra\nempty\t\n")
    data = read_classification_file(path, skip_bad_records=True)
    assert data.texts_a == ["good"]
    assert data.skipped_records == 2


def test_a_missing_column_is_named(tmp_path):
    path = write(tmp_path, "train.tsv", "text\tlabel\na\t1\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['sentence'\]"):
        read_classification_file(path)


@pytest.mark.parametrize("name", ["train.tsv", "train.csv"])
def test_a_column_named_twice_in_the_header_is_an_error(tmp_path, name):
    separator = "\t" if name.endswith("tsv") else ","
    path = write(tmp_path, name, separator.join(["sentence", "label", "label"]) + "\na" +
                 separator + "1" + separator + "2\n")
    with pytest.raises(ValueError, match=rf"{path}:1: header .* names column\(s\) \['label'\] "
                       "more than once"):
        read_classification_file(path)
    # Columns the task does not read may repeat.
    path = write(tmp_path, name, separator.join(["x", "sentence", "label", "x"]) + "\n" +
                 separator.join(["", "a", "1", ""]) + "\n")
    assert read_classification_file(path).texts_a == ["a"]


def test_jsonl_line_that_is_not_json_is_a_bad_record(tmp_path):
    path = write(tmp_path, "train.jsonl", '{"sentence": "a", "label": 1}\n{oops\n')
    with pytest.raises(BadRecordError, match=rf"{path}:2: not a JSON object"):
        read_classification_file(path)


def test_jsonl_text_cut_inside_a_surrogate_pair_is_a_bad_record_naming_its_line(tmp_path):
    # JSON may spell half of a UTF-16 pair, as posts cut at 140 UTF-16 units do.
    path = write(tmp_path, "train.jsonl", '{"sentence": "fine", "label": 1}\n'
                                          '{"sentence": "cut \\ud83d", "label": 0}\n')
    with pytest.raises(BadRecordError, match=rf"{path}:2: holds half of a UTF-16 surrogate"):
        read_classification_file(path)
    data = read_classification_file(path, skip_bad_records=True)
    assert data.texts_a == ["fine"] and data.skipped_records == 1


def test_jsonl_integer_labels_are_one_class_however_json_writes_them(tmp_path):
    rows = [{"sentence": "a", "label": 1}, {"sentence": "b", "label": 1.0},
            {"sentence": "c", "label": "1"}, {"sentence": "d", "label": 0}]
    path = write(tmp_path, "train.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    assert read_classification_file(path).labels == ["1", "1", "1", "0"]


@pytest.mark.parametrize("row, error", [
    ({"sentence": "a", "label": True}, (r"column 'label' must be a string or an integer, "
                                       r"found True")),
    ({"sentence": "a", "label": 0.5}, r"column 'label' must be a string or an integer"),
    ({"sentence": ["bad", "movie"], "label": 0}, (r"field\(s\) \['sentence'\] must be "
                                                 r"strings, found \['list'\]")),
])
def test_jsonl_values_of_the_wrong_type_are_bad_records_not_strings(tmp_path, row, error):
    path = write(tmp_path, "train.jsonl", json.dumps(row) + "\n")
    with pytest.raises(BadRecordError, match=rf"{path}:1: " + error):
        read_classification_file(path)


def test_labels_sort_numerically_when_all_are_numbers():
    assert sorted_labels(["10", "2", "1", "2"]) == ["1", "2", "10"]
    assert sorted_labels(["neg", "pos", "10"]) == ["10", "neg", "pos"]


def test_labels_sort_in_one_total_order_so_every_process_gives_the_same_ids():
    # Equal numbers by their text and NaN last; float alone left these to the hash seed.
    assert sorted_labels(["1.0", "nan", "1", "0", "01"]) == ["0", "01", "1", "1.0", "nan"]
    assert sorted_labels(["inf", "nan", "-inf", "2"]) == ["-inf", "2", "inf", "nan"]


def test_a_file_without_header_picks_columns_by_number_as_glue_cola(tmp_path):
    path = write(tmp_path, "train.tsv", "gj04\t1\t\tOur friends won't buy this analysis.\n"
                                        "gj04\t0\t*\tThey drank the pub.\n")
    data = read_classification_file(path, text_a_column="3", label_column=1, header=False)
    assert data.texts_a == ["Our friends won't buy this analysis.", "They drank the pub."]
    assert data.labels == ["1", "0"]
    assert data.sources == [f"{path}:1", f"{path}:2"]
    csv_path = write(tmp_path, "pairs.csv", 'a,"b, c",pos\nd,e,neg\n')
    pairs = read_classification_file(csv_path, text_a_column=0, text_b_column=1,
                                     label_column=2, header=False)
    assert pairs.texts_b == ["b, c", "e"] and pairs.labels == ["pos", "neg"]


def test_a_file_without_header_has_rows_as_wide_as_its_first(tmp_path):
    path = write(tmp_path, "train.tsv", "a\t1\nb\t0\textra\nc\t1\n")
    with pytest.raises(BadRecordError, match=rf"{path}:2: expected 2 tab-separated fields as "
                                             "the first row, found 3"):
        read_classification_file(path, text_a_column=0, label_column=1, header=False)
    data = read_classification_file(path, text_a_column=0, label_column=1, header=False,
                                    skip_bad_records=True)
    assert data.texts_a == ["a", "c"] and data.skipped_records == 1
    with pytest.raises(ValueError, match=r"the first row has 2 tab-separated fields \(numbered "
                                         r"from 0\); there is no field \[3\]"):
        read_classification_file(path, text_a_column=3, label_column=1, header=False)


def test_a_file_without_header_needs_field_numbers_and_a_tsv_or_csv(tmp_path):
    path = write(tmp_path, "train.tsv", "a\t1\n")
    with pytest.raises(ValueError, match="'sentence' is not a field number"):
        read_classification_file(path, header=False)
    with pytest.raises(ValueError, match="'²' is not a field number"):  # str.isdigit() takes it
        read_classification_file(path, text_a_column="²", label_column=1, header=False)
    jsonl = write(tmp_path, "train.jsonl", '{"sentence": "a", "label": 1}\n')
    with pytest.raises(ValueError, match="header=False is for .tsv and .csv"):
        read_classification_file(jsonl, text_a_column=0, label_column=1, header=False)


def test_an_eval_label_outside_the_training_labels_is_bad_data(tmp_path):
    path = write(tmp_path, "dev.tsv", "sentence\tlabel\na\t0\nb\t7\n")
    data = read_classification_file(path)
    with pytest.raises(BadRecordError, match=rf"{path}:3: label '7' is not one of"):
        encode_labels(data, ["0", "1"])
    kept, ids = encode_labels(data, ["0", "1"], skip_bad_records=True)
    assert kept.texts_a == ["a"] and ids.tolist() == [0] and kept.skipped_records == 1


def test_real_glue_files(shared_data):
    sst2 = read_classification_file(str(shared_data / "glue/SST-2/train.tsv"))
    assert len(sst2.labels) == 67349 and sorted_labels(sst2.labels) == ["0", "1"]
    mrpc = read_classification_file(
        str(shared_data / "glue/MRPC/train.tsv"),  # starts with a BOM
        text_a_column="#1 String", text_b_column="#2 String", label_column="Quality")
    assert len(mrpc.labels) == 3668 and mrpc.texts_a[0].startswith("Amrozi accused")


def mock_tfds(**kwargs):
    """`tfds.testing.mock_data` built from the dataset's code alone: nothing is downloaded."""
    tfds = pytest.importorskip("tensorflow_datasets")
    return tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, **kwargs)


def test_tfds_glue_reads_single_sentences_and_pairs_with_the_dataset_class_names():
    with mock_tfds(num_examples=5):
        sst2 = read_tfds_glue("glue/sst2", split="train")
        mrpc = read_tfds_glue("glue/mrpc", split="train")
    assert len(sst2.texts_a) == 5 and sst2.texts_b is None
    assert sst2.label_names == ["negative", "positive"]
    assert set(sst2.labels) <= {"negative", "positive"}
    assert len(mrpc.texts_b) == 5
    # Class-index order, which sorting would turn around.
    assert mrpc.label_names == ["not_equivalent", "equivalent"]


def test_a_tfds_set_that_cannot_be_downloaded_is_an_error_saying_how_to_get_it(
        tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    requests = pytest.importorskip("requests")

    def offline(self, *args, **kwargs):
        raise requests.exceptions.ConnectionError(
            "HTTPSConnectionPool(host='firebasestorage.googleapis.com'): Max retries exceeded")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(OSError) as raised:
        read_tfds_glue("glue/mrpc", split="validation", data_dir=str(tmp_path))
    message = str(raised.value)
    assert f"glue/mrpc is not prepared in {tmp_path}" in message
    assert "ConnectionError" in message and "Max retries exceeded" in message
    assert "tfds build glue/mrpc --data_dir=DIR" in message


@pytest.mark.parametrize("name, words", [
    ("nosuch", "Dataset nosuch not found"),
    ("glue/nosuchconfig", "BuilderConfig nosuchconfig not found"),
])
def test_an_unknown_tfds_name_is_a_short_error_not_the_whole_catalogue(tmp_path, name, words):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(ValueError, match=f"TFDS has no '{name}': .*{words}") as raised:
        read_tfds_glue(name, split="train", data_dir=str(tmp_path))
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 400


def qnli_examples(rows):
    """A mock `as_dataset` yielding the given (question, sentence, label) rows."""
    import tensorflow as tf

    def as_dataset(self, *args, **kwargs):
        examples = {"question": [r[0] for r in rows], "sentence": [r[1] for r in rows],
                    "label": [r[2] for r in rows], "idx": list(range(len(rows)))}
        return tf.data.Dataset.from_tensor_slices(
            {key: tf.constant(value, dtype=self.info.features[key].dtype)
             for key, value in examples.items()})

    return as_dataset


def test_tfds_pairs_keep_the_dataset_feature_order_and_unlabelled_examples_are_bad_records():
    rows = [("who wrote it?", "she wrote it.", 0), ("unlabelled?", "test split.", -1)]
    with mock_tfds(as_dataset_fn=qnli_examples(rows)):
        with pytest.raises(BadRecordError, match=r"glue/qnli\[test\] example 1: label -1"):
            read_tfds_glue("glue/qnli", split="test")
        qnli = read_tfds_glue("glue/qnli", split="test", skip_bad_records=True)
    # QNLI's "sentence" is the second text of a (question, sentence) pair.
    assert qnli.texts_a == ["who wrote it?"] and qnli.texts_b == ["she wrote it."]
    assert qnli.labels == ["entailment"] and qnli.skipped_records == 1


def test_a_tfds_regression_set_is_refused_for_classification():
    with mock_tfds(num_examples=2), pytest.raises(TypeError, match="glue/stsb"):
        read_tfds_glue("glue/stsb", split="train")


def test_pairs_are_packed_by_the_preprocessor_inside_tf_data(tmp_path, uncased_vocab):
    from keras_bert_impl.data.classification import classification_dataset
    from keras_bert_impl.text.preprocessor import BertPreprocessor
    from keras_bert_impl.text.tokenizer import BertTokenizer

    path = write(tmp_path, "train.tsv", "q\tp\tlabel\nhello world\tgood day\tyes\n")
    data = read_classification_file(path, text_a_column="q", text_b_column="p")
    data, ids = encode_labels(data, sorted_labels(data.labels))
    preprocessor = BertPreprocessor(BertTokenizer(uncased_vocab), seq_length=8)
    inputs, labels = next(iter(classification_dataset(data, ids, preprocessor, batch_size=4)))
    expected = preprocessor((np.array(["hello world"]), np.array(["good day"])))
    for name, value in expected.items():
        assert inputs[name].numpy().tolist() == value.numpy().tolist()
    assert inputs["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1, 1, 0]]
    assert labels.numpy().tolist() == [0]


@pytest.mark.parametrize("pairs", [False, True])
def test_training_batches_have_a_static_batch_size_as_tpus_compile_for(tmp_path, uncased_vocab,
                                                                       pairs):
    from keras_bert_impl.data.classification import classification_dataset
    from keras_bert_impl.text.preprocessor import BertPreprocessor
    from keras_bert_impl.text.tokenizer import BertTokenizer

    path = write(tmp_path, "train.tsv", "q\tp\tlabel\n" + "a b\tc\tyes\nd\te f\tno\n" * 5)
    data = read_classification_file(path, text_a_column="q",
                                    text_b_column="p" if pairs else None)
    data, ids = encode_labels(data, sorted_labels(data.labels))
    preprocessor = BertPreprocessor(BertTokenizer(uncased_vocab), seq_length=8)
    dataset = classification_dataset(data, ids, preprocessor, batch_size=4, repeat=True)
    inputs_spec, labels_spec = dataset.element_spec
    assert {name: spec.shape.as_list() for name, spec in inputs_spec.items()} == {
        "input_word_ids": [4, 8], "input_mask": [4, 8], "input_type_ids": [4, 8]}
    assert labels_spec.shape.as_list() == [4]


def test_a_resumed_stream_skips_batches_before_tokenizing_them_and_goes_on_alike(
        tmp_path, uncased_vocab):
    from keras_bert_impl.data.classification import classification_dataset
    from keras_bert_impl.text.preprocessor import BertPreprocessor
    from keras_bert_impl.text.tokenizer import BertTokenizer

    rows = "".join(f"word{i} text\t{'yes' if i % 3 else 'no'}\n" for i in range(10))
    data = read_classification_file(write(tmp_path, "train.tsv", "q\tlabel\n" + rows),
                                    text_a_column="q")
    data, ids = encode_labels(data, sorted_labels(data.labels))
    preprocessor = BertPreprocessor(BertTokenizer(uncased_vocab), seq_length=8)

    def batches(skip, count):
        dataset = classification_dataset(data, ids, preprocessor, batch_size=4, shuffle=True,
                                         repeat=True, seed=7, skip_batches=skip)
        return [(inputs["input_word_ids"].numpy().tolist(), labels.numpy().tolist())
                for inputs, labels in dataset.take(count)]

    assert batches(3, 5) == batches(0, 8)[3:]  # over epochs too: 10 rows, 4 a batch


def test_skipped_batches_never_reach_the_tokenizer(tmp_path, uncased_vocab):
    from keras_bert_impl.data.classification import classification_dataset
    from keras_bert_impl.text.preprocessor import BertPreprocessor
    from keras_bert_impl.text.tokenizer import BertTokenizer

    preprocessor = BertPreprocessor(BertTokenizer(uncased_vocab), seq_length=8)

    def refusing_poison(texts):
        clean = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(tf.strings.regex_full_match(texts, ".*poison.*"))),
            [texts])
        with tf.control_dependencies([clean]):
            return {name: tf.identity(value) for name, value in preprocessor(texts).items()}

    rows = "poison\tno\n" + "".join(f"word{i}\tyes\n" for i in range(9))
    data = read_classification_file(write(tmp_path, "train.tsv", "q\tlabel\n" + rows),
                                    text_a_column="q")
    data, ids = encode_labels(data, sorted_labels(data.labels))
    resumed = classification_dataset(data, ids, refusing_poison, batch_size=4, skip_batches=1)
    assert [labels.numpy().tolist() for _, labels in resumed] == [[1] * 4, [1] * 2]
    with pytest.raises(tf.errors.InvalidArgumentError):
        list(classification_dataset(data, ids, refusing_poison, batch_size=4))


def test_labels_that_differ_only_in_surrounding_spaces_are_one_class(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"sentence": "a", "label": "pos "}\n{"sentence": "b", "label": " pos"}\n'
                    '{"sentence": "c", "label": "neg"}\n', encoding="utf-8")
    data = read_classification_file(str(path))
    assert sorted_labels(data.labels) == ["neg", "pos"]
