"""Hand-computable timings of one replica: prefill step, decode steps, chunking, batching."""

from __future__ import annotations

import pytest

from autoscaler.engine.replica import ReplicaEngine
from autoscaler.engine.sequence import EngineSequence
from autoscaler.profiles.schema import Profile
from tests.engine.helpers import run


def _prefill_step(profile: Profile, tokens: int, *, done: int = 0, batch: int = 0, context: int = 0) -> float:
    pairs = (done + tokens) ** 2 - done**2
    return profile.step_time(prefill_tokens=tokens, attention_pairs=pairs, batch=batch, context=context)


def test_one_request_prefills_in_one_step_then_decodes_one_token_per_step(profile: Profile) -> None:
    seq = EngineSequence(0, prompt_tokens=100, output_tokens=10, arrival=0.0)
    run(ReplicaEngine(profile), [(0.0, seq)])
    prefill = _prefill_step(profile, 100)
    decode = profile.step_time(prefill_tokens=0, attention_pairs=0, batch=1, context=101)
    assert seq.first_token_time == pytest.approx(prefill)
    assert seq.finish_time == pytest.approx(prefill + 9 * decode)


def test_long_prompt_is_chunked_by_the_token_budget(profile: Profile) -> None:
    budget = profile.max_num_batched_tokens
    seq = EngineSequence(0, prompt_tokens=2 * budget + 10, output_tokens=1, arrival=0.0)
    run(ReplicaEngine(profile), [(0.0, seq)])
    expected = (
        _prefill_step(profile, budget)
        + _prefill_step(profile, budget, done=budget)
        + _prefill_step(profile, 10, done=2 * budget)
    )
    assert seq.first_token_time == pytest.approx(expected)
    assert seq.finish_time == seq.first_token_time


def test_two_short_prompts_share_one_prefill_step(profile: Profile) -> None:
    first = EngineSequence(0, prompt_tokens=300, output_tokens=1, arrival=0.0)
    second = EngineSequence(1, prompt_tokens=200, output_tokens=1, arrival=0.0)
    engine = ReplicaEngine(profile)
    run(engine, [(0.0, first), (0.0, second)])
    # The first admission starts a step alone; the second waits for the next step boundary.
    assert first.first_token_time == pytest.approx(_prefill_step(profile, 300))
    assert second.first_token_time == pytest.approx(first.first_token_time + _prefill_step(profile, 200))


def test_arrival_during_decoding_joins_at_the_next_step_boundary(profile: Profile) -> None:
    first = EngineSequence(0, prompt_tokens=100, output_tokens=50, arrival=0.0)
    second = EngineSequence(1, prompt_tokens=100, output_tokens=1, arrival=0.0)
    prefill = _prefill_step(profile, 100)
    decode = profile.step_time(prefill_tokens=0, attention_pairs=0, batch=1, context=101)
    arrival = prefill + 2.5 * decode
    run(ReplicaEngine(profile), [(0.0, first), (arrival, second)])
    boundary = prefill + 3 * decode
    # The shared step decodes ``first`` (context 104) next to the prefill of ``second``.
    shared = profile.step_time(prefill_tokens=100, attention_pairs=100**2, batch=1, context=104)
    assert second.first_token_time == pytest.approx(boundary + shared)


def test_prefill_only_replica_hands_over_at_prefill_end(profile: Profile) -> None:
    seq = EngineSequence(0, prompt_tokens=1000, output_tokens=100, arrival=0.0)
    left = run(ReplicaEngine(profile, prefill_only=True), [(0.0, seq)])
    assert left == [seq]
    assert seq.prefill_done_time == pytest.approx(_prefill_step(profile, 1000))
    assert seq.generated == 0
    assert seq.computed == seq.target == 1000


def test_decode_replica_produces_the_first_token_after_one_decode_step(profile: Profile) -> None:
    seq = EngineSequence(0, prompt_tokens=1000, output_tokens=3, arrival=0.0)
    seq.computed = seq.target  # KV received from a prefill replica
    run(ReplicaEngine(profile), [(1.0, seq)])
    decode = profile.step_time(prefill_tokens=0, attention_pairs=0, batch=1, context=1000)
    assert seq.first_token_time == pytest.approx(1.0 + decode)
    assert seq.finish_time == pytest.approx(1.0 + 3 * decode)
