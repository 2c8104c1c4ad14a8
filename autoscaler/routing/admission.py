"""The router's admission queue, per pool: a backlog waits here, where any replica can take it.

Without it every request goes to an engine at once, and in a flash crowd the backlog queues inside the
engines that happened to be there: replicas that start later cannot take any of it. With it, a request
is dispatched only while some serving endpoint (decode, or aggregated) has room, and otherwise waits in
the router until one has, then goes to whichever endpoint is best at that moment, new replicas included.

Room is the capacity model's own numbers (``limits_from_profile``): at most the profile's
``max_num_seqs`` requests in flight per serving endpoint (beyond that the engine queues them itself) and
at most ``max_kv_usage`` of its KV cache in in-flight tokens; under P/D, a prefill endpoint's backlog of
prompt tokens at most ``max_prefill_backlog_s`` of prefill at the profile's rate (more only adds to every
TTFT behind it, where a new prefill replica could not help). An idle endpoint always has room, so a prompt
larger than any limit is still served.

Order: priority classes (a request header names one, else ``default_class``), lower ``rank`` first, first
come first served within a class. A request nobody could dispatch within its class's ``ttl_s`` is shed
(the proxy answers 429 with ``Retry-After``), as is one arriving at a full queue (``max_queued_requests``
or ``max_queued_tokens``). While the pool has no serving endpoint at all (scaled to zero, or not up yet)
a request waits up to ``wake_timeout_s`` instead, long enough for the controller to wake the pool, and its
TTL starts again when the pool wakes; past the wake time-out, or at once when ``wake_timeout_s`` is 0
(nothing will come), the answer is 503.

Pure: time is an argument, endpoints are read, never written. The proxy and the endpoint picker drive it
through ``autoscaler.adapters.admission_gate``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoscaler.core.phases import Phase
from autoscaler.profiles.schema import Profile
from autoscaler.routing.endpoint import Endpoint
from autoscaler.routing.interface import RouteRequest

ClassName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Seconds = Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PriorityClass(_Frozen):
    name: ClassName
    rank: Annotated[int, Field(ge=0, le=1000)]  # lower is served first
    ttl_s: Seconds  # longest a request of the class waits before it is shed (429)


def _default_classes() -> tuple[PriorityClass, ...]:
    # Interactive clients give up first; batch work can wait longest but goes last.
    return (
        PriorityClass(name="critical", rank=0, ttl_s=60.0),
        PriorityClass(name="standard", rank=1, ttl_s=30.0),
        PriorityClass(name="sheddable", rank=2, ttl_s=10.0),
    )


class AdmissionSettings(_Frozen):
    """The queue's bounds and classes (``admission:`` in the router's configuration)."""

    classes: tuple[PriorityClass, ...] = Field(default_factory=_default_classes, min_length=1, max_length=16)
    default_class: ClassName = "standard"
    header: Annotated[str, Field(min_length=1, max_length=128)] = "x-priority-class"
    max_queued_requests: Annotated[int, Field(ge=0, le=10_000_000)] = 10_000
    max_queued_tokens: Annotated[int, Field(ge=0, le=1 << 40)] = 100_000_000
    # Per-endpoint room; None: the profile's (``limits_from_profile``), or no limit without a profile.
    max_requests_per_endpoint: Annotated[int, Field(ge=1)] | None = None
    max_kv_fraction_per_endpoint: Annotated[float, Field(gt=0, le=1)] | None = None
    # A prefill endpoint (P/D) has room while its backlog is at most this many seconds of prefill at the
    # profile's rate (about the TTFT a request behind it would see); applies only with a profile.
    max_prefill_backlog_s: Annotated[float, Field(gt=0, le=3600)] | None = 1.0
    # With no serving endpoint, how long a request waits for the pool to wake (0: answer 503 at once).
    wake_timeout_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 0.0
    tick_s: Annotated[float, Field(gt=0, le=10)] = 0.1  # how often waiting requests are re-examined

    @model_validator(mode="after")
    def _classes_usable(self) -> AdmissionSettings:
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"admission: class names must be unique, got {names}")
        if self.default_class not in names:
            raise ValueError(f"admission: default_class {self.default_class!r} is not one of {names}")
        return self

    def of(self, name: str | None) -> PriorityClass:
        """The class a header value names (``default_class`` when absent); ``UnknownClass`` otherwise."""
        wanted = self.default_class if name is None or name == "" else name.strip().lower()
        for c in self.classes:
            if c.name == wanted:
                return c
        raise UnknownClass(f"unknown priority class {name[:64]!r}" if name else "no priority class")


class UnknownClass(ValueError):
    """A request named a priority class that is not configured (the proxy answers 400)."""


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointLimits:
    """Room per serving endpoint; None: unbounded on that axis."""

    max_requests: int | None
    max_kv_fraction: float | None
    max_prefill_tokens: float | None = None  # a prefill endpoint's backlog of prompt tokens

    @property
    def unbounded(self) -> bool:
        return self.max_requests is None and self.max_kv_fraction is None and self.max_prefill_tokens is None


def limits_from_profile(settings: AdmissionSettings, profile: Profile | None) -> EndpointLimits:
    """The settings' limits, else the capacity model's: the batch cap and the KV headroom it plans with,
    and (P/D) a prefill backlog of ``max_prefill_backlog_s`` at the profile's prefill rate."""
    requests = settings.max_requests_per_endpoint
    fraction = settings.max_kv_fraction_per_endpoint
    if profile is None:
        return EndpointLimits(max_requests=requests, max_kv_fraction=fraction)
    backlog = settings.max_prefill_backlog_s
    chunk = profile.limits.max_num_batched_tokens.value
    return EndpointLimits(
        max_requests=requests or int(profile.limits.max_num_seqs.value),
        max_kv_fraction=fraction or profile.limits.max_kv_usage,
        max_prefill_tokens=backlog * chunk / profile.prefill_time(chunk) if backlog is not None else None,
    )


