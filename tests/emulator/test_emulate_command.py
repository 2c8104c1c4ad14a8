"""``autoscaler emulate``: help, bad input, and a real process that serves and stops cleanly on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from autoscaler.cli.main import main


def test_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["emulate", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--profile", "--port", "--host", "--speed", "--model", "--role", "--kv-events-endpoint"):
        assert option in text


def test_unknown_profile_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "--profile", "no/such-profile", "--port", "0"]) == 2
    assert "no such profile" in capsys.readouterr().err


def _get_health(client: httpx.Client) -> httpx.Response:
    """The banner is printed just before uvicorn listens: retry refused connections for a while."""
    for _ in range(200):
        try:
            return client.get("/health")
        except httpx.ConnectError:
            time.sleep(0.05)
    raise AssertionError("the emulator never started listening")


def test_serves_then_stops_cleanly_on_ctrl_c() -> None:
    command = [
        sys.executable,
        "-m",
        "autoscaler",
        "emulate",
        "--profile",
        "llama-3.1-8b/h100-tp1",
        "--port",
        "0",
    ]
    with subprocess.Popen(
        [*command, "--speed", "20", "--model", "m"], stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stderr is not None
            banner = proc.stderr.readline()
            url = re.search(r"http://\S+", banner)
            assert url, banner
            with httpx.Client(base_url=url.group(0), timeout=10) as client:
                assert _get_health(client).status_code == 200
                reply = client.post("/v1/completions", json={"model": "m", "prompt": "hi", "max_tokens": 2})
                assert reply.json()["usage"]["completion_tokens"] == 2
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
