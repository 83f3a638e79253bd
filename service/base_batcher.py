"""One batcher per shared base: requests for every model on that base run together.

`BaseBatcher` keeps `DynamicBatcher`'s queue and worker (collect up to
`max_batch_size` images or `max_batch_delay_ms`, bucket padding, bounded queue),
but a job names the heads it wants. For each batch the worker runs the base
once on all its pictures (plus the mirror images of rows whose head averages
mirrors), then each head on its own rows. A job naming several heads (one
request to several models) gets every answer from one base pass.

`HeadQueue` is one version's view of it, with `DynamicBatcher`'s interface
(`submit`, `predict`, `close`, `model_calls`), so the rest of the service
treats a shared-base version like any other. Per-version metrics keep their
meaning: a head call is that version's model call, and its inference time is
the base pass plus its head.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from modelstore.split_loader import LoadedBase, PublishedHead
from service.batcher import DynamicBatcher, _Job
from service.errors import InferenceTimeout, NotReady, Overloaded
from service.telemetry import Metrics

log = logging.getLogger(__name__)


@dataclass
class _HeadsJob(_Job):
    # One answer per head named, in order (a DynamicBatcher job answers one array).
    future: concurrent.futures.Future[list[np.ndarray]] = field(  # type: ignore[assignment]
        default_factory=concurrent.futures.Future
    )
    heads: tuple[HeadQueue, ...] = ()


class HeadQueue:
    """One version's head on a shared base, seen as that version's batcher."""

    def __init__(
        self,
        batcher: BaseBatcher,
        head: PublishedHead,
        max_queue: int,
        on_close: Callable[[HeadQueue], None],
    ) -> None:
        self.batcher = batcher
        self.head = head
        self.max_queue = max_queue
        self.labels = {"model": head.name, "version": str(head.version)}
        self.model_calls = 0  # head calls run, for tests and logs
        self.queued = 0  # images waiting for this head (guarded by the batcher's lock)
        self.pending = 0  # jobs not answered yet (guarded by the batcher's lock)
        self.closing = False
        self._on_close = on_close
        self._closed = False

    def submit(self, images: np.ndarray) -> concurrent.futures.Future[np.ndarray]:
        """Queue `images` for this head alone; the future resolves to probabilities [n, C]."""
        inner = self.batcher.submit_heads(images, (self,))
        outer: concurrent.futures.Future[np.ndarray] = concurrent.futures.Future()

        def copy(done: concurrent.futures.Future[list[np.ndarray]]) -> None:
            if done.cancelled():
                outer.cancel()
            elif (exc := done.exception()) is not None:
                outer.set_exception(exc)
            else:
                outer.set_result(done.result()[0])

        inner.add_done_callback(copy)
        return outer

    async def predict(self, images: np.ndarray, timeout_s: float) -> np.ndarray:
        (probs,) = await self.batcher.predict_heads(images, (self,), timeout_s)
        return probs

    def close(self, timeout_s: float | None = None) -> None:
        """Refuse new work, let queued work finish (up to `timeout_s`), then leave the base."""
        self.batcher.finish_head(self, timeout_s)
        if not self._closed:
            self._closed = True
            self._on_close(self)


class BaseBatcher(DynamicBatcher):
    """Queue + worker for every head on one loaded base."""

    def __init__(
        self,
        base: LoadedBase,
        key: str,
        buckets: list[int],
        max_delay_s: float,
        max_queue: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.base = base
        self.key = key
        self._shared_metrics = metrics
        # DynamicBatcher runs the base in bucket-sized chunks (`_infer`); it records no
        # per-model series itself (metrics=None): this class records them per head.
        super().__init__(
            base.features,
            name=f"base-{key}",
            version=0,
            buckets=buckets,
            max_delay_s=max_delay_s,
            # Not used: `submit_heads` bounds each version's queue (HeadQueue.max_queue).
            max_queue=max_queue,
            metrics=None,
            precision=base.precision,
        )

    # ---- called from the event loop ------------------------------------------------
    def submit_heads(
        self, images: np.ndarray, heads: Sequence[HeadQueue]
    ) -> concurrent.futures.Future[list[np.ndarray]]:
        """Queue `images` for `heads`; the future resolves to one probability array per head."""
        job = _HeadsJob(images, heads=tuple(heads))
        with self._cond:
            for head in heads:
                if self._closing or head.closing:
                    raise NotReady("the model version is shutting down; retry", retry_after_s=1)
                if head.queued and head.queued + len(images) > head.max_queue:
                    raise Overloaded(
                        f"the queue for {head.head.name} is full ({head.queued} images "
                        "waiting); retry shortly",
                        retry_after_s=1,
                    )
            self._jobs.append(job)
            self._queued_images += len(images)
            for head in heads:
                head.queued += len(images)
                head.pending += 1
                self.set_head_depth(head)
            self._cond.notify()
        return job.future

    async def predict_heads(
        self, images: np.ndarray, heads: Sequence[HeadQueue], timeout_s: float
    ) -> list[np.ndarray]:
        """Await every head's probabilities for `images`; InferenceTimeout after `timeout_s`."""
        future = self.submit_heads(images, heads)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except TimeoutError as exc:
            future.cancel()  # the worker skips it if it has not started yet
            raise InferenceTimeout(
                f"the model did not answer within {timeout_s:g} s; the service is busy, retry"
            ) from exc

    def finish_head(self, head: HeadQueue, timeout_s: float | None) -> None:
        """Stop taking work for `head` and wait (up to `timeout_s`) for its queued jobs."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            head.closing = True
            while head.pending and self._thread.is_alive():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
        if self._shared_metrics is not None and not head.pending:
            with contextlib.suppress(KeyError):  # already removed by an earlier close
                self._shared_metrics.queue_depth.remove(*head.labels.values())

    # ---- worker thread ---------------------------------------------------------------
    def set_head_depth(self, head: HeadQueue) -> None:
        if self._shared_metrics is not None:
            self._shared_metrics.queue_depth.labels(**head.labels).set(head.queued)

    def _take_batch(self) -> list[_Job] | None:
        batch = super()._take_batch()
        if batch:
            with self._cond:
                for job in batch:
                    for head in job.heads:  # type: ignore[attr-defined]
                        head.queued -= len(job.images)
                        self.set_head_depth(head)
        return batch

    def _answered(self, jobs: Sequence[_HeadsJob]) -> None:
        with self._cond:
            for job in jobs:
                for head in job.heads:
                    head.pending -= 1
            self._cond.notify_all()

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            jobs: list[_HeadsJob] = batch  # type: ignore[assignment]
            live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            try:
                if live:
                    self._run_jobs(live)
            finally:
                self._answered(jobs)

    def _run_jobs(self, jobs: list[_HeadsJob]) -> None:
        taken = time.perf_counter()
        images = np.concatenate([job.images for job in jobs])
        owners = np.repeat(np.arange(len(jobs)), [len(job.images) for job in jobs])
        heads = list(dict.fromkeys(head for job in jobs for head in job.heads))
        # Rows of heads that average mirror images also go through the base mirrored, in
        # the same pass: pixels flipped before preprocessing equal features flipped after.
        mirror_jobs = {i for i, job in enumerate(jobs) if any(h.head.mirror for h in job.heads)}
        mirror_rows = np.flatnonzero(np.isin(owners, list(mirror_jobs)))
        base_input = images
        if len(mirror_rows):
            base_input = np.concatenate([images, images[mirror_rows][:, :, ::-1, :]])
        began = time.perf_counter()
        try:
            features = self._infer(base_input)
        except Exception as exc:  # a failed base call fails its requests, not the thread
            log.exception("the shared base %s failed", self.key)
            for job in jobs:
                job.future.set_exception(exc)
            return
        base_seconds = time.perf_counter() - began
        self._count_base(len(base_input))
        mirror_at = {int(row): len(images) + i for i, row in enumerate(mirror_rows)}
        answers: dict[int, dict[HeadQueue, np.ndarray]] = {i: {} for i in range(len(jobs))}
        failed: dict[int, BaseException] = {}
        for head in heads:
            members = [i for i, job in enumerate(jobs) if head in job.heads]
            rows = np.flatnonzero(np.isin(owners, members))
            mirrored = features[[mirror_at[int(r)] for r in rows]] if head.head.mirror else None
            began = time.perf_counter()
            try:
                # Probabilities, plus the unknown score as a last column for a version
                # with a scorer: the whole-model batcher's layout (`unknown_outputs`).
                probs = head.head.predict_packed(features[rows], mirrored)
            except Exception as exc:  # fails the requests that asked this head only
                log.exception(
                    "inference failed for %s version %s", head.head.name, head.labels["version"]
                )
                for i in members:
                    failed.setdefault(i, exc)
                continue
            self._count_head(head, jobs, members, taken, base_seconds + time.perf_counter() - began)
            start = 0
            for i in members:
                n = len(jobs[i].images)
                answers[i][head] = probs[start : start + n]
                start += n
        for i, job in enumerate(jobs):
            if i in failed:
                job.future.set_exception(failed[i])
            else:
                job.future.set_result([answers[i][head] for head in job.heads])

    def _count_base(self, images: int) -> None:
        if self._shared_metrics is not None:
            self._shared_metrics.base_passes.labels(base=self.key).inc()
            self._shared_metrics.base_images.labels(base=self.key).inc(images)

    def _count_head(
        self,
        head: HeadQueue,
        jobs: list[_HeadsJob],
        members: list[int],
        taken: float,
        seconds: float,
    ) -> None:
        head.model_calls += 1
        m = self._shared_metrics
        if m is None:
            return
        labels = head.labels
        m.head_calls.labels(base=self.key).inc()
        m.model_calls.labels(**labels).inc()
        m.batch_size.labels(**labels).observe(sum(len(jobs[i].images) for i in members))
        m.inference_seconds.labels(**labels, precision=self._precision).observe(seconds)
        for i in members:
            m.queue_wait_seconds.labels(**labels).observe(taken - jobs[i].enqueued)
