"""create_optimizer: the original BERT schedule, weight-decay exclusions and clipping."""

import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_bert_impl import BertClassifier, BertConfig, BertEncoder
from keras_bert_impl.training.adamw import BertAdamW
from keras_bert_impl.training.lamb import BertLamb
from keras_bert_impl.training.learning_rate import WarmupPolynomialDecay
from keras_bert_impl.training.loss_scaling import ReplicaConsistentLossScaleOptimizer
from keras_bert_impl.training.optimization import create_optimizer
from keras_bert_impl.training.weight_decay_exclusion import NO_WEIGHT_DECAY


def test_learning_rate_warms_up_linearly_then_decays_linearly_to_zero():
    schedule = WarmupPolynomialDecay(1e-4, num_train_steps=1000, num_warmup_steps=100)
    steps = [0, 50, 99, 100, 550, 1000, 2000]
    values = [float(schedule(s)) for s in steps]
    # The original: warmup = init_lr * step / warmup; decay over all steps.
    expected = [0.0, 5e-5, 9.9e-5, 1e-4 * 0.9, 1e-4 * 0.45, 0.0, 0.0]
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-12)


def test_schedule_without_warmup_starts_at_the_initial_rate():
    schedule = WarmupPolynomialDecay(2e-5, num_train_steps=10)
    assert float(schedule(0)) == pytest.approx(2e-5)
    assert float(schedule(5)) == pytest.approx(1e-5)


def test_schedule_rejects_more_warmup_than_training_steps():
    with pytest.raises(ValueError, match="num_warmup_steps"):
        WarmupPolynomialDecay(1e-4, num_train_steps=10, num_warmup_steps=11)


def test_schedule_round_trips_through_keras_serialization():
    schedule = WarmupPolynomialDecay(1e-4, num_train_steps=1000, num_warmup_steps=100)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert restored.get_config() == schedule.get_config()


def _layer_norm_dense_model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4, name="dense")(inputs)
    outputs = keras.layers.LayerNormalization(name="LayerNorm")(hidden)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("optimizer_type", ["adamw", "lamb"])
def test_weight_decay_skips_layer_norm_and_bias_but_not_kernels(optimizer_type):
    model = _layer_norm_dense_model()
    opt = create_optimizer(
        1e-3, num_train_steps=10, num_warmup_steps=0, weight_decay_rate=0.5,
        optimizer_type=optimizer_type,
    )
    before = {v.path: np.array(v) for v in model.trainable_variables}
    # A zero gradient isolates the decoupled weight decay.
    opt.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in model.trainable_variables])
    changed = {v.path for v in model.trainable_variables if not np.allclose(before[v.path], v)}
    assert changed == {"dense/kernel"}


def test_gradients_are_clipped_to_global_norm_one():
    opt = create_optimizer(1.0, num_train_steps=10, num_warmup_steps=0, weight_decay_rate=0.0)
    assert opt.global_clipnorm == 1.0
    clipped = opt._clip_gradients([np.array([300.0, 400.0, 0.0], "float32")])[0]
    np.testing.assert_allclose(np.array(clipped), [0.6, 0.8, 0.0], rtol=1e-6)


@pytest.mark.parametrize("optimizer_type", ["adamw", "lamb"])
def test_a_half_precision_encoder_under_float32_heads_trains_with_clipping(optimizer_type):
    # One global norm over float16 and float32 gradients, each clipped in its own dtype.
    opt = create_optimizer(1e-3, num_train_steps=10, num_warmup_steps=0,
                           optimizer_type=optimizer_type)
    clipped = opt._clip_gradients([np.array([300.0, 0.0], "float16"),
                                   np.array([400.0], "float32")])
    assert [c.dtype for c in clipped] == ["float16", "float32"]
    np.testing.assert_allclose(np.concatenate([np.array(c, "float32") for c in clipped]),
                               [0.6, 0.0, 0.8], rtol=1e-3)
    # All float16: the squares (9e4, 1.6e5) would overflow a float16 sum.
    clipped = opt._clip_gradients([np.array([300.0, 0.0], "float16"),
                                   np.array([400.0], "float16")])
    np.testing.assert_allclose(np.concatenate([np.array(c, "float32") for c in clipped]),
                               [0.6, 0.0, 0.8], rtol=1e-3)
    config = BertConfig.from_preset("bert_tiny", vocab_size=100)
    classifier = BertClassifier(BertEncoder(config, dtype="float16"), num_classes=2)
    classifier.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    ids = np.arange(32, dtype="int32").reshape(2, 16) + 5
    loss = classifier.train_on_batch({"input_word_ids": ids, "input_mask": np.ones_like(ids),
                                      "input_type_ids": np.zeros_like(ids)}, np.array([0, 1]))
    assert np.isfinite(loss)


