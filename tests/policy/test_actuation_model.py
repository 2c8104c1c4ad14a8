"""The actuation model shared by the controller and the simulator: victims, when the count drops, reviving
marked replicas, the drain time-out, and the counts the policy is told."""

from __future__ import annotations

import dataclasses

import pytest

from autoscaler.core.observation import ReplicaCounts
from autoscaler.policy.actuation import Actuation, ReplicaView, actuate, choose, counts, drained


def r(name: str, *, created: float = 0.0, **more: object) -> ReplicaView:
    """A ready replica with nothing in flight, as the router reports it, unless told otherwise."""
    base = ReplicaView(name=name, created=created, in_flight=0.0)
    return dataclasses.replace(base, **more)  # type: ignore[arg-type]


SET = (
    r("a", created=1, in_flight=2),
    r("b", created=2, cached_blocks=90),
    r("c", created=3, cached_blocks=10),
    r("d", created=4, cached_blocks=10),
)


@pytest.mark.parametrize(
    ("case", "replicas", "desired", "ordered", "victims"),
    [
        (
            "not scheduled first, then not ready",
            (r("a"), r("b", pending=True, ready=False), r("c", ready=False), r("d")),
            2,
            False,
            ["b", "c"],
        ),
        ("between idle replicas the newest of the least cached", SET, 3, False, ["d"]),
        ("then the older one with as little cached", SET, 2, False, ["c", "d"]),
        ("the busy one last", SET, 1, False, ["b", "c", "d"]),
        ("equal replicas: the first by name, so the choice is stable", (r("y"), r("x")), 1, False, ["x"]),
        ("terminating replicas are not counted", (r("a"), r("b", deleting=True), r("c")), 2, False, []),
        (
            "ordered sets lose their highest ordinals whatever the load",
            (r("s-0"), r("s-1"), r("s-2"), r("s-10", in_flight=9)),
            2,
            True,
            ["s-10", "s-2"],
        ),
    ],
)
def test_victims_are_the_cheapest_loss(
    case: str, replicas: tuple[ReplicaView, ...], desired: int, ordered: bool, victims: list[str]
) -> None:
    chosen = choose(replicas, desired=desired, ordered=ordered)
    assert sorted(v.name for v in chosen.victims) == victims, case


@pytest.mark.parametrize(
    ("case", "replicas", "desired", "ordered", "mark", "unmark", "victims"),
    [
        (
            "marks under way are kept, the surplus lifted newest first",
            (r("a", draining_since=10.0), r("b", draining_since=20.0), r("c")),
            2,
            False,
            [],
            ["b"],
            ["a"],
        ),
        (
            "a deeper scale-down adds to the marks under way",
            (r("a", draining_since=10.0), r("b"), r("c", in_flight=1)),
            1,
            False,
            ["b"],
            [],
            ["a", "b"],
        ),
        (
            "ordered sets lift marks away from the highest ordinals",
            (r("s-0"), r("s-1", draining_since=5.0), r("s-2")),
            2,
            True,
            ["s-2"],
            ["s-1"],
            ["s-2"],
        ),
    ],
)
def test_marks_in_progress(
    case: str,
    replicas: tuple[ReplicaView, ...],
    desired: int,
    ordered: bool,
    mark: list[str],
    unmark: list[str],
    victims: list[str],
) -> None:
    chosen = choose(replicas, desired=desired, ordered=ordered)
    got = (
        [v.name for v in chosen.mark],
        [v.name for v in chosen.unmark],
        sorted(v.name for v in chosen.victims),
    )
    assert got == (mark, unmark, victims), case


@pytest.mark.parametrize(
    ("case", "replica", "now", "expected"),
    [
        ("still serving", r("a", draining_since=100.0, in_flight=1), 110.0, False),
        ("idle", r("a", draining_since=100.0), 110.0, True),
        ("the router cannot say: wait", r("a", draining_since=100.0, in_flight=None), 110.0, False),
        ("the router cannot say, past the bound", r("a", draining_since=100.0, in_flight=None), 160.0, True),
        ("still serving, past the bound", r("a", draining_since=100.0, in_flight=3), 160.0, True),
        ("not ready: serves nothing", r("a", ready=False, draining_since=100.0, in_flight=None), 100.0, True),
        ("marked just now, serving", r("a", in_flight=1), 100.0, False),
    ],
)
def test_drained_when_idle_unready_or_out_of_time(
    case: str, replica: ReplicaView, now: float, expected: bool
) -> None:
    assert drained(replica, now=now, timeout_s=60.0) is expected, case


