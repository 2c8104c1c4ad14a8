"""Optional ``external.metrics.k8s.io/v1beta1`` API over TLS: our desired replicas for a plain HPA.

Only one provider may serve this API group in a cluster (the APIService ``v1beta1.external.metrics.k8s.io``
is a singleton, and KEDA and prometheus-adapter both claim it), so use this only in a cluster with neither;
otherwise use the KEDA external scaler (``autoscaler.adapters.keda.scaler``) or the ``/metrics`` gauge
(``autoscaler.adapters.metrics_exporter``).

Routes (what kube-aggregator proxies to us):

- ``GET /apis/external.metrics.k8s.io/v1beta1``: discovery, an ``APIResourceList`` naming
  ``autoscaler_desired_replicas``;
- ``GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/autoscaler_desired_replicas
  ?labelSelector=autoscaler=llama,phase=decode``: an ``ExternalMetricValueList`` with one item per matching
  board entry, ``value`` a Kubernetes quantity string (``"7"``), ``timestamp`` the decision's time (RFC 3339);
- ``GET /healthz``: ``ok``.

The selector must name both ``autoscaler`` and ``phase`` with equality terms (``k=v``, ``k==v``): HPA sums
the items it receives, so a selector matching two phases would add them; anything else is BadRequest (400).
An unknown metric, or a selector that matches no published decision, answers a ``Status`` NotFound (404)
that says what was asked.

The HPA, with an ``AverageValue`` target of 1 (HPA: ``desired = ceil(value / 1)``; a ``Value`` target would
multiply by the current replicas)::

    metrics:
      - type: External
        external:
          metric:
            name: autoscaler_desired_replicas
            selector: {matchLabels: {autoscaler: llama, phase: decode}}
          target: {type: AverageValue, averageValue: "1"}

The APIService points at the controller's Service and carries the ``caBundle`` of the serving certificate.
With ``client_ca`` (the cluster's front-proxy CA) only callers presenting a certificate it signed, i.e. the
aggregator, are served; this server does not check the aggregator's user headers or do SubjectAccessReview.
"""

from __future__ import annotations

import dataclasses
import datetime
import ssl
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from autoscaler.adapters.publishing import BoardKey, DesiredReplicasBoard, Published

GROUP_VERSION = "external.metrics.k8s.io/v1beta1"
METRIC = "autoscaler_desired_replicas"
SELECTABLE = ("autoscaler", "phase")


class SelectorError(ValueError):
    """A label selector this API does not understand."""


def parse_selector(selector: str) -> dict[str, str]:
    """Equality terms of a Kubernetes label selector string (``a=b,c==d``) as a dict."""
    wanted: dict[str, str] = {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, sep, value = term.replace("==", "=").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key.endswith("!") or key not in SELECTABLE or not value:
            raise SelectorError(
                f"unsupported selector term {term!r}: use equality on {' and '.join(SELECTABLE)}"
            )
        wanted[key] = value
    if len(wanted) < len(SELECTABLE):
        # HPA sums the items it receives: a selector open on either key would add phases or autoscalers.
        raise SelectorError(f"name both {' and '.join(SELECTABLE)} in the selector (got {selector!r})")
    return wanted


def metric_value_list(
    board: DesiredReplicasBoard, *, namespace: str, wanted: dict[str, str]
) -> list[dict[str, Any]]:
    """The ``ExternalMetricValue`` items (none or one) for the entry ``wanted`` names in ``namespace``."""
    return [
        _item(key, entry)
        for key, entry in board.snapshot().items()
        if key.namespace == namespace
        and key.autoscaler == wanted["autoscaler"]
        and key.phase.value == wanted["phase"]
    ]


def _item(key: BoardKey, entry: Published) -> dict[str, Any]:
    stamp = datetime.datetime.fromtimestamp(entry.time, tz=datetime.UTC)
    return {
        "metricName": METRIC,
        "metricLabels": {"autoscaler": key.autoscaler, "phase": key.phase.value},
        "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "value": str(entry.desired),  # a whole number is its own canonical Kubernetes quantity
    }


def build_app(board: DesiredReplicasBoard) -> Starlette:
    async def discovery(_: Request) -> JSONResponse:
        resource = {
            "name": METRIC,
            "singularName": "",
            "namespaced": True,
            "kind": "ExternalMetricValueList",
            "verbs": ["get"],
        }
        return JSONResponse(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": GROUP_VERSION,
                "resources": [resource],
            }
        )

    async def metric(request: Request) -> JSONResponse:
        namespace, name = request.path_params["namespace"], request.path_params["metric"]
        if name != METRIC:
            return _status(404, "NotFound", f"no external metric {name!r}; this API serves {METRIC}")
        try:
            wanted = parse_selector(request.query_params.get("labelSelector", ""))
        except SelectorError as refused:
            return _status(400, "BadRequest", str(refused))
        items = metric_value_list(board, namespace=namespace, wanted=wanted)
        if not items:
            asked = ",".join(f"{k}={v}" for k, v in wanted.items())
            return _status(404, "NotFound", f"no decision published in namespace {namespace!r} for {asked}")
        return JSONResponse(
            {"kind": "ExternalMetricValueList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}
        )

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    base = f"/apis/{GROUP_VERSION}"
    return Starlette(
        routes=[
            Route(base, discovery),
            Route(base + "/namespaces/{namespace}/{metric}", metric),
            Route("/healthz", healthz),
        ]
    )


def _status(code: int, reason: str, message: str) -> JSONResponse:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return JSONResponse(body, status_code=code)


@dataclasses.dataclass(frozen=True, slots=True)
class TlsFiles:
    certfile: Path  # the serving certificate (chain), PEM
    keyfile: Path
    client_ca: Path | None = None  # when set, callers must present a certificate this CA signed


def external_metrics_server(
    board: DesiredReplicasBoard, *, host: str, port: int, tls: TlsFiles
) -> uvicorn.Server:
    """A uvicorn server for the API over TLS; run it with ``await server.serve()``."""
    config = uvicorn.Config(
        build_app(board),
        host=host,
        port=port,
        log_level="warning",
        ssl_certfile=tls.certfile,
        ssl_keyfile=tls.keyfile,
        ssl_ca_certs=None if tls.client_ca is None else str(tls.client_ca),
        ssl_cert_reqs=ssl.CERT_NONE if tls.client_ca is None else ssl.CERT_REQUIRED,
    )
    return uvicorn.Server(config)
