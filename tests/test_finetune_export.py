"""Exported NER and QA heads answer raw strings through the model server as Keras does."""

import keras
import numpy as np
import pytest

from keras_bert_impl.config import BertConfig
from keras_bert_impl.data.ner import TaggedSentences, ner_features
from keras_bert_impl.data.squad import SquadExample, SquadExamples, context_words
from keras_bert_impl.data.squad_windows import squad_features
from keras_bert_impl.export import export_saved_model
from keras_bert_impl.metrics.squad_decoding import decode_answers
from keras_bert_impl.models.encoder import BertEncoder
from keras_bert_impl.models.span_labeler import BertSpanLabeler
from keras_bert_impl.models.token_classifier import BertTokenClassifier
from keras_bert_impl.serving import Client, start_server
from keras_bert_impl.text.preprocessor import BertPreprocessor
from keras_bert_impl.text.tokenizer import BertTokenizer

TAGS = ["B-LOC", "B-PER", "I-PER", "O"]


@pytest.fixture(autouse=True)
def seeded():
    """The models here are random: each test gets the same one whatever ran before it."""
    keras.utils.set_random_seed(0)


def tiny_encoder(vocab_size):
    return BertEncoder(BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64,
                                  max_position_embeddings=64))


def serve(base_path):
    server = start_server(str(base_path), model_name="bert", port=0,
                          file_system_poll_wait_seconds=0.2)
    return server, Client(f"127.0.0.1:{server.port}", model_name="bert", timeout=60)


def test_token_classifier_serves_a_tag_per_word(tmp_path, cased_vocab):
    tokenizer = BertTokenizer(cased_vocab, lower_case=False)
    model = BertTokenClassifier(tiny_encoder(tokenizer.vocab_size), num_classes=len(TAGS))
    seq_length = 16
    export_saved_model(model, str(tmp_path / "ner"), vocab_file=cased_vocab, lower_case=False,
                       seq_length=seq_length, labels=TAGS)
    texts = ["Peter Blackburn visited Brussels.", "北京 is big",
             "a very long sentence that certainly will not fit into sixteen wordpieces at all"]

    words = [[text[s:e] for s, e in context_words(text)] for text in texts]
    data = TaggedSentences(words, [["O"] * len(w) for w in words], ["request"] * len(texts))
    inputs, _, positions = ner_features(data, tokenizer, BertPreprocessor(tokenizer, seq_length))
    logits = model.predict(inputs, verbose=0)

    server, client = serve(tmp_path / "ner")
    try:
        served = client.predict(texts)
    finally:
        client.close()
        server.stop()
    for row, sentence in enumerate(words):
        assert list(served["words"][row][:len(sentence)]) == sentence
        for column in range(len(sentence)):
            position = positions[row, column]
            if position < 0:  # cut by seq_length
                assert served["tag_ids"][row, column] == -1
                assert served["tags"][row, column] == ""
                continue
            np.testing.assert_allclose(served["logits"][row, column], logits[row, position],
                                       atol=1e-5)
            tag_id = int(np.argmax(logits[row, position]))
            assert served["tag_ids"][row, column] == tag_id
            assert served["tags"][row, column] == TAGS[tag_id]
    assert (positions[2] < 0).any(), "the long text must exercise truncation"


def test_served_words_split_conll_words_at_punctuation_as_huggingface_pipelines_do():
    """One CoNLL word, "U.S.", is four served words; the NER export tags each of them."""
    import tensorflow as tf

    from keras_bert_impl.export.word_offsets import split_words

    words, begin, end = split_words(tf.constant(["U.S. troops won 1-0"]))
    assert words.to_list() == [[b"U", b".", b"S", b".", b"troops", b"won", b"1", b"-", b"0"]]
    assert begin.to_list()[0][:5] == [0, 1, 2, 3, 5] and end.to_list()[0][4] == 11


def test_served_words_are_the_squad_readers_words_also_past_a_nul_byte():
    """TF-Text's regex split alone stops at a NUL byte and would drop the rest."""
    import tensorflow as tf

    from keras_bert_impl.export.word_offsets import split_words

    texts = ["a \x00 c d", "John\x00Smith went to Paris.", "Hi, 北京 now", ""]
    words, begin, end = split_words(tf.constant(texts))
    for row, text in enumerate(texts):
        data = text.encode()
        spans = [(len(text[:s].encode()), len(text[:e].encode())) for s, e in context_words(text)]
        assert list(zip(begin[row].numpy(), end[row].numpy())) == spans
        assert words[row].numpy().tolist() == [data[b:e] for b, e in spans]


