"""The external.metrics.k8s.io/v1beta1 API over TLS: discovery, values, selectors and refusals."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from autoscaler.adapters.external_metrics import TlsFiles
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.core.phases import Phase
from tests.contract.external_metrics.tls_server import serving

BASE = "/apis/external.metrics.k8s.io/v1beta1"


def client(url: str, pki: Path, *, cert: bool = False) -> httpx.AsyncClient:
    """A client that trusts only the test CA (as kube-aggregator trusts the APIService's caBundle)."""
    context = ssl.create_default_context(cafile=pki / "ca.crt")
    if cert:
        context.load_cert_chain(pki / "client.crt", pki / "client.key")
    return httpx.AsyncClient(base_url=url, verify=context)


def publish(board: DesiredReplicasBoard) -> None:
    for phase, desired in ((Phase.PREFILL, 2), (Phase.DECODE, 7)):
        board.publish(
            namespace="serving", autoscaler="llama", phase=phase, desired=desired, current=3, reason="R"
        )


async def test_discovery_lists_the_metric(api: str, pki: Path) -> None:
    async with client(api, pki) as http:
        body = (await http.get(BASE)).json()
    assert body["kind"] == "APIResourceList"
    assert body["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    assert [(r["name"], r["namespaced"], r["verbs"]) for r in body["resources"]] == [
        ("autoscaler_desired_replicas", True, ["get"])
    ]


async def test_the_value_is_desired_replicas_as_a_quantity(
    api: str, pki: Path, board: DesiredReplicasBoard
) -> None:
    publish(board)
    async with client(api, pki) as http:
        response = await http.get(
            f"{BASE}/namespaces/serving/autoscaler_desired_replicas",
            params={"labelSelector": "autoscaler=llama,phase==decode"},
        )
    assert response.status_code == 200
    assert response.json() == {
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [
            {
                "metricName": "autoscaler_desired_replicas",
                "metricLabels": {"autoscaler": "llama", "phase": "decode"},
                "timestamp": "2023-11-14T22:13:20Z",
                "value": "7",
            }
        ],
    }


@pytest.mark.parametrize(
    ("path", "selector", "status", "words"),
    [
        ("serving/autoscaler_desired_replicas", "autoscaler=mistral,phase=decode", 404, "autoscaler=mistral"),
        ("models/autoscaler_desired_replicas", "autoscaler=llama,phase=decode", 404, "namespace 'models'"),
        ("serving/vllm_queue", "autoscaler=llama,phase=decode", 404, "no external metric 'vllm_queue'"),
        ("serving/autoscaler_desired_replicas", "autoscaler!=llama", 400, "unsupported selector term"),
        ("serving/autoscaler_desired_replicas", "phase in (decode)", 400, "unsupported selector term"),
        ("serving/autoscaler_desired_replicas", "autoscaler=llama", 400, "name both autoscaler and phase"),
        ("serving/autoscaler_desired_replicas", "", 400, "name both autoscaler and phase"),
    ],
    ids=[
        "unknown autoscaler",
        "other namespace",
        "unknown metric",
        "inequality",
        "set selector",
        "phase left open",
        "no selector",
    ],
)
async def test_refusals_are_kubernetes_status_objects(
    api: str, pki: Path, board: DesiredReplicasBoard, path: str, selector: str, status: int, words: str
) -> None:
    publish(board)
    async with client(api, pki) as http:
        response = await http.get(f"{BASE}/namespaces/{path}", params={"labelSelector": selector})
    assert response.status_code == status
    body = response.json()
    assert (body["kind"], body["code"]) == ("Status", status)
    assert words in body["message"]


async def test_with_a_client_ca_only_callers_with_its_certificate_are_served(
    pki: Path, board: DesiredReplicasBoard
) -> None:
    publish(board)
    tls = TlsFiles(certfile=pki / "server.crt", keyfile=pki / "server.key", client_ca=pki / "ca.crt")
    async with serving(board, tls) as url:
        async with client(url, pki, cert=True) as http:
            assert (await http.get("/healthz")).text == "ok"
        async with client(url, pki) as http:
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
                await http.get("/healthz")
