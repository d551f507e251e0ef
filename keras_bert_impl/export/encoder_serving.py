"""Serving a bare `BertEncoder`: `pooled_output` and `sequence_output`."""

from keras_bert_impl.export.serving_head import ServingHead, register_serving_head
from keras_bert_impl.models.encoder import BertEncoder


@register_serving_head(BertEncoder)
class EncoderServing(ServingHead):
    def outputs(self, features):
        encoded = self.call_model(features)
        return {"pooled_output": encoded["pooled_output"],
                "sequence_output": encoded["sequence_output"]}
