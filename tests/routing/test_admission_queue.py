"""The admission queue alone: order, bounds, TTL, the wake time-out, room per endpoint (pure, no clock)."""

from __future__ import annotations

import dataclasses

import pytest

from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import Phase
from autoscaler.routing.admission import (
    AdmissionQueue,
    AdmissionSettings,
    EndpointLimits,
    Shed,
    UnknownClass,
    Verdict,
    limits_from_profile,
    room,
)
from autoscaler.routing.endpoint import Endpoint
from autoscaler.routing.interface import RouteRequest

LIMITS = EndpointLimits(max_requests=2, max_kv_fraction=0.5, max_prefill_tokens=1_000)


def endpoint(
    name: str,
    *,
    in_flight: int = 0,
    tokens: int = 0,
    phase: Phase = Phase.AGGREGATED,
    draining: bool = False,
    backlog: int = 0,
) -> Endpoint:
    e = Endpoint(name, phase=phase, slot=0, added_at=0.0)
    e.in_flight, e.in_flight_tokens, e.kv_capacity_tokens, e.draining = in_flight, tokens, 10_000, draining
    e.prefill_tokens = backlog
    return e


def request(i: int, *, tokens: int = 100) -> RouteRequest:
    return RouteRequest(request_id=i, prompt_tokens=tokens, output_tokens=0)


def queue(**settings: object) -> AdmissionQueue:
    return AdmissionQueue(AdmissionSettings.model_validate(settings), LIMITS)


FULL = [endpoint("a", in_flight=2)]
FREE = [endpoint("a", in_flight=1, tokens=100)]


@dataclasses.dataclass(frozen=True)
class RoomCase:
    name: str
    endpoints: list[Endpoint]
    tokens: int
    want: frozenset[str] | None


ROOM_CASES = [
    RoomCase(
        "every endpoint has room: no restriction", [endpoint("a"), endpoint("b", in_flight=1)], 100, None
    ),
    RoomCase(
        "at the request limit: excluded", [endpoint("a", in_flight=2), endpoint("b")], 100, frozenset("b")
    ),
    RoomCase(
        "past the KV fraction with this request: excluded",
        [endpoint("a", in_flight=1, tokens=4_950), endpoint("b", in_flight=1)],
        100,
        frozenset("b"),
    ),
    RoomCase(
        "an idle endpoint takes any size", [endpoint("a", in_flight=2), endpoint("b")], 10**9, frozenset("b")
    ),
    RoomCase("none has room: empty", [endpoint("a", in_flight=2)], 1, frozenset()),
    RoomCase(
        "P/D: a prefill endpoint past its backlog is excluded",
        [
            endpoint("p", phase=Phase.PREFILL, backlog=950),
            endpoint("q", phase=Phase.PREFILL),
            endpoint("d", phase=Phase.DECODE),
        ],
        100,
        frozenset({"q", "d"}),
    ),
    RoomCase(
        "P/D: every prefill endpoint backlogged: no room, though decode has",
        [endpoint("p", phase=Phase.PREFILL, backlog=950), endpoint("d", phase=Phase.DECODE)],
        100,
        frozenset(),
    ),
    RoomCase(
        "P/D: an idle prefill endpoint takes any prompt",
        [endpoint("p", phase=Phase.PREFILL), endpoint("d", phase=Phase.DECODE)],
        10**6,
        None,
    ),
    RoomCase(
        "prefill endpoints stay eligible when some decode has room",
        [endpoint("p", phase=Phase.PREFILL), endpoint("d", phase=Phase.DECODE, in_flight=2), endpoint("e")],
        1,
        frozenset({"p", "e"}),
    ),
    RoomCase(
        "draining endpoints are not room",
        [endpoint("a", draining=True), endpoint("b", in_flight=2)],
        1,
        frozenset(),
    ),
]


@pytest.mark.parametrize("case", ROOM_CASES, ids=lambda c: c.name)
def test_room_is_the_serving_endpoints_under_their_limits(case: RoomCase) -> None:
    assert room(case.endpoints, LIMITS, request(0, tokens=case.tokens)) == case.want


