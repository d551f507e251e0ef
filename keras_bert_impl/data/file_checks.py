"""Input-file checks that read files whole, run once per version of a file in a process."""

import functools
from collections.abc import Callable

import tensorflow as tf


def once_per_file_version(check: Callable[..., None]) -> Callable[..., None]:
    """`check(path, *args)`, skipped when it already passed in this process for the same
    path, size, modification time and args.

    One process may build several input pipelines over the same files: a TPU host
    feeds all of its cores, and `distribute_datasets_from_function` calls the
    dataset function once per pipeline, one after another. A check that reads a
    whole corpus would otherwise read it again for each of them.
    """
    @functools.cache
    def passed(path, version, *args):
        del version  # part of the cache key only
        check(path, *args)

    @functools.wraps(check)
    def run(path: str, *args) -> None:
        stat = tf.io.gfile.stat(path)
        passed(path, (stat.length, stat.mtime_nsec), *args)

    return run
