"""``autoscaler <verb>`` as a child process for integration tests: started, healthy, then stopped."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout_s}s")


@contextmanager
def autoscaler_process(args: list[str], url: str, log: Path) -> Iterator[str]:
    """Run ``autoscaler *args`` (its output to ``log``) until the block ends; yields ``url`` once healthy."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "autoscaler", *args], stdout=out, stderr=subprocess.STDOUT
        )
        try:
            wait_healthy(url, process)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
