"""The router's settings: scorer plugins with their weights, overload thresholds, P/D decider, slow start.

Configuration follows llm-d's EndpointPickerConfig in spirit: a list of scorer instances per scheduling
profile, each with a ``type``, a ``weight`` and its own parameters; the primary profile picks the endpoint
that serves the request (the decode endpoint under P/D), the prefill profile picks the remote prefill
endpoint. Parsed and validated once at the edge, then handed to the router as an immutable value::

    scorers:
      - {type: prefix-affinity, weight: 4.5}
      - {type: in-flight-tokens, weight: 2}
      - {type: queue-length, weight: 2, threshold: 16}
      - {type: kv-usage, weight: 2}
      - {type: session-affinity, weight: 4}
    prefill_scorers:
      - {type: prefix-affinity, weight: 4.5}
      - {type: in-flight-tokens, weight: 2}
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoscaler.profiles.schema import Profile

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IndexSource(enum.StrEnum):
    """What keeps the block index up to date."""

    PLACEMENT = "placement"  # approximate: a placed prompt is assumed cached where it was placed
    KV_EVENTS = "kv-events"  # precise: only the engines' KV events (BlockStored / BlockRemoved) change it


class PrefixAffinity(_Frozen):
    """Fraction of the prompt's blocks the endpoint holds, counted consecutively from the first.

    Weight 4.5: llm-d's share of the total (prefix 3 against queue 2 + KV 2, 3 of 7), kept now that the
    in-flight-token scorer adds 2 more of load. At llm-d's 3 the load terms outweighed affinity enough to
    cost hit rate and TTFT on the Mooncake trace, while on the low-reuse default scenarios the weight makes
    no difference to SLO attainment or GPU-hours (``benchmarks/router_quality.py`` and the policy suite;
    their figures are in ``benchmarks/results/``).
    """

    type: Literal["prefix-affinity"] = "prefix-affinity"
    weight: NonNegative = 4.5


class InFlightTokens(_Frozen):
    """The lightest candidate's load over this endpoint's: 1 for the lightest, 1/2 for one carrying twice it.

    Load = the router's in-flight tokens there plus this prompt's uncached tokens there (the lookahead, which
    lets a cache hit lower the load an endpoint would carry, as llm-d's token-load scorer and Dynamo's cost
    do), divided by the endpoint's slow-start weight. Relative to the fleet as it is, not to a fixed
    threshold: against a fixed 262,144 tokens, the tokens a replica actually carries at a realistic load are
    a small fraction, so twice the load barely moved the score and stale scraped terms and a new endpoint's
    missing shared prefix outweighed it (new prefill replicas sat idle for minutes; simulations/default.yaml).
    """

    type: Literal["in-flight-tokens"] = "in-flight-tokens"
    weight: NonNegative = 2.0


class QueueLength(_Frozen):
    """``1 - waiting requests / threshold``, floored at 0 (vllm:num_requests_waiting)."""

    type: Literal["queue-length"] = "queue-length"
    weight: NonNegative = 2.0
    threshold: Positive = 16.0


class KvUsage(_Frozen):
    """``1 - KV-cache use`` (vllm:kv_cache_usage_perc)."""

    type: Literal["kv-usage"] = "kv-usage"
    weight: NonNegative = 2.0


class SessionAffinity(_Frozen):
    """1 for the endpoint that served the session's previous request (within the session TTL), else 0."""

    type: Literal["session-affinity"] = "session-affinity"
    weight: NonNegative = 4.0


ScorerConfig = Annotated[
    PrefixAffinity | InFlightTokens | QueueLength | KvUsage | SessionAffinity, Field(discriminator="type")
]


def _default_scorers() -> tuple[ScorerConfig, ...]:
    return (PrefixAffinity(), InFlightTokens(), QueueLength(), KvUsage(), SessionAffinity())


def _default_prefill_scorers() -> tuple[ScorerConfig, ...]:
    return (PrefixAffinity(), InFlightTokens())


