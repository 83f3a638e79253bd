"""Dynamic batching: requests for one model version are queued and run together.

A `DynamicBatcher` owns one worker thread. The worker takes the first waiting
request, then keeps collecting until it has `max_batch_size` images or
`max_batch_delay_ms` has passed since that first request, and makes one model
call. With padding buckets configured (`VGGSVC_BATCH_SIZES`, off by default)
the batch is padded up to the next bucket, so TensorFlow sees only those
shapes, all warmed up at load time; without, every size 1..max is a bucket. Results travel back through
`concurrent.futures.Future`s that the event loop awaits, so the loop never runs
TensorFlow. The queue is bounded in images; a full queue raises `Overloaded`.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from service.errors import InferenceTimeout, NotReady, Overloaded
from service.telemetry import Metrics

log = logging.getLogger(__name__)

Predict = Callable[[np.ndarray], np.ndarray]  # uint8 [n, s, s, 3] -> float32 [n, classes]


@dataclass
class _Job:
    images: np.ndarray
    future: concurrent.futures.Future[np.ndarray] = field(default_factory=concurrent.futures.Future)
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """Queue + worker thread batching calls to `predict` for one model version."""

    def __init__(
        self,
        predict: Predict,
        name: str,
        version: int,
        buckets: list[int],
        max_delay_s: float,
        max_queue: int,
        metrics: Metrics | None = None,
        precision: str = "fp32",
    ) -> None:
        self._predict = predict
        self._buckets = sorted(buckets)
        self.max_batch_size = self._buckets[-1]
        self._max_delay_s = max_delay_s
        self._max_queue = max_queue
        self._metrics = metrics
        self._name = name
        # Every series carries the version: a pinned version and the latest batch apart.
        self._labels = {"model": name, "version": str(version)}
        self._precision = precision  # labels the inference time: fp32 and bf16 differ ~7x
        self._jobs: collections.deque[_Job] = collections.deque()
        self._queued_images = 0
        self._cond = threading.Condition()
        self._closing = False
        self.model_calls = 0  # batches run, for tests and logs
        self._thread = threading.Thread(
            target=self._run, name=f"batcher-{name}-{version}", daemon=True
        )
        self._thread.start()

    # ---- called from the event loop ------------------------------------------------
    def submit(self, images: np.ndarray) -> concurrent.futures.Future[np.ndarray]:
        """Queue `images` (uint8 [n, s, s, 3]); the future resolves to probabilities [n, C]."""
        job = _Job(images)
        with self._cond:
            if self._closing:
                raise NotReady("the model version is shutting down; retry", retry_after_s=1)
            if self._queued_images and self._queued_images + len(images) > self._max_queue:
                raise Overloaded(
                    f"the queue for {self._name} is full ({self._queued_images} images "
                    "waiting); retry shortly",
                    retry_after_s=1,
                )
            self._jobs.append(job)
            self._queued_images += len(images)
            self._set_depth()
            self._cond.notify()
        return job.future

    async def predict(self, images: np.ndarray, timeout_s: float) -> np.ndarray:
        """Await the probabilities for `images`; raises InferenceTimeout after `timeout_s`."""
        future = self.submit(images)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except TimeoutError as exc:
            future.cancel()  # the worker skips it if it has not started yet
            raise InferenceTimeout(
                f"the model did not answer within {timeout_s:g} s; the service is busy, retry"
            ) from exc

    # ---- lifecycle -----------------------------------------------------------------
    def close(self, timeout_s: float | None = None) -> None:
        """Stop taking work, finish everything already queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        if self._metrics is not None and not self._thread.is_alive():
            self._metrics.queue_depth.remove(*self._labels.values())

    # ---- worker thread ---------------------------------------------------------------
    def _set_depth(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.labels(**self._labels).set(self._queued_images)

    def _take_batch(self) -> list[_Job] | None:
        """Block until there is work; return up to max_batch_size images of jobs."""
        with self._cond:
            while not self._jobs:
                if self._closing:
                    return None
                self._cond.wait()
            deadline = self._jobs[0].enqueued + self._max_delay_s
            # Wait for more work until the batch is full or the first job's delay is spent.
            while (
                sum(len(job.images) for job in self._jobs) < self.max_batch_size
                and not self._closing
            ):
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Job] = []
            size = 0
            while self._jobs:
                n = len(self._jobs[0].images)
                if batch and size + n > self.max_batch_size:
                    break
                job = self._jobs.popleft()
                self._queued_images -= n
                batch.append(job)
                size += n
            self._set_depth()
            return batch

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if not live:
                continue
            if self._metrics is not None:
                taken = time.perf_counter()
                for job in live:
                    self._metrics.queue_wait_seconds.labels(**self._labels).observe(
                        taken - job.enqueued
                    )
            try:
                results = self._infer(np.concatenate([job.images for job in live]))
            except Exception as exc:  # a failed model call fails its requests, not the thread
                log.exception(
                    "inference failed for %s version %s", self._name, self._labels["version"]
                )
                for job in live:
                    job.future.set_exception(exc)
                continue
            start = 0
            for job in live:
                job.future.set_result(results[start : start + len(job.images)])
                start += len(job.images)

    def _infer(self, images: np.ndarray) -> np.ndarray:
        """Run `images` in bucket-sized chunks, padding the last one; one call per chunk."""
        outputs = []
        for start in range(0, len(images), self.max_batch_size):
            chunk = images[start : start + self.max_batch_size]
            n = len(chunk)
            bucket = self._buckets[bisect.bisect_left(self._buckets, n)]
            if bucket > n:
                pad = np.zeros((bucket - n, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            began = time.perf_counter()
            probs = self._predict(chunk)[:n]
            self.model_calls += 1
            if self._metrics is not None:
                self._metrics.inference_seconds.labels(
                    **self._labels, precision=self._precision
                ).observe(time.perf_counter() - began)
                self._metrics.batch_size.labels(**self._labels).observe(n)
                self._metrics.model_calls.labels(**self._labels).inc()
            outputs.append(probs)
        return np.concatenate(outputs)