def test_the_qa_export_answers_an_empty_batch_and_refuses_texts_without_pairs(
        tmp_path, uncased_vocab):
    import tensorflow as tf

    model = BertSpanLabeler(tiny_encoder(30522))
    path = export_saved_model(model, str(tmp_path / "qa"), vocab_file=uncased_vocab,
                              seq_length=32, pair_inputs=True, doc_stride=8)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    empty = serve(text=tf.zeros([0], tf.string), text_pair=tf.zeros([0], tf.string))
    assert {name: value.shape.as_list() for name, value in empty.items()} == {
        "answer": [0], "score": [0], "start_char": [0], "end_char": [0],
        "start_logits": [0, 32], "end_logits": [0, 32]}
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="text has 2 rows but text_pair has 1; send one text_pair per text"):
        serve(text=tf.constant(["who?", "what?"]), text_pair=tf.constant(["a context"]))


@pytest.mark.parametrize("n_best_size", [20, 2])
def test_span_labeler_serves_answer_text_score_and_char_offsets(tmp_path, chinese_vocab,
                                                                n_best_size):
    tokenizer = BertTokenizer(chinese_vocab, lower_case=True)
    model = BertSpanLabeler(tiny_encoder(tokenizer.vocab_size))
    seq_length = 64
    export_saved_model(model, str(tmp_path / "qa"), vocab_file=chinese_vocab,
                       seq_length=seq_length, pair_inputs=True, n_best_size=n_best_size)
    questions = ["生命数耗完即算为什么？", "Who founded it?"]
    contexts = ["每次泡封会减少生命数，生命数耗完即算为踢爆。",
                "Nexon was founded in 1994 by Kim Jung-ju, in Seoul."]

    examples = SquadExamples([
        SquadExample(f"q{i}", question, context, context_words(context), [], -1, -1, True)
        for i, (question, context) in enumerate(zip(questions, contexts))])
    features = squad_features(examples, tokenizer, seq_length=seq_length, doc_stride=32,
                              max_query_length=64)
    assert len(features.example_index) == len(questions), "each context fits one window"
    outputs = model.predict(features.inputs, verbose=0)
    predictions, nbest = decode_answers(examples, features, outputs["start_logits"],
                                        outputs["end_logits"], n_best_size=n_best_size,
                                        max_answer_length=30)

    server, client = serve(tmp_path / "qa")
    try:
        served = client.predict(questions, pairs=contexts)
    finally:
        client.close()
        server.stop()
    np.testing.assert_allclose(served["start_logits"], outputs["start_logits"], atol=1e-5)
    np.testing.assert_allclose(served["end_logits"], outputs["end_logits"], atol=1e-5)
    for row, example in enumerate(examples.examples):
        assert served["answer"][row] == predictions[example.question_id]
        if not nbest[example.question_id]:  # no valid span among the n best
            assert served["start_char"][row] == -1
            continue
        best = nbest[example.question_id][0]
        assert served["answer"][row] == best.text
        assert (served["start_char"][row], served["end_char"][row]) == (
            best.start_char, best.end_char)
        assert served["score"][row] == pytest.approx(best.score, abs=1e-4)
        assert contexts[row][best.start_char:best.end_char] == best.text


def _offline_decoding(model, tokenizer, questions, contexts, seq_length, options):
    """The questions' windows, the model's outputs and their n-best spans, as bert-finetune
    decodes them offline (`options["n_best_size"]`, else bert-finetune's and the export's
    default 20)."""
    examples = SquadExamples([
        SquadExample(f"q{i}", question, context, context_words(context), [], -1, -1, True)
        for i, (question, context) in enumerate(zip(questions, contexts))])
    features = squad_features(examples, tokenizer, seq_length=seq_length,
                              doc_stride=options["doc_stride"],
                              max_query_length=options["max_query_length"])
    outputs = model.predict(features.inputs, verbose=0)
    _, nbest = decode_answers(examples, features, outputs["start_logits"],
                              outputs["end_logits"], n_best_size=options.get("n_best_size", 20),
                              max_answer_length=options["max_answer_length"])
    return examples, features, outputs, nbest


