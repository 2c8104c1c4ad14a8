"""The chart's ValidatingAdmissionPolicy admits the controller's pod patches (the two scale-down annotations)
and denies anything else it might patch; its CEL is evaluated here with ``cel-python`` as the API server
would (variables first, then each validation), on the pods the scale-down actually writes."""

from __future__ import annotations

import copy
from typing import Any

import celpy
import pytest

from autoscaler.adapters.kubernetes.pods import DELETION_COST_ANNOTATION, DRAINING_ANNOTATION
from tests.chart.helm import KUBERNETES_VERSIONS, NAMESPACE, RELEASE, Helm

SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"
POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "llama-decode-0",
        "labels": {"app": "llama-decode"},
        "annotations": {"prometheus.io/scrape": "true"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u"}],
    },
    "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.33.0"}]},
}


def _policy(helm: Helm) -> dict[str, Any]:
    objects = helm.template(kube_version=KUBERNETES_VERSIONS[-1])
    return next(o for o in objects if o["kind"] == "ValidatingAdmissionPolicy")


def _evaluate(expression: str, activation: dict[str, Any]) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expression)).evaluate(activation)


def admitted(policy: dict[str, Any], *, user: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    spec = policy["spec"]
    request = {"userInfo": {"username": user}, "operation": "UPDATE"}
    activation = {
        "object": celpy.json_to_cel(new),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel(request),
    }
    if not all(_evaluate(c["expression"], activation) for c in spec["matchConditions"]):
        return True  # not ours to judge
    variables = {v["name"]: _evaluate(v["expression"], activation) for v in spec["variables"]}
    activation["variables"] = celpy.celtypes.MapType(
        {celpy.celtypes.StringType(k): v for k, v in variables.items()}
    )
    return all(bool(_evaluate(v["expression"], activation)) for v in spec["validations"])


def _changed(**metadata: Any) -> dict[str, Any]:
    pod = copy.deepcopy(POD)
    pod["metadata"].update(metadata)
    return pod


DRAINED = {**POD["metadata"]["annotations"], DRAINING_ANNOTATION: "2026-12-07T10:00:00Z"}
CASES = {
    "mark draining": (_changed(annotations={**DRAINED, DELETION_COST_ANNOTATION: "-1000"}), True),
    "revive (annotations removed)": (POD, True),
    "another annotation": (_changed(annotations={**DRAINED, "x": "y"}), False),
    "an existing annotation changed": (_changed(annotations={"prometheus.io/scrape": "false"}), False),
    "a label": (_changed(labels={"app": "other"}), False),
    "owners dropped": (_changed(ownerReferences=[]), False),
    "a finalizer": (_changed(finalizers=["x/y"]), False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_controller_may_change_only_its_annotations(helm: Helm, case: str) -> None:
    new, allowed = CASES[case]
    old = (
        _changed(annotations={**DRAINED, DELETION_COST_ANNOTATION: "-1000"})
        if case.startswith("revive")
        else POD
    )
    assert admitted(_policy(helm), user=SERVICE_ACCOUNT, old=old, new=new) is allowed


def test_a_spec_change_is_denied(helm: Helm) -> None:
    new = copy.deepcopy(POD)
    new["spec"]["containers"][0]["image"] = "attacker/image:latest"
    assert not admitted(_policy(helm), user=SERVICE_ACCOUNT, old=POD, new=new)


def test_other_users_are_not_judged(helm: Helm) -> None:
    new = _changed(labels={"app": "other"})
    assert admitted(_policy(helm), user="system:serviceaccount:serving:deployer", old=POD, new=new)


def test_rendered_with_its_binding_only_where_the_cluster_serves_it(helm: Helm, tmp_path: Any) -> None:
    newest = {o["kind"] for o in helm.template(kube_version=KUBERNETES_VERSIONS[-1])}
    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= newest
    oldest = {o["kind"] for o in helm.template(kube_version=KUBERNETES_VERSIONS[0])}  # 1.29: not GA
    assert "ValidatingAdmissionPolicy" not in oldest
    values = tmp_path / "off.yaml"
    values.write_text("admissionPolicy:\n  enabled: false\n")
    off = {o["kind"] for o in helm.template(values, kube_version=KUBERNETES_VERSIONS[-1])}
    assert "ValidatingAdmissionPolicy" not in off
