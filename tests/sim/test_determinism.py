"""Same seed, same run; another seed changes only what is random (start-up delays)."""

from __future__ import annotations

import numpy as np

from autoscaler.core.phases import Phase
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.workloads.trace import Trace
from tests.sim.helpers import run
from tests.sim.scripted_policy import ScriptedPolicy


def _trace() -> Trace:
    rng = np.random.default_rng(3)
    n = 3000
    return Trace(
        name="poisson",
        arrival_s=np.cumsum(rng.exponential(0.2, n)),
        prompt_tokens=rng.integers(100, 4000, n),
        output_tokens=rng.integers(1, 600, n),
    )


def test_same_seed_gives_identical_results(profile: Profile, slo: Slo) -> None:
    trace = _trace()
    start = {Phase.PREFILL: 1, Phase.DECODE: 1}
    policy = ScriptedPolicy(schedule=((0.0, start), (60.0, {Phase.PREFILL: 2, Phase.DECODE: 3})))
    first = run(trace, profile=profile, slo=slo, policy=policy, initial=start, seed=7)
    second = run(trace, profile=profile, slo=slo, policy=policy, initial=start, seed=7)
    other = run(trace, profile=profile, slo=slo, policy=policy, initial=start, seed=8)
    np.testing.assert_array_equal(first.ttft_s, second.ttft_s)
    np.testing.assert_array_equal(first.e2e_s, second.e2e_s)
    assert first.gpu_seconds == second.gpu_seconds
    assert not np.array_equal(first.ttft_s, other.ttft_s, equal_nan=True)
