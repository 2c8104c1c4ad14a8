"""The Grafana dashboard ConfigMap: off by default; on, it carries the chart's JSON unchanged, under the
sidecar's label, in the namespace asked for (its queries: tests/integration/test_dashboard_queries.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.helm import KUBERNETES_VERSIONS, NAMESPACE, Helm
from tests.integration.dashboard import DASHBOARD

VERSION = KUBERNETES_VERSIONS[-1]


def _dashboards(helm: Helm, tmp_path: Path, values: dict[str, Any] | None) -> list[dict[str, Any]]:
    path = None
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump({"metrics": {"grafanaDashboard": values}}))
    objects = helm.template(path, kube_version=VERSION)
    return [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")]


@pytest.mark.parametrize(
    ("values", "namespace", "labels", "annotations"),
    [
        pytest.param(None, None, None, None, id="off by default"),
        pytest.param({"enabled": True}, NAMESPACE, {"grafana_dashboard": "1"}, None, id="on: sidecar label"),
        pytest.param(
            {
                "enabled": True,
                "namespace": "monitoring",
                "labels": {"grafana_dashboard": "yes"},
                "annotations": {"grafana_folder": "Autoscaling"},
            },
            "monitoring",
            {"grafana_dashboard": "yes"},
            {"grafana_folder": "Autoscaling"},
            id="on: where and how the sidecar wants it",
        ),
    ],
)
def test_the_dashboard_configmap_is_where_the_sidecar_looks(
    helm: Helm,
    tmp_path: Path,
    values: dict[str, Any] | None,
    namespace: str | None,
    labels: dict[str, str] | None,
    annotations: dict[str, str] | None,
) -> None:
    found = _dashboards(helm, tmp_path, values)
    if namespace is None:
        assert found == []
        return
    (configmap,) = found
    kubernetes_validate.validate(configmap, VERSION, strict=True)
    assert configmap["metadata"]["namespace"] == namespace
    assert labels is not None and labels.items() <= configmap["metadata"]["labels"].items()
    assert configmap["metadata"].get("annotations") == annotations
    (body,) = configmap["data"].values()
    assert json.loads(body) == json.loads(DASHBOARD.read_text())


def test_a_bad_dashboard_namespace_is_refused(helm: Helm, tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(
        yaml.safe_dump({"metrics": {"grafanaDashboard": {"enabled": True, "namespace": "Not_OK"}}})
    )
    done = helm.lint(path, kube_version=VERSION)
    assert done.returncode != 0 and "namespace" in done.stdout + done.stderr
