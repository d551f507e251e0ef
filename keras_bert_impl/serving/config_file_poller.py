"""`--model_config_file_poll_wait_seconds`: re-reads the model config file and reloads it."""

import threading

from absl import logging

from keras_bert_impl.serving.errors import ServingError
from keras_bert_impl.serving.model_config import read_model_config_file
from keras_bert_impl.serving.model_manager import ModelManager


class ConfigFilePoller:
    """Every `wait_seconds`, reads `path` and, when its models changed, `manager.reload`s them.

    As tensorflow_model_server: a file that cannot be read or parsed, or a reload that
    fails, is logged and the server keeps serving; the next poll tries again. An
    unchanged file is not reloaded.
    """

    def __init__(self, manager: ModelManager, path: str, wait_seconds: float, applied):
        self._manager = manager
        self._path = path
        self._wait_seconds = wait_seconds
        self._applied = _fingerprint(applied)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="config-file-poller",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Polls no more; a reload under way finishes (or sees the manager stop): `join()`."""
        self._stop.set()

    def join(self) -> None:
        if self._thread.is_alive():
            self._thread.join()

    def poll(self) -> None:
        try:
            configs = read_model_config_file(self._path)
        except (OSError, ValueError) as error:
            logging.error("Failed to read the model config file; still serving the last one "
                          "loaded: %s", error)
            return
        if _fingerprint(configs) == self._applied:
            return
        try:
            self._manager.reload(configs)
        except ServingError as error:
            # Tried again at the next poll, as TF Serving: a label refused now may name a
            # version available by then.
            logging.error("Reloading %s failed: %s", self._path, error)
            return
        self._applied = _fingerprint(configs)

    def _run(self) -> None:
        while not self._stop.wait(self._wait_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a dead poller would never reload again
                logging.exception("Polling %s failed; retrying in %g s", self._path,
                                  self._wait_seconds)


def _fingerprint(configs) -> list[bytes]:
    return [config.SerializeToString(deterministic=True) for config in configs]
