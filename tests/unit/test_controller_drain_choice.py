"""Which replicas a scale-down removes and when they count as drained (pure functions of pods and load);
condition bookkeeping; the router's per-endpoint load as parsed from its /metrics text."""

from __future__ import annotations

import dataclasses

from autoscaler.adapters.kubernetes.pods import PodState
from autoscaler.adapters.router_metrics import EndpointLoad, parse
from autoscaler.controller import drain, status
from autoscaler.core.decision import Reason
from autoscaler.core.phases import Phase


def pod(
    name: str, *, ready: bool = True, pending: bool = False, created: float = 0.0, **more: object
) -> PodState:
    base = PodState(
        name=name,
        namespace="default",
        phase="Pending" if pending else "Running",
        ready=ready and not pending,
        ip=None,
        deleting=False,
        draining_since=None,
        deletion_cost=None,
        created=created,
        resource_version="1",
    )
    return dataclasses.replace(base, **more)  # type: ignore[arg-type]


def load(**endpoints: tuple[float, float]) -> dict[str, EndpointLoad]:
    return {name: EndpointLoad(in_flight=f, cached_blocks=b) for name, (f, b) in endpoints.items()}


def names(pods: tuple[PodState, ...]) -> list[str]:
    return sorted(p.name for p in pods)


def test_pending_and_unready_replicas_go_before_serving_ones() -> None:
    pods = [pod("a"), pod("b", pending=True), pod("c", ready=False), pod("d")]
    plan = drain.plan(pods, desired=2, kind="Deployment", load=load(a=(0, 0), d=(0, 0)))
    assert names(plan.victims) == ["b", "c"]


def test_fewest_in_flight_first_then_least_cached_then_newest() -> None:
    pods = [pod("a", created=1), pod("b", created=2), pod("c", created=3), pod("d", created=4)]
    router = load(a=(2, 0), b=(0, 90), c=(0, 10), d=(0, 10))
    assert names(drain.plan(pods, desired=3, kind="Deployment", load=router).victims) == ["d"]
    assert names(drain.plan(pods, desired=2, kind="Deployment", load=router).victims) == ["c", "d"]
    assert names(drain.plan(pods, desired=1, kind="Deployment", load=router).victims) == ["b", "c", "d"]


def test_marks_in_progress_are_kept_and_the_surplus_lifted_newest_first() -> None:
    pods = [pod("a", draining_since=10.0), pod("b", draining_since=20.0), pod("c")]
    plan = drain.plan(pods, desired=2, kind="Deployment", load=None)
    assert (names(plan.victims), names(plan.mark), names(plan.unmark)) == (["a"], [], ["b"])


def test_pods_already_terminating_are_not_counted() -> None:
    pods = [pod("a"), pod("b", deleting=True), pod("c")]
    plan = drain.plan(pods, desired=2, kind="Deployment", load=None)
    assert plan.victims == ()


def test_statefulsets_lose_their_highest_ordinals_whatever_the_load() -> None:
    pods = [pod("llm-0"), pod("llm-1", draining_since=5.0), pod("llm-2"), pod("llm-10")]
    plan = drain.plan(pods, desired=2, kind="StatefulSet", load=load(**{"llm-10": (9, 9)}))
    assert names(plan.victims) == ["llm-10", "llm-2"]
    assert names(plan.unmark) == ["llm-1"]


def test_drained_when_idle_unready_or_out_of_time() -> None:
    marked = pod("a", draining_since=100.0)
    assert not drain.drained(marked, load=load(a=(1, 0)), now=110.0, timeout_s=60)
    assert drain.drained(marked, load=load(a=(0, 0)), now=110.0, timeout_s=60)
    assert drain.drained(marked, load=load(), now=110.0, timeout_s=60)  # the router no longer knows it
    assert not drain.drained(marked, load=None, now=110.0, timeout_s=60)  # no router: wait for the bound
    assert drain.drained(marked, load=None, now=160.0, timeout_s=60)
    assert drain.drained(pod("b", ready=False, draining_since=100.0), load=None, now=100.0, timeout_s=60)


def test_a_condition_keeps_its_transition_time_until_its_status_changes() -> None:
    first = status.conditions(
        [status.Condition("Ready", True, "Resolved", "ok")], previous=[], generation=1, now=1_000.0
    )
    same = status.conditions(
        [status.Condition("Ready", True, "Resolved", "still ok")], previous=first, generation=2, now=2_000.0
    )
    flipped = status.conditions(
        [status.Condition("Ready", False, "InvalidSpec", "bad")], previous=same, generation=3, now=3_000.0
    )
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"] == "1970-01-01T00:16:40Z"
    assert same[0]["observedGeneration"] == 2
    assert flipped[0]["lastTransitionTime"] == "1970-01-01T00:50:00Z"


def test_limited_names_the_clamps() -> None:
    assert status.limited({Phase.PREFILL: Reason.SCALE_UP}).status is False
    limited = status.limited(
        {Phase.PREFILL: Reason.BUDGET_LIMITED, Phase.DECODE: Reason.SCALE_DOWN_STABILIZED}
    )
    assert (limited.status, limited.reason) == (True, "SeveralLimits")
    assert "decode: ScaleDownStabilized" in limited.message


def test_router_metrics_text_parses_per_endpoint() -> None:
    text = (
        "# TYPE autoscaler_router_endpoint_in_flight_requests gauge\n"
        'autoscaler_router_endpoint_in_flight_requests{pool="p",endpoint="a",phase="decode"} 3\n'
        'autoscaler_router_endpoint_in_flight_requests{pool="p",endpoint="b",phase="decode"} 0\n'
        "# TYPE autoscaler_router_endpoint_index_blocks gauge\n"
        'autoscaler_router_endpoint_index_blocks{pool="p",endpoint="a",phase="decode"} 12\n'
        "# TYPE autoscaler_router_requests_total counter\n"
        'autoscaler_router_requests_total{pool="p",phase="decode"} 7\n'
    )
    assert parse(text) == {"a": EndpointLoad(3.0, 12.0), "b": EndpointLoad(0.0, 0.0)}
