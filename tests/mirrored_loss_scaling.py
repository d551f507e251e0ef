"""fp16 fine-tuning over two replicas where only the second replica's gradient overflows.

Run as a subprocess by test_optimization.py (logical CPU devices must be
configured before TensorFlow initializes). Prints one JSON line. Usage:
    python mirrored_loss_scaling.py
"""

import json

import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np

from keras_bert_impl import BertClassifier, BertConfig, BertEncoder
from keras_bert_impl.training.optimization import create_optimizer


def main():
    keras.mixed_precision.set_global_policy("mixed_float16")
    config = BertConfig.from_preset("bert_tiny", vocab_size=64, max_position_embeddings=16)
    ids = np.random.default_rng(0).integers(1, config.vocab_size, size=[4, 8], dtype=np.int32)
    features = {"input_word_ids": ids, "input_mask": np.ones_like(ids),
                "input_type_ids": np.zeros_like(ids)}
    labels = np.array([0, 1, 0, 1], np.int32)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = BertClassifier(BertEncoder(config), num_classes=2)
        # Keras' compile adds loss scaling under mixed_float16.
        model.compile(optimizer=create_optimizer(1e-3, num_train_steps=10, num_warmup_steps=0),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.numpy() for w in model.trainable_weights]
    scale = float(model.optimizer.dynamic_scale.numpy())
    # The global batch of 4 splits 2 + 2: an infinite weight overflows replica 1 only.
    model.fit(features, labels, sample_weight=np.array([1, 1, np.inf, 1], np.float32),
              batch_size=4, epochs=1, verbose=0, shuffle=False)
    after = [w.numpy() for w in model.trainable_weights]
    overflow = {
        "optimizer": type(model.optimizer).__name__,
        "finite": all(bool(np.isfinite(w).all()) for w in after),
        "unchanged": all(np.array_equal(a, b) for a, b in zip(after, before)),
        "steps": int(model.optimizer.iterations.numpy()),
        "scale_ratio": float(model.optimizer.dynamic_scale.numpy()) / scale,
    }
    model.fit(features, labels, batch_size=4, epochs=1, verbose=0, shuffle=False)
    print(json.dumps({"overflow": overflow,
                      "steps_after_a_finite_batch": int(model.optimizer.iterations.numpy())}))


if __name__ == "__main__":
    main()
