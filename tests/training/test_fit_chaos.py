"""kill -9 in every phase of `python -m training fit`, and two fits at once: real processes.

Each phase gets a repository holding version 1 and one fit killed in that phase,
recognised from outside the process: its stderr (feature progress, epoch
lines), /proc/locks (blocked on the publish lock), the files of its draft
(`.tmp-*`, `variables/`, `saved_model.pb`), or, for instants too short to catch
from outside (metadata.json being written, the complete draft about to be
renamed), a stop made by `tests/support/stop_at.py`. After the kill: no partial
version is visible, every version loads, and the next publish takes the next
number and removes the killed run's draft.

    PYTHONPATH=. python -m pytest tests/training/test_fit_chaos.py -q
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.support.harness import ROOT
from modelstore.layout import (
    DRAFT_PREFIX,
    STALE_DRAFT_GRACE_S,
    list_versions,
    publish_lock,
    reserve_version,
)
from modelstore.loader import load_published
from modelstore.metadata import METADATA_FILE, read_metadata, write_metadata

NAME = "car_truck"
STOP_AT = Path(__file__).resolve().parents[1] / "support" / "stop_at.py"
FLAGS = ("--image-size", "32", "--base-weights", "none", "--precision", "fp32", "--seed", "0")
FEW_EPOCHS = ("--epochs", "2", "--batch-size", "16")
# The head phase is killed at its first epoch line: many epochs keep it in that phase.
MANY_EPOCHS = ("--epochs", "500", "--patience", "500", "--batch-size", "16")


@dataclass
class Fit:
    """A running `python -m training fit`, its stderr collected line by line."""

    process: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def collect(self) -> None:
        assert self.process.stderr is not None
        while chunk := os.read(self.process.stderr.fileno(), 65536):
            # Progress bars redraw with \r: each redraw is a line of its own.
            self.lines.extend(re.split(r"[\r\n]+", chunk.decode(errors="replace")))


def start_fit(
    data: Path, models: Path, cache: Path, *flags: str, stop_at: str | None = None
) -> Fit:
    runner = [str(STOP_AT), stop_at] if stop_at else ["-m", "training"]
    command = [sys.executable, *runner, "fit", "--data", str(data), "--name", NAME]
    command += ["--models-dir", str(models), "--cache-dir", str(cache), *FLAGS, *flags]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    fit = Fit(process)
    threading.Thread(target=fit.collect, daemon=True).start()
    return fit


def kill_when(fit: Fit, phase_reached: Callable[[], bool], timeout_s: float = 240) -> None:
    """SIGKILL the fit as soon as `phase_reached()` (polled every 2 ms)."""
    deadline = time.monotonic() + timeout_s
    try:
        while not phase_reached():
            if fit.process.poll() is not None:
                tail = "\n".join(fit.lines[-20:])
                pytest.fail(f"the fit ended ({fit.process.returncode}) before the phase:\n{tail}")
            if time.monotonic() > deadline:
                pytest.fail(f"the phase was not reached within {timeout_s:g} s")
            time.sleep(0.002)
    finally:
        fit.process.send_signal(signal.SIGKILL)
        fit.process.wait(timeout=30)
        if fit.process.stderr is not None:
            fit.process.stderr.close()
    assert fit.process.returncode == -signal.SIGKILL


def drafts(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.glob(f"{DRAFT_PREFIX}*") if p.is_dir())


def in_draft(model_dir: Path, name: str) -> bool:
    return any((draft / name).exists() for draft in drafts(model_dir))


def waiting_for_lock(pid: int) -> bool:
    """/proc/locks lists a process blocked in flock() with "->" before its entry."""
    return any(
        "->" in line and line.split()[5] == str(pid)
        for line in Path("/proc/locks").read_text().splitlines()
        if len(line.split()) > 5
    )


def stopped(pid: int) -> bool:
    """The process state in /proc/PID/stat is T (stopped by stop_at.py)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


