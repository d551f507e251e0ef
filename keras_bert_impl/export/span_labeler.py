"""Serving a `BertSpanLabeler`: the answer to a question, cut from its context.

Export with `pair_inputs=True`: `text` is the question and `text_pair` the
context. As the SQuAD reader and `decode_answers` do, all in the graph: the
question keeps its first `max_query_length` wordpieces (and always leaves
room for one context token); the context is split
into words, tokenized word by word and cut into windows of the room left in
`seq_length`, moving by `doc_stride` tokens, each packed as
`[CLS] question [SEP] window [SEP]`. Every window is scored; a span may
start only at a token that window covers best (most context on both sides),
ends no earlier, spans at most `max_answer_length` tokens, is among the
window's `n_best_size` best starts and ends (ties to the earlier token; padding is
not among them, unlike the original, so a bucket's width cannot change the answer), and
maximises start + end logit over those pairs and all windows. It is
cut from the context at its wordpieces' characters where they spell their
words, else widened to whole words (`word_offsets.piece_byte_spans`). Exported with
`version_2_with_negative` (SQuAD v2.0), the answer is "" when the null score, the
smallest [CLS] start + end logit over the windows, exceeds the best span's score by more
than `null_score_diff_threshold`, as the original `write_predictions` and
`decode_answers` decide. Outputs: `answer` (the context's own text, "" for no answer),
`score` (of that answer: the null score for ""), `start_char`/`end_char` (character
offsets into the context, end exclusive; -1 for no answer or an empty context), and
`start_logits`/`end_logits` [batch, seq] of the window the answer comes from.
"""

import tensorflow as tf

from keras_bert_impl.export.serving_head import ServingHead, register_serving_head
from keras_bert_impl.export.word_offsets import (
    char_offsets,
    piece_byte_spans,
    split_words,
    word_pieces,
)
from keras_bert_impl.models.span_labeler import BertSpanLabeler


