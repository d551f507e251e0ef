"""pretraining_dataset: raw text -> MLM + NSP batches (issue 3)."""

import functools
import gzip
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_impl.data.pretraining import pretraining_dataset
from keras_bert_impl.text.tokenizer import BertTokenizer

SEQ, P, BATCH = 64, 10, 16


@pytest.fixture(scope="module", autouse=True)
def seeded():
    """A `seed` given to tf.data's random ops is mixed with TensorFlow's global seed, which
    earlier tests (and tools run in-process) leave set: the same streams whatever ran
    before. Module-scoped, so that it comes before the module's data fixtures."""
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab):
    return BertTokenizer(uncased_vocab, lower_case=True)


@pytest.fixture(scope="module")
def english_corpus(shared_data, tmp_path_factory):
    """Pride and Prejudice in the original format: one sentence per line,
    a blank line between chapters."""
    text = (shared_data / "corpus/en/pg1342_pride_and_prejudice.txt").read_text("utf-8")
    path = tmp_path_factory.mktemp("corpus") / "pride.txt"
    with open(path, "w", encoding="utf-8") as f:
        for chapter in re.split(r"\n\s*CHAPTER [IVXLC]+\.?\s*\n", text):
            flat = " ".join(chapter.split())
            f.writelines(sentence + "\n" for sentence in re.split(r"(?<=[.!?])\s+", flat))
            f.write("\n")
    return str(path)


@functools.lru_cache
def _vocab_words(vocab_file):
    with open(vocab_file, encoding="utf-8") as f:
        vocab = f.read().splitlines()
    words = [w for w in vocab if re.fullmatch("[a-z]{4,8}", w)]
    return words, {w: i for i, w in enumerate(vocab)}


def _marker_words(tokenizer, start, count):
    return _vocab_words(tokenizer.vocab_file)[0][start:start + count]


def _write_marked_corpus(path, tokenizer, num_docs, lines_per_doc, first_doc=0):
    """Each line is `D L D L`: D marks the document, L the line number."""
    docs = _marker_words(tokenizer, 0, 400)
    lines = _marker_words(tokenizer, 1000, lines_per_doc)
    with open(path, "w", encoding="utf-8") as f:
        for d in range(first_doc, first_doc + num_docs):
            f.writelines(f"{docs[d]} {line} {docs[d]} {line}\n" for line in lines)
            f.write("\n")
    return str(path)


def _decode_markers(tokenizer, ids):
    doc_index, line_index = _marker_index(tokenizer.vocab_file)
    return ([doc_index[t] for t in ids if t in doc_index],
            [line_index[t] for t in ids if t in line_index])


@functools.lru_cache
def _marker_index(vocab_file):
    words, ids_of = _vocab_words(vocab_file)
    return ({ids_of[w]: i for i, w in enumerate(words[:400])},
            {ids_of[w]: i for i, w in enumerate(words[1000:1200])})


def _collect(dataset, num_batches):
    batches = list(dataset.take(num_batches).as_numpy_iterator())
    assert len(batches) == num_batches, "the dataset ended early"
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def _original_ids(batch):
    ids = batch["input_word_ids"].copy()
    rows = np.arange(len(ids))[:, None]
    weights = batch["masked_lm_weights"] > 0
    ids[rows.repeat(P, 1)[weights], batch["masked_lm_positions"][weights]] = \
        batch["masked_lm_ids"][weights]
    return ids


ENGLISH_ARGS = {"seq_length": SEQ, "max_predictions_per_seq": P, "batch_size": BATCH,
                "seed": 2, "document_shuffle_buffer": 50, "instance_shuffle_buffer": 100}


