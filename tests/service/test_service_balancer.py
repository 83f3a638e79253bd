"""Replicas behind a real balancer: a rolling update under load drops nothing; kill -9 is contained.

Three `python -m service` processes (32 px car_truck, fp32) share one model repository
behind HAProxy on loopback (bench/support/cluster.py), while recorded traffic (bench/support/traffic.py)
goes through HAProxy. Replicas do not poll the repository, so a replica moves to a new
version only when it is restarted, as a pod does in a Kubernetes rolling update.

Needs Debian's haproxy (`apt-get install -y haproxy`, which scripts/test.sh does when run
as root). Skipped, with that reason, when it is missing on a developer's machine; under
CI=true a missing haproxy fails the run. About 2-3 minutes on 2 cores: four replica
start-ups in a row (the first three in parallel), each mostly importing TensorFlow.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.support.cluster import Cluster, haproxy_binary, publish_version
from bench.support.traffic import Traffic, summarize
from tests.conftest import encode

if haproxy_binary() is None:
    reason = "haproxy not found on PATH (apt-get install -y haproxy)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the balancer tests", pytrace=False)
    pytest.skip(reason, allow_module_level=True)

REPLICA_FLAGS = (
    "--precision",
    "fp32",
    # A replica changes version only when it restarts: the roll is what moves the version.
    "--poll-interval-s",
    "0",
    # Answer /readyz 503 after SIGTERM for longer than HAProxy needs to notice (two failed
    # checks 1 s apart in deploy/haproxy.cfg), as docker-compose.yml's replicas do.
    "--drain-delay-s",
    "3",
    # Fewer batch shapes to warm up: a faster start (warm-up runs every size up to this).
    "--max-batch-size",
    "4",
    # Requests wait for company up to 100 ms: more of them are in flight at a SIGTERM or a
    # kill, which is what these tests are about.
    "--max-batch-delay-ms",
    "100",
)
CONCURRENCY = 8


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A 108 KB PNG (noise does not compress): larger than HAProxy's default 16 KB buffer,
    so a retry works only if HAProxy kept the whole request to send again."""
    return encode(np.random.default_rng(7).integers(0, 256, (180, 200, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def cluster(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three replicas serving car_truck version 1, behind HAProxy."""
    root = tmp_path_factory.mktemp("balancer")
    models_dir = root / "models"
    publish_version(model_store / "car_truck" / "1", models_dir)
    with Cluster(models_dir, root, replicas=3, flags=REPLICA_FLAGS) as running:
        yield running


@pytest.mark.timeout(900)
def test_rolling_update_under_load_drops_no_request_and_ends_on_new_version(
    cluster: Cluster, model_store: Path, photo: bytes
) -> None:
    retries_before = int(cluster.backend_stats()["wretr"])
    # ~6 requests/s from 8 clients: a few hundred requests spread over the whole roll.
    with Traffic(cluster.url, photo, CONCURRENCY, max_requests=2000, pause_s=1.2) as traffic:
        traffic.wait_started_after(traffic.started, 20)
        publish_version(model_store / "car_truck" / "2", cluster.models_dir)
        cluster.roll()
        rolled = time.monotonic()
        traffic.wait_started_after(rolled, 40)
    outcomes = traffic.outcomes
    report = summarize(outcomes, traffic.ended - traffic.started)
    retries = int(cluster.backend_stats()["wretr"]) - retries_before
    print(f"rolling update: {report}; HAProxy retried {retries}")

    assert report["requests"] >= 200, report
    failed = [o for o in outcomes if not o.ok]
    assert not failed, f"{len(failed)} failed, e.g. {failed[:3]}"
    # Each replica, asked directly, serves only the new version.
    assert cluster.served_versions("car_truck") == {r.name: [2] for r in cluster.replicas}
    # Through the balancer: both versions answered during the roll, only the new one after.
    assert {o.version for o in outcomes if o.ended < rolled} == {1, 2}
    assert {o.version for o in outcomes if o.started > rolled} == {2}
    # Per replica, the version never went backwards (old process gone before the new one).
    for replica in cluster.replicas:
        versions = [o.version or 0 for o in outcomes if o.replica == replica.name]
        assert versions == sorted(versions) and set(versions) == {1, 2}, replica.name
    # HAProxy took each replica out because its /readyz said 503 (L7STS), while it was
    # still draining with the port open, not when the port closed (L4CON).
    assert {r.name: r.down_checks for r in cluster.replicas} == {
        r.name: ["L7STS"] for r in cluster.replicas
    }
    # The roll did send requests to draining replicas (HAProxy notices a drain 1-2 s
    # late), and HAProxy answered them from another one: the zero failures above are the
    # retries at work, not luck.
    assert retries > 0


@pytest.mark.timeout(300)
def test_kill_9_fails_only_requests_in_flight_and_balancer_stops_sending(
    cluster: Cluster, photo: bytes, record_property: Callable[[str, object], None]
) -> None:
    victim = cluster.replicas[0]
    with Traffic(cluster.url, photo, CONCURRENCY, max_requests=2000, pause_s=0.2) as traffic:
        traffic.wait_started_after(traffic.started, 30)
        on_victim = cluster.wait_in_flight(victim)  # kill it with work in hand
        killed = cluster.kill(victim)
        down = cluster.wait_status(victim, "DOWN", timeout_s=30)
        stats_at_down = cluster.servers()[victim.name]
        traffic.wait_started_after(down, 100)
    stats_after = cluster.servers()[victim.name]
    outcomes = traffic.outcomes
    failed = [o for o in outcomes if not o.ok]
    record_property("kill9_failed", len(failed))
    record_property("kill9_in_flight_on_victim", on_victim)
    print(
        f"kill -9: {len(failed)} failed; {on_victim} were in flight on it (HAProxy retried "
        f"them: the connection closed unanswered); HAProxy took {down - killed:.2f} s to "
        f"mark it DOWN, meanwhile {stats_at_down['wredis']} requests were redispatched from "
        f"it; {summarize(outcomes, traffic.ended - traffic.started)}"
    )
    # Only requests in flight at the kill may fail (HAProxy retries those it can).
    assert all(o.started <= killed <= o.ended for o in failed), failed
    assert len(failed) <= CONCURRENCY
    # Once HAProxy has it DOWN it sends it nothing more, and every request succeeds.
    assert stats_after["status"] == "DOWN"
    assert stats_after["stot"] == stats_at_down["stot"]
    assert stats_after["econ"] == stats_at_down["econ"]
    after_down = [o for o in outcomes if o.started > down]
    assert len(after_down) >= 100 and all(o.ok for o in after_down)
    assert {o.replica for o in after_down} == {r.name for r in cluster.replicas[1:]}
