"""What a router adds to a streaming request's time to first byte: ours, vllm-router and sglang-router.

Every case sends the same open-loop load (fixed rates, evenly spaced arrivals, a bounded number of
requests) of streaming ``/v1/completions`` requests over keep-alive connections (TCP_NODELAY) to one local
streaming backend, either directly or through a router:

- ``direct``: the backend itself, the baseline;
- ``autoscaler``: ``autoscaler router`` (our proxy, approximate hashing, the backend as its one static
  endpoint);
- ``vllm-router`` (0.1.17) and ``sglang-router`` (0.3.2): the Rust routers from PyPI, run from the
  separate venv ``.venv-routers`` (``python3 -m venv .venv-routers && .venv-routers/bin/pip install
  vllm-router==0.1.17 sglang-router==0.3.2``). A router that is not installed or does not come up is
  reported as missing (null), loudly, and the others still run.

Time to first byte is from writing the request to receiving the first byte of the response body (the first
SSE event), so a router that delays its first small write (Nagle's algorithm left on: sglang-router's
client sockets) shows it. The backend writes the headers and the first event separately, as an engine
does. Added latency is a router's percentile minus the direct connection's, both over the same rounds:
each round runs every case once at the rate, the order rotating from round to round to even out drift.

Each router's CPU time per request (``cpu_ms_per_request``, user plus system, from /proc) is reported
too: it is what sets the rate a router sustains, and it is less at the mercy of a shared machine's noise
than a latency tail. ``late_requests`` counts requests that found ``MAX_IN_FLIGHT`` requests open and
waited: a router that has them could not keep up with the rate, and its tail is queueing.

The headline figures (``added_latency_p50_ms`` and ``added_latency_p99_ms``, per router) pool the three
rates' samples; ``added_latency_by_rate`` has each rate's.

    python benchmarks/proxy_overhead.py [--quick] [--out FILE]      (or as part of router_speed.py)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _harness import cpu_seconds, free_port, percentile

RATES = (50, 200, 500)  # requests per second
MAX_IN_FLIGHT = 256  # the load's bound: a request that finds this many open waits (counted as "late")
PROMPT_CHARS = 4096  # about 1k tokens
STREAM_EVENTS = 4  # tokens the backend streams per request
EVENT_GAP_S = 0.001  # between the backend's events after the first
ROUTERS_VENV = Path(__file__).resolve().parent.parent / ".venv-routers"
MODEL = "stub-model"  # sglang-router rejects a completion without a model

# --- the backend -----------------------------------------------------------------------------------------

_JSON = b"application/json"
_METRICS = (
    b"vllm:num_requests_waiting 0\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0.1\n"
    b'vllm:cache_config_info{block_size="16",num_gpu_blocks="4096"} 1\n'
)
_GET_ANSWERS = {
    "/health": (_JSON, b"{}"),
    # No model_path: sglang-router would try to download its tokenizer.
    "/server_info": (_JSON, b'{"version":"stub","max_total_num_tokens":65536}'),
    "/get_server_info": (_JSON, b'{"version":"stub","max_total_num_tokens":65536}'),
    "/model_info": (_JSON, b'{"is_generation":true}'),
    "/get_model_info": (_JSON, b'{"is_generation":true}'),
    "/v1/models": (
        _JSON,
        json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode(),
    ),
    "/metrics": (b"text/plain; version=0.0.4", _METRICS),
}


def _event(index: int) -> bytes:
    data = json.dumps(
        {
            "id": "cmpl-1",
            "object": "text_completion",
            "model": MODEL,
            "choices": [{"index": 0, "text": f"t{index}"}],
        }
    ).encode()
    return _chunk(b"data: " + data + b"\n\n")


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_EVENTS = [_event(i) for i in range(STREAM_EVENTS)]
_DONE = _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """Method and path of the next request on a keep-alive connection (its body read and dropped); None
    once the peer closes or speaks anything but HTTP/1.x."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    request_line = lines[0].split(" ", 2)
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/1"):
        return None  # e.g. an HTTP/2 preface: this backend speaks HTTP/1.1 only
    method, target, _ = request_line
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    if headers.get("transfer-encoding", "").lower() == "chunked":
        await _read_chunked(reader, on_first=None)
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return method, target.split("?", 1)[0]


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while (request := await _read_request(reader)) is not None:
            method, path = request
            if method == "POST" and path in ("/v1/completions", "/v1/chat/completions", "/generate"):
                writer.write(_STREAM_HEAD)  # headers first, then each event on its own, as an engine does
                await writer.drain()
                for i, event in enumerate(_EVENTS):
                    if i:
                        await asyncio.sleep(EVENT_GAP_S)
                    writer.write(event)
                    await writer.drain()
                writer.write(_DONE)
            elif path in _GET_ANSWERS:
                kind, payload = _GET_ANSWERS[path]
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
                    % (kind, len(payload), payload)
                )
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def start_backend(port: int = 0) -> asyncio.Server:
    """The streaming backend on 127.0.0.1 (asyncio sets TCP_NODELAY on every accepted socket)."""
    return await asyncio.start_server(_serve_connection, "127.0.0.1", port, backlog=1024)


