"""Export: a TensorFlow-Serving SavedModel with the tokenizer inside.

Importing this package registers the serving head of every model kind (one
module each); a module adding a kind is imported here too.
"""

from keras_bert_impl.export import (  # noqa: F401
    classifier_serving,
    encoder_serving,
    masked_lm_serving,
    span_labeler,
    token_classifier,
)
from keras_bert_impl.export.op_allowlist import (
    MIN_TF_SERVING_VERSION,
    UnsupportedOpsError,
    check_serving_ops,
    saved_model_ops,
)
from keras_bert_impl.export.precision import with_dtype_policy
from keras_bert_impl.export.saved_model import export_saved_model
from keras_bert_impl.export.serving_head import (
    ServingContext,
    ServingHead,
    register_serving_head,
)

__all__ = [
    "MIN_TF_SERVING_VERSION",
    "ServingContext",
    "ServingHead",
    "UnsupportedOpsError",
    "check_serving_ops",
    "export_saved_model",
    "register_serving_head",
    "saved_model_ops",
    "with_dtype_policy",
]
