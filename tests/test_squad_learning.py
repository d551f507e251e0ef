"""`bert-finetune --task=squad` teaches a tiny BERT extractive QA that reads the question.

The data are SQuAD v1.1 files built from CoNLL-2003's entity annotations
(question answering as NER: "Which person is named?" over a news sentence,
every PER entity a gold answer), split by document so no held-out sentence is
seen in training. The only other SQuAD-format sample at hand, the CMRC 2018
trial set, is beyond a tiny model without pretraining: from scratch it stayed
below a fixed-span baseline there (held-out F1 10-13 against 14).

The baselines are the best fixed span, "the first k context words" with k
chosen on the training split, and the most frequent training answer, scored
with the official SQuAD v1.1 evaluation, as the model is.
"""

import collections
import json
import subprocess
import sys

from keras_bert_impl.data.ner import read_conll
from keras_bert_impl.data.squad import read_squad
from keras_bert_impl.metrics.ner import get_entities
from keras_bert_impl.metrics.squad import squad_scores

QUESTIONS = {"PER": "Which person is named?", "LOC": "Which place is named?",
             "ORG": "Which organization is named?"}


def squad_from_conll(conll_path, first_line, last_line, min_words=8):
    """SQuAD v1.1 JSON of the sentences between two lines of a CoNLL file."""
    data = read_conll(conll_path)
    articles = []
    for words, tags, source in zip(data.words, data.tags, data.sources):
        line = int(source.rsplit(":", 1)[1])
        if not first_line < line < last_line or len(words) < min_words:
            continue
        context = " ".join(words)
        starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
        qas = []
        for kind, question in QUESTIONS.items():
            answers = [{"answer_start": starts[a], "text": " ".join(words[a:b + 1])}
                       for k, a, b in get_entities(tags) if k == kind]
            if answers:
                qas.append({"id": f"{line}-{kind}", "question": question, "answers": answers})
        if qas:
            articles.append({"title": source, "paragraphs": [{"context": context, "qas": qas}]})
    return {"version": "1.1", "data": articles}


def first_words(examples, k):
    return {e.question_id: " ".join(e.context.split()[:k]) for e in examples.examples}


def test_a_tiny_model_answers_held_out_questions_far_better_than_fixed_answers(
        shared_data, cased_vocab, tmp_path):
    conll = shared_data / "ner/conll2003/train.txt"
    with open(conll, encoding="utf-8") as f:
        documents = [n for n, line in enumerate(f, start=1) if line.startswith("-DOCSTART-")]
    paths = {}
    for name, (first, last) in (("train", (0, 150)), ("held_out", (800, 850))):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(squad_from_conll(
            conll, documents[first], documents[last])), encoding="utf-8")
    train, held_out = read_squad(str(paths["train"])), read_squad(str(paths["held_out"]))
    assert len(train.examples) > 1500 and len(held_out.examples) > 500
    k = max(range(1, 30), key=lambda k: squad_scores(
        train.gold_answers(), first_words(train, k))["f1"])
    frequent = collections.Counter(e.answers[0] for e in train.examples).most_common(1)[0][0]
    baselines = [squad_scores(held_out.gold_answers(), first_words(held_out, k)),
                 squad_scores(held_out.gold_answers(),
                              {e.question_id: frequent for e in held_out.examples})]

    model_dir = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, "-m", "keras_bert_impl.cli.finetune", "--task=squad",
         f"--train_file={paths['train']}", f"--eval_file={paths['held_out']}",
         f"--vocab_file={cased_vocab}", "--nolower_case", "--preset=bert_tiny",
         f"--model_dir={model_dir}", "--seq_length=64", "--doc_stride=32",
         "--max_query_length=8", "--max_answer_length=10", "--batch_size=32",
         "--num_train_steps=600", "--learning_rate=1e-3", "--jit_compile"],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]

    scores = json.loads((model_dir / "eval_results.json").read_text(encoding="utf-8"))
    best_baseline = max(b["f1"] for b in baselines)
    # F1 against 33.0 here: 42.9 with the default --seed=12345, 49.2 and 49.6 with seeds 1
    # and 2 (51.8 before the embedding tables got independent initial values: another
    # random start). Answers are cut at wordpieces as the original's get_final_text, which
    # scores a young model's half-words lower than whole-word answers did (59.6 then).
    assert scores["f1"] > best_baseline + 8, (scores, baselines, k)
    assert scores["exact_match"] > max(b["exact_match"] for b in baselines) + 20, scores
    # It reads the question: one sentence asked for a person and for a place
    # mostly gets two different answers.
    predictions = json.loads((model_dir / "predictions.json").read_text(encoding="utf-8"))
    by_sentence = collections.defaultdict(dict)
    for question_id, answer in predictions.items():
        sentence, kind = question_id.rsplit("-", 1)
        by_sentence[sentence][kind] = answer
    asked_twice = [answers for answers in by_sentence.values() if len(answers) > 1]
    distinct = sum(len(set(answers.values())) == len(answers) for answers in asked_twice)
    assert distinct > 0.5 * len(asked_twice), (distinct, len(asked_twice))
