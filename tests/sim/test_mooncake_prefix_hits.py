"""On the Mooncake conversation trace an unbounded cache hits 36.6 % of block references (Dynamo: 36.64 %)."""

from __future__ import annotations

import math

import pytest

from autoscaler.core.phases import Phase
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.workloads.trace import Trace
from tests.sim.helpers import run
from tests.sim.scripted_policy import ScriptedPolicy
from tests.workloads.conftest import mooncake_trace  # noqa: F401  (found as the trace tests find it)


def test_unbounded_cache_hits_36_6_percent_of_block_references(
    profile: Profile,
    slo: Slo,
    mooncake_trace: Trace,  # noqa: F811  (the fixture imported above; skips loudly when absent)
) -> None:
    trace = mooncake_trace
    capacity = profile.kv_cache.capacity_tokens.model_copy(update={"value": 1e12})
    unbounded = profile.model_copy(
        update={"kv_cache": profile.kv_cache.model_copy(update={"capacity_tokens": capacity})}
    )
    one = {Phase.AGGREGATED: 1}
    result = run(
        trace,
        profile=unbounded,
        slo=slo,
        policy=ScriptedPolicy.fixed(one),
        initial=one,
        drain_s=1e9,
        client_timeout_s=math.inf,  # patient clients: the point is what the cache holds, not who waits
    )
    assert result.finished.all()
    assert result.prefix_query_blocks == 288_500
    assert result.prefix_hit_blocks / result.prefix_query_blocks == pytest.approx(0.366, abs=0.0005)
