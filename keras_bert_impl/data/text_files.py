"""Reading a whole UTF-8 text file from any `tf.io.gfile` path (local, gs://, ...)."""

import tensorflow as tf


def read_utf8(path: str) -> str:
    """The file's text without a leading BOM.

    Raises FileNotFoundError or IsADirectoryError naming the path, OSError naming
    it for other failures of the file system (permissions, an object store's
    errors), and ValueError naming the line where the bytes are not UTF-8.
    """
    try:
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"{path}: file not found")
        if tf.io.gfile.isdir(path):
            raise IsADirectoryError(f"{path}: is a directory, expected a file")
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
    except tf.errors.OpError as error:
        raise OSError(f"cannot read {path}: {error.message}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not valid UTF-8 ({error.reason} at byte "
                         f"{error.start})") from None
