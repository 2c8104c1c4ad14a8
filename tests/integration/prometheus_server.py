"""A real Prometheus server for tests: the Debian package, on 127.0.0.1, a temp TSDB, 1 s scrapes.

``PrometheusServer(targets, tmp_path)`` writes a config whose static targets carry the labels the reader
groups by (``pool``, ``phase``), starts ``prometheus`` on a free port and waits until it is ready.
Tests that need it skip, loudly, when the binary is absent (``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("SKIPPED LOUDLY: the prometheus binary is not installed (apt-get install prometheus)")
    return binary


@contextmanager
def prometheus_server(
    targets: Sequence[tuple[str, Mapping[str, str]]], workdir: Path, *, scrape_interval: str = "1s"
) -> Iterator[str]:
    """Run Prometheus scraping ``targets`` (``host:port``, labels); yields its base URL."""
    binary = prometheus_binary()
    port = free_port()
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": f"target-{i}",
                "scrape_interval": scrape_interval,
                "static_configs": [{"targets": [address], "labels": dict(labels)}],
            }
            for i, (address, labels) in enumerate(targets)
        ],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"prometheus did not start: {(workdir / 'prometheus.log').read_text()[-2000:]}"
                )
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
