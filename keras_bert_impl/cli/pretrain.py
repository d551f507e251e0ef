r"""bert-pretrain: MLM + NSP pretraining with model.fit on any tf.distribute strategy.

A restarted run with the same flags resumes from the newest checkpoint in
--model_dir: weights, optimizer state, step and data position.

    bert-pretrain --vocab_file=vocab.txt --preset=bert_tiny \
        --input_files='corpus/*.txt' --model_dir=/tmp/pretrain \
        --train_batch_size=32 --num_train_steps=10000 --num_warmup_steps=1000 \
        --jit_compile --mixed_precision=bf16 --steps_per_execution=100
"""

import functools

from absl import app, flags

from keras_bert_impl.cli import (
    MIXED_PRECISION_POLICIES,
    bert_config_from_flags,
    check_global_batch_splits,
    check_lower_case_fits,
    check_mixed_precision_for_tpu,
    check_seq_length_fits,
    check_steps_per_execution,
    define_distribution_flags,
    progress_verbosity,
    quiet_absl_logging,
    require_positive,
    run_tool,
)
from keras_bert_impl.cli.run_flags import check_model_dir, check_or_record_run_flags

FLAGS = flags.FLAGS

# What a restart must keep: what the consumed batches were, and the learning-rate
# schedule. --num_train_steps may grow (train longer); the hardware flags may change.
RESUME_FLAGS = ["input_files", "train_batch_size", "seq_length", "max_predictions_per_seq",
                "lower_case", "whole_word_masking", "seed", "optimizer", "learning_rate",
                "num_warmup_steps", "weight_decay_rate"]


def define_flags() -> None:
    """Defines this tool's flags (once); done at start-up, not import, so importing one
    tool never defines or requires flags of another in the same process."""
    if "strategy" in FLAGS:
        return
    for name in define_distribution_flags():
        flags.declare_key_flag(name)  # this tool's, though defined in keras_bert_impl.cli
    flags.DEFINE_integer("train_batch_size", 32, "Global batch size.", lower_bound=1)
    flags.DEFINE_integer("num_train_steps", 100000, "Total training steps.", lower_bound=1)
    flags.DEFINE_integer("num_warmup_steps", 10000, "Linear learning-rate warmup steps.",
                         lower_bound=0)
    flags.DEFINE_float("learning_rate", 1e-4, "Peak learning rate: the paper's 1e-4 for "
                       "pretraining from scratch (run_pretraining.py's flag defaulted to 5e-5); "
                       "smaller, e.g. 2e-5, to continue from a Google checkpoint.")
    flags.DEFINE_float("weight_decay_rate", 0.01, "Decoupled weight decay (not on LayerNorm/bias).",
                       lower_bound=0.0)
    flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"], "Optimizer.")
    flags.DEFINE_string("bert_config", None, "Google bert_config.json (or use --preset).")
    flags.DEFINE_string("preset", None,
                        "Preset name, e.g. bert_tiny (vocab_size from --vocab_file).")
    flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary, one token per line.")
    flags.DEFINE_bool("lower_case", True, "Lower-case and strip accents (uncased vocabularies).")
    flags.DEFINE_list("input_files", None, "Raw text (one sentence per line, blank line between "
                      "documents) or TFRecord files (*.tfrecord); globs allowed.")
    flags.DEFINE_integer("seq_length", 128, "Sequence length.")
    flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence.")
    flags.DEFINE_bool("whole_word_masking", False, "Raw text input: mask whole words, not single "
                      "WordPieces (Chinese words need jieba; without it each character is a "
                      "word). TFRecords carry their masks: see bert-create-pretraining-data.")
    flags.DEFINE_string("init_checkpoint", None, "Google-format checkpoint to start from.")
    flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs and the final model.")
    flags.DEFINE_integer("save_checkpoints_steps", 1000, "Steps between checkpoints.",
                         lower_bound=1)
    flags.DEFINE_integer("seed", 12345, "Seed of the data order, masking and initialization.")
    flags.DEFINE_bool("reseed_on_resume", False, "Resume with the data stream reseeded from the "
                      "step instead of skipping the batches already trained on: instant for long "
                      "runs, but the interrupted data order is not continued.")
    require_positive("learning_rate")
    flags.mark_flags_as_required(["vocab_file", "input_files", "model_dir"])
    flags.mark_flags_as_mutual_exclusive(["bert_config", "preset"], required=True)


