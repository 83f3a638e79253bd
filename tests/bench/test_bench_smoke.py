"""The serving benchmark's harness runs end to end in its smoke mode (tiny model, few requests).

Figures are never asserted here (they belong to bench/results); this only proves
that the benchmark still starts both servers, loads them and writes its report.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from modelstore.runtime import cpu_flags
from service.__main__ import server_implementations

ROOT = Path(__file__).resolve().parents[2]
BF16 = bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def run_smoke(module: str, out: Path, *flags: str) -> dict[str, Any]:
    """`python -m MODULE --smoke --out OUT FLAGS`; its JSON report."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", module, "--smoke", "--out", str(out), *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return dict(json.loads(out.read_text()))


def test_serving_benchmark_smoke_writes_report(tmp_path: Path) -> None:
    report = run_smoke("bench.serving", tmp_path / "serving.json")
    # bf16 is measured where the CPU has bf16 units (this project's machines do).
    precisions = ["fp32", "bf16"] if BF16 else ["fp32"]
    assert list(report["skipped_precisions"]) == ([] if BF16 else ["bf16"])
    for server in [f"ours_{p}" for p in precisions] + ["naive"]:
        rows = report["results"][server]
        assert [row["concurrency"] for row in rows] == [1, 4]
        for row in rows:
            assert row["errors"] == {}
            assert row["ok"] == row["requests"] > 0
            assert row["throughput_rps"] > 0
            assert row["server_rss_mb"] > 0
    # What uvicorn really ran, from each of our servers' start-up line (not the naive app's).
    http, loop = server_implementations("auto", "auto")
    assert report["server_implementations"] == {
        f"ours_{p}": f"http {http}, loop {loop}" for p in precisions
    }
    for precision in precisions:
        assert all(v > 0 for v in report["ceiling_images_per_s_by_batch"][precision].values())
        assert report["summary"][f"ours_{precision}_c4_over_ceiling"] > 0
    if BF16:
        assert report["summary"]["bf16_over_fp32_c4"] > 0
        assert report["summary"]["bf16_p50_over_fp32_p50_c1"] > 0


def test_accuracy_test_split_is_fixed_stratified_and_never_the_search_data(tmp_path: Path) -> None:
    from bench.accuracy.defaults import TEST_FRACTION, test_split

    paths = [tmp_path / f"{kind}_{i}.png" for kind in ("car", "truck") for i in range(50)]
    labels = [0] * 50 + [1] * 50
    held = test_split(paths, labels)
    assert held == test_split(list(reversed(paths)), list(reversed(labels)))  # order-free
    assert len([p for p in held if p.name.startswith("car")]) == round(50 * TEST_FRACTION)
    assert len([p for p in held if p.name.startswith("truck")]) == round(50 * TEST_FRACTION)


def test_precision_candidates_smoke_compares_each_with_fp32(tmp_path: Path) -> None:
    candidates = "tf_fp32,tf_amp_bf16,keras_bf16_policy,openvino_bf16"
    out = tmp_path / "candidates.json"
    report = run_smoke("bench.precision_candidates", out, "--candidates", candidates)
    results = report["results"]
    assert list(results) == candidates.split(",")
    measured = ["tf_fp32", "tf_amp_bf16", "keras_bf16_policy"] if BF16 else ["tf_fp32"]
    for name in measured:
        assert list(results[name]["images_per_s"]) == ["1", "4"]
        assert all(v > 0 for v in results[name]["images_per_s"].values())
        assert report["best_over_tf_fp32"][name] > 0
    assert results["tf_fp32"]["vs_tf_fp32"] == {
        "max_abs_probability_diff": 0.0,
        "top1_agreement": 1.0,
    }
    for name in measured[1:]:
        # The same function in bf16: probabilities within a few hundredths of fp32's.
        assert results[name]["vs_tf_fp32"]["max_abs_probability_diff"] < 0.05
    # OpenVINO is optional: measured where installed, else skipped with the reason.
    openvino = results["openvino_bf16"]
    if not BF16:
        assert "no bf16 units" in openvino["skipped"]
    elif importlib.util.find_spec("openvino") is None:
        assert "pip install openvino" in openvino["skipped"]
    else:
        assert openvino["vs_tf_fp32"]["max_abs_probability_diff"] < 0.05
