"""How closely a client of the emulator sees the engine model's latencies, and what the emulator costs.

Starts ``autoscaler emulate`` (Llama-3.1-8B/H100 profile) as a separate process, sends waves of concurrent
streaming completions (unique prompts, so no prefix hits), and compares what the client measures (TTFT and
inter-token gaps, wall seconds x speed) with what the engine model says (``vllm:time_to_first_token_seconds``
and ``vllm:inter_token_latency_seconds`` from /metrics, over the same requests). The difference is the
emulator's scheduling jitter plus HTTP overhead. Also reports the emulator process's CPU time per token.

    python benchmarks/emulator_fidelity.py [--quick] [--speed K] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
from _harness import cpu_seconds
from prometheus_client.parser import text_string_to_metric_families

MODEL = "bench"
PROMPT_TOKENS = 1000
OUTPUT_TOKENS = 64


@contextlib.contextmanager
def emulator(speed: float) -> Iterator[tuple[str, int]]:
    command = [sys.executable, "-m", "autoscaler", "emulate", "--profile", "llama-3.1-8b/h100-tp1"]
    command += ["--port", "0", "--speed", str(speed), "--model", MODEL]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stderr is not None
            match = re.search(r"http://\S+", proc.stderr.readline())
            assert match, "no banner"
            yield match.group(0), proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def model_sums(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    wanted = {
        "vllm:time_to_first_token_seconds_sum",
        "vllm:time_to_first_token_seconds_count",
        "vllm:inter_token_latency_seconds_sum",
        "vllm:inter_token_latency_seconds_count",
    }
    return {
        s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name in wanted
    }


async def one(host: str, port: int, rng: random.Random) -> tuple[float, list[float]]:
    """One streamed completion over a raw HTTP/1.1 connection (a lean client, so the emulator is measured)."""
    prompt = [rng.randrange(3, 32000) for _ in range(PROMPT_TOKENS)]
    body = json.dumps(
        {"model": MODEL, "prompt": prompt, "max_tokens": OUTPUT_TOKENS, "stream": True}
    ).encode()
    head = f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    reader, writer = await asyncio.open_connection(host, port)
    sent = time.perf_counter()
    writer.write(head.encode() + body)
    times: list[float] = []
    while chunk := await reader.read(65536):
        now = time.perf_counter()
        times += [now] * chunk.count(b"data: {")
    writer.close()
    await writer.wait_closed()
    return times[0] - sent, [b - a for a, b in itertools.pairwise(times)]


async def wave(url: str, pid: int, *, concurrency: int, requests: int, speed: float) -> dict[str, float]:
    rng = random.Random(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        for _ in range(200):
            with contextlib.suppress(httpx.ConnectError):
                await client.get("/health")
                break
            await asyncio.sleep(0.05)
        host, port = client.base_url.host, client.base_url.port or 80
        await one(
            host, port, rng
        )  # warm-up: first-request costs (imports, connection) are not the emulator's
        before = await model_sums(client)
        cpu_before = cpu_seconds(pid)
        results = []
        for start in range(0, requests, concurrency):
            batch = min(concurrency, requests - start)
            results += await asyncio.gather(*(one(host, port, rng) for _ in range(batch)))
        cpu = cpu_seconds(pid) - cpu_before
        after = await model_sums(client)

    def mean_delta(name: str) -> float:
        count = after[f"{name}_count"] - before[f"{name}_count"]
        return (after[f"{name}_sum"] - before[f"{name}_sum"]) / count

    ttfts = [ttft for ttft, _ in results]
    gaps = [gap for _, request_gaps in results for gap in request_gaps]
    client_ttft = sum(ttfts) / len(ttfts) * speed
    client_itl = sum(gaps) / len(gaps) * speed
    model_ttft = mean_delta("vllm:time_to_first_token_seconds")
    model_itl = mean_delta("vllm:inter_token_latency_seconds")
    return {
        "concurrency": concurrency,
        "requests": requests,
        "model_ttft_ms": model_ttft * 1e3,
        "client_ttft_ms": client_ttft * 1e3,
        "ttft_lag_wall_ms": (client_ttft - model_ttft) / speed * 1e3,
        "model_itl_ms": model_itl * 1e3,
        "client_itl_ms": client_itl * 1e3,
        "itl_ratio": client_itl / model_itl,
        "emulator_cpu_ms_per_token": cpu / (requests * OUTPUT_TOKENS) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer and smaller waves")
    parser.add_argument("--speed", type=float, default=1.0, help="emulator speed-up (default 1: real time)")
    parser.add_argument("--out", default="emulator_fidelity.json", help="where to write the JSON result")
    args = parser.parse_args()
    levels = [(1, 4), (16, 32)] if args.quick else [(1, 8), (16, 64), (64, 128)]
    rows = []
    with emulator(args.speed) as (url, pid):
        for concurrency, requests in levels:
            rows.append(
                asyncio.run(wave(url, pid, concurrency=concurrency, requests=requests, speed=args.speed))
            )
    header = f"{'conc':>5} {'reqs':>5} {'TTFT model':>11} {'client':>8} {'lag(wall)':>10} "
    header += f"{'ITL model':>10} {'client':>8} {'ratio':>6} {'CPU/token':>10}"
    print(f"speed {args.speed:g}; times in ms (engine time unless marked wall)")
    print(header)
    for r in rows:
        print(
            f"{r['concurrency']:>5} {r['requests']:>5} "
            f"{r['model_ttft_ms']:>11.2f} {r['client_ttft_ms']:>8.2f} "
            f"{r['ttft_lag_wall_ms']:>10.2f} {r['model_itl_ms']:>10.2f} {r['client_itl_ms']:>8.2f} "
            f"{r['itl_ratio']:>6.3f} {r['emulator_cpu_ms_per_token']:>10.3f}"
        )
    with open(args.out, "w") as out:
        json.dump({"benchmark": "emulator_fidelity", "speed": args.speed, "rows": rows}, out, indent=2)


if __name__ == "__main__":
    main()