def main(argv: list[str]) -> None:
    del argv
    _check_step_flags()
    check_model_dir(FLAGS.model_dir)
    quiet_absl_logging()
    import keras

    from keras_bert_impl.training import pretraining

    keras.utils.set_random_seed(FLAGS.seed)
    keras.mixed_precision.set_global_policy(MIXED_PRECISION_POLICIES[FLAGS.mixed_precision])
    config = bert_config_from_flags(FLAGS.bert_config, FLAGS.preset, FLAGS.vocab_file)
    check_seq_length_fits(FLAGS.seq_length, config, FLAGS.bert_config or f"--preset={FLAGS.preset}")
    check_lower_case_fits(FLAGS.vocab_file, FLAGS.lower_case)
    run = pretraining.PretrainingRun(
        model_dir=FLAGS.model_dir,
        vocab_file=FLAGS.vocab_file,
        lower_case=FLAGS.lower_case,
        config=config,
        strategy_name=FLAGS.strategy,
        tpu=FLAGS.tpu,
    )
    _check_input_runs_where_the_pipelines_run(run.strategy)
    check_global_batch_splits("train_batch_size", FLAGS.train_batch_size, run.strategy,
                              FLAGS.strategy)
    from keras_bert_impl.data.chinese_words import jieba_available
    from keras_bert_impl.training.strategy import is_chief

    derived = {"vocabulary (sha256)": run.tokenizer.vocab_sha256}
    if FLAGS.whole_word_masking:  # Chinese words: jieba's, or characters without it
        derived["Chinese whole words"] = "jieba" if jieba_available() else "characters"
    check_or_record_run_flags(FLAGS.model_dir, RESUME_FLAGS, write=is_chief(run.strategy),
                              paths=("input_files",), derived=derived, strategy=run.strategy,
                              workers_agree_on=_workers_agree_on(config))
    run.build(
        optimizer_type=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate,
        num_train_steps=FLAGS.num_train_steps,
        num_warmup_steps=FLAGS.num_warmup_steps,
        weight_decay_rate=FLAGS.weight_decay_rate,
        loss_scaling=FLAGS.mixed_precision == "fp16",
        jit_compile=FLAGS.jit_compile,
        steps_per_execution=FLAGS.steps_per_execution,
        init_checkpoint=FLAGS.init_checkpoint,
    )
    if run.initial_step:
        print(f"Resuming from {run.checkpoint.restored_from} at step {run.checkpoint.step}")
        if not FLAGS.reseed_on_resume:
            # It takes time in proportion to the step, with no other output meanwhile.
            print(f"Re-reading the {run.initial_step:,} batches trained on, to go on in the "
                  "same order (--reseed_on_resume starts at once, in another order)", flush=True)
    elif run.heads_not_in_init_checkpoint:
        print(f"--init_checkpoint={FLAGS.init_checkpoint} has no pretraining heads; "
              f"{', '.join(run.heads_not_in_init_checkpoint)} start from their initial values")
    dataset_fn = functools.partial(
        _pipeline,
        FLAGS.input_files,
        run.tokenizer,
        seq_length=FLAGS.seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        batch_size=FLAGS.train_batch_size,
        seed=FLAGS.seed,
        reseed_on_resume=FLAGS.reseed_on_resume,
        whole_word_masking=FLAGS.whole_word_masking,
    )
    run.fit(dataset_fn, num_train_steps=FLAGS.num_train_steps,
            save_checkpoints_steps=FLAGS.save_checkpoints_steps, verbose=progress_verbosity())
    run.save_final_model()
    if run.is_chief:
        print(f"Wrote {FLAGS.model_dir}: encoder.keras, bert_model.ckpt (Google format), "
              f"bert_config.json and vocab.txt; training checkpoints in checkpoints/, "
              f"TensorBoard logs in logs/ (tensorboard --logdir={run.log_dir})")


def _workers_agree_on(config) -> dict:
    """What the workers of a multi-worker run must share beyond the resume flags."""
    return {"the model config": config.to_dict(),
            **{f"--{name}": FLAGS[name].value for name in (
                "num_train_steps", "save_checkpoints_steps", "steps_per_execution",
                "mixed_precision", "init_checkpoint")}}


def _check_step_flags():
    check_mixed_precision_for_tpu(FLAGS.strategy, FLAGS.mixed_precision)
    if FLAGS.num_warmup_steps > FLAGS.num_train_steps:
        default = "" if FLAGS["num_warmup_steps"].present else " (the default)"
        raise app.UsageError(f"--num_warmup_steps={FLAGS.num_warmup_steps}{default} exceeds "
                             f"--num_train_steps={FLAGS.num_train_steps}; pass a smaller "
                             "--num_warmup_steps (e.g. a tenth of the steps)")
    check_steps_per_execution(FLAGS.steps_per_execution, FLAGS.save_checkpoints_steps,
                              FLAGS.num_train_steps)


def _check_input_runs_where_the_pipelines_run(strategy):
    from keras_bert_impl.data.corpus import expand_file_patterns
    from keras_bert_impl.data.pretraining import is_tfrecord_input
    from keras_bert_impl.training.strategy import input_pipelines_are_remote

    records = is_tfrecord_input(expand_file_patterns(FLAGS.input_files))
    if records and FLAGS.whole_word_masking:
        raise app.UsageError(
            "--whole_word_masking: TFRecords carry their masks; write them with "
            "bert-create-pretraining-data --do_whole_word_mask instead")
    if not input_pipelines_are_remote(strategy):
        return
    if not records:
        raise app.UsageError(
            "--input_files: this TPU runs the input pipelines on its own hosts (a TPU Node or "
            "a multi-host TPU), whose TensorFlow servers lack TF-Text's tokenizer ops; write "
            "TFRecords with bert-create-pretraining-data and pass those instead of raw text")


def _pipeline(input_files, tokenizer, input_context, start_step, **kwargs):
    from keras_bert_impl.data.pretraining import pretraining_dataset

    return pretraining_dataset(
        input_files, tokenizer, input_context=input_context, start_step=start_step, **kwargs
    )


def run():
    run_tool(__name__, define_flags, main)


if __name__ == "__main__":
    run()
