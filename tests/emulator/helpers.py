"""Talking to an emulator over real HTTP: its metrics as Prometheus parses them, and SSE streams."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.emulator.realtime import RealtimeEngine

MODEL = "tiny-llama"


@dataclasses.dataclass
class Emulated:
    engine: RealtimeEngine
    client: httpx.AsyncClient
    url: str

    async def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """Sample name -> labels (sorted pairs) -> value, as Prometheus would store them."""
        response = await self.client.get("/metrics")
        response.raise_for_status()
        samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
        return samples


def value(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    matches = [v for key, v in samples[name].items() if set(labels.items()) <= set(key)]
    assert len(matches) == 1, (name, labels, samples[name])
    return matches[0]


@dataclasses.dataclass
class Streamed:
    chunks: list[dict[str, Any]]
    times: list[float]  # perf_counter when each chunk arrived
    sent: float
    done: bool  # ended with ``data: [DONE]``


async def stream(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Streamed:
    result = Streamed([], [], time.perf_counter(), False)
    async with client.stream("POST", path, json=body | {"stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if not line:
                continue
            assert line.startswith("data: ")
            if line == "data: [DONE]":
                result.done = True
                continue
            result.chunks.append(json.loads(line[len("data: ") :]))
            result.times.append(time.perf_counter())
    return result


async def until(check: Callable[[], Awaitable[bool]], *, within: float = 5.0) -> None:
    """Poll ``check`` until it holds; fail after ``within`` seconds (a bound, not a timing assertion)."""
    deadline = time.perf_counter() + within
    while not await check():
        assert time.perf_counter() < deadline, "condition not reached"
        await asyncio.sleep(0.02)
