r"""bert-finetune: fine-tune BERT for classification, NER or SQuAD, evaluate and export.

    bert-finetune --task=classify --train_file=SST-2/train.tsv --eval_file=SST-2/dev.tsv \
        --vocab_file=vocab.txt --bert_config=bert_config.json \
        --init_checkpoint=bert_model.ckpt --model_dir=/tmp/sst2 --export_dir=/tmp/sst2_export

Classification data may instead come from TFDS (`--tfds_name=glue/mrpc`,
splits `--tfds_train_split`/`--tfds_eval_split`), texts and classes as the
dataset defines them.

Files without a header line (GLUE's CoLA) take `--noheader` and column numbers
(`--text_a_column=3 --label_column=1`).

Writes DIR/eval_results.json (classify: accuracy, Matthews correlation (mcc), f1 for
two classes; ner: entity precision/recall/f1; squad: exact_match/f1 in percent; all
with skipped_records), DIR/labels.txt (classify, ner) or DIR/predictions.json
(squad), DIR/model.keras, training checkpoints and TensorBoard logs. --model_dir,
the data and the vocabulary may be on any `tf.io.gfile` file system (e.g. gs://). A
restarted run with the same flags resumes from the newest checkpoint in --model_dir
(weights, optimizer state, step and, by skipping that many batches of the seeded
input order, data position).
"""

import json
import os

import tensorflow as tf
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
    load_keras_file,
    progress_verbosity,
    quiet_absl_logging,
    require_positive,
    run_tool,
)
from keras_bert_impl.cli.export import EXPORT_OPTIONS_FILE
from keras_bert_impl.cli.run_flags import check_model_dir, check_or_record_run_flags

FLAGS = flags.FLAGS

# What a restart must keep: the data and how it is batched, and the learning-rate schedule
# (its length is compared as the step count --num_train_steps or --num_train_epochs gives).
RESUME_FLAGS = ["task", "train_file", "tfds_name", "tfds_train_split", "text_a_column",
                "text_b_column", "label_column", "header", "lower_case", "seq_length",
                "batch_size", "warmup_proportion", "learning_rate", "weight_decay_rate",
                "doc_stride", "max_query_length", "version_2_with_negative", "seed"]

# The original run_squad.py and run_classifier.py defaults.
DEFAULT_SEQ_LENGTH = {"squad": 384, "classify": 128, "ner": 128}


