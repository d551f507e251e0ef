"""BERT for TensorFlow 2 / Keras 3.

The public names below are the contract in DESIGN.md; code outside this repo
relies on them.
"""

import os

# TensorFlow's C++ start-up chatter is off unless the user asks for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's CPU allocator hands every freed buffer back to the system, and a
# training step then pays page faults for tens of MB of fresh memory (on a
# 2-vCPU VM, a third of a bert_mini step went to the kernel). The BFC pool
# keeps them. Read when TensorFlow first allocates, so import this package first.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

from keras_bert_impl.tf_logging import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

# Each area adds its public names here once its module imports cleanly.
from keras_bert_impl.config import BertConfig  # noqa: E402
from keras_bert_impl.models.encoder import BertEncoder  # noqa: E402
from keras_bert_impl.text.tokenizer import BertTokenizer  # noqa: E402
from keras_bert_impl.text.preprocessor import BertPreprocessor  # noqa: E402
from keras_bert_impl.checkpoints.google import (  # noqa: E402
    load_google_checkpoint,
    save_google_checkpoint,
)
from keras_bert_impl.export.saved_model import export_saved_model  # noqa: E402
from keras_bert_impl import serving  # noqa: E402
from keras_bert_impl.models.classifier import BertClassifier  # noqa: E402
from keras_bert_impl.models.token_classifier import BertTokenClassifier  # noqa: E402
from keras_bert_impl.models.span_labeler import BertSpanLabeler  # noqa: E402
from keras_bert_impl.data.pretraining import pretraining_dataset  # noqa: E402
from keras_bert_impl.models.pretrainer import BertPretrainer  # noqa: E402
from keras_bert_impl.training.optimization import create_optimizer  # noqa: E402
