"""docker-compose.yml and the Prometheus configuration, read the way Compose reads them."""

from __future__ import annotations

import http.server
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy_files import (
    REPO,
    compose_file,
    dockerfile_instructions,
    module_commands,
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_file()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _volume(entry: str | dict[str, Any]) -> tuple[str, str, bool]:
    """Short (`src:dst[:ro]`, src may be `${VAR:-default}`) or long volume syntax ->
    (source, target, read_only)."""
    if isinstance(entry, dict):
        return str(entry["source"]), str(entry["target"]), bool(entry.get("read_only", False))
    variable = re.match(r"\$\{(?:[^{}]|\{[^{}]*\})*\}", entry)
    source = variable.group(0) if variable else entry.split(":")[0]
    target, *mode = entry[len(source) + 1 :].split(":")
    return source, target, mode == ["ro"]


def _gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])


def test_compose_services_and_profiles(services: dict[str, Any]) -> None:
    assert set(services) == {"api", "trainer", "prometheus", "grafana", "api-replica", "lb"}
    assert "profiles" not in services["api"], "the api must start with a plain `compose up`"
    assert services["trainer"]["profiles"] == ["train"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    assert services["api-replica"]["profiles"] == services["lb"]["profiles"] == ["scale"]


def test_compose_runs_on_cpu_by_default(services: dict[str, Any]) -> None:
    api = services["api"]
    assert api["build"]["context"] == "." and (REPO / "Dockerfile").is_file()
    assert api["build"]["args"]["VGGSVC_TF_FLAVOUR"] == "${VGGSVC_TF_FLAVOUR:-${TF_FLAVOUR:-cpu}}"
    for name, service in services.items():
        # Compose refuses to start a service whose GPU reservation it cannot satisfy.
        assert not _gpu_devices(service), f"{name} reserves a GPU in the base file"


GPU_FILE = "docker-compose.gpu.yml"


def test_compose_gpu_override_builds_gpu_image_and_reserves_gpus(
    services: dict[str, Any],
) -> None:
    override = compose_file(GPU_FILE)["services"]
    # Every service that runs TensorFlow, and only services the base file has.
    assert set(override) == {"api", "trainer", "api-replica"} <= set(services)
    for name, service in override.items():
        assert service["build"]["args"]["VGGSVC_TF_FLAVOUR"] == "gpu", name
        assert service["image"] != services[name]["image"], f"{name}: the CPU tag is kept apart"
        (device,) = _gpu_devices(service)
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], name
        assert device.get("count") == "all" or isinstance(device.get("count"), int)
    # Merged over the base file, the replica count stays (the override only adds resources).
    assert "replicas" not in override["api-replica"]["deploy"]
    assert services["api-replica"]["deploy"]["replicas"] >= 2


def test_compose_no_variable_is_required(compose: dict[str, Any]) -> None:
    for name in ("docker-compose.yml", GPU_FILE):
        text = (REPO / name).read_text()
        uses = re.findall(r"\$\{([^}]*)\}", text)
        assert uses, name
        for use in uses:
            assert re.fullmatch(r"\w+:?-[^?]*", use), f"{name}: ${{{use}}} has no default"


def test_compose_api_is_ready_on_its_own_without_admin_key(services: dict[str, Any]) -> None:
    from service.settings import Settings

    env = services["api"]["environment"]
    # The default model is the one the image bakes in and the entrypoint seeds.
    default = re.fullmatch(r"\$\{VGGSVC_DEFAULT_MODEL:-(\w+)\}", env["VGGSVC_DEFAULT_MODEL"])
    assert default and default.group(1) == "vgg16_imagenet"
    exports = [
        cmd
        for ins in dockerfile_instructions()
        if ins.keyword == "RUN"
        for cmd in module_commands(ins.args)
        if cmd[:2] == ["training", "export-imagenet"]
    ]
    assert [cmd[cmd.index("--models-dir") + 1] for cmd in exports] == ["/opt/models-builtin"]
    assert "/opt/models-builtin" in (REPO / "scripts" / "container-entrypoint.sh").read_text()
    assert (
        services["api-replica"]["environment"]["VGGSVC_DEFAULT_MODEL"]
        == env["VGGSVC_DEFAULT_MODEL"]
    )
    # Unset, the key is empty: the service starts with admin endpoints disabled.
    assert env["VGGSVC_ADMIN_KEY"] == "${VGGSVC_ADMIN_KEY:-}"
    assert not Settings(admin_key="").admin_key


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
    # Healthy means ready: never "healthy" while /readyz (and every request) says 503.
    assert api["healthcheck"]["test"][0] == "CMD" and "/readyz" in test and "/healthz" not in test