def test_adamw_and_lamb_use_the_original_hyperparameters():
    adamw = create_optimizer(1e-4, num_train_steps=10, num_warmup_steps=1)
    lamb = create_optimizer(1e-4, num_train_steps=10, num_warmup_steps=1, optimizer_type="lamb")
    assert isinstance(adamw, BertAdamW) and not adamw.bias_correction
    assert isinstance(lamb, BertLamb)
    for opt in (adamw, lamb):
        assert (opt.beta_1, opt.beta_2, opt.epsilon, opt.weight_decay) == (0.9, 0.999, 1e-6, 0.01)


def test_unknown_optimizer_type_is_a_clear_error():
    with pytest.raises(ValueError, match="'sgd'"):
        create_optimizer(1e-4, num_train_steps=10, num_warmup_steps=1, optimizer_type="sgd")


def _lamb_step(w, g, lr, decay, adapt, beta_1=0.9, beta_2=0.999, eps=1e-6):
    """One step of LAMB (You et al. 2019) from zero moments, in numpy."""
    m, v = (1 - beta_1) * g, (1 - beta_2) * g**2
    update = (m / (1 - beta_1)) / (np.sqrt(v / (1 - beta_2)) + eps) + decay * w
    ratio = np.linalg.norm(w) / np.linalg.norm(update) if adapt else 1.0
    return w - lr * ratio * update


def test_lamb_puts_weight_decay_inside_the_trust_ratio_and_spares_layer_norm():
    model = _layer_norm_dense_model()
    opt = create_optimizer(1e-2, num_train_steps=10, num_warmup_steps=0, weight_decay_rate=0.1,
                           optimizer_type="lamb", global_clipnorm=None)
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables]
    before = [np.array(v) for v in model.trainable_variables]
    opt.apply_gradients(zip(grads, model.trainable_variables))
    for variable, w, g in zip(model.trainable_variables, before, grads):
        excluded = variable.name in ("bias", "gamma", "beta")
        expected = _lamb_step(w, g, 1e-2, decay=0.0 if excluded else 0.1, adapt=not excluded)
        np.testing.assert_allclose(np.array(variable), expected, rtol=1e-5, atol=1e-7,
                                   err_msg=variable.path)


