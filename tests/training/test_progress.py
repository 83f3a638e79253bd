"""The progress bar: whole lines off a terminal (docker logs, CI), frames on one."""

from __future__ import annotations

import io
import re

from training.progress import ProgressBar, format_seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(stream: io.StringIO, total: int, steps: int, seconds_per_step: float) -> list[str]:
    clock = FakeClock()
    bar = ProgressBar(total, "features", stream=stream, clock=clock)
    for _ in range(steps):
        clock.now += seconds_per_step
        bar.update(total // steps)
    bar.close()
    return stream.getvalue().splitlines()


def test_progress_not_a_terminal_writes_bounded_whole_lines_with_eta() -> None:
    stream = io.StringIO()  # isatty() is False, as for docker logs or CI
    lines = run(stream, total=1000, steps=1000, seconds_per_step=0.01)
    assert "\r" not in stream.getvalue()
    # A start line, one per tenth (10% .. 90%), a summary: never one per update.
    assert len(lines) == 11
    middle = lines[1:-1]
    assert [re.search(r"\((\d+)%\)", line).group(1) for line in middle] == [  # type: ignore[union-attr]
        str(p) for p in range(10, 100, 10)
    ]
    assert middle[0].startswith("features: 100/1000 (10%) 100.0/s, 1s elapsed, ETA 9s")
    assert all(re.search(r"ETA \d+s$", line) for line in middle)
    assert lines[0] == "features: 1000 to do"
    assert lines[-1] == "features: done 1000/1000 in 10s (100.0/s)"


def test_progress_not_a_terminal_slow_work_still_reports_every_interval() -> None:
    stream = io.StringIO()
    # 100 steps of one picture each, 40 s apart: less than a tenth per line, but a
    # line at least every 30 s so a log reader sees it is alive.
    lines = run(stream, total=1000, steps=100, seconds_per_step=40.0)
    assert len(lines) == 1 + 100 + 1
    assert lines[1] == "features: 10/1000 (1%) 0.2/s, 40s elapsed, ETA 1h06m"


def test_progress_terminal_redraws_one_line_with_eta() -> None:
    stream = Terminal()
    run(stream, total=100, steps=10, seconds_per_step=1.0)
    text = stream.getvalue()
    assert text.count("\r") == 1 + 10 + 1  # first frame, one per update, the final one
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, redrawn in place
    assert (
        "features [###############...............] 50/100 (50%) 10.0/s, 5s elapsed, ETA 5s" in text
    )


def test_progress_disabled_writes_nothing() -> None:
    stream = io.StringIO()
    bar = ProgressBar(10, "x", enabled=False, stream=stream)
    bar.update(10)
    bar.close()
    assert stream.getvalue() == ""


def test_format_seconds_short_forms() -> None:
    assert [format_seconds(s) for s in (0.4, 42, 185, 3720)] == ["0s", "42s", "3m05s", "1h02m"]
