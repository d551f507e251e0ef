"""BertPreprocessor packs [CLS] a [SEP] (b [SEP]) and truncates pairs as the original BERT."""

import random

import numpy as np
import pytest
import tensorflow as tf

from keras_bert_impl.text.preprocessor import BertPreprocessor, truncated_pair_lengths
from keras_bert_impl.text.tokenizer import BertTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)]
PAD, CLS, SEP = 0, 2, 3


def truncate_seq_pair(tokens_a, tokens_b, max_length):
    """google-research/bert `_truncate_seq_pair`, verbatim in behaviour."""
    while True:
        total_length = len(tokens_a) + len(tokens_b)
        if total_length <= max_length:
            break
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def convert_single_example(tokens_a, tokens_b, max_seq_length):
    """The word ids of run_classifier.py's `convert_single_example`, unpadded."""
    if tokens_b:
        truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
    else:
        tokens_a = tokens_a[:max_seq_length - 2]
    return [CLS] + tokens_a + [SEP] + (tokens_b + [SEP] if tokens_b else [])


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    return BertTokenizer(str(path))


def _text(n, offset=0):
    return " ".join(f"w{(offset + i) % 40}" for i in range(n))


def test_single_texts_are_packed_cls_tokens_sep_then_padding(tokenizer):
    out = BertPreprocessor(tokenizer, seq_length=8)(tf.constant(["w1 w2 w3", ""]))
    assert out["input_word_ids"].numpy().tolist() == [
        [CLS, 6, 7, 8, SEP, PAD, PAD, PAD],
        [CLS, SEP, PAD, PAD, PAD, PAD, PAD, PAD],
    ]
    assert out["input_mask"].numpy().tolist() == [[1] * 5 + [0] * 3, [1] * 2 + [0] * 6]
    assert out["input_type_ids"].numpy().tolist() == [[0] * 8, [0] * 8]
    assert all(t.dtype == tf.int32 for t in out.values())


def test_long_single_texts_keep_their_first_seq_length_minus_two_tokens(tokenizer):
    ids = BertPreprocessor(tokenizer, seq_length=6)(tf.constant([_text(20)]))["input_word_ids"]
    assert ids.numpy().tolist() == [[CLS, 5, 6, 7, 8, SEP]]


