"""Leadership for the control loop: renew the Lease every retry period, act only while it is surely ours.

``leading()`` is true only until ``valid_until`` of the last successful renewal, by the controller's own
clock: a leader cut off from the API server stops acting by the time any follower may take over (the
follower waits the lease duration from when it last saw the record change), so two replicas never actuate
at once. Renewal errors are logged and retried; they never end the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.leases import Leadership, LeaseElector
from autoscaler.core import ports

log = logging.getLogger(__name__)


class LeaderGate:
    def __init__(
        self,
        elector: LeaseElector,
        *,
        clock: ports.Clock,
        on_elected: Callable[[], Awaitable[None]] | None = None,
        on_lost: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._elector = elector
        self._clock = clock
        self._on_elected = on_elected
        self._on_lost = on_lost
        self._current = Leadership(leading=False, holder="", transitions=0, valid_until=None)
        self.reachable = False  # the last election step got an answer from the API server
        self.last_error = ""  # why it did not, when it did not

    @property
    def identity(self) -> str:
        return self._elector.identity

    @property
    def holder(self) -> str:
        """Who holds the Lease as last read ("" when nobody, or not read yet)."""
        return self._current.holder

    def leading(self) -> bool:
        until = self._current.valid_until
        return self._current.leading and until is not None and self._clock.now() < until

    async def step(self) -> bool:
        """One acquire-or-renew; returns whether this replica leads now."""
        was_leading = self.leading()
        try:
            self._current = await self._elector.try_acquire_or_renew()
            self.reachable = True
        except errors.KubernetesError as error:
            self.reachable, self.last_error = False, str(error)
            log.warning("lease renewal failed", extra={"fields": {"error": str(error)}})
        leading = self.leading()
        if leading != was_leading:
            state = "acquired" if leading else "lost"
            log.info(f"leadership {state}", extra={"fields": {"identity": self.identity}})
            callback = self._on_elected if leading else self._on_lost
            if callback is not None:
                await callback()
        return leading

    async def run(self, stop: asyncio.Event, *, retry_s: float) -> None:
        while not stop.is_set():
            await self.step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=retry_s)

    async def release(self) -> None:
        """Give the lease up (graceful shutdown) so a follower takes over at once."""
        self._current = Leadership(leading=False, holder="", transitions=0, valid_until=None)
        try:
            await self._elector.release()
        except errors.KubernetesError as error:
            log.warning("cannot release the lease", extra={"fields": {"error": str(error)}})