def define_flags() -> None:
    """Defines this tool's flags (once); done at start-up, not import, so importing one
    tool never defines or requires flags of another in the same process."""
    if "task" in FLAGS:
        return
    flags.DEFINE_enum("task", None, ["classify", "ner", "squad"], "The fine-tuning task.")
    flags.DEFINE_string("train_file", None, "Training data: TSV/CSV/JSONL, CoNLL, or SQuAD JSON.")
    flags.DEFINE_string("eval_file", None, "Evaluation data in the same format.")
    flags.DEFINE_string("tfds_name", None,
                        "classify: a TFDS classification set instead of files, e.g. glue/sst2 or "
                        "glue/mrpc (texts, pairs and classes from the dataset's features).")
    flags.DEFINE_string("tfds_train_split", "train", "--tfds_name: the training split.")
    flags.DEFINE_string("tfds_eval_split", None,
                        "--tfds_name: the evaluation split; default validation "
                        "(validation_matched for glue/mnli, which has no validation split).")
    flags.DEFINE_string("tfds_data_dir", None,
                        "--tfds_name: TFDS data directory (default ~/tensorflow_datasets).")
    flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary, one token per line.")
    flags.DEFINE_bool("lower_case", True, "Lower-case and strip accents (uncased vocabularies).")
    flags.DEFINE_string("bert_config", None, "Google bert_config.json (or use --preset; neither "
                        "with a .keras --init_checkpoint, which holds its config).")
    flags.DEFINE_string("preset", None,
                        "Preset name, e.g. bert_tiny (vocab_size from --vocab_file).")
    flags.DEFINE_string("init_checkpoint", None,
                        "Google-format checkpoint (bert_model.ckpt) or a .keras BertEncoder or "
                        "BertPretrainer to start from; random initialisation without it.")
    flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs, labels and results.")
    flags.DEFINE_integer("seq_length", None,
                         "Sequence length; default 384 for squad, 128 for the other tasks "
                         "(the original run_squad.py and run_classifier.py defaults).")
    flags.DEFINE_integer("batch_size", 32, "Global batch size for training and evaluation.",
                         lower_bound=1)
    flags.DEFINE_float("num_train_epochs", 3.0,
                       "Training epochs (unless --num_train_steps). For squad an epoch is the "
                       "number of training questions in batches, as in the original run_squad.py, "
                       "although a long context yields several windows.")
    flags.DEFINE_integer("num_train_steps", None, "Training steps; overrides --num_train_epochs.",
                         lower_bound=1)
    flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of the steps with linear warmup.",
                       lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
    flags.DEFINE_float("weight_decay_rate", 0.01, "Decoupled weight decay (not on LayerNorm/bias).",
                       lower_bound=0.0)
    flags.DEFINE_string("export_dir", None, "Export the fine-tuned model here for serving.")
    flags.DEFINE_integer("export_version", None, "Version directory under --export_dir; "
                         "default: newest existing + 1.", lower_bound=0)
    flags.DEFINE_string("text_a_column", "sentence", "classify: column of the (first) text.")
    flags.DEFINE_string("text_b_column", None, "classify: column of the second text of pairs.")
    flags.DEFINE_string("label_column", "label", "classify: column of the label.")
    flags.DEFINE_bool("header", True, "classify: the .tsv/.csv files start with a header line "
                      "naming their columns; --noheader for files without one (GLUE's CoLA), "
                      "whose columns the column flags give by number, from 0.")
    flags.DEFINE_bool("skip_bad_records", False,
                      "Skip and count bad records instead of stopping at the first one.")
    flags.DEFINE_integer("doc_stride", 128, "squad: tokens between the starts of context windows.",
                         lower_bound=1)
    flags.DEFINE_integer("max_query_length", 64, "squad: question tokens kept.", lower_bound=1)
    flags.DEFINE_integer("max_answer_length", 30, "squad: longest answer in tokens.", lower_bound=1)
    flags.DEFINE_integer("n_best_size", 20, "squad: start/end candidates per window.",
                         lower_bound=1)
    flags.DEFINE_enum("squad_metric", "squad", ["squad", "cmrc2018"],
                      "squad: exact_match/f1 by the official SQuAD script, or by CMRC 2018's "
                      "(F1 over Chinese characters, for Chinese SQuAD-format sets).")
    flags.DEFINE_bool("version_2_with_negative", False,
                      "squad: SQuAD v2.0 (unanswerable questions).")
    flags.DEFINE_float("null_score_diff_threshold", 0.0,
                       "squad v2.0: predict no answer when null score - best span score "
                       "exceeds this.")
    for name in define_distribution_flags():
        flags.declare_key_flag(name)  # this tool's, though defined in keras_bert_impl.cli
    flags.DEFINE_integer("save_checkpoints_steps", 1000, "Steps between checkpoints.",
                         lower_bound=1)
    flags.DEFINE_integer("seed", 12345, "Seed of the data order and initialization.")
    require_positive("learning_rate", "num_train_epochs")
    flags.mark_flags_as_required(["task", "vocab_file", "model_dir"])
    flags.register_multi_flags_validator(
        ["task", "train_file", "eval_file", "tfds_name"], _check_data_flags)
    flags.register_multi_flags_validator(
        ["bert_config", "preset", "init_checkpoint"], _check_model_flags)


