"""What a model version being loaded is doing now: reading its SavedModel or warming up.

The repository keeps one `LoadProgress` per version it is loading. `/models`,
`/v1/models/<name>` and the demo page read its `snapshot()` (so a user sees
"warming, batch 8 (4 of 16)" instead of an empty list), and each finished step
is logged as one line with the seconds it took, so a slow start-up can be read
in the service log step by step.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

LoadStateName = Literal["loading", "warming", "failed"]


@dataclass(frozen=True)
class LoadState:
    """One version that does not serve (yet): being loaded, warmed up, or failed."""

    name: str
    version: int
    state: LoadStateName
    step: str  # what it is doing now (or where it failed)
    seconds: float  # since loading began (0 for a failure)
    error: str | None = None


class LoadProgress:
    """The steps of one load: `step()` starts the next, `finish()` closes the last."""

    def __init__(self, name: str, version: int) -> None:
        self.name, self.version = name, version
        self._lock = threading.Lock()  # written by the loading thread, read by requests
        self._began = self._step_began = time.perf_counter()
        self._state: LoadStateName = "loading"
        self._step = "reading the SavedModel"
        log.info("model %s version %d: %s", name, version, self._step)

    def _close_step(self, now: float) -> None:
        log.info(
            "model %s version %d: %s took %.2f s",
            self.name,
            self.version,
            self._step,
            now - self._step_began,
        )

    def step(self, state: LoadStateName, step: str) -> None:
        now = time.perf_counter()
        with self._lock:
            self._close_step(now)
            self._state, self._step, self._step_began = state, step, now

    def finish(self) -> float:
        """Log the last step; the seconds the whole load took."""
        now = time.perf_counter()
        with self._lock:
            self._close_step(now)
        return now - self._began

    def snapshot(self) -> LoadState:
        with self._lock:
            return LoadState(
                self.name,
                self.version,
                self._state,
                self._step,
                round(time.perf_counter() - self._began, 3),
            )


def warm_up_step(bucket: int, index: int, count: int) -> str:
    """`warm-up batch 8, 4 of 16`: the batch shape and how far along the warm-up is."""
    return f"warm-up batch {bucket}, {index} of {count}"
