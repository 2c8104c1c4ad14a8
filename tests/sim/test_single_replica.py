"""One aggregated replica and one request: the simulator's latencies are the engine's step times."""

from __future__ import annotations

import pytest

from autoscaler.core.phases import Phase
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.workloads.trace import Trace
from tests.sim.helpers import run
from tests.sim.scripted_policy import ScriptedPolicy


def test_one_request_on_one_replica(profile: Profile, slo: Slo) -> None:
    trace = Trace(name="one", arrival_s=[5.0], prompt_tokens=[1000], output_tokens=[11])
    one = {Phase.AGGREGATED: 1}
    result = run(trace, profile=profile, slo=slo, policy=ScriptedPolicy.fixed(one), initial=one)
    prefill = profile.step_time(prefill_tokens=1000, attention_pairs=1000**2, batch=0, context=0)
    decode = profile.step_time(prefill_tokens=0, attention_pairs=0, batch=1, context=1001)
    assert result.ttft_s[0] == pytest.approx(prefill)
    assert result.itl_s[0] == pytest.approx(decode)
    assert result.e2e_s[0] == pytest.approx(prefill + 10 * decode)


def test_disaggregated_ttft_adds_transfer_and_one_decode_step(profile: Profile, slo: Slo) -> None:
    trace = Trace(name="one", arrival_s=[5.0], prompt_tokens=[1000], output_tokens=[3])
    replicas = {Phase.PREFILL: 1, Phase.DECODE: 1}
    result = run(trace, profile=profile, slo=slo, policy=ScriptedPolicy.fixed(replicas), initial=replicas)
    prefill = profile.step_time(prefill_tokens=1000, attention_pairs=1000**2, batch=0, context=0)
    decode = profile.step_time(prefill_tokens=0, attention_pairs=0, batch=1, context=1000)
    assert result.ttft_s[0] == pytest.approx(prefill + profile.kv_transfer_time(1000) + decode)
    assert result.e2e_s[0] == pytest.approx(result.ttft_s[0] + 2 * decode)


def test_without_prefill_replicas_the_decode_replica_prefills_locally(profile: Profile, slo: Slo) -> None:
    trace = Trace(name="one", arrival_s=[5.0], prompt_tokens=[1000], output_tokens=[3])
    replicas = {Phase.PREFILL: 0, Phase.DECODE: 1}
    result = run(trace, profile=profile, slo=slo, policy=ScriptedPolicy.fixed(replicas), initial=replicas)
    prefill = profile.step_time(prefill_tokens=1000, attention_pairs=1000**2, batch=0, context=0)
    assert result.ttft_s[0] == pytest.approx(prefill)  # no KV transfer, first token from the prefill step
    assert result.prefix_query_tokens == 1000