def _check_model_flags(values: dict) -> bool:
    """The encoder's size comes from one of --bert_config, --preset, or a .keras checkpoint."""
    given = [f"--{name}" for name in ("bert_config", "preset") if values[name] is not None]
    from_keras_file = (values["init_checkpoint"] or "").endswith(".keras")
    if from_keras_file and given:
        raise flags.ValidationError(
            f"--init_checkpoint={values['init_checkpoint']} holds the model's config; drop "
            f"{' and '.join(given)}")
    if not from_keras_file and len(given) != 1:
        raise flags.ValidationError(
            "give the model's size as exactly one of --bert_config or --preset (or start from "
            "a .keras --init_checkpoint)")
    return True


def _check_data_flags(values: dict) -> bool:
    """The data come from --train_file with --eval_file, or (classify) from --tfds_name."""
    if values["tfds_name"] is None:
        if values["train_file"] is None or values["eval_file"] is None:
            raise flags.ValidationError(
                "give the data as --train_file and --eval_file, or for --task=classify "
                "as --tfds_name (e.g. glue/sst2)")
        return True
    if values["train_file"] is not None or values["eval_file"] is not None:
        raise flags.ValidationError(
            f"--tfds_name={values['tfds_name']} cannot be combined with --train_file or "
            "--eval_file: give one data source (TFDS splits: --tfds_train_split, "
            "--tfds_eval_split)")
    if values["task"] not in (None, "classify"):
        raise flags.ValidationError(
            f"--tfds_name is for --task=classify; --task={values['task']} reads "
            "--train_file and --eval_file")
    return True