@register_serving_head(BertSpanLabeler)
class SpanLabelerServing(ServingHead):
    def __init__(self, model, context):
        super().__init__(model, context)
        for name in ("doc_stride", "max_query_length", "max_answer_length", "n_best_size"):
            if getattr(context, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(context, name)}")

    def outputs(self, features):
        return self.call_model(features)

    def export_options(self) -> dict[str, int | float]:
        return {"doc_stride": self.context.doc_stride,
                "max_query_length": self.context.max_query_length,
                "max_answer_length": self.context.max_answer_length,
                "n_best_size": self.context.n_best_size,
                "version_2_with_negative": int(self.context.version_2_with_negative),
                "null_score_diff_threshold": float(self.context.null_score_diff_threshold)}

    def text_outputs(self, texts):
        if len(texts) != 2:
            raise ValueError("a BertSpanLabeler is exported with pair_inputs=True: "
                             "text = question, text_pair = context")
        question, context = texts
        tokenizer = self.context.tokenizer
        # At least one context token always fits (the reader raises there instead).
        seq_length = self.context.preprocessor.seq_length
        query_length = min(self.context.max_query_length, seq_length - 4)
        query = tokenizer.tokenize(question)[:, :query_length]
        words, begin, _ = split_words(context)
        pieces = word_pieces(tokenizer, words, unk_for_empty=False)
        doc = pieces.merge_dims(1, 2)

        windows = _Windows(query.row_lengths(), doc.row_lengths(), seq_length,
                           self.context.doc_stride)
        window_doc = tf.gather(doc.flat_values, windows.piece_positions(doc.row_splits))
        features = self.context.pack([tf.gather(query, windows.example), window_doc])
        logits = self.call_model(features)
        starts, ends = logits["start_logits"], logits["end_logits"]

        # Token t of a window is piece t - offset + window start of its context.
        width = tf.shape(starts)[1]
        offset = tf.gather(tf.cast(query.row_lengths(), tf.int32) + 2, windows.example)
        local = tf.range(width)[None, :] - offset[:, None]
        in_doc = (local >= 0) & (local < windows.length[:, None])
        piece = local + windows.start[:, None]
        allowed_start = in_doc & windows.is_max_context(piece)

        position = tf.range(width)
        length = position[None, :] - position[:, None] + 1
        allowed = (allowed_start[:, :, None] & in_doc[:, None, :]
                   & ((length >= 1) & (length <= self.context.max_answer_length))[None])
        # As the original, only the window's `n_best_size` best starts and ends compete, but
        # padding takes no place among them: a bucket's width would change the answer.
        n_best = tf.minimum(self.context.n_best_size, width)
        padding = tf.equal(features["input_mask"], 0)

        def among_best(logits):
            best = tf.math.top_k(tf.where(padding, float("-inf"), logits), k=n_best).indices
            return tf.reduce_any(best[:, :, None] == position[None, None, :], axis=1)

        allowed &= among_best(starts)[:, :, None] & among_best(ends)[:, None, :]
        scores = tf.where(allowed, starts[:, :, None] + ends[:, None, :], float("-inf"))
        flat_scores = tf.reshape(scores, [tf.shape(scores)[0], width * width])
        window_best = tf.argmax(flat_scores, axis=-1, output_type=tf.int32)
        window_score = tf.reduce_max(flat_scores, axis=-1)

        num_questions = tf.shape(question, out_type=tf.int64)[0]
        chosen = _window_of_each_question(window_score, windows.example, num_questions,
                                          tf.argmax, float("-inf"))
        best = tf.gather(window_best, chosen)
        chosen_piece = tf.gather(piece, chosen)
        start_piece = tf.gather(chosen_piece, best // width, batch_dims=1)
        end_piece = tf.gather(chosen_piece, best % width, batch_dims=1)
        found = tf.reduce_any(tf.gather(allowed, chosen), axis=[1, 2])
        score = tf.where(found, tf.gather(window_score, chosen), float("-inf"))
        if self.context.version_2_with_negative:
            null_window = starts[:, 0] + ends[:, 0]
            null_chosen = _window_of_each_question(null_window, windows.example, num_questions,
                                                   tf.argmin, float("inf"))
            null_score = tf.gather(null_window, null_chosen)
            found &= null_score - score <= self.context.null_score_diff_threshold
            score = tf.where(found, score, null_score)
            chosen = tf.where(found, chosen, null_chosen)

        piece_begin, piece_end = (spans.merge_dims(1, 2) for spans in
                                  piece_byte_spans(tokenizer, words, begin, pieces))
        byte_begin = tf.gather(_padded(piece_begin, 1), tf.maximum(start_piece, 0), batch_dims=1)
        byte_end = tf.gather(_padded(piece_end, 1), tf.maximum(end_piece, 0), batch_dims=1)
        byte_begin = tf.where(found, tf.cast(byte_begin, tf.int32), 0)
        byte_end = tf.where(found, tf.cast(byte_end, tf.int32), 0)
        start_char, end_char = char_offsets(context, byte_begin, byte_end)
        return {
            "answer": tf.strings.substr(context, byte_begin, byte_end - byte_begin),
            "score": score,
            "start_char": tf.where(found, start_char, -1),
            "end_char": tf.where(found, end_char, -1),
            "start_logits": tf.gather(starts, chosen),
            "end_logits": tf.gather(ends, chosen),
        }

    def warmup_texts(self):
        return ["Who wrote it?", "北京在哪里？"]


class _Windows:
    """The doc_stride windows of every context, flattened over the batch, as `squad_features`.

    A context of `d` pieces with `room` tokens per window has windows starting
    every min(room, doc_stride) pieces until one reaches its end (an empty
    context has one empty window).
    """

    def __init__(self, query_lengths, doc_lengths, seq_length: int, doc_stride: int):
        room = seq_length - 3 - tf.cast(query_lengths, tf.int32)
        doc_lengths = tf.cast(doc_lengths, tf.int32)
        step = tf.minimum(room, doc_stride)
        self.count = tf.where(doc_lengths > room, (doc_lengths - room + step - 1) // step + 1, 1)
        self.example = tf.repeat(tf.range(tf.size(self.count)), self.count)
        self.index = tf.ragged.range(self.count).flat_values
        self._room, self._step, self._doc_lengths = room, step, doc_lengths
        self.start = self.index * tf.gather(step, self.example)
        self.length = tf.minimum(tf.gather(doc_lengths, self.example) - self.start,
                                 tf.gather(room, self.example))

    def piece_positions(self, row_splits) -> tf.RaggedTensor:
        """[windows, (length)] indices of each window's pieces in the flat pieces of the batch."""
        base = tf.gather(tf.cast(row_splits, tf.int32), self.example) + self.start
        return tf.ragged.range(base, base + self.length)

    def is_max_context(self, piece: tf.Tensor) -> tf.Tensor:
        """[windows, seq] bool: the window gives piece `piece` its most context (first on ties).

        Scores are the original's min(left, right) + 0.01 * length, times 100 to stay integers.
        Windows are evenly spaced, so only the few whose starts lie within one window's
        room before `piece` can cover it: the work grows linearly with the context.
        """
        step = tf.gather(self._step, self.example)[:, None, None]
        room = tf.gather(self._room, self.example)[:, None, None]
        doc_length = tf.gather(self._doc_lengths, self.example)[:, None, None]
        count = tf.gather(self.count, self.example)[:, None, None]
        # At least 1: an empty batch has no windows to reduce over.
        reach = tf.maximum(tf.reduce_max((self._room + self._step - 1) // self._step), 0) + 1
        candidate = piece[:, :, None]
        other = tf.math.floordiv(candidate, step) - tf.range(reach)[None, None, :]
        other_start = other * step
        other_length = tf.minimum(doc_length - other_start, room)
        other_end = other_start + other_length - 1
        covers = ((other >= 0) & (other < count)
                  & (candidate >= other_start) & (candidate <= other_end))
        score = 100 * tf.minimum(candidate - other_start, other_end - candidate) + other_length
        score = tf.where(covers, score, -1)
        best = tf.reduce_max(score, axis=-1, keepdims=True)
        first_best = tf.reduce_min(tf.where(covers & (score == best), other, tf.int32.max),
                                   axis=-1)
        return first_best == self.index[:, None]


def _padded(values: tf.RaggedTensor, min_width) -> tf.Tensor:
    """Dense with zeros, at least `min_width` wide, so clipped indices are always in range."""
    dense = values.to_tensor(0)
    padding = tf.zeros([tf.shape(dense)[0], min_width], dense.dtype)
    return tf.concat([dense, padding], axis=1)


def _window_of_each_question(window_values, window_question, num_questions, pick, filler):
    """The index of the window that `pick` (tf.argmax or tf.argmin) chooses among each
    question's windows by `window_values`; `filler` pads questions with fewer windows."""
    by_question = tf.RaggedTensor.from_value_rowids(
        window_values, tf.cast(window_question, tf.int64), nrows=num_questions)
    # A filler column keeps the reduced axis non-empty when the batch is empty; every
    # question has a window, which `pick` prefers to the filler on ties (first wins).
    padded = tf.concat([by_question.to_tensor(filler),
                        tf.fill([num_questions, 1], tf.cast(filler, window_values.dtype))], 1)
    return (tf.cast(by_question.row_starts(), tf.int32)
            + pick(padded, axis=-1, output_type=tf.int32))
