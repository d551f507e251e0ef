"""Whether a WordPiece vocabulary is cased, to catch a lower-casing setting that cannot fit it.

The original run_* scripts refuse `--do_lower_case=True` with a checkpoint whose
directory is named like a cased release, and False with an uncased one
(`validate_case_matches_checkpoint`). The vocabulary itself tells the same for
any model. A cased one holds many entries with capitals (8,366 of
bert-base-cased's 28,996): lower-casing the input would leave them unreachable.
An uncased one is left as it is by the tokenizer's lower-casing (lower case,
NFD, accents dropped), and holds words of a script with case: Google's uncased
vocabularies (bert-base-chinese: all but "<S>" and "<T>"). Keeping the case
for it sends capitalised words to [UNK] or odd pieces. Vocabularies of scripts
without case whose entries that normalisation would change (Hangul syllables,
Devanagari or Arabic marks) are neither, so no setting is refused for them.
"""

import unicodedata
from collections.abc import Sequence

# Below this many entries in a script with case (e.g. a toy vocabulary in a test)
# a vocabulary is not judged.
_MIN_CASED_SCRIPT_ENTRIES = 100
# Cased: at least 1 % of the entries have a capital. Uncased: lower-casing changes at
# most 0.1 % of them.
_CASED_SHARE = 0.01
_UNCASED_SHARE = 0.001


def _is_special(token: str) -> bool:
    return token.startswith("[") and token.endswith("]")


def _lower_cased(word: str) -> str:
    """The tokenizer's lower-casing of a word: lower case, NFD, non-spacing marks dropped."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def vocabulary_casing(tokens: Sequence[str]) -> tuple[str | None, int]:
    """("cased" | "uncased" | None, the number of entries with a capital letter).

    None when it is not clear (see the module docstring). Bracketed special
    tokens ([CLS], [unused0]) do not count.
    """
    words = [token.removeprefix("##") for token in tokens if not _is_special(token)]
    capitalised = sum(word != word.lower() for word in words)
    if sum(any(c.lower() != c.upper() for c in word) for word in words) < _MIN_CASED_SCRIPT_ENTRIES:
        return None, capitalised
    if capitalised >= _CASED_SHARE * len(words):
        return "cased", capitalised
    if sum(_lower_cased(word) != word for word in words) <= _UNCASED_SHARE * len(words):
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
        return (f"the vocabulary is uncased (lower-casing leaves its entries as they are; "
                f"{capitalised} of {len(tokens)} have capitals) but lower-casing is off, so "
                "capitalised words become [UNK] or odd pieces; an uncased model needs "
                "lower-casing on")
    return None