def main(argv: list[str]) -> None:
    del argv
    quiet_absl_logging()
    import keras

    from keras_bert_impl.checkpoints.google import load_google_checkpoint
    from keras_bert_impl.cli import finetune_tasks
    from keras_bert_impl.text.preprocessor import BertPreprocessor
    from keras_bert_impl.text.tokenizer import BertTokenizer
    from keras_bert_impl.training.checkpointing import TrainingCheckpoint, fit_to_step
    from keras_bert_impl.training.optimization import create_optimizer
    from keras_bert_impl.training.strategy import (
        get_strategy,
        input_pipelines_are_remote,
        is_chief,
        task_id,
    )
    from keras_bert_impl.training.summaries import StepTensorBoard, write_evaluation

    keras.utils.set_random_seed(FLAGS.seed)
    check_mixed_precision_for_tpu(FLAGS.strategy, FLAGS.mixed_precision)
    keras.mixed_precision.set_global_policy(MIXED_PRECISION_POLICIES[FLAGS.mixed_precision])
    if FLAGS.seq_length is None:
        FLAGS.seq_length = DEFAULT_SEQ_LENGTH[FLAGS.task]
    if FLAGS.tfds_name and FLAGS.tfds_eval_split is None:
        FLAGS.tfds_eval_split = default_eval_split(FLAGS.tfds_name)
    check_model_dir(FLAGS.model_dir)
    export_version = _export_version()
    check_lower_case_fits(FLAGS.vocab_file, FLAGS.lower_case)
    # Before any TensorFlow op: a multi-worker strategy configures the collective ops,
    # which TensorFlow allows only before its runtime starts.
    strategy = get_strategy(FLAGS.strategy, FLAGS.tpu)
    tokenizer = BertTokenizer(FLAGS.vocab_file, lower_case=FLAGS.lower_case)
    preprocessor = BertPreprocessor(tokenizer, seq_length=FLAGS.seq_length)
    task = finetune_tasks.TASKS[FLAGS.task](FLAGS, tokenizer, preprocessor)
    # As run_classifier.py / run_squad.py: int(examples / batch_size * epochs).
    num_train_steps = FLAGS.num_train_steps or max(
        1, int(task.num_train_examples / FLAGS.batch_size * FLAGS.num_train_epochs))
    check_steps_per_execution(
        FLAGS.steps_per_execution, FLAGS.save_checkpoints_steps, num_train_steps,
        steps_from=None if FLAGS.num_train_steps else
        f"--num_train_epochs={FLAGS.num_train_epochs:g}")
    steps_per_epoch = min(FLAGS.save_checkpoints_steps, num_train_steps)
    check_global_batch_splits("batch_size", FLAGS.batch_size, strategy, FLAGS.strategy)
    tf.io.gfile.makedirs(FLAGS.model_dir)
    if FLAGS.task == "classify" and input_pipelines_are_remote(strategy):
        raise app.UsageError(
            "--task=classify tokenizes inside its input pipeline with TF-Text's ops, which "
            "this TPU's hosts lack (a TPU Node or a multi-host TPU); use a TPU VM (--tpu=local)")
    # Every worker of a multi-worker run trains, saves (into its own directory)
    # and evaluates; only the chief writes the results, the model and the export.
    chief, worker = is_chief(strategy), task_id(strategy)
    check_or_record_run_flags(FLAGS.model_dir, RESUME_FLAGS, write=chief, paths=("train_file",),
                              derived={"training steps": num_train_steps,
                                       "vocabulary (sha256)": tokenizer.vocab_sha256}
                              # The head's classes: a resumed run must give them the same ids.
                              | ({"labels": list(task.labels)} if task.labels else {}),
                              strategy=strategy, workers_agree_on=_workers_agree_on())
    loaded = None
    with strategy.scope():
        encoder = _encoder()
        _check_encoder_fits(encoder.config, tokenizer)
        model = task.build_model(encoder)
        if FLAGS.init_checkpoint and not FLAGS.init_checkpoint.endswith(".keras"):
            # A pretraining checkpoint has no task head; a fine-tuned one (e.g.
            # run_classifier's output_weights) restores it too.
            loaded = load_google_checkpoint(model, FLAGS.init_checkpoint,
                                            allow_missing_heads=True)
        optimizer = create_optimizer(
            FLAGS.learning_rate, num_train_steps=num_train_steps,
            num_warmup_steps=int(num_train_steps * FLAGS.warmup_proportion),
            weight_decay_rate=FLAGS.weight_decay_rate,
        )
        model.compile(optimizer=optimizer, jit_compile=FLAGS.jit_compile,
                      steps_per_execution=FLAGS.steps_per_execution, **task.compile_args())
        checkpoint = TrainingCheckpoint(FLAGS.model_dir, model, optimizer, is_chief=chief,
                                        task_id=worker)
        step = checkpoint.restore()
    # After the restore: a model_dir of another run keeps its labels when that fails.
    if chief and task.labels:
        with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "labels.txt"), "w") as f:
            f.write("".join(f"{label}\n" for label in task.labels))
    if step:
        print(f"Resuming from {checkpoint.restored_from} at step {checkpoint.step}", flush=True)
    elif loaded:
        print(f"Started from {loaded.path}: {len(loaded.loaded)} variables"
              + (f"; {', '.join(loaded.missing)} start fresh" if loaded.missing else ""))
    log_dir = os.path.join(FLAGS.model_dir, "logs")
    fit_to_step(
        model, lambda batches: task.train_dataset(FLAGS.batch_size, FLAGS.seed, skip=batches),
        checkpoint, num_train_steps, steps_per_epoch,
        # One set of summaries: the chief's (the workers' curves are the same).
        callbacks=[StepTensorBoard(log_dir)] if chief else [],
        shuffle=False,
        verbose=progress_verbosity() if chief else 0,
    )
    results = task.evaluate(model, FLAGS.batch_size, FLAGS.model_dir)
    if not chief:
        return
    write_evaluation(log_dir, checkpoint.step, results)
    results["skipped_records"] = task.skipped_records
    with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, "eval_results.json"), "w") as f:
        f.write(json.dumps(results, indent=2))
    print(json.dumps(results))
    model.save(os.path.join(FLAGS.model_dir, "model.keras"))
    # bert-export of model.keras reads these, so a later export serves as trained.
    options = task.export_options()
    if task.labels:
        # Relative to this file, so the model directory can be exported from anywhere or moved.
        options["labels_file"] = "labels.txt"
    with tf.io.gfile.GFile(os.path.join(FLAGS.model_dir, EXPORT_OPTIONS_FILE), "w") as f:
        f.write(json.dumps(options, indent=2))
    print(f"Model: {os.path.join(FLAGS.model_dir, 'model.keras')}; evaluation: "
          f"{os.path.join(FLAGS.model_dir, 'eval_results.json')}")
    if FLAGS.export_dir:
        from keras_bert_impl.export import export_saved_model

        export_saved_model(model, FLAGS.export_dir, vocab_file=FLAGS.vocab_file,
                           version=export_version, labels=task.labels or None,
                           **task.export_options())
        version_dir = os.path.join(FLAGS.export_dir, str(export_version))
        print(f"Exported for TensorFlow Serving: {version_dir}")


