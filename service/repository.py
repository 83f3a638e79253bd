"""`ModelRepository`: which model versions are loaded, and keeping them current.

TensorFlow Serving's "latest" policy: for every model under `models_dir` the
highest valid integer version serves, plus any versions pinned in settings. A
new version is loaded beside the old one, checked and warmed up
(`model_version.load_model_version`), then swapped in under a lock; the old one
is released once its in-flight requests finish. A version that fails is logged
with its reason, counted and skipped while the old one keeps serving; it is
tried again only once its files change (a copy that was still running, a file
fixed by hand), never in a tight loop. Folders without metadata.json are still
being written by a non-atomic writer and are looked at again later.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from modelstore.layout import list_models, list_versions, misnamed_versions
from modelstore.metadata import METADATA_FILE, InvalidModelError
from modelstore.runtime import PrecisionUnavailableError, Runtime
from service.errors import ModelNotFound, NotReady, PrecisionConflict
from service.load_progress import LoadProgress, LoadState
from service.model_version import BatchingConfig, ModelVersion, load_model_version
from service.shared_base import BaseRegistry
from service.telemetry import Metrics

log = logging.getLogger(__name__)


def folder_fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, mtime) of every file below `path`: changes when any file does."""
    entries = []
    for file in sorted(path.rglob("*")):
        with contextlib.suppress(OSError):  # a file removed while we look
            if file.is_file():
                stat = file.stat()
                entries.append((str(file.relative_to(path)), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


class ModelRepository:
    def __init__(
        self,
        models_dir: Path,
        runtime: Runtime,
        batching: BatchingConfig,
        pins: dict[str, set[int]] | None = None,
        metrics: Metrics | None = None,
        share_base: bool = True,
    ) -> None:
        self.models_dir = Path(models_dir)
        # Versions with the same frozen base run on one loaded base (service.shared_base).
        self.bases = BaseRegistry(runtime, batching, metrics) if share_base else None
        self.runtime = runtime
        self._batching = batching
        self._pins = pins or {}
        self._metrics = metrics
        self._loaded: dict[str, dict[int, ModelVersion]] = {}
        self._latest: dict[str, int] = {}
        self.failures: dict[tuple[str, int], str] = {}
        # The subset of failures that are an explicit precision the version cannot run.
        self._precision_refusals: dict[tuple[str, int], str] = {}
        # What each failed folder looked like when it failed (see _known_failure).
        self._failed_as: dict[tuple[str, int], tuple[tuple[str, int, int], ...]] = {}
        # Versions being loaded right now (read by /models while the poller loads them).
        self._loading: dict[tuple[str, int], LoadProgress] = {}
        self._lock = threading.RLock()  # guards _loaded/_latest (readers are requests)
        self._reload_lock = threading.Lock()  # one reload at a time (poller or admin)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.scanned = False  # True after the first complete scan
        self._reported_names: set[Path] = set()  # misnamed folders already logged once

    # ---- reading (event loop) ----------------------------------------------------------
    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._latest)

    def versions(self, name: str) -> list[ModelVersion]:
        with self._lock:
            return [self._loaded[name][v] for v in sorted(self._loaded.get(name, {}))]

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """The latest (or the named) loaded version; ModelNotFound (404) if there is none."""
        with self._lock:
            if name not in self._latest and not self.scanned:
                raise NotReady("models are still loading; retry shortly (see /readyz)")
            if name not in self._latest:
                refused = [why for (n, _), why in self._precision_refusals.items() if n == name]
                if refused:  # there, but not in the precision asked for: 409, not 404
                    raise PrecisionConflict(refused[-1])
                known = ", ".join(sorted(self._latest)) or "none"
                raise ModelNotFound(f"model {name!r} is not loaded; loaded models: {known}")
            if version is None:
                return self._loaded[name][self._latest[name]]
            if version not in self._loaded[name]:
                have = ", ".join(str(v) for v in sorted(self._loaded[name]))
                raise ModelNotFound(
                    f"version {version} of {name!r} is not loaded; loaded versions: {have}"
                )
            return self._loaded[name][version]

    @contextlib.contextmanager
    def lease(self, name: str, version: int | None = None) -> Iterator[ModelVersion]:
        """Hold a version for one request so a swap cannot release it underneath."""
        with self._lock:
            model = self.get(name, version)
            model.acquire()
        try:
            yield model
        finally:
            model.release()

    def load_states(self, name: str | None = None) -> list[LoadState]:
        """Versions (of `name`, or all) being loaded now or that failed, by name and version."""
        with self._lock:
            states = [p.snapshot() for p in self._loading.values()]
            failed = list(self.failures.items())
        states += [
            LoadState(model, version, "failed", "not loaded", 0.0, reason)
            for (model, version), reason in failed
        ]
        return sorted(
            (s for s in states if name is None or s.name == name),
            key=lambda s: (s.name, s.version),
        )

    def missing_pins(self) -> list[str]:
        with self._lock:
            return [
                f"{name}:{v}"
                for name, versions in sorted(self._pins.items())
                for v in sorted(versions)
                if v not in self._loaded.get(name, {})
            ]

    # ---- loading (poller thread or admin request, never the event loop) ----------------
    def reload(self) -> dict[str, list[int]]:
        """Scan the directory once, load what is new; returns the loaded versions by model."""
        with self._reload_lock:
            names = list_models(self.models_dir)
            for name in names:
                self._refresh_model(name)
            self._forget_removed_failures(names)
            self.scanned = True
        with self._lock:
            return {name: sorted(vs) for name, vs in sorted(self._loaded.items())}

    def _forget_removed_failures(self, names: list[str]) -> None:
        """A failed version whose folder is gone is no longer a failure worth reporting."""
        with self._lock:
            for key in list(self.failures):
                name, version = key
                if name not in names or not (self.models_dir / name / str(version)).is_dir():
                    del self.failures[key]
                    self._failed_as.pop(key, None)

    def _report_misnamed(self, name: str) -> None:
        """Digit-named folders that are not versions ("092"): one warning each, not per poll."""
        for folder in misnamed_versions(self.models_dir / name):
            path = self.models_dir / name / folder
            if path not in self._reported_names:
                self._reported_names.add(path)
                log.warning(
                    "%s is ignored: a version folder is named by a positive integer without "
                    "leading zeros (rename it, e.g. to %s)",
                    path,
                    int(folder) or 1,
                )

    def _refresh_model(self, name: str) -> None:
        current = self._latest.get(name, 0)
        versions = list_versions(self.models_dir / name)
        self._report_misnamed(name)
        # Newest first: the first one that loads becomes the latest.
        for version in sorted((v for v in versions if v > current), reverse=True):
            if self._known_failure(name, version):
                continue
            model = self._try_load(name, version)
            if model is not None:
                self._swap_in(model, make_latest=True)
                break
        for version in sorted(self._pins.get(name, set())):
            with self._lock:
                present = version in self._loaded.get(name, {})
            if not present and version in versions and not self._known_failure(name, version):
                model = self._try_load(name, version)
                if model is not None:
                    self._swap_in(model, make_latest=False)

    def _known_failure(self, name: str, version: int) -> bool:
        """True if this version failed before and its files have not changed since."""
        key = (name, version)
        if key not in self.failures:
            return False
        if folder_fingerprint(self.models_dir / name / str(version)) == self._failed_as.get(key):
            return True
        del self.failures[key]
        self._precision_refusals.pop(key, None)
        return False

    def _try_load(self, name: str, version: int) -> ModelVersion | None:
        path = self.models_dir / name / str(version)
        metadata = path / METADATA_FILE
        if metadata.exists() and not metadata.is_file():
            # Not a writer still at work (that is a missing file): a broken version, failed
            # once and reported in /models, instead of "not yet" at every poll.
            self._failed(name, version, path, f"{METADATA_FILE} is not a file")
            return None
        if not metadata.is_file():
            log.info(
                "model %s version %d has no %s yet; skipped for now", name, version, METADATA_FILE
            )
            return None
        progress = LoadProgress(name, version)
        with self._lock:
            self._loading[(name, version)] = progress
        try:
            # On success the entry is dropped by _swap_in, under the same lock that makes
            # the version visible: a reader never sees it neither loading nor loaded.
            shared, why_whole = (
                self.bases.load_version(name, version, path, progress)
                if self.bases is not None
                else (None, None)
            )
            if shared is not None:
                return shared
            model = load_model_version(
                name, version, path, self.runtime, self._batching, self._metrics, progress
            )
            model.whole_reason = why_whole
            return model
        except InvalidModelError as exc:
            reason = str(exc)
        except PrecisionUnavailableError as exc:
            reason = str(exc)
            with self._lock:
                self._precision_refusals[(name, version)] = reason
        except Exception as exc:  # anything else a broken export raises: skip it, keep serving
            reason = f"{type(exc).__name__}: {exc}"
        self._failed(name, version, path, reason)
        return None

    def _failed(self, name: str, version: int, path: Path, reason: str) -> None:
        """Record, log and count a version that cannot load (tried again once its files change)."""
        with self._lock:
            self._loading.pop((name, version), None)
            self.failures[(name, version)] = reason
        self._failed_as[(name, version)] = folder_fingerprint(path)
        log.error("model %s version %d not loaded: %s", name, version, reason)
        if self._metrics is not None:
            self._metrics.load_failures.labels(model=name).inc()
        return None

    def _swap_in(self, model: ModelVersion, make_latest: bool) -> None:
        name = model.name
        retired: ModelVersion | None = None
        with self._lock:
            self._loaded.setdefault(name, {})[model.version] = model
            self._loading.pop((name, model.version), None)
            previous = self._latest.get(name)
            if make_latest or previous is None:
                self._latest[name] = model.version
                if previous is not None and previous not in self._pins.get(name, set()):
                    retired = self._loaded[name].pop(previous)
        if self._metrics is not None:
            self._metrics.model_loaded.labels(model=name, version=str(model.version)).set(1)
            if retired is not None:
                self._metrics.model_loaded.remove(name, str(retired.version))
        log.info("model %s now serves version %d", name, self._latest[name])
        if retired is not None:
            retired.retire()

    # ---- poller and shutdown -------------------------------------------------------
    def start_polling(self, interval_s: float) -> None:
        if interval_s <= 0:
            return

        def poll() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.reload()
                except Exception:  # a failing scan must never stop the poller
                    log.exception("model directory scan failed")

        self._poller = threading.Thread(target=poll, name="model-poller", daemon=True)
        self._poller.start()

    def close(self, timeout_s: float | None = None) -> None:
        """Stop polling; every batcher finishes its queued work, then all versions unload."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout_s)
        with self._lock:
            models = [m for versions in self._loaded.values() for m in versions.values()]
            self._loaded.clear()
            self._latest.clear()
        for model in models:
            model.batcher.close(timeout_s)
            model.retire()
