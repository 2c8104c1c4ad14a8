"""An emulator serving on a free loopback port in the test's event loop, and an HTTP client for it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from autoscaler.config.profiles import load_profile
from autoscaler.emulator import server
from autoscaler.emulator.settings import EmulatorSettings
from autoscaler.profiles.schema import Profile
from tests.emulator.helpers import MODEL, Emulated


@pytest.fixture(scope="session")
def profile() -> Profile:
    return load_profile("llama-3.1-8b/h100-tp1")


Start = Callable[..., contextlib.AbstractAsyncContextManager[Emulated]]


@pytest.fixture
def start(profile: Profile) -> Start:
    @contextlib.asynccontextmanager
    async def start(
        *, kv_events: server.KvEventsConfig | None = None, **overrides: Any
    ) -> AsyncIterator[Emulated]:
        settings = EmulatorSettings(model=MODEL, **overrides)
        sock = server.bind_socket("127.0.0.1", 0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with (
            server.running(profile, settings, sock=sock, kv_events=kv_events) as engine,
            httpx.AsyncClient(base_url=url, timeout=20) as client,
        ):
            yield Emulated(engine, client, url)

    return start
