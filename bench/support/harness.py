"""What tests and benchmarks share to run the real thing: ports, tiny models, server processes.

    from bench.support.harness import export_tiny, free_port, running_service

One copy of each helper, used by `tests/` and `bench/` alike (bench may import
anything; tests import it from here rather than keeping copies).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def export_tiny(
    models_dir: Path,
    name: str = "car_truck",
    labels: list[str] | None = None,
    size: int = 32,
    seed: int = 0,
    width: int = 8,
    head: str = "gap",
    head_seed: int | None = None,
    flip_tta: bool = False,
    base_layer: str = "block5_pool",
    **fields: Any,
) -> Path:
    """Publish a VGG16 classifier with random weights (real graph, real export); its path.

    `seed` makes the base (and, unless `head_seed` is given, the head): exports with
    the same `seed` and different `head_seed`s are different heads on one base.
    """
    import keras

    from training.export import publish_classifier
    from training.model import build_base, build_classifier, build_head, truncate_base

    labels = labels or ["car", "truck"]
    full, weights = build_base("none", size, seed=seed)
    base = truncate_base(full, base_layer)
    if head_seed is not None:
        keras.utils.set_random_seed(head_seed)
    top = build_head(base.output_shape[1:], len(labels), kind=head, width=width, dropout=0.0)
    model = build_classifier(base, top, size, flip_tta=flip_tta)
    draft = publish_classifier(model, models_dir, name, labels, size, weights.to_dict(), **fields)
    return draft.final_path


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 60.0, every_s: float = 0.02
) -> bool:
    """Poll `condition` until it holds (True) or `timeout_s` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return condition()


def metric(url: str, sample: str) -> float | None:
    """The value of one Prometheus sample of a running service, e.g.
    `metric(url, 'vggsvc_queue_depth{model="car_truck",version="1"}')`; None when absent."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_ready(url: str, process: subprocess.Popen[Any], timeout_s: float = 180.0) -> None:
    """Poll `url`/readyz until 200; RuntimeError if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with status {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"the service was not ready within {timeout_s:g} s")


def service_command(models_dir: Path, port: int, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "service",
        "--models-dir",
        str(models_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *flags,
    ]


def start_service(
    models_dir: Path,
    port: int,
    *flags: str,
    log: Path,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Spawn `python -m service` on `port` (not waiting for it); output appended to `log`."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with open(log, "ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            service_command(models_dir, port, *flags),
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_service(
    process: subprocess.Popen[Any], timeout_s: float = 60.0, signalled: bool = False
) -> int:
    """SIGTERM (a drain; `signalled`: already sent), then SIGKILL if it outlasts
    `timeout_s`; the exit status. (A second SIGTERM would end the drain at once.)"""
    if process.poll() is None:
        if not signalled:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@contextlib.contextmanager
def running_service(
    models_dir: Path,
    *flags: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 180.0,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m service` on a free loopback port, ready; SIGTERM (then kill) on exit.

    Yields `(base_url, process)`; the process's output goes to `log`.
    """
    port = free_port()
    log.write_bytes(b"")
    process = start_service(models_dir, port, *flags, log=log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(url, process, timeout_s)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{log.read_text(errors='replace')[-3000:]}") from exc
        yield url, process
    finally:
        stop_service(process)
