"""What an export serves for each kind of model, and how new kinds plug in.

A `ServingHead` turns the packed encoder inputs (`serving_tokenized`) or the
raw strings (`serving_default`) into one model kind's outputs. Heads are
registered per model class, so a module can add one without editing the
exporter:

    @register_serving_head(BertTokenClassifier)
    class TokenClassifierServing(ServingHead):
        def outputs(self, features): ...
"""

import dataclasses

import keras
import tensorflow as tf

from keras_bert_impl.text.preprocessor import BertPreprocessor
from keras_bert_impl.text.tokenizer import BertTokenizer

_HEADS: dict[type, type["ServingHead"]] = {}

WARMUP_TEXTS = ("Hello world!", "北京欢迎你。", "Crème brûlée, s'il vous plaît", "emoji 😀👍")


@dataclasses.dataclass
class ServingContext:
    """The export options every head shares."""

    tokenizer: BertTokenizer
    preprocessor: BertPreprocessor
    pair_inputs: bool = False
    top_k: int = 5
    labels_file: str | None = None
    seq_length_buckets: tuple[int, ...] = ()
    doc_stride: int = 128
    max_query_length: int = 64
    max_answer_length: int = 30
    n_best_size: int = 20
    jit_compile: bool = False
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0

    def pack(self, segments: list[tf.RaggedTensor]) -> dict[str, tf.Tensor]:
        """Packs token ids; with buckets, trims to the smallest bucket that fits the batch."""
        features = self.preprocessor.pack(segments)
        if not self.seq_length_buckets:
            return features
        buckets = tf.constant(self.seq_length_buckets, tf.int32)
        longest = tf.reduce_max(tf.reduce_sum(features["input_mask"], axis=1))
        length = tf.reduce_min(tf.boolean_mask(buckets, buckets >= longest))
        return {name: value[:, :length] for name, value in features.items()}


class ServingHead:
    """Serving outputs for one model kind; subclasses implement `outputs`."""

    # Whether the head serves names from a labels file (`label`, `tags`).
    takes_labels = False

    def __init__(self, model: keras.Model, context: ServingContext):
        self.model = model
        self.context = context
        # Only the model call is compiled: XLA has no string ops, and the
        # tokenizer must stay plain TF-Text ops that TF Serving runs.
        self._compiled_model = tf.function(
            lambda features: model(features, training=False), jit_compile=True,
            autograph=False) if context.jit_compile else None

    def call_model(self, features: dict[str, tf.Tensor]):
        """The model's inference outputs; one XLA cluster when exported with `jit_compile`."""
        if self._compiled_model is None:
            return self.model(features, training=False)
        return self._compiled_model(features)

    def outputs(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The three int32 encoder inputs -> named output tensors (batch first)."""
        raise NotImplementedError

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        return self.context.tokenizer.tokenize(texts)

    def text_outputs(self, texts: list[tf.Tensor]) -> dict[str, tf.Tensor]:
        """One or two string tensors [batch] -> named outputs: tokenize, pack, `outputs`."""
        return self.outputs(self.context.pack([self.tokenize(t) for t in texts]))

    def resources(self) -> list:
        """TF resources (lookup tables) the signatures use besides the model and tokenizer."""
        return []

    def export_options(self) -> dict[str, int | float]:
        """Options this head was exported with, saved as scalar variables readable after loading."""
        return {}

    def warmup_texts(self) -> list[str]:
        return list(WARMUP_TEXTS)


def register_serving_head(model_class: type):
    """Class decorator: use this head for `model_class` and its subclasses."""
    def register(head_class: type[ServingHead]) -> type[ServingHead]:
        _HEADS[model_class] = head_class
        return head_class
    return register


def serving_head_for(model: keras.Model, context: ServingContext) -> ServingHead:
    for cls in type(model).__mro__:
        if cls in _HEADS:
            return _HEADS[cls](model, context)
    known = sorted(cls.__name__ for cls in _HEADS)
    raise TypeError(f"cannot export a {type(model).__name__}: no serving head is registered for "
                    f"it (known: {known}); see keras_bert_impl.export.serving_head")
