"""Which object a pool scales: any namespaced kind with a ``scale`` subresource."""

from __future__ import annotations

import dataclasses

# The label a workload's owner puts on it to let the controller scale it (direct mode): whoever may create an
# InferenceAutoscaler in a namespace must not thereby be able to scale every workload there to zero.
OPT_IN_LABEL = "inference-autoscaler.io/scalable"
OPT_IN_VALUE = "true"

# Kinds the apps/v1 API serves with typed scale methods; anything else goes through the custom-objects API
# and needs its resource plural (e.g. LeaderWorkerSet -> leaderworkersets).
APPS_PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets", "ReplicaSet": "replicasets"}


@dataclasses.dataclass(frozen=True, slots=True)
class WorkloadRef:
    api_version: str  # "apps/v1", "leaderworkerset.x-k8s.io/v1"
    kind: str
    name: str
    namespace: str
    plural: str = ""  # the resource's plural name; derived for apps/v1 kinds

    def __post_init__(self) -> None:
        if not self.plural:
            if not self.is_apps:
                raise ValueError(f"{self.api_version} {self.kind} needs its resource plural to be scaled")
            object.__setattr__(self, "plural", APPS_PLURALS[self.kind])

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def is_apps(self) -> bool:
        """Served by ``AppsV1Api`` (typed ``V1Scale``) rather than ``CustomObjectsApi``."""
        return self.api_version == "apps/v1" and self.kind in APPS_PLURALS

    def __str__(self) -> str:
        return f"{self.api_version} {self.kind} {self.namespace}/{self.name}"