def default_eval_split(tfds_name: str) -> str:
    """GLUE's MNLI has two development sets (validation_matched, validation_mismatched);
    run_classifier.py's MnliProcessor evaluates on the matched one."""
    return "validation_matched" if tfds_name.split(":")[0] == "glue/mnli" else "validation"


def _workers_agree_on() -> dict:
    """What the workers of a multi-worker run must share beyond the resume flags."""
    return {f"--{name}": FLAGS[name].value for name in (
        "bert_config", "preset", "init_checkpoint", "eval_file", "tfds_eval_split",
        "save_checkpoints_steps", "steps_per_execution", "mixed_precision")}


def _export_version() -> int | None:
    """The export's version, checked free before any training."""
    from keras_bert_impl.cli.export import next_version

    if not FLAGS.export_dir:
        if FLAGS.export_version is not None:
            raise app.UsageError(f"--export_version={FLAGS.export_version} needs --export_dir, "
                                 "the directory the version is written under")
        return None
    if tf.io.gfile.exists(FLAGS.export_dir) and not tf.io.gfile.isdir(FLAGS.export_dir):
        raise app.UsageError(f"--export_dir={FLAGS.export_dir} is a file; give a directory "
                             "(versions are written under it)")
    version = FLAGS.export_version
    if version is None:
        version = next_version(FLAGS.export_dir)
    if tf.io.gfile.exists(os.path.join(FLAGS.export_dir, str(version))):
        raise app.UsageError(f"--export_dir={FLAGS.export_dir} already holds version {version}; "
                             "pass another --export_version, or none for the next one")
    return version


def _check_encoder_fits(config, tokenizer) -> None:
    source = FLAGS.bert_config or FLAGS.init_checkpoint or f"--preset={FLAGS.preset}"
    if config.vocab_size != tokenizer.vocab_size:
        raise app.UsageError(
            f"{source}: vocab_size {config.vocab_size} does not match the "
            f"{tokenizer.vocab_size} tokens of --vocab_file={FLAGS.vocab_file}")
    check_seq_length_fits(FLAGS.seq_length, config, source)


def _encoder():
    import keras

    from keras_bert_impl.models.encoder import BertEncoder

    path = FLAGS.init_checkpoint
    if path and path.endswith(".keras"):
        loaded = load_keras_file(path, "--init_checkpoint")
        encoder = getattr(loaded, "encoder", loaded)
        if encoder.dtype_policy.name != keras.config.dtype_policy().name:
            # A bf16 pretraining run saves a bf16 encoder: fine-tune it in this run's
            # precision (--mixed_precision), as from a Google checkpoint.
            from keras_bert_impl.export.precision import with_dtype_policy

            encoder = with_dtype_policy(encoder, keras.config.dtype_policy().name)
        return encoder
    return BertEncoder(bert_config_from_flags(FLAGS.bert_config, FLAGS.preset, FLAGS.vocab_file))


def run():
    run_tool(__name__, define_flags, main)


if __name__ == "__main__":
    run()
