"""Server-side batching: concurrent requests merged into one model call.

Like TensorFlow Serving's batching session, a request waits at most
`batch_timeout_micros` for others to join it, up to `max_batch_size` rows; the
merged batch is padded to the next of `allowed_batch_sizes` (when given) and
the outputs are split back along dimension 0.
"""

import collections
import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent import futures

import grpc
import numpy as np

from keras_bert_impl.serving.batching_parameters import BatchingOptions
from keras_bert_impl.serving.errors import ServingError, invalid_argument

Arrays = dict[str, np.ndarray]


@dataclasses.dataclass(eq=False)  # identity: `deque.remove` must not compare the arrays
class _Task:
    inputs: Arrays
    size: int
    key: tuple
    future: futures.Future
    deadline: float | None = None  # time.monotonic() after which nobody waits for the answer


def _merge_key(inputs: Arrays) -> tuple:
    # Only requests with the same dtypes and non-batch dimensions can be stacked.
    return tuple(sorted((name, array.dtype.str, array.shape[1:]) for name, array in inputs.items()))


class Batcher:
    """Merges concurrent `run(inputs, size)` calls into calls of `model_fn`.

    `model_fn` maps a dict of batch-major arrays to a dict of batch-major arrays.
    """

    def __init__(self, model_fn: Callable[[Arrays], Arrays], options: BatchingOptions):
        self._model_fn = model_fn
        self._options = options
        self._queue: collections.deque[_Task] = collections.deque()
        self._condition = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._loop, name=f"batcher-{i}", daemon=True)
            for i in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def run(self, inputs: Arrays, size: int, deadline: float | None = None) -> Arrays:
        """Runs one request of `size` rows, possibly together with others. A batch whose
        requests are all past their `deadline` (`time.monotonic()`) when its turn comes
        is not run, as in TF Serving's batching session."""
        limit = self._options.max_batch_size
        if size > limit:
            raise invalid_argument(
                f"Task size {size} is larger than maximum input batch size {limit}: the "
                f"request has {size} rows and the server's max_batch_size is {limit}; "
                "send at most that many per request")
        task = _Task(inputs, size, _merge_key(inputs), futures.Future(), deadline)
        with self._condition:
            if self._closed:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "the model version is unloading")
            if len(self._queue) >= self._options.max_enqueued_batches * limit:
                raise ServingError(
                    grpc.StatusCode.UNAVAILABLE,
                    "The batch scheduling queue to which this task was submitted is full")
            self._queue.append(task)
            self._condition.notify_all()
        return task.future.result()

    def close(self) -> None:
        """Finishes the queued requests and stops the threads."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._process(batch)

    def _next_batch(self) -> list[_Task] | None:
        limit = self._options.max_batch_size
        with self._condition:
            while not self._queue:
                if self._closed:
                    return None
                self._condition.wait()
            first = self._queue.popleft()
            batch, size = [first], first.size
            deadline = time.monotonic() + self._options.batch_timeout_micros / 1e6
            while size < limit:
                for task in list(self._queue):
                    if task.key == first.key and size + task.size <= limit:
                        self._queue.remove(task)
                        batch.append(task)
                        size += task.size
                remaining = deadline - time.monotonic()
                if size >= limit or remaining <= 0 or self._closed:
                    break
                self._condition.wait(remaining)
            return batch

    def _process(self, batch: list[_Task]) -> None:
        now = time.monotonic()
        if all(task.deadline is not None and task.deadline <= now for task in batch):
            # Nobody waits for these answers (their deadlines passed while queued): TF
            # Serving's answer, without running the model.
            error = ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 "Run() timeout exceeded while waiting in batching queue")
            for task in batch:
                task.future.set_exception(error)
            return
        try:
            results = self._run_merged(batch)
        except ServingError as error:
            if error.code == grpc.StatusCode.INVALID_ARGUMENT and len(batch) > 1:
                # One bad request must not fail the others merged with it.
                for task in batch:
                    self._process([task])
                return
            for task in batch:
                task.future.set_exception(error)
            return
        except Exception as error:  # noqa: BLE001 - handed to the waiting request
            for task in batch:
                task.future.set_exception(error)
            return
        for task, result in zip(batch, results):
            task.future.set_result(result)

    def _run_merged(self, batch: list[_Task]) -> list[Arrays]:
        if len(batch) == 1 and not self._options.allowed_batch_sizes:
            return [self._model_fn(batch[0].inputs)]
        total = sum(task.size for task in batch)
        padded = next((s for s in self._options.allowed_batch_sizes if s >= total), total)
        merged = {}
        for name in batch[0].inputs:
            array = np.concatenate([task.inputs[name] for task in batch])
            if padded > total:
                array = np.concatenate([array, np.repeat(array[:1], padded - total, axis=0)])
            merged[name] = array
        outputs = self._model_fn(merged)
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != padded:
                raise ServingError(
                    grpc.StatusCode.INTERNAL,
                    f"output {name!r} has shape {list(array.shape)}, which does not start with "
                    f"the batch size {padded}; this signature cannot be batched")
        results, start = [], 0
        for task in batch:
            end = start + task.size
            results.append({name: array[start:end] for name, array in outputs.items()})
            start += task.size
        return results
