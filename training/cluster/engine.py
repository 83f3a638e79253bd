"""Feature extraction on Ray Data: the frozen base over a cluster, into the shared store.

    python -m training fit --data DIR --name NAME --engine ray [--ray-address HOST:6379]

The pipeline streams; nothing big is gathered until the end:

    file paths (blocks of one batch, `training.cluster.connection.block_count`)
      -> decode tasks (CPU): read, sha256, store lookup, `imaging.load_image` on a miss
      -> actor pool holding the base (one GPU per actor when the cluster has GPUs):
         runs the misses in batches, writes each feature to the FeatureStore
         (without GPUs the two steps need the same resources, and Ray Data fuses
         them into the actors: no copy of the pictures between processes)
      -> the driver: one small row per file (sha, error, node ids, base passes);
         the features stay in the store, and fit's head training streams them
         from there in batches (`training.features.stream`), as with the local engine.

Pictures are decoded by `imaging.load_image`, never `ray.data.read_images`,
whose own resize would break train/serve parity. Files are read by our tasks
(not `read_binary_files`) so an unreadable file is a reported row, exactly as
in the local engine, instead of a failed job. Failed tasks are retried and
lost actors restarted by Ray; store writes are atomic and idempotent, so a
retried batch rewrites identical whole entries and never duplicates one.
Every file path must be readable on every node (a shared volume on a cluster).

Precision: the base runs on the workers, so `--precision` is resolved on their
hardware (`RayFeatureEngine.feature_precision`: one probe task with the actors'
resources), not the driver's: a CPU driver with bf16 units and GPU workers gives
fp16 under `auto`, and the store key and `metadata.json` name what the workers ran.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from modelstore.runtime import PRECISIONS, Precision, PrecisionUnavailableError, resolve_precision
from training.cluster.connection import actor_resources, block_count, connect
from training.cluster.workers import BaseActor, decode_batch, probe_hardware
from training.features.extractor import FeatureExtractor, Features
from training.features.store import FeatureStore
from training.features.stream import StoredFeatures
from training.progress import ProgressBar


class RayFeatureEngine:
    """`extract()` like FeatureExtractor's, with the work spread over a Ray cluster.

    `actors` (pool size; default one per GPU, else one per node) and
    `batch_size` (pictures per base call) are the knobs; `describe()` says
    which nodes did the work, for the model's metadata.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        actors: int | None = None,
        batch_size: int = 32,
        progress: bool = True,
    ) -> None:
        self.ray = connect(address)  # fails fast, before any work, when Ray is unreachable
        self.actors, self.resources = actor_resources(self.ray, actors)
        self.batch_size = batch_size
        self.progress = progress
        self.node_ids: set[str] = set()
        self.images_through_base = 0
        # Of the last job: seconds until its first results (actors starting: TensorFlow
        # import, base build), how many rows they were, and seconds in all. The benchmark
        # separates start-up from throughput with them.
        self.seconds: dict[str, float] = {}
        self._weights: dict[str, Any] = {}
        self._precision: dict[str, Precision] = {}  # requested -> resolved on a worker

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "nodes": len(self.node_ids),
            "node_ids": sorted(self.node_ids),
            "actors": self.actors,
            "gpus_per_actor": self.resources.get("num_gpus", 0),
            "batch_size": self.batch_size,
        }

    def feature_precision(self, requested: str, driver: Precision) -> Precision:
        """`requested` resolved on the hardware of a worker that would hold the base.

        One small Ray task with the base actors' resources (`probe_hardware`) reports
        that worker's GPU and CPU flags; the answer is kept for this engine. An explicit
        precision the workers cannot run raises PrecisionUnavailableError here, before
        any work. `driver` (this process's precision) is not used: the base runs there.
        The probe imports TensorFlow in a fresh worker process (`max_calls=1`: it exits
        after, so TensorFlow's memory does not stay in Ray's worker pool).
        """
        if requested not in self._precision:
            probe = self.ray.remote(max_calls=1, **self.resources)(probe_hardware)
            found = self.ray.get(probe.remote())
            chosen = worker_precision(requested, found["gpu"], found["flags"])
            where = f"resolved on the Ray workers (probed on node {str(found['node'])[:12]})"
            self._precision[requested] = Precision(
                chosen.requested, chosen.effective, f"{where}: {chosen.reason}"
            )
        return self._precision[requested]

    def extract(
        self,
        extractor: FeatureExtractor,
        paths: list[Path],
        flip: bool = False,
        label: str = "features",
    ) -> Features:
        """Features of `paths`, computed on the cluster where the store misses them."""
        return self.extract_splits(extractor, {label: (paths, flip)}, label)[label]

    def extract_splits(
        self,
        extractor: FeatureExtractor,
        splits: dict[str, tuple[list[Path], bool]],
        label: str = "features",
    ) -> dict[str, Features]:
        """Features of several lists of files (`{name: (paths, flip)}`) in ONE Ray job,
        gathered from the store into this process."""
        return {
            name: gather(stored)
            for name, stored in self.store_splits(extractor, splits, label).items()
        }

    def store_splits(
        self,
        extractor: FeatureExtractor,
        splits: dict[str, tuple[list[Path], bool]],
        label: str = "features",
    ) -> dict[str, StoredFeatures]:
        """Several lists of files (`{name: (paths, flip)}`) into the store in ONE Ray job;
        the features stay where the workers wrote them (fit streams them from there).

        One job, one actor pool: every actor imports TensorFlow and builds the
        base once per call, so fit's train and valid splits share them.
        """
        rows = [{"path": str(p), "flip": flip} for paths, flip in splits.values() for p in paths]
        self.seconds = {}
        bar = ProgressBar(len(rows), label, enabled=self.progress)
        results: dict[str, tuple[str, str]] = {}  # path -> (sha, error)
        started = time.monotonic()
        if rows:
            for batch in self._dataset(extractor, rows).iter_batches(batch_size=None):
                if not self.seconds:
                    self.seconds = {"first_results": time.monotonic() - started}
                    self.seconds["first_results_rows"] = len(batch["path"])
                for path, sha, error in zip(
                    batch["path"], batch["sha"], batch["error"], strict=True
                ):
                    results[str(path)] = (str(sha), str(error))
                computed = int(np.sum(batch["computed"]))
                self.images_through_base += computed
                extractor.images_through_base += computed
                # Rebound, never mutated: another thread may read it at any moment.
                nodes = {str(n) for n in (*batch["decode_node"], *batch["base_node"])}
                self.node_ids = self.node_ids | nodes
                bar.update(len(batch["path"]))
        self.seconds["total"] = time.monotonic() - started
        bar.close()
        return {
            name: stored_of(extractor.store, paths, results, flip)
            for name, (paths, flip) in splits.items()
        }

    def _dataset(self, extractor: FeatureExtractor, rows: list[dict[str, Any]]) -> Any:
        ray = self.ray
        # Shipped once per base, shared by every actor. Keyed by the store namespace, which
        # names the weights (a file's hash, or the values' hash for random ones).
        key = extractor.store.namespace
        if key not in self._weights:
            self._weights[key] = ray.put(extractor.base.get_weights())
        blocks = block_count(len(rows), self.batch_size, self.actors)
        store, size = extractor.store, extractor.image_size
        return (
            ray.data.from_items(rows, override_num_blocks=blocks)
            .map_batches(
                decode_batch,
                fn_kwargs={"store": store, "image_size": size},
                batch_size=self.batch_size,
                num_cpus=1,
            )
            .map_batches(
                BaseActor,
                fn_constructor_kwargs={
                    "weights": self._weights[key],
                    "image_size": size,
                    "layer": extractor.layer,
                    "store": store,
                    "precision": extractor.precision,
                },
                batch_size=self.batch_size,
                compute=ray.data.ActorPoolStrategy(size=self.actors),
                **self.resources,
            )
        )


