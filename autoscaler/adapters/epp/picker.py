"""The endpoint picker's decisions: one request body in, endpoints out (or a refusal), and its release.

It drives the same ``AffinityRouter`` as the proxy (prefix affinity, load, P/D), fed by the proxy's
``Fleet`` (discovery, engine scrapes, draining) and counted by the proxy's ``RouterMetrics``, so the
controller reads the same series whichever mode the router runs in. What the picker adds:

- the gateway's subset hint limits the choice (``AffinityRouter.place(eligible=...)``);
- fallbacks for the gateway's retries: the other ready endpoints of the serving phase, least loaded first;
- refusals: 400 (a body that is not an OpenAI request), 413 (too large), 503 (no ready endpoint, or none
  in the subset), 429 (more requests in flight than ``max_in_flight_requests``, or a sheddable request
  when every endpoint that could serve it is overloaded);
- a ``Pick`` is released exactly once (``finish``) whatever ends the exchange: the response's end, an
  error, the stream's cancellation; ``in_flight`` counts the picks not yet released.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Mapping, Sequence

from prometheus_client import Counter

from autoscaler.adapters import admission_gate
from autoscaler.adapters.epp.settings import EppSettings
from autoscaler.adapters.proxy import prompts
from autoscaler.adapters.proxy.fleet import Fleet
from autoscaler.adapters.proxy.metrics import RouterMetrics
from autoscaler.core.phases import Phase
from autoscaler.profiles.schema import Profile
from autoscaler.routing.admission import AdmissionQueue, PriorityClass, UnknownClass, limits_from_profile
from autoscaler.routing.interface import NoEndpointError, RouteRequest
from autoscaler.routing.router import ALL_OVERLOADED, AffinityRouter, RoutedPlacement

CLIENT_CLOSED = 499  # the exchange ended before the response did (nginx's code), in the responses metric


class Refused(Exception):
    """The request gets an immediate answer instead of an endpoint."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str,
        param: str | None = None,
        dropped: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.param = param  # the request field at fault, as OpenAI's errors name it
        self.dropped = dropped  # llm-d's x-llm-d-request-dropped-reason, for a shed request


@dataclasses.dataclass(slots=True)
class Pick:
    """One placed request, from the decision to its release."""

    placement: RoutedPlacement | None  # None for a request without a body (nothing to account)
    endpoints: list[str]  # ip:port, the chosen one first, then the fallbacks
    prefiller: str | None  # ip:port of the remote prefill endpoint (P/D)
    released: bool = False


