"""The simulator's event loop: a trace through a placer and a cluster of engines, with a policy in the loop.

Events are at request granularity. Each engine computes its own next event (``ReplicaEngine``), and the
loop keeps only that one per replica in its heap, stamped with a version so that a rescheduled engine's older
entry is skipped. Arrivals come straight from the trace's columns, never through the heap. Other events:
a KV transfer done (P/D), a replica ready, a Prometheus scrape, a control step.

A request's path: the placer chooses endpoints (``autoscaler.routing.interface.Placer``: the least-loaded
placeholder or the cache-affinity router, with no change here); in P/D it is prefilled on the prefill
replica, its KV moves in ``Profile.kv_transfer_time(prompt)``, and the decode replica admits it; otherwise
one replica does both. When no endpoint is ready (start-up, scale from zero) requests wait at the router and
are placed as soon as one is.

With ``router_queue`` the router's admission queue (``autoscaler.routing.admission``) sits in front: a
request is placed only while some endpoint is within the profile's limits, otherwise it waits in the router,
first come first served, and goes to the best endpoint with room when one frees or joins (a request
finishes, a prefill completes, a replica is ready). The controller reads the queue as demand
(``Observation.router_queue``), as the live one reads the router's. Its client's time-out still applies.

Same seed, same result: one ``random.Random(seed)`` draws every start-up delay, ids come from the trace's
row numbers, and the heap breaks time ties by a per-run counter.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any, assert_never

import numpy as np
import numpy.typing as npt

from autoscaler.core.decision import Decision
from autoscaler.core.observation import RouterQueue
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.engine.sequence import EngineSequence
from autoscaler.policy import wake
from autoscaler.policy.actuation import DEFAULT_DRAIN_TIMEOUT_S
from autoscaler.policy.interface import ScalingPolicy
from autoscaler.profiles.schema import Profile
from autoscaler.routing.admission import (
    AdmissionQueue,
    AdmissionSettings,
    PriorityClass,
    Verdict,
    limits_from_profile,
    room,
)
from autoscaler.routing.endpoint import Endpoint
from autoscaler.routing.interface import EndpointMetrics, NoEndpointError, Placement, Placer, RouteRequest
from autoscaler.routing.router import AffinityRouter
from autoscaler.sim.cluster import Cluster, Lifetime, ReplicaState, SimReplica
from autoscaler.sim.signals import Scraper, ScrapeSettings
from autoscaler.sim.workloads.trace import Trace

__all__ = ["RunResult", "SimSettings", "Timeline", "simulate"]

FloatArray = npt.NDArray[np.float64]


class _Event(enum.Enum):
    """What a heap entry is due for. Entries order by (time, insertion tick), never by kind."""

    REPLICA = enum.auto()  # a replica's engine reaches its next event (stale when its version moved on)
    TRANSFER = enum.auto()  # a request's KV arrives at its decode replica
    READY = enum.auto()  # a starting replica becomes ready
    STARTED = enum.auto()  # a pending replica's container starts
    TIMEOUT = enum.auto()  # the oldest waiting client's patience runs out
    SCRAPE = enum.auto()  # Prometheus scrapes the engines
    ROUTER_METRICS = enum.auto()  # the router reads the engines' metrics
    CONTROL = enum.auto()  # the control loop steps the policy (stale when a wake moved the cadence on)
    WAKE_POLL = enum.auto()  # the controller's wake watch asks the router of a pool asleep at zero


@dataclasses.dataclass(frozen=True, slots=True)
class SimSettings:
    mode: ServingMode
    slo: Slo
    initial_replicas: Mapping[Phase, int]  # ready at t = 0 (the deployment existed before the trace)
    control_interval_s: float = 30.0
    scrape: ScrapeSettings = dataclasses.field(default_factory=ScrapeSettings)
    pending_delay_s: float = 0.0  # before the start-up delay: scheduling and node provisioning
    router_metrics_interval_s: float = 2.0  # how often the placer sees each engine's queue and KV use
    drain_s: float = 900.0  # after the last arrival, how long in-flight requests may still finish
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S  # a scale-down's victims go after this, served or not
    client_timeout_s: float = 300.0  # a client gives up on a request unfinished this long after it sent it
    max_model_len: int | None = None  # prompt + output beyond it is refused (vLLM's); None: the KV capacity
    pool: str = "default"
    router_queue: bool = False  # the router's admission queue (needs the affinity router); see the module
    router_queue_ttl_s: float | None = None  # waiting longer: shed (429); None: only its client gives up
    # The controller's wake watch (``ControllerSettings.wake_poll_s``): while every phase is at zero, the
    # router is asked this often for held requests, and one runs the control step at once.
    wake_poll_s: float = 2.0

    def __post_init__(self) -> None:
        if set(self.initial_replicas) != set(self.mode.phases):
            raise ValueError(
                f"initial_replicas must name exactly the phases {[p.value for p in self.mode.phases]}"
            )
        if self.control_interval_s <= 0 or self.scrape.scrape_interval_s <= 0 or self.wake_poll_s <= 0:
            raise ValueError("control, scrape and wake poll intervals must be positive")
        if not self.client_timeout_s > 0:
            raise ValueError(f"client_timeout_s must be positive, got {self.client_timeout_s}")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError(f"max_model_len must be at least 2, got {self.max_model_len}")


@dataclasses.dataclass(frozen=True)
class Timeline:
    """Sampled at every scrape: replicas per phase (ready, pending or starting, draining), arrivals so far."""

    time_s: FloatArray
    arrivals: npt.NDArray[np.int64]
    ready: dict[Phase, npt.NDArray[np.int64]]
    starting: dict[Phase, npt.NDArray[np.int64]]
    draining: dict[Phase, npt.NDArray[np.int64]]


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One policy's run. Per-request arrays are in trace order; NaN means never reached (not served)."""

    policy: str
    arrival_s: FloatArray
    ttft_s: FloatArray
    itl_s: FloatArray  # mean inter-token latency of the request; NaN for one-token outputs
    e2e_s: FloatArray
    cached_tokens: npt.NDArray[np.int64]
    preemptions: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]
    gpu_seconds: float  # over [0, horizon_s]
    horizon_s: float
    end_s: float  # when the last event ran
    scale_events: int  # changes of a phase's asked-for replica count (spec.replicas)
    decisions: tuple[Decision, ...]  # every control step's decision, with its reasons
    prefix_hit_tokens: int  # prompt tokens found cached, over all prefills (remote, local, recomputes)
    prefix_query_tokens: int
    prefix_hit_blocks: int
    prefix_query_blocks: int
    timeline: Timeline
    rejected: int = 0  # refused at arrival: prompt + output beyond the max model length (never simulated)
    abandoned: int = 0  # given up by their clients after the client time-out (misses, their KV freed)
    shed: int = 0  # dropped by the router's queue past its time-to-live (429: misses, never placed)
    lifetimes: tuple[Lifetime, ...] = ()  # every replica's span, drain included (``Cluster.lifetimes``)

    @property
    def finished(self) -> npt.NDArray[np.bool_]:
        return np.asarray(np.isfinite(self.e2e_s))


