"""Serving one emulated replica over HTTP (uvicorn), with its optional KV-event publisher.

The listening socket is bound here rather than by uvicorn so that port 0 works (tests read the port back)
and TCP_NODELAY is set: streamed tokens are small writes that Nagle's algorithm would otherwise hold back
for up to 40 ms, which would distort the inter-token latency a client measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator

import uvicorn

from autoscaler.emulator.api import build_app
from autoscaler.emulator.kv_events import KvEventPublisher
from autoscaler.emulator.realtime import RealtimeEngine
from autoscaler.emulator.settings import EmulatorSettings
from autoscaler.profiles.schema import Profile


@dataclasses.dataclass(frozen=True, slots=True)
class KvEventsConfig:
    """vLLM's ``--kv-events-config`` fields that matter here."""

    endpoint: str
    topic: str = ""


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted connections
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _server(engine: RealtimeEngine) -> uvicorn.Server:
    config = uvicorn.Config(
        build_app(engine), log_level="warning", lifespan="on", timeout_graceful_shutdown=2, access_log=False
    )
    return uvicorn.Server(config)


def _engine(profile: Profile, settings: EmulatorSettings, kv_events: KvEventsConfig | None) -> RealtimeEngine:
    publisher = KvEventPublisher(kv_events.endpoint, topic=kv_events.topic) if kv_events else None
    return RealtimeEngine(profile, settings, publisher=publisher)


async def serve(
    profile: Profile,
    settings: EmulatorSettings,
    *,
    sock: socket.socket,
    kv_events: KvEventsConfig | None = None,
) -> None:
    """Serve until interrupted (uvicorn handles SIGINT and SIGTERM with a graceful shutdown)."""
    engine = _engine(profile, settings, kv_events)
    try:
        await _server(engine).serve(sockets=[sock])
    finally:
        engine.close()


@contextlib.asynccontextmanager
async def running(
    profile: Profile,
    settings: EmulatorSettings,
    *,
    sock: socket.socket,
    kv_events: KvEventsConfig | None = None,
) -> AsyncIterator[RealtimeEngine]:
    """An emulator serving on ``sock`` in this event loop while the block runs (tests, embedding)."""
    engine = _engine(profile, settings, kv_events)
    server = _server(engine)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # start-up failed: raise its error
            await asyncio.sleep(0.005)
        yield engine
    finally:
        server.should_exit = True
        await task
        engine.close()