def _original_adamw_steps(w, grads, lr, decay, beta_1=0.9, beta_2=0.999, eps=1e-6):
    """The original `AdamWeightDecayOptimizer` in numpy: no bias correction."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        w = w - lr * (m / (np.sqrt(v) + eps) + decay * w)
    return w


def test_adamw_steps_are_the_original_update_without_bias_correction():
    kernel = keras.Variable(np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3), name="kernel")
    opt = BertAdamW(1e-2, weight_decay=0.1, epsilon=1e-6)
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(2, 3)).astype("float32") for _ in range(3)]
    start = np.array(kernel)
    for g in grads:
        opt.apply_gradients([(g, kernel)])
    expected = _original_adamw_steps(start, grads, 1e-2, 0.1)
    np.testing.assert_allclose(np.array(kernel), expected, rtol=1e-5, atol=1e-7)
    # Keras' bias-corrected steps are ~3x smaller at first: sqrt(1 - 0.999^t) / (1 - 0.9^t).
    corrected = keras.Variable(start, name="kernel")
    keras_opt = BertAdamW(1e-2, weight_decay=0.1, epsilon=1e-6, bias_correction=True)
    for g in grads:
        keras_opt.apply_gradients([(g, corrected)])
    assert np.abs(expected - start).sum() > 2 * np.abs(np.array(corrected) - start).sum()


def test_an_embedding_gradient_with_repeated_rows_is_summed_before_the_moments():
    """As the original (dense) update: a token seen twice contributes its total gradient."""
    import tensorflow as tf
    table = keras.Variable(np.zeros((3, 2), "float32"), name="embeddings")
    opt = BertAdamW(1e-2, weight_decay=0.0, epsilon=1e-6)
    sparse = tf.IndexedSlices(tf.constant([[1.0, 1.0], [-0.999, -0.999], [0.5, 0.5]]),
                              tf.constant([0, 0, 1]), tf.constant([3, 2]))
    for _ in range(3):
        opt.apply_gradients([(sparse, table)])
    dense = np.array([[0.001, 0.001], [0.5, 0.5], [0.0, 0.0]], "float32")
    expected = _original_adamw_steps(np.zeros((3, 2), "float32"), [dense] * 3, 1e-2, 0.0)
    np.testing.assert_allclose(np.array(table), expected, rtol=1e-4, atol=1e-6)


def test_bert_adamw_round_trips_through_keras_serialization():
    opt = BertAdamW(1e-3, weight_decay=0.01, bias_correction=True, global_clipnorm=1.0)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(restored, BertAdamW)
    assert restored.bias_correction and restored.global_clipnorm == 1.0


@pytest.mark.parametrize("optimizer_type", ["adamw", "lamb"])
def test_the_layer_norm_and_bias_exclusion_survives_serialization(optimizer_type):
    # As when a compiled model is saved with model.save and loaded again.
    opt = create_optimizer(1e-3, num_train_steps=10, num_warmup_steps=0,
                           optimizer_type=optimizer_type)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    model = _layer_norm_dense_model()
    decayed = {v.path for v in model.trainable_variables if restored._use_weight_decay(v)}
    assert decayed == {"dense/kernel"}


@pytest.mark.parametrize("optimizer_class", [BertAdamW, BertLamb])
def test_a_config_saved_before_exclusions_were_recorded_gets_the_bert_exclusion(optimizer_class):
    config = optimizer_class(1e-3, weight_decay=0.01).get_config()
    del config["exclude_from_weight_decay_names"]
    restored = optimizer_class.from_config(config)
    model = _layer_norm_dense_model()
    assert {v.path for v in model.trainable_variables if restored._use_weight_decay(v)} == {
        "dense/kernel"}


def test_each_replica_gradient_is_clipped_to_norm_one_then_averaged(tmp_path):
    """As the original on TPUs: mean over replicas of clip(replica gradient, 1.0)."""
    script = tmp_path / "mirrored_clip.py"
    script.write_text(MIRRORED_CLIP_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    update = json.loads(result.stdout.strip().splitlines()[-1])
    # Replica gradients [3, 4] (norm 5) and [0, 0.5]: clipped to [0.6, 0.8] and
    # [0, 0.5], averaged: [0.3, 0.65]. SGD with lr 1 moves the weight by that.
    np.testing.assert_allclose(update, [-0.3, -0.65], rtol=1e-5)


MIRRORED_CLIP_SCRIPT = """
import json
import tensorflow as tf
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_bert_impl.training.gradient_clipping import PerReplicaGlobalNormClipping

class ClippedSGD(PerReplicaGlobalNormClipping, keras.optimizers.SGD):
    pass

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    w = keras.Variable([0.0, 0.0])
    opt = ClippedSGD(1.0, global_clipnorm=1.0)

@tf.function
def step():
    def replica_fn():
        r = tf.distribute.get_replica_context().replica_id_in_sync_group
        target = tf.where(r == 0, tf.constant([3.0, 4.0]), tf.constant([0.0, 0.5]))
        with tf.GradientTape() as tape:
            # Keras' convention: each replica's loss is divided by the replica count.
            loss = tf.reduce_sum(w * target) / strategy.num_replicas_in_sync
        opt.apply_gradients([(tape.gradient(loss, w), w)])
    strategy.run(replica_fn)

