"""The chart's Grafana dashboard against the real thing: every PromQL expression parses (``promtool check
rules``) and answers series (``promtool query instant``) from a real Prometheus scraping what a cluster runs.

Bounded, loopback only: two emulated vLLM replicas (prefill and decode) behind the router in P/D, the
controller (in process, against the fake API server) deciding for their pool and serving its gauges, one
Prometheus scraping all four every second; 4 requests/s for at most 40 s. For the refusals panel: one
malformed request, and a burst the router's admission queue (one request per endpoint, one waiting) sheds.
A query that answers nothing names its panel: either the dashboard asks for a series no component exports,
or a label or name drifted.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes.aio import client
from prometheus_client import generate_latest

from autoscaler.adapters.metrics_exporter import board_registry
from autoscaler.adapters.prometheus_signals import PrometheusSignals
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.cli.controller import build_controller
from autoscaler.controller.loop import Controller, ControllerSettings
from tests.contract.controller.conftest import POOL, add_autoscaler, add_pool, autoscaler
from tests.contract.kubernetes.conftest import AUTOSCALERS, LEADER_WORKER_SETS
from tests.fakes.kube_apiserver import FakeKubeApiServer, running_server
from tests.integration import dashboard
from tests.integration.processes import autoscaler_process
from tests.integration.prometheus_server import free_port, prometheus_server
from tests.integration.text_exporter import text_exporter

pytestmark = pytest.mark.timeout(180)

RATE_INTERVAL = "10s"  # ten 1 s scrapes: every rate has samples once the load has run that long
RATE = 4.0
BURST = 8  # at once, against one request per endpoint and one waiting: most are shed (429)
LOAD_S = 40.0
MODEL = "emulated-llama"
PROFILE = "llama-3.1-8b/h100-tp1"


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("SKIPPED LOUDLY: promtool is not installed (apt-get install prometheus ships it)")
    return binary


def concrete() -> list[dashboard.Query]:
    return [
        dashboard.Query(q.where, dashboard.promql(q.expr, rate_interval=RATE_INTERVAL))
        for q in dashboard.queries(dashboard.load())
    ]


def test_every_panel_queries_prometheus_and_is_described() -> None:
    board = dashboard.load()
    assert board["uid"] and board["title"]
    for panel in dashboard.panels(board):
        assert panel["targets"], f"{panel['title']}: no query"
        assert panel["description"], f"{panel['title']}: no description"
        assert panel["datasource"]["uid"] == "${datasource}", f"{panel['title']}: a fixed datasource"


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    queries = concrete()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query_{i}", "expr": q.expr} for i, q in enumerate(queries)],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


@pytest.fixture
def kube() -> Iterator[FakeKubeApiServer]:
    yield from running_server(custom_types=[LEADER_WORKER_SETS, AUTOSCALERS])


@asynccontextmanager
async def _controller(
    kube: FakeKubeApiServer, prometheus_url: str, board: DesiredReplicasBoard
) -> AsyncIterator[Controller]:
    class WallClock:
        def now(self) -> float:
            return time.time()

    async with client.ApiClient(client.Configuration(host=kube.url)) as api:
        controller = build_controller(
            api,
            settings=ControllerSettings(identity="it", lease_namespace="default", namespace="default"),
            signals=PrometheusSignals(prometheus_url),
            board=board,
            clock=WallClock(),
        )
        assert await controller.elect()
        yield controller


async def _load(router: str, *, seconds: float) -> None:
    """Open loop, RATE requests/s of distinct long prompts (remote prefill pays off); one malformed."""
    async with httpx.AsyncClient(base_url=router, timeout=30.0) as http:
        bad = await http.post(
            "/v1/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400

        async def one(i: int) -> int:
            prompt = " ".join(f"w{i}-{j % 89}" for j in range(1500))
            body = {"model": MODEL, "prompt": prompt, "max_tokens": 16, "ignore_eos": True}
            return (await http.post("/v1/completions", json=body)).status_code

        burst = await asyncio.gather(*(one(-1 - i) for i in range(BURST)))
        assert 429 in burst, burst
        tasks = []
        start = time.monotonic()
        for i in range(int(RATE * seconds)):
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)


async def _empty(binary: str, url: str, queries: list[dashboard.Query]) -> list[str]:
    """The queries that answer no series now."""

    async def answers(query: dashboard.Query) -> bool:
        process = await asyncio.create_subprocess_exec(
            binary, "query", "instant", "-o", "json", url, query.expr, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        return process.returncode == 0 and bool(json.loads(out))

    found = await asyncio.gather(*(answers(q) for q in queries))
    return [f"{q.where}: {q.expr}" for q, ok in zip(queries, found, strict=True) if not ok]


@pytest.mark.slow
async def test_every_panel_answers_series_from_the_engines_the_router_and_the_controller(
    kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    binary = promtool()
    queries = concrete()
    add_pool(kube)
    add_autoscaler(kube, autoscaler(metrics={"window": RATE_INTERVAL}))
    board = DesiredReplicasBoard()
    registry = board_registry(board)
    ports = [free_port() for _ in range(3)]
    prefill, decode, router = (f"http://127.0.0.1:{p}" for p in ports)
    config = {
        "pool": POOL,
        "host": "127.0.0.1",
        "port": ports[2],
        "endpoints": {
            "static": [
                {"url": prefill, "name": "p", "phase": "prefill"},
                {"url": decode, "name": "d", "phase": "decode"},
            ]
        },
        "admission": {"max_requests_per_endpoint": 1, "max_queued_requests": 1},
    }
    (tmp_path / "router.yaml").write_text(yaml.safe_dump(config))
    with ExitStack() as stack:
        for url, port, role in ((prefill, ports[0], "prefill"), (decode, ports[1], "decode")):
            emulate = ["emulate", "--profile", PROFILE, "--port", str(port), "--model", MODEL, "--role", role]
            stack.enter_context(
                autoscaler_process([*emulate, "--speed", "10"], url, tmp_path / f"{role}.log")
            )
        route = ["router", "--config", str(tmp_path / "router.yaml")]
        stack.enter_context(autoscaler_process(route, router, tmp_path / "router.log"))
        controller_target = stack.enter_context(text_exporter(lambda: generate_latest(registry).decode()))
        targets = [
            (prefill.removeprefix("http://"), {"pool": POOL, "phase": "prefill"}),
            (decode.removeprefix("http://"), {"pool": POOL, "phase": "decode"}),
            (router.removeprefix("http://"), {}),  # the router and the controller label their own series
            (controller_target, {}),
        ]
        (tmp_path / "prometheus").mkdir()
        url = stack.enter_context(prometheus_server(targets, tmp_path / "prometheus"))
        async with _controller(kube, url, board) as controller:
            load = asyncio.create_task(_load(router, seconds=LOAD_S))
            deadline = time.monotonic() + LOAD_S - 2.0
            empty = [q.where for q in queries]
            while empty and time.monotonic() < deadline:
                await asyncio.sleep(3.0)
                assert await controller.reconcile("default", POOL) == "decided"
                await asyncio.sleep(1.5)  # the controller's gauges scraped
                empty = await _empty(binary, url, queries)
            # the check itself: a series nobody exports answers nothing
            control = dashboard.Query("control", "autoscaler_no_such_series")
            unanswered = await _empty(binary, url, [control])
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)
    assert unanswered == ["control: autoscaler_no_such_series"]
    assert not empty, "queries that answered no series:\n" + "\n".join(empty)
