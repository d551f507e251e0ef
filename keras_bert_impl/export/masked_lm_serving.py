"""Serving a `BertPretrainer` as fill-mask: the top-k tokens for every `[MASK]`."""

import tensorflow as tf

from keras_bert_impl.export.mask_token import tokenize_with_mask_token
from keras_bert_impl.export.serving_head import ServingHead, register_serving_head
from keras_bert_impl.models.pretrainer import BertPretrainer


@register_serving_head(BertPretrainer)
class MaskedLMServing(ServingHead):
    """`top_k_ids`, `top_k_tokens`, `top_k_scores` (softmax probabilities): [batch, masks, k].

    `masks` is the largest number of `[MASK]` tokens in a row of the batch;
    rows with fewer are padded with id -1, token "" and score 0.
    """

    def __init__(self, model, context):
        super().__init__(model, context)
        if context.tokenizer.mask_id is None:
            raise ValueError(f"{context.tokenizer.vocab_file}: the vocabulary has no [MASK] "
                             "token, which a masked-LM export needs")
        if context.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {context.top_k}")

    def tokenize(self, texts):
        return tokenize_with_mask_token(self.context.tokenizer, texts)

    def outputs(self, features):
        # A [MASK] id in padding (input_mask 0, only possible through serving_tokenized)
        # is not a token of the text: no predictions for it.
        is_mask = tf.logical_and(
            tf.equal(features["input_word_ids"], self.context.tokenizer.mask_id),
            tf.not_equal(features["input_mask"], 0))
        positions = tf.ragged.boolean_mask(
            tf.broadcast_to(tf.range(tf.shape(is_mask)[1]), tf.shape(is_mask)), is_mask)
        valid = tf.ones_like(positions, tf.bool).to_tensor(False)
        logits = self.call_model(
            {**features, "masked_lm_positions": positions.to_tensor(0)})["mlm_logits"]
        scores, ids = tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=self.context.top_k)
        valid = tf.broadcast_to(valid[:, :, None], tf.shape(ids))
        return {
            "top_k_ids": tf.where(valid, ids, -1),
            "top_k_tokens": tf.where(valid, self.context.tokenizer.id_to_token(ids), ""),
            "top_k_scores": tf.where(valid, scores, 0.0),
        }

    def warmup_texts(self):
        return ["Paris is the [MASK] of France.", "北京是中国的[MASK]都。", "a [MASK] [MASK] 😀"]
