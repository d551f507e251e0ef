"""Checks that an exported SavedModel uses only ops stock TensorFlow Serving links.

Model servers 2.12-2.19 link core TensorFlow and TF-Text 2.12. Newer ops,
TF-Text's (e.g. `RoundRobinTrim`, used by newer pair packers) or core
TensorFlow's (checked against TensorFlow 2.12's frozen op list), fail to load
there with "Op type not registered", so an export refuses them up front.
"""

import functools
import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

MIN_TF_SERVING_VERSION = "2.12"

# TF-Text ops registered by tensorflow-text 2.12, as they appear in graphs: the
# classic tokenizers, normalizers and splitters, plus FastWordpiece (TF-Text
# 2.7) and FastBertNormalize (2.9). Newer ops, e.g. "TFText>RoundRobinTrim",
# are left out on purpose.
TF_TEXT_2_12_OPS = frozenset({
    "CaseFoldUTF8",
    "ConstrainedSequence",
    "FastBertNormalize",
    "FastWordpieceTokenizeWithOffsets",
    "FindSourceOffsets",
    "MaxSpanningTree",
    "NormalizeUTF8",
    "NormalizeUTF8WithOffsetsMap",
    "RegexSplitWithOffsets",
    "SentenceFragments",
    "SentencepieceDetokenizeOp",
    "SentencepieceIdToStringOp",
    "SentencepieceOp",
    "SentencepieceStringToIdOp",
    "SentencepieceTokenizeOp",
    "SentencepieceTokenizeWithOffsetsOp",
    "SentencepieceVocabSizeOp",
    "SplitMergeTokenizeWithOffsets",
    "TFText>FastWordpieceDetokenize",
    "TokenizerFromLogits",
    "UnicodeScriptTokenizeWithOffsets",
    "WhitespaceTokenizeWithOffsets",
    "WordpieceTokenizeWithOffsets",
})


class UnsupportedOpsError(ValueError):
    """The SavedModel needs ops that TensorFlow Serving `MIN_TF_SERVING_VERSION` cannot run."""


def saved_model_ops(export_dir: str) -> set[str]:
    """Every op type in the SavedModel: graph nodes and all library functions."""
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        graph = meta_graph.graph_def
        ops.update(node.op for node in graph.node)
        for function in graph.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


_TF_2_12_OPS_FILE = os.path.join(os.path.dirname(__file__), "tf_2_12_ops.txt")


@functools.cache
def tf_2_12_core_ops() -> frozenset[str]:
    """Core TensorFlow 2.12 op names (`tf_2_12_ops.txt`), without XLA's own ops.

    A frozen list, not the installed TensorFlow's registry: ops added after
    2.12 (e.g. `RaggedFillEmptyRows`, `SegmentMaxV2`) would load here
    and fail on a 2.12 model server.
    """
    with open(_TF_2_12_OPS_FILE, encoding="utf-8") as f:
        names = (line.strip() for line in f)
        return frozenset(n for n in names if n and not n.startswith(("#", "Xla")))


def unsupported_ops(export_dir: str) -> list[str]:
    """Ops in the SavedModel outside core TensorFlow and TF-Text 2.12, sorted."""
    allowed = tf_2_12_core_ops() | TF_TEXT_2_12_OPS
    return sorted(op for op in saved_model_ops(export_dir) if op not in allowed)


def check_serving_ops(export_dir: str) -> None:
    """Raises `UnsupportedOpsError` naming every op TF Serving 2.12+ would not find."""
    bad = unsupported_ops(export_dir)
    if bad:
        raise UnsupportedOpsError(
            f"{export_dir} uses ops that TensorFlow Serving {MIN_TF_SERVING_VERSION} (core "
            f"TensorFlow + TF-Text 2.12) does not register: {', '.join(bad)}. Loading it there "
            "fails with 'Op type not registered'; build the serving graph from core TF and "
            "the classic TF-Text tokenizer ops instead.")