@pytest.mark.parametrize(
    ("case", "replicas", "current", "desired", "expected"),
    [
        ("scale-up is one write", (r("a"),), 1, 3, Actuation(replicas=3)),
        (
            "holding the count lifts every mark",
            (r("a", draining_since=5.0), r("b")),
            2,
            2,
            Actuation(replicas=2, unmark=("a",)),
        ),
        (
            "demand back above the count revives the marked and adds the rest",
            (r("a", draining_since=5.0), r("b", draining_since=6.0)),
            2,
            3,
            Actuation(replicas=3, unmark=("a", "b")),
        ),
        (
            "a terminating replica keeps its mark",
            (r("a", deleting=True, draining_since=5.0),),
            1,
            1,
            Actuation(replicas=1),
        ),
        (
            "a victim still serving holds the count",
            (r("a", in_flight=1), r("b", in_flight=2)),
            2,
            1,
            Actuation(replicas=2, mark=("a",), victims=("a",), waiting=("a",)),
        ),
        (
            "idle victims go in the same step",
            (r("a"), r("b", in_flight=2)),
            2,
            1,
            Actuation(replicas=1, mark=("a",), victims=("a",)),
        ),
        (
            "the count drops once the drain is over",
            (r("a", draining_since=90.0), r("b", in_flight=2)),
            2,
            1,
            Actuation(replicas=1, victims=("a",)),
        ),
        (
            "or once the drain time-out has passed",
            (r("a", draining_since=30.0, in_flight=4), r("b")),
            2,
            1,
            Actuation(replicas=1, victims=("a",)),
        ),
        (
            "not-ready victims wait for the serving one",
            (r("a", in_flight=1), r("b", in_flight=2), r("c", ready=False, created=50)),
            3,
            1,
            Actuation(replicas=3, mark=("c", "a"), victims=("a", "c"), waiting=("a",)),
        ),
        ("fewer replicas than asked for: nothing to drain", (r("a"),), 2, 1, Actuation(replicas=1)),
    ],
)
def test_one_control_step(
    case: str, replicas: tuple[ReplicaView, ...], current: int, desired: int, expected: Actuation
) -> None:
    step = actuate(replicas, current=current, desired=desired, ordered=False, now=100.0, drain_timeout_s=60.0)
    assert step == expected, case


@pytest.mark.parametrize(
    ("case", "replicas", "current", "expected"),
    [
        (
            "draining replicas count as current and ready until they go",
            (r("a", draining_since=1.0), r("b")),
            2,
            ReplicaCounts(current=2, ready=2, starting=0),
        ),
        ("asked for, not ready: starting", (r("a"), r("b", ready=False)), 3, ReplicaCounts(3, 1, 2)),
        ("ready beyond the asked-for count is capped", (r("a"), r("b")), 1, ReplicaCounts(1, 1, 0)),
        ("terminating replicas are not ready supply", (r("a", deleting=True),), 1, ReplicaCounts(1, 0, 1)),
    ],
)
def test_counts_the_policy_is_told(
    case: str, replicas: tuple[ReplicaView, ...], current: int, expected: ReplicaCounts
) -> None:
    assert counts(replicas, current=current) == expected, case


@pytest.mark.parametrize(
    ("case", "more"),
    [
        ("negative in flight", {"in_flight": -1.0}),
        ("NaN in flight", {"in_flight": float("nan")}),
        ("negative cached blocks", {"cached_blocks": -1.0}),
    ],
)
def test_a_view_rejects_impossible_load(case: str, more: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        r("a", **more)


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        actuate((), current=1, desired=-1, ordered=False, now=0.0, drain_timeout_s=60.0)
