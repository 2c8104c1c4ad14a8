"""The resource types the fake API server serves, the Status objects it answers with, and the Scale view.

A ``ResourceType`` says what the real API server would know from the type's registration: its group,
version and plural (the URL), its kind, whether it has a ``status`` subresource (then writes to the main
resource keep the stored status and writes to ``/status`` change nothing else) and a ``scale`` subresource
(``ScalePaths``, as a CustomResourceDefinition declares them), and whether a PUT without
``metadata.resourceVersion`` is accepted (built-in types allow unconditional updates; custom resources
do not).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.fakes.kube_selectors import format_label_selector


@dataclasses.dataclass(frozen=True, slots=True)
class ScalePaths:
    """Dotted paths into the parent object, as in a CRD's ``subresources.scale``."""

    spec_replicas: str = "spec.replicas"
    status_replicas: str = "status.replicas"
    label_selector: str | None = "status.selector"  # a selector string, or a LabelSelector object (apps/v1)


@dataclasses.dataclass(frozen=True, slots=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    status_subresource: bool = True
    scale: ScalePaths | None = None
    unconditional_update: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified_name(self) -> str:
        """How the server names the type in messages: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)


_APPS_SCALE = ScalePaths(label_selector="spec.selector")

DEPLOYMENTS = ResourceType("apps", "v1", "deployments", "Deployment", scale=_APPS_SCALE)
STATEFULSETS = ResourceType("apps", "v1", "statefulsets", "StatefulSet", scale=_APPS_SCALE)
PODS = ResourceType("", "v1", "pods", "Pod")
CORE_EVENTS = ResourceType("", "v1", "events", "Event", status_subresource=False)
EVENTS = ResourceType("events.k8s.io", "v1", "events", "Event", status_subresource=False)
LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "Lease", status_subresource=False)
HPAS = ResourceType("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
SCALED_OBJECTS = ResourceType(
    "keda.sh", "v1alpha1", "scaledobjects", "ScaledObject", unconditional_update=False
)

BUILTIN_TYPES = (DEPLOYMENTS, STATEFULSETS, PODS, CORE_EVENTS, EVENTS, LEASES, HPAS, SCALED_OBJECTS)


def custom_resource(
    *, group: str, version: str, plural: str, kind: str, scale: ScalePaths | None = None
) -> ResourceType:
    """A CRD-defined type with the status subresource (and optionally scale), as this project's CRDs have."""
    return ResourceType(group, version, plural, kind, scale=scale, unconditional_update=False)


class ApiError(Exception):
    """An error the server answers with a ``Status`` object, as the real API server does."""

    def __init__(
        self, code: int, reason: str, message: str, *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    @classmethod
    def not_found(cls, rtype: ResourceType, name: str) -> ApiError:
        return cls(
            404, "NotFound", f'{rtype.qualified_name} "{name}" not found', details=_details(rtype, name)
        )

    @classmethod
    def conflict(cls, rtype: ResourceType, name: str) -> ApiError:
        message = (
            f'Operation cannot be fulfilled on {rtype.qualified_name} "{name}": '
            "the object has been modified; "
            "please apply your changes to the latest version and try again"
        )
        return cls(409, "Conflict", message, details=_details(rtype, name))

    @classmethod
    def already_exists(cls, rtype: ResourceType, name: str) -> ApiError:
        message = f'{rtype.qualified_name} "{name}" already exists'
        return cls(409, "AlreadyExists", message, details=_details(rtype, name))

    @classmethod
    def invalid(cls, rtype: ResourceType, name: str, cause: str) -> ApiError:
        message = f'{rtype.kind}.{rtype.group or "core"} "{name}" is invalid: {cause}'
        return cls(422, "Invalid", message, details={**_details(rtype, name), "kind": rtype.kind})


def _details(rtype: ResourceType, name: str) -> dict[str, Any]:
    details = {"name": name, "kind": rtype.plural}
    return {**details, "group": rtype.group} if rtype.group else details


def dig(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def with_value(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` (copied along ``path`` only) with ``value`` set at the dotted ``path``."""
    head, _, rest = path.partition(".")
    result = dict(obj)
    result[head] = with_value(dict(obj.get(head) or {}), rest, value) if rest else value
    return result


def scale_of(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The ``autoscaling/v1`` Scale the server derives from a parent object."""
    assert rtype.scale is not None
    meta = obj["metadata"]
    status: dict[str, Any] = {"replicas": dig(obj, rtype.scale.status_replicas) or 0}
    selector = dig(obj, rtype.scale.label_selector) if rtype.scale.label_selector else None
    if isinstance(selector, dict):
        selector = format_label_selector(selector)
    if selector:
        status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        },
        "spec": {"replicas": dig(obj, rtype.scale.spec_replicas) or 0},
        "status": status,
    }


def apply_scale(rtype: ResourceType, parent: dict[str, Any], scale: dict[str, Any]) -> dict[str, Any]:
    """The parent with the Scale's ``spec.replicas`` written back; its resourceVersion is the precondition."""
    assert rtype.scale is not None
    name = parent["metadata"]["name"]
    replicas = dig(scale, "spec.replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ApiError.invalid(rtype, name, f"spec.replicas: Invalid value: {replicas!r}: must be >= 0")
    updated = with_value(parent, rtype.scale.spec_replicas, replicas)
    precondition = dig(scale, "metadata.resourceVersion")
    if precondition:
        updated["metadata"] = {**updated["metadata"], "resourceVersion": precondition}
    return updated
