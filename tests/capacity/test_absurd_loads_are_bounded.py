"""Sizing cost does not grow with the load: an absurd rate or prompt is answered (or refused) at once.

The policy sizes whatever Prometheus reports, on the controller's loop; ``plan`` sizes what it is typed.
A rate of 1e308 once made the prefill search start at 1e306 replicas and Erlang C loop over every one of them.
That took minutes; bounded work takes milliseconds. The time-out below tells the two apart without a timed
assertion that a loaded machine could fail (the 1 s figure is shown by running ``autoscaler plan``).
"""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.capacity import plan as planning
from autoscaler.capacity import queueing
from autoscaler.capacity.load import LIMITS, Load
from autoscaler.config.profiles import load_profile
from autoscaler.core.decision import Reason
from autoscaler.core.phases import ServingMode
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.policy.state import PolicyState
from autoscaler.policy.step import step
from tests.policy.builders import make_settings, observation, phase_signals

PROFILE = load_profile("llama-3.1-8b/h100-tp1")
SLO = Slo(ttft=LatencyTarget(1.0), itl=LatencyTarget(0.05))
ABSURD = {
    "rate 1e308": {"rate": 1e308, "prompt_tokens": 1200.0},
    "rate 1e12": {"rate": 1e12, "prompt_tokens": 1200.0},
    "rate 3e6": {"rate": 3e6, "prompt_tokens": 1200.0},
    "prompt 1e30": {"rate": 120.0, "prompt_tokens": 1e30},
    "both": {"rate": 1e300, "prompt_tokens": 1e300},
}
pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("mode", list(ServingMode), ids=[m.value for m in ServingMode])
@pytest.mark.parametrize("name", sorted(set(ABSURD) - {"both"}))  # 1e300 squared is inf - inf: edges refuse
def test_sizing_an_absurd_load_is_answered_at_once(name: str, mode: ServingMode) -> None:
    load = Load.of(output_tokens=250.0, **ABSURD[name])
    with pytest.raises(planning.UnattainableSlo):
        planning.plan(PROFILE, load, SLO, mode)


def test_a_load_beyond_the_replica_cap_says_so() -> None:
    load = Load.of(rate=3e6, prompt_tokens=1200.0, output_tokens=250.0)
    with pytest.raises(planning.UnattainableSlo, match="more than 4096 replicas"):
        planning.plan(PROFILE, load, SLO, ServingMode.DISAGGREGATED)


@pytest.mark.parametrize("name", sorted(ABSURD))
def test_the_policy_holds_on_an_absurd_observation(name: str) -> None:
    signals = phase_signals(rate=ABSURD[name]["rate"], prompt_tokens_mean=ABSURD[name]["prompt_tokens"])
    decision, _ = step(
        observation(60.0, prefill=signals, decode=signals), PolicyState(), make_settings(), now=60.0
    )
    for phase in decision.phases.values():
        assert (phase.replicas, phase.reason) == (phase.previous, Reason.HOLD_CONTRADICTORY_SIGNALS)


def test_erlang_c_costs_the_same_for_a_trillion_servers() -> None:
    waits = queueing.erlang_c(np.array([1e12, 1e300]), np.array([0.9e12, 0.5e300]))
    assert np.all((waits >= 0.0) & (waits <= 1.0))


def test_erlang_c_closed_form_matches_the_erlang_b_recursion() -> None:
    rng = np.random.default_rng(7)
    servers = np.floor(rng.uniform(1.0, 600.0, 2000))
    load = servers * rng.uniform(0.0, 0.999, 2000)
    blocking = np.ones_like(load)
    for k in range(1, int(servers.max()) + 1):  # the textbook recursion, as the reference
        blocking = np.where(k <= servers, load * blocking / (k + load * blocking), blocking)
    expected = servers * blocking / (servers - load * (1.0 - blocking))
    np.testing.assert_allclose(queueing.erlang_c(servers, load), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("values", "flagged"),
    [
        ({"rate": 120.0, "prompt_tokens": 1200.0, "output_tokens": 250.0}, 0),
        ({"rate": 1e308, "prompt_tokens": 1200.0, "output_tokens": 250.0}, 1),
        ({"rate": 120.0, "prompt_tokens": 1e30, "output_tokens": float("nan")}, 2),
        ({"rate": None, "prompt_tokens": None, "output_tokens": None}, 0),
    ],
    ids=["ordinary", "huge rate", "huge prompt and NaN output", "nothing given"],
)
def test_load_limits_name_each_value_out_of_bounds(values: dict[str, float | None], flagged: int) -> None:
    assert len(LIMITS.problems(**values)) == flagged
