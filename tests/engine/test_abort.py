"""A client that goes away: the engine drops its request and frees its KV, whatever state it is in."""

from __future__ import annotations

import math

import pytest

from autoscaler.engine.replica import ReplicaEngine
from autoscaler.engine.sequence import EngineSequence
from autoscaler.profiles.schema import Profile


def _engine(profile: Profile, *, max_seqs: int | None = None) -> ReplicaEngine:
    if max_seqs is not None:
        limits = profile.limits.model_copy(
            update={"max_num_seqs": profile.limits.max_num_seqs.model_copy(update={"value": max_seqs})}
        )
        profile = profile.model_copy(update={"limits": limits})
    return ReplicaEngine(profile)


def _until(engine: ReplicaEngine, time: float) -> list[EngineSequence]:
    left: list[EngineSequence] = []
    while engine.next_event_time() <= time:
        left += engine.advance(engine.next_event_time())
    return left


@pytest.mark.parametrize(
    ("name", "abort_at", "state"),
    [
        ("waiting for a batch slot", 0.0, "waiting"),
        ("prefilling its prompt", 0.0, "prefilling"),
        ("decoding", 2.0, "decoding"),
    ],
)
def test_an_aborted_request_leaves_and_frees_its_kv(
    profile: Profile, name: str, abort_at: float, state: str
) -> None:
    engine = _engine(profile, max_seqs=1)
    first = EngineSequence(0, prompt_tokens=8000, output_tokens=2000, arrival=0.0)
    second = EngineSequence(1, prompt_tokens=500, output_tokens=10, arrival=0.0)
    engine.admit(first, 0.0)
    engine.admit(second, 0.0)
    _until(engine, abort_at)
    target = second if state == "waiting" else first
    assert (target in engine.waiting) is (state == "waiting"), name
    engine.abort(target, abort_at)  # a running one leaves at the next step boundary
    left = _until(engine, abort_at + 1.0)
    assert target not in left and target.uid not in engine.running and target not in engine.waiting, name
    if state != "waiting":
        assert engine.kv_used_tokens <= second.prompt_tokens + second.output_tokens, name  # only the other
    assert math.isnan(target.finish_time), name
