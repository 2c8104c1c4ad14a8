"""Properties of one engine under arbitrary small workloads: everything finishes, in order, within KV."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.config.profiles import load_profile
from autoscaler.engine.replica import ReplicaEngine
from autoscaler.engine.sequence import EngineSequence

PROFILE = load_profile("llama-3.1-8b/h100-tp1")

requests = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=2.0),  # arrival gap
        st.integers(min_value=1, max_value=20_000),  # prompt
        st.integers(min_value=1, max_value=300),  # output
        st.lists(st.integers(min_value=0, max_value=5), max_size=4),  # block hashes (shared often)
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(
    workload=requests,
    capacity=st.integers(min_value=20_400, max_value=200_000),
    prefill_only=st.booleans(),
    received=st.booleans(),
)
def test_every_request_finishes_with_consistent_times_and_kv_within_capacity(
    workload: list[tuple[float, int, int, list[int]]], capacity: int, prefill_only: bool, received: bool
) -> None:
    engine = ReplicaEngine(PROFILE, kv_capacity_tokens=capacity, block_tokens=512, prefill_only=prefill_only)
    arrivals: list[tuple[float, EngineSequence]] = []
    now = 0.0
    for uid, (gap, prompt, output, hashes) in enumerate(workload):
        now += gap
        seq = EngineSequence(
            uid, prompt_tokens=prompt, output_tokens=output, arrival=now, block_hashes=hashes
        )
        if received and not prefill_only:
            seq.computed = seq.target  # a decode replica: KV arrives from a prefill replica
        arrivals.append((now, seq))
    left: list[EngineSequence] = []
    pending = list(arrivals)
    while pending or math.isfinite(engine.next_event_time()):
        if pending and pending[0][0] <= engine.next_event_time():
            at, seq = pending.pop(0)
            engine.admit(seq, at)
        else:
            at = engine.next_event_time()
            left.extend(engine.advance(at))
        assert engine.kv_used_tokens <= capacity
    assert sorted(s.uid for s in left) == list(range(len(workload)))
    assert engine.kv_used_tokens == 0 and engine.num_running == 0 and engine.num_waiting == 0
    for seq in left:
        if prefill_only:
            assert seq.prefill_done_time >= seq.arrival and seq.generated == 0
        else:
            assert seq.arrival <= seq.first_token_time <= seq.finish_time
            assert seq.generated == seq.output_tokens
