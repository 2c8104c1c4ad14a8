"""What the policy sees: one version of the signals, per pool and phase.

An ``Observation`` is built by a driver (the live controller from Prometheus, the simulator from its own
scrape model) and handed to the pure policy step. Every field is a plain number; a signal that could not be
read is ``None`` or NaN, and the policy decides what that means (it holds: fail static). Rates are per
second, token counts per request, latencies in seconds.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from autoscaler.core.phases import Phase

# Whose counters the request rate and the prefix hits are read from: the engines' (vLLM counts a request
# where it finishes) or our router's (it counts a request as it enters the phase).
CounterSource = Literal["vllm", "router"]


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaCounts:
    """Replicas of one phase's replica set as the actuator reports them."""

    current: int  # spec.replicas: what has been asked for
    ready: int
    starting: int  # asked for, not ready yet (pending or starting up); counted as supply by the policy

    def __post_init__(self) -> None:
        if min(self.current, self.ready, self.starting) < 0:
            raise ValueError(f"replica counts cannot be negative: {self}")


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseSignals:
    """Signals of one phase of one pool, as of ``age_s`` seconds before the decision time."""

    replicas: ReplicaCounts
    arrival_rate: float | None  # requests/s entering this phase
    prompt_tokens_mean: float | None
    output_tokens_mean: float | None
    prompt_tokens_cv: float | None = None  # coefficient of variation (std/mean)
    output_tokens_cv: float | None = None
    arrival_cv: float | None = None  # of inter-arrival times; 1 for Poisson
    prefix_hit_rate: float | None = None  # fraction of prompt tokens served from cache (router's estimate)
    queue_length: float | None = None  # requests waiting, summed over replicas
    kv_usage: float | None = None  # mean KV-cache use over replicas, 0..1
    ttft_observed_s: float | None = None  # at the SLO's percentile
    itl_observed_s: float | None = None  # at the SLO's percentile
    # What the engines report about themselves, so the capacity model can read rather than assume it. Each
    # is None where the driver has no source (an engine that does not expose it, a phase with no replica).
    kv_capacity_tokens: float | None = None  # per replica (vLLM: num_gpu_blocks x block_size)
    kv_tokens_per_running: float | None = None  # KV in use per running sequence (usage x capacity / running)
    running_per_replica: float | None = None  # sequences in the batch, mean over replicas reporting
    waiting_per_replica: float | None = None  # backlog inside the engines, mean over replicas reporting
    age_s: float = 0.0  # how old the freshest sample behind these signals is

    def missing(self) -> tuple[str, ...]:
        """Names of the required signals that are absent or not finite (the demand itself).

        With no arrivals and nothing queued, token means are undefined (0/0 over the rate window) and not
        needed: zero traffic is a complete signal.
        """
        required: dict[str, float | None] = {"arrival_rate": self.arrival_rate}
        if not (self.arrival_rate == 0 and not self.queue_length):
            required["prompt_tokens_mean"] = self.prompt_tokens_mean
            required["output_tokens_mean"] = self.output_tokens_mean
        return tuple(name for name, value in required.items() if value is None or not math.isfinite(value))


@dataclasses.dataclass(frozen=True, slots=True)
class RouterQueue:
    """Requests waiting in the router's admission queue: demand no replica has seen yet (at zero replicas,
    the only sign of it), read from the router directly."""

    requests: float
    prompt_tokens: float  # summed over the waiting requests
    output_tokens: float  # expected, summed
    # Requests/s the queue turned away lately (past their class's TTL, or over its bound): demand the pool
    # did not serve, which no engine's counter shows.
    shed_per_s: float = 0.0

    def __post_init__(self) -> None:
        values = (self.requests, self.prompt_tokens, self.output_tokens, self.shed_per_s)
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError(f"queued demand must be finite and non-negative: {self}")


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """All phases of one pool (one serving deployment) at time ``time`` (seconds, driver's clock)."""

    pool: str
    time: float
    phases: dict[Phase, PhaseSignals]
    router_queue: RouterQueue | None = None  # None: the driver has no router to ask
