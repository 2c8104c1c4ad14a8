"""The controller's event loop never waits on the policy: Lease renewals and ``/healthz`` run through a cycle.

A ticker on the loop sleeps 10 ms at a time and records the longest gap between its wake-ups while one cycle
runs. The policy step runs in a worker thread (``cycle._step``), so a step that holds its thread for a second
leaves the loop free: the gap stays far below the step's second (on a quiet machine it is a few milliseconds;
the bound here is loose because a shared CI machine can pause any process for a while), and a step that
overruns its time-out holds the cycle instead of the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from autoscaler.controller import cycle
from autoscaler.core.decision import Decision
from autoscaler.core.observation import Observation
from autoscaler.policy.state import PolicyState
from autoscaler.policy.step import Autoscaler
from tests.contract.controller.conftest import (
    POOL,
    ControllerFactory,
    add_autoscaler,
    add_pool,
    assert_everything_written_is_valid,
    autoscaler,
    condition,
)
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.prometheus_api import FakePrometheus

SLOW_STEP_S = 1.0
MAX_LOOP_GAP_S = 0.4  # a step run on the loop would stall it for all of SLOW_STEP_S


async def _longest_gap(work: Awaitable[str]) -> tuple[str, float]:
    """Run ``work`` beside a 10 ms ticker; the outcome and the longest the ticker waited beyond its sleep."""
    longest = 0.0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal longest
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            longest = max(longest, time.perf_counter() - before - 0.01)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)  # the ticker is running before the work starts
    try:
        outcome = await work
    finally:
        done.set()
        await ticker
    return outcome, longest


def _slow_step(seconds: float) -> Callable[..., tuple[Decision, PolicyState]]:
    real = Autoscaler.step

    def step(
        self: Autoscaler, observation: Observation, state: PolicyState, *, now: float
    ) -> tuple[Decision, PolicyState]:
        time.sleep(seconds)  # holds the thread it runs on, as a long computation would
        return real(self, observation, state, now=now)

    return step


@pytest.mark.parametrize(
    "signals",
    [{"rate": 100.0}, {"rate": 1e308}, {"rate": 100.0, "prompt": 1e30}],
    ids=["ordinary load", "rate 1e308", "prompt 1e30"],
)
async def test_a_cycle_with_a_slow_policy_step_never_blocks_the_loop(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    monkeypatch: pytest.MonkeyPatch,
    signals: dict[str, float],
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    for phase in ("prefill", "decode"):
        prom.load(POOL, phase, **signals)
    monkeypatch.setattr(Autoscaler, "step", _slow_step(SLOW_STEP_S))
    controller = make_controller()
    assert await controller.elect()

    started = time.perf_counter()
    outcome, gap = await _longest_gap(controller.reconcile("default", POOL))

    assert outcome == "decided"
    assert time.perf_counter() - started >= SLOW_STEP_S  # the slow step did run inside the cycle
    assert gap < MAX_LOOP_GAP_S, f"the loop waited {gap * 1000:.0f} ms"


async def test_a_policy_step_past_its_time_out_holds_the_cycle(
    kube: FakeKubeApiServer,
    prom: FakePrometheus,
    make_controller: ControllerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    for phase in ("prefill", "decode"):
        prom.load(POOL, phase, rate=100.0)
    monkeypatch.setattr(cycle, "POLICY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(Autoscaler, "step", _slow_step(1.0))
    controller = make_controller()
    assert await controller.elect()

    outcome, gap = await _longest_gap(controller.reconcile("default", POOL))

    assert outcome == "held"
    assert condition(kube, "ScalingActive")["reason"] == "PolicyTimeout"
    assert_everything_written_is_valid(kube)
    assert gap < MAX_LOOP_GAP_S
