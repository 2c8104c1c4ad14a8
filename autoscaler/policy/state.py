"""The policy's explicit state: a value that goes into a step and comes out of it, never mutated.

Drivers keep it between steps (the simulator threads it through; the controller may persist it so that
stabilization windows survive a restart).
"""

from __future__ import annotations

import dataclasses

from autoscaler.core.phases import Phase


@dataclasses.dataclass(frozen=True, slots=True)
class ForecastState:
    samples: tuple[tuple[float, float], ...]  # (time, arrival rate) within the forecast window


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseState:
    recommendations: tuple[tuple[float, int], ...] = ()  # (time, replicas) within the longest window
    # (time, replicas) the load alone asked for, without a backlog's drain: what the down window holds once
    # the backlog is gone and no replica is starting
    lasting: tuple[tuple[float, int], ...] = ()
    scale_events: tuple[tuple[float, int], ...] = ()  # (time, replicas before the change)
    forecast: ForecastState | None = None
    correction: float = 1.0  # observed / predicted latency, bounded
    # (ready replicas, since when) the ready count has held with no backlog in the pool (None while
    # backlogged): latencies are evidence for calibration only once all were observed on that same supply
    settled: tuple[int, float] | None = None
    # (time, requests in the phase's engines, waiting or running) over the last rate window: engines count
    # requests when they finish, so arrivals are completions plus the growth of what is in flight
    inflight: tuple[tuple[float, float], ...] = ()
    # (time, KV tokens in use, sequences running), summed over the replicas, over the forecast window: the
    # engines' gauges are snapshots, and a batch's context swings with the few long sequences in it
    kv_held: tuple[tuple[float, float, float], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyState:
    phases: dict[Phase, PhaseState] = dataclasses.field(default_factory=dict)

    def phase(self, phase: Phase) -> PhaseState:
        return self.phases.get(phase, PhaseState())
