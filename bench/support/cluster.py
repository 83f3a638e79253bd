"""Service replicas behind HAProxy on loopback: the one-box stand-in for a Deployment and its Service.

    from bench.support.cluster import Cluster, publish_version

    with Cluster(models_dir, workdir, replicas=3, flags=("--precision", "fp32")) as cluster:
        cluster.url                  # HAProxy's frontend: send requests here
        publish_version(store / "car_truck" / "2", models_dir)
        cluster.roll()               # SIGTERM, drain, exit, start, ready, UP: one at a time
        cluster.kill(cluster.replicas[0])   # kill -9

N `python -m service` processes share one model repository, each on its own loopback port.
HAProxy (Debian's `haproxy`) runs in the foreground with deploy/haproxy.cfg, the compose
profile's configuration, rendered for loopback (`haproxy_config`): health checks on
`/readyz`, and L7 retries so that a request a draining replica refuses (503), a connection
refused by a restarting one, or a connection cut by a killed one is sent again to another
replica. HAProxy adds `X-Served-By: <replica>` to every answer, and its statistics (CSV)
say which replicas it considers UP. Used by
tests/service/test_service_balancer.py and bench/balancer.py.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from bench.support.harness import ROOT, free_port, start_service, stop_service, wait_ready
from modelstore import METADATA_FILE, reserve_version

BACKEND = "replicas"  # the backend's name in deploy/haproxy.cfg
SERVED_BY = "X-Served-By"  # set by HAProxy on every answer: which replica it came from
SHIPPED_CONFIG = ROOT / "deploy" / "haproxy.cfg"


def haproxy_binary() -> str | None:
    """HAProxy's path: on PATH, or where Debian puts it (/usr/sbin, off a user's PATH)."""
    return shutil.which("haproxy", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))


def haproxy_config(
    port: int,
    stats_port: int,
    servers: Sequence[tuple[str, int]],
    shipped: Path = SHIPPED_CONFIG,
) -> str:
    """deploy/haproxy.cfg for loopback: frontend on 127.0.0.1:`port`, statistics on
    `stats_port`, and one `server` per (name, port) instead of the DNS `server-template`.

    Everything else (retries, health checks, buffers, timeouts) stays as shipped, so what
    the tests prove is the policy the compose profile runs.
    """
    local = {
        "bind :8080": [f"bind 127.0.0.1:{port}"],
        "bind :8404": [f"bind 127.0.0.1:{stats_port}"],
        "server-template": [f"server {name} 127.0.0.1:{number}" for name, number in servers],
    }
    found = dict.fromkeys(local, 0)
    lines = []
    for line in shipped.read_text().splitlines():
        key = next(
            (k for k in local if line.strip() == k or line.strip().startswith(k + " ")), None
        )
        if key is None or line.strip().startswith("#"):
            lines.append(line)
            continue
        found[key] += 1
        indent = line[: len(line) - len(line.lstrip())]
        lines += [indent + replacement for replacement in local[key]]
    if any(count != 1 for count in found.values()):
        raise ValueError(f"{shipped}: expected one line each for {found}")
    return "\n".join(lines) + "\n"


def publish_version(version_dir: Path, models_dir: Path) -> Path:
    """Copy a published version folder into `models_dir` as that model's next version.

    Goes through `modelstore.reserve_version` (a draft renamed into place under the
    publish lock), as training publishes; the copy's metadata must carry the number it
    gets, so a replica reports the version it really loaded.
    """
    metadata = json.loads((version_dir / METADATA_FILE).read_text())
    with reserve_version(models_dir, metadata["name"]) as draft:
        if draft.version != metadata["version"]:
            raise ValueError(
                f"{version_dir} is version {metadata['version']} of {metadata['name']}, "
                f"but the next version in {models_dir} is {draft.version}"
            )
        shutil.copytree(version_dir, draft.path, dirs_exist_ok=True)
    return draft.final_path


@dataclass
class Replica:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    events: list[tuple[str, float]] = field(default_factory=list)  # (what, time.monotonic())
    # HAProxy's check status each time it took this replica out: L7STS = /readyz said 503
    # (a drain seen while the port was open), L4CON = connection refused, L4TOUT = timeout.
    down_checks: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Cluster:
    """N replicas of `python -m service` over one model repository, behind HAProxy."""

    def __init__(
        self,
        models_dir: Path,
        workdir: Path,
        replicas: int = 3,
        flags: Sequence[str] = (),
        env: dict[str, str] | None = None,
        ready_timeout_s: float = 300.0,
    ) -> None:
        self.models_dir = models_dir
        self.workdir = workdir
        self.flags = tuple(flags)
        self.env = env
        self.ready_timeout_s = ready_timeout_s
        self.port = free_port()
        self.stats_port = free_port()
        self.replicas = [
            Replica(f"r{i}", free_port(), workdir / f"replica-r{i}.log") for i in range(replicas)
        ]
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.haproxy_log = workdir / "haproxy.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every replica at once (each spends most of its start-up importing
        TensorFlow), wait until all are ready, then HAProxy, until it sees all of them UP."""
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("haproxy is not installed (apt-get install -y haproxy)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for replica in self.replicas:
            self._spawn(replica)
        for replica in self.replicas:
            self._wait_ready(replica)
        config = self.workdir / "haproxy.cfg"
        servers = [(replica.name, replica.port) for replica in self.replicas]
        config.write_text(haproxy_config(self.port, self.stats_port, servers))
        checked = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True)
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy refused {config}:\n{checked.stderr.decode()}")
        with open(self.haproxy_log, "ab") as out:
            self.haproxy = subprocess.Popen(
                [binary, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        for replica in self.replicas:
            self.wait_status(replica, "UP")

    def stop(self) -> None:
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(timeout=30)
        running = [r.process for r in self.replicas if r.process and r.process.poll() is None]
        for process in running:  # all drains at once, then wait for each
            process.send_signal(signal.SIGTERM)
        for process in running:
            stop_service(process, signalled=True)

    def _spawn(self, replica: Replica) -> None:
        replica.process = start_service(
            self.models_dir, replica.port, *self.flags, log=replica.log, env=self.env
        )
        replica.events.append(("started", time.monotonic()))

    def _wait_ready(self, replica: Replica) -> None:
        assert replica.process is not None
        try:
            wait_ready(replica.url, replica.process, self.ready_timeout_s)
        except RuntimeError as exc:
            tail = replica.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"replica {replica.name}: {exc}:\n{tail}") from exc
        replica.events.append(("ready", time.monotonic()))

    def _stats(self) -> list[dict[str, str]]:
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5).text
        return [row for row in csv.DictReader(io.StringIO(text.removeprefix("# ")))]

    def servers(self) -> dict[str, dict[str, str]]:
        """HAProxy's statistics row of each replica (`status` UP/DOWN, `stot` requests
        sent, `econ` connection errors, `wretr` retries, `wredis` redispatches, ...)."""
        return {
            row["svname"]: row
            for row in self._stats()
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def backend_stats(self) -> dict[str, str]:
        """HAProxy's statistics row of the whole backend (retries, redispatches, errors)."""
        rows = self._stats()
        return next(r for r in rows if r["pxname"] == BACKEND and r["svname"] == "BACKEND")

    def wait_status(self, replica: Replica, status: str, timeout_s: float = 60.0) -> float:
        """Wait until HAProxy reports `replica` as `status` (UP, DOWN); the time it did."""
        deadline = time.monotonic() + timeout_s
        seen = None
        while time.monotonic() < deadline:
            if self.haproxy is None or self.haproxy.poll() is not None:
                raise RuntimeError(f"haproxy is not running; see {self.haproxy_log}")
            with contextlib.suppress(httpx.HTTPError):
                row = self.servers()[replica.name]
                seen = row["status"]
                # "UP 1/2" and "DOWN 1/2" are transitions still under way.
                if seen == status:
                    now = time.monotonic()
                    replica.events.append((f"haproxy {status}", now))
                    if status == "DOWN":
                        replica.down_checks.append(row["check_status"])
                    return now
            time.sleep(0.05)
        raise RuntimeError(
            f"haproxy saw {replica.name} as {seen!r}, not {status}, for {timeout_s} s"
        )

    def restart(self, replica: Replica, graceful_timeout_s: float = 60.0) -> None:
        """SIGTERM, wait until HAProxy has it DOWN and for a clean exit, start it again on
        the same port, wait until it is ready and HAProxy has it UP again."""
        assert replica.process is not None
        replica.events.append(("SIGTERM", time.monotonic()))
        replica.process.send_signal(signal.SIGTERM)
        self.wait_status(replica, "DOWN", graceful_timeout_s)
        status = stop_service(replica.process, graceful_timeout_s, signalled=True)
        replica.events.append(("exited", time.monotonic()))
        if status != 0:
            raise RuntimeError(f"replica {replica.name} exited with {status}; see {replica.log}")
        self._spawn(replica)
        self._wait_ready(replica)
        self.wait_status(replica, "UP")

    def roll(self) -> None:
        """Restart every replica, one at a time (a Deployment's maxUnavailable: 1)."""
        for replica in self.replicas:
            self.restart(replica)

    def wait_in_flight(self, replica: Replica, timeout_s: float = 30.0) -> int:
        """Wait until HAProxy has a request in flight on `replica`; how many it has."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            current = int(self.servers()[replica.name]["scur"])
            if current > 0:
                return current
            time.sleep(0.005)
        raise RuntimeError(f"no request went to {replica.name} within {timeout_s} s")

    def kill(self, replica: Replica) -> float:
        """kill -9: no drain, connections cut; the time it was sent."""
        assert replica.process is not None
        replica.process.kill()
        killed = time.monotonic()
        replica.events.append(("SIGKILL", killed))
        replica.process.wait()
        return killed

    def served_versions(self, model: str) -> dict[str, list[int]]:
        """Each replica's loaded versions of `model`, asked directly (not through HAProxy)."""
        versions = {}
        for replica in self.replicas:
            body: dict[str, Any] = httpx.get(f"{replica.url}/v1/models/{model}", timeout=10).json()
            versions[replica.name] = sorted(
                int(entry["version"]) for entry in body["model_version_status"]
            )
        return versions