def test_span_labeler_answers_from_a_later_window_of_a_long_context(tmp_path, chinese_vocab):
    import tensorflow as tf

    tokenizer = BertTokenizer(chinese_vocab, lower_case=True)
    model = BertSpanLabeler(tiny_encoder(tokenizer.vocab_size))
    # Make the answer word's own embedding dominate its logits, so the best span is
    # known to lie in a late window; the comparison below is with Keras decoding.
    (marker,) = tokenizer.tokenize(tf.constant(["鲸"])).to_list()[0]
    direction = np.random.default_rng(0).normal(size=32).astype("float32")
    table = model.encoder.get_embedding_table()
    table.assign(tf.tensor_scatter_nd_update(table, [[marker]], [20 * direction]))
    model.head.output_weights.assign(np.stack([direction, direction]))
    # Every start and end is a candidate (n_best_size = seq_length), so each question has a
    # best span whatever the random weights make of the other contexts.
    seq_length, options = 64, {"doc_stride": 24, "max_query_length": 12, "max_answer_length": 8,
                               "n_best_size": 64}
    export_dir = export_saved_model(model, str(tmp_path / "qa"), vocab_file=chinese_vocab,
                                    seq_length=seq_length, pair_inputs=True, **options)
    filler = "北京是中国的首都，有很多名胜古迹。"
    questions = ["最大的动物是什么？", "Who founded it?", "这是什么？"]
    contexts = [filler * 12 + "蓝鲸是最大的动物。" + filler * 2,
                "Nexon was founded in 1994 by Kim Jung-ju, in Seoul.",
                ""]

    examples, features, _, nbest = _offline_decoding(
        model, tokenizer, questions, contexts, seq_length, options)

    loaded = tf.saved_model.load(export_dir)
    served = loaded.signatures["serving_default"](text=tf.constant(questions),
                                                  text_pair=tf.constant(contexts))
    assert {name: int(getattr(loaded, name)[0].numpy()) for name in options} == options
    windows = features.example_index
    assert (windows == 0).sum() > 8, "the long context must span many windows"
    best = nbest["q0"][0]
    assert best.text == "鲸" and best.start_char == contexts[0].index("蓝鲸") + 1
    for row, example in enumerate(examples.examples[:2]):
        best = nbest[example.question_id][0]
        assert served["answer"][row].numpy().decode() == best.text
        assert (served["start_char"][row], served["end_char"][row]) == (
            best.start_char, best.end_char)
        assert served["score"][row].numpy() == pytest.approx(best.score, abs=1e-4)
    assert served["answer"][2].numpy() == b"" and served["start_char"][2] == -1
    assert served["score"][2].numpy() == float("-inf")


def test_span_labeler_serves_an_answer_inside_a_word_cut_at_its_wordpieces(
        tmp_path, uncased_vocab):
    """As the original's get_final_text: "ville" of "Johnsonville", not the whole word."""
    import tensorflow as tf

    tokenizer = BertTokenizer(uncased_vocab, lower_case=True)
    model = BertSpanLabeler(tiny_encoder(tokenizer.vocab_size))
    marker = tokenizer.vocab.index("##ville")
    direction = np.random.default_rng(0).normal(size=32).astype("float32")
    table = model.encoder.get_embedding_table()
    table.assign(tf.tensor_scatter_nd_update(table, [[marker]], [20 * direction]))
    model.head.output_weights.assign(np.stack([direction, direction]))
    seq_length, options = 32, {"doc_stride": 16, "max_query_length": 8, "max_answer_length": 4}
    export_dir = export_saved_model(model, str(tmp_path / "qa"), vocab_file=uncased_vocab,
                                    seq_length=seq_length, pair_inputs=True, **options)
    questions = ["Which town?", "Which town?"]
    contexts = ["Sausages from Johnsonville, Wisconsin.", "Cafe\u0301ville, Wisconsin."]

    examples, _, _, nbest = _offline_decoding(
        model, tokenizer, questions, contexts, seq_length, options)
    served = tf.saved_model.load(export_dir).signatures["serving_default"](
        text=tf.constant(questions), text_pair=tf.constant(contexts))
    # The decomposed accent keeps the pieces from spelling the word: the whole word.
    assert [nbest[e.question_id][0].text for e in examples.examples] == [
        "ville", "Cafe\u0301ville"]
    for row, example in enumerate(examples.examples):
        best = nbest[example.question_id][0]
        assert served["answer"][row].numpy().decode() == best.text
        assert (served["start_char"][row], served["end_char"][row]) == (
            best.start_char, best.end_char)