class _Flight:
    __slots__ = ("placement", "seq")

    def __init__(self, seq: EngineSequence, placement: Placement) -> None:
        self.seq = seq
        self.placement = placement


def simulate(
    trace: Trace,
    *,
    profile: Profile,
    policy: ScalingPolicy[Any],
    placer: Placer,
    settings: SimSettings,
    seed: int,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Replay ``trace`` through the cluster with ``policy`` scaling it; see the module docstring."""
    return _Run(trace, profile=profile, policy=policy, placer=placer, settings=settings, seed=seed).run(
        progress
    )


@dataclasses.dataclass(eq=False)
class _Run:
    """One replay: the arguments of ``simulate`` and the state the event loop moves."""

    trace: Trace
    profile: Profile
    policy: ScalingPolicy[Any]
    placer: Placer
    settings: SimSettings
    seed: int

    def __post_init__(self) -> None:
        trace, profile, placer, settings = self.trace, self.profile, self.placer, self.settings
        self.cluster = Cluster(
            profile,
            phases=settings.mode.phases,
            placer=placer,
            rng=random.Random(self.seed),
            block_tokens=trace.block_tokens,
            pending_delay_s=settings.pending_delay_s,
            drain_timeout_s=settings.drain_timeout_s,
        )
        capacity = profile.kv_capacity_tokens
        self.max_len = int(min(capacity, settings.max_model_len or capacity))
        self.scraper = Scraper(
            self.cluster,
            settings=settings.scrape,
            slo=settings.slo,
            pool=settings.pool,
            max_model_len=self.max_len,
        )
        self.counted = self.scraper.counted
        self.serving = Phase.DECODE if Phase.DECODE in settings.mode.phases else Phase.AGGREGATED
        self.heap: list[tuple[float, int, _Event, Any, int]] = []
        self.tick = itertools.count()
        self.backlog: deque[EngineSequence] = deque()
        self.admission = _admission(settings, profile, placer)
        self.queued: dict[Hashable, EngineSequence] = {}  # waiting in the admission queue, by uid
        self.shed_at: deque[float] = deque()  # when the queue shed requests, over the last rate window
        self.flights: dict[int, _Flight] = {}
        n = len(trace)
        nan = math.nan
        self.ttft = [nan] * n
        self.itl = [nan] * n
        self.e2e = [nan] * n
        self.cached = [0] * n
        self.preempted = [0] * n
        self.done = 0
        self.closed = bytearray(n)  # 1 once a request is done with: finished, failed, refused or abandoned
        self.clients: deque[EngineSequence] = deque()  # in arrival order, for the client time-out
        self.timer_set = math.isinf(settings.client_timeout_s)  # a TIMEOUT is in the heap, or none is needed
        self.arrived = 0
        self.rejected = 0
        self.abandoned = 0
        self.shed = 0
        self.scale_events = 0
        self.control_cadence = 0  # bumped when a wake runs the control step early: older CONTROLs are stale
        self.asleep = False  # the last step left the pool to the wake watch (``wake.watched``)
        self.wake_polling = False  # a WAKE_POLL is due
        self.decisions: list[Decision] = []
        self.timeline: list[tuple[float, int, dict[Phase, tuple[int, int, int]]]] = []
        # Profile.kv_transfer_time is affine in the tokens: keep its two plain coefficients for the hot loop.
        self.transfer_latency_s = profile.kv_transfer_time(0.0)
        self.transfer_s_per_token = profile.kv_transfer_time(1.0) - self.transfer_latency_s

    # --- heap helpers ------------------------------------------------------------------------------------

    def _push(self, time: float, kind: _Event, obj: Any = None, version: int = 0) -> None:
        heapq.heappush(self.heap, (time, next(self.tick), kind, obj, version))

    def _reschedule(self, replica: SimReplica) -> None:
        replica.version += 1
        when = replica.engine.next_event_time()
        if when != math.inf:
            heapq.heappush(self.heap, (when, next(self.tick), _Event.REPLICA, replica, replica.version))

    # --- the loop -------------------------------------------------------------------------------------------

    def run(self, progress: Callable[[float], None] | None) -> RunResult:
        trace = self.trace
        settings = self.settings
        cluster = self.cluster
        n = len(trace)
        horizon = trace.duration_s
        stop_at = horizon + settings.drain_s
        for phase, replicas in settings.initial_replicas.items():
            for _, _, replica in cluster.scale_to(phase, replicas, now=0.0).started:
                cluster.mark_ready(replica, 0.0)
        self._push(0.0, _Event.SCRAPE)
        self._push(settings.control_interval_s, _Event.CONTROL)
        self._push(0.0, _Event.ROUTER_METRICS)
        policy_state = self.policy.initial_state()

        arrivals = trace.arrival_s.tolist()
        prompts = trace.prompt_tokens.tolist()
        outputs = trace.output_tokens.tolist()
        offsets = trace.block_offsets.tolist() if trace.block_offsets is not None else None
        hashes = trace.block_hashes.tolist() if trace.block_hashes is not None else None
        heap = self.heap
        pop = heapq.heappop
        max_len = self.max_len
        report_every = max(1, n // 200)
        i = 0
        now = 0.0
        while True:
            next_arrival = arrivals[i] if i < n else math.inf
            if heap and heap[0][0] < next_arrival:
                now, _, kind, obj, version = pop(heap)
                if now > stop_at:
                    break
                if kind is _Event.REPLICA:
                    if version == obj.version:
                        self._advance(obj, now)
                elif kind is _Event.TRANSFER:
                    if obj.seq.uid in self.flights:  # else it failed with its replica meanwhile
                        self._admit(self.cluster.replicas[obj.placement.endpoint], obj.seq, now)
                elif kind is _Event.READY:
                    if cluster.mark_ready(obj, now):
                        self._flush_backlog(now)
                        self._pump(now)
                elif kind is _Event.STARTED:
                    cluster.mark_started(obj)
                elif kind is _Event.TIMEOUT:
                    self._time_out(now)
                elif kind is _Event.SCRAPE:
                    self.scraper.scrape(now)
                    self._record_timeline(now)
                    if i < n or self.done < n:
                        self._push(now + settings.scrape.scrape_interval_s, _Event.SCRAPE)
                elif kind is _Event.ROUTER_METRICS:
                    self._report_engine_metrics(now)
                    if i < n or self.done < n:
                        self._push(now + settings.router_metrics_interval_s, _Event.ROUTER_METRICS)
                elif kind is _Event.WAKE_POLL:
                    self.wake_polling = False
                    if not self.asleep or (i >= n and self.done >= n):
                        continue  # woken meanwhile, or nothing left to come: the watch ends
                    if self._router_queue(now).requests < 1:
                        self._push(now + settings.wake_poll_s, _Event.WAKE_POLL)
                        self.wake_polling = True
                        continue
                    self.control_cadence += 1  # the cycle runs now, and the interval counts from it
                    policy_state = self._control(now, policy_state, more=True)
                elif kind is _Event.CONTROL:
                    if version == self.control_cadence:
                        policy_state = self._control(now, policy_state, more=i < n or self.done < n)
                else:
                    assert_never(kind)
                continue
            if i >= n:
                break
            now = next_arrival
            prompt = prompts[i]
            output = outputs[i]
            self.arrived += 1
            blocks = hashes[offsets[i] : offsets[i + 1]] if hashes is not None and offsets is not None else ()
            seq = EngineSequence(
                i, prompt_tokens=prompt, output_tokens=output, arrival=now, block_hashes=blocks
            )
            i += 1
            if prompt + seq.output_tokens > max_len:  # vLLM refuses it (400): never simulated
                self.done += 1
                self.rejected += 1
                self.closed[seq.uid] = 1
            else:
                self.clients.append(seq)
                if not self.timer_set:
                    self._push(now + settings.client_timeout_s, _Event.TIMEOUT)
                    self.timer_set = True
                self._dispatch(seq, now)
            if progress is not None and i % report_every == 0:
                progress(i / n)
        return self._result(now, horizon)

    # --- event handlers ------------------------------------------------------------------------------------

    def _control(self, now: float, state: Any, *, more: bool) -> Any:
        """One control step: observe, decide, apply; the next step is due an interval later and, while the
        pool sleeps at zero behind a router queue, the wake watch asks the router in between."""
        observation = self.scraper.observe(now)
        if self.admission is not None:
            observation = dataclasses.replace(observation, router_queue=self._router_queue(now))
        decision, state = self.policy.step(observation, state, now=now)
        self.decisions.append(decision)
        self._apply(decision.replicas(), now)
        self.asleep = self.admission is not None and wake.watched(decision, observation.router_queue)
        if more:
            self._push(now + self.settings.control_interval_s, _Event.CONTROL, None, self.control_cadence)
            if self.asleep and not self.wake_polling:
                self._push(now + self.settings.wake_poll_s, _Event.WAKE_POLL)
                self.wake_polling = True
        return state

    def _dispatch(self, seq: EngineSequence, now: float) -> bool:
        request = RouteRequest(
            request_id=seq.uid,
            prompt_tokens=seq.prompt_tokens,
            output_tokens=seq.output_tokens,
            block_hashes=seq.block_hashes,
        )
        admission = self.admission
        if admission is None:
            return self._place(seq, request, None, now)
        self._pump(now)  # shed what waited too long first
        endpoints = self._endpoints()
        priority = admission.settings.of(None)  # one class: the simulated clients send no header
        if admission.admit(seq.uid, request, priority, endpoints, now=now)[0] is Verdict.QUEUED:
            self.queued[seq.uid] = seq
            return False
        return self._place(seq, request, room(endpoints, admission.limits, request), now)

    def _pump(self, now: float) -> None:
        """Place waiting requests, first come first served, while endpoints have room for the first."""
        admission = self.admission
        if admission is None or not len(admission):
            return
        endpoints = self._endpoints()
        for waiting, _ in admission.expire(endpoints, now=now):
            self.closed[self.queued.pop(waiting.key).uid] = 1
            self.done += 1
            self.shed += 1
            self.shed_at.append(now)
        while (head := admission.next_ready(endpoints)) is not None:
            eligible = room(endpoints, admission.limits, head.request)
            self._place(self.queued.pop(head.key), head.request, eligible, now)

    def _endpoints(self) -> list[Endpoint]:
        router = self.placer
        assert isinstance(router, AffinityRouter)
        return [router.endpoint(name) for name in router.endpoints()]

    def _router_queue(self, now: float) -> RouterQueue:
        """What the controller reads from the router: the queue now, and its shed rate over the rate
        window (the live reader takes it from two reads of the shed counter)."""
        assert self.admission is not None
        tally = self.admission.tally()[self.admission.settings.default_class]
        window = self.settings.scrape.rate_window_s
        shed_at = self.shed_at
        while shed_at and shed_at[0] < now - window:
            shed_at.popleft()
        return RouterQueue(
            requests=tally.requests,
            prompt_tokens=tally.prompt_tokens,
            output_tokens=tally.tokens - tally.prompt_tokens,
            shed_per_s=len(shed_at) / window,
        )

    def _place(
        self, seq: EngineSequence, request: RouteRequest, eligible: frozenset[str] | None, now: float
    ) -> bool:
        placer = self.placer
        placement: Placement
        try:
            if eligible:  # only with the router queue, whose placer is the affinity router
                assert isinstance(placer, AffinityRouter)
                placement = placer.place(request, now=now, eligible=eligible)
            else:
                placement = placer.place(request, now=now)
        except NoEndpointError:
            self.backlog.append(seq)
            return False
        flight = _Flight(seq, placement)
        self.flights[seq.uid] = flight
        # The router's own counters (autoscaler_router_*), as the proxy counts a placement.
        counted = self.counted
        serving = counted[self.serving]
        serving.routed += 1
        if placement.prefill_endpoint is not None:
            prefill = counted[Phase.PREFILL]
            prefill.routed += 1
        else:
            prefill = serving
        prefill.routed_prompt += seq.prompt_tokens
        prefill.routed_cached += placement.cached_tokens
        target = placement.prefill_endpoint or placement.endpoint
        self._admit(self.cluster.replicas[target], seq, now)
        return True

    def _admit(self, replica: SimReplica, seq: EngineSequence, now: float) -> None:
        if replica.engine.admit(seq, now):
            self._reschedule(replica)

    def _flush_backlog(self, now: float) -> None:
        backlog = self.backlog
        while backlog:
            seq = backlog.popleft()
            if not self._dispatch(seq, now):  # it went back to the end: put it back in front
                backlog.appendleft(backlog.pop())
                return

    def _advance(self, replica: SimReplica, now: float) -> None:
        left = replica.engine.advance(now)
        if left:
            flights = self.flights
            if replica.phase is Phase.PREFILL:
                for seq in left:
                    flight = flights.get(seq.uid)
                    if flight is None:  # it failed with its decode replica, or was abandoned, meanwhile
                        continue
                    # vLLM's prefill engine served it with max_tokens=1: finished, one token, its TTFT.
                    counted = self.counted[Phase.PREFILL]
                    counted.requests += 1
                    counted.prompt.values.append(seq.prompt_tokens)
                    counted.output.values.append(1.0)
                    counted.ttft.values.append(now - seq.arrival)
                    self.placer.prefill_done(flight.placement, now=now)
                    self._pump(now)  # its prefill backlog shrank
                    done = now + self.transfer_latency_s + self.transfer_s_per_token * seq.prompt_tokens
                    heapq.heappush(self.heap, (done, next(self.tick), _Event.TRANSFER, flight, 0))
            else:
                for seq in left:
                    flight = flights.pop(seq.uid, None)
                    if flight is not None:  # else abandoned in the step that finished it
                        self._finish(flight, now)
        self._reschedule(replica)

    def _finish(self, flight: _Flight, now: float) -> None:
        seq = flight.seq
        placement = flight.placement
        self.placer.finished(placement, now=now)
        self._pump(now)
        uid = seq.uid
        first = seq.first_token_time
        self.ttft[uid] = first - seq.arrival
        self.e2e[uid] = now - seq.arrival
        # The serving engine's families: its TTFT runs from when it got the request (the KV's handover
        # after a remote prefill), its ITL once per token after the first.
        counted = self.counted[self.serving]
        counted.requests += 1
        counted.prompt.values.append(seq.prompt_tokens)
        counted.output.values.append(seq.output_tokens)
        handed_over = seq.prefill_done_time if placement.prefill_endpoint is not None else seq.arrival
        counted.ttft.values.append(first - handed_over)
        if seq.output_tokens > 1:
            itl = (now - first) / (seq.output_tokens - 1)
            self.itl[uid] = itl
            counted.itl.values.append(itl)
            counted.itl.weights.append(seq.output_tokens - 1)
        self.cached[uid] = seq.cached_tokens
        self.preempted[uid] = seq.preemptions
        self.closed[uid] = 1
        self.done += 1

    def _time_out(self, now: float) -> None:
        """Clients whose time-out has passed give up; the timer moves to the oldest request still open."""
        clients = self.clients
        closed = self.closed
        limit = self.settings.client_timeout_s
        while clients and (closed[clients[0].uid] or clients[0].arrival + limit <= now + 1e-9):
            seq = clients.popleft()
            if not closed[seq.uid]:
                self._abandon(seq, now)
        self.timer_set = bool(clients)
        if clients:
            self._push(clients[0].arrival + limit, _Event.TIMEOUT)

    def _abandon(self, seq: EngineSequence, now: float) -> None:
        """The client went away: the engine holding the request drops it (vLLM aborts it and frees its KV,
        counting it finished with reason "abort"), the router forgets it, and it is a miss."""
        self.closed[seq.uid] = 1
        self.done += 1
        self.abandoned += 1
        flight = self.flights.pop(seq.uid, None)
        if flight is None:  # still waiting at the router: in its queue, or for any endpoint
            if self.queued.pop(seq.uid, None) is not None and self.admission is not None:
                self.admission.remove(seq.uid, self.admission.settings.of(None))
            else:
                self.backlog.remove(seq)
            return
        placement = flight.placement
        self.placer.finished(placement, now=now)
        self._pump(now)
        holder = placement.endpoint
        if placement.prefill_endpoint is not None and math.isnan(seq.prefill_done_time):
            holder = placement.prefill_endpoint  # still prefilling remotely
        replica = self.cluster.replicas[holder]
        engine = replica.engine
        if seq.uid in engine.running or seq in engine.waiting:  # else its KV is in transfer: nothing holds it
            self.counted[replica.phase].requests += 1
            if engine.abort(seq, now):
                self._reschedule(replica)

    def _apply(self, desired: Mapping[Phase, int], now: float) -> None:
        cluster = self.cluster
        for phase in cluster.phases:
            if phase not in desired:
                continue
            resize = cluster.scale_to(phase, max(0, desired[phase]), now=now)
            if resize.resized:
                self.scale_events += 1
            for starts_at, ready_at, replica in resize.started:
                if starts_at > now:
                    self._push(starts_at, _Event.STARTED, replica)
                self._push(ready_at, _Event.READY, replica)
            for replica in resize.cut_short:
                self._fail_on(replica, now)

    def _fail_on(self, replica: SimReplica, now: float) -> None:
        """The requests a replica removed while still serving had on it fail (its drain timed out; the
        pod's deletion ends them): those it decodes or serves, and those it had not finished prefilling.
        A failed request still prefilling elsewhere is aborted there."""
        replica.version += 1  # its engine's pending event no longer runs
        name = replica.name
        flights = self.flights
        for uid, flight in list(flights.items()):
            placement = flight.placement
            prefilling = math.isnan(flight.seq.prefill_done_time)
            if placement.endpoint != name and not (prefilling and placement.prefill_endpoint == name):
                continue
            del flights[uid]
            self.placer.finished(placement, now=now)
            self._pump(now)
            self.closed[uid] = 1
            self.done += 1
            elsewhere = placement.prefill_endpoint
            if prefilling and elsewhere is not None and elsewhere != name:
                other = self.cluster.replicas[elsewhere]
                if other.engine.abort(flight.seq, now):
                    self._reschedule(other)

    def _report_engine_metrics(self, now: float) -> None:
        for replica in self.cluster.live:
            if replica.state is ReplicaState.READY or replica.state is ReplicaState.DRAINING:
                engine = replica.engine
                metrics = EndpointMetrics(
                    queue_length=engine.num_waiting, running=engine.num_running, kv_usage=engine.kv_usage
                )
                self.placer.update_metrics(replica.name, metrics, now=now)

    def _record_timeline(self, now: float) -> None:
        cluster = self.cluster
        counts = {
            phase: (
                cluster.count(phase, ReplicaState.READY),
                cluster.count(phase, ReplicaState.PENDING, ReplicaState.STARTING),
                cluster.count(phase, ReplicaState.DRAINING),
            )
            for phase in cluster.phases
        }
        self.timeline.append((now, self.arrived, counts))

    def _result(self, end: float, horizon: float) -> RunResult:
        replicas = list(self.cluster.replicas.values())
        engines = [r.engine for r in replicas]  # decode replicas count only what they prefill themselves
        trace = self.trace
        phases = self.cluster.phases
        timeline = Timeline(
            time_s=np.array([t for t, _, _ in self.timeline], dtype=np.float64),
            arrivals=np.array([a for _, a, _ in self.timeline], dtype=np.int64),
            ready={p: np.array([c[p][0] for _, _, c in self.timeline], dtype=np.int64) for p in phases},
            starting={p: np.array([c[p][1] for _, _, c in self.timeline], dtype=np.int64) for p in phases},
            draining={p: np.array([c[p][2] for _, _, c in self.timeline], dtype=np.int64) for p in phases},
        )
        return RunResult(
            policy=self.policy.name,
            arrival_s=np.asarray(trace.arrival_s, dtype=np.float64),
            ttft_s=np.array(self.ttft, dtype=np.float64),
            itl_s=np.array(self.itl, dtype=np.float64),
            e2e_s=np.array(self.e2e, dtype=np.float64),
            cached_tokens=np.array(self.cached, dtype=np.int64),
            preemptions=np.array(self.preempted, dtype=np.int64),
            output_tokens=np.asarray(trace.output_tokens, dtype=np.int64),
            gpu_seconds=self.cluster.gpu_seconds(horizon),
            horizon_s=horizon,
            end_s=end,
            scale_events=self.scale_events,
            decisions=tuple(self.decisions),
            prefix_hit_tokens=sum(e.hit_tokens for e in engines),
            prefix_query_tokens=sum(e.query_tokens for e in engines),
            prefix_hit_blocks=sum(e.hit_blocks for e in engines),
            prefix_query_blocks=sum(e.query_blocks for e in engines),
            timeline=timeline,
            lifetimes=self.cluster.lifetimes(),
            rejected=self.rejected,
            abandoned=self.abandoned,
            shed=self.shed,
        )


# The simulated router queues every request in one class, with ``SimSettings.router_queue_ttl_s`` as its TTL;
# without one its clients decide when to give up (``client_timeout_s``): the TTL is then a day.
_DAY_S = 86_400.0


def _admission(settings: SimSettings, profile: Profile, placer: Placer) -> AdmissionQueue | None:
    if not settings.router_queue:
        return None
    if not isinstance(placer, AffinityRouter):
        raise ValueError("the router queue needs the affinity router (router: affinity)")
    ttl = settings.router_queue_ttl_s
    admission = AdmissionSettings(
        classes=(PriorityClass(name="standard", rank=0, ttl_s=_DAY_S if ttl is None else ttl),),
        default_class="standard",
        wake_timeout_s=3600,
        max_queued_requests=10_000_000,
        max_queued_tokens=1 << 40,
    )
    return AdmissionQueue(admission, limits_from_profile(admission, profile))
