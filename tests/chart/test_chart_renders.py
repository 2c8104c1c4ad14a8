"""The chart, through the real Helm CLI: lint, render per example and Kubernetes version, and validate.

Built-in kinds are checked by ``kubernetes_validate`` (strict: unknown fields are errors) for the oldest and
newest Kubernetes versions we support. CRD-defined kinds have no schema there: our own InferenceAutoscaler
examples are checked against our CRD's schema; KEDA's ScaledObject and the operator's ServiceMonitor by the
fields this chart relies on. What the router and controller will read (the router config, the profiles) is
parsed by the same code that reads it at start-up.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from autoscaler.cli.router import load_settings
from autoscaler.profiles.schema import Profile
from tests.chart.helm import CHART, CRD, EXAMPLES, KUBERNETES_VERSIONS, RELEASE, ROOT, Helm

# Example values file -> the optional APIs it uses (passed as --api-versions, as a cluster would serve them).
EXAMPLE_APIS: dict[str, tuple[str, ...]] = {
    "disaggregated": ("monitoring.coreos.com/v1",),
    "aggregated": (),
    "advisory-keda": ("keda.sh/v1alpha1",),
    "gateway-epp": ("inference.networking.k8s.io/v1", "gateway.networking.k8s.io/v1"),
}
CASES = [(name, version) for name in (None, *EXAMPLE_APIS) for version in KUBERNETES_VERSIONS]
# externalMetricsApi values that turn it on (caBundle: any base64; nothing checks the certificate here).
EXTERNAL_METRICS = {"enabled": True, "tlsSecretName": "ia-tls", "caBundle": "Zm9v", "verifyClients": True}
# CRD kinds of other projects: no schema bundled (InferencePool and HTTPRoute: test_chart_epp_mode.py)
CHECKED_BY_HAND = {"ScaledObject", "ServiceMonitor", "InferencePool", "HTTPRoute"}


def values_file(name: str | None) -> Path | None:
    return None if name is None else EXAMPLES / f"{name}.values.yaml"


def render(helm: Helm, name: str | None, version: str) -> list[dict[str, Any]]:
    """An example (None: the defaults) as a cluster serving the APIs it uses would see it."""
    return helm.template(
        values_file(name), kube_version=version, api_versions=EXAMPLE_APIS.get(name or "", ())
    )


def named(objects: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix))


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_every_example_is_rendered() -> None:
    found = {path.name.removesuffix(".values.yaml") for path in EXAMPLES.glob("*.values.yaml")}
    assert found == set(EXAMPLE_APIS)
    for name in EXAMPLE_APIS:
        assert (EXAMPLES / f"{name}.autoscaler.yaml").is_file(), f"{name} has no sample InferenceAutoscaler"


@pytest.mark.parametrize("name", [None, *EXAMPLE_APIS])
def test_lint_strict(helm: Helm, name: str | None) -> None:
    for version in KUBERNETES_VERSIONS:
        done = helm.lint(values_file(name), kube_version=version)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("name", "version"), CASES)
def test_rendered_objects_validate(helm: Helm, name: str | None, version: str) -> None:
    objects = render(helm, name, version)
    kinds = {obj["kind"] for obj in objects}
    assert {"CustomResourceDefinition", "Deployment", "ServiceAccount", "Service"} <= kinds
    for obj in objects:
        if obj["kind"] in CHECKED_BY_HAND:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = f"{obj['kind']} {obj['metadata']['name']} on {version}"
            pytest.fail(f"{where}: {error.message} at {list(error.path)}")


@pytest.mark.parametrize("name", [None, *EXAMPLE_APIS])
def test_pods_are_locked_down_and_probed(helm: Helm, name: str | None) -> None:
    objects = render(helm, name, KUBERNETES_VERSIONS[-1])
    deployments = [obj for obj in objects if obj["kind"] == "Deployment"]
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in containers(deployment):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"livenessProbe", "readinessProbe", "resources"} <= container.keys()
    probes = containers(named(objects, "Deployment", "inference-autoscaler"))[0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert any(obj["kind"] == "PodDisruptionBudget" for obj in objects)


@pytest.mark.parametrize("name", sorted(EXAMPLE_APIS))
def test_sample_autoscaler_matches_the_crd(name: str) -> None:
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    sample = yaml.safe_load((EXAMPLES / f"{name}.autoscaler.yaml").read_text())
    assert sample["apiVersion"] == f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
    assert sample["kind"] == crd["spec"]["names"]["kind"]
    errors = [error.message for error in jsonschema.Draft4Validator(schema).iter_errors(sample)]
    assert errors == []
    for phase in sample["spec"]["phases"].values():
        assert phase.get("minReplicas", 1) <= phase["maxReplicas"]  # the CRD's CEL rule


def test_router_config_and_profiles_load_as_the_processes_read_them(helm: Helm, tmp_path: Path) -> None:
    """The disaggregated example's router config and the aggregated one's extra profile."""
    version = KUBERNETES_VERSIONS[-1]
    router_map = named(render(helm, "disaggregated", version), "ConfigMap", "-router")
    config = tmp_path / "router.yaml"
    config.write_text(router_map["data"]["router.yaml"])
    settings = load_settings(config)
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)
    assert settings.endpoints.kubernetes is not None

    rendered = render(helm, "aggregated", version)
    profiles = named(rendered, "ConfigMap", "-profiles")
    assert list(profiles["data"]) == ["llama-3.1-8b--l40s-tp1.yaml"]
    Profile.model_validate(yaml.safe_load(profiles["data"]["llama-3.1-8b--l40s-tp1.yaml"]))
    mounts = containers(named(rendered, "Deployment"))[0]["volumeMounts"]
    assert {
        "name": "profiles",
        "mountPath": "/opt/inference-autoscaler/models/llama-3.1-8b/l40s-tp1.yaml",  # the image's models/
        "subPath": "llama-3.1-8b--l40s-tp1.yaml",
        "readOnly": True,
    } in mounts


def test_scaled_objects_point_at_our_scaler(helm: Helm) -> None:
    rendered = render(helm, "advisory-keda", KUBERNETES_VERSIONS[0])
    grpc = next(
        p for p in named(rendered, "Service", "inference-autoscaler")["spec"]["ports"] if p["name"] == "grpc"
    )
    address = f"inference-autoscaler.autoscaler-system.svc:{grpc['port']}"
    scaled = [o for o in rendered if o["kind"] == "ScaledObject"]
    assert [o["metadata"]["name"] for o in scaled] == ["qwen-prefill", "qwen-decode"]
    for obj in scaled:
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] in {"external", "external-push"}
        assert trigger["metricType"] == "AverageValue"  # Value would multiply our number by the current count
        assert trigger["metadata"]["scalerAddress"] == address
        assert trigger["metadata"]["phase"] == obj["metadata"]["name"].removeprefix("qwen-")
        assert obj["spec"]["minReplicaCount"] <= obj["spec"]["maxReplicaCount"]


def test_optional_apis_fail_clearly_when_the_cluster_lacks_them(helm: Helm) -> None:
    done = helm.run("template", "x", str(EXAMPLES.parent), "--values", str(values_file("advisory-keda")))
    assert done.returncode != 0
    assert "scaledObjects needs the keda.sh/v1alpha1 API" in done.stderr


def test_external_metrics_api_is_off_by_default_and_complete_when_on(helm: Helm, tmp_path: Path) -> None:
    version = KUBERNETES_VERSIONS[-1]
    assert not [o for o in helm.template(kube_version=version) if o["kind"] == "APIService"]
    values = tmp_path / "external.yaml"
    values.write_text(yaml.safe_dump({"externalMetricsApi": EXTERNAL_METRICS}))
    rendered = helm.template(values, kube_version=version)
    (api,) = [o for o in rendered if o["kind"] == "APIService"]
    assert api["metadata"]["name"] == "v1beta1.external.metrics.k8s.io"
    service = named(rendered, "Service", api["spec"]["service"]["name"])
    assert service["spec"]["ports"][0]["port"] == api["spec"]["service"]["port"]
    for obj in rendered:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("controller:\n  replicas: three\n", "at '/controller/replicas': got string, want integer"),
        ("router:\n  enabled: yes please\n", "at '/router/enabled': got string, want boolean"),
        (
            "scaledObjects:\n  - {name: q, autoscaler: q, phase: middle, maxReplicaCount: 2,\n"
            "     scaleTargetRef: {name: q}}\n",
            "at '/scaledObjects/0/phase'",
        ),
        ("contoller:\n  replicas: 2\n", "additional properties 'contoller' not allowed"),
    ],
)
def test_wrong_values_fail_lint_with_a_clear_message(
    helm: Helm, tmp_path: Path, override: str, message: str
) -> None:
    values = tmp_path / "wrong.yaml"
    values.write_text(override)
    done = helm.lint(values)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr


@pytest.mark.parametrize("name", [None, *EXAMPLE_APIS, "external-metrics"])
def test_the_controller_command_accepts_the_rendered_arguments(
    helm: Helm, tmp_path: Path, name: str | None
) -> None:
    from autoscaler.cli import controller

    if name == "external-metrics":
        values = tmp_path / "external.yaml"
        values.write_text(yaml.safe_dump({"externalMetricsApi": EXTERNAL_METRICS}))
        rendered = helm.template(values, kube_version=KUBERNETES_VERSIONS[-1])
    else:
        rendered = render(helm, name, KUBERNETES_VERSIONS[-1])
    (container,) = containers(named(rendered, "Deployment", RELEASE))
    verb, *args = container["args"]
    assert verb == "controller"
    parser = argparse.ArgumentParser(prog="autoscaler controller", exit_on_error=False)
    controller.add_arguments(parser)
    parsed = parser.parse_args(args)
    controller.settings_from(parsed)  # the checks the command makes before it starts
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert parsed.health_port == ports["http"]
    assert parsed.keda_port == ports.get("grpc")
    assert parsed.external_metrics_port == ports.get("https")
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    for path in (parsed.tls_cert, parsed.tls_key, parsed.tls_client_ca):
        assert path is None or str(path.parent) in mounts
    env = {item["name"] for item in container["env"]}
    assert {"POD_NAME", "POD_NAMESPACE"} <= env  # --identity and --lease-namespace refer to them


def test_the_image_matches_what_the_chart_expects() -> None:
    """The Containerfile cannot be built here (no container engine): check what the chart relies on."""
    containerfile = (ROOT / "Containerfile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    helpers = (CHART / "templates/_helpers.tpl").read_text()
    models_dir = re.search(r'define "ia.modelsDir" -}}(\S+?){{', helpers)
    assert models_dir is not None
    assert f"AUTOSCALER_MODELS_DIR={models_dir[1]}" in containerfile
    assert f"COPY models {models_dir[1]}" in containerfile
    uid = values["podSecurityContext"]["runAsUser"]
    assert f"USER {uid}:{values['podSecurityContext']['runAsGroup']}" in containerfile
    assert 'ENTRYPOINT ["autoscaler"]' in containerfile
    assert '".[controller,router]"' in containerfile


def test_service_monitors_select_a_service_port_that_exists(helm: Helm) -> None:
    rendered = render(helm, "disaggregated", KUBERNETES_VERSIONS[-1])
    monitors = [o for o in rendered if o["kind"] == "ServiceMonitor"]
    assert [m["metadata"]["name"].rsplit("-", 1)[1] for m in monitors] == ["controller", "router"]
    services = [o for o in rendered if o["kind"] == "Service"]
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        (service,) = [s for s in services if wanted <= s["metadata"]["labels"].items()]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"


def test_a_router_without_ready_engines_stays_alive(helm: Helm) -> None:
    """The router's /health answers 503 until an engine is ready; only readiness may depend on it."""
    router = containers(
        named(render(helm, "disaggregated", KUBERNETES_VERSIONS[-1]), "Deployment", "-router")
    )[0]
    assert router["readinessProbe"]["httpGet"]["path"] == "/health"
    assert "httpGet" not in router["livenessProbe"]


