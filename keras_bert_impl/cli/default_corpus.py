"""The quickstart's built-in corpus: Python's help topics, shipped with every CPython.

`pydoc_data.topics` holds about 460 KB of English prose (the language
reference behind `help("if")`). This module turns it into the original BERT
corpus format: one sentence per line, a blank line between documents, where
a document is one section of a help topic. Code blocks (indented lines) and
heading underlines are left out.
"""

import re

_HEADING_UNDERLINE = re.compile(r"^[*=\-~^\"]{3,}\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"(])")
_MIN_SENTENCE_WORDS = 3


def help_topic_documents() -> list[list[str]]:
    """Every section of every help topic as a list of sentences, in a fixed order."""
    from pydoc_data.topics import topics

    documents = []
    for name in sorted(topics):
        documents.extend(_sections(topics[name]))
    return [doc for doc in documents if len(doc) >= 2]


def _sections(text: str) -> list[list[str]]:
    lines = text.splitlines()
    sections, paragraph, current = [], [], []

    def end_paragraph():
        if paragraph:
            current.extend(_sentences(" ".join(paragraph)))
            paragraph.clear()

    for i, line in enumerate(lines):
        next_line = lines[i + 1] if i + 1 < len(lines) else ""
        if _HEADING_UNDERLINE.match(next_line) and line.strip():
            end_paragraph()
            if current:
                sections.append(current)
            current = []
        elif _HEADING_UNDERLINE.match(line) or not line.strip() or line.startswith(" "):
            end_paragraph()
        else:
            paragraph.append(line.strip())
    end_paragraph()
    if current:
        sections.append(current)
    return sections


def _sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(paragraph) if len(s.split()) >= _MIN_SENTENCE_WORDS]


def write_corpus(documents: list[list[str]], path: str) -> None:
    """Writes documents in the BERT corpus format."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines("\n".join(document) + "\n\n" for document in documents)
