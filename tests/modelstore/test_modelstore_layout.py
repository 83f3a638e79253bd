"""The repository layout: version numbers, publishing under the lock, drafts of killed writers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelstore.layout import STALE_DRAFT_GRACE_S, list_versions, reserve_version
from modelstore.metadata import METADATA_FILE

ROOT = Path(__file__).resolve().parents[2]
# Long enough that, without the lock, every writer would read the same latest version
# before the first one renames its draft into place.
HOLD_S = 0.3


def publish(models_dir: Path, name: str = "m", hold_s: float = 0.0) -> int:
    """One writer: reserve, 'export' for `hold_s`, write metadata, publish; the version."""
    with reserve_version(models_dir, name) as draft:
        time.sleep(hold_s)
        (draft.path / METADATA_FILE).write_text(json.dumps({"version": draft.version}))
    return draft.version


def test_layout_ignores_non_ascii_digit_folders(tmp_path: Path) -> None:
    for name in ("1", "²", "3", "٣"):
        (tmp_path / name).mkdir()
    assert list_versions(tmp_path) == [1, 3]


def test_layout_never_reuses_a_deleted_version_number(tmp_path: Path) -> None:
    assert publish(tmp_path) == 1
    assert publish(tmp_path) == 2
    shutil.rmtree(tmp_path / "m" / "2")  # an operator removes a bad version
    assert publish(tmp_path) == 3
    assert list_versions(tmp_path / "m") == [1, 3]


def test_layout_concurrent_publishes_in_threads_get_distinct_numbers(tmp_path: Path) -> None:
    writers = 4
    start = threading.Barrier(writers)

    def writer() -> int:
        start.wait()
        return publish(tmp_path, hold_s=HOLD_S)

    with ThreadPoolExecutor(writers) as pool:
        futures = [pool.submit(writer) for _ in range(writers)]
        versions = sorted(f.result(timeout=60) for f in futures)
    assert versions == [1, 2, 3, 4]
    assert list_versions(tmp_path / "m") == [1, 2, 3, 4]
    for v in versions:
        assert json.loads((tmp_path / "m" / str(v) / METADATA_FILE).read_text()) == {"version": v}


WRITER = """
import json, sys, time
from pathlib import Path
from modelstore.layout import reserve_version
models, ready, go, hold = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
ready.touch()
while not go.exists():
    time.sleep(0.01)
with reserve_version(models, "m") as draft:
    time.sleep(hold)
    (draft.path / "metadata.json").write_text(json.dumps({"version": draft.version}))
print(draft.version)
"""


def test_layout_concurrent_publishes_in_processes_get_distinct_numbers(tmp_path: Path) -> None:
    models, signals = tmp_path / "models", tmp_path / "signals"
    signals.mkdir()
    go = signals / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(models),
                str(signals / f"ready{i}"),
                str(go),
                str(HOLD_S),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    deadline = time.monotonic() + 60
    # Release them together, once all three are past their imports.
    while len(list(signals.glob("ready*"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    go.touch()
    results = [p.communicate(timeout=60) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    assert sorted(int(out) for out, _ in results) == [1, 2, 3]
    assert list_versions(models / "m") == [1, 2, 3]


def test_layout_next_publish_removes_stale_drafts_and_keeps_fresh_ones(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    stale = model_dir / ".tmp-killed-run"
    (stale / "variables").mkdir(parents=True)
    (stale / "saved_model.pb").write_bytes(b"half a model")
    fresh = model_dir / ".tmp-still-writing"
    fresh.mkdir()
    other = model_dir / "notes"  # not a draft: never ours to delete, however old
    other.mkdir()
    now = time.time()
    for folder, age in ((stale, STALE_DRAFT_GRACE_S + 60), (fresh, STALE_DRAFT_GRACE_S - 60)):
        os.utime(folder, (now - age, now - age))
    os.utime(other, (now - 10 * STALE_DRAFT_GRACE_S,) * 2)

    assert publish(tmp_path) == 1
    assert not stale.exists()
    assert fresh.is_dir()
    assert other.is_dir()
    assert sorted(p.name for p in model_dir.iterdir() if p.is_dir()) == [
        ".tmp-still-writing",
        "1",
        "notes",
    ]