class Picker:
    def __init__(
        self,
        settings: EppSettings,
        *,
        router: AffinityRouter,
        fleet: Fleet,
        metrics: RouterMetrics,
        profile: Profile | None = None,
    ) -> None:
        self.settings = settings
        self.router = router
        self.fleet = fleet
        self.metrics = metrics
        queue = AdmissionQueue(settings.admission, limits_from_profile(settings.admission, profile))
        self.gate = admission_gate.AdmissionGate(router, queue, pool=settings.pool, registry=metrics.registry)
        self.in_flight = 0
        self._ids = itertools.count()
        self._served_elsewhere = Counter(
            "autoscaler_router_served_by_fallback",
            "Requests the gateway sent to a fallback endpoint instead of the picked one",
            ["pool"],
            registry=metrics.registry,
        ).labels(settings.pool)

    def address(self, name: str) -> str:
        """The endpoint's ``ip:port`` (its URL without the scheme)."""
        return self.fleet.url(name).split("://", 1)[1]

    async def pick(self, raw: bytes, headers: Mapping[str, str], *, subset: Sequence[str] | None) -> Pick:
        """Place a request body; raises ``Refused``. A large body is parsed and hashed off the event loop
        (as the proxy does); the placement itself is made on it, all at once."""
        settings = self.settings
        if len(raw) > settings.max_body_bytes:
            raise Refused(
                413, f"request body exceeds {settings.max_body_bytes} bytes", kind="invalid_request_error"
            )
        start = time.perf_counter()
        chat = "chat/completions" in headers.get(":path", "")
        try:
            prompt, hashes = await prompts.off_loop_if_large(len(raw), self._read, raw, chat=chat)
        except prompts.BadRequest as err:
            raise Refused(err.status, str(err), kind="invalid_request_error", param=err.param) from err
        if settings.max_in_flight_requests is not None and self.in_flight >= settings.max_in_flight_requests:
            raise Refused(
                429, "too many requests in flight", kind="rate_limit_error", dropped="rejected-saturated"
            )
        request = RouteRequest(
            request_id=next(self._ids),
            prompt_tokens=prompt.prompt_tokens,
            output_tokens=prompt.output_tokens,
            block_hashes=hashes,
            session_id=headers.get(settings.session_header),
        )
        eligible = self._eligible(subset)
        try:  # at once, or once the admission queue dispatches it
            admitted = await self.gate.place(request, self._priority(headers), eligible=eligible)
        except NoEndpointError as err:
            where = "in the gateway's subset" if subset is not None else "in the pool"
            raise Refused(503, f"no ready endpoint {where}", kind="service_unavailable") from err
        except admission_gate.Refused as err:
            kind = "rate_limit_error" if err.status == 429 else "service_unavailable"
            raise Refused(err.status, str(err), kind=kind, dropped="rejected-saturated") from err
        placement = admitted.placement
        self.metrics.timed(time.perf_counter() - start - admitted.waited_s)  # the choice, not the wait
        if placement.reason == ALL_OVERLOADED and _sheddable(headers.get(settings.priority_header)):
            self.router.finished(placement, now=time.monotonic())
            raise Refused(
                429, "every endpoint is overloaded", kind="rate_limit_error", dropped="rejected-saturated"
            )
        serving = self.router.endpoint(placement.endpoint).phase
        self.metrics.placed(placement, phase=serving)
        self.in_flight += 1
        chosen = placement.endpoint
        return Pick(
            placement=placement,
            endpoints=[self.address(n) for n in (chosen, *self._fallbacks(chosen, eligible))],
            prefiller=self.address(placement.prefill_endpoint) if placement.prefill_endpoint else None,
        )

    def _read(self, raw: bytes, *, chat: bool) -> tuple[prompts.Prompt, list[int]]:
        settings = self.settings
        _, prompt = prompts.parse(
            raw,
            chat=chat,
            config=settings.hashing,
            default_max_tokens=settings.default_max_tokens,
            max_prompt_tokens=settings.max_prompt_tokens,
        )
        return prompt, prompts.block_hashes(prompt, settings.hashing)

    def pick_any(self, *, subset: Sequence[str] | None) -> Pick:
        """A request without a body (``GET /v1/models``): the least loaded ready endpoint, not counted."""
        candidates = self._ranked(self._eligible(subset), exclude=None)
        if not candidates:
            raise Refused(503, "no ready endpoint", kind="service_unavailable")
        return Pick(
            placement=None,
            endpoints=[self.address(n) for n in candidates[: 1 + self.settings.fallbacks]],
            prefiller=None,
        )

    def prefill_done(self, pick: Pick) -> None:
        """The serving endpoint answered: a remote prefill is over."""
        if pick.placement is not None and not pick.released:
            self.router.prefill_done(pick.placement, now=time.monotonic())

    def served(self, pick: Pick, address: str) -> None:
        """The gateway says which endpoint served: a fallback means the picked one carries nothing, so its
        share is released now (the fallback's load shows in its next scrape)."""
        if pick.endpoints and address != pick.endpoints[0] and address in pick.endpoints:
            self._served_elsewhere.inc()
            self._release(pick)

    def finish(self, pick: Pick, *, code: int) -> None:
        """The exchange is over (``code``: the response's status, or 499 when it ended early)."""
        if pick.placement is not None:
            self.metrics.responses.labels(self.settings.pool, str(code)).inc()
            if not pick.released:
                self._release(pick)
            self.in_flight -= 1
            pick.placement = None

    def refused(self, refusal: Refused) -> None:
        self.metrics.responses.labels(self.settings.pool, str(refusal.status)).inc()

    def _release(self, pick: Pick) -> None:
        assert pick.placement is not None
        pick.released = True
        self.router.finished(pick.placement, now=time.monotonic())
        self.gate.pump()  # its slot may let a waiting request go

    def _priority(self, headers: Mapping[str, str]) -> PriorityClass:
        """The admission class of GIE's integer priority: negative sheddable, positive critical, else (or
        a class not configured) the default."""
        value = headers.get(self.settings.priority_header, "").strip()
        try:
            level = int(value) if value else 0
        except ValueError:
            level = 0
        name = "sheddable" if level < 0 else "critical" if level > 0 else None
        try:
            return self.gate.priority(name)
        except UnknownClass:
            return self.gate.priority(None)

    def _eligible(self, subset: Sequence[str] | None) -> set[str] | None:
        """The endpoint names whose ``ip:port`` the subset lists (None: no subset)."""
        if subset is None:
            return None
        wanted = set(subset)
        return {n for n in self.fleet.ready() if self.address(n) in wanted}

    def _fallbacks(self, chosen: str, eligible: set[str] | None) -> list[str]:
        if not self.settings.fallbacks:
            return []
        return self._ranked(eligible, exclude=chosen)[: self.settings.fallbacks]

    def _ranked(self, eligible: set[str] | None, *, exclude: str | None) -> list[str]:
        """Ready endpoints that serve requests (not prefill-only), least in-flight tokens first."""
        router = self.router
        names = [
            n
            for n in self.fleet.ready()
            if n != exclude
            and (eligible is None or n in eligible)
            and router.endpoint(n).phase is not Phase.PREFILL
        ]
        return sorted(names, key=lambda n: router.endpoint(n).in_flight_tokens)


def _sheddable(priority: str | None) -> bool:
    try:
        return priority is not None and int(priority) < 0
    except ValueError:
        return False
