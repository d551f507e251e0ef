"""Which model versions are loaded: polls base paths as tensorflow_model_server does."""

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Iterable, Iterator

import grpc
import tensorflow as tf
from absl import logging
from tensorflow_serving.config import model_server_config_pb2

from keras_bert_impl.serving.batching_parameters import BatchingOptions
from keras_bert_impl.serving.errors import ServingError, invalid_argument, not_found
from keras_bert_impl.serving.model_config import check_base_paths, check_model_configs
from keras_bert_impl.serving.servable import Servable


@dataclasses.dataclass
class VersionState:
    """A version's lifecycle as ModelService reports it (AVAILABLE, or END with the load error).

    A failed load is retried (LOADING, with the last error) until the retries run out.
    """

    state: str
    error: str = ""
    failed_loads: int = 0
    retry_at: float = 0.0


@dataclasses.dataclass(eq=False)  # compared by identity: a reload tells old from new
class _Model:
    config: model_server_config_pb2.ModelConfig
    servables: dict[int, Servable] = dataclasses.field(default_factory=dict)
    states: dict[int, VersionState] = dataclasses.field(default_factory=dict)
    reported_no_versions: bool = False


def _unavailable_label(label: str, version: int, model: str, available: list[int],
                       remedy: str) -> str:
    # TF Serving's wording (server_core.cc), with the versions there are and a remedy.
    return (f"Request to assign label {label!r} to version {version} of model {model}, which "
            f"is not currently available for inference (versions available: {available}); "
            f"{remedy}")


def _shutting_down() -> ServingError:
    return ServingError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")


def _versions_on_disk(base_path: str) -> list[int] | None:
    """Version directories holding a saved_model.pb; None if `base_path` does not exist,
    OSError if it cannot be listed.

    Any TensorFlow file system (gs://, ...), as TF Serving. Only ASCII digits name a
    version: str.isdigit() also accepts e.g. "²", which int() refuses.
    """
    try:
        names = [name.rstrip("/") for name in tf.io.gfile.listdir(base_path)]
    except tf.errors.NotFoundError:
        return None
    except tf.errors.OpError as error:
        raise OSError(f"{base_path}: {error.message}") from None
    return sorted(int(n) for n in names
                  if n.isascii() and n.isdigit()
                  and tf.io.gfile.exists(os.path.join(base_path, n, "saved_model.pb")))


def _aspired(config: model_server_config_pb2.ModelConfig, on_disk: list[int]) -> set[int]:
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return set(on_disk)
    if kind == "specific":
        return set(policy.specific.versions) & set(on_disk)
    count = policy.latest.num_versions if kind == "latest" else 1
    return set(on_disk[-max(count, 1):])


