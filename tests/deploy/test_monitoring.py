"""Monitoring files: alert rules valid and firing when they should, dashboard on real metrics.

Needs Debian's `prometheus` package for `promtool` (the test command installs it as
root with apt). Skipped with the reason where it is missing, except under CI=true,
where a missing promtool fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus-alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "vgg-transfer-service.json"
PROMQL_NAME = re.compile(r"\b((?:vggsvc|process|python)_[a-z_]+)\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool not found (apt-get install -y prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must check the alert rules", pytrace=False)
        pytest.skip(reason)
    return found


def test_alert_rules_are_valid(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_fire_on_their_cases(promtool: str) -> None:
    """tests/deploy/prometheus_alerts_test.yml: 5xx rate, not ready, queue, load failure."""
    result = subprocess.run(
        [promtool, "test", "rules", "prometheus_alerts_test.yml"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_loads_the_alert_rules() -> None:
    config = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    assert f"./deploy/prometheus-alerts.yml:{config['rule_files'][0]}:ro" in mounts
    grafana = compose["services"]["grafana"]["volumes"]
    for source in (v.split(":")[0] for v in grafana):
        assert (REPO / source).exists(), source
    provisioned = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/dashboards.yml").read_text()
    )
    dashboards_in_container = provisioned["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{dashboards_in_container}:ro" in grafana


def exported_names(tmp_path: Path) -> set[str]:
    """Every sample name the service's /metrics can export (a fresh app, no model)."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    settings = Settings(models_dir=tmp_path, precision="fp32", load_in_background=False)
    with TestClient(create_app(settings)) as client:
        text = client.get("/metrics").text
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def test_alerts_and_dashboard_use_only_metrics_the_service_exports(tmp_path: Path) -> None:
    exported = exported_names(tmp_path)
    rules = yaml.safe_load(ALERTS.read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    expressions += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in expressions for name in PROMQL_NAME.findall(expr)}
    assert used, "no metric names found in the rules and the dashboard"
    assert sorted(used - exported) == []


def test_dashboard_has_a_panel_for_every_service_metric_family(tmp_path: Path) -> None:
    families = {
        name.removesuffix("_total")
        for name in exported_names(tmp_path)
        if name.startswith("vggsvc_") and not name.endswith((*HISTOGRAM_SUFFIXES, "_created"))
    }
    text = DASHBOARD.read_text()
    assert sorted(f for f in families if f not in text) == []
    ids = [panel["id"] for panel in json.loads(text)["panels"]]
    assert len(ids) == len(set(ids))
