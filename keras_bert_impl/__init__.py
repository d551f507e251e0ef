"""BERT for TensorFlow 2 / Keras 3.

The public names below are the project's contract (its DESIGN.md); code outside
this package relies on them.
"""

import os

# TensorFlow's C++ start-up chatter is off unless the user asks for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's CPU allocator hands every freed buffer back to the system, and a
# training step then pays page faults for tens of MB of fresh memory (on a
# 2-vCPU VM, a third of a bert_mini step went to the kernel). The BFC pool
# keeps them. Read when TensorFlow first allocates, so import this package first.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

from keras_bert_impl.tf_logging import import_tensorflow_quietly

import_tensorflow_quietly()

# The public API (DESIGN.md).
from keras_bert_impl import serving
from keras_bert_impl.checkpoints.google import (
    load_google_checkpoint,
    save_google_checkpoint,
)
from keras_bert_impl.config import BertConfig
from keras_bert_impl.data.pretraining import pretraining_dataset
from keras_bert_impl.export.saved_model import export_saved_model
from keras_bert_impl.models.classifier import BertClassifier
from keras_bert_impl.models.encoder import BertEncoder
from keras_bert_impl.models.pretrainer import BertPretrainer
from keras_bert_impl.models.span_labeler import BertSpanLabeler
from keras_bert_impl.models.token_classifier import BertTokenClassifier
from keras_bert_impl.text.preprocessor import BertPreprocessor
from keras_bert_impl.text.tokenizer import BertTokenizer
from keras_bert_impl.training.optimization import create_optimizer

__all__ = [
    "BertClassifier",
    "BertConfig",
    "BertEncoder",
    "BertPreprocessor",
    "BertPretrainer",
    "BertSpanLabeler",
    "BertTokenClassifier",
    "BertTokenizer",
    "create_optimizer",
    "export_saved_model",
    "load_google_checkpoint",
    "pretraining_dataset",
    "save_google_checkpoint",
    "serving",
]
