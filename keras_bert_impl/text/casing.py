"""Whether a WordPiece vocabulary is cased, to catch a lower-casing setting that cannot fit it.

The original run_* scripts refuse `--do_lower_case=True` with a checkpoint whose
directory is named like a cased release, and False with an uncased one
(`validate_case_matches_checkpoint`). The vocabulary itself tells the same for
any model: Google's uncased vocabularies hold no entry with a capital letter
(bert-base-chinese: only "<S>" and "<T>"), the cased ones thousands (8,366 of
bert-base-cased's 28,996). Lower-casing the input of a cased model makes every
such entry unreachable; keeping the case for an uncased model sends capitalised
words to [UNK] or to odd pieces.
"""

from collections.abc import Sequence

# Below this many entries with letters a vocabulary (e.g. a toy one in a test) is not judged.
_MIN_LETTER_ENTRIES = 100
# Cased: at least 1 % of the entries have a capital. Uncased: at most 0.1 %.
_CASED_SHARE = 0.01
_UNCASED_SHARE = 0.001


def _is_special(token: str) -> bool:
    return token.startswith("[") and token.endswith("]")


def vocabulary_casing(tokens: Sequence[str]) -> tuple[str | None, int]:
    """("cased" | "uncased" | None, the number of entries with a capital letter).

    None when too few entries hold letters to tell. Bracketed special tokens
    ([CLS], [unused0]) do not count.
    """
    words = [token.removeprefix("##") for token in tokens if not _is_special(token)]
    capitalised = sum(word != word.lower() for word in words)
    with_letters = sum(word.lower() != word.upper() for word in words)
    if with_letters < _MIN_LETTER_ENTRIES:
        return None, capitalised
    if capitalised >= _CASED_SHARE * len(words):
        return "cased", capitalised
    if capitalised <= _UNCASED_SHARE * len(words):
        return "uncased", capitalised
    return None, capitalised


def casing_mismatch(tokens: Sequence[str], lower_case: bool) -> str | None:
    """Why `lower_case` cannot fit a vocabulary of `tokens`, or None when it can (or it is
    not clear)."""
    casing, capitalised = vocabulary_casing(tokens)
    if casing == "cased" and lower_case:
        return (f"the vocabulary is cased ({capitalised} of its {len(tokens)} entries have "
                "capital letters) but lower-casing is on, so those entries are never used; "
                "a cased model needs lower-casing off")
    if casing == "uncased" and not lower_case:
        return (f"the vocabulary is uncased (only {capitalised} of its {len(tokens)} entries "
                "have capital letters) but lower-casing is off, so capitalised words become "
                "[UNK] or odd pieces; an uncased model needs lower-casing on")
    return None
