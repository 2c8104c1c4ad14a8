"""Replaying constant-rate stages through one engine (``autoscaler.sim.stage_replay``)."""

from __future__ import annotations

import pytest

from autoscaler.config.profiles import load_profile
from autoscaler.profiles.calibration import Stage
from autoscaler.profiles.schema import ClientLatency, ProvenanceKind, Quantity
from autoscaler.sim.stage_replay import replay_stages

PROFILE = load_profile("llama-3.1-8b/h100-tp1")


def _stage(rate: float, duration: float) -> Stage:
    return Stage(
        rate=rate,
        duration_s=duration,
        prompt_tokens=600,
        shared_prefix_tokens=100,
        output_tokens=50,
        groups=2,
        prompts_per_group=2,
    )


def test_a_lone_request_takes_its_prefill_step_then_one_step_per_token() -> None:
    (lone,) = replay_stages(PROFILE, [_stage(rate=0.01, duration=100)])  # one request, an idle replica
    assert lone.requests == 1 and lone.unfinished == 0
    prefill = PROFILE.prefill_time(600)
    decode = PROFILE.decode_step_time(1, 0)  # contexts grow within a stretch: step time taken at its start
    assert lone.ttft_mean_s == pytest.approx(prefill)
    assert lone.tpot_s == pytest.approx(decode, rel=0.05)
    assert lone.e2e_mean_s == pytest.approx(prefill + 49 * lone.tpot_s)


def test_the_prefix_cache_makes_repeated_prompts_cheap_and_stages_run_back_to_back() -> None:
    first, second = replay_stages(PROFILE, [_stage(rate=1.0, duration=20), _stage(rate=2.0, duration=20)])
    assert (first.requests, second.requests) == (20, 40)
    assert second.ttft_mean_s < PROFILE.prefill_time(600)  # four prompts, all cached after their first use


def test_the_client_latency_of_a_profile_is_added_to_the_first_token() -> None:
    lag = ClientLatency(
        first_token_s=Quantity(value=0.01, kind=ProvenanceKind.ASSUMED, source="test"),
        first_token_steps=Quantity(value=1.0, kind=ProvenanceKind.ASSUMED, source="test"),
    )
    stage = _stage(rate=0.01, duration=100)
    (plain,) = replay_stages(PROFILE, [stage])
    (lagged,) = replay_stages(PROFILE.model_copy(update={"client": lag}), [stage])
    assert lagged.ttft_mean_s == pytest.approx(plain.ttft_mean_s + 0.01 + plain.tpot_s, rel=1e-3)
    assert lagged.e2e_mean_s == plain.e2e_mean_s


def test_replays_are_deterministic_for_a_seed() -> None:
    stages = [_stage(rate=5.0, duration=10)]
    assert replay_stages(PROFILE, stages, seed=3) == replay_stages(PROFILE, stages, seed=3)
