"""BertTokenizer gives the original BERT FullTokenizer's ids, in a graph that exports.

The reference is `bert_reference_tokenization.FullTokenizer`, a port of
google-research/bert `tokenization.py`; transformers' pure-Python port of it
(`BertTokenizerLegacy` from transformers 5, `BertTokenizer` before) is checked against it
on real text.
"""

import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import unicodedata

import pytest
import tensorflow as tf
from bert_reference_tokenization import FullTokenizer

from keras_bert_impl.text.tokenizer import BertTokenizer

LINES_PER_SOURCE = 120
# TF-Text ops the tokenizer may use: all are linked by TensorFlow Serving 2.12+.
ALLOWED_TF_TEXT_OPS = {"NormalizeUTF8", "FastWordpieceTokenizeWithOffsets"}

HARD_CASES = [
    "Café naïve Ångström façade résumé ÉCOLE",
    "e\u0301 combining accent, Å vs \u212b angstrom sign",
    "full-width ，！？：；（） ＡＢＣ １２３ and ideographic space\u3000here",
    "ellipsis… dash — quotes “curly” ‘single’ «guillemets»",
    "ligatures ﬁne ﬂow ﬀ œuvre Æsir ß straße",
    "emoji 😀🎉👍🏽 👨\u200d👩\u200d👧 flags 🇩🇪",
    "zero\u200bwidth\u200djoiner\ufeffbom\u00adsoft\u2060hyphen",
    "tabs\tand\nnewlines\r\nand\x0bvertical\x0cform\x85next\u2028line\u2029para",
    "nul\x00byte and \ufffd replacement and \x7f delete and \x1b escape",
    "private use \ue000\uf8ff and \U000f0000 plane 15",
    "x" * 150 + " short " + "y" * 99,
    "中文混合English文本，数字123和标点。",
    "日本語のかなカタカナとハングル한국어 mixed",
    "numbers 3.14159 1,000,000 2e-5 -42 ½ ² ٣",
    "Ελληνικά ΟΔΟΣ ΑΣ. Кириллица ПРИВЕТ İstanbul ǅ ﬃ",
    "control inside a word decides the final sigma: ΟΔΟΣ\x01ΑΣ\u200bΒ",
    "[CLS] [MASK] [SEP] [UNK] ## ##ing #hash @user http://x.y/z?a=b&c=d",
    "",
    "   \t\n  ",
    "\u200b\u200c\ufeff",
    "a" + "\u0301" * 5 + "b",
    "\U00020000\U0002a700\U0002f800 extension ideographs \u2f00 kangxi radical",
    "ᄀ\u1161 jamo, ＂ fullwidth quote, ‐ hyphen, ゠ katakana hyphen",
]


def _head(rows, n=LINES_PER_SOURCE):
    return [row for row in rows if row.strip()][:n]


def _text_lines(path, n=LINES_PER_SOURCE, skip=0):
    with open(path, encoding="utf-8") as f:
        return _head(f.read().splitlines()[skip:], n)


