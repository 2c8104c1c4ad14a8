"""Requests that cannot meet the SLO even alone on an idle replica are counted, each under its reason."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.core.phases import ServingMode
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.feasibility import feasibility
from autoscaler.sim.workloads.trace import Trace

# The H100 profile prefills 40k tokens in about 1.9 s and holds 432k KV tokens; a decode step of one
# sequence at 1k context takes about 7.5 ms.
CASES = [
    ("short requests are all feasible", [(1000, 200)], 1.0, 0.03, ServingMode.DISAGGREGATED, {}),
    (
        "a 40k-token prefill misses a 1 s TTFT but meets 3 s",
        [(40_000, 10), (1000, 10)],
        1.0,
        0.03,
        ServingMode.DISAGGREGATED,
        {"prefill_exceeds_ttft": 1},
    ),
    ("the same prefill meets a 3 s TTFT", [(40_000, 10)], 3.0, 0.03, ServingMode.DISAGGREGATED, {}),
    (
        "a context beyond the KV cache is refused, counted once under its first reason",
        [(430_000, 5_000)],
        1.0,
        0.03,
        ServingMode.AGGREGATED,
        {"exceeds_kv_cache": 1},
    ),
    (
        "an ITL target below one step alone is unattainable for every multi-token output",
        [(1000, 200), (1000, 1)],
        1.0,
        0.005,
        ServingMode.AGGREGATED,
        {"decode_exceeds_itl": 1},
    ),
]


@pytest.mark.parametrize(
    ("requests", "ttft_s", "itl_s", "mode", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_infeasible_requests_are_counted_by_reason(
    profile: Profile,
    requests: list[tuple[int, int]],
    ttft_s: float,
    itl_s: float,
    mode: ServingMode,
    expected: dict[str, int],
) -> None:
    trace = Trace(
        name="t",
        arrival_s=np.arange(len(requests), dtype=float),
        prompt_tokens=[p for p, _ in requests],
        output_tokens=[o for _, o in requests],
    )
    result = feasibility(
        trace, profile=profile, slo=Slo(ttft=LatencyTarget(ttft_s), itl=LatencyTarget(itl_s)), mode=mode
    )
    assert {k: v for k, v in result.counts.items() if v} == expected
    assert int((~result.feasible).sum()) == sum(expected.values())


def test_a_prefix_cached_earlier_makes_a_long_prompt_feasible(profile: Profile) -> None:
    """The second 40k-token prompt repeats the first's blocks: a perfect cache leaves one token to compute."""
    blocks = 40_000 // 500
    trace = Trace(
        name="repeat",
        arrival_s=[0.0, 1.0],
        prompt_tokens=[40_000, 40_000],
        output_tokens=[10, 10],
        block_offsets=[0, blocks, 2 * blocks],
        block_hashes=list(range(blocks)) * 2,
        block_tokens=500,
    )
    slo = Slo(ttft=LatencyTarget(1.0), itl=LatencyTarget(0.03))
    result = feasibility(trace, profile=profile, slo=slo, mode=ServingMode.DISAGGREGATED)
    assert result.feasible.tolist() == [False, True]
