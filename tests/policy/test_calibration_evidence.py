"""Calibration learns only from latencies observed on the supply it compares them with.

Observed latency percentiles cover a past window (a 1-minute rate read late). Right after a replica became
ready, or after a backlog drained, they still describe the smaller supply or the backlog; compared with a
prediction for the replicas ready now they read as a slow engine, and the correction then inflated the pool
for its whole half-life (on the default scenario: decode x1.09 after the burst's scale-up, 0.08 GPU-hours
for no attainment). So the policy updates the correction only once the ready count has held, with no
backlog, for the calibration's evidence window. A backlog is a queue holding more than the TTFT target of
the phase's throughput; a shorter one is the load's own burstiness, which the latencies rightly show (on a
production client mix it held every update off while the model under-sized the pool).
"""

from __future__ import annotations

import pytest

from autoscaler.core.observation import PhaseSignals
from autoscaler.core.phases import Phase
from autoscaler.policy.state import PolicyState
from autoscaler.policy.step import step
from tests.policy.builders import make_settings, observation, phase_signals

RATE = 50.0  # two ready decode replicas run at 65 % of their ITL-bound batch: inside the calibration band
SLOW_ITL_S = 0.1  # twice the target: what the window still shows of the time one replica carried the load
BACKLOG = 2.0 * RATE * make_settings().slo.ttft.seconds  # twice the TTFT target's worth of throughput


def _before(*, backlog: bool) -> PhaseSignals:
    """The disturbance: one of two replicas still starting, or both ready but a queue building up."""
    if backlog:
        return phase_signals(rate=RATE, replicas=(2, 2, 0), queue_length=BACKLOG, itl_observed_s=SLOW_ITL_S)
    return phase_signals(rate=RATE, replicas=(2, 1, 1), itl_observed_s=SLOW_ITL_S)


def _decode_correction(*, backlog: bool, settled_for_s: float) -> float:
    """Decode's correction after the disturbance ended ``settled_for_s`` seconds ago (30 s steps)."""
    settings = make_settings()
    state = PolicyState()
    ended = 300.0  # the disturbance lasts five minutes, then two ready replicas and no queue
    settled = phase_signals(rate=RATE, replicas=(2, 2, 0), itl_observed_s=SLOW_ITL_S)
    for i in range(round((ended + settled_for_s) / 30.0) + 1):
        now = 30.0 * i
        sig = _before(backlog=backlog) if now < ended else settled
        _, state = step(observation(now, prefill=sig, decode=sig), state, settings, now=now)
    return state.phase(Phase.DECODE).correction


@pytest.mark.parametrize(
    ("backlog", "settled_for_s", "learns"),
    [
        (False, 0.0, False),
        (False, 60.0, False),
        (False, 90.0, True),
        (False, 150.0, True),
        (True, 0.0, False),
        (True, 60.0, False),
        (True, 90.0, True),
    ],
    ids=[
        "replica just ready: the window still shows one replica, no update",
        "replica ready 60 s ago: still inside the evidence window, no update",
        "replica ready for the whole evidence window: slow latencies are the engine's, update",
        "ready count long settled: update",
        "backlog just drained: latencies measure the queue, no update",
        "backlog drained 60 s ago: still inside the evidence window, no update",
        "backlog drained a full evidence window ago: update",
    ],
)
def test_calibration_waits_for_settled_evidence(backlog: bool, settled_for_s: float, learns: bool) -> None:
    correction = _decode_correction(backlog=backlog, settled_for_s=settled_for_s)
    if learns:
        assert correction > 1.0
    else:
        assert correction == 1.0


@pytest.mark.parametrize(
    ("queue", "learns"),
    [(0.2 * RATE, True), (BACKLOG, False)],
    ids=[
        "a queue of a fifth of a second's throughput is burstiness: the latencies count",
        "a queue of two TTFT targets' throughput is a backlog: they do not",
    ],
)
def test_a_short_queue_is_burstiness_not_a_backlog(queue: float, learns: bool) -> None:
    settings = make_settings()
    sig = phase_signals(rate=RATE, replicas=(2, 2, 0), queue_length=queue, itl_observed_s=SLOW_ITL_S)
    state = PolicyState()
    for i in range(6):  # three minutes on the same supply: past the evidence window
        now = 30.0 * i
        _, state = step(observation(now, prefill=sig, decode=sig), state, settings, now=now)
    assert (state.phase(Phase.DECODE).correction > 1.0) is learns
