"""`BertTokenizer`: the original BERT FullTokenizer as a TF-Text graph."""

import warnings

import tensorflow as tf
import tensorflow_text as tf_text

from keras_bert_impl.text.basic_tokenization import normalize, split_words
from keras_bert_impl.text.casing import casing_mismatch
from keras_bert_impl.text.vocab_file import read_vocab_file

REQUIRED_TOKENS = {"pad_id": "[PAD]", "unk_id": "[UNK]", "cls_id": "[CLS]", "sep_id": "[SEP]"}
_UNK = "[UNK]"
# A UTF-8 character is at most 4 bytes, so a word within the character limit
# never hits TF-Text's byte limit; the character limit is applied separately.
_MAX_BYTES_PER_CHAR = 4


class BertTokenizer(tf.Module):
    """Text -> WordPiece ids, identical to the original BERT `FullTokenizer`.

    A graph of core TensorFlow and TF-Text ops, so it runs in `tf.data` and
    inside an exported SavedModel: the vocabulary file is saved as an asset
    (it backs `id_to_token`), and WordPiece runs TF-Text's FastWordpiece on a
    model built from that vocabulary and saved with the graph.
    Normalisation is the original's (see `basic_tokenization`); WordPiece is
    greedy longest-match-first, and a word that cannot be split or has more
    than `max_chars_per_token` characters becomes `[UNK]` (100 as HuggingFace
    and TF-Text; the original script used 200).

    Input bytes that are not valid UTF-8 are dropped, as the original's
    `decode("utf-8", "ignore")`; an empty or all-whitespace string gives no
    tokens. Texts of any length are tokenized whole (truncation is the
    preprocessor's job). A `lower_case` that cannot fit the vocabulary (a cased
    one with lower-casing, an uncased one without) is warned about.

    ```python
    tok = BertTokenizer("vocab.txt", lower_case=True)
    tok.tokenize(tf.constant(["Hello world!"]))  # <tf.RaggedTensor [[7592, 2088, 999]]>
    ```
    """

    def __init__(self, vocab_file: str, lower_case: bool = True, max_chars_per_token: int = 100):
        super().__init__(name="bert_tokenizer")
        if not isinstance(max_chars_per_token, int) or max_chars_per_token < 1:
            raise ValueError(
                f"max_chars_per_token must be a positive int, got {max_chars_per_token!r}"
            )
        self.vocab_file = vocab_file
        self.lower_case = bool(lower_case)
        self.max_chars_per_token = max_chars_per_token
        self.vocab, self.vocab_sha256 = read_vocab_file(vocab_file)
        if mismatch := casing_mismatch(self.vocab, self.lower_case):
            warnings.warn(f"{vocab_file}: {mismatch}", stacklevel=2)
        self.vocab_size = len(self.vocab)
        ids = {token: i for i, token in enumerate(self.vocab)}
        for attribute, token in REQUIRED_TOKENS.items():
            if token not in ids:
                raise ValueError(f"{vocab_file}: vocabulary has no {token} token (BERT needs it)")
            setattr(self, attribute, ids[token])
        self.mask_id = ids.get("[MASK]")

        self._id_to_token = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                vocab_file,
                key_dtype=tf.int64,
                key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                value_dtype=tf.string,
                value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                vocab_size=self.vocab_size,
            ),
            default_value=_UNK,
        )
        # The fast path: on normalised text FastWordpiece splits words itself,
        # by the original's rules (whitespace, ASCII and category P punctuation,
        # the same CJK ranges). Its word limit counts bytes, so a word of more
        # than `max_chars_per_token` bytes (rare; it may still be short enough
        # in characters) sends the batch to the exact word-by-word path.
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            self.vocab,
            suffix_indicator="##",
            max_bytes_per_word=max_chars_per_token,
            token_out_type=tf.int32,
            unknown_token=_UNK,
        )
        self._word_wordpiece = tf_text.FastWordpieceTokenizer(
            self.vocab,
            suffix_indicator="##",
            max_bytes_per_word=_MAX_BYTES_PER_CHAR * max_chars_per_token,
            token_out_type=tf.int32,
            unknown_token=_UNK,
            no_pretokenization=True,
        )
        self._starts_word = tf.constant(
            [not (token.startswith("##") and len(token) > 2) for token in self.vocab]
        )
        # One graph per call, also when called eagerly.
        spec = [tf.TensorSpec([None], tf.string)]
        self._tokenize = tf.function(self._tokenize_graph, input_signature=spec)
        self._tokenize_words = tf.function(self._tokenize_words_graph, input_signature=spec)

    def tokenize_words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Strings [batch] -> int32 RaggedTensor [batch, (words), (wordpieces)]."""
        return self._tokenize_words(_as_batch_of_strings(texts))

    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Strings [batch] -> int32 RaggedTensor [batch, (wordpieces)]."""
        return self._tokenize(_as_batch_of_strings(texts))

    def _tokenize_graph(self, texts: tf.Tensor) -> tf.RaggedTensor:
        texts = normalize(texts, self.lower_case)
        pieces, has_long_word = self._fast_wordpieces(texts)
        return tf.cond(
            has_long_word,
            lambda: _merge_words(self._wordpieces_word_by_word(texts)),
            lambda: pieces,
        )

    def _tokenize_words_graph(self, texts: tf.Tensor) -> tf.RaggedTensor:
        texts = normalize(texts, self.lower_case)
        pieces, has_long_word = self._fast_wordpieces(texts)
        return tf.cond(
            has_long_word,
            lambda: self._wordpieces_word_by_word(texts),
            lambda: self._group_by_word(pieces),
        )

    def _fast_wordpieces(self, texts: tf.Tensor) -> tuple[tf.RaggedTensor, tf.Tensor]:
        """Wordpieces [batch, (pieces)], and whether some word is over the byte limit."""
        pieces, starts, ends = self._wordpiece.tokenize_with_offsets(texts)
        # Only a word over the limit gives a piece that long: its [UNK].
        too_long = ends.flat_values - starts.flat_values > self.max_chars_per_token
        return pieces, tf.reduce_any(too_long)

    def _group_by_word(self, pieces: tf.RaggedTensor) -> tf.RaggedTensor:
        """Wordpieces [batch, (pieces)] -> [batch, (words), (pieces)]: a word starts at
        each piece that is not a `##` continuation."""
        starts = tf.gather(self._starts_word, pieces.flat_values)
        word_splits = tf.concat([tf.where(starts)[:, 0], [tf.size(starts, tf.int64)]], 0)
        words_before = tf.concat([[0], tf.cumsum(tf.cast(starts, tf.int64))], 0)
        words = tf.RaggedTensor.from_row_splits(pieces.flat_values, word_splits, validate=False)
        return tf.RaggedTensor.from_row_splits(
            words, tf.gather(words_before, pieces.row_splits), validate=False
        )

    def _wordpieces_word_by_word(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """The exact path: normalised strings -> [batch, (words), (pieces)]."""
        words = split_words(texts)
        too_long = tf.strings.length(words, unit="UTF8_CHAR") > self.max_chars_per_token
        words = tf.ragged.map_flat_values(tf.where, too_long, _UNK, words)
        return self._word_wordpiece.tokenize(words)

    def id_to_token(self, ids: tf.Tensor | tf.RaggedTensor) -> tf.Tensor | tf.RaggedTensor:
        """Ids (any shape, dense or ragged) -> their vocabulary strings; unknown ids -> `[UNK]`."""
        if isinstance(ids, tf.RaggedTensor):
            return tf.ragged.map_flat_values(self.id_to_token, ids)
        return self._id_to_token.lookup(tf.cast(ids, tf.int64))

    def detokenize(self, ids: tf.RaggedTensor) -> tf.Tensor:
        """Ids [batch, (wordpieces)] -> strings [batch]: pieces joined, `##` pieces merged."""
        tokens = self.id_to_token(ids)
        text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        return tf.strings.regex_replace(text, " ##", "")


def _merge_words(pieces: tf.RaggedTensor) -> tf.RaggedTensor:
    # merge_dims would add Assert ops; these row splits are valid by construction.
    return tf.RaggedTensor.from_row_splits(
        pieces.flat_values,
        tf.gather(pieces.values.row_splits, pieces.row_splits),
        validate=False,
    )


def _as_batch_of_strings(texts) -> tf.Tensor:
    texts = tf.convert_to_tensor(texts)
    if texts.dtype != tf.string:
        raise TypeError(f"texts must be tf.string, got {texts.dtype.name}")
    if texts.shape.rank is None:
        return tf.ensure_shape(texts, [None])
    if texts.shape.rank != 1:
        raise ValueError(f"texts must be a 1-D batch of strings [batch], got shape {texts.shape}")
    return texts
