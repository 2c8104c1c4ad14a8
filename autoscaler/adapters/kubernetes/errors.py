"""Typed errors for Kubernetes API calls, so the controller can tell "retry later" from "give up".

The official client raises ``ApiException`` for any HTTP error, aiohttp errors for broken connections and
``TimeoutError`` when a request outlives its timeout. ``translated`` turns them into one small hierarchy
whose class says what the caller may do:

- ``Unavailable``: 5xx, 429 or no connection; transient, try again next cycle (fail static meanwhile);
- ``RequestTimeout``: no answer in time; the write may or may not have happened, so re-read before acting;
- ``NotFound``: the object is gone (e.g. a custom resource deleted mid-cycle);
- ``Conflict``: 409, a stale resourceVersion or an object that already exists;
- ``Expired``: 410, a watch's resourceVersion is too old; list again and watch from the list's version;
- ``Rejected``: any other 4xx (invalid, forbidden); retrying the same request will not help.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import aiohttp
from kubernetes.aio.client import exceptions


class KubernetesError(Exception):
    """A Kubernetes API call failed; ``operation`` names it (``"read scale apps/v1 Deployment ns/name"``)."""

    def __init__(self, operation: str, *, status: int | None, reason: str, message: str) -> None:
        code = f"{status} " if status is not None else ""
        super().__init__(f"{operation}: {code}{reason}" + (f": {message}" if message else ""))
        self.operation = operation
        self.status = status
        self.reason = reason
        self.message = message


class Unavailable(KubernetesError):
    pass


class RequestTimeout(KubernetesError):
    pass


class NotFound(KubernetesError):
    pass


class Conflict(KubernetesError):
    pass


class Expired(KubernetesError):
    pass


class Rejected(KubernetesError):
    pass


@contextlib.contextmanager
def translated(operation: str) -> Iterator[None]:
    """Run an API call (``with translated("..."): await api.x(...)``) and raise only ``KubernetesError``s."""
    try:
        yield
    except exceptions.ApiException as error:
        raise from_api_exception(operation, error) from error
    except TimeoutError as error:
        raise RequestTimeout(operation, status=None, reason="Timeout", message="no answer in time") from error
    except aiohttp.ClientError as error:
        message = str(error) or type(error).__name__
        raise Unavailable(operation, status=None, reason="ConnectionError", message=message) from error


def from_api_exception(operation: str, error: exceptions.ApiException) -> KubernetesError:
    """Map an HTTP error to its class, keeping the reason and message of the server's ``Status`` body."""
    status = int(error.status) if error.status is not None else None
    reason, message = str(error.reason or ""), ""
    with contextlib.suppress(TypeError, ValueError):
        body = json.loads(error.body or "")
        if isinstance(body, dict) and body.get("kind") == "Status":
            reason = str(body.get("reason") or reason)
            message = str(body.get("message") or "")
    kind: type[KubernetesError]
    if status is None or status >= 500 or status == 429:
        kind = Unavailable
    elif status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status == 410:
        kind = Expired
    else:
        kind = Rejected
    return kind(operation, status=status, reason=reason, message=message)
