"""The CRD's schema and the pydantic model accept the same InferenceAutoscalers and reject the same mistakes.

The CRD's ``openAPIV3Schema`` is checked with ``jsonschema`` (draft 4, the dialect Kubernetes' structural
schemas derive from); rules only CEL can state (minReplicas <= maxReplicas) are checked in the model and
their presence in the CRD is asserted.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from autoscaler.config.autoscaler_resource import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    AutoscalerResource,
    Mode,
    ResourceError,
)
from autoscaler.core.phases import Phase, ServingMode

CRD_PATH = Path(__file__).resolve().parents[2] / "charts/inference-autoscaler/crds/inferenceautoscalers.yaml"


def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return loaded


def schema() -> dict[str, Any]:
    version: dict[str, Any] = crd()["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"])


def schema_errors(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(schema())
    return [error.message for error in validator.iter_errors(obj)]


def disaggregated(**spec: Any) -> dict[str, Any]:
    def phase(name: str) -> dict[str, Any]:
        return {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1,
            "maxReplicas": 8,
        }

    body: dict[str, Any] = {
        "profile": {"name": "llama-3.1-8b/h100-tp1"},
        "slo": {"ttft": {"seconds": 0.5, "percentile": 90}, "itl": {"seconds": 0.05}},
        "phases": {"prefill": phase("llama-prefill"), "decode": phase("llama-decode")},
    }
    body.update(spec)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "llama"}, "spec": body}


def aggregated_lws() -> dict[str, Any]:
    obj = disaggregated(mode="advisory", gpuBudget=16, router={"metricsUrl": "http://router:8000/metrics"})
    obj["spec"]["phases"] = {
        "aggregated": {
            "scaleTargetRef": {
                "apiVersion": "leaderworkerset.x-k8s.io/v1",
                "kind": "LeaderWorkerSet",
                "name": "qwen",
                "plural": "leaderworkersets",
            },
            "maxReplicas": 4,
            "podSelector": "app=qwen,role=leader",
        }
    }
    obj["spec"]["metrics"] = {"source": "router", "pool": "qwen-pool", "window": "2m"}
    obj["spec"]["behavior"] = {
        "scaleUp": {"stabilizationWindowSeconds": 0, "pods": 2, "periodSeconds": 30},
        "scaleDown": {"stabilizationWindowSeconds": 600, "percent": 10},
        "drainTimeoutSeconds": 300,
    }
    return obj


VALID = {"disaggregated": disaggregated(), "aggregated-lws": aggregated_lws()}


def _without(obj: dict[str, Any], *path: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def _with(obj: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


BASE = disaggregated()
# Rejected by the schema and by the model.
INVALID = {
    "no slo": _without(BASE, "spec", "slo"),
    "unknown mode": _with(BASE, "eager", "spec", "mode"),
    "zero ttft": _with(BASE, 0, "spec", "slo", "ttft", "seconds"),
    "percentile 100": _with(BASE, 100, "spec", "slo", "itl", "percentile"),
    "negative min": _with(BASE, -1, "spec", "phases", "prefill", "minReplicas"),
    "no max": _without(BASE, "spec", "phases", "decode", "maxReplicas"),
    "decode alone": _without(BASE, "spec", "phases", "prefill"),
    "both shapes": _with(BASE, BASE["spec"]["phases"]["decode"], "spec", "phases", "aggregated"),
    "two profiles": _with(BASE, {"name": "x", "inline": {}}, "spec", "profile"),
    "no profile": _with(BASE, {}, "spec", "profile"),
    "lws without plural": _without(
        aggregated_lws(), "spec", "phases", "aggregated", "scaleTargetRef", "plural"
    ),
    "bad window": _with(BASE, {"window": "60"}, "spec", "metrics"),
    "short interval": _with(BASE, 1, "spec", "controlIntervalSeconds"),
    "bad router url": _with(BASE, {"metricsUrl": "router:8000"}, "spec", "router"),
    "zero budget": _with(BASE, 0, "spec", "gpuBudget"),
    "profile path up the tree": _with(BASE, {"name": "../../etc/passwd"}, "spec", "profile"),
    "absolute profile path": _with(BASE, {"name": "/etc/passwd"}, "spec", "profile"),
    "profile path down the tree": _with(BASE, {"name": "llama-3.1-8b/../../x"}, "spec", "profile"),
    "hidden profile file": _with(BASE, {"name": "llama-3.1-8b/.h100"}, "spec", "profile"),
    "router url with user info": _with(BASE, {"metricsUrl": "http://u:p@r.ns.svc/m"}, "spec", "router"),
}
# Only CEL (on a real API server) and the model catch these.
CEL_ONLY = {"min above max": _with(BASE, 9, "spec", "phases", "prefill", "minReplicas")}


@pytest.mark.parametrize("name", sorted(VALID))
def test_examples_validate_against_the_crd_and_the_model(name: str) -> None:
    obj = VALID[name]
    assert schema_errors(obj) == []
    resource = AutoscalerResource.parse(obj)
    assert resource.name == "llama"


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_specs_are_rejected_by_both(name: str) -> None:
    obj = INVALID[name]
    assert schema_errors(obj), f"the CRD schema accepted {name!r}"
    with pytest.raises(ResourceError, match="invalid spec"):
        AutoscalerResource.parse(obj)


@pytest.mark.parametrize("name", sorted(CEL_ONLY))
def test_cross_field_rules_are_cel_in_the_crd_and_validators_in_the_model(name: str) -> None:
    phase_schema = schema()["properties"]["spec"]["properties"]["phases"]["properties"]["prefill"]
    rules = [rule["rule"] for rule in phase_schema["x-kubernetes-validations"]]
    assert "self.minReplicas <= self.maxReplicas" in rules
    with pytest.raises(ResourceError, match="minReplicas must not exceed maxReplicas"):
        AutoscalerResource.parse(CEL_ONLY[name])


def test_a_parsed_resource_becomes_policy_reader_and_target_settings() -> None:
    resource = AutoscalerResource.parse(aggregated_lws())
    profile = resource.spec.profile.load()
    settings = resource.policy_settings(profile)
    assert resource.spec.mode is Mode.ADVISORY
    assert settings.mode is ServingMode.AGGREGATED
    assert (settings.bounds[Phase.AGGREGATED].minimum, settings.bounds[Phase.AGGREGATED].maximum) == (1, 4)
    assert settings.gpu_budget == 16
    assert settings.behavior.down_window_s == 600
    assert settings.behavior.up_limit.pods == 2 and settings.behavior.up_limit.period_s == 30
    assert settings.behavior.down_limit.percent == 10
    reader = resource.reader_settings()
    assert (reader.window, reader.ttft_quantile, reader.itl_quantile) == ("2m", 0.9, 0.9)
    # the policy reads the rates over the reader's window, and knows whose counter they are
    assert (settings.forecast.rate_window_s, settings.counter_source) == (120, "router")
    assert "autoscaler_router_requests_total" in reader.queries.requests
    assert resource.pool == "qwen-pool"
    target = resource.targets()[Phase.AGGREGATED]
    assert (target.plural, target.group, target.namespace) == (
        "leaderworkersets",
        "leaderworkerset.x-k8s.io",
        "default",
    )


def test_a_budget_below_the_minimum_replicas_is_a_resource_error() -> None:
    obj = _with(BASE, 1, "spec", "gpuBudget")  # two phases at min 1 need 2 GPUs
    resource = AutoscalerResource.parse(obj)
    with pytest.raises(ResourceError, match="GPU budget"):
        resource.policy_settings(resource.spec.profile.load())


def test_gpus_per_replica_overrides_the_profile() -> None:
    resource = AutoscalerResource.parse(_with(BASE, 4, "spec", "gpusPerReplica"))
    assert resource.policy_settings(resource.spec.profile.load()).profile.gpus_per_replica == 4


# -- the CRD itself: names agree with the model, the schema is structural, printer columns resolve --------


def test_the_crd_is_a_valid_custom_resource_definition() -> None:
    for version in ("1.29.0", "1.35.0"):  # oldest supported and newest target, as the contract tests
        kubernetes_validate.validate(crd(), version, strict=True)


def test_crd_names_match_the_model() -> None:
    spec = crd()["spec"]
    assert (spec["group"], spec["names"]["kind"], spec["names"]["plural"]) == (GROUP, KIND, PLURAL)
    assert crd()["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    version = spec["versions"][0]
    assert version["name"] == API_VERSION.split("/")[1] and version["subresources"] == {"status": {}}


_JUNCTORS = ("anyOf", "oneOf", "allOf", "not")
_FORBIDDEN_IN_JUNCTORS = ("type", "description", "default", "additionalProperties", "nullable")


def _nodes(
    node: dict[str, Any], path: str, *, in_junctor: bool
) -> Iterator[tuple[str, dict[str, Any], bool]]:
    yield path, node, in_junctor
    for key, child in (node.get("properties") or {}).items():
        yield from _nodes(child, f"{path}.{key}", in_junctor=in_junctor)
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]", in_junctor=in_junctor)
    for junctor in _JUNCTORS:
        branches = node.get(junctor)
        for branch in [branches] if isinstance(branches, dict) else branches or []:
            yield from _nodes(branch, f"{path}<{junctor}>", in_junctor=True)


def test_the_schema_is_structural() -> None:
    for path, node, in_junctor in _nodes(schema(), "", in_junctor=False):
        assert "$ref" not in node, path
        if in_junctor:
            assert not set(_FORBIDDEN_IN_JUNCTORS) & set(node), (
                f"{path}: junctors hold value validations only"
            )
        else:
            assert "type" in node, f"{path}: every field needs a type"


def test_printer_columns_point_at_schema_fields() -> None:
    for column in crd()["spec"]["versions"][0]["additionalPrinterColumns"]:
        head = column["jsonPath"].split("[")[0].strip(".").split(".")
        node = schema()
        for key in head:
            if key == "metadata":
                break
            node = node["properties"][key]
        else:
            assert node.get("type") in ("integer", "string", "number", "array"), column["name"]
