"""Progress and ETA inside a head-training epoch, shown once an epoch proves long.

A head on a few thousand cached pictures trains an epoch in a second, and a bar
would be noise; streamed from the store, an epoch over millions of pictures takes
minutes, and a silent one looks hung. So the bar appears only when an epoch has
run `after_s` seconds, counting from the epoch's start (its rate and ETA too).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

import keras

from training.progress import ProgressBar

SHOW_AFTER_S = 5.0


class EpochProgress(keras.callbacks.Callback):
    """`epoch 2/30: 38400/100000 (38%) 6400.2/s, 6s elapsed, ETA 10s` (pictures) while
    an epoch runs."""

    def __init__(
        self,
        examples: int,
        batch_size: int,
        epochs: int,
        enabled: bool = True,
        after_s: float = SHOW_AFTER_S,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.examples, self.batch_size = examples, batch_size
        self.epochs, self.enabled = epochs, enabled
        self.after_s, self.stream, self.clock = after_s, stream or sys.stderr, clock
        self._bar: ProgressBar | None = None
        self._epoch, self._started = 0, clock()

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._epoch, self._started, self._bar = epoch, self.clock(), None

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        # Keras passes the last step of the execution (several steps per call).
        if not self.enabled:
            return
        if self._bar is None:
            if self.clock() - self._started < self.after_s:
                return
            label = f"epoch {self._epoch + 1}/{self.epochs}"
            self._bar = ProgressBar(
                self.examples, label, stream=self.stream, clock=self.clock, started=self._started
            )
        done = min((batch + 1) * self.batch_size, self.examples)
        self._bar.update(done - self._bar.done)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
