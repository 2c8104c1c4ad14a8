"""Two LeaseElectors on one fake API server: exactly one leads, and a silent leader is replaced in time."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.leases import LeaseElector
from tests.contract.kubernetes.conftest import ManualClock, assert_writes_valid
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.kube_resources import LEASES

DURATION_S = 15


def _elector(api_client: client.ApiClient, identity: str, clock: ManualClock) -> LeaseElector:
    return LeaseElector(
        api_client,
        namespace="default",
        name="inference-autoscaler",
        identity=identity,
        lease_duration_s=DURATION_S,
        clock=clock,
    )


async def test_candidates_racing_for_a_new_lease_yield_exactly_one_leader(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    clock = ManualClock()
    electors = [_elector(api_client, f"replica-{i}", clock) for i in range(3)]

    results = await asyncio.gather(*(e.try_acquire_or_renew() for e in electors))

    assert sum(r.leading for r in results) == 1
    leader = next(e.identity for e, r in zip(electors, results, strict=True) if r.leading)
    assert kube.get(LEASES, "inference-autoscaler")["spec"]["holderIdentity"] == leader
    assert assert_writes_valid(kube, "/leases") >= 1


async def test_the_leader_renews_and_the_follower_waits(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    clock = ManualClock()
    a, b = _elector(api_client, "a", clock), _elector(api_client, "b", clock)
    assert (await a.try_acquire_or_renew()).leading
    for _ in range(4):  # a renews every 5 s; b never sees the lease expire
        clock.advance(5)
        renewed = await a.try_acquire_or_renew()
        follower = await b.try_acquire_or_renew()
        assert renewed.leading and renewed.valid_until == clock.now() + DURATION_S
        assert (follower.leading, follower.holder) == (False, "a")
    lease = kube.get(LEASES, "inference-autoscaler")["spec"]
    assert (lease["leaseTransitions"], lease["leaseDurationSeconds"]) == (0, DURATION_S)
    assert assert_writes_valid(kube, "/leases") == 5


async def test_when_the_leader_stops_renewing_the_follower_takes_over_within_the_lease_duration(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    clock = ManualClock()
    a, b = _elector(api_client, "a", clock), _elector(api_client, "b", clock)
    await a.try_acquire_or_renew()
    assert not (await b.try_acquire_or_renew()).leading  # b first sees a's record now

    clock.advance(DURATION_S - 1)
    assert not (await b.try_acquire_or_renew()).leading
    clock.advance(1)
    took_over = await b.try_acquire_or_renew()

    assert (took_over.leading, took_over.transitions) == (True, 1)
    clock.advance(1)
    assert (await a.try_acquire_or_renew()).holder == "b"  # the old leader now follows


async def test_a_released_lease_is_taken_at_once(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    clock = ManualClock()
    a, b = _elector(api_client, "a", clock), _elector(api_client, "b", clock)
    await a.try_acquire_or_renew()
    assert not (await b.try_acquire_or_renew()).leading

    await a.release()
    await b.release()  # not the holder: a no-op

    assert (await b.try_acquire_or_renew()).leading
    assert assert_writes_valid(kube, "/leases") == 3


async def test_losing_the_write_race_is_following_not_an_error(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    clock = ManualClock()
    a = _elector(api_client, "a", clock)
    await a.try_acquire_or_renew()
    kube.faults.inject("/leases/inference-autoscaler$", status=409, method="PUT")

    clock.advance(5)
    result = await a.try_acquire_or_renew()

    assert (result.leading, result.valid_until) == (False, None)


async def test_an_unreachable_server_is_an_error_the_caller_sees(
    kube: FakeKubeApiServer, api_client: client.ApiClient
) -> None:
    kube.faults.inject("/leases/", status=500)

    with pytest.raises(errors.Unavailable):
        await _elector(api_client, "a", ManualClock()).try_acquire_or_renew()
