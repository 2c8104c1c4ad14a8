"""KV capacity: admission waits for room, decoding growth preempts the newest sequence, which recomputes."""

from __future__ import annotations

from autoscaler.engine.replica import ReplicaEngine
from autoscaler.engine.sequence import EngineSequence
from autoscaler.profiles.schema import Profile
from tests.engine.helpers import run


def test_admission_waits_until_the_context_fits(profile: Profile) -> None:
    engine = ReplicaEngine(profile, kv_capacity_tokens=1500)
    first = EngineSequence(0, prompt_tokens=1000, output_tokens=20, arrival=0.0)
    second = EngineSequence(1, prompt_tokens=1000, output_tokens=20, arrival=0.0)
    run(engine, [(0.0, first), (0.0, second)])
    assert second.first_token_time > first.finish_time
    assert engine.preemptions == 0


def test_decode_growth_preempts_the_newest_and_it_is_recomputed(profile: Profile) -> None:
    engine = ReplicaEngine(profile, kv_capacity_tokens=1100)
    old = EngineSequence(0, prompt_tokens=500, output_tokens=200, arrival=0.0)
    new = EngineSequence(1, prompt_tokens=500, output_tokens=200, arrival=0.0)
    done = run(engine, [(0.0, old), (0.0, new)])
    assert engine.preemptions >= 1
    assert new.preemptions >= 1 and old.preemptions == 0
    assert done[0] is old
    assert new.generated == new.output_tokens
    assert engine.kv_used_tokens == 0 and engine.num_running == 0


def test_kv_use_never_exceeds_capacity(profile: Profile) -> None:
    engine = ReplicaEngine(profile, kv_capacity_tokens=5000)
    seqs = [
        EngineSequence(i, prompt_tokens=300 + 37 * i, output_tokens=100 + 13 * i, arrival=0.0)
        for i in range(12)
    ]
    pending = [(0.01 * i, seq) for i, seq in enumerate(seqs)]
    peak = 0
    while pending or engine.next_event_time() < float("inf"):
        if pending and pending[0][0] <= engine.next_event_time():
            at, seq = pending.pop(0)
            engine.admit(seq, at)
        else:
            engine.advance(engine.next_event_time())
        peak = max(peak, engine.kv_used_tokens)
    assert peak <= 5000
    assert all(seq.generated == seq.output_tokens for seq in seqs)
