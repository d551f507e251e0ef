"""The original BERT `BasicTokenizer` as graph ops: clean, normalise, split into words.

Each step follows google-research/bert `tokenization.py` character for
character (its `_clean_text`, `_tokenize_chinese_chars`, `lower()` plus
`_run_strip_accents`, `_run_split_on_punc` and `whitespace_tokenize`):

* invalid UTF-8 bytes are dropped, as `bytes.decode("utf-8", "ignore")` does;
* U+0000, U+FFFD and control characters (categories Cc and Cf, except tab,
  newline and carriage return) are removed;
* whitespace (space, tab, newline, carriage return, category Zs, and U+2028 /
  U+2029, which Python's `str.split()` also splits on) separates words; the
  last two become spaces in `normalize`, so no vocabulary entry can match them;
* uncased: lower-case (full Unicode mapping, as `str.lower()`), NFD, then
  drop non-spacing marks (Mn); NOT NFKC case folding, so full-width
  punctuation, `…` and ligatures such as `ﬁ` survive unchanged;
* every CJK ideograph (the original's code-point ranges, which leave out kana
  and Hangul) and every punctuation character (ASCII 33-47, 58-64, 91-96,
  123-126 and Unicode category P) becomes a word of its own.

`normalize` does the first, second and fourth steps; `split_words` the rest.
Only core TensorFlow ops are used, plus TF-Text's `NormalizeUTF8` for NFD.
Character classes come from the Unicode tables of TensorFlow's RE2 (Unicode 15)
and TF-Text's ICU (16), lower-casing from TensorFlow's ICU (13), where the
original ran on Python's (Python 3.11: Unicode 14). Results differ only on
characters assigned after Unicode 14, on the few capitals whose lower case
Unicode 14 added (Vithkuqi U+10570-U+10595, U+2C2F, U+A7C0, U+A7D0, U+A7D6,
U+A7D8 stay capital here), and on a final sigma before a combining mark new in
Unicode 14 (TensorFlow's lower-casing does not know the mark).
Lower-casing is locale-independent, as `str.lower()`.
"""

import tensorflow as tf
import tensorflow_text as tf_text

# Cc is exactly U+0000-U+001F and U+007F-U+009F; tab, newline and carriage
# return are left out because the original treats them as whitespace.
_CONTROL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\p{Cf}\x{FFFD}]"
# Matches exactly the valid UTF-8 strings (no surrogates, nothing past
# U+10FFFF) that hold no control character: most batches need neither
# transcoding nor control removal, and checking is several times cheaper.
_CLEAN_UTF8 = (
    r"[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\p{Cf}\x{FFFD}\x{D800}-\x{DFFF}\x{2028}\x{2029}]*"
)
# Python's `str.split()` splits at these two, but FastWordpiece does not, and
# the Chinese vocabulary has them as tokens ("\u2028", "##\u2028"): they
# become plain spaces before WordPiece.
_LINE_SEPARATORS = r"[\x{2028}\x{2029}]"
# Printable ASCII and the three whitespace controls: nothing to clean, and
# lower-casing is ASCII's, with no accents to strip.
_PLAIN_ASCII = r"[\t\n\r\x20-\x7E]*"
WHITESPACE = r"[\t\n\r\p{Zs}\x{2028}\x{2029}]"
# Unicode 16 punctuation that RE2's tables (Unicode 15) lack: FastWordpiece's
# splitting (ICU, Unicode 16) separates them, so the word-by-word path must too,
# or a text's tokens would depend on the other texts of its batch.
_UNICODE_16_PUNCTUATION = (
    r"\x{1B4E}\x{1B4F}\x{1B7F}\x{10D6E}\x{113D4}\x{113D5}\x{113D7}\x{113D8}\x{11BE1}"
    r"\x{16D6D}-\x{16D6F}\x{1E5FF}"
)
PUNCTUATION = rf"!-/:-@\[-`{{-~\p{{P}}{_UNICODE_16_PUNCTUATION}"
# The code point ranges the original's _is_chinese_char takes for CJK ideographs.
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
CJK_IDEOGRAPHS = "".join(rf"\x{{{low:X}}}-\x{{{high:X}}}" for low, high in CJK_RANGES)  # RE2's
CJK_CHARACTERS = "".join(f"{chr(low)}-{chr(high)}" for low, high in CJK_RANGES)  # Python re's
# One pass turns whitespace into spaces (the group is empty for it) and
# surrounds each punctuation character and CJK ideograph with spaces;
# splitting on spaces then yields the original's words.
_SEPARATE = rf"{WHITESPACE}|([{PUNCTUATION}{CJK_IDEOGRAPHS}])"
_NON_SPACING_MARK = r"\p{Mn}"


def basic_tokenize(texts: tf.Tensor, lower_case: bool) -> tf.RaggedTensor:
    """Splits UTF-8 strings [batch] into words: tf.string RaggedTensor [batch, (words)]."""
    return split_words(normalize(texts, lower_case))


def normalize(texts: tf.Tensor, lower_case: bool) -> tf.Tensor:
    """Strings [batch] -> valid UTF-8 [batch] without control characters, lower-cased
    and accent-stripped when `lower_case`; words are still to be split."""
    if not lower_case:
        return _clean(texts)
    # Only texts with other characters pay for Unicode lower-casing and NFD;
    # in English text that is a small fraction.
    plain = tf.strings.regex_full_match(texts, _PLAIN_ASCII)
    return tf.cond(
        tf.reduce_all(plain),
        lambda: tf.strings.lower(texts),
        lambda: _lower_plain_and_strip_accents_of_others(texts, plain),
    )


def split_words(texts: tf.Tensor) -> tf.RaggedTensor:
    """Normalised strings [batch] -> words [batch, (words)] at whitespace, punctuation, CJK."""
    return tf.strings.split(tf.strings.regex_replace(texts, _SEPARATE, r" \1 "))


def _lower_plain_and_strip_accents_of_others(texts: tf.Tensor, plain: tf.Tensor) -> tf.Tensor:
    others = tf.where(tf.logical_not(plain))
    # ASCII first: Unicode lower-casing follows the process locale, and under a Turkish
    # or Azeri one (LANG=tr_TR.UTF-8) it maps "I" to dotless "ı", unlike str.lower().
    lowered = _strip_accents(tf.strings.lower(
        tf.strings.lower(_clean(tf.gather_nd(texts, others))), "utf-8"))
    return tf.tensor_scatter_nd_update(tf.strings.lower(texts), others, lowered)


def _clean(texts: tf.Tensor) -> tf.Tensor:
    return tf.cond(
        tf.reduce_all(tf.strings.regex_full_match(texts, _CLEAN_UTF8)),
        lambda: texts,
        lambda: tf.strings.regex_replace(
            tf.strings.regex_replace(_drop_invalid_utf8(texts), _CONTROL, ""),
            _LINE_SEPARATORS, " "),
    )


def _strip_accents(texts: tf.Tensor) -> tf.Tensor:
    return tf.strings.regex_replace(tf_text.normalize_utf8(texts, "NFD"), _NON_SPACING_MARK, "")


def _drop_invalid_utf8(texts: tf.Tensor) -> tf.Tensor:
    return tf.strings.unicode_transcode(
        texts, input_encoding="UTF-8", output_encoding="UTF-8", errors="ignore"
    )
