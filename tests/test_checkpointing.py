"""TrainingCheckpoint: what a restarted run, chief or not, resumes from."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bert_impl.layers.dropout import BertDropout
from keras_bert_impl.training.checkpointing import (
    TrainingCheckpoint,
    fit_to_step,
    seed_states,
)


def _model_and_optimizer():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def test_every_worker_resumes_from_the_chiefs_newest_checkpoint(tmp_path):
    chief_model, chief_optimizer = _model_and_optimizer()
    chief = TrainingCheckpoint(str(tmp_path), chief_model, chief_optimizer)
    chief_optimizer.iterations.assign(7)
    chief.save()
    # A worker killed before writing its own copy of step 7 has only step 3.
    worker_model, worker_optimizer = _model_and_optimizer()
    worker = TrainingCheckpoint(str(tmp_path), worker_model, worker_optimizer,
                                is_chief=False, task_id=1)
    worker_optimizer.iterations.assign(3)
    worker.save()
    assert (tmp_path / ".worker_1" / "checkpoints").is_dir()

    restarted_model, restarted_optimizer = _model_and_optimizer()
    restarted = TrainingCheckpoint(str(tmp_path), restarted_model, restarted_optimizer,
                                   is_chief=False, task_id=1)
    assert restarted.restore() == 7
    assert restarted.restored_from.startswith(str(tmp_path / "checkpoints"))
    for restored, saved in zip(restarted_model.weights, chief_model.weights):
        np.testing.assert_array_equal(restored, saved)


def test_other_workers_keep_only_their_newest_copy(tmp_path):
    model, optimizer = _model_and_optimizer()
    worker = TrainingCheckpoint(str(tmp_path), model, optimizer, is_chief=False, task_id=1)
    for step in (2, 4, 6):
        optimizer.iterations.assign(step)
        worker.save()
    copies = sorted(p.name for p in (tmp_path / ".worker_1" / "checkpoints").glob("*.index"))
    assert copies == ["ckpt-6.index"]


def test_restoring_deletes_what_a_save_killed_midway_left_behind(tmp_path):
    model, optimizer = _model_and_optimizer()
    checkpoint = TrainingCheckpoint(str(tmp_path), model, optimizer)
    optimizer.iterations.assign(4)
    checkpoint.save()
    # What a SIGKILL during TensorFlow's save of step 8 leaves: its shards' temporary files.
    leftover = tmp_path / "checkpoints" / "ckpt-8_temp"
    leftover.mkdir()
    (leftover / "part-00000-of-00001.data-00000-of-00001.tempstate123").write_bytes(b"\0" * 64)
    restarted_model, restarted_optimizer = _model_and_optimizer()
    assert TrainingCheckpoint(str(tmp_path), restarted_model, restarted_optimizer).restore() == 4
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]


def test_a_first_run_starts_at_step_zero(tmp_path):
    model, optimizer = _model_and_optimizer()
    checkpoint = TrainingCheckpoint(str(tmp_path), model, optimizer)
    assert checkpoint.restore() == 0 and checkpoint.restored_from is None


def test_resume_skips_the_batches_read_also_when_fp16_loss_scaling_skipped_steps(tmp_path):
    model, _ = _model_and_optimizer()
    # A loss scale this large overflows float16 gradients, so no step is applied.
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1),
                                                    initial_scale=2.0**60)
    model.compile(optimizer=optimizer, loss="mse")
    checkpoint = TrainingCheckpoint(str(tmp_path), model, optimizer)
    assert checkpoint.restore() == 0
    x, y = np.full((20, 3), 1e4, "float16"), np.zeros((20, 2), "float32")
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[checkpoint.callback()], verbose=0)

    restarted_model, _ = _model_and_optimizer()
    restarted_optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    restarted_model.compile(optimizer=restarted_optimizer, loss="mse")
    restarted = TrainingCheckpoint(str(tmp_path), restarted_model, restarted_optimizer)
    assert restarted.restore() == 5  # batches read, though fewer steps were applied
    assert restarted.step < 5


def _fit_to_four_steps(model_dir, steps_per_epoch, x, steps_per_execution=1,
                       stream=lambda rows: rows.repeat(), initial_scale=2.0**100):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    # Gradients of ~1e8 overflow float32 at this scale: the first steps are skipped
    # (halving it each time) though their batches are read.
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1e-12),
                                                    initial_scale=initial_scale)
    model.compile(optimizer=optimizer, loss="mse", steps_per_execution=steps_per_execution)
    checkpoint = TrainingCheckpoint(str(model_dir), model, optimizer)
    checkpoint.restore()
    rows = tf.data.Dataset.from_tensor_slices((x, np.zeros((len(x), 2), "float32")))
    history = fit_to_step(model, lambda batches: stream(rows).batch(2).skip(batches),
                          checkpoint, num_train_steps=4, steps_per_epoch=steps_per_epoch,
                          shuffle=False, verbose=0)
    return model, checkpoint, history


def test_a_run_applies_its_whole_step_budget_whatever_its_checkpoint_interval(tmp_path):
    x = np.arange(48, dtype="float32").reshape(16, 3) * 1e3
    runs = {interval: _fit_to_four_steps(tmp_path / str(interval), interval, x)
            for interval in (2, 4)}
    for _model, checkpoint, history in runs.values():
        # As the original's global_step: steps applied, so the schedule runs to its end.
        assert checkpoint.step == 4 and int(checkpoint.batches.numpy()) > 4
        assert history is not None
    (model_2, checkpoint_2, _), (model_4, checkpoint_4, _) = runs.values()
    assert int(checkpoint_2.batches.numpy()) == int(checkpoint_4.batches.numpy())
    for a, b in zip(model_2.weights, model_4.weights):
        np.testing.assert_array_equal(a, b)
    # Rerun at the budget: nothing to do, though more batches than steps were read.
    _, again, history = _fit_to_four_steps(tmp_path / "2", 2, x)
    assert history is None and again.step == 4


def test_several_steps_per_execution_end_exactly_at_the_budget_after_skipped_steps(tmp_path):
    x = np.arange(48, dtype="float32").reshape(16, 3) * 1e3
    # Three steps skipped: whole executions of two after them would end at step 5.
    model, checkpoint, _ = _fit_to_four_steps(tmp_path, 2, x, steps_per_execution=2,
                                              initial_scale=2.0**99)
    assert checkpoint.step == 4 and int(checkpoint.batches.numpy()) == 7
    assert model.steps_per_execution == 2  # as compiled, for saving and later fits


def test_a_loss_that_turns_nan_mid_run_stops_after_64_skipped_steps_in_a_row(tmp_path):
    x = np.ones((4, 3), "float32")  # two good batches at a scale small enough, then NaN

    def then_nan(rows):
        return rows.concatenate(tf.data.Dataset.from_tensors(
            (np.full(3, np.nan, "float32"), np.zeros(2, "float32"))).repeat())

    with pytest.raises(FloatingPointError, match=r"no step was applied in the last 64 batches "):
        _fit_to_four_steps(tmp_path, 100, x, stream=then_nan)


def test_a_run_whose_every_step_overflows_stops_with_an_error_not_forever(tmp_path):
    x = np.full((8, 3), np.nan, "float32")
    with pytest.raises(FloatingPointError, match=r"no step was applied in the last 64 batches "
                                                 r"\(at step 0\): fp16 loss scaling skipped"):
        _fit_to_four_steps(tmp_path, 4, x)


def test_the_position_counts_the_batches_of_a_last_execution_the_data_cut_short(tmp_path):
    model, optimizer = _model_and_optimizer()
    model.compile(optimizer=optimizer, loss="mse", steps_per_execution=2)
    checkpoint = TrainingCheckpoint(str(tmp_path), model, optimizer)
    batches = tf.data.Dataset.from_tensor_slices((np.ones((20, 3)), np.zeros((20, 2)))).batch(4)
    model.fit(batches, epochs=2, callbacks=[checkpoint.callback()], shuffle=False, verbose=0)
    assert int(optimizer.iterations.numpy()) == 10
    assert int(checkpoint.batches.numpy()) == 10  # 5 batches an epoch, not 3 executions of 2


def test_a_checkpoint_of_another_configuration_is_an_error_naming_it(tmp_path):
    model, optimizer = _model_and_optimizer()
    TrainingCheckpoint(str(tmp_path), model, optimizer).save()
    wider = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5)])
    wider_optimizer = keras.optimizers.SGD(0.1)
    with pytest.raises(ValueError, match=r"ckpt-0: this model cannot resume from the checkpoint"):
        TrainingCheckpoint(str(tmp_path), wider, wider_optimizer).restore()


@pytest.mark.parametrize("saved_scaling", [True, False])
def test_resuming_with_or_without_fp16_loss_scaling_unlike_the_run_says_which(tmp_path,
                                                                             saved_scaling):
    def model_and_adam(scaling):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        optimizer = keras.optimizers.Adam(0.1)
        if scaling:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(optimizer=optimizer, loss="mse")
        optimizer.build(model.trainable_variables)
        return model, optimizer

    TrainingCheckpoint(str(tmp_path), *model_and_adam(saved_scaling)).save()
    expected = ("with fp16 loss scaling: resume it with --mixed_precision=fp16" if saved_scaling
                else "without fp16 loss scaling: resume it with --mixed_precision=bf16 or none")
    with pytest.raises(ValueError, match=expected):
        TrainingCheckpoint(str(tmp_path), *model_and_adam(not saved_scaling)).restore()


def test_a_checkpoint_written_before_batches_were_counted_resumes_at_its_step(tmp_path):
    model, optimizer = _model_and_optimizer()
    optimizer.iterations.assign(40)
    old_layout = tf.train.Checkpoint(model=model, optimizer=optimizer)
    tf.train.CheckpointManager(old_layout, str(tmp_path / "checkpoints"), max_to_keep=1,
                               checkpoint_name="ckpt").save(checkpoint_number=40)
    restarted_model, restarted_optimizer = _model_and_optimizer()
    restarted = TrainingCheckpoint(str(tmp_path), restarted_model, restarted_optimizer)
    assert restarted.restore() == 40 and restarted.step == 40
    for restored, saved in zip(restarted_model.weights, model.weights):
        np.testing.assert_array_equal(restored, saved)


def _dropout_model():
    keras.utils.set_random_seed(5)  # the same initial weights and seed states in every run
    model = keras.Sequential([keras.Input((3,)), BertDropout(0.5), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def test_a_resumed_run_continues_the_dropout_masks_and_ends_as_an_uninterrupted_one(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(16, 3)), np.zeros((16, 2))
    uninterrupted = _dropout_model()
    uninterrupted.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0)

    first = _dropout_model()
    checkpoint = TrainingCheckpoint(str(tmp_path), first, first.optimizer)
    first.fit(x, y, batch_size=4, epochs=2, shuffle=False, callbacks=[checkpoint.callback()],
              verbose=0)
    assert [v.path.split("/")[-1] for v in seed_states(first)] == ["seed_generator_state"]
    restarted = _dropout_model()
    assert TrainingCheckpoint(str(tmp_path), restarted, restarted.optimizer).restore() == 8
    restarted.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for resumed, straight in zip(restarted.weights, uninterrupted.weights):
        np.testing.assert_allclose(resumed, straight, rtol=1e-6, err_msg=straight.path)


def test_a_checkpoint_written_before_seed_states_were_saved_still_resumes(tmp_path):
    model = _dropout_model()
    model.optimizer.build(model.trainable_variables)
    batches = tf.Variable(3, dtype=tf.int64)
    old_layout = tf.train.Checkpoint(model=model, optimizer=model.optimizer, batches=batches)
    tf.train.CheckpointManager(old_layout, str(tmp_path / "checkpoints"), max_to_keep=1,
                               checkpoint_name="ckpt").save(checkpoint_number=3)
    restarted = _dropout_model()
    assert TrainingCheckpoint(str(tmp_path), restarted, restarted.optimizer).restore() == 3


@pytest.mark.parametrize("damage", ["truncated data", "truncated index", "deleted",
                                    "data deleted"])
def test_a_damaged_newest_checkpoint_is_passed_over_for_the_newest_readable_one(
        tmp_path, damage, caplog):
    model, optimizer = _model_and_optimizer()
    checkpoint = TrainingCheckpoint(str(tmp_path), model, optimizer)
    for step in (2, 4, 6):
        optimizer.iterations.assign(step)
        model.layers[0].kernel.assign(np.full((3, 2), step, np.float32))
        checkpoint.save()
    newest = tmp_path / "checkpoints" / "ckpt-6"
    data = next((tmp_path / "checkpoints").glob("ckpt-6.data-*"))
    index = tmp_path / "checkpoints" / "ckpt-6.index"
    if damage == "truncated data":
        data.write_bytes(data.read_bytes()[:10])
    elif damage == "truncated index":
        index.write_bytes(index.read_bytes()[:20])
    elif damage == "data deleted":  # its index still lists it
        data.unlink()
    else:
        data.unlink()
        index.unlink()

    restarted_model, restarted_optimizer = _model_and_optimizer()
    restarted = TrainingCheckpoint(str(tmp_path), restarted_model, restarted_optimizer)
    assert restarted.restore() == 4
    assert restarted.restored_from.endswith("ckpt-4")
    np.testing.assert_array_equal(restarted_model.layers[0].kernel, np.full((3, 2), 4))
    assert f"{newest}: the checkpoint is damaged and cannot be read" in caplog.text


def test_no_readable_checkpoint_is_an_error_naming_them(tmp_path):
    model, optimizer = _model_and_optimizer()
    checkpoint = TrainingCheckpoint(str(tmp_path), model, optimizer)
    optimizer.iterations.assign(2)
    checkpoint.save()
    for index in (tmp_path / "checkpoints").glob("ckpt-2.index"):
        index.write_bytes(b"not an sstable")
    restarted = TrainingCheckpoint(str(tmp_path), *_model_and_optimizer())
    with pytest.raises(ValueError, match=r"no checkpoint in .*checkpoints can be read "
                                         r"\(.*ckpt-2\); use another model_dir"):
        restarted.restore()


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_training_data_that_ends_before_the_budget_is_an_error_not_a_loop(tmp_path):
    model, optimizer = _model_and_optimizer()
    model.compile(optimizer=optimizer, loss="mse")
    checkpoint = TrainingCheckpoint(str(tmp_path), model, optimizer)
    checkpoint.restore()
    # One batch: Keras starts it again for the second epoch, then the skip leaves nothing.
    rows = tf.data.Dataset.from_tensor_slices((np.ones((2, 3), "float32"),
                                               np.zeros((2, 2), "float32")))
    with pytest.raises(ValueError, match="the training data ended after 2 batches, at step 2 "
                                         "of 4; it must repeat"):
        fit_to_step(model, lambda batches: rows.batch(2).skip(batches), checkpoint,
                    num_train_steps=4, steps_per_epoch=2, shuffle=False, verbose=0)


def test_the_chief_keeps_its_three_newest_checkpoints_by_default(tmp_path):
    model, optimizer = _model_and_optimizer()
    checkpoint = TrainingCheckpoint(str(tmp_path), model, optimizer)
    for step in (1, 2, 3, 4, 5):
        optimizer.iterations.assign(step)
        checkpoint.save()
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.index"))
    assert kept == ["ckpt-3.index", "ckpt-4.index", "ckpt-5.index"]
