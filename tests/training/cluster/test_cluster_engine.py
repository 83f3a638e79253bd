"""The Ray engine on a real multi-node Ray cluster on one box (head + 2 worker nodes, 1 CPU each).

One cluster for the whole module (starting one costs ~10 s). Skipped only where
Ray is not installed and CI is not set: under CI the import fails loudly instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.training.conftest import SIZE, fit_tiny
from training.cli import EXIT_ENGINE, main
from training.demo_data import generate
from training.engine import LocalFeatureEngine
from training.features.extractor import FeatureExtractor
from training.fit import FitResult
from training.model import build_base
from training.predict import predict_to_stream

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None and not os.environ.get("CI"),
        reason='Ray is not installed (pip install -e ".[ray]"); CI always runs these',
    ),
    pytest.mark.timeout(300),
]

RAY = {"engine": "ray", "ray_actors": 2, "feature_batch_size": 4}
NODE_ARGS = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head and two worker nodes, 1 CPU each; this process is connected to it as the driver."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args=NODE_ARGS)
    for _ in range(2):
        c.add_node(**NODE_ARGS)
    c.wait_for_nodes()
    ray.init(address=c.address)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo set plus two files no engine can read (as in test_fit)."""
    out = tmp_path_factory.mktemp("raydata") / "data"
    generate(out, train=12, valid=6, size=SIZE, seed=0)
    (out / "train" / "car" / "notes.txt").write_text("not a picture")
    good = (out / "train" / "truck" / "truck_00000.png").read_bytes()
    (out / "train" / "truck" / "cut.png").write_bytes(good[: len(good) // 2])
    return out


def _fit_capturing_stderr(data: Path, work: Path, **kw: Any) -> tuple[FitResult, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        result = fit_tiny(data, work, **kw)
    return result, err.getvalue()


@pytest.fixture(scope="module")
def ray_fit(cluster: Any, data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("rayfit")
    return (*_fit_capturing_stderr(data, work, **RAY), work)


@pytest.fixture(scope="module")
def local_fit(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("localfit")
    return (*_fit_capturing_stderr(data, work), work)


def _store_files(cache: Path) -> dict[str, Path]:
    return {str(p.relative_to(cache)): p for p in cache.rglob("*.npy")}


def test_ray_fit_runs_on_two_nodes_and_records_them(ray_fit: Any, cluster: Any) -> None:
    import ray

    result, _, _ = ray_fit
    engine = result.metadata.training["engine"]
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert engine["name"] == "ray"
    assert engine["nodes"] >= 2
    assert len(set(engine["node_ids"])) == engine["nodes"]
    assert set(engine["node_ids"]) <= alive
    assert result.metadata.training["hyperparameters"]["engine"] == "ray"


def test_ray_features_equal_local_engine_features(ray_fit: Any, local_fit: Any) -> None:
    ray_result, _, ray_work = ray_fit
    local_result, _, local_work = local_fit
    ray_files, local_files = _store_files(ray_work / "c"), _store_files(local_work / "c")
    assert len(ray_files) == 36  # 24 train + 12 valid readable pictures, one entry each
    assert set(ray_files) == set(local_files)
    worst = max(
        float(np.abs(np.load(p) - np.load(local_files[k])).max()) for k, p in ray_files.items()
    )
    assert worst <= 1e-5
    assert ray_result.images_through_base == local_result.images_through_base == 36


def test_ray_trained_model_predicts_like_local_one(
    ray_fit: Any, local_fit: Any, data: Path
) -> None:
    from imaging import load_image

    pictures = np.stack([load_image(p, SIZE) for p in sorted((data / "valid").rglob("*.png"))])
    ray_probs = np.asarray(ray_fit[0].model.predict(pictures, verbose=0))
    local_probs = np.asarray(local_fit[0].model.predict(pictures, verbose=0))
    assert np.abs(ray_probs - local_probs).max() < 1e-4
    assert (ray_probs.argmax(1) == local_probs.argmax(1)).all()
    assert ray_fit[0].metrics["accuracy"] == local_fit[0].metrics["accuracy"]


def test_ray_skips_unreadable_files_as_local_engine_does(ray_fit: Any, local_fit: Any) -> None:
    (ray_result, ray_err, _), (local_result, local_err, _) = ray_fit, local_fit
    ray_training, local_training = (
        ray_result.metadata.training,
        local_result.metadata.training,
    )
    assert ray_training["skipped_files"]["count"] == 2
    assert ray_training["skipped_files"] == local_training["skipped_files"]
    assert ray_training["class_counts"] == local_training["class_counts"]
    assert ray_training["data_sha256"] == local_training["data_sha256"]

    def warning(err: str) -> list[str]:
        lines = err.splitlines()
        start = lines.index(next(line for line in lines if line.startswith("warning: skipped")))
        return lines[start : start + 3]

    assert warning(ray_err) == warning(local_err)
    assert "cut.png" in "\n".join(warning(ray_err))


def _tiny_extractor(cache: Path) -> FeatureExtractor:
    base, info = build_base("none", SIZE, seed=0)  # the weights fit_tiny's runs used
    return FeatureExtractor(base, info, SIZE, cache, progress=False)


def test_ray_second_run_computes_no_feature(ray_fit: Any, data: Path) -> None:
    _, _, work = ray_fit
    again = fit_tiny(data, work, **RAY)
    assert again.images_through_base == 0
    assert again.metadata.training["images_through_base"] == 0
    assert again.metadata.training["skipped_files"]["count"] == 2


def test_ray_and_local_engines_hit_each_others_features(
    ray_fit: Any, local_fit: Any, data: Path
) -> None:
    from training.cluster.engine import RayFeatureEngine

    paths = sorted((data / "valid").rglob("*.png"))
    on_ray_store = _tiny_extractor(ray_fit[2] / "c")
    assert len(LocalFeatureEngine().extract(on_ray_store, paths).paths) == 12
    assert on_ray_store.images_through_base == 0
    on_local_store = _tiny_extractor(local_fit[2] / "c")
    feats = RayFeatureEngine(actors=2, batch_size=4, progress=False).extract(on_local_store, paths)
    assert len(feats.paths) == 12
    assert on_local_store.images_through_base == 0


def test_ray_actors_run_the_base_in_the_precision_of_the_store_key(
    ray_fit: Any, data: Path, tmp_path: Path
) -> None:
    from modelstore.runtime import PrecisionUnavailableError, cpu_flags, resolve_precision
    from training.cluster.engine import RayFeatureEngine

    try:  # only asks; the test process keeps its own (fp32) settings
        resolve_precision("bf16", None, cpu_flags())
    except PrecisionUnavailableError as exc:
        pytest.skip(f"this CPU has no bf16 units: {exc}")
    paths = sorted((data / "valid").rglob("*.png"))
    base, info = build_base("none", SIZE, seed=0)
    bf16 = FeatureExtractor(base, info, SIZE, tmp_path / "c", progress=False, precision="bf16")
    got = RayFeatureEngine(actors=2, batch_size=4, progress=False).extract(bf16, paths)
    fp32 = LocalFeatureEngine().extract(_tiny_extractor(ray_fit[2] / "c"), paths)  # all hits
    assert bf16.store.key_parts["precision"] == "bf16" and "-bf16-" in bf16.store.namespace
    diff = np.abs(got.values - fp32.values)
    assert diff.max() > 1e-4  # really computed in bf16, not fp32 filed under a bf16 key
    assert diff.max() < 0.05 * np.abs(fp32.values).max()


def test_ray_fit_records_the_precision_resolved_on_the_workers(
    ray_fit: Any, local_fit: Any, cluster: Any
) -> None:
    import ray

    recorded = ray_fit[0].metadata.training["precision"]
    assert (recorded["requested"], recorded["effective"]) == ("fp32", "fp32")
    assert recorded["reason"].startswith("resolved on the Ray workers (probed on node ")
    probed = recorded["reason"].split("node ", 1)[1].split(")", 1)[0]
    assert any(n["NodeID"].startswith(probed) for n in ray.nodes() if n["Alive"])
    assert ray_fit[0].metadata.precision == "fp32"
    assert "Ray" not in local_fit[0].metadata.training["precision"]["reason"]


def test_ray_fit_auto_computes_and_records_features_in_the_workers_precision(
    cluster: Any, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelstore.runtime as runtime
    from modelstore.runtime import PrecisionUnavailableError

    try:  # the workers are this box's CPU: auto gives bf16 there only with bf16 units
        runtime.resolve_precision("bf16", None, runtime.cpu_flags())
    except PrecisionUnavailableError as exc:
        pytest.skip(f"this CPU has no bf16 units: {exc}")
    # A driver without bf16 units (this process only; Ray's workers read the real flags).
    monkeypatch.setattr(runtime, "cpu_flags", lambda *args: set())
    result = fit_tiny(data, tmp_path, **{**RAY, "precision": "auto"})
    current = runtime.current_runtime()
    assert current is not None and current.precision.effective == "fp32"  # the driver's
    recorded = result.metadata.training["precision"]
    assert (recorded["requested"], recorded["effective"]) == ("auto", "bf16")
    assert recorded["reason"].startswith("resolved on the Ray workers")
    assert result.metadata.precision == "bf16"
    (key,) = (tmp_path / "c").glob("*/key.json")
    assert json.loads(key.read_text())["parts"]["precision"] == "bf16"
    assert result.images_through_base == 36  # computed by the actors, in bf16


def test_ray_engine_precision_is_what_a_worker_resolves_not_the_driver(cluster: Any) -> None:
    from modelstore.runtime import Precision, cpu_flags, resolve_precision
    from training.cluster.engine import RayFeatureEngine

    engine = RayFeatureEngine(actors=2, batch_size=4, progress=False)
    # A driver answer no CPU worker gives under auto: the engine must not pass it on.
    driver = Precision("auto", "fp16", "a GPU driver (test)")
    got = engine.feature_precision("auto", driver)
    # The workers are this box's processes: same CPU, no GPU.
    assert got.effective == resolve_precision("auto", None, cpu_flags()).effective
    assert got.requested == "auto"
    assert got.reason.startswith("resolved on the Ray workers")
    assert engine.feature_precision("auto", driver) is got  # one probe per engine and request


def test_ray_fit_with_a_precision_the_workers_cannot_run_fails_before_any_work(
    cluster: Any, data: Path, tmp_path: Path
) -> None:
    from modelstore.runtime import PrecisionUnavailableError

    # fp16 needs a GPU: neither this driver nor the CPU workers have one. The driver
    # falls back to fp32 for the head; the workers' probe must refuse.
    with pytest.raises(PrecisionUnavailableError) as caught:
        fit_tiny(data, tmp_path, **{**RAY, "precision": "fp16"})
    message = str(caught.value)
    assert "fp16 cannot run on the Ray workers' hardware (no GPU)" in message
    assert "they can run fp32" in message
    assert not list((tmp_path / "c").rglob("*.npy"))  # no feature computed
    assert not (tmp_path / "models").exists()


def test_worker_precision_gpu_workers_get_fp16_under_auto_whatever_the_cpu() -> None:
    from training.cluster.engine import worker_precision

    # The CPU flags of this box (AVX512-BF16): a driver here resolves auto to bf16.
    got = worker_precision("auto", (8, 0), {"avx512f", "avx512_bf16"})
    assert (got.requested, got.effective) == ("auto", "fp16")
    assert worker_precision("auto", (6, 1), {"avx512_bf16"}).effective == "fp32"
    assert worker_precision("auto", None, {"avx512_bf16"}).effective == "bf16"


def test_worker_precision_explicit_unsupported_names_the_workers_and_what_they_run() -> None:
    from modelstore.runtime import PrecisionUnavailableError
    from training.cluster.engine import worker_precision

    with pytest.raises(PrecisionUnavailableError) as old_gpu:
        worker_precision("fp16", (6, 1), {"avx512_bf16"})
    assert "Ray workers' hardware (a GPU of compute capability 6.1)" in str(old_gpu.value)
    assert "they can run fp32 [" in str(old_gpu.value)
    with pytest.raises(PrecisionUnavailableError) as bf16_on_gpu:
        worker_precision("bf16", (8, 0), {"avx512_bf16"})
    assert "they can run fp32 or fp16 [" in str(bf16_on_gpu.value)


def test_ray_worker_node_removed_mid_run_still_stores_every_feature_once(
    cluster: Any, tmp_path: Path
) -> None:
    from training.cluster.engine import RayFeatureEngine

    generate(tmp_path / "many", train=24, valid=0, size=SIZE, seed=5)
    paths = sorted((tmp_path / "many").rglob("*.png"))  # 48 pictures, one per batch
    extractor = _tiny_extractor(tmp_path / "store")
    cluster.add_node(**NODE_ARGS)  # a spare, so the cluster keeps head + 2 workers after
    cluster.wait_for_nodes()
    engine = RayFeatureEngine(actors=2, batch_size=1, progress=False)
    workers = {n.node_id: n for n in cluster.worker_nodes}
    removed: dict[str, Any] = {}

    def remove_a_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not removed:
            busy = [n for n in engine.node_ids if n in workers]  # a worker that did work
            if busy:
                done = len(list((tmp_path / "store").rglob("*.npy")))
                cluster.remove_node(workers[busy[0]])
                removed.update(node=busy[0], stored_before=done)
            time.sleep(0.02)

    killer = threading.Thread(target=remove_a_busy_worker)
    killer.start()
    feats = engine.extract(extractor, paths)
    killer.join()

    assert removed, "no worker node was removed during the run"
    assert removed["stored_before"] < len(paths)  # it really was mid-run
    assert feats.paths == paths and not feats.errors
    stored = list((tmp_path / "store").rglob("*.npy"))
    assert len(stored) == len({p.name for p in stored}) == len(paths)
    assert all(np.load(p).shape == extractor.feature_shape for p in stored)
    expected = LocalFeatureEngine().extract(_tiny_extractor(tmp_path / "local"), paths)
    assert float(np.abs(feats.values - expected.values).max()) <= 1e-5


def test_ray_predict_writes_local_records_into_shards(
    ray_fit: Any, data: Path, tmp_path: Path
) -> None:
    result, _, _ = ray_fit
    broken = str(data / "train" / "car" / "notes.txt")
    out = tmp_path / "scores"
    # The folder as a storage URI (a pyarrow filesystem; s3:// and gs:// list the same way).
    inputs = [f"file://{data / 'valid'}", broken]
    args = ["--engine", "ray", "--ray-actors", "2", "--output", str(out), "--shard-size", "5"]
    args += ["--precision", "fp32"]  # the same numbers on both sides, whatever the CPU
    rc = main(
        ["predict", "--model", str(result.path), *args, "--batch-size", "4", "--quiet", *inputs]
    )
    assert rc == 0
    shards = sorted(out.glob("part-*.jsonl"))
    ray_lines = [json.loads(line) for s in shards for line in s.read_text().splitlines()]
    assert len(shards) == 3 and all(len(s.read_text().splitlines()) <= 5 for s in shards)
    local = io.StringIO()
    predict_to_stream(
        result.path, [data / "valid", Path(broken)], local, progress=False, precision="fp32"
    )
    local_lines = [json.loads(line) for line in local.getvalue().splitlines()]
    by_path = {r["path"].removeprefix("file://"): r for r in ray_lines}
    assert len(by_path) == len(ray_lines) == len(local_lines) == 13
    for want in local_lines:
        got = dict(by_path[want["path"]], path=want["path"])
        assert got.keys() == want.keys()
        if "error" in want:
            assert got == want
        else:
            assert (got["label"], got["class_id"]) == (want["label"], want["class_id"])
            assert got["scores"] == pytest.approx(want["scores"], abs=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["scored"], summary["failed"]) == (12, 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ray_unreachable_address_fails_fast_with_exit_code_5(data: Path, tmp_path: Path) -> None:
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    cmd = [sys.executable, "-m", "training", "fit", "--data", str(data), "--name", "m"]
    cmd += ["--models-dir", str(tmp_path / "models"), "--base-weights", "none"]
    cmd += ["--image-size", "32", "--engine", "ray", "--ray-address", address]
    env = {**os.environ, "RAY_ADDRESS": ""}
    # Ray's own retries would take minutes; the probe answers within seconds.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env)
    assert proc.returncode == EXIT_ENGINE == 5
    assert f"cannot reach the Ray cluster at {address}" in proc.stderr
    assert not (tmp_path / "models").exists()
