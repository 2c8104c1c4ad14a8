"""Signals for a control cycle: the Prometheus reader, run off the event loop, without retries.

``PrometheusReader`` is synchronous (``prometheus_api_client`` over ``requests``), so a read runs in a
worker thread. The client's default retries with back-off would stall a cycle for seconds when Prometheus
is down; the control loop retries by itself next cycle, so a failed read fails at once and the policy holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from autoscaler.adapters.prometheus import PrometheusReader, ReaderSettings, verified_session
from autoscaler.core.phases import Phase


class PrometheusSignals:
    def __init__(self, url: str, *, timeout_s: float = 5.0, ca_bundle: Path | None = None) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        session = verified_session(ca_bundle)
        self._client = PrometheusConnect(url=url, session=session, retry=Retry(total=0))
        self._timeout_s = timeout_s

    async def read(
        self, settings: ReaderSettings, *, now: float
    ) -> dict[tuple[str, Phase], dict[str, float]]:
        reader = PrometheusReader(self._client, dataclasses.replace(settings, timeout_s=self._timeout_s))
        return await asyncio.to_thread(reader.read, now=now)
