"""The KServe manifests: a ServingRuntime of the product's image speaking protocols v1 and v2,
an InferenceService in RawDeployment mode serving one pinned version from /mnt/models with
polling off, and a canary (Serverless mode, where KServe honours canaryTrafficPercent)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from service.__main__ import parse_settings
from tests.support.k8s_manifests import api_container, one, render, runtime_for

ISVC_FOLDERS = ["kserve/raw", "kserve/serverless", "kserve/canary"]
# KServe's storage initializer puts what storageUri points at here (constants.ModelDir).
KSERVE_MODEL_DIR = "/mnt/models"


def _model(isvc: dict[str, Any]) -> dict[str, Any]:
    return isvc["spec"]["predictor"]["model"]


def _settings(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The service's settings inside the InferenceService's container (runtime + model)."""
    container = runtime_for(docs, one(docs, "InferenceService"))
    for name, value in container.env.items():
        if name.startswith("VGGSVC_") and value is not None:
            monkeypatch.setenv(name, value)
    command = container.module_command
    assert command and command[0] == "service", container.argv
    return parse_settings(command[1:])


def _delivered_version(storage_uri: str) -> tuple[str, int]:
    """`.../releases/car_truck-3` -> ("car_truck", 3): the release prefix holds car_truck/3/."""
    match = re.fullmatch(r".*/([A-Za-z0-9_.]+)-([0-9]+)/?", storage_uri)
    assert match, f"storageUri {storage_uri!r} is not a <name>-<version> release prefix"
    return match.group(1), int(match.group(2))


def test_k8s_serving_runtime_runs_the_product_image_with_protocols_v1_and_v2() -> None:
    runtime = one(render("kserve/runtime"), "ServingRuntime")
    assert set(runtime["spec"]["protocolVersions"]) == {"v1", "v2"}
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"  # the name KServe merges the model into
    product_image = api_container(render("overlays/cpu")).spec["image"]
    assert container["image"] == product_image
    annotations = runtime["spec"]["annotations"]
    assert annotations["prometheus.kserve.io/path"] == "/metrics"
    assert int(annotations["prometheus.kserve.io/port"]) == container["ports"][0]["containerPort"]


@pytest.mark.parametrize("folder", ISVC_FOLDERS)
def test_k8s_inference_service_uses_the_runtime_and_a_format_it_supports(folder: str) -> None:
    docs = render(folder)
    runtime, isvc = one(docs, "ServingRuntime"), one(docs, "InferenceService")
    model = _model(isvc)
    assert model["runtime"] == runtime["metadata"]["name"]
    supported = {(f["name"], f.get("version")) for f in runtime["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"].get("version")) in supported
    assert model.get("protocolVersion", "v1") in runtime["spec"]["protocolVersions"]


@pytest.mark.parametrize("folder", ISVC_FOLDERS)
def test_k8s_inference_service_serves_one_pinned_version_from_mnt_models_without_polling(
    folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(folder)
    settings = _settings(docs, monkeypatch)
    assert str(settings.models_dir) == KSERVE_MODEL_DIR
    assert settings.poll_interval_s == 0, "a revision's files never change: polling must be off"
    name, version = _delivered_version(_model(one(docs, "InferenceService"))["storageUri"])
    assert settings.default_model == name
    assert settings.pins == {name: {version}}, "the pin must be the version storageUri delivers"


def test_k8s_raw_inference_service_is_raw_deployment_without_canary_percent() -> None:
    docs = render("kserve/raw")
    isvc = one(docs, "InferenceService")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    # KServe splits traffic by canaryTrafficPercent only in Serverless mode; here it would be
    # silently ignored.
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    container = runtime_for(docs, isvc)
    grace = container.pod["terminationGracePeriodSeconds"]
    pause = int(container.spec["lifecycle"]["preStop"]["exec"]["command"][1])
    assert grace > pause + int(container.env["VGGSVC_GRACEFUL_TIMEOUT_S"] or 0)


def test_k8s_canary_sends_a_share_of_traffic_to_the_next_version() -> None:
    stable = one(render("kserve/serverless"), "InferenceService")
    canary = one(render("kserve/canary"), "InferenceService")
    for isvc in (stable, canary):
        mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
        assert mode in ("Serverless", "Knative")
    # The same InferenceService, updated: a new revision beside the last rolled-out one.
    assert canary["metadata"]["name"] == stable["metadata"]["name"]
    assert "canaryTrafficPercent" not in stable["spec"]["predictor"]
    assert 0 < canary["spec"]["predictor"]["canaryTrafficPercent"] < 100
    old = _delivered_version(_model(stable)["storageUri"])
    new = _delivered_version(_model(canary)["storageUri"])
    assert new[0] == old[0] and new[1] > old[1]
