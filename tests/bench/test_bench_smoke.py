"""The serving benchmark's harness runs end to end in its smoke mode (tiny model, few requests).

Figures are never asserted here (they belong to bench/results); this only proves
that the benchmark still starts both servers, loads them and writes its report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_serving_benchmark_smoke_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "serving.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.serving", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    for server in ("ours", "naive"):
        rows = report["results"][server]
        assert [row["concurrency"] for row in rows] == [1, 4]
        for row in rows:
            assert row["errors"] == {}
            assert row["ok"] == row["requests"] > 0
            assert row["throughput_rps"] > 0
            assert row["server_rss_mb"] > 0
    assert report["ceiling_best"] > 0
    assert set(report["summary"]) == {
        "ours_c4_over_ceiling",
        "ours_over_naive_c4",
        "p50_ms_ours_minus_naive_c1",
    }
