"""docker-compose.yml and the Prometheus configuration, read the way Compose reads them."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.packaging.deploy_files import REPO, compose_file


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_file()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _volume(entry: str | dict[str, Any]) -> tuple[str, str, bool]:
    """Short (`src:dst[:ro]`) or long volume syntax -> (source, target, read_only)."""
    if isinstance(entry, dict):
        return str(entry["source"]), str(entry["target"]), bool(entry.get("read_only", False))
    source, target, *mode = entry.split(":")
    return source, target, mode == ["ro"]


def _gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])


def test_compose_services_and_profiles(services: dict[str, Any]) -> None:
    assert set(services) == {"api", "trainer", "prometheus", "grafana"}
    assert "profiles" not in services["api"], "the api must start with a plain `compose up`"
    assert services["trainer"]["profiles"] == ["train"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]


def test_compose_api_builds_repo_image_with_gpu_reservation(services: dict[str, Any]) -> None:
    api = services["api"]
    assert api["build"]["context"] == "." and (REPO / "Dockerfile").is_file()
    devices = _gpu_devices(api)
    assert len(devices) == 1
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    assert devices[0].get("count") == "all" or isinstance(devices[0].get("count"), int)


def test_compose_api_serves_models_volume_with_healthcheck(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    api = services["api"]
    assert "models" in compose["volumes"]
    assert ("models", "/models", False) in [_volume(v) for v in api["volumes"]]
    assert api["environment"]["VGGSVC_MODELS_DIR"] == "/models"
    assert api["restart"] == "unless-stopped"
    assert any(port.endswith(":8000") for port in api["ports"])
    test = " ".join(api["healthcheck"]["test"])
    assert api["healthcheck"]["test"][0] == "CMD" and "/healthz" in test
    assert "127.0.0.1:8000" in test


def test_compose_admin_key_is_required_secret() -> None:
    # Read as text: `${VAR:?message}` makes `docker compose` refuse to start without it.
    text = (REPO / "docker-compose.yml").read_text()
    assert re.search(r"VGGSVC_ADMIN_KEY: \$\{VGGSVC_ADMIN_KEY:\?[^}]+\}", text)


def test_compose_trainer_is_one_shot_job_with_quality_gate(services: dict[str, Any]) -> None:
    trainer = services["trainer"]
    assert trainer["build"] == services["api"]["build"]
    assert trainer["image"] == services["api"]["image"]
    assert trainer["restart"] == "no"
    command = trainer["command"]
    assert command[:4] == ["python", "-m", "training", "fit"]
    assert command[command.index("--models-dir") + 1] == "/models"
    assert command[command.index("--data") + 1] == "/data"
    assert float(command[command.index("--min-accuracy") + 1]) > 0
    assert "--promote-if-better" in command
    volumes = [_volume(v) for v in trainer["volumes"]]
    assert ("models", "/models", False) in volumes, "the trainer must publish where the api reads"
    data = [v for v in volumes if v[1] == "/data"]
    assert len(data) == 1 and data[0][2], "the training data must be mounted read-only"
    assert _gpu_devices(trainer), "feature extraction wants the GPU too"


def test_compose_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    for name, service in services.items():
        for source, _, _ in map(_volume, service.get("volumes", [])):
            if not source.startswith((".", "/", "$")):
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"


def test_compose_prometheus_scrapes_api_metrics(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus")
    mounts = {target: source for source, target, _ in map(_volume, prometheus["volumes"])}
    config_path = REPO / mounts["/etc/prometheus/prometheus.yml"]
    assert config_path.is_file(), f"{config_path} is missing"
    config = yaml.safe_load(config_path.read_text())
    jobs = config["scrape_configs"]
    api_jobs = [
        job for job in jobs for static in job["static_configs"] if "api:8000" in static["targets"]
    ]
    assert len(api_jobs) == 1
    assert api_jobs[0].get("metrics_path", "/metrics") == "/metrics"
