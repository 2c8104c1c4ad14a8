"""One bounded watch request through the official client's ``Watch``, with typed errors.

Callers follow the API's list-then-watch contract: list, then watch from the list's resourceVersion, and
resume each new watch from the last version seen. The request ends when the server closes it after
``timeout_s``; a version too old for the server raises ``errors.Expired`` (list again). The client's own
timeout is set a little past the server's, so a healthy watch always ends cleanly from the server side.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from kubernetes.aio import watch

from autoscaler.adapters.kubernetes import errors

_CLIENT_SLACK_S = 5.0


async def events(
    list_call: Callable[..., Awaitable[object]],
    *args: str,
    operation: str,
    resource_version: str,
    timeout_s: int,
    **options: str,
) -> AsyncGenerator[tuple[str, Any], None]:
    """``(type, object)`` for each ADDED, MODIFIED or DELETED event; ``object`` is the client's model when
    the list call has one (``V1Pod``), else the JSON mapping. BOOKMARKs carry no change and are skipped."""
    stream = watch.Watch()  # type: ignore[no-untyped-call]
    changes = stream.stream(  # type: ignore[no-untyped-call]
        list_call,
        *args,
        resource_version=resource_version,
        timeout_seconds=timeout_s,
        allow_watch_bookmarks=True,
        _request_timeout=timeout_s + _CLIENT_SLACK_S,
        **options,
    )
    try:
        with errors.translated(operation):
            async for event in changes:
                if event["type"] != "BOOKMARK":
                    yield event["type"], event["object"]
    finally:
        await stream.close()  # type: ignore[no-untyped-call]
