"""The api Deployment and its Service, HPA, PDB, volumes and retraining CronJob, as the CPU
and GPU overlays render them: probes, shutdown timing, security, scaling, the gate."""

from __future__ import annotations

import pytest
import yaml

from service.settings import Settings
from tests.support.k8s_manifests import (
    K8S,
    api_container,
    containers,
    http_probes,
    one,
    prestop_sleep_s,
    render,
    retrain_container,
)

OVERLAYS = ["overlays/cpu", "overlays/gpu"]


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_api_probes_start_and_live_on_healthz_ready_on_readyz(overlay: str) -> None:
    probes = http_probes(api_container(render(overlay)))
    assert {name: probe["path"] for name, probe in probes.items()} == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_api_grace_period_covers_prestop_pause_and_drain(overlay: str) -> None:
    api = api_container(render(overlay))
    pause = prestop_sleep_s(api)
    assert pause >= 5, "preStop must pause long enough for the endpoint to be removed"
    graceful = api.env.get("VGGSVC_GRACEFUL_TIMEOUT_S")
    drain = int(graceful) if graceful else Settings.model_fields["graceful_timeout_s"].default
    grace = api.pod["terminationGracePeriodSeconds"]
    assert grace > pause + drain, f"grace {grace} s <= preStop {pause} s + drain {drain} s"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_api_runs_non_root_on_read_only_root_with_tmp_volume(overlay: str) -> None:
    api = api_container(render(overlay))
    pod_security, security = api.pod["securityContext"], api.spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    models = api.mounts[api.env["VGGSVC_MODELS_DIR"] or ""]
    assert "persistentVolumeClaim" in models["volume"] and models["readOnly"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_workloads_request_cpu_and_memory_with_memory_limit(overlay: str) -> None:
    docs = render(overlay)
    for container in (api_container(docs), retrain_container(docs)):
        resources = container.spec["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container.where
        assert "memory" in resources.get("limits", {}), container.where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_service_hpa_and_pdb_select_the_api_pods(overlay: str) -> None:
    docs = render(overlay)
    deployment, api = one(docs, "Deployment"), api_container(docs)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _labels_match(deployment["spec"]["selector"]["matchLabels"], pod_labels)

    service = one(docs, "Service")
    assert _labels_match(service["spec"]["selector"], pod_labels)
    for port in service["spec"]["ports"]:
        api.port_number(port["targetPort"])

    pdb = one(docs, "PodDisruptionBudget")
    assert _labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels)

    hpa = one(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    # With minAvailable equal to the replica count, no node could ever be drained.
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_pods_claim_only_declared_pvcs_and_share_the_model_volume(overlay: str) -> None:
    docs = render(overlay)
    pvcs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for container in containers(docs):
        for volume in container.pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in pvcs, container.where
    api, retrain = api_container(docs), retrain_container(docs)
    api_models = api.mounts[api.env["VGGSVC_MODELS_DIR"] or ""]["volume"]
    command = retrain.module_command or []
    retrain_models = retrain.mounts[command[command.index("--models-dir") + 1]]
    claim = api_models["persistentVolumeClaim"]["claimName"]
    assert retrain_models["volume"]["persistentVolumeClaim"]["claimName"] == claim
    assert not retrain_models["readOnly"], "the CronJob publishes into the model volume"
    # Replicas on several nodes read it while the job writes it.
    assert pvcs[claim]["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_retrain_cronjob_runs_the_gated_fit_once_at_a_time(overlay: str) -> None:
    docs = render(overlay)
    cronjob, retrain, api = one(docs, "CronJob"), retrain_container(docs), api_container(docs)
    command = retrain.module_command
    assert command and command[:2] == ["training", "fit"], retrain.argv
    assert 0 < float(command[command.index("--min-accuracy") + 1]) <= 1
    assert "--promote-if-better" in command
    data = retrain.mounts[command[command.index("--data") + 1]]
    assert data["readOnly"] and "persistentVolumeClaim" in data["volume"]
    assert retrain.spec["image"] == api.spec["image"], "train with the image that serves"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    # Exit 3 is the gate refusing the model: the same data gives the same answer, no retry.
    fail_now = [r for r in job["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert any(
        r["onExitCodes"]["operator"] == "In" and 3 in r["onExitCodes"]["values"] for r in fail_now
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_api_pods_carry_prometheus_scrape_annotations(overlay: str) -> None:
    docs = render(overlay)
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert api_container(docs).port_number(int(annotations["prometheus.io/port"]))
    assert annotations["prometheus.io/path"] == "/metrics"


def test_k8s_gpu_overlay_asks_for_a_gpu_and_runs_the_gpu_image() -> None:
    docs = render("overlays/gpu")
    for container in (api_container(docs), retrain_container(docs)):
        limits = container.spec["resources"].get("limits", {})
        assert limits.get("nvidia.com/gpu") == 1, container.where
        assert container.spec["image"].endswith(":gpu"), container.where
        tolerations = container.pod.get("tolerations", [])
        assert any(t["key"] == "nvidia.com/gpu" for t in tolerations), container.where


def test_k8s_cpu_overlay_asks_for_no_gpu_and_runs_the_cpu_image() -> None:
    docs = render("overlays/cpu")
    for container in (api_container(docs), retrain_container(docs)):
        assert "nvidia.com/gpu" not in container.spec["resources"].get("limits", {})
        assert container.spec["image"].endswith(":cpu"), container.where


def _gauges() -> set[str]:
    from service.telemetry import Metrics

    return {m.name for m in Metrics().registry.collect() if m.type == "gauge"}


def test_k8s_gpu_hpa_scales_on_the_batch_queue_that_the_adapter_serves() -> None:
    # CPU utilisation stays low on GPU pods, so a CPU target would never scale them out.
    docs = render("overlays/gpu")
    (metric,) = one(docs, "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name, target = metric["pods"]["metric"]["name"], metric["pods"]["target"]
    assert name in _gauges(), f"{name} is not a gauge the service exports"
    # One full GPU batch waiting per pod, as the overlay configures the batcher.
    assert target["type"] == "AverageValue"
    assert target["averageValue"] == api_container(docs).env["VGGSVC_MAX_BATCH_SIZE"]
    values = yaml.safe_load((K8S / "overlays/gpu/prometheus-adapter-values.yaml").read_text())
    (rule,) = values["rules"]["custom"]
    assert rule["name"]["as"] == name and rule["seriesQuery"].startswith(name + "{")
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


def test_k8s_cpu_hpa_scales_on_cpu_utilisation() -> None:
    (metric,) = one(render("overlays/cpu"), "HorizontalPodAutoscaler")["spec"]["metrics"]
    assert (metric["type"], metric["resource"]["name"]) == ("Resource", "cpu")
