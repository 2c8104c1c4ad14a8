"""``spec.router.metricsUrl`` is fetched only where it names a Service of the resource's namespace or the
host the controller trusts (the chart's router), and only up to a size limit (no request forgery, no
unbounded read, no redirect elsewhere)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from autoscaler.adapters.router_metrics import RouterLoadReader, refusal
from tests.contract.controller.fake_router import FakeRouterMetrics

TRUSTED = frozenset({"inference-autoscaler-router.autoscaler-system.svc"})


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://router.serving.svc:8000/metrics", True),
        ("http://router.serving.svc.cluster.local:8000/metrics", True),
        ("https://router.serving.svc/metrics", True),
        ("http://inference-autoscaler-router.autoscaler-system.svc:8000/metrics", True),
        ("http://router.other.svc:8000/metrics", False),
        ("http://router.serving:8000/metrics", False),
        ("http://router:8000/metrics", False),
        ("http://evil.com/metrics", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://127.0.0.1:8081/metrics", False),
        ("http://user:pw@router.serving.svc/metrics", False),
        ("file:///etc/passwd", False),
        ("gopher://router.serving.svc/", False),
        ("http://router.serving.svc.evil.com/metrics", False),
    ],
    ids=[
        "service of the namespace",
        "service, cluster domain",
        "service over TLS",
        "the chart's router",
        "service of another namespace",
        "name.namespace without svc",
        "bare name",
        "outside host",
        "cloud metadata address",
        "loopback",
        "user info",
        "file scheme",
        "other scheme",
        "svc as a subdomain",
    ],
)
def test_only_services_of_the_namespace_and_the_trusted_router_are_fetched(url: str, allowed: bool) -> None:
    assert (refusal(url, namespace="serving", allowed_hosts=TRUSTED) is None) is allowed


@pytest.fixture
async def huge_router() -> AsyncIterator[str]:
    """A /metrics that streams far more than the limit, and a /redirect that points elsewhere."""

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        line = b'autoscaler_router_endpoint_in_flight_requests{endpoint="p"} 0\n' * 1000
        for _ in range(200):  # about 12 MB
            await response.write(line)
        return response

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/")

    app = web.Application()
    app.router.add_get("/metrics", huge)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_an_answer_past_the_size_limit_is_abandoned(huge_router: str) -> None:
    reader = RouterLoadReader(allowed_hosts=frozenset({"127.0.0.1"}), max_bytes=1024 * 1024)
    assert await reader.read(f"{huge_router}/metrics", namespace="serving") is None


async def test_a_redirect_is_not_followed(huge_router: str) -> None:
    reader = RouterLoadReader(allowed_hosts=frozenset({"127.0.0.1"}))
    assert await reader.read(f"{huge_router}/redirect", namespace="serving") is None


async def test_a_trusted_router_is_read(router_metrics: FakeRouterMetrics) -> None:
    router_metrics.endpoints = {"decode-0": (3.0, 10.0)}
    reader = RouterLoadReader(allowed_hosts=frozenset({"127.0.0.1"}))
    load = await reader.read(router_metrics.url, namespace="serving")
    assert load is not None and load["decode-0"].in_flight == 3.0
    assert router_metrics.requests == 1


async def test_a_refused_url_is_not_fetched(router_metrics: FakeRouterMetrics) -> None:
    router_metrics.endpoints = {"decode-0": (3.0, 10.0)}
    assert await RouterLoadReader().read(router_metrics.url, namespace="serving") is None
    assert router_metrics.requests == 0