def test_pairs_are_packed_with_type_ids_one_for_the_second_segment(tokenizer):
    out = BertPreprocessor(tokenizer, seq_length=10)((tf.constant(["w0 w1"]), tf.constant(["w2"])))
    assert out["input_word_ids"].numpy().tolist() == [[CLS, 5, 6, SEP, 7, SEP, 0, 0, 0, 0]]
    assert out["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1, 0, 0, 0, 0]]
    assert out["input_mask"].numpy().tolist() == [[1] * 6 + [0] * 4]


def test_a_pair_whose_second_text_has_no_tokens_is_packed_as_a_single_text(tokenizer):
    pre = BertPreprocessor(tokenizer, seq_length=6)
    pair = pre((tf.constant(["w0 w1 w2 w3 w4", "w0"]), tf.constant(["", "w1"])))
    single = pre(tf.constant(["w0 w1 w2 w3 w4"]))
    assert pair["input_word_ids"].numpy().tolist() == [
        single["input_word_ids"].numpy().tolist()[0], [CLS, 5, SEP, 6, SEP, PAD]]
    assert pair["input_type_ids"].numpy().tolist() == [[0] * 6, [0, 0, 0, 1, 1, 0]]
    assert pair["input_mask"].numpy().tolist() == [[1] * 6, [1] * 5 + [0]]


def test_closed_form_truncation_equals_the_original_loop_on_every_small_case():
    lengths = np.array([(a, b) for a in range(25) for b in range(25)], np.int64)
    for budget in range(1, 30):
        kept_a, kept_b = truncated_pair_lengths(lengths[:, 0], lengths[:, 1], budget)
        for (a, b), got_a, got_b in zip(lengths, kept_a.numpy(), kept_b.numpy()):
            tokens_a, tokens_b = list(range(a)), list(range(b))
            truncate_seq_pair(tokens_a, tokens_b, budget)
            assert (got_a, got_b) == (len(tokens_a), len(tokens_b)), (a, b, budget)


def test_pair_truncation_matches_the_original_on_random_length_pairs(tokenizer):
    rng = random.Random(7)
    for seq_length in (5, 8, 13, 32):
        pairs = [(rng.randint(0, 40), rng.randint(0, 40)) for _ in range(64)]
        first = tf.ragged.constant([list(range(10, 10 + a)) for a, _ in pairs], tf.int32)
        second = tf.ragged.constant([list(range(100, 100 + b)) for _, b in pairs], tf.int32)
        ids = BertPreprocessor(tokenizer, seq_length).pack([first, second])["input_word_ids"]
        for (a, b), row in zip(pairs, ids.numpy().tolist()):
            expected = convert_single_example(list(range(10, 10 + a)),
                                              list(range(100, 100 + b)), seq_length)
            assert row == expected + [PAD] * (seq_length - len(expected)), (a, b, seq_length)


def test_pack_accepts_int64_segments(tokenizer):
    segment = tf.ragged.constant([[7, 8]], tf.int64)
    out = BertPreprocessor(tokenizer, seq_length=5).pack([segment])
    assert out["input_word_ids"].numpy().tolist() == [[CLS, 7, 8, SEP, PAD]]


def test_outputs_have_static_shapes_under_tf_function_with_a_none_batch(tokenizer):
    preprocessor = BertPreprocessor(tokenizer, seq_length=16)
    spec = tf.TensorSpec([None], tf.string)
    single = tf.function(preprocessor, input_signature=[spec]).get_concrete_function()
    pair = tf.function(
        lambda a, b: preprocessor((a, b)), input_signature=[spec, spec]
    ).get_concrete_function()
    for function in (single, pair):
        for tensor in tf.nest.flatten(function.structured_outputs):
            assert tensor.shape.as_list() == [None, 16]
            assert tensor.dtype == tf.int32


def test_the_packing_graph_has_no_assert_ops(tokenizer):
    preprocessor = BertPreprocessor(tokenizer, seq_length=16)
    spec = tf.TensorSpec([None], tf.string)
    graph = (
        tf.function(lambda a, b: preprocessor((a, b)), input_signature=[spec, spec])
        .get_concrete_function()
        .graph.as_graph_def()
    )
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    assert "Assert" not in {node.op for node in nodes}  # they break TPU input pipelines


def test_an_empty_batch_packs_to_zero_rows(tokenizer):
    out = BertPreprocessor(tokenizer, seq_length=6)(tf.constant([], tf.string))
    assert out["input_word_ids"].shape == (0, 6)


def test_runs_inside_tf_data_map_and_batches_with_static_shapes(tokenizer):
    texts = [_text(n) for n in range(12)]
    dataset = tf.data.Dataset.from_tensor_slices((texts, texts[::-1])).batch(4)
    dataset = dataset.map(lambda a, b: BertPreprocessor(tokenizer, seq_length=9)((a, b)))
    assert dataset.element_spec["input_word_ids"].shape.as_list() == [None, 9]
    batches = list(dataset)
    assert len(batches) == 3
    # "" paired with w0..w10: the empty first segment leaves the whole budget to the second.
    first_row = batches[0]["input_word_ids"].numpy()[0].tolist()
    assert first_row == [CLS, SEP, 5, 6, 7, 8, 9, 10, SEP]


@pytest.mark.parametrize("seq_length", [2, 0, 3.0, "128"])
def test_seq_length_below_three_or_not_an_int_is_a_clear_error(tokenizer, seq_length):
    with pytest.raises(ValueError, match="seq_length must be an int >= 3"):
        BertPreprocessor(tokenizer, seq_length=seq_length)


@pytest.mark.parametrize("seq_length", [3, 4])
def test_pairs_need_room_for_one_token_of_each_segment(tokenizer, seq_length):
    preprocessor = BertPreprocessor(tokenizer, seq_length=seq_length)
    with pytest.raises(ValueError, match="too short for pairs: need >= 5"):
        preprocessor((tf.constant(["w1"]), tf.constant(["w2"])))


def test_more_than_two_segments_is_a_clear_error(tokenizer):
    segment = tf.ragged.constant([[7]], tf.int32)
    with pytest.raises(ValueError, match="1 or 2 segments, got 3"):
        BertPreprocessor(tokenizer, seq_length=8).pack([segment] * 3)


def test_pairs_of_different_batch_sizes_are_a_clear_error(tokenizer):
    preprocessor = BertPreprocessor(tokenizer, seq_length=16)
    with pytest.raises(ValueError, match="the first segment has 2 texts but the second has 1"):
        preprocessor((tf.constant(["a", "b"]), tf.constant(["c"])))
