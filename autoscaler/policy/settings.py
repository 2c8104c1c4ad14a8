"""Settings of our scaling policy, per subsystem, each with defaults and the reason for them."""

from __future__ import annotations

import dataclasses

from autoscaler.core.observation import CounterSource
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.policy.bounds import ReplicaBounds
from autoscaler.profiles.schema import Profile


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max(pods, percent% of the replicas at the window's start)`` changes per ``period_s``."""

    pods: int
    percent: float
    period_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class Behavior:
    """HPA ``behavior`` in spirit: scale up fast, down slowly.

    Up: no stabilization (a spike must be met within one step) and HPA's default rate, max(4 pods, 100 %)
    per 15 s. Down: hold the highest recommendation of the last 3 minutes (shorter than HPA's 5 because the
    forecast already carries the start-up horizon) and remove at most max(1 pod, 50 %) per minute.
    """

    up_window_s: float = 0.0
    down_window_s: float = 180.0
    # Hysteresis: scale down only if the count would still be too many with this much more load (a load
    # hovering at a boundary between two counts otherwise flips between them).
    down_tolerance: float = 0.25
    up_limit: RateLimit = RateLimit(pods=4, percent=100.0, period_s=15.0)
    down_limit: RateLimit = RateLimit(pods=1, percent=50.0, period_s=60.0)


@dataclasses.dataclass(frozen=True, slots=True)
class Forecast:
    """A robust, damped trend through the last ``window_s`` of arrival rates (see ``policy.forecast``).

    ``horizon_s`` defaults to the profile's 90th-percentile start-up time plus one control interval (what a
    replica asked for now must cover when it becomes ready). ``signal_lag_s`` is how old the rate already is
    when read: a 1-minute Prometheus rate read 15 s late describes the load 45 s ago.
    """

    window_s: float = 180.0
    band_sigmas: float = 1.5  # robust sigmas of the samples added as margin for minute-scale bursts
    spike_sigmas: float = 3.0  # a newest sample this many robust sigmas above the line is a spike
    trend_sigmas: float = 2.0  # a rise over the window smaller than this many sigmas is noise, not a trend
    max_jump_share: float = 0.5  # a rise more than half of which came in one interval is a jump, not a trend
    # ... or three quarters of which came within one rate window: a step read through the window's span
    max_window_share: float = 0.75
    noise_floor: float = 0.05  # sigma is at least this share of the level when telling spikes (a flat series)
    damping_s: float = 600.0  # the trend's extrapolation fades with this time constant
    max_growth: float = 0.5  # extrapolate at most +50 % of the level
    signal_lag_s: float = 45.0
    horizon_s: float | None = None
    backlog_drain_s: float = 60.0  # a decode backlog (and prefill's, reaching decode) is served within this
    # The window the rate signal counts over (a Prometheus rate() window): in-flight growth is taken over it.
    rate_window_s: float = 60.0
    # Bound on the arrival CV inferred from the rate samples' dispersion (when no driver reads it).
    max_arrival_cv: float = 3.0


@dataclasses.dataclass(frozen=True, slots=True)
class Calibration:
    """A bounded correction of the profile's times from observed vs predicted latency.

    Observed/predicted ratios are smoothed in log space and clamped to ``[minimum, maximum]``; updates
    happen only where the observation is informative about capacity (predicted utilisation between
    ``min_utilisation`` and ``max_utilisation``, observed or predicted latency at least
    ``min_latency_fraction`` of the target, ready replicas present, load non-zero, and the same ready
    replicas with no backlog for the whole ``evidence_window_s``), so neither an idle replica's fixed costs,
    nor a backlog caused by under-provisioning, nor latencies observed before the last replicas became ready
    are mistaken for the engine's speed.
    """

    enabled: bool = True
    smoothing: float = 0.5  # weight of each settled observation: a model error is learned within minutes
    # Only slower than the profile: the model's percentiles are deliberately conservative at moderate load,
    # so evidence of a faster engine is biased there; a faster engine is better re-profiled
    # (`autoscaler profile`).
    minimum: float = 1.0
    maximum: float = 1.5
    min_utilisation: float = 0.4  # below, latency is mostly fixed costs and says little about capacity
    max_utilisation: float = 0.85
    min_latency_fraction: float = 0.5  # of the SLO target, for the same reason
    half_life_s: float = 600.0  # corrections fade back to 1 unless fresh evidence keeps them
    # How far back the observed latency percentiles reach (a 1-minute window read up to 30 s late): a change
    # of ready replicas or a backlog within it mixes supplies, so the update waits until it has passed.
    evidence_window_s: float = 90.0


@dataclasses.dataclass(frozen=True, slots=True)
class PolicySettings:
    profile: Profile
    slo: Slo
    mode: ServingMode
    bounds: dict[Phase, ReplicaBounds]
    control_interval_s: float = 30.0
    gpu_budget: int | None = None  # GPUs shared by all phases of the pool
    max_signal_age_s: float = 90.0
    # Whose counter the request rate is: vLLM's counts requests finished on the engines (what arrives is
    # what they complete plus the growth of what they hold), our router's requests entering the phase.
    counter_source: CounterSource = "vllm"
    # Size so no replica runs above this utilisation (prefill busy fraction, decode batch / largest batch
    # meeting ITL): headroom for model error and for load the forecast did not see coming.
    max_utilisation: float = 0.85
    behavior: Behavior = Behavior()
    forecast: Forecast = Forecast()
    calibration: Calibration = Calibration()

    def __post_init__(self) -> None:
        missing = [phase.value for phase in self.mode.phases if phase not in self.bounds]
        if missing:
            raise ValueError(f"bounds missing for phase(s) {', '.join(missing)} of a {self.mode.value} pool")
        if self.gpu_budget is not None and self.gpu_budget < self.minimum_gpus:
            raise ValueError(
                f"GPU budget {self.gpu_budget} is below the minimum replicas' {self.minimum_gpus} GPUs"
            )

    @property
    def minimum_gpus(self) -> int:
        return sum(self.bounds[p].minimum for p in self.mode.phases) * self.profile.gpus_per_replica

    @property
    def horizon_s(self) -> float:
        """How far ahead a replica asked for now must look: to when it is ready, for 9 start-ups in 10."""
        if self.forecast.horizon_s is not None:
            return self.forecast.horizon_s
        startup = self.profile.startup
        return startup.mean_s.value + 1.28 * startup.spread_s.value + self.control_interval_s
