"""What an operator looks at: /docs offline, process metrics, JSON logs, quiet probes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bench.support.harness import running_service
from service.logs import JsonFormatter, ProbeFilter
from tests.service.test_service_metrics import samples


def test_docs_page_and_assets_are_served_locally(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "https://" not in page.text
    assert "/static-offline-docs/swagger-ui-bundle.js" in page.text
    bundle = client.get("/static-offline-docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    assert client.get("/redoc").status_code == 200


def test_metrics_have_process_and_gc_collectors(client: TestClient) -> None:
    metrics = samples(client)
    names = {name for name, _ in metrics}
    assert "process_resident_memory_bytes" in names
    assert "python_info" in names
    assert any(name.startswith("python_gc_") for name in names)
    rss = next(v for (n, _), v in metrics.items() if n == "process_resident_memory_bytes")
    assert rss > 50 * 2**20  # a Python process with TensorFlow loaded


def test_docs_requests_are_not_counted_as_unmatched(client: TestClient) -> None:
    def count(endpoint: str) -> float:
        metrics = samples(client)
        return sum(
            v
            for (n, labels), v in metrics.items()
            if n == "vggsvc_requests_total" and ("endpoint", endpoint) in labels
        )

    before = {e: count(e) for e in ("/docs", "/openapi.json", "unmatched")}
    client.get("/docs")
    client.get("/openapi.json")
    client.get("/no/such/path")
    assert count("/docs") == before["/docs"] + 1
    assert count("/openapi.json") == before["/openapi.json"] + 1
    assert count("unmatched") == before["unmatched"] + 1


def access_record(path: str) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )


def test_json_formatter_writes_one_object_with_access_fields() -> None:
    line = JsonFormatter().format(access_record("/predict?model=car_truck"))
    entry = json.loads(line)
    assert entry["level"] == "info" and entry["logger"] == "uvicorn.access"
    assert entry["path"] == "/predict?model=car_truck" and entry["status"] == 200
    assert "GET /predict" in entry["message"]


@pytest.mark.parametrize(
    ("path", "kept"),
    [("/healthz", False), ("/readyz", False), ("/metrics", False), ("/predict", True)],
)
def test_probe_filter_drops_probes_only(path: str, kept: bool) -> None:
    assert ProbeFilter().filter(access_record(path)) is kept


@pytest.mark.timeout(180)
def test_process_json_logs_without_probe_lines(fresh_dir: Path, png: bytes, tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    flags = ("--log-format", "json", "--poll-interval-s", "0", "--precision", "fp32")
    with running_service(fresh_dir, *flags, log=log) as (url, _):
        assert httpx.post(f"{url}/predict", content=png, timeout=30).status_code == 200
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    ours = [line for line in log.read_text().splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in ours]  # every line we write parses
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert [e["path"] for e in access if e["path"] == "/predict"] == ["/predict"]
    assert not [e for e in access if e["path"] in ("/healthz", "/readyz")]
    assert any(e["logger"].startswith("service") for e in entries)