def test_higher_class_first_then_arrival_order() -> None:
    q = queue()
    s = q.settings
    for key, cls in [(1, "sheddable"), (2, "standard"), (3, "critical"), (4, "standard"), (5, "critical")]:
        assert q.admit(key, request(key), s.of(cls), FULL, now=0.0)[0] is Verdict.QUEUED
    order = []
    while (w := q.next_ready(FREE)) is not None:
        order.append(w.key)
    assert order == [3, 5, 2, 4, 1]


@dataclasses.dataclass(frozen=True)
class ArriveCase:
    name: str
    settings: dict[str, object]
    endpoints: list[Endpoint]
    queued_before: list[str]  # classes already waiting
    cls: str
    want: Verdict


ARRIVE_CASES = [
    ArriveCase("room and nobody waiting: dispatch", {}, FREE, [], "standard", Verdict.DISPATCH),
    ArriveCase("no room: queued", {}, FULL, [], "standard", Verdict.QUEUED),
    ArriveCase(
        "room but an equal class waits: queued behind it", {}, FREE, ["standard"], "standard", Verdict.QUEUED
    ),
    ArriveCase(
        "room and only a lower class waits: dispatch", {}, FREE, ["sheddable"], "critical", Verdict.DISPATCH
    ),
    ArriveCase(
        "request bound reached: full",
        {"max_queued_requests": 1},
        FULL,
        ["standard"],
        "critical",
        Verdict.FULL,
    ),
    ArriveCase(
        "token bound reached: full", {"max_queued_tokens": 150}, FULL, ["standard"], "standard", Verdict.FULL
    ),
    ArriveCase("no endpoint, no wake: 503 at once", {}, [], [], "standard", Verdict.NO_ENDPOINT),
    ArriveCase("no endpoint, waking: held", {"wake_timeout_s": 300}, [], [], "standard", Verdict.QUEUED),
    ArriveCase(
        "only prefill endpoints: held while waking",
        {"wake_timeout_s": 300},
        [endpoint("p", phase=Phase.PREFILL)],
        [],
        "standard",
        Verdict.QUEUED,
    ),
]


@pytest.mark.parametrize("case", ARRIVE_CASES, ids=lambda c: c.name)
def test_arrival_verdicts(case: ArriveCase) -> None:
    q = queue(**case.settings)
    for i, cls in enumerate(case.queued_before):
        q.admit(("before", i), request(i), q.settings.of(cls), FULL, now=0.0)[0]
    assert q.admit("new", request(99), q.settings.of(case.cls), case.endpoints, now=1.0)[0] is case.want
    assert len(q) == len(case.queued_before) + (case.want is Verdict.QUEUED)


@dataclasses.dataclass(frozen=True)
class ExpiryCase:
    name: str
    wake_timeout_s: float
    endpoints: list[Endpoint]
    now: float
    want: list[tuple[str, Shed]]


# Queued at t=0: one request per class (TTLs: critical 60 s, standard 30 s, sheddable 10 s).
EXPIRY_CASES = [
    ExpiryCase("before any TTL: nothing", 0, FULL, 9.9, []),
    ExpiryCase("past sheddable's TTL only", 0, FULL, 10, [("sheddable", Shed.EXPIRED)]),
    ExpiryCase(
        "past all TTLs",
        0,
        FULL,
        61,
        [("critical", Shed.EXPIRED), ("standard", Shed.EXPIRED), ("sheddable", Shed.EXPIRED)],
    ),
    ExpiryCase("no endpoint: the wake time-out holds them past their TTL", 300, [], 200, []),
    ExpiryCase(
        "no endpoint past the wake time-out: not woken",
        300,
        [],
        300,
        [("critical", Shed.NOT_WOKEN), ("standard", Shed.NOT_WOKEN), ("sheddable", Shed.NOT_WOKEN)],
    ),
    ExpiryCase(
        "no endpoint and no wake: not woken at once",
        0,
        [],
        0,
        [("critical", Shed.NOT_WOKEN), ("standard", Shed.NOT_WOKEN), ("sheddable", Shed.NOT_WOKEN)],
    ),
]


