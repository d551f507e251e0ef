"""What the fine-tuning readers do with a record they cannot use."""

from collections.abc import Iterable


class BadRecordError(ValueError):
    """A record in a data file that cannot be used; the message names where it is."""


class BadRecords:
    """Raises on a bad record, or counts it when skipping was asked for.

    >>> bad = BadRecords(skip=True)
    >>> bad.report("train.tsv:7: expected 2 fields, found 3")
    >>> bad.skipped
    1
    """

    def __init__(self, skip: bool = False):
        self.skip = skip
        self.skipped = 0

    def report(self, message: str) -> None:
        if not self.skip:
            raise BadRecordError(f"{message} (pass --skip_bad_records to skip such records)")
        self.skipped += 1


def lone_surrogate(texts: Iterable[object]) -> str | None:
    """The first of `texts` (strings; others are passed over) that is not valid Unicode,
    shortened for a message, or None.

    JSON can spell half of a UTF-16 pair (`"\\ud83d"`: text cut inside an emoji, as
    140-unit posts are); Python then holds a lone surrogate, which has no UTF-8 form
    and fails only when it becomes a tensor, without saying where.
    """
    for text in texts:
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                return repr(text[max(0, error.start - 10):error.start + 1])
    return None


LONE_SURROGATE = "holds half of a UTF-16 surrogate pair (text cut inside a character): "
