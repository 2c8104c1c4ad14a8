"""minReplicas 0 per phase is allowed, with the router's metrics URL (at zero replicas its queue is the only
demand the controller sees): the CRD's CEL rule (evaluated with cel-python as the API server would) and the
model agree, case by case."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel

from autoscaler.config.autoscaler_resource import API_VERSION, KIND, AutoscalerResource, ResourceError

CRD = Path(__file__).resolve().parents[2] / "charts/inference-autoscaler/crds/inferenceautoscalers.yaml"
ROUTER = {"metricsUrl": "http://router.serving.svc:8000/metrics"}


def spec(*, prefill: int = 1, decode: int = 1, router: dict[str, str] | None = None) -> dict[str, Any]:
    def phase(name: str, minimum: int) -> dict[str, Any]:
        ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"llama-{name}"}
        return {"scaleTargetRef": ref, "minReplicas": minimum, "maxReplicas": 4}

    body: dict[str, Any] = {
        "profile": {"name": "llama-3.1-8b/h100-tp1"},
        "slo": {"ttft": {"seconds": 1.0}, "itl": {"seconds": 0.05}},
        "phases": {"prefill": phase("prefill", prefill), "decode": phase("decode", decode)},
    }
    if router is not None:
        body["router"] = router
    return body


def spec_rules() -> list[dict[str, str]]:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules: list[dict[str, str]] = schema["properties"]["spec"]["x-kubernetes-validations"]
    return rules


def cel_admits(body: dict[str, Any]) -> bool:
    env = celpy.Environment()
    activation = {"self": json_to_cel(body)}
    return all(bool(env.program(env.compile(r["rule"])).evaluate(activation)) for r in spec_rules())


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    valid: bool


CASES = [
    Case("both phases may go to zero with the router's URL", spec(prefill=0, decode=0, router=ROUTER), True),
    Case("one phase at zero with the router's URL", spec(prefill=0, router=ROUTER), True),
    Case("minimum 1 needs no router", spec(), True),
    Case("zero without the router's URL: nothing could wake it", spec(prefill=0, decode=0), False),
    Case("decode at zero, router section without a URL", spec(decode=0, router={}), False),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_zero_minimum_needs_the_router_in_the_crd_and_the_model(case: Case) -> None:
    assert cel_admits(copy.deepcopy(case.body)) is case.valid
    obj: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND}
    obj |= {"metadata": {"name": "llama", "namespace": "serving"}, "spec": case.body}
    if case.valid:
        AutoscalerResource.parse(obj)
    else:
        with pytest.raises(ResourceError, match=r"needs router\.metricsUrl"):
            AutoscalerResource.parse(obj)