class Overload(_Frozen):
    """An endpoint past any of these is skipped (on its own: the rest of the fleet keeps affinity).

    When every candidate is overloaded the request still goes somewhere: to the best-scoring one.
    """

    max_queue: Positive = 32.0
    max_kv_usage: Annotated[float, Field(gt=0, le=1)] = 0.98
    max_in_flight_tokens: Positive = 1_048_576.0


class PrefillDecider(_Frozen):
    """When P/D prefills remotely; see ``autoscaler.routing.pd``."""

    # A remote prefill's fixed cost in prefill tokens: an uncached prompt that, times the sequences its local
    # prefill would stall, is shorter prefills on the decode endpoint.
    min_remote_prefill_tokens: NonNegative = 256.0
    prefill_tokens_per_s: Positive = 10_000.0  # one prefill replica's rate (the profile's, calibrated)
    local_prefill_budget_s: NonNegative = 0.5  # seconds of prefill an idle decode endpoint may absorb


class SlowStart(_Frozen):
    """A new endpoint's weight ramps from ``min_weight`` up to 1 linearly over ``window_s``.

    Its load counts 1/weight times in the in-flight-tokens scorer, so it takes about a weight's share of a
    warm endpoint's load (Envoy's slow start with least-request balancing). Scaling its total score instead
    gives it nothing until the ramp passes the warm endpoints' totals, then every request at once.

    Off by default: a vLLM replica passes its readiness probe warm (weights loaded, CUDA graphs captured);
    what it lacks is a prefix cache, which prefix affinity and the in-flight lookahead already charge it
    for; and replicas are added when the fleet is short, so a ramp keeps capacity idle exactly when it is
    needed (simulations/default.yaml, 4 seeds: a 30 s window cost up to 0.6 points of SLO attainment, a
    10 s one up to 0.3). Set a window for engines that do warm up on their first requests.
    """

    window_s: NonNegative = 0.0
    min_weight: Annotated[float, Field(gt=0, le=1)] = 0.1


class RouterSettings(_Frozen):
    block_tokens: Annotated[int, Field(ge=1)] = 64  # prompt tokens per hashed block (cached-token estimate)
    index_source: IndexSource = IndexSource.PLACEMENT
    scorers: tuple[ScorerConfig, ...] = Field(default_factory=_default_scorers)
    prefill_scorers: tuple[ScorerConfig, ...] = Field(default_factory=_default_prefill_scorers)
    overload: Overload = Overload()
    prefill_decider: PrefillDecider = PrefillDecider()
    slow_start: SlowStart = SlowStart()
    # Between scrapes, correct each endpoint's queue and KV use by what the router placed and released
    # there since (``AffinityRouter._rescore``); False reads the last scrape as is, as llm-d's EPP does.
    correct_scrapes: bool = True
    session_ttl_s: Positive = 300.0
    max_sessions: Annotated[int, Field(ge=1)] = 100_000

    @model_validator(mode="after")
    def _scorers_usable(self) -> RouterSettings:
        for name, scorers in (("scorers", self.scorers), ("prefill_scorers", self.prefill_scorers)):
            if not scorers or not any(s.weight > 0 for s in scorers):
                raise ValueError(f"{name}: at least one scorer needs a positive weight")
            types = [s.type for s in scorers]
            if len(set(types)) != len(types):
                raise ValueError(f"{name}: each scorer type may appear once, got {types}")
        return self


def calibrated(settings: RouterSettings, profile: Profile) -> RouterSettings:
    """``settings`` with the P/D decider's prefill rate taken from ``profile``.

    The router's load gate then reads the same calibrated time model as the capacity model: one full
    chunk (``max_num_batched_tokens``) prefilled on an idle replica, in tokens per second.
    """
    chunk = profile.max_num_batched_tokens
    rate = chunk / profile.prefill_time(chunk)
    decider = settings.prefill_decider.model_copy(update={"prefill_tokens_per_s": rate})
    return settings.model_copy(update={"prefill_decider": decider})
