"""Decode step times from the client's clock, when the engine reports no per-request metrics."""

from __future__ import annotations

import pytest

from autoscaler.adapters import profiling
from autoscaler.adapters.profiling import EngineTiming, StreamTiming


def stream(start: float, gaps: list[float]) -> StreamTiming:
    times = [start]
    for gap in gaps:
        times.append(times[-1] + gap)
    return StreamTiming(sent_s=0.0, token_s=tuple(times), completion_tokens=len(times), engine=None)


def test_only_gaps_while_every_stream_decodes_count() -> None:
    # Two streams: the second starts late and its prefill slows the first's steps until then (10 ms);
    # together they step every 2 ms; the first ends early and the second then runs alone (1 ms).
    first = stream(0.0, [0.010] * 3 + [0.002] * 20)
    second = stream(first.token_s[3], [0.002] * 20 + [0.001] * 10)
    sample = profiling._decode_sample([first, second], batch=2, prompt=16, tokens=30)
    assert sample.batch == 2
    assert sample.seconds == pytest.approx(0.002)


def test_the_engines_own_timings_win_over_the_clients() -> None:
    bursty = StreamTiming(
        sent_s=0.0,
        token_s=(0.5, 0.5001, 0.5002, 0.5003, 0.5004, 0.5005, 0.5006),  # a frontend flushing a burst
        completion_tokens=7,
        engine=EngineTiming(queue_s=0.0, prefill_s=0.003, mean_itl_s=0.0015),
    )
    sample = profiling._decode_sample([bursty], batch=1, prompt=10, tokens=6)
    assert sample.seconds == pytest.approx(0.0015)
    assert sample.context == pytest.approx(13.0)


def test_streams_that_never_overlap_cannot_be_measured() -> None:
    first = stream(0.0, [0.001] * 10)
    second = stream(1.0, [0.001] * 10)
    with pytest.raises(profiling.ProfilingError, match="never decoded together"):
        profiling._decode_sample([first, second], batch=2, prompt=16, tokens=10)
