"""A serving cluster in the fake API server, as the controller's tests and benchmarks build it: the custom
resource types it serves, opted-in Deployments, one prefill/decode pool and its InferenceAutoscaler, and a
clock that moves only when told.

A plain module (not a conftest): ``benchmarks/controller_cycle.py`` builds the same world without pytest.
"""

from __future__ import annotations

from typing import Any

from autoscaler.adapters.kubernetes.workload import OPT_IN_LABEL, OPT_IN_VALUE
from autoscaler.config.autoscaler_resource import API_VERSION, KIND
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.kube_resources import DEPLOYMENTS, ScalePaths, custom_resource
from tests.fakes.prometheus_api import FakePrometheus

POOL = "llama"
OPTED_IN = {OPT_IN_LABEL: OPT_IN_VALUE}  # every workload built here: its owner lets the controller scale it

LEADER_WORKER_SETS = custom_resource(
    group="leaderworkerset.x-k8s.io",
    version="v1",
    plural="leaderworkersets",
    kind="LeaderWorkerSet",
    scale=ScalePaths(label_selector="status.hpaPodSelector"),
)
AUTOSCALERS = custom_resource(
    group="inference-autoscaler.io",
    version="v1alpha1",
    plural="inferenceautoscalers",
    kind="InferenceAutoscaler",
)


class ManualClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.value = start

    def now(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


def deployment(name: str, *, replicas: int, app: str | None = None) -> dict[str, Any]:
    labels = {"app": app or name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {**labels, **OPTED_IN}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.33.0"}]},
            },
        },
    }


def add_deployment(kube: FakeKubeApiServer, name: str, *, replicas: int) -> dict[str, Any]:
    return kube.create(DEPLOYMENTS, deployment(name, replicas=replicas))


def add_pool(kube: FakeKubeApiServer, *, prefill: int = 1, decode: int = 1) -> None:
    add_deployment(kube, f"{POOL}-prefill", replicas=prefill)
    add_deployment(kube, f"{POOL}-decode", replicas=decode)


def autoscaler(*, mode: str = "direct", max_replicas: int = 8, **spec: Any) -> dict[str, Any]:
    """An InferenceAutoscaler for the pool's two Deployments; scale-down not stabilized nor rate-limited."""

    def phase(name: str) -> dict[str, Any]:
        ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{POOL}-{name}"}
        return {"scaleTargetRef": ref, "minReplicas": 1, "maxReplicas": max_replicas}

    body: dict[str, Any] = {
        "mode": mode,
        "profile": {"name": "llama-3.1-8b/h100-tp1"},
        "slo": {"ttft": {"seconds": 1.0, "percentile": 90}, "itl": {"seconds": 0.05, "percentile": 90}},
        "phases": {"prefill": phase("prefill"), "decode": phase("decode")},
        "behavior": {
            "scaleDown": {"stabilizationWindowSeconds": 0, "percent": 100},
            "drainTimeoutSeconds": 60,
        },
    }
    body.update(spec)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": POOL}, "spec": body}


def add_autoscaler(kube: FakeKubeApiServer, obj: dict[str, Any]) -> dict[str, Any]:
    return kube.create(AUTOSCALERS, obj)


def heavy(prom: FakePrometheus) -> None:
    for phase in ("prefill", "decode"):
        prom.load(POOL, phase, rate=100.0)


def idle(prom: FakePrometheus) -> None:
    for phase in ("prefill", "decode"):
        prom.load(POOL, phase, rate=0.0)
