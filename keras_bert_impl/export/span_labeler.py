"""Serving a `BertSpanLabeler`: the answer to a question, cut from its context.

Export with `pair_inputs=True`: `text` is the question and `text_pair` the
context. The question keeps its first `MAX_QUERY_LENGTH` wordpieces and the
context is split into words and tokenized word by word as the SQuAD reader
does, then packed as `[CLS] question [SEP] context [SEP]`; a context longer
than the remaining `seq_length` is cut (serving reads one window, not
doc_stride windows). The best span maximises start + end logit over context
tokens with end >= start and at most `MAX_ANSWER_LENGTH` tokens, and is
widened to whole words, as `decode_answers`. Outputs: `answer` (the
context's own text), `score`, `start_char`/`end_char` (character offsets
into the context, end exclusive; -1 and "" when the context is empty), and
`start_logits`/`end_logits` [batch, seq].
"""

import tensorflow as tf

from keras_bert_impl.export.serving_head import ServingHead, register_serving_head
from keras_bert_impl.export.word_offsets import char_offsets, split_words, word_pieces
from keras_bert_impl.models.span_labeler import BertSpanLabeler

# bert-finetune's defaults for --max_query_length and --max_answer_length.
MAX_QUERY_LENGTH = 64
MAX_ANSWER_LENGTH = 30


@register_serving_head(BertSpanLabeler)
class SpanLabelerServing(ServingHead):
    def outputs(self, features):
        return self.model(features, training=False)

    def text_outputs(self, texts):
        if len(texts) != 2:
            raise ValueError("a BertSpanLabeler is exported with pair_inputs=True: "
                             "text = question, text_pair = context")
        question, context = texts
        seq_length = self.context.preprocessor.seq_length
        query = self.context.tokenizer.tokenize(question)[:, :MAX_QUERY_LENGTH]
        words, begin, end = split_words(context)
        pieces = word_pieces(self.context.tokenizer, words, unk_for_empty=False)
        piece_words = tf.RaggedTensor.from_row_splits(
            tf.repeat(tf.ragged.range(words.row_lengths()).values, pieces.values.row_lengths()),
            pieces.merge_dims(1, 2).row_splits)
        doc = pieces.merge_dims(1, 2)
        budget = tf.maximum(seq_length - 3 - query.row_lengths(), 0)
        keep = tf.ragged.range(doc.row_lengths()) < tf.expand_dims(budget, 1)
        doc = tf.ragged.boolean_mask(doc, keep)
        piece_words = tf.ragged.boolean_mask(piece_words, keep)
        features = self.context.pack([query, doc])
        logits = self.model(features, training=False)
        starts, ends = logits["start_logits"], logits["end_logits"]

        # Token t of the row is context piece t - offset (offset = [CLS] question [SEP]).
        width = tf.shape(starts)[1]
        offset = tf.cast(query.row_lengths() + 2, tf.int32)[:, None]
        piece = tf.range(width)[None, :] - offset
        in_doc = (piece >= 0) & (piece < tf.cast(doc.row_lengths(), tf.int32)[:, None])
        token_word = tf.gather(_padded(piece_words, width), tf.clip_by_value(piece, 0, width - 1),
                               batch_dims=1)

        scores = starts[:, :, None] + ends[:, None, :]
        position = tf.range(width)
        length = position[None, :] - position[:, None] + 1
        allowed = (in_doc[:, :, None] & in_doc[:, None, :]
                   & (length >= 1)[None] & (length <= MAX_ANSWER_LENGTH)[None])
        scores = tf.where(allowed, scores, float("-inf"))
        best = tf.argmax(tf.reshape(scores, [tf.shape(scores)[0], -1]), axis=-1,
                         output_type=tf.int32)
        start_token, end_token = best // width, best % width
        found = tf.reduce_any(allowed, axis=[1, 2])
        start_word = tf.gather(token_word, start_token, batch_dims=1)
        end_word = tf.gather(token_word, end_token, batch_dims=1)
        byte_begin = tf.gather(_padded(begin, 1), start_word, batch_dims=1)
        byte_end = tf.gather(_padded(end, 1), end_word, batch_dims=1)
        byte_begin = tf.where(found, tf.cast(byte_begin, tf.int32), 0)
        byte_end = tf.where(found, tf.cast(byte_end, tf.int32), 0)
        start_char, end_char = char_offsets(context, byte_begin, byte_end)
        return {
            "answer": tf.strings.substr(context, byte_begin, byte_end - byte_begin),
            "score": tf.where(found, tf.reduce_max(scores, axis=[1, 2]), float("-inf")),
            "start_char": tf.where(found, start_char, -1),
            "end_char": tf.where(found, end_char, -1),
            "start_logits": starts,
            "end_logits": ends,
        }

    def warmup_texts(self):
        return ["Who wrote it?", "北京在哪里？"]


def _padded(values: tf.RaggedTensor, min_width) -> tf.Tensor:
    """Dense with zeros, at least `min_width` wide, so clipped indices are always in range."""
    dense = values.to_tensor(0)
    padding = tf.zeros([tf.shape(dense)[0], min_width], dense.dtype)
    return tf.concat([dense, padding], axis=1)
