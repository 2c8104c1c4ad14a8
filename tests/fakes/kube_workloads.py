"""What the cluster does between API writes: the ReplicaSet and StatefulSet controllers and the kubelet.

When a Deployment's or StatefulSet's ``spec.replicas`` changes (directly or through ``/scale``), or one of
its pods is deleted, the fake makes the pods match, the way the real controllers do:

- A Deployment's pods (owned, as in a real cluster, by a ReplicaSet named ``<deployment>-<template hash>``)
  are removed in the ReplicaSet controller's order: unscheduled before scheduled, Pending before Running,
  not ready before ready, then the lowest ``controller.kubernetes.io/pod-deletion-cost`` first, then the
  newest. That order is what lets the autoscaler choose exactly which replica goes.
- A StatefulSet's pods are ``<name>-<ordinal>``; it removes the highest ordinal whatever the deletion cost
  and, under the default ``OrderedReady`` policy, creates the next pod only once the previous ones are ready.
- New pods start Running and Ready, or stay Pending (unschedulable) while ``start_pending`` is set, until a
  test calls ``set_ready``. The workload's status (replicas, readyReplicas, observedGeneration) follows.

Deleted pods vanish at once, or with ``termination_grace`` stay Terminating (deletionTimestamp set, not
ready, no longer counted) until a test calls ``finish_termination``. Template changes do not roll pods:
the autoscaler only changes replica counts.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import itertools
import json
from typing import Any

from tests.fakes.kube_resources import DEPLOYMENTS, PODS, STATEFULSETS, ApiError, ResourceType
from tests.fakes.kube_selectors import format_label_selector, label_predicate
from tests.fakes.kube_store import Change, Obj, Store

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes' generated name suffixes
_READINESS = ("Ready", "ContainersReady")


class WorkloadSimulator:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.start_pending = False  # new pods stay Pending (unschedulable) until set_ready
        self.termination_grace = False  # deleted pods stay Terminating until finish_termination
        self._serial = 0
        self._names = itertools.count(1)
        self._queue: list[tuple[ResourceType, str, str]] = []
        self._busy = False
        store.listen(self._on_change)

    def set_ready(self, namespace: str, pod: str, *, ready: bool = True) -> None:
        """Schedule a Pending pod and make it Ready (or a Running pod not ready), as the kubelet reports."""

        def bind(obj: Obj) -> Obj:
            return {**obj, "spec": {**obj.get("spec", {}), "nodeName": obj["spec"].get("nodeName", "node-1")}}

        def report(obj: Obj) -> Obj:
            ip = obj.get("status", {}).get("podIP") or self._next_ip()
            return {**obj, "status": _pod_status(ready=ready, ip=ip)}

        self._store.update(PODS, namespace, pod, bind)
        self._store.update(PODS, namespace, pod, report, subresource="status")

    def delete_pod(self, namespace: str, name: str) -> Obj:
        """Delete a pod: at once, or with ``termination_grace`` mark it Terminating (deletionTimestamp set,
        not ready) as the kubelet does during the grace period; the workload no longer counts it."""
        if not self.termination_grace:
            return self._store.delete(PODS, namespace, name)

        def terminate(obj: Obj) -> Obj:
            since = {"deletionTimestamp": _now(), "deletionGracePeriodSeconds": 30}
            return {**obj, "metadata": {**obj["metadata"], **since}}

        def unready(obj: Obj) -> Obj:
            conditions = [
                {**c, "status": "False"} if c["type"] in _READINESS else c for c in _conditions(obj)
            ]
            return {**obj, "status": {**obj.get("status", {}), "conditions": conditions}}

        self._store.update(PODS, namespace, name, terminate)
        return self._store.update(PODS, namespace, name, unready, subresource="status")

    def finish_termination(self, namespace: str, name: str) -> None:
        """The grace period of a Terminating pod is over: it is gone."""
        self._store.delete(PODS, namespace, name)

    def _on_change(self, change: Change) -> None:
        meta = change.obj["metadata"]
        if change.rtype.key in (DEPLOYMENTS.key, STATEFULSETS.key):
            if change.type == "DELETED":
                for pod in self._pods_of(meta["namespace"], meta["name"]):
                    self.delete_pod(meta["namespace"], pod["metadata"]["name"])
                return
            self._enqueue(change.rtype, meta["namespace"], meta["name"])
        elif change.rtype.key == PODS.key and _OWNER_LABEL in _labels(change.obj):
            kind = STATEFULSETS if meta["ownerReferences"][0]["kind"] == "StatefulSet" else DEPLOYMENTS
            self._enqueue(kind, meta["namespace"], _labels(change.obj)[_OWNER_LABEL])

    def _enqueue(self, rtype: ResourceType, namespace: str, name: str) -> None:
        """Reconcile one workload at a time: changes made while reconciling queue up instead of nesting."""
        if (rtype, namespace, name) not in self._queue:
            self._queue.append((rtype, namespace, name))
        if self._busy:
            return
        self._busy = True
        try:
            while self._queue:
                rtype, namespace, name = self._queue.pop(0)
                with contextlib.suppress(ApiError):  # deleted since it was queued
                    self._reconcile(rtype, self._store.get(rtype, namespace, name))
        finally:
            self._busy = False

    def _reconcile(self, rtype: ResourceType, workload: Obj) -> None:
        namespace = workload["metadata"]["namespace"]
        desired = workload.get("spec", {}).get("replicas", 1)
        pods = self._release_strays(namespace, workload)
        active = [pod for pod in pods if not _terminating(pod)]
        stateful = rtype.key == STATEFULSETS.key
        if len(active) < desired:
            for pod in self._missing(workload, pods, desired=desired, stateful=stateful):
                self._store.create(PODS, namespace, pod)
        elif len(active) > desired:
            rank = _ordinal_rank if stateful else _deletion_rank
            for victim in sorted(active, key=rank)[: len(active) - desired]:
                self.delete_pod(namespace, victim["metadata"]["name"])
        self._update_status(rtype, workload)

    def _missing(self, workload: Obj, pods: list[Obj], *, desired: int, stateful: bool) -> list[Obj]:
        """The pods to create now. A StatefulSet recreates an ordinal only once its old pod is gone and,
        under ``OrderedReady``, creates one pod at a time once every earlier one is ready."""
        if not stateful:
            active = sum(not _terminating(pod) for pod in pods)
            return [self._new_pod(workload, name=None) for _ in range(desired - active)]
        owner = workload["metadata"]["name"]
        existing = {pod["metadata"]["name"] for pod in pods}
        names = [f"{owner}-{i}" for i in range(desired) if f"{owner}-{i}" not in existing]
        if workload["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady":
            if not all(_is_ready(pod) and not _terminating(pod) for pod in pods):
                return []
            names = names[:1]
        return [self._new_pod(workload, name=name) for name in names]

    def _release_strays(self, namespace: str, workload: Obj) -> list[Obj]:
        """Orphan owned pods that no longer match the selector (relabelled to quarantine them), as the
        ReplicaSet controller does; the rest are the workload's pods, which a replacement then tops up."""
        matches = label_predicate(format_label_selector(workload["spec"].get("selector") or {}))
        pods = self._pods_of(namespace, workload["metadata"]["name"])
        for stray in (pod for pod in pods if not matches(pod)):
            self._store.update(PODS, namespace, stray["metadata"]["name"], _orphaned)
        return [pod for pod in pods if matches(pod)]

    def _pods_of(self, namespace: str, owner: str) -> list[Obj]:
        return self._store.list(PODS, namespace, lambda pod: _labels(pod).get(_OWNER_LABEL) == owner)[0]

    def _new_pod(self, workload: Obj, *, name: str | None) -> Obj:
        """A pod from the template: ``name`` is a StatefulSet ordinal, or None for a generated name."""
        template = workload["spec"].get("template", {})
        template_meta = template.get("metadata", {})
        owner = workload["metadata"]["name"]
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        if name is not None:
            extra = {"statefulset.kubernetes.io/pod-name": name}
            owner_ref = {"kind": "StatefulSet", "name": owner}
        else:
            name = f"{owner}-{template_hash}-{_suffix(next(self._names))}"
            extra = {"pod-template-hash": template_hash}
            owner_ref = {"kind": "ReplicaSet", "name": f"{owner}-{template_hash}"}
        return {
            "metadata": {
                "name": name,
                "labels": {**template_meta.get("labels", {}), **extra, _OWNER_LABEL: owner},
                "annotations": dict(template_meta.get("annotations", {})),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        **owner_ref,
                        "uid": workload["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {**template.get("spec", {}), **({} if self.start_pending else {"nodeName": "node-1"})},
            "status": _pod_status(ready=not self.start_pending, ip=self._next_ip()),
        }

    def _next_ip(self) -> str:
        self._serial += 1
        return f"10.0.{self._serial // 250}.{self._serial % 250 + 1}"

    def _update_status(self, rtype: ResourceType, workload: Obj) -> None:
        meta = workload["metadata"]
        pods = [pod for pod in self._pods_of(meta["namespace"], meta["name"]) if not _terminating(pod)]
        ready = sum(_is_ready(p) for p in pods)
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": len(pods),
        }
        if rtype.key == DEPLOYMENTS.key and len(pods) > ready:
            status["unavailableReplicas"] = len(pods) - ready
        if workload.get("status") != status:
            self._store.update(
                rtype,
                meta["namespace"],
                meta["name"],
                lambda obj: {**obj, "status": status},
                subresource="status",
            )


# Pods carry their owner's name in a label private to the fake, so that a pod is found without a ReplicaSet
# object; real pods are found through ownerReferences and the selector.
_OWNER_LABEL = "fake.kube/owner"


def _orphaned(pod: Obj) -> Obj:
    labels = {k: v for k, v in _labels(pod).items() if k != _OWNER_LABEL}
    meta = {k: v for k, v in pod["metadata"].items() if k != "ownerReferences"}
    return {**pod, "metadata": {**meta, "labels": labels}}


def _labels(pod: Obj) -> dict[str, str]:
    labels: dict[str, str] = pod["metadata"].get("labels") or {}
    return labels


def _conditions(pod: Obj) -> list[dict[str, str]]:
    conditions: list[dict[str, str]] = pod.get("status", {}).get("conditions", [])
    return conditions


def _is_ready(pod: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in _conditions(pod))


def _terminating(pod: Obj) -> bool:
    return "deletionTimestamp" in pod["metadata"]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _deletion_rank(pod: Obj) -> tuple[bool, bool, bool, int, int]:
    """The ReplicaSet controller's order of removal (smallest first); see the module doc."""
    annotations = pod["metadata"].get("annotations") or {}
    return (
        bool(pod.get("spec", {}).get("nodeName")),
        pod.get("status", {}).get("phase") == "Running",
        _is_ready(pod),
        int(annotations.get(DELETION_COST, "0")),
        -int(pod["metadata"]["uid"].replace("-", ""), 16),  # newest first: uids grow with creation here
    )


def _ordinal_rank(pod: Obj) -> int:
    return -int(pod["metadata"]["name"].rsplit("-", 1)[1])


def _pod_status(*, ready: bool, ip: str) -> Obj:
    if not ready:
        return {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                }
            ],
        }
    kinds = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    return {"phase": "Running", "podIP": ip, "conditions": [{"type": k, "status": "True"} for k in kinds]}


def _suffix(serial: int) -> str:
    chars = []
    for _ in range(5):
        serial, digit = divmod(serial, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)