@pytest.fixture(scope="module")
def store(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """car_truck version 1 from the same command run to its end (the baseline)."""
    root = tmp_path_factory.mktemp("chaos-store")
    fit = start_fit(demo_dir, root / "models", root / "cache", *FEW_EPOCHS)
    assert fit.process.wait(timeout=600) == 0, "\n".join(fit.lines[-20:])
    assert list_versions(root / "models" / NAME) == [1]
    return root / "models" / NAME / "1"


def publish_next(models: Path, source: Path) -> int:
    """Publish a copy of `source` as the next version (the way every writer publishes)."""
    with reserve_version(models, NAME) as draft:
        shutil.copytree(source, draft.path, dirs_exist_ok=True)
        meta = read_metadata(source).model_copy(update={"version": draft.version})
        write_metadata(draft.path, meta)
    return draft.version


def assert_every_version_complete(model_dir: Path) -> list[int]:
    versions = list_versions(model_dir)
    for version in versions:
        folder = model_dir / str(version)
        assert (folder / METADATA_FILE).is_file(), f"{folder} is visible without metadata"
        assert load_published(folder).version == version
    return versions


@dataclass(frozen=True)
class Phase:
    reached: Callable[[Fit, Path], bool]
    flags: tuple[str, ...] = FEW_EPOCHS
    stop_at: str | None = None
    hold_lock: bool = False
    # What the killed run must have left: no draft, or a draft with (and without) files.
    draft_has: tuple[str, ...] | None = None
    draft_lacks: tuple[str, ...] = ()
    not_said: str | None = None  # a later phase's stderr line


PHASES = {
    "features": Phase(lambda fit, _: fit.said("train features"), not_said="epoch "),
    "head": Phase(lambda fit, _: fit.said("epoch 1/"), flags=MANY_EPOCHS, not_said="epoch 500/"),
    "waiting-for-the-lock": Phase(lambda fit, _: waiting_for_lock(fit.process.pid), hold_lock=True),
    "draft-made-under-the-lock": Phase(
        lambda _, model_dir: bool(drafts(model_dir)), draft_has=(), draft_lacks=("saved_model.pb",)
    ),
    "savedmodel-variables-written": Phase(
        lambda _, model_dir: in_draft(model_dir, "variables"),
        draft_has=("variables",),
        draft_lacks=(METADATA_FILE,),
    ),
    "savedmodel-pb-written": Phase(
        lambda _, model_dir: in_draft(model_dir, "saved_model.pb"),
        draft_has=("saved_model.pb",),
        draft_lacks=(METADATA_FILE,),
    ),
    "metadata-being-written": Phase(
        lambda fit, _: stopped(fit.process.pid),
        stop_at="metadata",
        draft_has=("saved_model.pb", "variables", "confusion_matrix.png", "MODEL_CARD.md"),
        draft_lacks=(METADATA_FILE,),
    ),
    "just-before-the-rename": Phase(
        lambda fit, _: stopped(fit.process.pid),
        stop_at="rename",
        draft_has=("saved_model.pb", "variables", METADATA_FILE),
    ),
}


@contextlib.contextmanager
def lock_held(model_dir: Path, hold: bool) -> Iterator[None]:
    if not hold:
        yield
        return
    with publish_lock(model_dir):
        yield


# Two phases run in every test run; the other six (about 15 s each) with `-m slow`.
EVERY_RUN = ("savedmodel-variables-written", "just-before-the-rename")


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "phase",
    [p if p in EVERY_RUN else pytest.param(p, marks=pytest.mark.slow) for p in PHASES],
)
def test_fit_killed_in_any_phase_leaves_no_partial_version(
    phase: str, demo_dir: Path, store: Path, tmp_path: Path
) -> None:
    spec = PHASES[phase]
    models = tmp_path / "models"
    model_dir = models / NAME
    shutil.copytree(store, model_dir / "1")
    with lock_held(model_dir, spec.hold_lock):
        fit = start_fit(demo_dir, models, tmp_path / "cache", *spec.flags, stop_at=spec.stop_at)
        kill_when(fit, lambda: spec.reached(fit, model_dir))

    # Nothing half-made is visible, and what is visible loads.
    assert assert_every_version_complete(model_dir) == [1]

    # It died where it was meant to (the draft's files tell how far it got).
    left = drafts(model_dir)
    if spec.draft_has is None:
        assert left == []
    else:
        assert len(left) == 1, left
        present = sorted(p.name for p in left[0].iterdir())
        assert set(spec.draft_has) <= set(present), present
        assert not set(spec.draft_lacks) & set(present), present
    if spec.not_said:
        assert not fit.said(spec.not_said)

    # The next publish (the kill released the lock) takes the next number and removes the
    # killed run's draft once it is older than the grace period for live writers.
    old = time.time() - STALE_DRAFT_GRACE_S - 1
    for draft in left:
        os.utime(draft, (old, old))
    assert publish_next(models, store) == 2
    assert drafts(model_dir) == []
    assert assert_every_version_complete(model_dir) == [1, 2]


@pytest.mark.timeout(600)
def test_two_fits_of_one_model_at_once_publish_distinct_versions(
    demo_dir: Path, tmp_path: Path
) -> None:
    models, cache = tmp_path / "models", tmp_path / "cache"  # one cache too, written by both
    fits = [start_fit(demo_dir, models, cache, *FEW_EPOCHS) for _ in range(2)]
    published = []
    for fit in fits:
        assert fit.process.wait(timeout=600) == 0, "\n".join(fit.lines[-20:])
        assert fit.process.stdout is not None
        out = fit.process.stdout.read().decode()
        match = re.search(r"published car_truck version (\d+)", out)
        assert match, out
        published.append(int(match.group(1)))
    assert sorted(published) == [1, 2]
    model_dir = models / NAME
    assert drafts(model_dir) == []
    assert assert_every_version_complete(model_dir) == [1, 2]
