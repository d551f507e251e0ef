"""The server's files through TensorFlow's file systems: local paths, gs://, and the rest
TensorFlow Serving reads."""

import tensorflow as tf


def read_text_file(path: str) -> str:
    """A config file's text from any TensorFlow file system (a local path, gs://, ...);
    OSError naming the path when it cannot be read."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read().decode("utf-8")
    except tf.errors.OpError as error:
        raise OSError(f"cannot read {path}: {error.message}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text: {error}") from None
