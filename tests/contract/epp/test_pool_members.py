"""Which pods of an InferencePool are endpoints, on which ports: the pure mapping, table by table."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from autoscaler.adapters.kubernetes.inference_pools import PoolMember, PoolSpec, members, pool_spec


def _pool(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": spec}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"selector": {"matchLabels": {"b": "2", "a": "1"}}, "targetPorts": [{"number": 8000}]},
         PoolSpec(selector="a=1,b=2", ports=(8000,))),
        ({"selector": {"matchLabels": {"a": "1"}}, "targetPorts": [{"number": 8000}, {"number": 8001}]},
         PoolSpec(selector="a=1", ports=(8000, 8001))),
        ({"selector": {"matchLabels": {"a": "1"}},
          "targetPorts": [{"number": 0}, {"number": True}, {"number": 9}]},
         PoolSpec(selector="a=1", ports=(9,))),
    ],
    ids=["labels-sorted", "several-ports", "invalid-ports-dropped"],
)  # fmt: skip
def test_a_pools_selector_and_ports(spec: dict[str, Any], expected: PoolSpec) -> None:
    assert pool_spec(_pool(spec)) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"selector": {"matchLabels": {}}, "targetPorts": [{"number": 8000}]}, "every pod"),
        ({"targetPorts": [{"number": 8000}]}, "every pod"),
        ({"selector": {"matchLabels": {"a": "1"}}, "targetPorts": []}, "no valid port"),
        ({"selector": {"matchLabels": {"a": "1"}}, "targetPorts": [{"number": "8000"}]}, "no valid port"),
    ],
    ids=["empty-selector", "no-selector", "no-ports", "port-not-a-number"],
)
def test_a_pool_that_selects_everything_or_nothing_is_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pool_spec(_pool(spec))


def _pod(name: str, *, ip: str | None = "10.0.0.1", ready: bool = True, **meta: Any) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"llm-d.ai/role": "decode"}, **meta),
        status=client.V1PodStatus(
            pod_ip=ip, conditions=[client.V1PodCondition(type="Ready", status=str(ready))]
        ),
    )


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (_pod("a"), [("a", "10.0.0.1:8000", False), ("a", "10.0.0.1:8001", False)]),
        (_pod("a", ip="fd00::1"), [("a", "[fd00::1]:8000", False), ("a", "[fd00::1]:8001", False)]),
        (_pod("a", ready=False), []),
        (_pod("a", ip=None), []),
        (_pod("a", deletion_timestamp="2026-12-07T10:00:00Z"), []),
        (_pod("a", annotations={"inference-autoscaler.io/draining-since": "2026-12-07T10:00:00Z"}),
         [("a", "10.0.0.1:8000", True), ("a", "10.0.0.1:8001", True)]),
    ],
    ids=["ready", "ipv6", "not-ready", "no-ip", "being-deleted", "draining"],
)  # fmt: skip
def test_a_pod_is_an_endpoint_per_port_while_it_can_serve(
    pod: client.V1Pod, expected: list[tuple[str, str, bool]]
) -> None:
    found: tuple[PoolMember, ...] = members(PoolSpec(selector="a=1", ports=(8000, 8001)), {"a": pod})
    assert [(m.pod, m.address, m.draining) for m in found] == expected
    assert all(m.labels == {"llm-d.ai/role": "decode"} for m in found)