class ModelManager:
    """Loads the aspired versions of each model and looks servables up for requests.

    Versions are numeric directories holding `saved_model.pb`; by default the
    newest one is served. `poll()` re-reads the directories; `start()` polls every
    `poll_wait_seconds` in a thread (0 disables polling, as in TF Serving).
    A version that fails to load (e.g. still being copied) is retried up to
    `max_load_retries` times, `load_retry_interval_seconds` apart, as
    TF Serving's `--max_num_load_retries` / `--load_retry_interval_micros`;
    `warm_up=False` skips the warmup requests (`--enable_model_warmup=false`).
    A base path that cannot be read is logged and polled again, serving what is
    loaded meanwhile. As in TF Serving, starting with `version_labels` needs
    `allow_unavailable_labels` (`--allow_version_labels_for_unavailable_models`);
    later, a reload may label versions that are available. `reload()` replaces the
    models while serving (ModelService/HandleReloadConfigRequest).
    """

    def __init__(self, configs: list[model_server_config_pb2.ModelConfig],
                 poll_wait_seconds: float = 1.0, batching: BatchingOptions | None = None,
                 max_load_retries: int = 5, load_retry_interval_seconds: float = 60.0,
                 warm_up: bool = True, allow_unavailable_labels: bool = False):
        self._models = {config.name: _Model(config) for config in configs}
        self._removed: dict[str, _Model] = {}  # models a reload dropped, for their status
        self._poll_wait_seconds = poll_wait_seconds
        self._batching = batching
        self._max_load_retries = max_load_retries
        self._load_retry_interval = load_retry_interval_seconds
        self._warm_up = warm_up
        self._allow_unavailable_labels = allow_unavailable_labels
        self._lock = threading.Lock()  # the models and servables requests look up
        self._poll_lock = threading.Lock()  # one poll (or model swap) at a time
        self._reload_lock = threading.Lock()  # one reload at a time, its waits included
        self._stop = threading.Event()
        self._thread = None

    def start(self) -> None:
        """Loads the first versions; ValueError for a config TF Serving would not start with
        (`check_model_configs`), a base path that is not a directory, or version labels
        without `allow_unavailable_labels`."""
        configs = check_model_configs([model.config for model in self._models.values()],
                                      source="model config")
        check_base_paths(configs)
        self._check_startup_labels()
        self.poll()
        if self._poll_wait_seconds <= 0:
            # Polling once still sees the retries of failed loads through.
            while not self._stop.is_set() and (wait := self._next_retry_in()) is not None:
                self._stop.wait(wait)
                self.poll()
        if self._poll_wait_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="version-poller",
                                            daemon=True)
            self._thread.start()

    def stop(self, close_timeout: float = 60.0) -> None:
        """Stops polling and unloads every version, each waiting up to `close_timeout`
        seconds for its running requests."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._poll_lock, self._lock:
            servables = [s for m in self._models.values() for s in m.servables.values()]
            for model in self._models.values():
                model.servables.clear()
        for servable in servables:
            servable.close(close_timeout)

    def poll(self) -> None:
        """Loads new aspired versions, then unloads the ones no longer aspired.

        A base path that cannot be listed keeps the model's versions as they are.
        """
        with self._poll_lock:
            if self._stop.is_set():
                return
            for model in list(self._models.values()):
                self._poll_model(model)

    def reload(self, configs: Iterable[model_server_config_pb2.ModelConfig]) -> None:
        """Serves exactly `configs` (ModelConfigs) from now on, without a restart.

        As TF Serving's HandleReloadConfigRequest: a version label may only name a
        version available now (FAILED_PRECONDITION, and nothing changes; assign it in a
        later reload once the version is loaded, unless `allow_unavailable_labels`
        and the label is new); models no longer listed are unloaded; listed ones take
        their new version policy and labels. A newly listed model, or one with a new
        base path, has its first load done before it replaces anything, and the call
        returns once each has a version available (UNKNOWN naming the load error if
        its retries run out). Unlike TF Serving, which waits for it, a new model with
        no version on disk yet returns at once and is served when a version appears.
        INVALID_ARGUMENT for a config the server could not start with.
        """
        try:
            configs = check_model_configs(configs, source="ReloadConfigRequest")
            check_base_paths(configs)
        except ValueError as error:
            raise invalid_argument(str(error)) from None
        with self._reload_lock:
            with self._poll_lock:
                if self._stop.is_set():
                    raise _shutting_down()
                self._check_labels_assignable(configs)
                models, fresh = {}, []
                for config in configs:
                    model = self._models.get(config.name)
                    if model is None or model.config.base_path != config.base_path:
                        model = _Model(config)
                        self._poll_model(model)  # loaded before it is swapped in
                        fresh.append(model)
                    models[config.name] = model
                with self._lock:
                    for config in configs:
                        models[config.name].config = config
                    replaced = [m for name, m in self._models.items()
                                if models.get(name) is not m]
                    self._models = models
                    # GetModelStatus still reports a dropped model's versions, as END.
                    self._removed.update({m.config.name: m for m in replaced
                                          if m.config.name not in models})
                    for name in models:
                        self._removed.pop(name, None)
                for model in replaced:
                    for version in sorted(model.servables):
                        model.servables.pop(version).close()
                        with self._lock:
                            model.states[version] = VersionState("END")
                        logging.info("Unloaded %s version %d (config reloaded)",
                                     model.config.name, version)
                for model in models.values():
                    if model not in fresh:
                        self._poll_model(model)
            self._await_first_loads(fresh)
        logging.info("Reloaded the model config: serving %s", sorted(models))

    def _await_first_loads(self, models: list[_Model]) -> None:
        """Waits out the load retries of `models` that have none available yet; UNKNOWN
        (TF Serving's wording) for those whose retries ran out."""
        while not self._stop.is_set():
            with self._lock:
                due = [state.retry_at for model in models if not model.servables
                       for state in model.states.values() if state.state == "LOADING"]
            if not due:
                break
            self._stop.wait(max(0.0, min(due) - time.monotonic()))
            self.poll()
        if self._stop.is_set():
            raise _shutting_down()
        with self._lock:
            failed = {model.config.name: {v: s.error for v, s in sorted(model.states.items())}
                      for model in models if not model.servables and model.states}
        if failed:
            details = ", ".join(f"{{{name} version {version} due to error: {error}}}"
                                for name, errors in failed.items()
                                for version, error in errors.items())
            raise ServingError(grpc.StatusCode.UNKNOWN,
                               f"{len(failed)} model(s) did not become available: {details}")

    def _check_labels_assignable(self, configs) -> None:
        """FAILED_PRECONDITION, with TF Serving's wording, for a label naming a version not
        available now; `allow_unavailable_labels` lets a new label (or one that keeps its
        version) through, as TF Serving's flag."""
        with self._lock:
            for config in configs:
                model = self._models.get(config.name)
                available = sorted(model.servables) if model else []
                current = dict(model.config.version_labels) if model else {}
                for label, version in sorted(config.version_labels.items()):
                    if version in available or (self._allow_unavailable_labels
                                                and current.get(label, version) == version):
                        continue
                    raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, _unavailable_label(
                        label, version, config.name, available,
                        "reload once with the version in the policy, then again with the label"))

    def _poll_model(self, model: _Model) -> None:
        """One model's share of `poll()`; the caller holds `_poll_lock`."""
        try:
            on_disk = _versions_on_disk(model.config.base_path)
        except OSError as error:
            # As TF Serving: a file-system error skips this poll; the next one retries.
            logging.error("Cannot list the versions of %s in %s: %s", model.config.name,
                          model.config.base_path, error)
            return
        if not on_disk and not model.reported_no_versions:
            # TF Serving's warning; said once, not at every poll.
            logging.warning("No versions of servable %s found under base path %s (%s)",
                            model.config.name, model.config.base_path,
                            "a version is a numbered directory holding saved_model.pb"
                            if on_disk is not None else "it does not exist; what is loaded "
                            "keeps serving until it is back")
        model.reported_no_versions = not on_disk
        if on_disk is None:
            # TF Serving's poll fails for a missing base path and changes nothing; a retry
            # that was due waits another interval (else the retry wait loops at once).
            with self._lock:
                for version, state in model.states.items():
                    if state.state == "LOADING":
                        model.states[version] = dataclasses.replace(
                            state, retry_at=time.monotonic() + self._load_retry_interval)
            return
        aspired = _aspired(model.config, on_disk)
        with self._lock:
            for version, state in model.states.items():
                if (version not in aspired and version not in model.servables
                        and (state.state != "END" or state.failed_loads)):
                    # Gone from disk (or the policy) while its load was failing: it ends,
                    # and loads afresh if it comes back, as TF Serving's new harness would.
                    model.states[version] = VersionState("END", state.error)
        for version in sorted(aspired - set(model.servables)):
            state = model.states.get(version, VersionState(""))
            if state.failed_loads > self._max_load_retries or state.retry_at > time.monotonic():
                continue  # out of retries (until it leaves the disk), or not due yet
            self._load(model, version, state.failed_loads)
        retired = [v for v in model.servables if v not in aspired]
        if retired and aspired and not aspired & set(model.servables):
            # TF Serving's AvailabilityPreservingPolicy: until an aspired version is
            # available the newest loaded one keeps serving; with none on disk, none does.
            retired.remove(max(retired))
        for version in retired:
            with self._lock:
                servable = model.servables.pop(version)
                model.states[version] = VersionState("END")
            servable.close()
            logging.info("Unloaded %s version %d", model.config.name, version)

    @contextlib.contextmanager
    def serving(self, name: str, version: int | None = None,
                label: str = "") -> Iterator[Servable]:
        """`servable()`, held loaded until the request is answered: a version retired
        between the lookup and the model call still answers it, as in TF Serving."""
        with self._lock:
            servable = self._find(name, version, label)
            servable.hold()
        try:
            yield servable
        finally:
            servable.release()

    def servable(self, name: str, version: int | None = None, label: str = "") -> Servable:
        """The servable a request's ModelSpec names; NOT_FOUND with TF Serving's wording."""
        with self._lock:
            return self._find(name, version, label)

    def _find(self, name: str, version: int | None, label: str) -> Servable:
        """`servable()` with `_lock` held."""
        model = self._models.get(name)
        if label:
            labels = model.config.version_labels if model else {}
            if label not in labels:
                # TF Serving answers an unknown label with INVALID_ARGUMENT.
                raise invalid_argument(f"Unrecognized servable version label: {label} "
                                       f"(model {name!r})")
            version = labels[label]
        if model is None or not model.servables:
            request = f"Specific({name}, {version})" if version else f"Latest({name})"
            known = sorted(m for m, v in self._models.items() if v.servables)
            raise not_found(f"Servable not found for request: {request}; "
                            f"models being served: {known}")
        if version is None:
            return model.servables[max(model.servables)]
        if version not in model.servables:
            raise not_found(f"Servable not found for request: Specific({name}, {version}); "
                            f"versions being served: {sorted(model.servables)}")
        return model.servables[version]

    def version_states(self, name: str) -> dict[int, VersionState]:
        with self._lock:
            model = self._models.get(name) or self._removed.get(name)
            if model is None or not model.states:
                raise not_found(f"Could not find any versions of model {name}")
            return dict(model.states)

    def model_calls(self, name: str) -> int:
        """How many times the model's signature functions ran (all loaded versions)."""
        with self._lock:
            return sum(s.model_calls for s in self._models[name].servables.values())

    def _load(self, model: _Model, version: int, failed_loads: int = 0) -> None:
        name = model.config.name
        path = os.path.join(model.config.base_path, str(version))
        with self._lock:
            model.states[version] = VersionState("LOADING", failed_loads=failed_loads)
        try:
            servable = Servable(name, version, path, self._batching)
            warmed = servable.warm_up() if self._warm_up else 0
        except Exception as error:  # noqa: BLE001 - a bad version must not stop the server
            failed_loads += 1
            retry = failed_loads <= self._max_load_retries
            logging.error("Loading %s version %d from %s failed (attempt %d): %s%s", name,
                          version, path, failed_loads, error,
                          f"; retrying in {self._load_retry_interval:g} s" if retry else "")
            state = (VersionState("LOADING", f"{path}: {error}", failed_loads,
                                  time.monotonic() + self._load_retry_interval)
                     if retry else VersionState("END", f"{path}: {error}", failed_loads))
            with self._lock:
                model.states[version] = state
            return
        with self._lock:
            model.servables[version] = servable
            model.states[version] = VersionState("AVAILABLE")
        logging.info("Serving %s version %d from %s (%d warmup requests)", name, version, path,
                     warmed)

    def _next_retry_in(self) -> float | None:
        """Seconds until the next failed load is due again; None when none waits."""
        with self._lock:
            due = [state.retry_at for model in self._models.values()
                   for state in model.states.values() if state.state == "LOADING"]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _check_startup_labels(self) -> None:
        """TF Serving assigns labels before its first load, when no version is available,
        so it refuses to start with any label unless allowed."""
        labelled = [(label, version, name) for name, model in self._models.items()
                    for label, version in sorted(model.config.version_labels.items())]
        if labelled and not self._allow_unavailable_labels:
            raise ValueError(_unavailable_label(
                *labelled[0], [],
                "at start-up every label needs --allow_version_labels_for_unavailable_"
                "models; or start without labels and add them with a reload (a polled "
                "--model_config_file or HandleReloadConfigRequest) once the versions serve"))

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_wait_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a dead poller would never load a version again
                logging.exception("Polling the model base paths failed; retrying in %g s",
                                  self._poll_wait_seconds)
