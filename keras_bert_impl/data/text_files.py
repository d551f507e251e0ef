"""Reading a whole UTF-8 text file from any `tf.io.gfile` path (local, gs://, ...)."""

import tensorflow as tf


def read_utf8(path: str, bom_refused_by: str | None = None) -> str:
    """The file's text without a leading byte-order mark; a ValueError for one when
    `bom_refused_by` names the file's real reader that fails on it (TensorFlow
    Serving's text-proto parser, for the model server's config files).

    Raises FileNotFoundError or IsADirectoryError naming the path, OSError naming
    it for other failures of the file system (permissions, an object store's
    errors), and ValueError naming the line where the bytes are not UTF-8. The
    file system is asked once when the file can be read (a poller reads often).
    """
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
    except tf.errors.OpError as error:
        if _is_directory(path):
            raise IsADirectoryError(f"{path}: is a directory, expected a file") from None
        if isinstance(error, tf.errors.NotFoundError):
            raise FileNotFoundError(f"{path}: file not found") from None
        raise OSError(f"cannot read {path}: {error.message}") from None
    if bom_refused_by and data.startswith(b"\xef\xbb\xbf"):
        raise ValueError(f"{path}: starts with a UTF-8 byte-order mark, which "
                         f"{bom_refused_by} refuses; save the file without one")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not valid UTF-8 ({error.reason} at byte "
                         f"{error.start})") from None


def _is_directory(path: str) -> bool:
    try:
        return tf.io.gfile.isdir(path)
    except tf.errors.OpError:
        return False
