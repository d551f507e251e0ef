"""The README's own training loop (tf.distribute, GradientTape, fp16 loss scaling,
tf.train.Checkpoint), run as `two_replicas.py custom_training_loop VOCAB CORPUS
CHECKPOINT_DIR STEPS WEIGHTS.npz INITIAL_SCALE`: trains until the optimizer has taken
STEPS steps, resuming from CHECKPOINT_DIR, and writes the trainable weights and the
batches read (more than STEPS when fp16 overflows skipped steps)."""

import sys

import keras
import numpy as np
import tensorflow as tf

import keras_bert_impl as kbi
from keras_bert_impl.training.checkpointing import seed_states
from keras_bert_impl.training.loss_scaling import ReplicaConsistentLossScaleOptimizer


def run():
    vocab, corpus, checkpoint_dir, steps, weights_file, initial_scale = sys.argv[1:]
    keras.utils.set_random_seed(1)
    keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = tf.distribute.MirroredStrategy()
    tok = kbi.BertTokenizer(vocab)
    config = kbi.BertConfig.from_preset("bert_tiny", vocab_size=tok.vocab_size,
                                        max_position_embeddings=64)
    with strategy.scope():
        pretrainer = kbi.BertPretrainer(kbi.BertEncoder(config))
        optimizer = ReplicaConsistentLossScaleOptimizer(
            kbi.create_optimizer(1e-3, num_train_steps=10, num_warmup_steps=1),
            initial_scale=float(initial_scale))
        optimizer.build(pretrainer.trainable_variables)
    steps_read = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=pretrainer, optimizer=optimizer,
                                     seed_states=seed_states(pretrainer), steps_read=steps_read)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=3)
    manager.restore_or_initialize()
    start = int(steps_read.numpy())
    batches = strategy.distribute_datasets_from_function(
        lambda context: kbi.pretraining_dataset(
            corpus, tok, seq_length=32, max_predictions_per_seq=5, batch_size=8, seed=1,
            input_context=context,
            start_step=start * strategy.num_replicas_in_sync // context.num_input_pipelines))

    @tf.function
    def train_step(iterator):
        def step(features):
            with tf.GradientTape() as tape:
                outputs = pretrainer(features, training=True)
                loss = pretrainer.compute_loss(x=features, y_pred=outputs)
                scaled = optimizer.scale_loss(loss)
            weights = pretrainer.trainable_weights
            optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
            pretrainer.compute_metrics(features, None, outputs)
            return loss
        return strategy.reduce("SUM", strategy.run(step, args=(next(iterator),)), axis=None)

    iterator = iter(batches)
    while int(optimizer.iterations.numpy()) < int(steps):
        train_step(iterator)
        steps_read.assign_add(1)
    manager.save(checkpoint_number=int(optimizer.iterations.numpy()))
    np.savez(weights_file, steps_read=steps_read.numpy(),
             **{f"{i}:{w.path}": w.numpy() for i, w in enumerate(pretrainer.trainable_weights)})
