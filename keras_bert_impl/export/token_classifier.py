"""Serving a `BertTokenClassifier`: a tag for every word of the request text.

`serving_default` splits each text into words (as the CoNLL data is split:
whitespace, punctuation, CJK characters), tokenizes every word, packs them
and reads each word's logits at its first wordpiece, as in training. Outputs
[batch, words]: `words`, `tags` (from labels.txt), `tag_ids` and `logits`
[batch, words, num_classes]; padding and words cut by `seq_length` have tag
"" and tag id -1. `serving_tokenized` returns per-token `logits` and
`tag_ids`.
"""

import tensorflow as tf

from keras_bert_impl.export.serving_head import ServingHead, register_serving_head
from keras_bert_impl.export.word_offsets import (
    first_piece_positions,
    split_words,
    word_pieces,
)
from keras_bert_impl.models.token_classifier import BertTokenClassifier
from keras_bert_impl.text.vocab_file import read_vocab_file


@register_serving_head(BertTokenClassifier)
class TokenClassifierServing(ServingHead):
    takes_labels = True

    def __init__(self, model, context):
        super().__init__(model, context)
        if not context.labels_file:
            raise ValueError("exporting a BertTokenClassifier needs labels= (its tags, "
                             "labels.txt as bert-finetune writes it)")
        labels, _ = read_vocab_file(context.labels_file, kind="labels")
        if len(labels) != model.num_classes:
            raise ValueError(f"{context.labels_file} lists {len(labels)} tags but the model "
                             f"has num_classes={model.num_classes}")
        self._tags = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                context.labels_file, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                tf.string, tf.lookup.TextFileIndex.WHOLE_LINE),
            default_value="")

    def outputs(self, features):
        logits = self.call_model(features)
        return {"logits": logits, "tag_ids": tf.argmax(logits, axis=-1, output_type=tf.int32)}

    def text_outputs(self, texts):
        (text,) = texts
        # Invalid UTF-8 bytes are dropped, as the tokenizer drops them, not served as words.
        text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="ignore")
        words, _, _ = split_words(text)
        pieces = word_pieces(self.context.tokenizer, words, unk_for_empty=True)
        features = self.context.pack([pieces.merge_dims(1, 2)])
        logits = self.call_model(features)

        first_piece = first_piece_positions(pieces) + 1  # after [CLS]
        kept = first_piece < self.context.preprocessor.seq_length - 1
        positions = tf.where(kept, first_piece, tf.zeros_like(first_piece)).to_tensor(0)
        present = kept.to_tensor(False)
        word_logits = tf.gather(logits, positions, batch_dims=1)
        word_logits = tf.where(present[..., None], word_logits, 0.0)
        tag_ids = tf.where(present, tf.argmax(word_logits, axis=-1, output_type=tf.int32), -1)
        return {
            "words": words.to_tensor(""),
            "tags": self._tags.lookup(tf.cast(tag_ids, tf.int64)),
            "tag_ids": tag_ids,
            "logits": word_logits,
        }

    def resources(self):
        return [self._tags]
