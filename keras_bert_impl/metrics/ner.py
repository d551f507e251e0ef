"""Entity-level precision, recall and F1 as CoNLL's `conlleval` script.

A chunk is a maximal run of tags of one entity type; where it starts and ends
follows conlleval's `startOfChunk`/`endOfChunk`, so IOB2 (`B-` opens every
entity) and IOB1 (`I-` after `O` or another type opens one, `B-` only
separates two adjacent entities of one type) are scored exactly as
conlleval.pl scores them. IOBES (`E-` closes, `S-` is a one-token entity) is
scored as seqeval does: conlleval.pl knows no `S-` and reads `E-` as IOE, where
`E-PER B-PER` is one chunk. An entity counts as correct only when its type,
start and end all match.
"""

from collections.abc import Sequence

Entity = tuple[str, int, int]  # (type, first token, last token), inclusive


def _split(tag: str) -> tuple[str, str]:
    if tag in ("O", ""):
        return "O", ""
    if "-" not in tag:
        return tag, ""
    prefix, entity_type = tag.split("-", 1)
    return prefix, entity_type


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, entity_type: str) -> bool:
    return (
        prev_tag in ("E", "S")
        or (prev_tag == "B" and tag in ("B", "S", "O"))
        or (prev_tag == "I" and tag in ("B", "S", "O"))
        or (prev_tag not in ("O", ".") and prev_type != entity_type)
    )


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, entity_type: str) -> bool:
    return (
        tag in ("B", "S")
        or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
        or (tag not in ("O", ".") and prev_type != entity_type)
    )


def get_entities(tags: Sequence[str]) -> list[Entity]:
    """The chunks of one sentence's tags, as conlleval finds them.

    >>> get_entities(["B-PER", "I-PER", "O", "I-LOC"])
    [('PER', 0, 1), ('LOC', 3, 3)]
    """
    entities = []
    prev_tag, prev_type = "O", ""
    start = None
    for position, raw in enumerate(list(tags) + ["O"]):
        tag, entity_type = _split(raw)
        if start is not None and _end_of_chunk(prev_tag, tag, prev_type, entity_type):
            entities.append((prev_type, start, position - 1))
            start = None
        if _start_of_chunk(prev_tag, tag, prev_type, entity_type):
            start = position
        prev_tag, prev_type = tag, entity_type
    return entities


def entity_scores(
    true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Micro-averaged entity `precision`, `recall` and `f1` over sentences.

    Fractions in [0, 1]; 0.0 where the denominator is empty, as conlleval.

    >>> entity_scores([["B-PER", "O"]], [["B-PER", "O"]])["f1"]
    1.0
    """
    if len(true_tags) != len(predicted_tags):
        raise ValueError(
            f"true and predicted tags differ in sentence count: "
            f"{len(true_tags)} vs {len(predicted_tags)}"
        )
    correct = found = expected = 0
    for index, (truth, prediction) in enumerate(zip(true_tags, predicted_tags)):
        if len(truth) != len(prediction):
            raise ValueError(
                f"sentence {index}: {len(truth)} true tags but {len(prediction)} predicted"
            )
        true_entities = set(get_entities(truth))
        predicted_entities = set(get_entities(prediction))
        correct += len(true_entities & predicted_entities)
        found += len(predicted_entities)
        expected += len(true_entities)
    precision = correct / found if found else 0.0
    recall = correct / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
