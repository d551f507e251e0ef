"""Reading and writing WordPiece vocabulary files (one token per line, id = line number)."""

import hashlib
import os

import tensorflow as tf

# Words are never empty and continuation pieces are "##" plus a non-empty rest.
_NEVER_LOOKED_UP = ("", "##")


def read_vocab_file(path: str, kind: str = "vocabulary") -> tuple[list[str], str]:
    """Returns the tokens of a vocabulary file and the file's sha256.

    The file is used as is by a `tf.lookup` table (one key per line), so a
    line the original `load_vocab` would read differently is an error naming
    the line: a token with surrounding whitespace (the original strips it),
    unless stripping leaves "" or "##", which no word can match either way
    (the Chinese vocabulary has "\u2028" and "##\u2028"); an empty line, which
    TensorFlow's table initializer refuses; a duplicate (the original silently
    keeps the last id); invalid UTF-8; a byte-order mark or Windows line ends
    (editors on Windows add them). `kind` names the file in errors (labels
    files have the same format).
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{kind} file not found: {path}")
    if tf.io.gfile.isdir(path):
        raise IsADirectoryError(f"{kind} file {path} is a directory; name the file in it "
                                "(e.g. vocab.txt)")
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: {kind} file is not valid UTF-8") from e
    if text.startswith("\ufeff"):
        raise ValueError(f"{path}:1: the {kind} file starts with a byte-order mark (U+FEFF); "
                         "save it as UTF-8 without BOM")
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    first_line = {}
    for number, token in enumerate(tokens, start=1):
        if not token:
            raise ValueError(f"{path}:{number}: empty line in the {kind} file (expected one "
                             "token per line; TensorFlow's lookup tables cannot read empty ones)")
        if token.endswith("\r"):
            raise ValueError(f"{path}:{number}: the {kind} file has Windows line ends (CRLF); "
                             "convert it to '\\n' line ends (e.g. dos2unix)")
        if token != token.strip() and token.strip() not in _NEVER_LOOKED_UP:
            raise ValueError(
                f"{path}:{number}: {kind} token {token!r} has surrounding whitespace "
                "(expected one token per line with '\\n' line ends)"
            )
        if token in first_line:
            raise ValueError(
                f"{path}:{number}: {kind} token {token!r} repeats line {first_line[token]}"
            )
        first_line[token] = number
    if not tokens:
        raise ValueError(f"{path}: {kind} file is empty")
    return tokens, hashlib.sha256(data).hexdigest()


def write_vocab_file(tokens: list[str], path: str) -> None:
    """Writes tokens one per line, the format `read_vocab_file` and the original BERT read.

    Whole or not at all: the tokens go to a hidden `.NAME.partial` beside `path`, renamed
    over it once written, so a failed write (a full disk) leaves an earlier file as it was.
    """
    partial = partial_vocab_path(path)
    try:
        with tf.io.gfile.GFile(partial, "w") as f:
            f.write("".join(token + "\n" for token in tokens))
        tf.io.gfile.rename(partial, path, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(partial):
            tf.io.gfile.remove(partial)
        raise


def partial_vocab_path(path: str) -> str:
    """Where `write_vocab_file` writes `path` until it is complete."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.partial")
