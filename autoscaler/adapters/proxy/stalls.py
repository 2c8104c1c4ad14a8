"""Requests waiting on an engine that fell out of rotation stop waiting for it.

A stopped engine (SIGSTOP, a hung process, a partitioned node) still has its connections accepted by the
kernel, so nothing fails: a request to it would wait for the upstream read time-out, which must be long
enough for a long non-streamed answer. A fixed first-byte time-out cannot tell the two apart; the health
checks can: an engine whose ``/metrics`` goes unanswered three times in a row is marked unhealthy.

Each wait on an engine runs under an ``asyncio.timeout`` with no deadline, registered here under the
engine's name (``watching``). When the fleet marks the engine unhealthy (``down``) every such deadline is
set ``grace_s`` ahead; a wait that receives bytes meanwhile moves its own deadline on (``still_alive``),
so a busy engine that answers its scrapes late but still streams is not cut. When the engine is back
(``up``) the deadlines are lifted. The price: a non-streamed request on an engine so busy that it misses
three scrapes in a row, yet alive, is given up after ``grace_s`` and placed again (its work is lost).
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class EngineStalled(TimeoutError):
    """The engine fell out of rotation and sent nothing for ``grace_s`` while a request waited on it."""


class StallWatch:
    def __init__(self, *, grace_s: float) -> None:
        self._grace_s = grace_s
        self._waiting: dict[str, set[asyncio.Timeout]] = {}
        self._down: set[str] = set()

    def watching(self, engine: str, deadline: asyncio.Timeout) -> _Watching:
        """``with watch.watching(engine, deadline):`` registers the wait for the time of the block."""
        return _Watching(self, engine, deadline)

    def down(self, engine: str) -> None:
        self._down.add(engine)
        for deadline in self._waiting.get(engine, ()):
            self._arm(deadline)

    def up(self, engine: str) -> None:
        self._down.discard(engine)
        for deadline in self._waiting.get(engine, ()):
            deadline.reschedule(None)

    def still_alive(self, deadline: asyncio.Timeout) -> None:
        """Bytes came from the engine: if its deadline is armed, it starts again from now."""
        if deadline.when() is not None:
            self._arm(deadline)

    def _arm(self, deadline: asyncio.Timeout) -> None:
        deadline.reschedule(asyncio.get_running_loop().time() + self._grace_s)

    def _add(self, engine: str, deadline: asyncio.Timeout) -> None:
        self._waiting.setdefault(engine, set()).add(deadline)
        if engine in self._down:  # placed just before it was marked, or a retry on a known-bad engine
            self._arm(deadline)

    def _discard(self, engine: str, deadline: asyncio.Timeout) -> None:
        waiting = self._waiting.get(engine)
        if waiting is not None:
            waiting.discard(deadline)
            if not waiting:
                del self._waiting[engine]


class _Watching:
    """The registration as a context manager (a class: a generator-based one costs more per request)."""

    __slots__ = ("_deadline", "_engine", "_watch")

    def __init__(self, watch: StallWatch, engine: str, deadline: asyncio.Timeout) -> None:
        self._watch, self._engine, self._deadline = watch, engine, deadline

    def __enter__(self) -> None:
        self._watch._add(self._engine, self._deadline)

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._watch._discard(self._engine, self._deadline)