def _tsv_column(path, column):
    with open(path, encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return _head(row[column] for row in rows)


def _conll_sentences(path):
    sentences, words = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("-DOCSTART-"):
                words.append(line.split()[0])
            elif words:
                sentences.append(" ".join(words))
                words = []
    return _head(sentences)


def _cmrc_texts(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    texts = []
    for article in data:
        for paragraph in article["paragraphs"]:
            texts.append(paragraph["context"])
            texts += [qa["question"] for qa in paragraph["qas"]]
    return _head(texts)


@pytest.fixture(scope="module")
def english_texts(shared_data):
    return (
        _text_lines(shared_data / "corpus/en/pg1342_pride_and_prejudice.txt", skip=100)
        + _text_lines(shared_data / "corpus/en/pg2701_moby_dick.txt", skip=300)
        + _tsv_column(shared_data / "glue/SST-2/train.tsv", "sentence")
        + _tsv_column(shared_data / "glue/MRPC/train.tsv", "#1 String")
        + _conll_sentences(shared_data / "ner/conll2003/train.txt")
        + _conll_sentences(shared_data / "ner/wnut17/wnut17train.conll")
        + _text_lines(shared_data / "sample_text.txt")
    )


@pytest.fixture(scope="module")
def chinese_texts(shared_data):
    return (
        _text_lines(shared_data / "corpus/zh/hongloumeng.txt", skip=20)
        + _tsv_column(shared_data / "chnsenticorp/train.tsv", "text_a")
        + _cmrc_texts(shared_data / "qa/cmrc2018/cmrc2018_trial.json")
    )


@pytest.fixture(scope="module")
def uncased(uncased_vocab):
    return BertTokenizer(uncased_vocab, lower_case=True), FullTokenizer(uncased_vocab, True, 100)


@pytest.fixture(scope="module")
def cased(cased_vocab):
    return BertTokenizer(cased_vocab, lower_case=False), FullTokenizer(cased_vocab, False, 100)


@pytest.fixture(scope="module")
def chinese(chinese_vocab):
    return BertTokenizer(chinese_vocab, lower_case=True), FullTokenizer(chinese_vocab, True, 100)


def _assert_same_ids(tokenizer, reference, texts):
    ours = tokenizer.tokenize(tf.constant(texts)).to_list()
    for text, got in zip(texts, ours):
        expected = reference.ids(text)
        assert got == expected, (
            f"text {text!r}:\n ours {tokenizer.id_to_token(got).numpy()}\n"
            f" original {reference.tokenize(text)}"
        )


@pytest.mark.parametrize("name", ["uncased", "cased", "chinese"])
def test_ids_equal_the_original_on_real_english_and_chinese_text(
    name, request, english_texts, chinese_texts
):
    tokenizer, reference = request.getfixturevalue(name)
    _assert_same_ids(tokenizer, reference, english_texts + chinese_texts)


@pytest.mark.parametrize("name", ["uncased", "cased", "chinese"])
def test_ids_equal_the_original_on_hard_cases(name, request):
    tokenizer, reference = request.getfixturevalue(name)
    _assert_same_ids(tokenizer, reference, HARD_CASES)


@pytest.mark.parametrize("name", ["uncased", "cased", "chinese"])
def test_ids_equal_the_original_on_random_unicode(name, request):
    tokenizer, reference = request.getfixturevalue(name)
    rng = random.Random(1234)
    # Code points assigned in Python's Unicode 14; TensorFlow's newer tables
    # classify later additions, which the reference sees as unassigned.
    assigned = [
        chr(c)
        for c in range(1, 0x30000)
        if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn"
    ]
    common = list(" \t\n.,;'\"-()[]!?#") + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    texts = [
        "".join(rng.choice(assigned if rng.random() < 0.5 else common) for _ in range(40))
        for _ in range(300)
    ]
    _assert_same_ids(tokenizer, reference, texts)


def test_transformers_legacy_port_agrees_with_the_reference_on_real_text(
    uncased, uncased_vocab, english_texts
):
    transformers = pytest.importorskip("transformers")
    port = getattr(transformers, "BertTokenizerLegacy", None) or transformers.BertTokenizer
    legacy = port(
        uncased_vocab, do_lower_case=True, tokenize_chinese_chars=True, strip_accents=None
    )
    _, reference = uncased
    # Where its NFC step and special-token handling cannot matter, the
    # transformers port and the reference must agree.
    texts = [t for t in english_texts if unicodedata.is_normalized("NFC", t) and "[" not in t]
    texts = texts[::3]
    assert len(texts) > 200
    for text in texts:
        assert legacy.tokenize(text) == reference.tokenize(text), text


def test_uncased_keeps_full_width_punctuation_ellipsis_and_ligatures_unlike_nfkc(uncased):
    tokenizer, _ = uncased
    tokens = tokenizer.id_to_token(tokenizer.tokenize(tf.constant(["，！？… ﬁ Café"])))
    assert [t.decode() for t in tokens.to_list()[0]] == ["，", "！", "？", "…", "ﬁ", "cafe"]


def test_cased_keeps_case_and_accents(cased):
    tokenizer, _ = cased
    tokens = tokenizer.id_to_token(tokenizer.tokenize(tf.constant(["Café"])))
    assert b"".join(tokens.to_list()[0]).replace(b"##", b"").decode() == "Café"


def test_japanese_kana_is_not_split_per_character_but_cjk_ideographs_are(chinese):
    tokenizer, reference = chinese
    words = tokenizer.tokenize_words(tf.constant(["かなカナ漢字"]))
    assert words.row_lengths(axis=1).numpy().tolist() == [3]  # "かなカナ", "漢", "字"
    _assert_same_ids(tokenizer, reference, ["かなカナ漢字"])


def test_invalid_utf8_bytes_are_dropped_like_the_original(uncased):
    tokenizer, reference = uncased
    texts = [
        b"caf\xc3\xa9 ok",
        b"bad\xffbyte",
        b"truncated \xe4\xb8 sequence",
        b"surrogate \xed\xa0\x80 x",
        b"overlong \xc0\xaf slash",
        b"beyond \xf4\x90\x80\x80 max",
        b"\x80\x80\x80",
    ]
    ours = tokenizer.tokenize(tf.constant(texts)).to_list()
    assert ours == [reference.ids(t) for t in texts]
    assert ours[1] == reference.ids("badbyte")


def test_a_batch_with_one_invalid_string_tokenizes_the_valid_ones_unchanged(uncased):
    tokenizer, reference = uncased
    ours = tokenizer.tokenize(tf.constant([b"hello world", b"\xff"])).to_list()
    assert ours == [reference.ids("hello world"), []]


def test_words_longer_than_max_chars_per_token_become_unk(uncased_vocab, uncased):
    tokenizer, _ = uncased
    word = "ab" * 75  # 150 characters
    assert tokenizer.tokenize(tf.constant([word])).to_list() == [[tokenizer.unk_id]]
    original_limit = BertTokenizer(uncased_vocab, max_chars_per_token=200)
    _assert_same_ids(original_limit, FullTokenizer(uncased_vocab, True, 200), [word])
    assert len(original_limit.tokenize(tf.constant([word])).to_list()[0]) > 1


def test_a_word_over_the_limit_in_bytes_but_not_in_characters_is_split_like_the_original(
    uncased,
):
    tokenizer, reference = uncased
    word = "привет" * 10  # 60 characters, 120 bytes
    texts = ["hello " + word + " world", "an ordinary text", word.upper()]
    _assert_same_ids(tokenizer, reference, texts)
    assert tokenizer.unk_id not in tokenizer.tokenize(tf.constant(texts)).to_list()[0]


# Punctuation new in Unicode 16: FastWordpiece splits at it; the original (Python 3.11,
# Unicode 14) did not know it.
UNICODE_16_PUNCTUATION = ("\u1b4e\u1b4f\u1b7f\U00010d6e\U000113d4\U000113d5\U000113d7"
                          "\U000113d8\U00011be1\U00016d6d\U00016d6e\U00016d6f\U0001e5ff")


def test_a_texts_tokens_do_not_depend_on_the_other_texts_of_its_batch(uncased):
    """A word over the limit sends a batch down the word-by-word path; both paths split
    the same characters."""
    tokenizer, _ = uncased
    texts = [f"a{mark}b" for mark in UNICODE_16_PUNCTUATION]
    alone = tokenizer.tokenize(tf.constant(texts)).to_list()
    beside_a_long_word = tokenizer.tokenize(tf.constant(texts + ["x" * 150])).to_list()[:-1]
    assert beside_a_long_word == alone
    assert {len(ids) for ids in alone} == {3}


def test_lower_casing_does_not_follow_a_turkish_locale(uncased_vocab, uncased):
    """ICU lower-cases "I" to dotless "ı" under LANG=tr_TR; the original's str.lower() never."""
    _, reference = uncased
    texts = ["I café", "İstanbul IS big", "ISI über"]
    script = (
        "import json, sys, tensorflow as tf\n"
        "from keras_bert_impl.text.tokenizer import BertTokenizer\n"
        "tok = BertTokenizer(sys.argv[1])\n"
        "locale_lower = tf.strings.lower(tf.constant(['I é']), 'utf-8').numpy()[0].decode()\n"
        "print(json.dumps([locale_lower, tok.tokenize(tf.constant(sys.argv[2:])).to_list()]))\n"
    )
    env = {**os.environ, "LANG": "tr_TR.UTF-8", "LC_ALL": "tr_TR.UTF-8"}
    result = subprocess.run([sys.executable, "-c", script, uncased_vocab, *texts], env=env,
                            capture_output=True, text=True, timeout=300, check=True)
    locale_lower, ids = json.loads(result.stdout.strip().splitlines()[-1])
    if locale_lower != "ı é":
        pytest.skip("TensorFlow's ICU ignores LANG=tr_TR here; nothing to check")
    assert ids == [reference.convert_tokens_to_ids(reference.tokenize(t)) for t in texts]


def _reference_words(reference, text):
    return [
        reference.convert_tokens_to_ids(reference.wordpiece_tokenizer.tokenize(word))
        for word in reference.basic_tokenizer.tokenize(text)
    ]


@pytest.mark.parametrize("long_word", ["", "a" * 150], ids=["common", "with_a_long_word"])
def test_tokenize_words_groups_like_the_original_with_and_without_a_long_word(
    uncased, long_word
):
    tokenizer, reference = uncased
    texts = [
        "Unaffable tokenizers, really! " + long_word,
        "Ångström’s café: 中文 ##x [UNK] 😀",
        "",
    ]
    words = tokenizer.tokenize_words(tf.constant(texts)).to_list()
    assert words == [_reference_words(reference, text) for text in texts]


def test_a_100k_character_text_is_tokenized_whole(uncased, english_texts):
    tokenizer, reference = uncased
    text = " ".join(english_texts)
    text = (text * (100_000 // len(text) + 1))[:100_000]
    _assert_same_ids(tokenizer, reference, [text])


def test_empty_and_whitespace_only_texts_give_no_tokens(uncased):
    tokenizer, _ = uncased
    ids = tokenizer.tokenize(tf.constant(["", " \t\n", "\u200b\x00"]))
    assert ids.to_list() == [[], [], []]
    assert ids.dtype == tf.int32


def test_an_empty_batch_gives_an_empty_ragged_tensor(uncased):
    tokenizer, _ = uncased
    assert tokenizer.tokenize(tf.constant([], tf.string)).shape[0] == 0


@pytest.mark.parametrize(
    "texts, error, message",
    [
        (tf.constant("one string"), ValueError, r"1-D batch of strings \[batch\], got shape \(\)"),
        (tf.constant([["a"], ["b"]]), ValueError, r"got shape \(2, 1\)"),
        (tf.constant([1, 2]), TypeError, "texts must be tf.string, got int32"),
    ],
)
def test_texts_that_are_not_a_batch_of_strings_are_clear_errors(uncased, texts, error, message):
    tokenizer, _ = uncased
    with pytest.raises(error, match=message):
        tokenizer.tokenize(texts)


def test_tokenize_words_groups_wordpieces_by_original_word(uncased):
    tokenizer, reference = uncased
    text = "Unaffable tokenizers, really!"
    words = tokenizer.tokenize_words(tf.constant([text]))
    assert words.ragged_rank == 2
    expected = [
        reference.convert_tokens_to_ids(reference.wordpiece_tokenizer.tokenize(w))
        for w in reference.basic_tokenizer.tokenize(text)
    ]
    assert words.to_list() == [expected]
    assert tokenizer.tokenize(tf.constant([text])).to_list() == [
        [i for word in expected for i in word]
    ]


def test_special_ids_vocab_size_and_hash_describe_the_vocabulary(uncased):
    tokenizer, _ = uncased
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id) == (
        0,
        100,
        101,
        102,
    )
    assert tokenizer.mask_id == 103
    assert tokenizer.vocab_size == len(tokenizer.vocab) == 30522
    assert tokenizer.vocab_sha256 == (
        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
    )
    assert tokenizer.lower_case is True


def test_id_to_token_and_detokenize_invert_tokenize(uncased):
    tokenizer, _ = uncased
    ids = tokenizer.tokenize(tf.constant(["Unaffable tokenizers!"]))
    assert tokenizer.id_to_token(ids).to_list() == [
        [b"una", b"##ffa", b"##ble", b"token", b"##izer", b"##s", b"!"]
    ]
    assert tokenizer.detokenize(ids).numpy().tolist() == [b"unaffable tokenizers !"]
    assert tokenizer.id_to_token(tf.constant([101, 99999])).numpy().tolist() == [
        b"[CLS]",
        b"[UNK]",
    ]


def _write_vocab(path, tokens):
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return str(path)


SMALL_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "##s", "!"]


def test_a_vocabulary_without_mask_has_mask_id_none(tmp_path):
    tokenizer = BertTokenizer(_write_vocab(tmp_path / "v.txt", SMALL_VOCAB))
    assert tokenizer.mask_id is None
    assert tokenizer.tokenize(tf.constant(["Hellos world?"])).to_list() == [[4, 6, 5, 1]]


@pytest.mark.parametrize(
    "tokens, message",
    [
        (SMALL_VOCAB + ["hello"], "v.txt:9: vocabulary token 'hello' repeats line 5"),
        (SMALL_VOCAB + ["x "], "v.txt:9: vocabulary token 'x ' has surrounding whitespace"),
        ([t + "\r" for t in SMALL_VOCAB], "v.txt:1: the vocabulary file has Windows line ends"),
        (["\ufeff" + SMALL_VOCAB[0]] + SMALL_VOCAB[1:],
         "v.txt:1: the vocabulary file starts with a byte-order mark (U+FEFF)"),
        (SMALL_VOCAB[:3] + [""] + SMALL_VOCAB[3:], "v.txt:4: empty line in the vocabulary file"),
        (["[PAD]", "[CLS]", "[SEP]"], "has no [UNK] token"),
        ([], "vocabulary file is empty"),
    ],
)
def test_bad_vocabulary_files_are_clear_errors_naming_file_and_line(tmp_path, tokens, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        BertTokenizer(_write_vocab(tmp_path / "v.txt", tokens))


def test_a_missing_vocabulary_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        BertTokenizer(str(tmp_path / "nope.txt"))
    with pytest.raises(IsADirectoryError, match=f"{tmp_path} is a directory; name the file"):
        BertTokenizer(str(tmp_path))


def test_whitespace_only_vocabulary_tokens_are_accepted_but_never_matched_as_the_original(
        chinese):
    tokenizer, reference = chinese
    assert tokenizer.vocab[343] == "\u2028"  # line 344 of the Chinese vocabulary
    # The original's str.split() splits at U+2028 / U+2029 before WordPiece.
    texts = ["\u2028", "ab\u2028cd", "中\u2029文", "x \u2028\u2028 y", "\u2028é\u2028"]
    _assert_same_ids(tokenizer, reference, texts)
    assert tokenizer.tokenize(tf.constant(["ab\u2028cd"])).to_list() == \
        tokenizer.tokenize(tf.constant(["ab cd"])).to_list()


def test_runs_inside_tf_data_map(uncased, english_texts):
    tokenizer, reference = uncased
    dataset = tf.data.Dataset.from_tensor_slices(english_texts[:64]).batch(16)
    dataset = dataset.map(lambda texts: tokenizer.tokenize(texts).to_tensor())
    first = next(iter(dataset)).numpy()
    for row, text in zip(first, english_texts[:16]):
        expected = reference.ids(text)
        assert row[: len(expected)].tolist() == expected


def _op_types(concrete_function):
    graph_def = concrete_function.graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes += list(function.node_def)
    return {node.op for node in nodes}


@pytest.mark.parametrize("name", ["uncased", "cased"])
def test_graph_uses_only_core_tensorflow_and_classic_tf_text_ops(name, request):
    tokenizer, _ = request.getfixturevalue(name)
    function = tf.function(
        tokenizer.tokenize_words, input_signature=[tf.TensorSpec([None], tf.string)]
    ).get_concrete_function()
    ops = _op_types(function)
    tf_text_ops = {op for op in ops if not hasattr(tf.raw_ops, op)}
    assert tf_text_ops <= ALLOWED_TF_TEXT_OPS
    assert "FastWordpieceTokenizeWithOffsets" in tf_text_ops
    assert ("NormalizeUTF8" in tf_text_ops) == (name == "uncased")
    assert "Assert" not in ops  # Assert ops break TPU input pipelines


def test_saved_model_carries_the_vocabulary_and_works_after_the_file_is_deleted(
    tmp_path, uncased_vocab, uncased
):
    _, reference = uncased
    vocab = shutil.copy(uncased_vocab, tmp_path / "vocab.txt")
    module = tf.Module()
    module.tokenizer = BertTokenizer(str(vocab))
    module.tokenize = tf.function(
        lambda texts: module.tokenizer.tokenize(texts).to_tensor(-1),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    module.to_token = tf.function(
        lambda ids: module.tokenizer.id_to_token(ids),
        input_signature=[tf.TensorSpec([None], tf.int32)],
    )
    export_dir = tmp_path / "saved"
    tf.saved_model.save(module, str(export_dir))
    (tmp_path / "vocab.txt").unlink()
    assert (export_dir / "assets" / "vocab.txt").exists()

    loaded = tf.saved_model.load(str(export_dir))
    ids = loaded.tokenize(tf.constant(["Ångström’s tokenizer!"])).numpy()[0]
    assert [i for i in ids if i >= 0] == reference.ids("Ångström’s tokenizer!")
    assert loaded.to_token(tf.constant([101, 102])).numpy().tolist() == [b"[CLS]", b"[SEP]"]
