"""What the fine-tuning readers do with a record they cannot use."""


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
