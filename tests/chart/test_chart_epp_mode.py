"""The chart's EPP mode: the picker, its InferencePool and an example HTTPRoute render, fit the GIE and
Gateway API schemas, name each other consistently, carry a config the picker loads, and grant exactly its
calls."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from autoscaler.adapters.epp.settings import EppSettings
from autoscaler.adapters.proxy.discovery import snapshots
from autoscaler.adapters.proxy.settings import Discovery, InferencePoolDiscovery
from autoscaler.cli import router as router_verb
from autoscaler.cli.router import load_settings
from tests.chart.helm import EXAMPLES, KUBERNETES_VERSIONS, NAMESPACE, Helm
from tests.chart.test_chart_renders import containers, named, render
from tests.chart.test_rbac_matches_code import (
    ROUTER_SA,
    _until_requested,
    assert_no_wildcards,
    chart_grants,
    grants,
)
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.kube_resources import PODS, custom_resource

pytestmark = pytest.mark.timeout(120)

SCHEMAS = yaml.safe_load((Path(__file__).parent / "data/gie_crd_schemas.yaml").read_text())
EXAMPLE = "gateway-epp"
INFERENCE_POOLS = custom_resource(
    group="inference.networking.k8s.io", version="v1", plural="inferencepools", kind="InferencePool"
)


@pytest.fixture
def rendered(helm: Helm) -> list[dict[str, Any]]:
    return render(helm, EXAMPLE, KUBERNETES_VERSIONS[-1])


@pytest.mark.parametrize("kind", ["InferencePool", "HTTPRoute"])
def test_gie_objects_match_their_schemas(rendered: list[dict[str, Any]], kind: str) -> None:
    (obj,) = [o for o in rendered if o["kind"] == kind]
    assert obj["apiVersion"] == SCHEMAS[kind]["apiVersion"]
    errors = [e.message for e in jsonschema.Draft7Validator(SCHEMAS[kind]["schema"]).iter_errors(obj)]
    assert errors == []


def test_the_pool_names_the_picker_and_the_route_names_the_pool(rendered: list[dict[str, Any]]) -> None:
    pool = named(rendered, "InferencePool")
    service = named(rendered, "Service", "-router")
    picker = containers(named(rendered, "Deployment", "-router"))[0]
    ref = pool["spec"]["endpointPickerRef"]
    assert (ref["kind"], ref["name"]) == ("Service", service["metadata"]["name"])
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert ref["portNumber"] == grpc["port"]
    container_ports = {p["name"]: p["containerPort"] for p in picker["ports"]}
    assert grpc["targetPort"] in container_ports
    assert picker["readinessProbe"]["grpc"] == {"port": container_ports["grpc"], "service": "readiness"}
    assert picker["livenessProbe"]["grpc"] == {"port": container_ports["grpc"], "service": "liveness"}
    route = named(rendered, "HTTPRoute")
    (backend,) = route["spec"]["rules"][0]["backendRefs"]
    assert (backend["group"], backend["kind"], backend["name"]) == (
        "inference.networking.k8s.io",
        "InferencePool",
        pool["metadata"]["name"],
    )
    assert pool["metadata"]["namespace"] == service["metadata"]["namespace"] == NAMESPACE


def test_the_picker_loads_its_rendered_config_and_arguments(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(named(rendered, "ConfigMap", "-router")["data"]["router.yaml"])
    settings = load_settings(config, model=EppSettings)
    assert settings.endpoints.inference_pool == InferencePoolDiscovery(
        name=named(rendered, "InferencePool")["metadata"]["name"], namespace=NAMESPACE
    )
    assert settings.pool == "llama-8b"
    picker = containers(named(rendered, "Deployment", "-router"))[0]
    verb, *args = picker["args"]
    parser = argparse.ArgumentParser(exit_on_error=False)
    router_verb.add_arguments(parser)
    parsed = parser.parse_args(args)
    assert (verb, parsed.mode) == ("router", "epp")
    ports = {p["name"]: p["containerPort"] for p in picker["ports"]}
    assert (settings.port, settings.metrics_port) == (ports["grpc"], ports["http"])


def test_proxy_mode_renders_no_gateway_objects(helm: Helm) -> None:
    kinds = {o["kind"] for o in render(helm, "disaggregated", KUBERNETES_VERSIONS[-1])}
    assert not kinds & {"InferencePool", "HTTPRoute"}


def test_the_pool_needs_the_gie_api(helm: Helm) -> None:
    done = helm.run(
        "template", "x", str(EXAMPLES.parent), "--values", str(EXAMPLES / f"{EXAMPLE}.values.yaml")
    )
    assert done.returncode != 0
    assert "needs the inference.networking.k8s.io/v1 API" in done.stderr


async def test_picker_rules_are_exactly_its_calls(rendered: list[dict[str, Any]]) -> None:
    """The picker's discovery against the fake API server, recorded; the chart grants that and no more."""
    pool = named(rendered, "InferencePool")
    with FakeKubeApiServer(custom_types=[INFERENCE_POOLS]) as kube:
        kube.create(INFERENCE_POOLS, {**pool, "metadata": {"name": pool["metadata"]["name"]}})
        labels = pool["spec"]["selector"]["matchLabels"]
        kube.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "e-0", "labels": labels}})
        config = InferencePoolDiscovery(name=pool["metadata"]["name"], api_server=kube.url)
        stream = snapshots(Discovery(inference_pool=config))
        await anext(stream)
        follow = asyncio.ensure_future(anext(stream))
        await _until_requested(kube, "/pods$", watch=True)
        await _until_requested(kube, "/inferencepools$", watch=True)
        follow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow
        await stream.aclose()
        called = grants(kube.requests)
    granted, rules = chart_grants(rendered, ROUTER_SA)
    assert_no_wildcards(rules)
    assert (
        granted
        == called
        == {
            ("", "pods", "list"),
            ("", "pods", "watch"),
            ("inference.networking.k8s.io", "inferencepools", "get"),
            ("inference.networking.k8s.io", "inferencepools", "watch"),
        }
    )
    (pool_rule,) = [r for r in rules if r["resources"] == ["inferencepools"]]
    assert pool_rule["resourceNames"] == [pool["metadata"]["name"]]  # this pool, no other


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("router:\n  mode: gateway\n", "at '/router/mode'"),
        (
            "router:\n  epp:\n    inferencePool:\n      targetPort: 0\n",
            "at '/router/epp/inferencePool/targetPort'",
        ),
        (
            "router:\n  epp:\n    inferencePool:\n      failureMode: Open\n",
            "at '/router/epp/inferencePool/failureMode'",
        ),
    ],
    ids=["unknown-mode", "port-zero", "unknown-failure-mode"],
)
def test_wrong_epp_values_fail_lint_with_a_clear_message(
    helm: Helm, tmp_path: Path, override: str, message: str
) -> None:
    values = tmp_path / "wrong.yaml"
    values.write_text(override)
    done = helm.lint(values)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr
