"""The wake watch reads only the routers of pools asleep at zero, never more of them at once than its cap, and
only while this replica leads; a pool it woke is not woken again before a cycle has decided for it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, cast

import pytest

from autoscaler.controller.cycle import MAX_WAKE_READS, ClusterClients, Memory, Reconciler


class CountingRouter:
    """Answers each router's held requests after a pause, and counts the reads under way at once."""

    def __init__(self, held: dict[str, float | None]) -> None:
        self.held = held
        self.reading = 0
        self.most = 0

    async def waiting(self, metrics_url: str | None, *, namespace: str) -> float | None:
        self.reading += 1
        self.most = max(self.most, self.reading)
        await asyncio.sleep(0.01)
        self.reading -= 1
        return self.held[str(metrics_url)]


def reconciler(router: CountingRouter, *, leading: bool) -> Reconciler:
    """A reconciler whose only client is ``router``: the wake watch uses nothing else."""
    unused = {field.name: cast(Any, None) for field in dataclasses.fields(ClusterClients)}
    return Reconciler(ClusterClients(**{**unused, "router": router}), leading=lambda: leading)


@pytest.mark.parametrize(
    ("leading", "woken"),
    [(True, [("ns", "held-0"), ("ns", "held-1"), ("ns", "held-2")]), (False, [])],
    ids=["leader: the sleeping pools with a held request", "follower: reads nothing"],
)
async def test_the_wake_watch_reads_the_sleeping_pools_within_its_cap(
    leading: bool, woken: list[tuple[str, str]]
) -> None:
    held: dict[str, float | None] = {f"http://held-{i}": 1.0 for i in range(3)}
    held.update({f"http://empty-{i}": 0.0 for i in range(40)})
    held["http://unreadable"] = None
    router = CountingRouter(held)
    watch = reconciler(router, leading=leading)
    for url in held:
        watch.memory[("ns", url.removeprefix("http://"))] = Memory(wake_url=url)
    watch.memory[("ns", "awake")] = Memory(wake_url=None)  # its cycles run: nothing to watch
    assert await watch.woken() == woken
    assert router.most <= MAX_WAKE_READS
    if leading:
        assert router.most == MAX_WAKE_READS  # many sleeping pools: reads in parallel, up to the cap
        # Woken pools are not woken again before a cycle decides for them (a cycle that cannot finish,
        # the API down say, is not rerun every poll).
        assert await watch.woken() == []
        assert all(watch.memory[key].wake_url is None for key in woken)
