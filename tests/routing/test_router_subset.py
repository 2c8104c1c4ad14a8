"""``AffinityRouter.place(eligible=...)``: a gateway's subset limits every choice the router makes."""

from __future__ import annotations

import pytest

from autoscaler.core.phases import Phase
from autoscaler.routing import interface, pd
from autoscaler.routing import settings as cfg
from autoscaler.routing.router import AffinityRouter

KV = 64 * 1000


def _router(phases: dict[str, Phase]) -> AffinityRouter:
    router = AffinityRouter(cfg.RouterSettings(), seed=0)
    for name, phase in phases.items():
        router.add_endpoint(name, phase=phase, kv_capacity_tokens=KV, now=0.0)
    return router


def _request(rid: int, blocks: int = 64) -> interface.RouteRequest:
    return interface.RouteRequest(
        request_id=rid, prompt_tokens=64 * blocks, output_tokens=100, block_hashes=list(range(blocks))
    )


AGGREGATED = {f"e{i}": Phase.AGGREGATED for i in range(4)}


def test_affinity_yields_to_the_subset() -> None:
    router = _router(AGGREGATED)
    first = router.place(_request(1), now=0.0)  # the prompt's blocks are now cached there
    router.finished(first, now=0.0)
    others = {n for n in AGGREGATED if n != first.endpoint}
    again = router.place(_request(2), now=0.0, eligible=others)
    router.finished(again, now=0.0)
    assert again.endpoint in others
    cached = {first.endpoint, again.endpoint}
    assert router.place(_request(3), now=0.0).endpoint in cached  # no subset: affinity again


@pytest.mark.parametrize("eligible", [set(), {"unknown"}], ids=["empty", "no-known-endpoint"])
def test_a_subset_with_no_endpoint_to_serve_is_refused_and_counts_nothing(eligible: set[str]) -> None:
    router = _router(AGGREGATED)
    with pytest.raises(interface.NoEndpointError):
        router.place(_request(1), now=0.0, eligible=eligible)
    assert sum(router.in_flight(n) for n in router.endpoints()) == 0


@pytest.mark.parametrize(
    ("eligible", "prefill", "reason"),
    [({"d0", "p1"}, "p1", pd.REMOTE), ({"d0"}, None, pd.REMOTE)],
    ids=["prefill-endpoint-in-subset", "no-prefill-endpoint-in-subset"],
)
def test_pd_picks_its_prefill_endpoint_within_the_subset(
    eligible: set[str], prefill: str | None, reason: str
) -> None:
    router = _router({"p0": Phase.PREFILL, "p1": Phase.PREFILL, "d0": Phase.DECODE, "d1": Phase.DECODE})
    placement = router.place(_request(1, blocks=256), now=0.0, eligible=eligible)
    assert placement.endpoint == "d0"
    assert placement.prefill_endpoint == prefill
    if prefill is not None:
        assert placement.prefill_reason == reason
