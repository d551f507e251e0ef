"""The QA export's in-graph doc_stride windows are the reader's windows, for any context length."""

import numpy as np

from keras_bert_impl.data.squad_windows import _doc_spans, _is_max_context
from keras_bert_impl.export.span_labeler import _Windows


def test_windows_and_max_context_tokens_match_the_reader_for_short_and_book_length_contexts():
    seq_length, doc_stride = 48, 16
    query_lengths = np.array([3, 20, 0, 7, 12, 5])
    doc_lengths = np.array([0, 10, 29, 100, 3001, 45])
    windows = _Windows(query_lengths, doc_lengths, seq_length, doc_stride)
    starts, lengths = windows.start.numpy(), windows.length.numpy()
    example = windows.example.numpy()
    pieces = np.arange(-2, seq_length)[None, :] + starts[:, None]
    max_context = windows.is_max_context(pieces).numpy()

    for e, (query_length, doc_length) in enumerate(zip(query_lengths, doc_lengths)):
        spans = _doc_spans(doc_length, seq_length - 3 - query_length, doc_stride)
        rows = np.flatnonzero(example == e)
        assert [(starts[r], lengths[r]) for r in rows] == [tuple(s) for s in spans]
        for index, row in enumerate(rows):
            expected = [0 <= p < doc_length and _is_max_context(spans, index, p)
                        for p in pieces[row]]
            np.testing.assert_array_equal(max_context[row], expected)