@pytest.mark.parametrize("case", EXPIRY_CASES, ids=lambda c: c.name)
def test_expiry_by_class_ttl_and_wake_timeout(case: ExpiryCase) -> None:
    q = queue(wake_timeout_s=case.wake_timeout_s)
    for cls in ("critical", "standard", "sheddable"):
        assert q.admit(cls, request(0), q.settings.of(cls), FULL, now=0.0)[0] is Verdict.QUEUED
    shed = q.expire(case.endpoints, now=case.now)
    assert [(w.key, why) for w, why in shed] == case.want
    assert len(q) == 3 - len(case.want)


def test_ttl_runs_from_the_wake_for_requests_held_through_a_cold_start() -> None:
    q = queue(wake_timeout_s=300)
    standard = q.settings.of("standard")  # TTL 30 s
    assert q.admit("cold", request(0), standard, [], now=0.0)[0] is Verdict.QUEUED
    assert q.expire([], now=200.0) == []
    assert q.expire(FULL, now=210.0) == []  # woke at 210 s: 30 s from now
    assert q.expire(FULL, now=239.0) == []
    assert [(w.key, why) for w, why in q.expire(FULL, now=240.0)] == [("cold", Shed.EXPIRED)]


def test_removed_request_leaves_no_trace_in_the_tallies() -> None:
    q = queue()
    standard = q.settings.of("standard")
    q.admit("a", request(1, tokens=70), standard, FULL, now=0.0)[0]
    q.admit("b", request(2, tokens=30), standard, FULL, now=0.0)[0]
    assert q.remove("a", standard) is True
    assert q.remove("a", standard) is False
    assert q.tally()["standard"].requests == 1 and q.tally()["standard"].tokens == 30
    assert q.next_ready(FREE) is not None and q.next_ready(FREE) is None
    assert all(t.requests == 0 and t.tokens == 0 for t in q.tally().values())


def test_head_is_not_overtaken_by_smaller_requests() -> None:
    q = queue()
    standard = q.settings.of("standard")
    q.admit("big", request(1, tokens=4_950), standard, FULL, now=0.0)[0]
    q.admit("small", request(2, tokens=1), standard, FULL, now=0.0)[0]
    assert q.next_ready(FREE) is None  # 100 + 4,950 tokens pass half of 10,000
    assert q.next_ready([endpoint("new")]).key == "big"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("header", "want"),
    [(None, "standard"), ("", "standard"), ("Critical", "critical"), (" sheddable ", "sheddable")],
)
def test_class_from_header(header: str | None, want: str) -> None:
    assert AdmissionSettings().of(header).name == want


@pytest.mark.parametrize("header", ["urgent", "x" * 10_000])
def test_unknown_class_is_refused_with_a_bounded_message(header: str) -> None:
    with pytest.raises(UnknownClass) as raised:
        AdmissionSettings().of(header)
    assert len(str(raised.value)) < 120


@pytest.mark.parametrize(
    "settings",
    [
        {"default_class": "missing"},
        {
            "classes": [{"name": "a", "rank": 0, "ttl_s": 1}, {"name": "a", "rank": 1, "ttl_s": 1}],
            "default_class": "a",
        },
        {"classes": [{"name": "a", "rank": 0, "ttl_s": float("inf")}], "default_class": "a"},
        {"max_queued_requests": -1},
        {"wake_timeout_s": 1e9},
    ],
)
def test_bad_settings_are_refused_at_the_edge(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AdmissionSettings.model_validate(settings)


def test_limits_default_to_the_profiles_batch_and_kv_headroom() -> None:
    profile = load_profile("llama-3.1-8b/h100-tp1")
    limits = limits_from_profile(AdmissionSettings(), profile)
    assert limits.max_requests == int(profile.limits.max_num_seqs.value)
    assert limits.max_kv_fraction == profile.limits.max_kv_usage
    chunk = profile.limits.max_num_batched_tokens.value
    assert limits.max_prefill_tokens == pytest.approx(chunk / profile.prefill_time(chunk))  # 1 s of prefill
    assert limits_from_profile(AdmissionSettings(max_requests_per_endpoint=3), profile).max_requests == 3
    assert limits_from_profile(AdmissionSettings(), None) == EndpointLimits(None, None)
