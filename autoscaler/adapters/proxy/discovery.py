"""Where the endpoints come from: a static list, a file, or Kubernetes pods. Each source is an async
iterator of complete snapshots (the whole list each time), so the fleet only ever reconciles.

- **static**: one snapshot.
- **file**: a YAML or JSON list of endpoints (the ``static`` schema), re-read when its modification time
  changes; an invalid file is logged and the previous snapshot kept.
- **kubernetes**: pods matching a label selector, listed then watched; a pod is an endpoint while it is
  Ready, has an IP and is not being deleted; its phase comes from a label (llm-d's ``llm-d.ai/role``:
  ``prefill``, ``decode``, ``prefill-decode``) and the controller's draining annotation stops new
  requests to it (any value but "" or "false": the controller writes the time the drain began).
- **inference_pool**: the members of a GIE ``InferencePool`` (``adapters.kubernetes.inference_pools``), one
  endpoint per pod and target port, named after the pod (``pod:port`` when the pool has several ports, so
  the controller's drain reads the router's per-pod figures); phase and draining as above.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic
import yaml

from autoscaler.adapters.proxy.settings import (
    Discovery,
    InferencePoolDiscovery,
    KubernetesDiscovery,
    StaticEndpoint,
)
from autoscaler.core.phases import Phase

if TYPE_CHECKING:
    from kubernetes.aio import client as kube_client

log = logging.getLogger(__name__)

Snapshot = tuple[StaticEndpoint, ...]
_ROLES = {"prefill": Phase.PREFILL, "decode": Phase.DECODE, "prefill-decode": Phase.AGGREGATED}


def snapshots(config: Discovery) -> AsyncIterator[Snapshot]:
    if config.file is not None:
        return _file_snapshots(config.file, poll_s=config.file_poll_s)
    if config.kubernetes is not None:
        return _kubernetes_snapshots(config.kubernetes)
    if config.inference_pool is not None:
        return _pool_snapshots(config.inference_pool)
    return _once(config.static)


async def _once(endpoints: Snapshot) -> AsyncIterator[Snapshot]:
    yield endpoints


def read_endpoint_file(path: Path) -> Snapshot:
    """Parse an endpoints file; raises ``ValueError`` naming the file when it is unreadable or invalid."""
    try:
        data = yaml.safe_load(path.read_text())
        return pydantic.TypeAdapter(Snapshot).validate_python(data or ())
    except (OSError, yaml.YAMLError, pydantic.ValidationError) as err:
        raise ValueError(f"{path}: {err}") from err


async def _file_snapshots(path: Path, *, poll_s: float) -> AsyncIterator[Snapshot]:
    seen: float | None = None
    while True:
        try:
            mtime = path.stat().st_mtime
        except OSError as err:
            log.error("endpoints file %s: %s", path, err)
            mtime = None
        if mtime is not None and mtime != seen:
            seen = mtime
            try:
                yield read_endpoint_file(path)
            except ValueError as err:
                log.error("endpoints file ignored, keeping the previous endpoints: %s", err)
        await asyncio.sleep(poll_s)


def pod_endpoint(pod: Mapping[str, Any], config: KubernetesDiscovery) -> StaticEndpoint | None:
    """The endpoint a pod (as the API serves it, a plain mapping) stands for; None when it cannot serve."""
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ip = status.get("podIP")
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()
    )
    if not ip or not ready or metadata.get("deletionTimestamp"):
        return None
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    host = f"[{ip}]" if ":" in ip else ip
    return StaticEndpoint(
        name=metadata.get("name") or ip,
        url=f"{config.scheme}://{host}:{config.port}",
        phase=_ROLES.get(labels.get(config.phase_label, ""), Phase.AGGREGATED),
        kv_events=f"tcp://{host}:{config.kv_events_port}" if config.kv_events_port else None,
        draining=str(annotations.get(config.draining_annotation, "")).lower() not in ("", "false"),
    )


async def _kubernetes_snapshots(config: KubernetesDiscovery) -> AsyncIterator[Snapshot]:
    """List, then watch; relist after the watch ends or fails (resourceVersion too old, API restarts)."""
    from kubernetes.aio import client, watch  # only the Kubernetes sources need the client

    async with await _api_client(config.api_server) as api_client:
        api = client.CoreV1Api(api_client)
        while True:
            try:
                listing: dict[str, Any] = api_client.sanitize_for_serialization(
                    await api.list_namespaced_pod(config.namespace, label_selector=config.selector)
                )
                pods: dict[str, Mapping[str, Any]] = {
                    p["metadata"]["name"]: p for p in listing.get("items") or ()
                }
                yield _pods_snapshot(pods, config)
                stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                    api.list_namespaced_pod,
                    config.namespace,
                    label_selector=config.selector,
                    resource_version=listing["metadata"].get("resourceVersion"),
                )
                async for event in stream:
                    pod = api_client.sanitize_for_serialization(event["object"])
                    name = pod["metadata"]["name"]
                    if event["type"] == "DELETED":
                        pods.pop(name, None)
                    else:
                        pods[name] = pod
                    yield _pods_snapshot(pods, config)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the API server is down or the watch expired: relist shortly
                log.warning("kubernetes discovery: %s; relisting", err)
                await asyncio.sleep(1.0)


async def _pool_snapshots(config: InferencePoolDiscovery) -> AsyncIterator[Snapshot]:
    from autoscaler.adapters.kubernetes import inference_pools

    async with await _api_client(config.api_server) as api_client:
        async for members in inference_pools.snapshots(
            api_client, namespace=config.namespace, name=config.name
        ):
            several = len({m.port for m in members}) > 1
            yield tuple(
                StaticEndpoint(
                    name=f"{m.pod}:{m.port}" if several else m.pod,
                    url=f"{config.scheme}://{m.address}",
                    phase=_ROLES.get(m.labels.get(config.phase_label, ""), Phase.AGGREGATED),
                    kv_events=f"tcp://{m.address.rsplit(':', 1)[0]}:{config.kv_events_port}"
                    if config.kv_events_port
                    else None,
                    draining=m.draining,
                )
                for m in members
            )


async def _api_client(api_server: str | None) -> kube_client.ApiClient:
    """The official client: at ``api_server`` when given (e.g. ``kubectl proxy``), else in-cluster, else
    the kubeconfig. The caller closes it (``async with``)."""
    from kubernetes.aio import client
    from kubernetes.aio import config as kube_config

    configuration = None
    if api_server:
        configuration = client.Configuration(host=api_server)
    else:
        try:
            kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kube_config.ConfigException:
            await kube_config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def _pods_snapshot(pods: Mapping[str, Mapping[str, Any]], config: KubernetesDiscovery) -> Snapshot:
    endpoints = (pod_endpoint(pod, config) for _, pod in sorted(pods.items()))
    return tuple(e for e in endpoints if e is not None)