class Verdict(enum.StrEnum):
    DISPATCH = "dispatch"  # room now: place it
    QUEUED = "queued"
    FULL = "full"  # the queue is at its bound: 429
    NO_ENDPOINT = "no-endpoint"  # no serving endpoint and none awaited: 503


class Shed(enum.StrEnum):
    """Why a waiting request left the queue without being dispatched."""

    EXPIRED = "expired"  # its class's TTL passed: 429
    NOT_WOKEN = "not-woken"  # the pool had no endpoint for ``wake_timeout_s``: 503


@dataclasses.dataclass(frozen=True, slots=True)
class Waiting:
    key: Hashable
    request: RouteRequest
    priority: PriorityClass
    since: float

    @property
    def tokens(self) -> int:
        return self.request.prompt_tokens + self.request.output_tokens


@dataclasses.dataclass(frozen=True, slots=True)
class ClassTally:
    requests: int
    tokens: int  # prompt plus expected output
    prompt_tokens: int


def _serving(endpoints: Iterable[Endpoint]) -> Iterator[Endpoint]:
    return (e for e in endpoints if e.phase is not Phase.PREFILL and not e.draining)


def room(
    endpoints: Iterable[Endpoint], limits: EndpointLimits, request: RouteRequest
) -> frozenset[str] | None:
    """The endpoints ``request`` may be placed on (the router's ``eligible``): None when every endpoint has
    room (no restriction), empty when it cannot go anywhere yet: no serving endpoint has room, or (P/D)
    there are prefill endpoints and none has room for its prompt."""
    if limits.unbounded:  # no profile, no limits set: any serving endpoint will do
        return None if any_serving(endpoints) else frozenset()
    tokens = request.prompt_tokens + request.output_tokens
    fitting: list[str] = []
    serving = prefill = full = False
    prefill_seen = False
    for e in endpoints:
        if e.draining:
            continue
        if e.phase is Phase.PREFILL:
            prefill_seen = True
            fits = _prefill_fits(e, limits, request.prompt_tokens)
            prefill = prefill or fits
        else:
            fits = _fits(e, limits, tokens)
            serving = serving or fits
        if fits:
            fitting.append(e.name)
        else:
            full = True
    if not serving or (prefill_seen and not prefill):
        return frozenset()
    return frozenset(fitting) if full else None


def _fits(e: Endpoint, limits: EndpointLimits, tokens: int) -> bool:
    if e.in_flight == 0:
        return True
    if limits.max_requests is not None and e.in_flight >= limits.max_requests:
        return False
    return limits.max_kv_fraction is None or (
        e.in_flight_tokens + tokens <= e.kv_capacity_tokens * limits.max_kv_fraction
    )


def _prefill_fits(e: Endpoint, limits: EndpointLimits, prompt_tokens: int) -> bool:
    """A prefill endpoint has room while its backlog of prompt tokens is within the limit (an idle one
    takes any prompt)."""
    cap = limits.max_prefill_tokens
    return cap is None or e.prefill_tokens == 0 or e.prefill_tokens + prompt_tokens <= cap


def has_room(endpoints: Iterable[Endpoint], limits: EndpointLimits, request: RouteRequest) -> bool:
    """Whether ``request`` can be placed now without passing any endpoint's limits."""
    return room(endpoints, limits, request) != frozenset()


def any_serving(endpoints: Iterable[Endpoint]) -> bool:
    return any(True for _ in _serving(endpoints))


