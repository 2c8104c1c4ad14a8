"""Prometheus over TLS: its certificate is always verified, against a CA bundle when one is given."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from autoscaler.adapters.prometheus import ReaderSettings, SignalsUnavailable
from autoscaler.adapters.prometheus_signals import PrometheusSignals
from tests.contract.controller.conftest import POOL
from tests.contract.external_metrics.conftest import pki  # noqa: F401  (the throwaway CA, as a fixture)
from tests.fakes.prometheus_api import FakePrometheus


@pytest.fixture
async def tls_prom(pki: Path) -> AsyncIterator[FakePrometheus]:  # noqa: F811
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    server = await FakePrometheus().start(tls=context)
    for phase in ("prefill", "decode"):
        server.load(POOL, phase, rate=10.0)
    yield server
    await server.stop()


async def test_a_certificate_signed_by_the_given_ca_is_read(tls_prom: FakePrometheus, pki: Path) -> None:  # noqa: F811
    assert tls_prom.url.startswith("https://")
    signals = PrometheusSignals(tls_prom.url, ca_bundle=pki / "ca.crt")
    values = await signals.read(ReaderSettings(), now=1_000.0)
    assert values and tls_prom.queries > 0


async def test_an_unknown_certificate_is_refused(tls_prom: FakePrometheus) -> None:
    with pytest.raises(SignalsUnavailable):
        await PrometheusSignals(tls_prom.url).read(ReaderSettings(), now=1_000.0)
    assert tls_prom.queries == 0  # refused at the handshake, before any query
