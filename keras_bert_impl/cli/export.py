r"""bert-export: write a trained model as a TensorFlow Serving SavedModel with its tokenizer.

    bert-export --model=/tmp/sst2/model.keras --vocab_file=vocab.txt \
        --labels_file=/tmp/sst2/labels.txt --export_dir=/models/bert
    bert-export --init_checkpoint=bert_model.ckpt --bert_config=bert_config.json \
        --model_kind=masked_lm --vocab_file=vocab.txt --export_dir=/models/bert
    bert-export --model=/tmp/squad/model.keras --vocab_file=vocab.txt --pair_inputs \
        --seq_length=384 --doc_stride=128 --max_query_length=64 --export_dir=/models/qa
    bert-export --model=/tmp/sst2/model.keras --vocab_file=vocab.txt --mixed_precision=bf16 \
        --export_dir=/models/bert

Writes --export_dir/<version>/ (by default one above the newest version there),
which `tensorflow_model_server --model_base_path=--export_dir` picks up.
"""


import os

from absl import app, flags

from keras_bert_impl.cli import (
    MIXED_PRECISION_POLICIES,
    bert_config_from_flags,
    check_lower_case_fits,
    load_keras_file,
    quiet_absl_logging,
    run_tool,
)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines this tool's flags (once); done at start-up, not import, so importing one
    tool never defines or requires flags of another in the same process."""
    if "model" in FLAGS:
        return
    flags.DEFINE_string("model", None, "A saved .keras model: BertEncoder, BertPretrainer, "
                        "BertClassifier or another kind with a registered serving head.")
    flags.DEFINE_string("init_checkpoint", None, "Or a Google-format checkpoint (bert_model.ckpt).")
    flags.DEFINE_enum("model_kind", "masked_lm", ["masked_lm", "encoder"],
                      "With --init_checkpoint: a fill-mask (BertPretrainer) or encoder export.")
    flags.DEFINE_string("bert_config", None, "bert_config.json for --init_checkpoint.")
    flags.DEFINE_string("preset", None, "Or a preset name for --init_checkpoint, e.g. bert_base.")
    flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary the model was trained with.")
    flags.DEFINE_bool("lower_case", True, "Lower-case and strip accents (uncased vocabularies).")
    flags.DEFINE_string("export_dir", None, "Base directory; the version goes in a subdirectory.")
    flags.DEFINE_integer("version", None, "Version number; default: newest existing + 1.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing version directory.")
    flags.DEFINE_integer("seq_length", 128, "Sequence length the texts are packed to.")
    flags.DEFINE_list("seq_length_buckets", [], "Optional increasing lengths ending with "
                      "--seq_length; each batch is padded only to the bucket it needs.")
    flags.DEFINE_bool("pair_inputs", False, "Serve sentence pairs: inputs `text` and `text_pair` "
                      "(span labelers: question and context).")
    flags.DEFINE_integer("top_k", 5, "Masked-LM exports: candidates per [MASK].")
    flags.DEFINE_string("labels_file", None, "Classifiers and token classifiers: labels.txt "
                        "(line i = class i), served as the `label` output or the `tags`.")
    flags.DEFINE_integer("doc_stride", 128, "Span labelers (QA): tokens between the starts of "
                         "the context windows.", lower_bound=1)
    flags.DEFINE_integer("max_query_length", 64, "Span labelers (QA): question tokens kept.",
                         lower_bound=1)
    flags.DEFINE_integer("max_answer_length", 30, "Span labelers (QA): longest answer in tokens.",
                         lower_bound=1)
    flags.DEFINE_integer("n_best_size", 20, "Span labelers (QA): start and end candidates per "
                         "window, as bert-finetune's --n_best_size.", lower_bound=1)
    flags.DEFINE_bool("jit_compile", False, "Compile the model call (not the tokenizer) with XLA. "
                      "Each new batch and sequence shape compiles on first use, and stock "
                      "tensorflow_model_server runs it on CPU only when started with "
                      "--xla_cpu_compilation_enabled=true.")
    flags.DEFINE_enum("mixed_precision", None, list(MIXED_PRECISION_POLICIES),
                      "Serve in this precision: bf16 (mixed_bfloat16; much faster on CPUs with "
                      "AVX512_BF16 or AMX, without --jit_compile, and on TPUs), fp16 "
                      "(mixed_float16, for GPUs) or none (float32). Default: as the model was "
                      "saved (bert-pretrain --mixed_precision=bf16 saves a bf16 model).")
    flags.mark_flags_as_required(["vocab_file", "export_dir"])
    flags.register_validator(
        "seq_length_buckets",
        lambda buckets: all(b.strip().isascii() and b.strip().isdigit() for b in buckets),
        message="--seq_length_buckets must be comma-separated whole numbers, e.g. 32,64,128")
    flags.mark_flags_as_mutual_exclusive(["model", "init_checkpoint"], required=True)


SPAN_LABELER_FLAGS = ("doc_stride", "max_query_length", "max_answer_length", "n_best_size")
# Written by bert-finetune beside model.keras: how training read texts.
EXPORT_OPTIONS_FILE = "export_options.json"


def _recorded_options() -> dict:
    """bert-finetune's settings beside `--model`, less those given on the command line.

    Without them a re-export would serve with this tool's defaults (lower-casing,
    seq_length 128, no labels), unlike the model was trained.
    """
    import json

    import tensorflow as tf

    if not FLAGS.model:
        return {}
    path = os.path.join(os.path.dirname(FLAGS.model), EXPORT_OPTIONS_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        recorded = json.load(f)
    options = {name: value for name, value in recorded.items()
               if name not in FLAGS or not FLAGS[name].present}
    labels = options.get("labels_file")
    if labels and not os.path.isabs(labels):
        beside = os.path.join(os.path.dirname(path), labels)
        # Files written before the path was relative to them name a directory too, from the
        # working directory of the training run.
        if tf.io.gfile.exists(beside) or not os.path.dirname(labels):
            options["labels_file"] = beside
    if options:
        print(f"From {path}: " + ", ".join(f"{k}={v}" for k, v in sorted(options.items())))
    return options


def next_version(export_dir: str) -> int:
    """One above the highest numeric subdirectory of `export_dir` (1 when there is none).

    Only ASCII digits name a version, as for TF Serving: str.isdigit() also takes "²"
    (which int() refuses) and "٣" (which int() reads as 3)."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(export_dir):
        return 1
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(export_dir))
    versions = [int(name) for name in names if name.isascii() and name.isdigit()]
    return max(versions, default=0) + 1