class AdmissionQueue:
    """Waiting requests per class, FCFS within one; see the module docstring.

    Each class's requests share one TTL and leave in arrival order, so the expired ones are always a prefix
    of their class: expiry and dispatch look at class heads only.
    """

    def __init__(self, settings: AdmissionSettings, limits: EndpointLimits) -> None:
        self.settings = settings
        self.limits = limits
        ranked = sorted(settings.classes, key=lambda c: c.rank)
        self._rank = {c.name: c.rank for c in ranked}
        self._classes: dict[str, OrderedDict[Hashable, Waiting]] = {c.name: OrderedDict() for c in ranked}
        self._tokens: dict[str, int] = dict.fromkeys(self._classes, 0)
        self._prompt_tokens: dict[str, int] = dict.fromkeys(self._classes, 0)
        self._requests = 0
        self._total_tokens = 0
        self._woken = True  # whether the pool had a serving endpoint when last looked at
        self._woke_at = float("-inf")

    def __len__(self) -> int:
        return self._requests

    def admit(
        self,
        key: Hashable,
        request: RouteRequest,
        priority: PriorityClass,
        endpoints: Iterable[Endpoint],
        *,
        now: float,
    ) -> tuple[Verdict, frozenset[str] | None]:
        """Dispatch now, queue (remembering ``key``) or refuse, with the endpoints a dispatched request may
        go to (``room``, worked out once). Nothing of an equal or better class waiting is overtaken: a
        request dispatches at once only if none of them is queued."""
        endpoints = endpoints if isinstance(endpoints, list | tuple) else tuple(endpoints)
        if not any_serving(endpoints):
            if self.settings.wake_timeout_s == 0:
                return Verdict.NO_ENDPOINT, None
        elif not self._ahead_of(priority):
            fitting = room(endpoints, self.limits, request)
            if fitting != frozenset():
                return Verdict.DISPATCH, fitting
        tokens = request.prompt_tokens + request.output_tokens
        if (
            self._requests >= self.settings.max_queued_requests
            or self._total_tokens + tokens > self.settings.max_queued_tokens
        ):
            return Verdict.FULL, None
        self._classes[priority.name][key] = Waiting(key=key, request=request, priority=priority, since=now)
        self._count(priority.name, 1, tokens, request.prompt_tokens)
        return Verdict.QUEUED, None

    def remove(self, key: Hashable, priority: PriorityClass) -> bool:
        """Forget a waiting request (its client left); False when it was not waiting."""
        waiting = self._classes[priority.name].pop(key, None)
        if waiting is None:
            return False
        self._count(priority.name, -1, -waiting.tokens, -waiting.request.prompt_tokens)
        return True

    def next_ready(self, endpoints: Iterable[Endpoint]) -> Waiting | None:
        """The first waiting request in order, removed, if some endpoint has room for it; else None.

        Only the very first is considered: a large request at the head is not overtaken by smaller ones
        behind it (strict order; each endpoint's idle state always lets the head through eventually).
        """
        for name, queue in self._classes.items():
            if queue:
                head = next(iter(queue.values()))
                if not has_room(endpoints, self.limits, head.request):
                    return None
                queue.popitem(last=False)
                self._count(name, -1, -head.tokens, -head.request.prompt_tokens)
                return head
        return None

    def expire(self, endpoints: Iterable[Endpoint], *, now: float) -> list[tuple[Waiting, Shed]]:
        """Remove and return the requests that waited too long, each with why.

        A class's TTL runs from when a request arrived or the pool last woke, whichever is later: the
        requests held through a cold start are served first when it ends, not shed for its length.
        """
        woken = any_serving(endpoints)
        if woken and not self._woken:
            self._woke_at = now
        self._woken = woken
        shed: list[tuple[Waiting, Shed]] = []
        for name, queue in self._classes.items():
            while queue:
                head = next(iter(queue.values()))
                if woken:
                    if now - max(head.since, self._woke_at) < head.priority.ttl_s:
                        break
                elif now - head.since < self.settings.wake_timeout_s:
                    break
                queue.popitem(last=False)
                self._count(name, -1, -head.tokens, -head.request.prompt_tokens)
                shed.append((head, Shed.EXPIRED if woken else Shed.NOT_WOKEN))
        return shed

    def tally(self) -> dict[str, ClassTally]:
        """Requests and tokens waiting, per class (every configured class, zero included)."""
        return {
            name: ClassTally(len(q), self._tokens[name], self._prompt_tokens[name])
            for name, q in self._classes.items()
        }

    def _ahead_of(self, priority: PriorityClass) -> bool:
        """Whether a request of ``priority`` or a better class is waiting."""
        return any(queue and self._rank[name] <= priority.rank for name, queue in self._classes.items())

    def _count(self, name: str, requests: int, tokens: int, prompt_tokens: int) -> None:
        self._requests += requests
        self._total_tokens += tokens
        self._tokens[name] += tokens
        self._prompt_tokens[name] += prompt_tokens