def serve_backend(port: int) -> None:
    async def forever() -> None:
        server = await start_backend(port)
        async with server:
            await server.serve_forever()

    asyncio.run(forever())


# --- the load ------------------------------------------------------------------------------------------


async def _read_chunked(reader: asyncio.StreamReader, *, on_first: Callable[[], None] | None) -> bytes:
    parts = []
    while True:
        size = int((await reader.readline()).split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers expected
            return b"".join(parts)
        parts.append((await reader.readexactly(size + 2))[:-2])
        if on_first is not None:
            on_first()
            on_first = None


class _Stale(Exception):
    """The server closed a kept-alive connection before reading the request."""


class Connections:
    """Keep-alive HTTP/1.1 connections to one server, each with TCP_NODELAY set."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def stream(self, body: bytes) -> tuple[float, bytes]:
        """Seconds from sending ``body`` to ``/v1/completions`` to the answer's first body byte; the body.

        An idle connection the server has closed meanwhile (uvicorn's keep-alive timeout is 5 s) is
        dropped and the request sent again on a new one, as HTTP clients do."""
        while self._idle:
            try:
                return await self._exchange(*self._idle.pop(), body)
            except _Stale:
                continue
        return await self._exchange(*await self._open(), body)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes
    ) -> tuple[float, bytes]:
        request = (
            b"POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-type: application/json\r\n"
            b"accept: text/event-stream\r\ncontent-length: %d\r\n\r\n%s" % (self.port, len(body), body)
        )
        first = [0.0]

        def mark() -> None:
            first[0] = time.perf_counter()

        try:
            start = time.perf_counter()
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as err:
                if isinstance(err, asyncio.IncompleteReadError) and err.partial:
                    raise
                raise _Stale from err
            status = head.split(b" ", 2)[1]
            headers = head.lower()
            if b"transfer-encoding: chunked" in headers:
                answer = await _read_chunked(reader, on_first=mark)
            else:
                length = int(headers.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                answer = await reader.readexactly(length)
                mark()
        except BaseException:
            writer.close()
            raise
        if status != b"200":
            writer.close()
            raise RuntimeError(f"port {self.port} answered {status.decode()}: {answer[:200]!r}")
        if b"connection: close" in headers:
            writer.close()
        else:
            self._idle.append((reader, writer))
        return first[0] - start, answer

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


def request_body(i: int) -> bytes:
    """A streaming completion: a prompt shared by all requests with a unique tail (affinity has work)."""
    shared = "You are a helpful assistant. Answer briefly. " * (PROMPT_CHARS // 46)
    prompt = f"{shared}Question {i}: what is {i} + {i}?"
    return json.dumps(
        {"model": MODEL, "prompt": prompt, "max_tokens": STREAM_EVENTS, "stream": True}
    ).encode()


@dataclasses.dataclass
class Slice:
    ttfb_ms: list[float]
    late: int  # requests that waited for the in-flight bound (the load stopped being open-loop)
    behind_ms: float  # how far behind schedule the generator fell at worst


async def open_loop(connections: Connections, *, rate: float, count: int, first_id: int = 0) -> Slice:
    """``count`` requests at ``rate``, evenly spaced, at most ``MAX_IN_FLIGHT`` open at once."""
    bound = asyncio.Semaphore(MAX_IN_FLIGHT)
    samples: list[float] = []
    late = 0
    behind = 0.0

    async def one(i: int) -> None:
        try:
            ttfb, answer = await connections.stream(request_body(first_id + i))
        finally:
            bound.release()
        if b"[DONE]" not in answer:
            raise RuntimeError(f"port {connections.port}: stream ended without [DONE]: {answer[-200:]!r}")
        samples.append(ttfb * 1000.0)

    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i in range(count):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            behind = max(behind, -delay)
        if bound.locked():
            late += 1
        await bound.acquire()
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return Slice(ttfb_ms=samples, late=late, behind_ms=behind * 1000.0)


# --- the routers ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Router:
    name: str
    port: int
    command: list[str]


def routers(backend_url: str, config: Path) -> list[Router]:
    """Each router's command line, listening on a free port, with the backend as its one worker."""
    bin_dir = ROUTERS_VENV / "bin"
    config.write_text(
        f"endpoints:\n  static:\n    - url: {backend_url}\nhashing: {{mode: approximate, block_tokens: 64}}\n"
    )
    ours, vllm, sglang = free_port(), free_port(), free_port()
    rust = f"--host 127.0.0.1 --worker-urls {backend_url} --prometheus-host 127.0.0.1 --prometheus-port"
    ours_args = f"--host 127.0.0.1 --port {ours} --log-level warning".split()
    vllm_args = f"{rust} {free_port()} --port {vllm} --log-level warning".split()
    sglang_args = f"{rust} {free_port()} --port {sglang} --log-level warn".split()
    return [
        Router(
            "autoscaler",
            ours,
            [sys.executable, "-m", "autoscaler", "router", "--config", str(config), *ours_args],
        ),
        Router("vllm-router", vllm, [str(bin_dir / "vllm-router"), *vllm_args]),
        Router(
            "sglang-router",
            sglang,
            [str(bin_dir / "python"), "-m", "sglang_router.launch_router", *sglang_args],
        ),
    ]


async def _ready(port: int, *, timeout_s: float, process: subprocess.Popen[bytes]) -> str | None:
    """None once ``port`` streams a completion; else why not."""
    deadline = time.monotonic() + timeout_s
    reason = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"exited with code {process.returncode}"
        connections = Connections(port)
        try:
            await asyncio.wait_for(connections.stream(request_body(-1)), 5.0)
            return None
        except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
            reason = repr(err)
        finally:
            connections.close()
        await asyncio.sleep(0.2)
    return f"not ready after {timeout_s:.0f} s: {reason}"


@contextlib.contextmanager
def _processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the measurement ------------------------------------------------------------------------------------


async def _start_routers(
    backend_url: str, tmp: Path, started: list[subprocess.Popen[bytes]], missing: dict[str, str]
) -> dict[str, tuple[Router, subprocess.Popen[bytes]]]:
    """The routers that answer a streaming completion, by name; those that do not go into ``missing``."""
    running: dict[str, tuple[Router, subprocess.Popen[bytes]]] = {}
    for router in routers(backend_url, tmp / "router.yaml"):
        if not Path(router.command[0]).exists():
            missing[router.name] = f"{router.command[0]} not found (install it into {ROUTERS_VENV})"
            continue
        with (tmp / f"{router.name}.log").open("wb") as log:
            started.append(subprocess.Popen(router.command, stdout=log, stderr=subprocess.STDOUT))
        running[router.name] = (router, started[-1])
    ready: dict[str, tuple[Router, subprocess.Popen[bytes]]] = {}
    for name, (router, process) in running.items():
        if (why := await _ready(router.port, timeout_s=60, process=process)) is None:
            ready[name] = (router, process)
        else:
            log_tail = (tmp / f"{name}.log").read_text(errors="replace")[-2000:]
            missing[name] = f"{why}; its log ends: {log_tail}"
    return ready


async def measure(*, quick: bool) -> dict[str, object]:
    rounds, seconds = (3, 1.0) if quick else (5, 4.0)
    backend_port = free_port()
    backend_url = f"http://127.0.0.1:{backend_port}"
    missing: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, _processes() as started:
        started.append(subprocess.Popen([sys.executable, __file__, "--serve-backend", str(backend_port)]))
        if (why := await _ready(backend_port, timeout_s=30, process=started[0])) is not None:
            raise RuntimeError(f"the backend did not come up: {why}")
        running = await _start_routers(backend_url, Path(tmp), started, missing)
        pids = {name: process.pid for name, (_, process) in running.items()}
        for name, why in missing.items():
            print(f"!!! {name} is MISSING from the comparison: {why}", file=sys.stderr)
        ports = {"direct": backend_port} | {name: router.port for name, (router, _) in running.items()}
        pools = {name: Connections(port) for name, port in ports.items()}
        names = list(pools)
        samples: dict[str, dict[int, list[float]]] = {n: {r: [] for r in RATES} for n in names}
        late: dict[str, dict[int, int]] = {n: dict.fromkeys(RATES, 0) for n in names}
        cpu: dict[str, dict[int, float]] = {n: dict.fromkeys(RATES, 0.0) for n in pids}
        behind: dict[str, float] = dict.fromkeys(names, 0.0)
        for name in names:  # warm every hop's connections
            await open_loop(pools[name], rate=200, count=100)
        next_id = 0
        for rate in RATES:
            count = int(rate * seconds)
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    # Unmeasured: bring the connections (ours and the router's) back to this rate's level.
                    await open_loop(pools[name], rate=rate, count=max(5, rate // 10), first_id=next_id)
                    pid = pids.get(name)
                    cpu_before = cpu_seconds(pid) if pid else 0.0
                    result = await open_loop(pools[name], rate=rate, count=count, first_id=next_id)
                    if pid:
                        cpu[name][rate] += (cpu_seconds(pid) - cpu_before) * 1000.0 / (count * rounds)
                    next_id += count
                    samples[name][rate] += result.ttfb_ms
                    late[name][rate] += result.late
                    behind[name] = max(behind[name], result.behind_ms)
                    await asyncio.sleep(0.05)
        for pool in pools.values():
            pool.close()
    return _summary(
        samples, late=late, cpu=cpu, behind=behind, missing=missing, rounds=rounds, seconds=seconds
    )


def _summary(
    samples: dict[str, dict[int, list[float]]],
    *,
    late: dict[str, dict[int, int]],
    cpu: dict[str, dict[int, float]],
    behind: dict[str, float],
    missing: dict[str, str],
    rounds: int,
    seconds: float,
) -> dict[str, object]:
    direct = samples["direct"]
    direct_all = [v for rate in RATES for v in direct[rate]]
    routers_measured = [n for n in samples if n != "direct"]
    added_p50: dict[str, float | None] = dict.fromkeys(missing)
    added_p99: dict[str, float | None] = dict.fromkeys(missing)
    by_rate: dict[str, dict[str, dict[str, float]]] = {}
    for name in routers_measured:
        pooled = [v for rate in RATES for v in samples[name][rate]]
        added_p50[name] = percentile(pooled, 0.5) - percentile(direct_all, 0.5)
        added_p99[name] = percentile(pooled, 0.99) - percentile(direct_all, 0.99)
        by_rate[name] = {
            str(rate): {
                "added_p50_ms": percentile(samples[name][rate], 0.5) - percentile(direct[rate], 0.5),
                "added_p99_ms": percentile(samples[name][rate], 0.99) - percentile(direct[rate], 0.99),
                "ttfb_p50_ms": percentile(samples[name][rate], 0.5),
                "ttfb_p99_ms": percentile(samples[name][rate], 0.99),
                "late_requests": late.get(name, {}).get(rate, 0),
                "cpu_ms_per_request": cpu.get(name, {}).get(rate, 0.0),
            }
            for rate in RATES
        }
    by_rate["direct"] = {
        str(rate): {
            "ttfb_p50_ms": percentile(direct[rate], 0.5),
            "ttfb_p99_ms": percentile(direct[rate], 0.99),
            "late_requests": late.get("direct", {}).get(rate, 0),
        }
        for rate in RATES
    }
    ours, vllm = added_p50.get("autoscaler"), added_p50.get("vllm-router")
    ratio = ours / vllm if ours is not None and vllm is not None and vllm > 0 else None
    return {
        "added_latency_p50_ms": added_p50,
        "added_latency_p99_ms": added_p99,
        "overhead_ratio_vs_vllm_router": ratio,
        "target_overhead_ratio_vs_vllm_router": 2.0,
        "proxy_overhead_streaming": {
            "added_latency_by_rate": by_rate,
            "rates_per_s": list(RATES),
            "rounds": rounds,
            "seconds_per_case_per_round": seconds,
            "requests_per_case": {n: sum(len(v) for v in samples[n].values()) for n in samples},
            "generator_behind_schedule_max_ms": behind,
            "missing": missing,
            "prompt_chars": PROMPT_CHARS,
            "stream_events": STREAM_EVENTS,
            "ttfb": "request written to first body byte (first SSE event), keep-alive, TCP_NODELAY",
        },
    }


def print_table(result: dict[str, object]) -> None:
    detail = result["proxy_overhead_streaming"]
    assert isinstance(detail, dict)
    by_rate = detail["added_latency_by_rate"]
    print(
        f"{'router':<16}{'rate/s':>8}{'TTFB p50':>10}{'p99':>9}{'late':>6}"
        f"{'added p50 ms':>14}{'added p99 ms':>14}{'CPU ms/req':>12}"
    )
    for name, rows in by_rate.items():
        for rate, row in rows.items():
            added = (
                f"{row['added_p50_ms']:>14.2f}{row['added_p99_ms']:>14.2f}{row['cpu_ms_per_request']:>12.2f}"
                if "added_p50_ms" in row
                else ""
            )
            print(
                f"{name:<16}{rate:>8}{row['ttfb_p50_ms']:>10.2f}{row['ttfb_p99_ms']:>9.2f}"
                f"{row['late_requests']:>6}{added}"
            )
    p50, p99 = result["added_latency_p50_ms"], result["added_latency_p99_ms"]
    assert isinstance(p50, dict) and isinstance(p99, dict)
    for name in p50:
        if p50[name] is None:
            print(f"{name:<16} all rates: MISSING ({detail['missing'][name]})")
        else:
            print(f"{name:<16} all rates: adds p50 {p50[name]:.2f} ms, p99 {p99[name]:.2f} ms")
    ratio = result["overhead_ratio_vs_vllm_router"]
    print(
        "ours / vllm-router added p50: "
        + (f"{ratio:.2f} (target <= 2)" if isinstance(ratio, float) else "n/a (a router is missing)")
    )
    print(
        f"(late: requests that found {MAX_IN_FLIGHT} in flight and waited, i.e. the router could not keep up"
        " with the rate; CPU: the router process's user+system time per request)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 s per case and round, 3 rounds")
    parser.add_argument("--out", default="proxy_overhead.json", help="where to write the JSON result")
    parser.add_argument("--serve-backend", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_backend:
        serve_backend(args.serve_backend)
        return
    result = asyncio.run(measure(quick=args.quick))
    print_table(result)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
