"""The chart's Grafana dashboard as the tests see it: every PromQL expression, ready for Prometheus.

Grafana fills in template variables before it queries; Prometheus knows none of them. ``promql`` does what
Grafana would with every variable set to "All" (``.*``) and ``$__rate_interval`` set to ``rate_interval``;
a variable's ``label_values(selector, label)`` (Grafana's, not PromQL) becomes ``count by (label)
(selector)``, which Prometheus parses and answers with the same series.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts/inference-autoscaler/dashboards/inference-autoscaler.json"
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$")


@dataclasses.dataclass(frozen=True, slots=True)
class Query:
    where: str  # the panel's title and the target's refId, or the variable's name
    expr: str  # as written in the dashboard


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that queries (rows hold none of their own when expanded)."""
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def queries(dashboard: dict[str, Any]) -> list[Query]:
    found = [
        Query(where=f"{panel['title']} [{target['refId']}]", expr=target["expr"])
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(Query(where=f"variable {variable['name']}", expr=variable["query"]["query"]))
    return found


def promql(expr: str, *, rate_interval: str) -> str:
    """What Grafana would send with every variable at "All"."""
    match = _LABEL_VALUES.match(expr)
    if match:
        expr = f"count by ({match['label']}) ({match['selector']})"
    expr = expr.replace("$__rate_interval", rate_interval)
    return re.sub(r"\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?", ".*", expr)