class _Readyz(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_compose_healthcheck_probes_the_port_the_api_listens_on(
    services: dict[str, Any],
) -> None:
    """Run the healthcheck's command: healthy against a /readyz on the container's
    VGGSVC_PORT (not 8000), unhealthy on a port where nothing listens."""
    api = services["api"]
    argv = [sys.executable if word == "python" else word for word in api["healthcheck"]["test"][1:]]
    server = http.server.HTTPServer(("127.0.0.1", 0), _Readyz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        env = dict(os.environ, VGGSVC_PORT=str(port))
        assert subprocess.run(argv, env=env, capture_output=True).returncode == 0
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            env["VGGSVC_PORT"] = str(closed.getsockname()[1])
        assert subprocess.run(argv, env=env, capture_output=True).returncode != 0
    finally:
        server.shutdown()
        server.server_close()
    assert "VGGSVC_PORT" in api["environment"]


def _trainer_script(trainer: dict[str, Any]) -> str:
    command = trainer["command"]
    assert command[:2] == ["sh", "-c"] and len(command) == 3
    return str(command[2])


def test_compose_trainer_is_one_shot_job_with_quality_gate(services: dict[str, Any]) -> None:
    trainer = services["trainer"]
    assert trainer["build"] == services["api"]["build"]
    assert trainer["image"] == services["api"]["image"]
    assert trainer["restart"] == "no"
    fits = [c for c in module_commands(_trainer_script(trainer)) if c[:2] == ["training", "fit"]]
    assert len(fits) == 1
    command = fits[0]
    assert command[command.index("--models-dir") + 1] == "/models"
    assert command[command.index("--data") + 1] == "$$data"
    assert float(command[command.index("--min-accuracy") + 1]) > 0
    assert "--promote-if-better" in command
    volumes = [_volume(v) for v in trainer["volumes"]]
    assert ("models", "/models", False) in volumes, "the trainer must publish where the api reads"
    data = [v for v in volumes if v[1] == "/data"]
    assert len(data) == 1 and data[0][2], "the training data must be mounted read-only"


def _run_trainer_script(
    trainer: dict[str, Any], tmp_path: Path, data: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The trainer's `sh -c` script as the container runs it (Compose turns $$ into $), with
    a `python` that only records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    (bin_dir / "python").write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
    (bin_dir / "python").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", VGGSVC_TRAINING_DATA=data)
    script = _trainer_script(trainer).replace("$$", "$")
    result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
    return result, log.read_text().splitlines() if log.exists() else []


def test_compose_trainer_without_data_trains_the_demo_set_as_model_demo(
    services: dict[str, Any], tmp_path: Path
) -> None:
    """A fresh checkout has no training data: the trainer draws the demo set in the
    container and publishes `demo`, never car_truck."""
    trainer = services["trainer"]
    env = trainer["environment"]["VGGSVC_TRAINING_DATA"]
    assert env == "${VGGSVC_TRAINING_DATA:-${TRAINING_DATA:-}}", "unset must reach it empty"
    (source, _, _) = next(v for v in map(_volume, trainer["volumes"]) if v[1] == "/data")
    default = re.search(r":-([\w-]+)\}+$", source)
    assert default and default.group(1) in set(compose_file()["volumes"]), source
    result, calls = _run_trainer_script(trainer, tmp_path, data="")
    assert result.returncode == 0, result.stderr
    assert calls[0].startswith("-m training demo-data /tmp/demo-data")
    assert calls[1].startswith("-m training fit --data /tmp/demo-data --name demo ")
    assert "demo set" in result.stderr


def test_compose_trainer_with_data_trains_car_truck_from_data(
    services: dict[str, Any], tmp_path: Path
) -> None:
    result, calls = _run_trainer_script(services["trainer"], tmp_path, data="/srv/car_truck")
    assert result.returncode == 0, result.stderr
    assert len(calls) == 1 and calls[0].startswith("-m training fit --data /data --name car_truck ")


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


def _haproxy_cfg(services: dict[str, Any]) -> tuple[Path, str]:
    """The lb's configuration: the file mounted where its `haproxy -f` reads."""
    command = services["lb"]["command"]
    assert command[:2] == ["haproxy", "-f"] and len(command) == 3
    mounts = {target: source for source, target, _ in map(_volume, services["lb"]["volumes"])}
    assert command[2] in mounts, f"haproxy reads {command[2]}, which no volume provides"
    path = REPO / mounts[command[2]]
    assert path.is_file(), f"{path} is missing"
    return path, path.read_text()


def _haproxy_lines(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def test_compose_scale_replicas_run_the_api_image_without_host_ports(
    services: dict[str, Any],
) -> None:
    api, replica = services["api"], services["api-replica"]
    assert replica["build"] == api["build"] and replica["image"] == api["image"]
    assert "ports" not in replica, "a host port would make `--scale api-replica=N` collide"
    assert ("models", "/models", False) in [_volume(v) for v in replica["volumes"]]
    assert replica["environment"]["VGGSVC_HOST"] == "0.0.0.0"
    assert replica["environment"]["VGGSVC_MODELS_DIR"] == "/models"
    assert replica["healthcheck"] == api["healthcheck"]
    assert replica["deploy"]["replicas"] >= 2
    assert _gpu_devices(replica) == _gpu_devices(api)


def test_compose_scale_env_names_real_settings(services: dict[str, Any]) -> None:
    from service.settings import ENV_PREFIX, Settings

    for name in ("api", "api-replica"):
        for variable in services[name]["environment"]:
            field = variable.removeprefix(ENV_PREFIX).lower()
            assert field in Settings.model_fields, f"{name}: {variable} is not a setting"


def test_compose_lb_config_routes_to_the_replicas_and_checks_readiness(
    services: dict[str, Any],
) -> None:
    from service.routers.health import router

    path, text = _haproxy_cfg(services)
    lines = _haproxy_lines(text)
    replica = services["api-replica"]
    port = replica["environment"]["VGGSVC_PORT"]
    templates = [line.split() for line in lines if line.startswith("server-template ")]
    assert len(templates) == 1, "one server-template, resolved by Docker's DNS"
    _, _, slots, address, *options = templates[0]
    assert address == f"api-replica:{port}", "the template must name the replica service"
    assert int(slots) >= replica["deploy"]["replicas"]
    assert options[options.index("resolvers") + 1] in {
        line.split()[1] for line in lines if line.startswith("resolvers ")
    }
    assert "option httpchk GET /readyz" in lines
    assert "/readyz" in [route.path for route in router.routes]  # type: ignore[attr-defined]
    binds = {line.split()[1].rsplit(":", 1)[1] for line in lines if line.startswith("bind ")}
    published = {mapping.rsplit(":", 1)[1] for mapping in services["lb"]["ports"]}
    assert published <= binds, f"the lb publishes {published}; {path.name} binds {binds}"


def test_compose_lb_retries_what_a_draining_replica_refuses(services: dict[str, Any]) -> None:
    _, text = _haproxy_cfg(services)
    lines = _haproxy_lines(text)
    retry_on = next(line for line in lines if line.startswith("retry-on ")).split()[1:]
    assert {"conn-failure", "empty-response", "503"} <= set(retry_on)
    assert "option http-buffer-request" in lines and any(
        line.startswith("option redispatch") for line in lines
    )
    # The replica keeps /readyz at 503 after SIGTERM for longer than HAProxy needs to take it
    # out (`fall` failed checks, `inter` apart), and Compose waits for the whole drain.
    from service.settings import Settings

    checks = next(line for line in lines if line.startswith("default-server ")).split()
    inter = checks[checks.index("inter") + 1]
    inter_s = float(inter[:-2]) / 1000 if inter.endswith("ms") else float(inter.rstrip("s"))
    fall = int(checks[checks.index("fall") + 1])
    replica = services["api-replica"]
    drain_delay_s = float(replica["environment"]["VGGSVC_DRAIN_DELAY_S"])
    assert drain_delay_s > fall * inter_s
    graceful_s = replica["environment"].get(
        "VGGSVC_GRACEFUL_TIMEOUT_S", Settings.model_fields["graceful_timeout_s"].default
    )
    assert int(replica["stop_grace_period"].removesuffix("s")) > drain_delay_s + graceful_s
