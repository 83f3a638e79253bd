"""Progress on stderr for long batch work (feature extraction, evaluate, predict).

    bar = ProgressBar(total, "features")
    for batch in ...:
        bar.update(len(batch))
    bar.close()

On a terminal it redraws one line in place (`\\r` frames) with a bar, the rate and
an ETA. Anywhere else (`docker logs`, CI, a file) carriage-return frames turn into
one unreadable line, so it writes whole lines instead: one at the start, one each
time another tenth is done or `line_every_s` has passed, and a summary at the end.
No dependency: a dozen lines of formatting do not need `rich`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 30
TTY_REDRAW_S = 0.2  # a terminal frame at most 5 times a second: drawing is not free
LINE_EVERY_S = 30.0  # non-terminal: a line at least this often while work goes on slowly


def format_seconds(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`: short enough for a progress line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


class ProgressBar:
    """A progress bar with rate and ETA; whole lines when `stream` is not a terminal.

    `tty` forces one mode (None: ask the stream); `clock` is for tests; `started`: when
    the work began by `clock`, for a bar shown only once the work proves long.
    """

    def __init__(
        self,
        total: int,
        label: str,
        enabled: bool = True,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        line_every_s: float = LINE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        started: float | None = None,
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = _is_terminal(self.stream) if tty is None else tty
        self.line_every_s = line_every_s
        self.clock = clock
        self.done = 0
        self.start = clock() if started is None else started  # work may predate the bar
        self._last_draw = self.start
        self._last_tenth = 0  # non-terminal: tenths of the total already reported
        self._closed = False
        if self.enabled:
            if self.tty:
                self._frame()
            else:
                what = f"{self.total} to do" if self.total else "started"
                self._line(f"{self.label}: {what}")

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = self.clock()
        if self.tty:
            if now - self._last_draw >= TTY_REDRAW_S or self.done >= self.total:
                self._last_draw = now
                self._frame()
            return
        tenth = 10 * min(self.done, self.total) // self.total if self.total else 0
        # The last tenth is left to close(), which writes the summary line.
        new_tenth = self._last_tenth < tenth < 10
        if new_tenth or now - self._last_draw >= self.line_every_s:
            self._last_tenth = max(self._last_tenth, tenth)
            self._last_draw = now
            self._line(f"{self.label}: {self._status(now)}")

    def close(self) -> None:
        if not self.enabled or self._closed:
            return
        self._closed = True
        now = self.clock()
        elapsed = now - self.start
        if self.tty:
            self._frame()
            self.stream.write("\n")
            self.stream.flush()
            return
        rate = self.done / elapsed if elapsed > 0 else 0.0
        of = f"/{self.total}" if self.total else ""
        self._line(
            f"{self.label}: done {self.done}{of} in {format_seconds(elapsed)} ({rate:.1f}/s)"
        )

    def _status(self, now: float) -> str:
        """`120/400 (30%) 12.3/s, 10s elapsed, ETA 23s` (no total: count, rate, elapsed)."""
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if not self.total:
            return f"{self.done} {rate:.1f}/s, {format_seconds(elapsed)} elapsed"
        left = max(self.total - self.done, 0)
        eta = format_seconds(left / rate) if rate > 0 else "?"
        percent = 100 * min(self.done, self.total) // self.total
        return (
            f"{self.done}/{self.total} ({percent}%) {rate:.1f}/s, "
            f"{format_seconds(elapsed)} elapsed, ETA {eta}"
        )

    def _frame(self) -> None:
        status = self._status(self.clock())
        if self.total:
            filled = BAR_WIDTH * min(self.done, self.total) // self.total
            status = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {status}"
        # Trailing spaces wipe what a longer previous frame left on the line.
        self.stream.write(f"\r{self.label} {status}   ")
        self.stream.flush()

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
