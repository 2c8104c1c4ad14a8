"""The engine hooks the emulator drives: abort, the current segment's step clock, observable evictions."""

from __future__ import annotations

import math

import pytest

from autoscaler.engine.prefix_cache import PrefixCache
from autoscaler.engine.replica import ReplicaEngine
from autoscaler.engine.sequence import EngineSequence
from autoscaler.profiles.schema import Profile


def _drain(engine: ReplicaEngine) -> list[EngineSequence]:
    done: list[EngineSequence] = []
    while math.isfinite(engine.next_event_time()):
        done.extend(engine.advance(engine.next_event_time()))
    return done


def test_abort_of_a_decoding_sequence_frees_it_at_the_next_step(profile: Profile) -> None:
    engine = ReplicaEngine(profile)
    kept = EngineSequence(0, prompt_tokens=100, output_tokens=50, arrival=0.0)
    gone = EngineSequence(1, prompt_tokens=100, output_tokens=500, arrival=0.0)
    engine.admit(kept, 0.0)
    engine.admit(gone, 0.0)  # joins the step after ``kept``'s prefill
    engine.advance(engine.next_event_time())
    engine.advance(engine.next_event_time())  # both decoding now
    seg = engine.segment
    halfway = seg.start + 2.5 * seg.step_s
    assert engine.abort(gone, halfway)
    assert engine.next_event_time() == pytest.approx(seg.start + 3 * seg.step_s)
    engine.advance(engine.next_event_time())
    assert engine.num_running == 1 and gone.generated == 1 + 3
    assert _drain(engine) == [kept]
    assert engine.kv_used_tokens == 0 and math.isnan(gone.finish_time)


def test_abort_of_a_waiting_sequence_removes_it(profile: Profile) -> None:
    engine = ReplicaEngine(profile, kv_capacity_tokens=1000)
    first = EngineSequence(0, prompt_tokens=900, output_tokens=5, arrival=0.0)
    queued = EngineSequence(1, prompt_tokens=900, output_tokens=5, arrival=0.0)
    engine.admit(first, 0.0)
    engine.admit(queued, 0.0)
    assert engine.num_waiting == 1
    assert not engine.abort(queued, 0.0)
    assert engine.num_waiting == 0
    assert _drain(engine) == [first]


def test_segment_times_each_token_of_a_decoding_sequence(profile: Profile) -> None:
    engine = ReplicaEngine(profile)
    seq = EngineSequence(0, prompt_tokens=200, output_tokens=10, arrival=0.0)
    engine.admit(seq, 0.0)
    engine.advance(engine.next_event_time())
    seg = engine.segment
    assert seg.end_of(seg.first_step) == seq.first_token_time
    assert seg.first_step + seg.steps == seq.step0 + seq.output_tokens
    assert seg.steps_by(seg.end_of(seg.first_step + 3)) == 3
    engine.advance(engine.next_event_time())
    assert seq.finish_time == pytest.approx(seg.end_of(seq.step0 + seq.output_tokens))


def test_evictions_are_reported_oldest_first() -> None:
    cache = PrefixCache()
    cache.pin([1, 2, 3])
    cache.unpin([1, 2, 3])
    assert 2 in cache and 9 not in cache
    assert cache.evict_to(1) == [3, 2]
    assert cache.evict_to(1) == []
