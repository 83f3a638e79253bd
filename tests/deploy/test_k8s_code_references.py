"""What the Kubernetes and KServe manifests name exists in the code: probe and metrics paths
are routes of the app, ports are the ones the service listens on, VGGSVC_* variables are
Settings fields with values the service accepts, and every `python -m` command names a real
subcommand and flags its `--help` lists."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from service.__main__ import parse_settings
from service.settings import Settings
from tests.support.deploy_files import (
    REPO,
    argv_module_command,
    flags_of,
    invocation,
    unknown_flags,
)
from tests.support.k8s_manifests import (
    Container,
    containers,
    exec_commands,
    http_probes,
    kustomizations,
    render,
    service_containers,
)

# Commands the kubelet may run in the image other than ours (coreutils in python:3.11-slim).
IMAGE_COMMANDS = {"sleep"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {folder: render(folder) for folder in kustomizations()}


@pytest.fixture(scope="module")
def docs(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [doc for folder_docs in rendered.values() for doc in folder_docs]


@pytest.fixture(scope="module")
def servers(rendered: dict[str, list[dict[str, Any]]]) -> list[Container]:
    """Every container running the service; InferenceServices merged with their runtime."""
    return [c for folder_docs in rendered.values() for c in service_containers(folder_docs)]


@pytest.fixture(scope="module")
def get_routes(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    from service.app import create_app  # imports TensorFlow; the lifespan (loading) never runs

    # fp32: the precision is process-wide, and other tests compare fp32 answers exactly.
    app = create_app(Settings(models_dir=tmp_path_factory.mktemp("models"), precision="fp32"))
    # The app's own route table, as FastAPI publishes it (routers are included lazily, so
    # app.routes does not list their paths).
    return {path for path, methods in app.openapi()["paths"].items() if "get" in methods}


def _paths(docs: list[dict[str, Any]], servers: list[Container]) -> list[tuple[str, str]]:
    """(where, path) for every HTTP path the cluster will call: probes and scrape paths."""
    found = []
    for container in [*containers(docs), *servers]:
        for name, probe in http_probes(container).items():
            found.append((f"{container.where} {name}", probe["path"]))
    for doc in docs:
        template = doc.get("spec", {}).get("template", {}).get("metadata", {})
        annotations = {
            **template.get("annotations", {}),
            **doc.get("spec", {}).get("annotations", {}),
        }
        for key in ("prometheus.io/path", "prometheus.kserve.io/path"):
            if key in annotations:
                found.append((f"{doc['kind']}/{doc['metadata']['name']} {key}", annotations[key]))
    return found


def test_k8s_probe_and_scrape_paths_are_app_routes(
    docs: list[dict[str, Any]], servers: list[Container], get_routes: set[str]
) -> None:
    paths = _paths(docs, servers)
    assert {path for _, path in paths} >= {"/healthz", "/readyz", "/metrics"}
    missing = [f"{where}: {path}" for where, path in paths if path not in get_routes]
    assert not missing, f"no such GET route in the service: {missing}"


def _entrypoint_variables() -> set[str]:
    text = (REPO / "scripts" / "container-entrypoint.sh").read_text()
    return set(re.findall(r"\$\{?(VGGSVC_\w+)", text))


def test_k8s_vggsvc_variables_are_settings_fields(docs: list[dict[str, Any]]) -> None:
    prefix = Settings.model_config.get("env_prefix", "")
    known = {prefix + name.upper() for name in Settings.model_fields} | _entrypoint_variables()
    used = {(c.where, name) for c in containers(docs) for name in c.env if name.startswith(prefix)}
    assert len(used) > 5
    unknown = sorted(f"{where}: {name}" for where, name in used if name not in known)
    # Settings ignores unknown VGGSVC_* variables, so a misspelt one would do nothing at all.
    assert not unknown, f"not a Settings field: {unknown}"


def _effective_settings(container: Container, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """What `python -m service` would run with in this container (env, then flags)."""
    command = container.module_command
    assert command and command[0] == "service", f"{container.where}: {container.argv}"
    with monkeypatch.context() as env:
        for name in [n for n in os.environ if n.startswith("VGGSVC_")]:
            env.delenv(name)
        for name, value in container.env.items():
            if name.startswith("VGGSVC_") and value is not None:
                env.setenv(name, value)
        try:
            return parse_settings(command[1:])
        except SystemExit:
            pytest.fail(f"{container.where}: the service refuses these settings (see stderr)")


def test_k8s_service_settings_are_accepted_and_ports_match(
    servers: list[Container], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(servers) >= 5, [c.where for c in servers]  # api x2 overlays, runtime, 3 isvcs
    for container in servers:
        settings = _effective_settings(container, monkeypatch)
        assert settings.host == "0.0.0.0", f"{container.where}: kubelet and Service cannot reach it"
        assert container.port_number(settings.port) == settings.port
        for name, probe in http_probes(container).items():
            port = container.port_number(probe["port"])
            assert port == settings.port, f"{container.where} {name}: port {port}"


def test_k8s_read_only_roots_leave_tmp_and_matplotlib_config_writable(
    servers: list[Container],
) -> None:
    read_only = [c for c in servers if c.spec["securityContext"].get("readOnlyRootFilesystem")]
    assert len(read_only) >= 5
    for container in read_only:
        scratch = [path for path, m in container.mounts.items() if "emptyDir" in m["volume"]]
        assert "/tmp" in scratch, f"{container.where}: TensorFlow and Keras write under /tmp"
        # TensorFlow imports Keras, Keras imports matplotlib, and matplotlib wants a writable
        # config dir (found on a read-only root: it warns and makes a temporary one each start).
        config = container.env.get("MPLCONFIGDIR") or ""
        assert any(config.startswith(path + "/") for path in scratch), container.where


def _all_commands(docs: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    found = []
    for container in containers(docs):
        if container.argv:
            found.append((container.where, container.argv))
        found += [(f"{container.where} (exec)", argv) for argv in exec_commands(container)]
    return found


def test_k8s_commands_are_real_subcommands_and_flags(docs: list[dict[str, Any]]) -> None:
    ours = []
    for where, argv in _all_commands(docs):
        command = argv_module_command(argv)
        if command is None:
            assert argv[0] in IMAGE_COMMANDS, f"{where}: {argv[0]!r} is neither ours nor known"
            assert all(word.isdigit() for word in argv[1:]), f"{where}: {argv}"
            continue
        ours.append(flags_of(command)[:2])
        failure, unknown = unknown_flags(command)
        assert not failure, f"{where}: {failure}"
        assert not unknown, f"{where}: `{invocation(command)}` has no {unknown}"
    assert ("service", None) in ours and ("training", "fit") in ours, ours
