"""The model reproduces the reference's worked sizings and behaves as documented at the edges."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.capacity import decode
from autoscaler.capacity import plan as planning
from autoscaler.capacity.load import Load
from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import LatencyTarget, Slo

LLAMA_8B_H100 = load_profile("llama-3.1-8b/h100-tp1")


def test_mooncake_mean_load_is_one_or_two_prefill_and_one_decode() -> None:
    """performance-and-models.md 4.3: Mooncake conversation (3.40 req/s, 12,035 in / 343 out, 37 % reuse)
    on Llama-3.1-8B/H100 is about 1-2 prefill and 1 decode replica at a 25 ms ITL target."""
    load = Load.of(rate=3.40, prompt_tokens=12_035, output_tokens=343, prefix_hit_rate=0.366, prompt_cv=1.45)
    slo = Slo(ttft=LatencyTarget(5.0), itl=LatencyTarget(0.025))
    result = planning.plan(LLAMA_8B_H100, load, slo, ServingMode.DISAGGREGATED)
    assert 1 - 1 <= result.phases[Phase.PREFILL].replicas <= 2 + 1
    assert abs(result.phases[Phase.DECODE].replicas - 1) <= 1
    assert result.phases[Phase.DECODE].itl_s <= 0.025


def test_decode_batch_is_the_littles_law_fixed_point() -> None:
    load = Load.of(rate=40.0, prompt_tokens=1_000, output_tokens=200)
    replicas = np.array(2.0)
    n = decode.mean_batch(LLAMA_8B_H100, load, replicas)
    step = LLAMA_8B_H100.decode_step_time(float(n), float(decode.context_per_sequence(load)))
    assert float(n) == pytest.approx(40.0 * 200 / 2 * step)


@pytest.mark.parametrize(
    ("slo", "phase"),
    [
        (Slo(LatencyTarget(2.0), LatencyTarget(0.005)), "decode"),
        (Slo(LatencyTarget(0.01), LatencyTarget(0.05)), "prefill"),
    ],
    ids=["itl below one decode step", "ttft below one prefill"],
)
def test_slo_below_unloaded_latency_is_unattainable(slo: Slo, phase: str) -> None:
    load = Load.of(rate=10.0, prompt_tokens=2_000, output_tokens=100)
    with pytest.raises(planning.UnattainableSlo, match=phase):
        planning.plan(LLAMA_8B_H100, load, slo, ServingMode.DISAGGREGATED)


def test_prefix_hits_reduce_prefill_replicas() -> None:
    slo = Slo(LatencyTarget(1.0), LatencyTarget(0.05))
    cold = Load.of(rate=60.0, prompt_tokens=4_000, output_tokens=200)
    warm = Load.of(rate=60.0, prompt_tokens=4_000, output_tokens=200, prefix_hit_rate=0.6)
    plan_cold = planning.plan(LLAMA_8B_H100, cold, slo, ServingMode.DISAGGREGATED)
    plan_warm = planning.plan(LLAMA_8B_H100, warm, slo, ServingMode.DISAGGREGATED)
    assert plan_warm.phases[Phase.PREFILL].replicas < plan_cold.phases[Phase.PREFILL].replicas
    assert plan_warm.phases[Phase.DECODE].replicas == plan_cold.phases[Phase.DECODE].replicas


def test_queueing_adds_prefill_replicas_beyond_mean_throughput() -> None:
    """A tight TTFT with bursty arrivals needs more replicas than mean load / throughput."""
    load = Load.of(rate=30.0, prompt_tokens=3_000, output_tokens=100, arrival_cv=3.0)
    result = planning.plan(
        LLAMA_8B_H100, load, Slo(LatencyTarget(0.5), LatencyTarget(0.1)), ServingMode.DISAGGREGATED
    )
    prefill = result.phases[Phase.PREFILL]
    assert prefill.binding == "ttft-queueing"
    assert prefill.utilisation < 0.8


def test_aggregated_describes_one_replica_set() -> None:
    load = Load.of(rate=50.0, prompt_tokens=1_200, output_tokens=250)
    result = planning.plan(
        LLAMA_8B_H100, load, Slo(LatencyTarget(1.0), LatencyTarget(0.05)), ServingMode.AGGREGATED
    )
    assert result.prefill is result.decode
    assert result.gpus == result.prefill.replicas
    assert result.prefill.ttft_s <= 1.0 and result.decode.itl_s <= 0.05


@pytest.mark.parametrize("mode", list(ServingMode))
def test_a_prefill_step_cost_lengthens_ttft_and_never_saves_replicas(mode: ServingMode) -> None:
    """``prefill.per_step_s``: every step that carries prompt tokens pays it once, so a lone prompt's
    prefill takes one such cost per chunk and no sizing gets cheaper for it."""
    cost = LLAMA_8B_H100.prefill.per_step_s.model_copy(update={"value": 0.02})
    costly = LLAMA_8B_H100.model_copy(
        update={"prefill": LLAMA_8B_H100.prefill.model_copy(update={"per_step_s": cost})}
    )
    chunk = LLAMA_8B_H100.max_num_batched_tokens
    assert costly.prefill_time(2 * chunk) == pytest.approx(LLAMA_8B_H100.prefill_time(2 * chunk) + 2 * 0.02)
    load = Load.of(rate=50.0, prompt_tokens=1_200, output_tokens=250)
    slo = Slo(LatencyTarget(1.0), LatencyTarget(0.05))
    plain, slower = (planning.plan(p, load, slo, mode) for p in (LLAMA_8B_H100, costly))
    assert slower.prefill.ttft_s > plain.prefill.ttft_s
    assert slower.gpus >= plain.gpus
