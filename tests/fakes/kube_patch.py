"""The three patch formats the Kubernetes API server accepts, applied to plain JSON objects.

The official Python client sends ``application/strategic-merge-patch+json`` for a dict body and
``application/json-patch+json`` for a list body; ``application/merge-patch+json`` when asked. Server-side
apply (``application/apply-patch+yaml``) is not modelled: the fake answers 415, which is what a caller that
relies on it must notice rather than get a wrong merge.

Strategic merge differs from a JSON merge patch only for lists. Real Kubernetes merges a list by the
``patchMergeKey`` its Go types declare (containers by ``name``, conditions by ``type``, ports by
``containerPort``...); here a list of objects that all carry one of those keys is merged by it, any other
list is replaced, and the ``$patch: delete`` / ``$patch: replace`` directives are honoured on list items and
maps. That covers every field this project patches (replicas, annotations, labels, conditions).
"""

from __future__ import annotations

import copy
from typing import Any

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

_MERGE_KEYS = ("name", "type", "containerPort", "mountPath", "ip", "topologyKey")


class PatchError(ValueError):
    """The patch document is malformed or a JSON-patch ``test`` failed (the server answers 422)."""


class UnsupportedPatchType(ValueError):
    """The content type is not a patch format this fake implements (the server answers 415)."""


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Return a new object: ``target`` with ``patch`` applied under the semantics of ``content_type``."""
    media = content_type.split(";")[0].strip().lower()
    if media == MERGE_PATCH:
        return _as_object(merge_patch(target, _as_object(patch)))
    if media == STRATEGIC_MERGE_PATCH:
        return _as_object(strategic_merge_patch(target, _as_object(patch)))
    if media == JSON_PATCH:
        if not isinstance(patch, list):
            raise PatchError("a JSON patch is a list of operations")
        return json_patch(target, patch)
    raise UnsupportedPatchType(media)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch semantics, except that lists of keyed objects merge item by item (see module doc)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(current: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key(current + patch)
    if key is None:
        return copy.deepcopy(patch)
    merged = list(current)
    for item in patch:
        index = next((i for i, old in enumerate(merged) if old[key] == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def _merge_key(items: list[Any]) -> str | None:
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    return next((key for key in _MERGE_KEYS if all(key in item for item in items)), None)


def json_patch(target: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    """RFC 6902 ``add``, ``remove``, ``replace`` and ``test`` (``move``/``copy`` are rejected)."""
    doc: Any = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "path" not in op:
            raise PatchError(f"malformed JSON patch operation: {op!r}")
        *parents, last = _pointer(op["path"])
        parent = doc
        for token in parents:
            parent = parent[int(token)] if isinstance(parent, list) else parent.get(token)
            if parent is None:
                raise PatchError(f"path {op['path']} does not exist")
        kind = op.get("op")
        if kind == "test":
            if _get(parent, last) != op.get("value"):
                raise PatchError(f"test failed at {op['path']}")
        elif kind == "remove":
            _remove(parent, last, op["path"])
        elif kind in ("add", "replace"):
            if kind == "replace":
                _remove(parent, last, op["path"])
            _add(parent, last, copy.deepcopy(op.get("value")))
        else:
            raise PatchError(f"unsupported JSON patch operation {kind!r}")
    return _as_object(doc)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer must start with '/': {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _get(parent: Any, token: str) -> Any:
    if isinstance(parent, list):
        return parent[int(token)] if token.isdigit() and int(token) < len(parent) else None
    return parent.get(token)


def _remove(parent: Any, token: str, path: str) -> None:
    if isinstance(parent, list) and token.isdigit() and int(token) < len(parent):
        del parent[int(token)]
    elif isinstance(parent, dict) and token in parent:
        del parent[token]
    else:
        raise PatchError(f"path {path} does not exist")


def _add(parent: Any, token: str, value: Any) -> None:
    if isinstance(parent, list):
        parent.insert(len(parent) if token == "-" else int(token), value)
    else:
        parent[token] = value


def _as_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PatchError("a patch of a Kubernetes object must produce an object")
    return value
