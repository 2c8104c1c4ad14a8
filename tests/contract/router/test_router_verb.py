"""`autoscaler router --config FILE` serves the proxy and stops cleanly; a bad config exits 2, one line."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import httpx

from tests.contract.router.conftest import refused_url, serve
from tests.contract.router.fake_engine import JSON_ANSWER, FakeEngine, completion


async def test_verb_serves_and_stops_on_sigterm(tmp_path: Path, client: httpx.AsyncClient) -> None:
    engine = FakeEngine("a")
    port = int(refused_url().rsplit(":", 1)[1])
    async with serve(engine.app) as engine_url:
        config = tmp_path / "router.yaml"
        config.write_text(f"endpoints:\n  static:\n    - url: {engine_url}\nscrape_interval_s: 0.1\n")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "autoscaler",
            "router",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        )
        try:
            for _ in range(300):
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            r = await client.post(f"http://127.0.0.1:{port}/v1/completions", content=completion())
            assert (r.status_code, r.content) == (200, JSON_ANSWER)
            assert [k for k, _ in r.headers.multi_items()].count("date") == 1  # the engine's, not two
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 20)
    assert code == -signal.SIGTERM  # graceful shutdown, then uvicorn ends by the signal it caught


async def test_bad_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "router.yaml"
    config.write_text("endpoints: {static: [{url: 'not a url'}]}\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "autoscaler",
        "router",
        "--config",
        str(config),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert f"{config}: endpoints.static.0.url" in err.decode()
    assert len(err.decode().strip().splitlines()) == 1


async def test_an_address_it_cannot_listen_on_exits_2_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(f"endpoints:\n  static:\n    - url: {refused_url()}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "autoscaler",
            "router",
            "--config",
            str(config),
            "--port",
            str(taken.getsockname()[1]),
            "--log-level",
            "error",
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert err.decode().startswith("autoscaler router: cannot listen on 127.0.0.1:")  # loopback by default
    assert len(err.decode().strip().splitlines()) == 1