@pytest.fixture(scope="module")
def english(tokenizer, english_corpus):
    """One dataset over real text and 30 of its batches, shared by the tests."""
    ds = pretraining_dataset(english_corpus, tokenizer, **ENGLISH_ARGS)
    batches = list(ds.take(30).as_numpy_iterator())
    return ds, batches, {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_features_have_the_documented_names_static_shapes_and_dtypes(english):
    spec = english[0].element_spec
    assert isinstance(spec, dict)
    expected = {
        "input_word_ids": ([BATCH, SEQ], tf.int32), "input_mask": ([BATCH, SEQ], tf.int32),
        "input_type_ids": ([BATCH, SEQ], tf.int32),
        "masked_lm_positions": ([BATCH, P], tf.int32), "masked_lm_ids": ([BATCH, P], tf.int32),
        "masked_lm_weights": ([BATCH, P], tf.float32), "next_sentence_labels": ([BATCH], tf.int32),
    }
    assert {k: (v.shape.as_list(), v.dtype) for k, v in spec.items()} == expected
    for batch in english[1]:
        assert {k: (list(v.shape), v.dtype) for k, v in batch.items()} == {
            k: (shape, dtype.as_numpy_dtype) for k, (shape, dtype) in expected.items()}


def test_masking_statistics_follow_the_original_rule_on_real_text(tokenizer, english):
    batch = english[2]
    mask = batch["input_mask"]
    num_tokens = mask.sum(1)
    weights = batch["masked_lm_weights"]
    expected = np.minimum(P, np.maximum(1, np.round(num_tokens * 0.15)))
    np.testing.assert_array_equal(weights.sum(1), expected)
    assert 0.13 < weights.sum() / num_tokens.sum() < 0.16

    original = _original_ids(batch)
    chosen = weights > 0
    positions = batch["masked_lm_positions"][chosen]
    rows = np.nonzero(chosen)[0]
    assert (positions < num_tokens[rows]).all()
    special = {tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id}
    assert not set(batch["masked_lm_ids"][chosen]) & special
    # [CLS]/[SEP] stay in place: [CLS] first, two [SEP] that end the segments.
    assert (original[:, 0] == tokenizer.cls_id).all()
    assert ((original == tokenizer.sep_id) & (mask == 1)).sum(1).tolist() == [2] * len(mask)
    now = batch["input_word_ids"][rows, positions]
    label = batch["masked_lm_ids"][chosen]
    as_mask = np.mean(now == tokenizer.mask_id)
    unchanged = np.mean(now == label)
    other = 1 - as_mask - unchanged
    assert abs(as_mask - 0.8) < 0.03 and abs(unchanged - 0.1) < 0.025 and abs(other - 0.1) < 0.025
    positions_in_row = np.where(chosen, batch["masked_lm_positions"], 10**6)
    assert (np.diff(np.sort(positions_in_row, 1), axis=1) >= 0).all()
    np.testing.assert_array_equal(batch["masked_lm_positions"][~chosen], 0)
    np.testing.assert_array_equal(batch["masked_lm_ids"][~chosen], 0)


def test_next_sentence_labels_are_balanced_and_mean_actual_next_or_random(tokenizer, tmp_path):
    corpus = _write_marked_corpus(tmp_path / "marked.txt", tokenizer, num_docs=60,
                                  lines_per_doc=40)
    ds = pretraining_dataset(corpus, tokenizer, seq_length=SEQ, max_predictions_per_seq=P,
                             batch_size=BATCH, seed=4, document_shuffle_buffer=20,
                             instance_shuffle_buffer=50, num_epochs=1, short_seq_prob=0.0)
    batch = _collect(ds, 10)
    original = _original_ids(batch)
    labels = batch["next_sentence_labels"]
    assert 0.35 < labels.mean() < 0.65  # 160 labels: one standard deviation is 0.04
    self_paired = set()
    for ids, types, mask, label in zip(original, batch["input_type_ids"],
                                       batch["input_mask"], labels):
        real = mask == 1
        docs_a, lines_a = _decode_markers(tokenizer, ids[real & (types == 0)])
        docs_b, lines_b = _decode_markers(tokenizer, ids[real & (types == 1)])
        assert docs_a and docs_b
        if label == 0:
            assert set(docs_a) == set(docs_b) and len(set(docs_a)) == 1
            assert min(lines_b) >= max(lines_a)
        else:
            if set(docs_a) == set(docs_b):
                self_paired.update(docs_a)
    # Only the first document of the stream pairs with itself.
    assert len(self_paired) <= 1


def test_random_segments_of_a_small_repeated_corpus_come_from_another_document(
        tokenizer, tmp_path):
    """An endless stream of three documents often holds copies of one document side by
    side; B of a label-1 pair must still come from another document, as the original's
    retries for a different document make it."""
    corpus = _write_marked_corpus(tmp_path / "three.txt", tokenizer, num_docs=3,
                                  lines_per_doc=30)
    ds = pretraining_dataset(corpus, tokenizer, seq_length=SEQ, max_predictions_per_seq=P,
                             batch_size=BATCH, seed=5, short_seq_prob=0.0)
    batch = _collect(ds, 8)
    own_document = 0
    random_pairs = 0
    for ids, types, mask, label in zip(_original_ids(batch), batch["input_type_ids"],
                                       batch["input_mask"], batch["next_sentence_labels"]):
        if label == 1:
            docs_a, _ = _decode_markers(tokenizer, ids[(mask == 1) & (types == 0)])
            docs_b, _ = _decode_markers(tokenizer, ids[(mask == 1) & (types == 1)])
            random_pairs += 1
            own_document += bool(set(docs_a) & set(docs_b))
    assert random_pairs > 30
    # The stream's first document has no earlier one: it keeps actual next segments
    # (a one-sentence chunk, rare here, would still take B from its own document).
    assert own_document <= 1, f"{own_document} of {random_pairs} random Bs from A's document"


def test_same_seed_gives_the_same_batches_and_start_step_resumes_the_stream(
        tokenizer, english_corpus, english):
    again = list(pretraining_dataset(english_corpus, tokenizer, **ENGLISH_ARGS)
                 .take(2).as_numpy_iterator())
    resumed = next(pretraining_dataset(english_corpus, tokenizer, start_step=3,
                                       **ENGLISH_ARGS).as_numpy_iterator())
    for expected, batch in zip(english[1], again):
        for key in expected:
            np.testing.assert_array_equal(expected[key], batch[key])
    for key in resumed:
        np.testing.assert_array_equal(resumed[key], english[1][3][key])
    assert not np.array_equal(english[1][0]["input_word_ids"], english[1][1]["input_word_ids"])


def test_reseeding_on_resume_starts_a_fresh_stream_instead_of_skipping(
        tokenizer, english_corpus, english):
    from keras_bert_impl.data.corpus import resume_seed

    seed = ENGLISH_ARGS["seed"]
    reseeded = next(pretraining_dataset(english_corpus, tokenizer, start_step=3,
                                        reseed_on_resume=True, **ENGLISH_ARGS)
                    .as_numpy_iterator())
    fresh = next(pretraining_dataset(english_corpus, tokenizer,
                                     **{**ENGLISH_ARGS, "seed": resume_seed(seed, 3)})
                 .as_numpy_iterator())
    for key in fresh:
        np.testing.assert_array_equal(reseeded[key], fresh[key])
    skipped = english[1][3]  # the fourth batch of the stream, where skipping resumes
    assert not np.array_equal(reseeded["input_word_ids"], skipped["input_word_ids"])
    # Without a seed the stream is random anyway: nothing is read to be skipped.
    unseeded = pretraining_dataset(english_corpus, tokenizer, start_step=10**9, num_epochs=1,
                                   **{**ENGLISH_ARGS, "seed": None})
    assert next(unseeded.as_numpy_iterator())["input_word_ids"].shape[1] == SEQ


def test_masks_are_drawn_afresh_each_epoch_and_capped_by_max_predictions(tokenizer, tmp_path):
    corpus = _write_marked_corpus(tmp_path / "one_doc.txt", tokenizer, num_docs=1,
                                  lines_per_doc=8)
    ds = pretraining_dataset(corpus, tokenizer, seq_length=SEQ, max_predictions_per_seq=3,
                             batch_size=1, seed=9, num_epochs=6, short_seq_prob=0.0)
    batches = list(ds.as_numpy_iterator())
    assert batches[0]["masked_lm_weights"].shape == (1, 3)
    for batch in batches:
        budget = min(3, max(1, round(batch["input_mask"].sum() * 0.15)))
        assert batch["masked_lm_weights"].sum() == budget
    assert any(batch["input_mask"].sum() * 0.15 > 3.5 for batch in batches)
    positions = [tuple(b["masked_lm_positions"][0]) for b in batches]
    assert len(positions) >= 6
    assert len(set(positions)) > 1
    # A finite dataset iterated again (a new fit epoch) also re-draws.
    again = [tuple(b["masked_lm_positions"][0]) for b in ds.as_numpy_iterator()]
    assert again != positions


def test_input_contexts_see_disjoint_documents_and_per_replica_batches(tokenizer, tmp_path):
    one_file = _write_marked_corpus(tmp_path / "one.txt", tokenizer, num_docs=40,
                                    lines_per_doc=20)
    (tmp_path / "many").mkdir()
    for i in range(4):
        _write_marked_corpus(tmp_path / "many" / f"part{i}.txt", tokenizer, num_docs=10,
                             lines_per_doc=20, first_doc=10 * i)
    three = str(tmp_path / "many" / "part[0-2].txt")
    # (files, pipelines, seed): one file and fewer files than pipelines shard
    # documents (every pipeline must then read the files in the same order),
    # four files over two pipelines shard files.
    cases = [(one_file, 2, 1), (str(tmp_path / "many" / "part*.txt"), 2, 1),
             (three, 4, 1), (three, 4, None)]
    for files, pipelines, seed in cases:
        seen = []
        for pipeline in range(pipelines):
            context = tf.distribute.InputContext(num_input_pipelines=pipelines,
                                                 input_pipeline_id=pipeline,
                                                 num_replicas_in_sync=pipelines)
            ds = pretraining_dataset(files, tokenizer, seq_length=SEQ, max_predictions_per_seq=P,
                                     batch_size=8, seed=seed, input_context=context,
                                     num_epochs=1, instance_shuffle_buffer=10,
                                     drop_remainder=False)
            assert ds.element_spec["input_word_ids"].shape.as_list() in ([8 // pipelines, SEQ],
                                                                         [None, SEQ])
            docs = set()
            for batch in ds.as_numpy_iterator():
                ids = _original_ids(batch)
                for row, types in zip(ids, batch["input_type_ids"]):
                    docs.update(_decode_markers(tokenizer, row[types == 0])[0])
            seen.append(docs)
        assert all(seen), (files, pipelines, seed)
        overlap = [a & b for i, a in enumerate(seen) for b in seen[i + 1:]]
        assert not any(overlap), (files, pipelines, seed, overlap)


def test_a_glob_of_files_is_interleaved(tokenizer, tmp_path):
    for i in range(3):
        _write_marked_corpus(tmp_path / f"part{i}.txt", tokenizer, num_docs=10,
                             lines_per_doc=5, first_doc=10 * i)
    ds = pretraining_dataset(str(tmp_path / "part*.txt"), tokenizer, seq_length=SEQ,
                             max_predictions_per_seq=P, batch_size=9, seed=1,
                             document_shuffle_buffer=1, instance_shuffle_buffer=1)
    batch = next(ds.as_numpy_iterator())
    files = {_decode_markers(tokenizer, row[types == 0])[0][0] // 10
             for row, types in zip(_original_ids(batch), batch["input_type_ids"])}
    assert files == {0, 1, 2}


def test_gzip_and_comma_separated_patterns_read_like_plain_files(tokenizer, tmp_path):
    plain = _write_marked_corpus(tmp_path / "a.txt", tokenizer, num_docs=5, lines_per_doc=20)
    with open(plain, "rb") as src, gzip.open(tmp_path / "a_copy.txt.gz", "wb") as dst:
        dst.write(src.read())
    kwargs = {"seq_length": SEQ, "max_predictions_per_seq": P, "batch_size": 4, "seed": 3}
    from_plain = next(pretraining_dataset(plain, tokenizer, **kwargs).as_numpy_iterator())
    from_gzip = next(pretraining_dataset(f"{tmp_path / '*.gz'}, ", tokenizer,
                                         **kwargs).as_numpy_iterator())
    for key in from_plain:
        np.testing.assert_array_equal(from_plain[key], from_gzip[key])


def test_whole_word_masking_masks_every_wordpiece_of_a_word(tokenizer, english_corpus):
    ds = pretraining_dataset(english_corpus, tokenizer, seq_length=SEQ,
                             max_predictions_per_seq=P, batch_size=BATCH, seed=6,
                             whole_word_masking=True, instance_shuffle_buffer=50)
    batch = _collect(ds, 10)
    original = _original_ids(batch)
    continuation = np.array([t.startswith("##") for t in tokenizer.vocab])
    multi_piece_words_masked = 0
    for ids, mask, positions, weights in zip(original, batch["input_mask"],
                                             batch["masked_lm_positions"],
                                             batch["masked_lm_weights"]):
        chosen = np.zeros(len(ids), bool)
        chosen[positions[weights > 0]] = True
        budget = min(P, max(1, round(mask.sum() * 0.15)))
        assert chosen.sum() <= budget
        special = (ids == tokenizer.cls_id) | (ids == tokenizer.sep_id) | (mask == 0)
        word_start = ~continuation[ids] | special | np.roll(special, 1)
        word_ids = np.cumsum(word_start)
        for word in np.unique(word_ids[chosen]):
            members = word_ids == word
            assert chosen[members].all(), tokenizer.vocab and [tokenizer.vocab[t] for t in ids]
            multi_piece_words_masked += members.sum() > 1
    assert multi_piece_words_masked > 0


def test_whole_word_masking_groups_chinese_characters_into_jieba_words(chinese_vocab, tmp_path):
    jieba = pytest.importorskip("jieba")
    tokenizer = BertTokenizer(chinese_vocab, lower_case=True)
    sentences = ["我们今天去北京大学图书馆看书。", "研究生命的起源是科学家的工作。",
                 "中华人民共和国成立于一九四九年。", "他喜欢在公园里跑步和打篮球。"]
    with open(tmp_path / "zh.txt", "w", encoding="utf-8") as f:
        f.writelines("\n".join(sentences[i % 4:] + sentences[:i % 4]) + "\n\n" for i in range(30))
    words = {w for s in sentences for w in jieba.lcut(s)}
    ds = pretraining_dataset(str(tmp_path / "zh.txt"), tokenizer, seq_length=SEQ,
                             max_predictions_per_seq=P, batch_size=8, seed=1,
                             whole_word_masking=True, instance_shuffle_buffer=10)
    batch = _collect(ds, 4)
    original = _original_ids(batch)
    multi_char_runs = 0
    for ids, positions, weights in zip(original, batch["masked_lm_positions"],
                                       batch["masked_lm_weights"]):
        chosen = sorted(positions[weights > 0])
        runs, run = [], [chosen[0]]
        for p in chosen[1:]:
            if p == run[-1] + 1:
                run.append(p)
            else:
                runs.append(run)
                run = [p]
        runs.append(run)
        edges = (tokenizer.cls_id, tokenizer.sep_id)
        for run in runs:
            text = "".join(tokenizer.vocab[ids[p]] for p in run)
            multi_char_runs += len(run) > 1
            # A masked run is one or more whole jieba words; truncation may have cut the
            # word next to a [CLS] or [SEP], whose remaining piece is then a word of its own.
            assert _whole_words_but_for_cuts(
                text, words, cut_before=ids[run[0] - 1] in edges,
                cut_after=ids[run[-1] + 1] == tokenizer.sep_id), text
    assert multi_char_runs > 0


def test_whole_word_masking_without_jieba_warns_that_chinese_is_masked_by_character(
        chinese_vocab, tmp_path, monkeypatch):
    from absl import logging

    from keras_bert_impl.data import chinese_words

    monkeypatch.setattr(chinese_words, "jieba_available", lambda: False)
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda message, *args: warnings.append(message % args))
    (tmp_path / "zh.txt").write_text("我们今天去北京。\n他喜欢跑步。\n\n" * 4, encoding="utf-8")
    pretraining_dataset(str(tmp_path / "zh.txt"), BertTokenizer(chinese_vocab), seq_length=SEQ,
                        max_predictions_per_seq=P, batch_size=2, whole_word_masking=True)
    assert any("jieba is not installed" in w and "character by character" in w for w in warnings)


def test_a_script_ending_with_a_jieba_pipeline_still_running_exits(shared_data, chinese_vocab):
    """Python stops threads at exit; one in a jieba call left the iterator's deletion waiting."""
    pytest.importorskip("jieba")
    script = (
        "from keras_bert_impl import BertTokenizer, pretraining_dataset\n"
        f"tokenizer = BertTokenizer({chinese_vocab!r})\n"
        f"ds = pretraining_dataset({str(shared_data / 'corpus/zh/hongloumeng.txt')!r}, tokenizer, "
        "seq_length=64, max_predictions_per_seq=10, batch_size=32, seed=1, "
        "whole_word_masking=True)\n"
        "iterator = iter(ds)\n"
        "print(next(iterator)['input_word_ids'].shape)\n")
    try:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                timeout=180, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("the script hung at exit")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(32, 64)" in result.stdout


def _whole_words_but_for_cuts(text, words, cut_before, cut_after):
    """`text` splits into `words`, but for the end of a word first when `cut_before` and
    the start of a word last when `cut_after`."""
    heads = {""} | ({w[i:] for w in words for i in range(1, len(w))} if cut_before else set())
    tails = {""} | ({w[:i] for w in words for i in range(1, len(w))} if cut_after else set())
    return any(text.startswith(head) and text[len(head):].endswith(tail)
               and _splits_into(text[len(head):len(text) - len(tail)], words)
               for head in heads for tail in tails if len(head) + len(tail) <= len(text))


def _splits_into(text, words):
    if not text:
        return True
    return any(text.startswith(w) and _splits_into(text[len(w):], words) for w in words)


@pytest.mark.parametrize("value", [0, -1])
def test_max_document_sentences_below_one_is_an_error(tokenizer, english_corpus, value):
    # 0 divided by zero mid-stream; -1 made every line a document, so every NSP pair random.
    with pytest.raises(ValueError, match=f"max_document_sentences must be >= 1, got {value}"):
        pretraining_dataset(english_corpus, tokenizer, seq_length=SEQ, batch_size=2,
                            max_document_sentences=value)


def test_a_corpus_never_split_into_lines_is_warned_about(english_corpus, tmp_path):
    import warnings

    from keras_bert_impl.data.corpus import check_corpus_file

    sentence = "It is a truth universally acknowledged that a single man wants a wife. "
    unsplit = tmp_path / "book.txt"
    unsplit.write_text("\n" + sentence * 2000 + "\n", encoding="utf-8")
    compressed = tmp_path / "book.txt.gz"
    compressed.write_bytes(gzip.compress(unsplit.read_bytes()))
    for path in (unsplit, compressed):
        with pytest.warns(UserWarning, match=r"book.txt(.gz)?' starts with a line of 142,000 "
                                             r"bytes: each line is one sentence"):
            check_corpus_file(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in english_corpus.split(","):
            check_corpus_file(path)  # real corpora, one sentence per line: no warning


def test_a_line_is_cut_at_unsplit_line_bytes_before_it_is_tokenized(tokenizer, tmp_path):
    """Tokenizing a book on one line took all of a 24 GiB machine's memory, to keep its
    first tokens; the words past 100,000 bytes never reach the tokenizer now."""
    from keras_bert_impl.data.corpus import UNSPLIT_LINE_BYTES, cut_unsplit_lines

    path = tmp_path / "long_line.txt"
    long_line = "x" * UNSPLIT_LINE_BYTES + " hello world" * 20
    path.write_text((long_line + "\n" + "good morning\n" * 5 + "\n") * 4)
    with pytest.warns(UserWarning, match="starts with a line of 100,240 bytes"):
        ds = pretraining_dataset(str(path), tokenizer, seq_length=SEQ,
                                 max_predictions_per_seq=P, batch_size=4, seed=1, num_epochs=1)
    ids = set(_original_ids(next(ds.as_numpy_iterator())).ravel())
    assert tokenizer.vocab.index("good") in ids and tokenizer.unk_id in ids  # the long word
    assert not {tokenizer.vocab.index("hello"), tokenizer.vocab.index("world")} & ids
    # A character cut in two at the limit is dropped, not left as invalid UTF-8.
    cut = cut_unsplit_lines(tf.constant(["x" + "é" * UNSPLIT_LINE_BYTES])).numpy()[0]
    assert cut.decode("utf-8") == "x" + "é" * ((UNSPLIT_LINE_BYTES - 1) // 2)


def test_a_corpus_file_without_text_is_an_error_naming_it(tokenizer, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match="empty.txt.*holds no text"):
        pretraining_dataset(str(empty), tokenizer, seq_length=SEQ, batch_size=2)
    # Lines the tokenizer empties: ideographic spaces, zero-width spaces, controls.
    invisible = tmp_path / "invisible.txt"
    # Combining marks alone too: the uncased tokenizer strips them, and the stream waited
    # forever for a first instance.
    invisible.write_text("\u3000\u3000\n\u200b\n\x07\ufffd\n\n\u00a0\n\u0301\u0301\n\u20dd\n",
                         encoding="utf-8")
    with pytest.raises(ValueError, match="invisible.txt.*holds no text"):
        pretraining_dataset(str(invisible), tokenizer, seq_length=SEQ, batch_size=2)
    with pytest.raises(ValueError, match="matches no files"):
        pretraining_dataset(str(tmp_path / "missing*.txt"), tokenizer, seq_length=SEQ)
    (tmp_path / "books").mkdir()
    with pytest.raises(ValueError, match=r"matches the directory .*books; name the files in it"):
        pretraining_dataset(str(tmp_path / "books"), tokenizer, seq_length=SEQ)


def test_the_endless_stream_is_declared_infinite_so_keras_knows_the_length_of_a_take(
        tokenizer, english_corpus):
    kwargs = {"seq_length": SEQ, "max_predictions_per_seq": P, "batch_size": 2, "seed": 1}
    endless = pretraining_dataset(english_corpus, tokenizer, **kwargs)
    assert endless.cardinality() == tf.data.INFINITE_CARDINALITY
    assert endless.take(3).cardinality() == 3  # Keras' evaluate ends there without a warning
    one_pass = pretraining_dataset(english_corpus, tokenizer, num_epochs=1, **kwargs)
    assert one_pass.cardinality() != tf.data.INFINITE_CARDINALITY


def test_a_truncated_or_corrupt_gzip_corpus_is_an_error_naming_it(tokenizer, tmp_path):
    """TensorFlow's reader would stop silently where the damaged data starts."""
    text = "".join(f"Sentence number {i} of a document.\n" for i in range(20000)).encode()
    compressed = gzip.compress(text)
    (tmp_path / "truncated.txt.gz").write_bytes(compressed[:len(compressed) // 2])
    corrupt = bytearray(compressed)
    corrupt[-8] ^= 0xFF  # the CRC of the uncompressed data
    (tmp_path / "corrupt.txt.gz").write_bytes(bytes(corrupt))
    (tmp_path / "whole.txt.gz").write_bytes(compressed)
    for name in ("truncated", "corrupt"):
        with pytest.raises(ValueError, match=f"{name}.txt.gz.*not a complete gzip file"):
            pretraining_dataset(str(tmp_path / f"{name}.txt.gz"), tokenizer, seq_length=SEQ)
    pretraining_dataset(str(tmp_path / "whole.txt.gz"), tokenizer, seq_length=SEQ)


def test_prediction_count_rounds_as_the_original_in_double_precision():
    from keras_bert_impl.data.masking import num_to_predict
    lengths = [10, 190, 350, 390, 670]
    mask = tf.sequence_mask(lengths, maxlen=max(lengths), dtype=tf.int32)
    got = num_to_predict(mask, 0.15, max_predictions_per_seq=1000).numpy().tolist()
    assert got == [min(1000, max(1, round(n * 0.15))) for n in lengths] == [2, 28, 52, 58, 100]


def test_lines_of_unicode_whitespace_end_documents_as_blank_lines():
    from keras_bert_impl.data.corpus import documents_from_lines
    lines = ["第一句。", "\u3000\u3000", "第二句。", "\xa0", "x", "\x0b", "y", ""]
    documents = documents_from_lines(tf.data.Dataset.from_tensor_slices(lines), 100)
    got = [[line.decode() for line in doc] for doc in documents.as_numpy_iterator()]
    assert got == [["第一句。"], ["第二句。"], ["x"], ["y"]]


def test_a_file_without_blank_lines_is_cut_into_documents(tokenizer, tmp_path):
    path = tmp_path / "one_document.txt"
    lines = _marker_words(tokenizer, 1000, 120)
    path.write_text("".join(f"{w} {w} {w}\n" for w in lines * 5))
    ds = pretraining_dataset(str(path), tokenizer, seq_length=SEQ, max_predictions_per_seq=P,
                             batch_size=8, seed=1, num_epochs=1, max_document_sentences=50,
                             short_seq_prob=0.5)
    batch = _collect(ds, 4)
    assert set(batch["next_sentence_labels"]) == {0, 1}
    # Sequences fill seq_length, except those of short_seq_prob's documents.
    lengths = batch["input_mask"].sum(1)
    assert lengths.max() == SEQ and (lengths < SEQ - 8).any() and (lengths > 5).all()


def test_invalid_utf8_bytes_are_dropped_like_the_original(tokenizer, tmp_path):
    path = tmp_path / "bytes.txt"
    path.write_bytes(b"hello \xff\xfe world\n" * 20 + b"\n" + b"good \xc3 morning\n" * 20)
    with pytest.warns(UserWarning, match="is not UTF-8: 60 of its first 601 bytes"):
        ds = pretraining_dataset(str(path), tokenizer, seq_length=SEQ,
                                 max_predictions_per_seq=P, batch_size=2, seed=1, num_epochs=1)
    batch = next(ds.as_numpy_iterator())
    ids = set(_original_ids(batch).ravel())
    hello, world = tokenizer.vocab.index("hello"), tokenizer.vocab.index("world")
    assert {hello, world} <= ids or {tokenizer.vocab.index("good")} <= ids
    assert tokenizer.unk_id not in ids


def test_a_corpus_in_another_encoding_is_warned_about(tmp_path):
    """GBK Chinese is not UTF-8: byte by byte, it would be dropped silently."""
    import warnings

    from keras_bert_impl.data.corpus import check_corpus_file

    text = "北京欢迎你。今天天气很好。\n" * 100
    (tmp_path / "gbk.txt").write_bytes(text.encode("gb18030"))
    (tmp_path / "gbk.txt.gz").write_bytes(gzip.compress(text.encode("gb18030")))
    for name in ("gbk.txt", "gbk.txt.gz"):
        with pytest.warns(UserWarning, match=r"gbk.txt(.gz)?' is not UTF-8: 1,700 of its first "
                                             r"2,700 bytes are not valid UTF-8"):
            check_corpus_file(str(tmp_path / name))
    (tmp_path / "utf8.txt").write_text(text + "one stray byte \udcff\n", encoding="utf-8",
                                       errors="surrogateescape")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_corpus_file(str(tmp_path / "utf8.txt"))


def test_a_vocabulary_without_mask_is_a_clear_error(uncased_vocab, tmp_path, english_corpus):
    vocab = tmp_path / "no_mask_vocab.txt"
    with open(uncased_vocab, encoding="utf-8") as f:
        vocab.write_text("".join(line for line in f if line.strip() != "[MASK]"), "utf-8")
    tokenizer = BertTokenizer(str(vocab))
    with pytest.raises(ValueError, match=r"no_mask_vocab.txt.*\[MASK\]"):
        pretraining_dataset(english_corpus, tokenizer, seq_length=SEQ, batch_size=2)


def test_tfds_text_datasets_are_a_corpus_source(tokenizer):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        ds = pretraining_dataset(None, tokenizer, seq_length=SEQ, max_predictions_per_seq=P,
                                 batch_size=4, seed=1, tfds_name="wikipedia/20230601.en",
                                 tfds_text_key="text", num_epochs=1)
        batch = next(ds.as_numpy_iterator())
        assert batch["input_word_ids"].shape == (4, SEQ)
        assert (batch["masked_lm_weights"].sum(1) >= 1).all()
        with pytest.raises(ValueError, match="no text feature 'body'"):
            pretraining_dataset(None, tokenizer, seq_length=SEQ, tfds_name="wikipedia/20230601.en",
                                tfds_text_key="body")
