"""Serving a `BertClassifier`: `logits`, `probabilities` and, with labels, `label`."""

import tensorflow as tf

from keras_bert_impl.export.serving_head import ServingHead, register_serving_head
from keras_bert_impl.models.classifier import BertClassifier
from keras_bert_impl.text.vocab_file import read_vocab_file


@register_serving_head(BertClassifier)
class ClassifierServing(ServingHead):
    takes_labels = True

    def __init__(self, model, context):
        super().__init__(model, context)
        self._labels = None
        if context.labels_file:
            # Same format as a vocabulary: one label per line, line i = class i.
            labels, _ = read_vocab_file(context.labels_file, kind="labels")
            if len(labels) != model.num_classes:
                raise ValueError(f"{context.labels_file} lists {len(labels)} labels but the "
                                 f"classifier has num_classes={model.num_classes}")
            self._labels = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(
                    context.labels_file, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                    tf.string, tf.lookup.TextFileIndex.WHOLE_LINE),
                default_value="")

    def outputs(self, features):
        logits = self.call_model(features)
        outputs = {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}
        if self._labels is not None:
            outputs["label"] = self._labels.lookup(tf.argmax(logits, axis=-1))
        return outputs

    def resources(self):
        return [self._labels] if self._labels is not None else []
