"""Other autoscalers that already scale a workload: HPAs (``autoscaling/v2``) and KEDA ScaledObjects.

Two actuators on one replica count fight; the controller refuses ``direct`` mode when this finds any. A
cluster without KEDA has no ScaledObject API (404), which simply means no ScaledObjects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.workload import WorkloadRef

KEDA_GROUP, KEDA_VERSION, KEDA_PLURAL = "keda.sh", "v1alpha1", "scaledobjects"


@dataclasses.dataclass(frozen=True, slots=True)
class ForeignAutoscaler:
    kind: str  # "HorizontalPodAutoscaler" or "ScaledObject"
    name: str
    namespace: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


class ForeignAutoscalerFinder:
    def __init__(self, api_client: client.ApiClient, *, timeout_s: float = 10.0) -> None:
        self._hpas = client.AutoscalingV2Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._timeout_s = timeout_s

    async def targeting(self, target: WorkloadRef) -> tuple[ForeignAutoscaler, ...]:
        """Every HPA and ScaledObject in the target's namespace whose scale target is ``target``."""
        with errors.translated(f"list HPAs in {target.namespace}"):
            hpas = await self._hpas.list_namespaced_horizontal_pod_autoscaler(
                target.namespace, _request_timeout=self._timeout_s
            )
        found = [
            ForeignAutoscaler("HorizontalPodAutoscaler", hpa.metadata.name or "", target.namespace)
            for hpa in hpas.items
            if hpa.metadata is not None
            and _targets(
                name=hpa.spec.scale_target_ref.name,
                kind=hpa.spec.scale_target_ref.kind,
                api_version=hpa.spec.scale_target_ref.api_version or target.api_version,
                target=target,
            )
        ]
        for scaled in await self._scaled_objects(target.namespace):
            ref = (scaled.get("spec") or {}).get("scaleTargetRef") or {}
            if _targets(
                name=ref.get("name"),
                kind=ref.get("kind") or "Deployment",
                api_version=ref.get("apiVersion") or "apps/v1",
                target=target,
            ):
                name = (scaled.get("metadata") or {}).get("name", "")
                found.append(ForeignAutoscaler("ScaledObject", name, target.namespace))
        return tuple(found)

    async def _scaled_objects(self, namespace: str) -> list[Mapping[str, Any]]:
        try:
            with errors.translated(f"list ScaledObjects in {namespace}"):
                listed = await self._custom.list_namespaced_custom_object(
                    KEDA_GROUP, KEDA_VERSION, namespace, KEDA_PLURAL, _request_timeout=self._timeout_s
                )
        except errors.NotFound:  # KEDA is not installed
            return []
        items = listed.get("items") if isinstance(listed, dict) else None
        return [item for item in items or [] if isinstance(item, dict)]


def _targets(*, name: object, kind: object, api_version: object, target: WorkloadRef) -> bool:
    """Whether a ``scaleTargetRef`` names ``target``; only the API group must match, not the version."""
    return name == target.name and kind == target.kind and str(api_version).rpartition("/")[0] == target.group
