"""The router's admission queue and scale from zero in the simulator, on the shipped scenarios shortened.

Issue #16's targets, each a behaviour: a flash crowd is served better and for fewer GPU-hours with the
queue than without, and nothing is served after its client gave up; a pool at zero wakes on its first
request (within a poll of the controller's wake watch), costs nothing while idle, loses nothing, and serves
that request after the wake and the start-up.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.sim.driver import RunResult
from autoscaler.sim.experiment import build_trace, run_policy
from autoscaler.sim.scenario import Scenario, default_scenario_path, load_scenario

SIMULATIONS = default_scenario_path().parent
pytestmark = pytest.mark.timeout(120)


def shortened(name: str, duration_s: float, points: list[list[float]]) -> Scenario:
    scenario = load_scenario(SIMULATIONS / f"{name}.yaml")
    arrivals = scenario.workload.arrivals.model_copy(update={"points": points})  # type: ignore[union-attr]
    workload = scenario.workload.model_copy(update={"duration_s": duration_s, "arrivals": arrivals})
    return scenario.model_copy(update={"workload": workload})


def attainment(run: RunResult, scenario: Scenario) -> float:
    slo = scenario.slo.build()
    ok = (
        run.finished
        & (run.ttft_s <= slo.ttft.seconds)
        & ((run.output_tokens <= 1) | (run.itl_s <= slo.itl.seconds))
    )
    return float(ok.mean())


CROWD = shortened("flash-crowd-10x", 600, [[0, 3], [120, 3], [130, 30], [280, 30], [290, 3], [600, 3]])


@pytest.fixture(scope="module")
def crowd_runs() -> dict[bool, RunResult]:
    trace = build_trace(CROWD, base_dir=SIMULATIONS)
    return {
        queued: run_policy(CROWD.model_copy(update={"router_queue": queued}), trace=trace, name="ours")
        for queued in (True, False)
    }


def test_flash_crowd_attains_more_for_fewer_gpu_hours_with_the_router_queue(
    crowd_runs: dict[bool, RunResult],
) -> None:
    queued, direct = crowd_runs[True], crowd_runs[False]
    assert attainment(queued, CROWD) > attainment(direct, CROWD)
    assert queued.gpu_seconds < direct.gpu_seconds
    assert queued.shed > 0 and direct.shed == 0  # the TTL sheds in the router what would be served late


@pytest.mark.parametrize("queued", [True, False])
def test_nothing_is_served_after_its_client_gave_up(crowd_runs: dict[bool, RunResult], queued: bool) -> None:
    run = crowd_runs[queued]
    assert float(np.nanmax(run.e2e_s)) <= CROWD.client_timeout_s
    lost = run.ttft_s.size - int(run.finished.sum())
    assert lost == run.abandoned + run.shed + run.rejected


def test_idle_pool_at_zero_wakes_on_its_first_request_and_loses_nothing() -> None:
    scenario = shortened("idle-then-burst", 780, [[0, 0], [599, 0], [600, 2], [780, 2]])
    run = run_policy(scenario, trace=build_trace(scenario, base_dir=SIMULATIONS), name="ours")
    first = int(np.argmin(run.arrival_s))
    arrival = float(run.arrival_s[first])
    assert run.finished.all()  # zero lost
    assert sum(life.seconds(arrival) for life in run.lifetimes) == 0  # nothing paid while idle
    woken = [life for life in run.lifetimes if life.created >= arrival]
    assert {life.phase.value for life in woken} == {"prefill", "decode"}  # both phases, together
    wake = min(life.created for life in woken)
    # Within one poll of the controller's wake watch (SimSettings.wake_poll_s), not at the next 30 s step;
    # the control interval then counts from the wake.
    assert wake - arrival <= 2.0
    after = [d.time for d in run.decisions if d.time >= wake]
    assert after[0] == wake and np.allclose(np.diff(after), scenario.control.interval_s)
    # Served once a decode replica is up (it prefills locally until a prefill replica is).
    ready = min(life.ready_at for life in woken if life.phase.value == "decode")
    assert math.isclose(run.ttft_s[first], ready - arrival, abs_tol=1.0)
    decision = next(d for d in run.decisions if d.time >= arrival)
    assert all(
        d.reason.value == "Activated" and "woken from zero" in d.message for d in decision.phases.values()
    )


def test_same_seed_same_result_with_the_router_queue(crowd_runs: dict[bool, RunResult]) -> None:
    again = run_policy(CROWD, trace=build_trace(CROWD, base_dir=SIMULATIONS), name="ours")
    first = crowd_runs[True]
    assert np.array_equal(again.ttft_s, first.ttft_s, equal_nan=True)
    assert (again.gpu_seconds, again.shed, again.abandoned) == (
        first.gpu_seconds,
        first.shed,
        first.abandoned,
    )