def test_a_squad_v2_span_labeler_serves_no_answer_as_the_offline_decoding_does(
        tmp_path, chinese_vocab):
    import tensorflow as tf

    tokenizer = BertTokenizer(chinese_vocab, lower_case=True)
    model = BertSpanLabeler(tiny_encoder(tokenizer.vocab_size))
    filler = "北京是中国的首都，有很多名胜古迹。"
    questions = ["最大的动物是什么？", "Who founded it?", "这是什么？", "首都在哪里？",
                 "谁创立了它？", "生命数耗完即算为什么？"]
    contexts = [filler * 6 + "蓝鲸是最大的动物。", "Nexon was founded in 1994 by Kim Jung-ju.",
                filler, "中国的首都是北京。" * 5, "1994年由金正宙创立。",
                "每次泡封会减少生命数，生命数耗完即算为踢爆。"]
    # The test needs a best span for each question: among the default 20 best starts and
    # ends a random model often has no valid one for some; among all 64 there always is.
    seq_length, options = 64, {"doc_stride": 24, "max_query_length": 12, "max_answer_length": 8,
                               "n_best_size": 64}
    examples, features, outputs, nbest = _offline_decoding(
        model, tokenizer, questions, contexts, seq_length, options)
    starts, ends = outputs["start_logits"], outputs["end_logits"]
    # The original's null score: the smallest [CLS] score over a question's windows.
    null = {f"q{i}": min(starts[w, 0] + ends[w, 0] for w in np.flatnonzero(
        features.example_index == i)) for i in range(len(questions))}
    differences = sorted(null[q] - nbest[q][0].score for q in null)
    threshold = float((differences[2] + differences[3]) / 2)  # half the questions: no answer
    expected, _ = decode_answers(examples, features, starts, ends,
                                 n_best_size=options["n_best_size"],
                                 max_answer_length=options["max_answer_length"],
                                 version_2_with_negative=True,
                                 null_score_diff_threshold=threshold)
    assert sorted(answer == "" for answer in expected.values()) == [False] * 3 + [True] * 3

    export_dir = export_saved_model(model, str(tmp_path / "qa"), vocab_file=chinese_vocab,
                                    seq_length=seq_length, pair_inputs=True,
                                    version_2_with_negative=True,
                                    null_score_diff_threshold=threshold, **options)
    loaded = tf.saved_model.load(export_dir)
    assert loaded.version_2_with_negative[0].numpy() == 1
    assert loaded.null_score_diff_threshold[0].numpy() == pytest.approx(threshold)
    served = loaded.signatures["serving_default"](text=tf.constant(questions),
                                                  text_pair=tf.constant(contexts))
    for row, question_id in enumerate(f"q{i}" for i in range(len(questions))):
        answer = served["answer"][row].numpy().decode()
        assert answer == expected[question_id]
        if answer:
            best = nbest[question_id][0]
            assert served["start_char"][row] == best.start_char
            assert served["score"][row].numpy() == pytest.approx(best.score, abs=1e-4)
        else:
            assert served["start_char"][row] == served["end_char"][row] == -1
            assert served["score"][row].numpy() == pytest.approx(null[question_id], abs=1e-4)


def test_a_bucketed_qa_export_answers_alike_whatever_else_is_in_the_batch(
        tmp_path, uncased_vocab):
    import tensorflow as tf

    tokenizer = BertTokenizer(uncased_vocab, lower_case=True)
    model = BertSpanLabeler(tiny_encoder(tokenizer.vocab_size))
    # [PAD]'s embedding along the head's weights: padding positions get the top logits,
    # where the original's n-best (taken over padding too) would find no real span.
    direction = np.random.default_rng(1).normal(size=32).astype("float32")
    table = model.encoder.get_embedding_table()
    table.assign(tf.tensor_scatter_nd_update(table, [[tokenizer.pad_id]], [20 * direction]))
    model.head.output_weights.assign(np.stack([direction, direction]))
    options = {"doc_stride": 16, "max_query_length": 8, "max_answer_length": 8,
               "n_best_size": 2}
    path = export_saved_model(model, str(tmp_path / "qa"), vocab_file=uncased_vocab,
                              seq_length=64, seq_length_buckets=[16, 64], pair_inputs=True,
                              **options)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    question, context = "Where?", "The capital of France is Paris."
    alone = serve(text=tf.constant([question]), text_pair=tf.constant([context]))
    beside_a_long_one = serve(text=tf.constant([question, "What?"]),
                              text_pair=tf.constant([context, "word " * 80]))
    assert alone["start_logits"].shape[1] == 16 and beside_a_long_one["start_logits"].shape[1] == 64
    answer = alone["answer"][0].numpy().decode()
    assert answer and answer in context
    assert beside_a_long_one["answer"][0].numpy().decode() == answer
    assert beside_a_long_one["score"][0].numpy() == pytest.approx(alone["score"][0].numpy(),
                                                                  abs=1e-4)
    *_, nbest = _offline_decoding(model, tokenizer, [question], [context], 64, options)
    assert nbest["q0"][0].text == answer


def test_the_ner_export_drops_invalid_utf8_bytes_as_the_tokenizer_does(tmp_path, cased_vocab):
    import tensorflow as tf

    model = BertTokenClassifier(tiny_encoder(28996), num_classes=len(TAGS))
    path = export_saved_model(model, str(tmp_path / "ner"), vocab_file=cased_vocab,
                              lower_case=False, seq_length=16, labels=TAGS)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    dirty = serve(text=tf.constant([b"Paris \xff Berlin \xc3"]))
    clean = serve(text=tf.constant([b"Paris Berlin"]))
    assert dirty["words"].numpy().tolist() == [[b"Paris", b"Berlin"]]
    np.testing.assert_array_equal(dirty["logits"].numpy(), clean["logits"].numpy())
