"""GET /metrics: the named series exist and move when requests are made."""

from __future__ import annotations

import base64
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from tests.service.conftest import files, make_settings, publish_copy

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(data: Samples, name: str, **labels: str) -> float:
    return data.get((name, frozenset(labels.items())), 0.0)


def total(data: Samples, name: str) -> float:
    return sum(v for (n, _), v in data.items() if n == name)


def test_metrics_series_move_with_requests(client: TestClient, png: bytes) -> None:
    before = samples(client)
    ok = client.post("/predict?model=car_truck", files=files(("a.png", png), ("b.png", png)))
    assert ok.status_code == 200
    bad = client.post("/predict?model=car_truck", content=b"not an image")
    assert bad.status_code == 415
    after = samples(client)

    labels = {"endpoint": "/predict", "model": "car_truck"}
    for status in ("200", "415"):
        name = "vggsvc_requests_total"
        assert (
            value(after, name, **labels, status=status)
            == value(before, name, **labels, status=status) + 1
        )
    for name in (
        "vggsvc_request_duration_seconds_count",
        "vggsvc_decode_duration_seconds_count",
        "vggsvc_queue_wait_seconds_count",
        "vggsvc_inference_duration_seconds_count",
        "vggsvc_batch_size_count",
        "vggsvc_model_calls_total",
        "vggsvc_predictions_total",
        "vggsvc_prediction_confidence_count",
    ):
        assert total(after, name) > total(before, name), name
    assert total(after, "vggsvc_predictions_total") == total(before, "vggsvc_predictions_total") + 2
    assert value(after, "vggsvc_model_version_loaded", model="car_truck", version="1") == 1
    assert ("vggsvc_queue_depth", frozenset({("model", "car_truck"), ("version", "1")})) in after
    assert ("vggsvc_requests_in_flight", frozenset()) in after


def test_metrics_unknown_model_names_share_one_label(client: TestClient) -> None:
    labels = {"endpoint": "/predict", "model": "other", "status": "400"}
    before = samples(client)
    for i in range(3):
        assert client.post(f"/predict?model=junk{i}", content=b"").status_code == 400
    after = samples(client)
    models = {
        dict(labels).get("model") for (name, labels) in after if name == "vggsvc_requests_total"
    }
    assert not any(m and m.startswith("junk") for m in models)
    # The registry lives as long as the session's app: count this test's requests only.
    assert (
        value(after, "vggsvc_requests_total", **labels)
        == value(before, "vggsvc_requests_total", **labels) + 3
    )


def series(data: Samples, name: str, **labels: str) -> bool:
    return (name, frozenset(labels.items())) in data


def value_with(data: Samples, name: str, **labels: str) -> float:
    """Sum of the `name` samples carrying at least `labels` (others, e.g. precision, vary)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in data.items() if n == name and wanted <= have)


def test_metrics_model_version_loaded_removed_when_version_retired(
    fresh_dir: Path, model_store: Path
) -> None:
    loaded = "vggsvc_model_version_loaded"
    with TestClient(create_app(make_settings(fresh_dir))) as test_client:
        assert value(samples(test_client), loaded, model="car_truck", version="1") == 1
        publish_copy(model_store, fresh_dir, "car_truck", 2, 2)
        repo = test_client.app.state.service.repository  # type: ignore[attr-defined]
        assert repo.reload() == {"car_truck": [2]}
        after = samples(test_client)
    assert value(after, loaded, model="car_truck", version="2") == 1
    # Gone, not 0: a dashboard summing the series must not count a released version.
    assert not series(after, loaded, model="car_truck", version="1")


def test_metrics_pinned_and_latest_batchers_have_their_own_series(
    fresh_dir: Path, model_store: Path, png: bytes
) -> None:
    publish_copy(model_store, fresh_dir, "car_truck", 2, 2)
    settings = make_settings(fresh_dir, pinned_versions="car_truck:1")
    body = {"instances": [{"b64": base64.b64encode(png).decode()}]}
    with TestClient(create_app(settings)) as test_client:
        before = samples(test_client)
        for version, requests in (("1", 2), ("2", 1)):
            for _ in range(requests):
                url = f"/v1/models/car_truck/versions/{version}:predict"
                assert test_client.post(url, json=body).status_code == 200
        after = samples(test_client)
    for version, calls in (("1", 2), ("2", 1)):
        labels = {"model": "car_truck", "version": version}
        for name in (
            "vggsvc_model_calls_total",
            "vggsvc_batch_size_count",
            "vggsvc_inference_duration_seconds_count",
            "vggsvc_queue_wait_seconds_count",
        ):
            assert (
                value_with(after, name, **labels) - value_with(before, name, **labels) == calls
            ), (
                name,
                version,
            )
        assert series(after, "vggsvc_queue_depth", **labels)
        assert value(after, "vggsvc_model_version_loaded", **labels) == 1