def _load_model():
    if FLAGS.model:
        return load_keras_file(FLAGS.model, "--model")
    from keras_bert_impl.checkpoints.google import load_google_checkpoint
    from keras_bert_impl.models.encoder import BertEncoder
    from keras_bert_impl.models.pretrainer import BertPretrainer

    if not (FLAGS.bert_config or FLAGS.preset):
        raise app.UsageError("--init_checkpoint needs --bert_config or --preset")
    encoder = BertEncoder(bert_config_from_flags(FLAGS.bert_config, FLAGS.preset,
                                                 FLAGS.vocab_file))
    model = BertPretrainer(encoder) if FLAGS.model_kind == "masked_lm" else encoder
    # A fill-mask export never reads the next-sentence head.
    missing = [name for name in load_google_checkpoint(
        model, FLAGS.init_checkpoint, allow_missing_heads=True).missing
        if name.startswith("cls/predictions/")]
    if missing:
        raise app.UsageError(
            f"--init_checkpoint={FLAGS.init_checkpoint} has no masked-LM head (it lacks "
            f"{', '.join(missing)}) for --model_kind=masked_lm; export its encoder with "
            "--model_kind=encoder")
    return model


def _check_span_labeler_flags(model, pair_inputs: bool) -> None:
    """The window flags only mean something for a span labeler, which needs pairs."""
    from keras_bert_impl.models.span_labeler import BertSpanLabeler

    if isinstance(model, BertSpanLabeler):
        if not pair_inputs:
            raise app.UsageError("a BertSpanLabeler is exported with --pair_inputs "
                                 "(text = question, text_pair = context)")
        return
    given = [f"--{name}" for name in SPAN_LABELER_FLAGS if FLAGS[name].present]
    if given:
        raise app.UsageError(f"QA window flags ({', '.join(given)}) apply only to a "
                             f"BertSpanLabeler; the model to export is a {type(model).__name__}")


def _check_top_k_flag(model) -> None:
    """--top_k only means something for a fill-mask (masked-LM) export."""
    from keras_bert_impl.models.pretrainer import BertPretrainer

    if FLAGS["top_k"].present and not isinstance(model, BertPretrainer):
        raise app.UsageError("--top_k applies only to a masked-LM export (a BertPretrainer); "
                             f"the model to export is a {type(model).__name__}")


def main(argv: list[str]) -> None:
    del argv
    quiet_absl_logging()
    from keras_bert_impl.export.saved_model import export_saved_model

    options = {
        "lower_case": FLAGS.lower_case, "seq_length": FLAGS.seq_length,
        "pair_inputs": FLAGS.pair_inputs, "labels_file": FLAGS.labels_file,
        **{name: FLAGS[name].value for name in SPAN_LABELER_FLAGS},
        **_recorded_options()}
    check_lower_case_fits(FLAGS.vocab_file, options["lower_case"])
    model = _load_model()
    version = FLAGS.version if FLAGS.version is not None else next_version(FLAGS.export_dir)
    _check_span_labeler_flags(model, options["pair_inputs"])
    _check_top_k_flag(model)
    path = export_saved_model(
        model, FLAGS.export_dir, vocab_file=FLAGS.vocab_file, version=version,
        top_k=FLAGS.top_k, labels=options.pop("labels_file"),
        seq_length_buckets=[int(b) for b in FLAGS.seq_length_buckets] or None,
        overwrite=FLAGS.overwrite, jit_compile=FLAGS.jit_compile,
        dtype_policy=MIXED_PRECISION_POLICIES.get(FLAGS.mixed_precision), **options)
    print(f"Exported {path}")


def run():
    run_tool(__name__, define_flags, main)


if __name__ == "__main__":
    run()
