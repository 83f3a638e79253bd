"""Connecting to Ray for the `--engine ray` commands, with errors a person can act on.

Ray is an optional extra (`pip install -e ".[ray]"`): nothing imports it until
the Ray engine is asked for. The address comes from `--ray-address`, else the
`RAY_ADDRESS` environment variable, else a local Ray is started in-process.
An address that cannot be reached fails within seconds (exit code 5 from the
CLI), instead of Ray's own long connection retries.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from types import ModuleType
from typing import Any

EXTRA_HINT = 'pip install -e ".[ray]"'
PROBE_TIMEOUT_S = 5.0
# One batch per input block: results (and the progress bar) advance batch by batch, a
# retried block redoes one batch, and the actors share the work evenly. Capped, because
# the driver creates every block up front (a million pictures: blocks of 100).
MAX_BLOCKS = 10_000


class EngineUnavailableError(RuntimeError):
    """The Ray engine cannot run: Ray is not installed, or the cluster cannot be reached."""


def import_ray() -> ModuleType:
    """`ray` with Ray Data, or EngineUnavailableError naming the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise EngineUnavailableError(
            f"--engine ray needs Ray, an optional extra: {EXTRA_HINT} "
            f"(or use --engine local) [{exc}]"
        ) from exc
    return ray


def _probe(address: str) -> None:
    """Open a TCP connection to `host:port` (or `ray://host:port`) or fail within seconds."""
    target = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise EngineUnavailableError(
            f"--ray-address {address!r} is not host:port, ray://host:port, auto or local"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise EngineUnavailableError(
            f"cannot reach the Ray cluster at {address} ({exc}). Check --ray-address or "
            "RAY_ADDRESS (host:6379 for a cluster's head, ray://host:10001 for Ray Client), "
            "start one with `ray start --head`, or use --engine local"
        ) from exc


def connect(address: str | None = None) -> ModuleType:
    """Join the Ray cluster at `address` (see the module docstring); returns `ray`.

    A process already connected (a test's cluster, `ray.init` in a notebook) is
    used as it is. The connection stays open for the rest of the process.
    """
    ray = import_ray()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address and address not in ("auto", "local"):
            _probe(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            where = address or "a new local Ray"
            raise EngineUnavailableError(f"cannot connect to Ray at {where}: {exc}") from exc
    context = ray.data.DataContext.get_current()
    # Our own progress bar reports per file; Ray Data's per-operator bars would interleave.
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    return ray


def node_id() -> str:
    """The Ray node this code runs on (inside a task or an actor)."""
    import ray

    return str(ray.get_runtime_context().get_node_id())


def block_count(rows: int, batch_size: int, actors: int) -> int:
    """How many blocks to cut `rows` input rows into (see MAX_BLOCKS)."""
    return max(1, min(rows, max(math.ceil(rows / batch_size), 2 * actors), MAX_BLOCKS))


def actor_resources(ray: Any, actors: int | None) -> tuple[int, dict[str, Any]]:
    """Pool size and per-actor resources: one GPU per actor when the cluster has GPUs.

    Without GPUs, one actor per node by default: TensorFlow in an actor already
    uses every core of its node for the convolutions, and the decode tasks share them.
    """
    gpus = int(ray.cluster_resources().get("GPU", 0))
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    if gpus:
        return actors or gpus, {"num_gpus": 1, "num_cpus": 1}
    return actors or max(nodes, 1), {"num_cpus": 1}
