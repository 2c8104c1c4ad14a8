"""A request the router cannot count is refused before anything changes, and a placement that fails after
admission is released: in-flight counts always return to zero (issue 13: ``max_tokens: 10**400`` used to
leave a request counted forever and the endpoint starved)."""

from __future__ import annotations

import pytest

from autoscaler.core.phases import Phase
from autoscaler.routing import interface
from autoscaler.routing import settings as cfg
from autoscaler.routing.router import MAX_REQUEST_TOKENS, AffinityRouter


def _router(phases: tuple[Phase, ...] = (Phase.AGGREGATED, Phase.AGGREGATED)) -> AffinityRouter:
    router = AffinityRouter(cfg.RouterSettings(), seed=0)
    for i, phase in enumerate(phases):
        router.add_endpoint(f"e{i}", phase=phase, kv_capacity_tokens=64_000, now=0.0)
    return router


def _loads(router: AffinityRouter) -> list[tuple[int, int, int]]:
    records = (router.endpoint(n) for n in router.endpoints())
    return [(e.in_flight, e.in_flight_tokens, e.prefill_tokens) for e in records]


@pytest.mark.parametrize(
    ("prompt_tokens", "output_tokens"),
    [(10, 10**400), (10, MAX_REQUEST_TOKENS + 1), (10, -1), (-5, 10), (10**400, 10)],
    ids=["huge output", "just over the bound", "negative output", "negative prompt", "huge prompt"],
)
def test_out_of_bounds_request_is_refused_and_nothing_is_counted(
    prompt_tokens: int, output_tokens: int
) -> None:
    router = _router()
    with pytest.raises(ValueError, match="token counts"):
        router.place(
            interface.RouteRequest(request_id=1, prompt_tokens=prompt_tokens, output_tokens=output_tokens),
            now=0.0,
        )
    assert _loads(router) == [(0, 0, 0), (0, 0, 0)]
    placed = router.place(interface.RouteRequest(request_id=2, prompt_tokens=64, output_tokens=8), now=0.0)
    router.finished(placed, now=1.0)
    assert _loads(router) == [(0, 0, 0), (0, 0, 0)]


@pytest.mark.parametrize(
    "phases",
    [(Phase.AGGREGATED, Phase.AGGREGATED), (Phase.PREFILL, Phase.DECODE)],
    ids=["aggregated", "prefill-decode"],
)
def test_bound_sized_requests_release_exactly(phases: tuple[Phase, ...]) -> None:
    router = _router(phases)
    placements = [
        router.place(
            interface.RouteRequest(
                request_id=i, prompt_tokens=MAX_REQUEST_TOKENS, output_tokens=MAX_REQUEST_TOKENS
            ),
            now=0.0,
        )
        for i in range(3)
    ]
    router.prefill_done(placements[0], now=1.0)
    for placement in placements:
        router.finished(placement, now=2.0)
        router.finished(placement, now=2.0)  # a second release is a no-op
    assert _loads(router) == [(0, 0, 0), (0, 0, 0)]


def test_failure_after_admission_releases_the_placement(monkeypatch: pytest.MonkeyPatch) -> None:
    router = _router()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("session table failure")

    monkeypatch.setattr(router, "_remember_session", broken)
    with pytest.raises(RuntimeError):
        router.place(
            interface.RouteRequest(request_id=1, prompt_tokens=64, output_tokens=8, session_id="s"),
            now=0.0,
        )
    assert _loads(router) == [(0, 0, 0), (0, 0, 0)]
