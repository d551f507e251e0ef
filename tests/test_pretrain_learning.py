"""Pretraining on real text learns: MLM loss falls and MLM accuracy rises on another book."""

import keras
import pytest

from keras_bert_impl import BertConfig, BertEncoder, BertTokenizer
from keras_bert_impl.data.pretraining import pretraining_dataset
from keras_bert_impl.models.pretrainer import BertPretrainer
from keras_bert_impl.training.optimization import create_optimizer

STEPS, STEPS_PER_EXECUTION = 200, 20


@pytest.fixture(scope="module")
def tokenizer(uncased_vocab):
    return BertTokenizer(uncased_vocab)


def _batches(path, tokenizer, seed):
    # Gutenberg text: each line a "sentence", each paragraph a document.
    return pretraining_dataset(str(path), tokenizer, seq_length=64, max_predictions_per_seq=10,
                               batch_size=16, seed=seed)


def test_two_hundred_steps_on_a_novel_lower_mlm_loss_and_raise_accuracy_on_another(
        shared_data, tokenizer):
    keras.utils.set_random_seed(0)
    config = BertConfig.from_preset("bert_tiny", vocab_size=tokenizer.vocab_size,
                                    max_position_embeddings=64)
    pretrainer = BertPretrainer(BertEncoder(config))
    pretrainer.compile(
        optimizer=create_optimizer(2e-3, num_train_steps=STEPS, num_warmup_steps=20),
        jit_compile=True, steps_per_execution=STEPS_PER_EXECUTION)
    train = _batches(shared_data / "corpus/en/pg1342_pride_and_prejudice.txt", tokenizer, 1)
    moby_dick = shared_data / "corpus/en/pg2701_moby_dick.txt"
    held_out = _batches(moby_dick, tokenizer, 2).take(10).cache()

    before = pretrainer.evaluate(held_out, return_dict=True, verbose=0)
    history = pretrainer.fit(train, steps_per_epoch=STEPS, verbose=0, shuffle=False).history
    after = pretrainer.evaluate(held_out, return_dict=True, verbose=0)

    assert int(pretrainer.optimizer.iterations.numpy()) == STEPS
    assert before["mlm_loss"] > 9.5  # about ln(30522): nothing learned yet
    assert after["mlm_loss"] < before["mlm_loss"] - 2.0, (before, after)
    assert after["mlm_accuracy"] > before["mlm_accuracy"] + 0.05, (before, after)
    assert history["nsp_loss"][-1] < 0.75