def worker_precision(requested: str, gpu: tuple[int, int] | None, flags: set[str]) -> Precision:
    """`requested` resolved for Ray workers with this GPU (compute capability, or None) and
    these CPU flags: `resolve_precision`, with an error that names the workers' hardware
    and what it can run. Pure, so tests can pass hardware that no machine here has."""
    try:
        return resolve_precision(requested, gpu, flags)
    except PrecisionUnavailableError as exc:
        hardware = f"a GPU of compute capability {gpu[0]}.{gpu[1]}" if gpu else "no GPU"
        runnable = []
        for candidate in PRECISIONS[1:]:  # the explicit ones
            try:
                runnable.append(resolve_precision(candidate, gpu, flags).effective)
            except PrecisionUnavailableError:
                continue
        raise PrecisionUnavailableError(
            f"{requested} cannot run on the Ray workers' hardware ({hardware}), where "
            f"--engine ray runs the base; they can run {' or '.join(runnable)} [{exc}]"
        ) from exc


def stored_of(
    store: FeatureStore, paths: list[Path], results: dict[str, tuple[str, str]], flip: bool
) -> StoredFeatures:
    """The job's answer for one split: the readable files' hashes, in input order."""
    errors = {p: results[str(p)][1] for p in paths if results[str(p)][1]}
    ok = [p for p in paths if p not in errors]
    return StoredFeatures(store, ok, [results[str(p)][0] for p in ok], flip, errors)


def gather(stored: StoredFeatures) -> Features:
    """Read a split's features back from the store into memory, in input order."""
    store, ok, shas = stored.store, stored.paths, stored.file_sha256

    def load(flipped: bool) -> np.ndarray:
        values = [store.get(sha, flipped) for sha in shas]
        missing = [str(p) for p, v in zip(ok, values, strict=True) if v is None]
        if missing:
            raise RuntimeError(
                f"the feature store {store.root} lacks {len(missing)} feature(s) the Ray job "
                f"reported as written, e.g. {missing[0]}; is the store shared by every node?"
            )
        if not values:
            return np.zeros((0, *store.feature_shape), dtype=np.float32)
        return np.stack([v for v in values if v is not None])

    return Features(
        paths=ok,
        values=load(False),
        flipped=load(True) if stored.flip else None,
        file_sha256=shas,
        errors=stored.errors,
    )
