"""The chart's RBAC grants exactly the API calls the controller and the router make: no more, no less.

The calls are not listed by hand: the real controller (run loop, then a scale-down drained through the router)
and the router's Kubernetes discovery talk to the fake API server, which records every request; each
request becomes the (API group, resource[/subresource], verb) that RBAC authorizes. The chart's rules for
each service account must be that set, without wildcards. Scale rules are the one input from values (which
kinds the controller may scale): each configured kind gets exactly the verbs the controller used on
``deployments/scale``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.adapters.proxy.discovery import snapshots
from autoscaler.adapters.proxy.settings import Discovery, KubernetesDiscovery
from autoscaler.controller.loop import Controller
from tests.chart.helm import EXAMPLES, KUBERNETES_VERSIONS, RELEASE, Helm
from tests.contract.controller.conftest import (
    POOL,
    ControllerFactory,
    add_autoscaler,
    add_pool,
    autoscaler,
    idle,
    pods,
    replicas,
)
from tests.contract.controller.fake_router import FakeRouterMetrics
from tests.fakes.kube_apiserver import FakeKubeApiServer, RecordedRequest
from tests.fakes.kube_resources import PODS
from tests.fakes.prometheus_api import FakePrometheus

Grant = tuple[str, str, str]  # (apiGroup, resource or resource/subresource, verb)
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)"
    r"(?:/namespaces/[^/]+)?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
CONTROLLER_SA, ROUTER_SA = RELEASE, f"{RELEASE}-router"


def grant(request: RecordedRequest) -> Grant:
    """What RBAC checks for one request (the API server's RequestInfo, for the paths used here)."""
    match = _PATH.match(request.path)
    assert match is not None, f"unexpected path {request.path}"
    resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
    if request.method == "GET":
        watching = request.query.get("watch") in ("true", "1")
        verb = "get" if match["name"] else "watch" if watching else "list"
    else:
        verb = _VERBS[request.method]
    return match["group"] or "", resource, verb


def grants(requests: Iterable[RecordedRequest]) -> set[Grant]:
    return {grant(request) for request in requests}


async def _until_requested(kube: FakeKubeApiServer, path: str, *, watch: bool) -> None:
    for _ in range(500):
        if any(r.query.get("watch") in ("true", "1") for r in kube.requests_to(path)) or (
            not watch and kube.requests_to(path)
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no request to {path}")


async def controller_calls(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    router_metrics: FakeRouterMetrics,
    *,
    namespace: str | None,
) -> set[Grant]:
    """Everything the controller asks of the API server: the run loop (election, list and watch of the
    resources, release), and a scale-down drained through the router's numbers."""
    add_pool(kube, decode=2)
    add_autoscaler(kube, autoscaler(router={"metricsUrl": router_metrics.url}))
    idle(prom)
    runner: Controller = make_controller("runner", namespace=namespace)
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    await _until_requested(kube, "/inferenceautoscalers$", watch=True)
    stop.set()
    await running

    controller: Controller = make_controller(namespace=namespace)
    assert await controller.elect()
    router_metrics.endpoints = {p["metadata"]["name"]: (0.0, 1.0) for p in pods(kube, "decode")}
    for _ in range(2):  # mark the idle replica draining, then lower the count
        assert await controller.reconcile("default", POOL) == "decided"
    assert replicas(kube, "decode") == 1  # a scale-up writes the same subresource with the same verbs
    await controller.gate.release()
    return grants(kube.requests)


async def router_calls(kube: FakeKubeApiServer) -> set[Grant]:
    """The router's discovery: list the engines' pods, then watch them."""
    kube.create(
        PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "e-0", "labels": {"app": "e"}}}
    )
    config = KubernetesDiscovery(selector="app=e", api_server=kube.url)
    stream = snapshots(Discovery(kubernetes=config))
    await anext(stream)
    follow = asyncio.ensure_future(anext(stream))
    await _until_requested(kube, "/pods$", watch=True)
    follow.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follow
    return grants(kube.requests)


