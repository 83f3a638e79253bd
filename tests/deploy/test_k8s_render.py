"""Every kustomization under deploy/k8s renders, and what it renders is valid: core kinds
against the Kubernetes API schemas (`kubernetes-validate`, strict: unknown fields are
errors), KServe kinds against KServe's CRD schemas (vendored in kserve_crds/)."""

from __future__ import annotations

import re

import jsonschema
import kubernetes_validate
import pytest

from tests.support import k8s_manifests
from tests.support.deploy_files import REPO
from tests.support.k8s_manifests import KSERVE_GROUP, crd_schema, kustomizations, render

# The oldest Kubernetes the manifests target (podFailurePolicy, HPA v2 and PDB policy/v1 are
# all there by 1.29) and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())
APPLIED = ["overlays/cpu", "overlays/gpu", "kserve/raw", "kserve/serverless", "kserve/canary"]


def test_k8s_kustomizations_are_the_documented_ones() -> None:
    # A new folder must be added to docs/deployment.md and to what these tests render.
    assert kustomizations() == sorted([*APPLIED, "base", "kserve/runtime"])


def _render_outcome(folder: str) -> tuple[type[BaseException] | None, str]:
    try:
        render(folder)
    except (pytest.fail.Exception, pytest.skip.Exception) as exc:
        return type(exc), str(exc)
    return None, ""


def test_k8s_render_without_kubectl_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(k8s_manifests, "kubectl", lambda: None)
    k8s_manifests._render.cache_clear()
    try:
        monkeypatch.setenv("CI", "true")
        under_ci = _render_outcome("overlays/cpu")
        monkeypatch.delenv("CI")
        elsewhere = _render_outcome("overlays/cpu")
    finally:
        k8s_manifests._render.cache_clear()  # forget the failed render for the other tests
    assert under_ci[0] is pytest.fail.Exception and "no kubectl" in under_ci[1]
    assert elsewhere[0] is pytest.skip.Exception and "no kubectl" in elsewhere[1]


def test_k8s_deployment_page_applies_exactly_the_applied_folders() -> None:
    page = (REPO / "docs" / "deployment.md").read_text()
    applied = set(re.findall(r"kubectl (?:-n \S+ )?apply -k deploy/k8s/(\S+)", page))
    assert applied == set(APPLIED)


@pytest.mark.parametrize("folder", kustomizations())
def test_k8s_core_kinds_match_kubernetes_schemas(folder: str) -> None:
    docs = [d for d in render(folder) if not d["apiVersion"].startswith(KSERVE_GROUP + "/")]
    if folder.startswith("kserve/"):
        assert not docs, f"{folder}: only KServe kinds expected"
        return
    assert docs
    for doc in docs:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = "/".join(str(p) for p in exc.path)
                pytest.fail(
                    f"{folder}: {doc['kind']} {doc['metadata']['name']} at {where}: "
                    f"{exc.message} (Kubernetes {version})"
                )


@pytest.mark.parametrize("folder", [f for f in kustomizations() if f.startswith("kserve/")])
def test_k8s_kserve_kinds_match_kserve_crd_schemas(folder: str) -> None:
    docs = render(folder)
    assert any(d["kind"] == "ServingRuntime" for d in docs)
    for doc in docs:
        group, version = doc["apiVersion"].split("/")
        assert group == KSERVE_GROUP, f"{folder}: unexpected {doc['apiVersion']}"
        validator = jsonschema.Draft7Validator(crd_schema(doc["kind"], version))
        errors = [
            f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(doc)
        ]
        assert not errors, f"{folder}: {doc['kind']} {doc['metadata']['name']}: {errors}"
