"""Trains the same tiny BertPretrainer on one device and mirrored over two; prints the weight gap.

The mirrored runs ask for XLA (`jit_compile=True`), which Keras 3 cannot compile
over several replicas: the models must train and evaluate without it.

Run as a subprocess by test_pretrain_distribution.py: logical CPU devices
must be configured before TensorFlow initializes. Usage:
    python mirrored_pretraining.py VOCAB_FILE CORPUS_FILE
"""

import json
import sys

import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np

from keras_bert_impl import BertClassifier, BertConfig, BertEncoder, BertTokenizer
from keras_bert_impl.data.pretraining import pretraining_dataset
from keras_bert_impl.models.pretrainer import BertPretrainer
from keras_bert_impl.training.optimization import create_optimizer


def train(strategy, dataset, config, jit_compile=False):
    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = BertPretrainer(BertEncoder(config))
        # No clipping: Keras (like the original's CrossShardOptimizer) clips each
        # replica's gradient, which is not the one-device computation.
        optimizer = create_optimizer(1e-3, num_train_steps=100, num_warmup_steps=0,
                                     global_clipnorm=None)
        model.compile(optimizer=optimizer, steps_per_execution=2, jit_compile=jit_compile)
    initial = [w.numpy() for w in model.weights]
    history = model.fit(dataset, steps_per_epoch=4, verbose=0, shuffle=False).history
    final = [w.numpy() for w in model.weights]
    model.evaluate(dataset, steps=2, verbose=0)
    return initial, final, history, int(optimizer.iterations.numpy())


def finite_epochs(strategy, dataset, config):
    """Two epochs over 4 batches, 3 steps per execution: (optimizer steps, loss - mlm - nsp)."""
    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = BertPretrainer(BertEncoder(config))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=3)
    logs = model.fit(dataset, epochs=2, verbose=0).history
    gap = logs["loss"][-1] - logs["mlm_loss"][-1] - logs["nsp_loss"][-1]
    return int(model.optimizer.iterations.numpy()), gap


def empty_replica(strategy, examples, config):
    """evaluate() over 5 rows in batches of 4: the last batch's 1 row leaves one replica none."""
    five = {name: value[:5] for name, value in examples.items()}
    with strategy.scope():
        model = BertPretrainer(BertEncoder(config))
        model.compile(optimizer="adam")
    return model.evaluate(tf.data.Dataset.from_tensor_slices(five).batch(4), verbose=0,
                          return_dict=True)


def classifier_run(strategy, config, rows=16):
    """Fits a BertClassifier (XLA asked for, 2 steps per execution) on `rows` rows in
    batches of 8: (weights, accuracy, optimizer steps)."""
    ids = np.random.default_rng(0).integers(1, config.vocab_size, size=[rows, 16], dtype=np.int32)
    features = {"input_word_ids": ids, "input_mask": np.ones_like(ids),
                "input_type_ids": np.zeros_like(ids)}
    labels = (ids[:, 1] % 2).astype(np.int32)
    keras.utils.set_random_seed(4)
    with strategy.scope():
        model = BertClassifier(BertEncoder(config), num_classes=2)
        model.compile(optimizer="adam", jit_compile=True, metrics=["accuracy"],
                      steps_per_execution=2,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(features, labels, batch_size=8, epochs=2, verbose=0, shuffle=False)
    accuracy = model.evaluate(features, labels, batch_size=8, verbose=0,
                              return_dict=True)["accuracy"]
    return [w.numpy() for w in model.weights], accuracy, int(model.optimizer.iterations.numpy())


def classifier_report(mirrored, config):
    one = classifier_run(tf.distribute.get_strategy(), config)[0]
    two, accuracy, steps = classifier_run(mirrored, config)
    # 28 rows: each epoch's second execution runs a full batch, then a partial one (4
    # rows), whose replicas exchange gradients of another shape in the same loop. (Its
    # weights differ from one device's: Keras averages each replica's loss over its own
    # rows, and the replicas' shares of a partial batch differ.)
    partial, _, partial_steps = classifier_run(mirrored, config, rows=28)
    return {"gap": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
            "accuracy": accuracy, "steps": steps, "partial_batch_steps": partial_steps,
            "partial_batch_finite": all(bool(np.isfinite(w).all()) for w in partial)}


def main(vocab_file, corpus_file):
    tokenizer = BertTokenizer(vocab_file)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, max_position_embeddings=64)
    # One prediction per example: every replica's weighted mean then has the same
    # denominator, so the mean of the replicas' losses is the one-device loss.
    dataset = pretraining_dataset(corpus_file, tokenizer, seq_length=32,
                                  max_predictions_per_seq=1, batch_size=8, seed=5)
    batches = list(dataset.take(4).as_numpy_iterator())
    examples = {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
    examples["masked_lm_weights"] = np.ones_like(examples["masked_lm_weights"])
    # Fixed batches: distributing re-batches the pipeline to per-replica batches,
    # which would otherwise draw different masks than the one-device run.
    dataset = tf.data.Dataset.from_tensor_slices(examples).batch(8).repeat()
    init_one, one, _, _ = train(tf.distribute.get_strategy(), dataset, config)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    init_two, two, history, steps = train(mirrored, dataset, config, jit_compile=True)
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "steps": steps,
        "metrics": sorted(history),
        "initial_gap": max(float(np.abs(a - b).max()) for a, b in zip(init_one, init_two)),
        "movement": max(float(np.abs(a - b).max()) for a, b in zip(init_one, one)),
        "gap": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
        "classifier": classifier_report(mirrored, config),
        "finite_epochs": finite_epochs(
            mirrored, tf.data.Dataset.from_tensor_slices(examples).batch(8), config),
        "empty_replica": empty_replica(mirrored, examples, config),
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
