"""Drive one engine to completion, as the simulator would."""

from __future__ import annotations

import math

from autoscaler.engine.replica import ReplicaEngine
from autoscaler.engine.sequence import EngineSequence


def run(engine: ReplicaEngine, arrivals: list[tuple[float, EngineSequence]]) -> list[EngineSequence]:
    """Admit each sequence at its time and advance the engine through every event; returns finish order."""
    pending = sorted(arrivals, key=lambda item: item[0])
    done: list[EngineSequence] = []
    while pending or math.isfinite(engine.next_event_time()):
        if pending and pending[0][0] <= engine.next_event_time():
            at, seq = pending.pop(0)
            engine.admit(seq, at)
        else:
            done.extend(engine.advance(engine.next_event_time()))
    return done
