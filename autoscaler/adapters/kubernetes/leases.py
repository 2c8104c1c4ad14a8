"""Leader election on a ``coordination.k8s.io/v1`` Lease, with the clock injected.

The algorithm is client-go's ``tryAcquireOrRenew``, one step per call (the controller's loop calls it every
retry period):

1. Read the Lease; if there is none, create it holding it (a racing creator gets 409 and follows).
2. Whenever the record (holder, renewTime, transitions) differs from the last one seen, note the local time.
   A lease held by someone else counts as expired ``leaseDurationSeconds`` after that local time. Judging by
   our own observation instead of the holder's ``renewTime`` keeps election right under clock skew.
3. Unless held by someone else and unexpired, write ourselves as holder with a PUT that carries the read
   resourceVersion: of two candidates that saw the same expired lease, exactly one write succeeds and the
   other gets 409 and follows.

Timestamps written into the Lease come from the clock, which must therefore count epoch seconds. Errors
(server down, timeouts) propagate as ``errors.KubernetesError``: a leader that cannot renew keeps leading
only until ``Leadership.valid_until``, and that is the caller's rule to enforce.
"""

from __future__ import annotations

import dataclasses
import datetime

from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors
from autoscaler.core import ports

_Record = tuple[str, datetime.datetime | None, int]


@dataclasses.dataclass(frozen=True, slots=True)
class Leadership:
    leading: bool
    holder: str  # "" when nobody holds the lease
    transitions: int  # how many times the lease changed hands
    valid_until: float | None  # clock time when this leadership lapses unless renewed; None when not leading


class LeaseElector:
    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration_s: int,
        clock: ports.Clock,
        timeout_s: float = 5.0,
    ) -> None:
        if lease_duration_s < 1:
            raise ValueError(f"lease duration must be at least 1 s, got {lease_duration_s}")
        self._api = client.CoordinationV1Api(api_client)
        self._namespace, self._name, self._identity = namespace, name, identity
        self._duration_s = lease_duration_s
        self._clock = clock
        self._timeout_s = timeout_s
        self._observed: _Record | None = None
        self._observed_at = 0.0

    @property
    def identity(self) -> str:
        return self._identity

    async def try_acquire_or_renew(self) -> Leadership:
        now = self._clock.now()
        try:
            with errors.translated(f"read lease {self._namespace}/{self._name}"):
                lease = await self._api.read_namespaced_lease(
                    self._name, self._namespace, _request_timeout=self._timeout_s
                )
        except errors.NotFound:
            return await self._create(now)
        spec = lease.spec or client.V1LeaseSpec()
        record: _Record = (spec.holder_identity or "", spec.renew_time, spec.lease_transitions or 0)
        if record != self._observed:
            self._observed, self._observed_at = record, now
        holder, _, transitions = record
        held_by_us = holder == self._identity
        duration = spec.lease_duration_seconds or self._duration_s
        if holder and not held_by_us and now < self._observed_at + duration:
            return Leadership(leading=False, holder=holder, transitions=transitions, valid_until=None)
        taken = spec.acquire_time if held_by_us and spec.acquire_time else _utc(now)
        new_spec = self._spec(now, acquired=taken, transitions=transitions if held_by_us else transitions + 1)
        version = lease.metadata.resource_version if lease.metadata is not None else None
        return await self._write(now, new_spec, version, holder_before=holder)

    async def release(self) -> None:
        """Give the lease up now (on shutdown) so a follower need not wait out the lease duration."""
        with errors.translated(f"read lease {self._namespace}/{self._name}"):
            lease = await self._api.read_namespaced_lease(
                self._name, self._namespace, _request_timeout=self._timeout_s
            )
        spec = lease.spec or client.V1LeaseSpec()
        if spec.holder_identity != self._identity:
            return
        now = _utc(self._clock.now())
        released = client.V1LeaseSpec(
            holder_identity="",
            lease_duration_seconds=1,
            acquire_time=now,
            renew_time=now,
            lease_transitions=spec.lease_transitions or 0,
        )
        body = self._lease(lease.metadata.resource_version if lease.metadata else None, released)
        try:
            with errors.translated(f"release lease {self._namespace}/{self._name}"):
                await self._api.replace_namespaced_lease(
                    self._name, self._namespace, body, _request_timeout=self._timeout_s
                )
        except errors.Conflict:  # someone else changed it meanwhile: it is not ours to release any more
            return

    async def _create(self, now: float) -> Leadership:
        spec = self._spec(now, acquired=_utc(now), transitions=0)
        try:
            with errors.translated(f"create lease {self._namespace}/{self._name}"):
                created = await self._api.create_namespaced_lease(
                    self._namespace,
                    self._lease(None, spec),
                    _request_timeout=self._timeout_s,
                )
        except errors.Conflict:  # another candidate created it first
            return Leadership(leading=False, holder="", transitions=0, valid_until=None)
        return self._won(now, created)

    async def _write(
        self, now: float, spec: client.V1LeaseSpec, version: str | None, *, holder_before: str
    ) -> Leadership:
        body = self._lease(version, spec)
        try:
            with errors.translated(f"update lease {self._namespace}/{self._name}"):
                replaced = await self._api.replace_namespaced_lease(
                    self._name, self._namespace, body, _request_timeout=self._timeout_s
                )
        except errors.Conflict:  # another candidate wrote first
            transitions = spec.lease_transitions or 0
            return Leadership(leading=False, holder=holder_before, transitions=transitions, valid_until=None)
        return self._won(now, replaced)

    def _won(self, now: float, lease: client.V1Lease) -> Leadership:
        spec = lease.spec or client.V1LeaseSpec()
        self._observed = (spec.holder_identity or "", spec.renew_time, spec.lease_transitions or 0)
        self._observed_at = now
        return Leadership(
            leading=True,
            holder=self._identity,
            transitions=spec.lease_transitions or 0,
            valid_until=now + self._duration_s,
        )

    def _spec(self, now: float, *, acquired: datetime.datetime, transitions: int) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self._identity,
            lease_duration_seconds=self._duration_s,
            acquire_time=acquired,
            renew_time=_utc(now),
            lease_transitions=transitions,
        )

    def _lease(self, resource_version: str | None, spec: client.V1LeaseSpec) -> client.V1Lease:
        """A whole Lease for a create or a PUT; ``resource_version`` is the write's precondition."""
        meta = client.V1ObjectMeta(
            name=self._name, namespace=self._namespace, resource_version=resource_version
        )
        return client.V1Lease(api_version="coordination.k8s.io/v1", kind="Lease", metadata=meta, spec=spec)


def _utc(epoch_s: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch_s, datetime.UTC)