def chart_grants(
    objects: list[dict[str, Any]], service_account: str
) -> tuple[set[Grant], list[dict[str, Any]]]:
    """The (group, resource, verb) the chart's roles give ``service_account``, and those rules."""
    bound = {
        (b["roleRef"]["kind"], b["roleRef"]["name"])
        for b in objects
        if b["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and any(s["kind"] == "ServiceAccount" and s["name"] == service_account for s in b["subjects"])
    }
    rules = [
        rule
        for role in objects
        if role["kind"] in ("Role", "ClusterRole") and (role["kind"], role["metadata"]["name"]) in bound
        for rule in role["rules"]
    ]
    found = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    return found, rules


def assert_no_wildcards(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(key, []), rule


def split_scale(found: set[Grant]) -> tuple[set[Grant], set[Grant], set[Grant]]:
    """Grants on scale subresources, on the scalable workloads themselves (their opt-in label), the rest."""
    scale = {g for g in found if g[1].endswith("/scale")}
    kinds = {(group, resource.removesuffix("/scale")) for group, resource, _ in scale}
    workloads = {g for g in found if (g[0], g[1]) in kinds}
    return scale, workloads, found - scale - workloads


@pytest.mark.parametrize(
    ("chosen", "namespace", "cluster_wide"),
    [
        (None, "autoscaler-system", False),
        ("aggregated", "serving", False),
        ({"controller": {"clusterWide": True}}, None, True),
    ],
    ids=["default: the release namespace", "a watched namespace", "cluster-wide when asked"],
)
async def test_controller_rules_are_exactly_its_calls(
    helm: Helm,
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    router_metrics: FakeRouterMetrics,
    tmp_path: Path,
    chosen: str | dict[str, Any] | None,
    namespace: str | None,
    cluster_wide: bool,
) -> None:
    """``chosen``: an example's values, values of our own, or the defaults (None)."""
    called = await controller_calls(kube, prom, make_controller, router_metrics, namespace=namespace)
    values = None
    if isinstance(chosen, dict):
        values = tmp_path / "values.yaml"
        values.write_text(yaml.safe_dump(chosen))
    elif chosen is not None:
        values = EXAMPLES / f"{chosen}.values.yaml"
    objects = helm.template(values, kube_version=KUBERNETES_VERSIONS[-1])
    granted, rules = chart_grants(objects, CONTROLLER_SA)
    assert_no_wildcards(rules)

    called_scale, called_workloads, called_rest = split_scale(called)
    granted_scale, granted_workloads, granted_rest = split_scale(granted)
    assert granted_rest == called_rest
    scale_verbs = {verb for _, _, verb in called_scale}
    assert called_scale == {("apps", "deployments/scale", verb) for verb in scale_verbs}
    configured = {(group, resource.removesuffix("/scale")) for group, resource, _ in granted_scale}
    assert granted_scale == {(g, f"{r}/scale", verb) for g, r in configured for verb in scale_verbs}
    workload_verbs = {verb for _, _, verb in called_workloads}
    assert called_workloads == {("apps", "deployments", verb) for verb in workload_verbs} != set()
    assert granted_workloads == {(g, r, verb) for g, r in configured for verb in workload_verbs}

    # The Lease: created once, then read and renewed only under the name the controller is given.
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    lease_rules = [r for r in rules if r["resources"] == ["leases"]]
    assert {tuple(r.get("resourceNames", ())) for r in lease_rules} == {(), (RELEASE,)}
    assert f"--lease-name={RELEASE}" in args
    assert ("--namespace=" + namespace in args) if namespace else not any("--namespace=" in a for a in args)
    scoped = {o["kind"] for o in objects if o["kind"] in ("Role", "ClusterRole")}
    assert scoped == ({"Role", "ClusterRole"} if cluster_wide else {"Role"})


async def test_router_rules_are_exactly_its_calls(helm: Helm) -> None:
    with FakeKubeApiServer() as kube:
        called = await router_calls(kube)
    objects = helm.template(
        EXAMPLES / "disaggregated.values.yaml",
        kube_version=KUBERNETES_VERSIONS[-1],
        api_versions=("monitoring.coreos.com/v1",),
    )
    granted, rules = chart_grants(objects, ROUTER_SA)
    assert_no_wildcards(rules)
    assert granted == called == {("", "pods", "list"), ("", "pods", "watch")}