def test_network_policies_admit_only_the_named_peers(helm: Helm, tmp_path: Path) -> None:
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    values = tmp_path / "policies.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "networkPolicy": {"enabled": True, "metricsFrom": [monitoring], "routerFrom": [monitoring]},
                "router": {"enabled": True},
            }
        )
    )
    assert not [
        o for o in helm.template(kube_version=KUBERNETES_VERSIONS[-1]) if o["kind"] == "NetworkPolicy"
    ]
    for version in KUBERNETES_VERSIONS:
        rendered = helm.template(values, kube_version=version)
        policies = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "NetworkPolicy"}
        for policy in policies.values():
            kubernetes_validate.validate(policy, version, strict=True)
    controller, router = policies[RELEASE]["spec"], policies[f"{RELEASE}-router"]["spec"]
    assert controller["policyTypes"] == ["Ingress"]
    assert {rule["ports"][0]["port"]: rule.get("from") for rule in controller["ingress"]} == {
        "http": [monitoring],
        "grpc": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}],
    }
    controller_pods = router["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert controller_pods["app.kubernetes.io/component"] == "controller"  # it reads the router's /metrics
    assert router["ingress"][1] == {"from": [monitoring]}


def test_the_chart_says_where_each_server_binds(helm: Helm, tmp_path: Path) -> None:
    """The CLI binds 127.0.0.1 unless told; in a pod the chart tells it, and names its router as trusted."""
    values = tmp_path / "all.yaml"
    values.write_text(yaml.safe_dump({"router": {"enabled": True}, "externalMetricsApi": EXTERNAL_METRICS}))
    args = containers(named(helm.template(values, kube_version=KUBERNETES_VERSIONS[-1]), "Deployment"))[0][
        "args"
    ]
    for flag in ("--health-host", "--keda-host", "--external-metrics-host"):
        assert f"{flag}=0.0.0.0" in args
    assert f"--router-metrics-host={RELEASE}-router.autoscaler-system.svc" in args


def test_an_https_prometheus_is_verified_against_the_given_ca(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "tls.yaml"
    values.write_text(
        yaml.safe_dump(
            {"prometheus": {"url": "https://prometheus.monitoring.svc:9091", "caConfigMap": "prom-ca"}}
        )
    )
    for version in KUBERNETES_VERSIONS:
        deployment = named(helm.template(values, kube_version=version), "Deployment")
        kubernetes_validate.validate(deployment, version, strict=True)
    controller = containers(deployment)[0]
    assert "--prometheus-ca-bundle=/etc/inference-autoscaler/prometheus-ca/ca.crt" in controller["args"]
    mount = next(m for m in controller["volumeMounts"] if m["name"] == "prometheus-ca")
    assert mount["mountPath"] == "/etc/inference-autoscaler/prometheus-ca"
    volume = next(
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "prometheus-ca"
    )
    assert volume["configMap"]["name"] == "prom-ca"