step()
print(json.dumps([float(x) for x in w.numpy()]))
"""


def test_an_overflow_on_one_replica_skips_the_step_on_every_replica():
    """fp16: Keras' loss scaling followed replica 0's verdict, putting the other's inf in the
    weights."""
    script = pathlib.Path(__file__).with_name("mirrored_loss_scaling.py")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["overflow"] == {"optimizer": "ReplicaConsistentLossScaleOptimizer",
                                  "finite": True, "unchanged": True, "steps": 0,
                                  "scale_ratio": 0.5}
    assert report["steps_after_a_finite_batch"] == 1


def test_compile_gives_a_keras_loss_scale_optimizer_the_replica_consistent_skip():
    inner = create_optimizer(1e-3, num_train_steps=10, num_warmup_steps=0)
    keras_scaling = keras.optimizers.LossScaleOptimizer(inner, initial_scale=128.0,
                                                        dynamic_growth_steps=50)
    model = BertClassifier(BertEncoder(BertConfig.from_preset(
        "bert_tiny", vocab_size=32, max_position_embeddings=8)), num_classes=2)
    model.compile(optimizer=keras_scaling, loss="sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, ReplicaConsistentLossScaleOptimizer)
    assert model.optimizer.inner_optimizer is inner
    assert model.optimizer.initial_scale == 128.0 and model.optimizer.dynamic_growth_steps == 50


def test_the_replica_consistent_loss_scaling_round_trips_through_a_keras_file(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = BertClassifier(BertEncoder(BertConfig.from_preset(
            "bert_tiny", vocab_size=32, max_position_embeddings=8)), num_classes=2)
        model.compile(optimizer=create_optimizer(1e-3, num_train_steps=10, num_warmup_steps=0),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        assert isinstance(model.optimizer, ReplicaConsistentLossScaleOptimizer)
        ids = np.ones([2, 8], np.int32)
        model.fit({"input_word_ids": ids, "input_mask": ids, "input_type_ids": 0 * ids},
                  np.array([0, 1]), verbose=0)
        model.save(tmp_path / "model.keras")
        loaded = keras.models.load_model(tmp_path / "model.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert isinstance(loaded.optimizer, ReplicaConsistentLossScaleOptimizer)
    assert isinstance(loaded.optimizer.inner_optimizer, BertAdamW)
    assert int(loaded.optimizer.iterations.numpy()) == 1


@pytest.mark.parametrize("kwargs, words", [
    ({"init_lr": -1e-4}, "init_lr .* must be a finite number > 0, got -0.0001"),
    ({"init_lr": 0.0}, "init_lr .* must be a finite number > 0"),
    ({"init_lr": float("nan")}, "init_lr .* must be a finite number > 0, got nan"),
    ({"init_lr": 1e-4, "weight_decay_rate": -1.0}, "weight_decay_rate must be a finite number"),
    ({"init_lr": 1e-4, "end_lr": float("inf")}, r"end_lr must be a finite number in \[0, "),
    # The schedule would climb from init_lr to end_lr.
    ({"init_lr": 1e-4, "end_lr": 1.0}, r"end_lr must be a finite number in \[0, init_lr=0.0001\]"),
    ({"init_lr": 1e-4, "beta_1": 1.5}, r"beta_1 must be a finite number in \[0, 1\)"),
    ({"init_lr": 1e-4, "epsilon": -1.0}, "epsilon must be a finite number > 0"),
    # Keras reads 0 as "no clipping"; None says so.
    ({"init_lr": 1e-4, "global_clipnorm": 0.0}, r"global_clipnorm \(None: no clipping\) must"),
    ({"init_lr": 1e-4, "num_warmup_steps": 1.5}, "num_warmup_steps must be a whole number"),
    ({"init_lr": 1e-4, "num_train_steps": float("inf")}, "num_train_steps must be a whole number"),
    ({"init_lr": 1e-4, "num_train_steps": float("nan")}, "num_train_steps must be a whole number"),
], ids=["negative", "zero", "nan", "negative decay", "infinite end", "end above peak",
        "beta_1 above 1", "negative epsilon", "zero clip norm", "fractional warmup",
        "infinite steps", "nan steps"])
def test_a_learning_rate_that_would_train_wrongly_is_refused(kwargs, words):
    # A negative rate is gradient ascent: the loss climbs with no error.
    with pytest.raises(ValueError, match=words):
        create_optimizer(**{"num_train_steps": 10, "num_warmup_steps": 1, **kwargs})


def test_a_schedule_saved_with_a_fractional_step_count_still_loads_rounded():
    config = WarmupPolynomialDecay(1e-4, num_train_steps=1000, num_warmup_steps=123).get_config()
    with pytest.warns(UserWarning, match="num_warmup_steps=123.4 rounded to 123"):
        schedule = WarmupPolynomialDecay.from_config({**config, "num_warmup_steps": 123.4})
    assert schedule.get_config() == config


def test_numpy_numbers_are_taken_as_numbers_and_the_config_stays_json():
    optimizer = create_optimizer(np.float32(1e-4), num_train_steps=np.int64(10),
                                 num_warmup_steps=np.int64(2), weight_decay_rate=np.float32(0.01))
    assert json.loads(json.dumps(keras.optimizers.serialize(optimizer)))
    assert float(optimizer.learning_rate.numpy()) == 0.0  # step 0 of the warmup
    assert optimizer._learning_rate.get_config()["num_train_steps"] == 10


def test_excluding_more_variables_keeps_the_layer_norm_and_bias_exclusion():
    encoder = BertEncoder(BertConfig.from_preset("bert_tiny", vocab_size=32))
    optimizer = create_optimizer(1e-4, num_train_steps=10, num_warmup_steps=1)
    table = encoder.google_variable_map()["bert/embeddings/word_embeddings"]
    optimizer.exclude_from_weight_decay(var_names=["position_embeddings"])
    optimizer.exclude_from_weight_decay(var_list=[table])
    decayed = {name for name, variable in encoder.google_variable_map().items()
               if optimizer._use_weight_decay(variable)}
    assert not any("LayerNorm" in name or "bias" in name for name in decayed)
    assert "bert/embeddings/position_embeddings" not in decayed
    assert "bert/embeddings/word_embeddings" not in decayed
    assert "bert/encoder/layer_0/attention/self/query/kernel" in decayed
    assert keras.optimizers.serialize(optimizer)["config"]["exclude_from_weight_decay_names"] == [
        *NO_WEIGHT_DECAY, "position_embeddings"]


@pytest.mark.parametrize("optimizer_type", ["adamw", "lamb"])
def test_summed_replica_gradients_are_averaged_ones_with_epsilon_over_the_replica_count(
        optimizer_type):
    # The original's CrossShardOptimizer summed R shards' clipped gradients; we average
    # them. The create_optimizer docstring says epsilon / R makes the two the same.
    replicas, rng = 4, np.random.default_rng(0)
    initial = rng.normal(size=[3, 5]).astype("float32")
    mean_gradients = [1e-6 * rng.normal(size=[3, 5]).astype("float32") for _ in range(6)]
    weights = {}
    for name, scale, epsilon in (("summed", replicas, 1e-6), ("averaged", 1, 1e-6 / replicas)):
        variable = keras.Variable(initial, name="kernel")
        optimizer = create_optimizer(1e-2, num_train_steps=6, num_warmup_steps=0,
                                     optimizer_type=optimizer_type, epsilon=epsilon,
                                     global_clipnorm=None)
        for gradient in mean_gradients:
            optimizer.apply_gradients([(scale * gradient, variable)])
        weights[name] = variable.numpy()
    assert not np.allclose(weights["summed"], initial, atol=1e-4)
    np.testing.assert_allclose(weights["summed"], weights["averaged"], rtol=1e-5, atol=1e-7)
