"""Run a server that behaves like one vLLM replica in real time, its latencies from the engine model.

The same engine model as the simulator (continuous batching, chunked prefill, KV cache with prefix caching)
runs at wall-clock pace behind vLLM's OpenAI API, ``/metrics`` (vLLM's metric names) and, optionally, vLLM's
KV events over ZMQ. It is how the router, the controller and Prometheus are run end to end on a laptop.

Examples:
  autoscaler emulate --profile llama-3.1-8b/h100-tp1 --port 8000
  autoscaler emulate --profile llama-3.1-8b/h100-tp1 --port 8001 --role decode --speed 10 \\
      --kv-events-endpoint tcp://127.0.0.1:5557 --kv-events-topic kv

--speed K runs the engine K times faster than real time: a client sees every latency divided by K, while
/metrics keeps the modelled replica's own seconds. Ctrl-C stops the server cleanly.
Exit codes: 0 stopped, 1 failed while serving, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from autoscaler.cli import checks
from autoscaler.config.profiles import ProfileError, load_profile
from autoscaler.emulator.server import KvEventsConfig, bind_socket, serve
from autoscaler.emulator.settings import EmulatorSettings, Role
from autoscaler.routing.hashing import PreciseAlgo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--profile", required=True, help="profile file, or a name under models/ (e.g. llama-3.1-8b/h100-tp1)"
    )
    parser.add_argument("--port", type=int, required=True, help="HTTP port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="engine seconds per wall-clock second (default 1; >1 is faster)",
    )
    parser.add_argument("--model", help="served model name (default: the profile's model)")
    parser.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=Role.BOTH.value,
        help="P/D role: prefill answers do_remote_decode, decode takes do_remote_prefill (default both)",
    )
    parser.add_argument(
        "--max-model-len", type=int, default=8192, help="context limit in tokens (default 8192)"
    )
    parser.add_argument(
        "--num-gpu-blocks-override",
        type=int,
        help="KV-cache size in blocks instead of the profile's capacity",
    )
    parser.add_argument(
        "--prefix-caching-hash-algo",
        choices=[a.value for a in PreciseAlgo],
        default=PreciseAlgo.SHA256.value,
        help="vLLM's block hash, as published in KV events (default sha256)",
    )
    parser.add_argument(
        "--kv-events-endpoint",
        help="publish vLLM KV events on this ZMQ endpoint (binds if it has '*' or '::', else connects)",
    )
    parser.add_argument("--kv-events-topic", default="", help="ZMQ topic of the KV events (default empty)")


def _fail(message: str) -> int:
    print(f"autoscaler emulate: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    try:
        checks.port("--port", args.port)
        profile = load_profile(args.profile)
        settings = EmulatorSettings(
            model=args.model or profile.model,
            speed=args.speed,
            role=Role(args.role),
            max_model_len=args.max_model_len,
            num_gpu_blocks_override=args.num_gpu_blocks_override,
            hash_algo=PreciseAlgo(args.prefix_caching_hash_algo),
            host=args.host,
        )
        sock = bind_socket(args.host, args.port)
    except (ProfileError, ValueError, OSError) as exc:
        return _fail(str(exc))
    kv_events = (
        KvEventsConfig(args.kv_events_endpoint, args.kv_events_topic) if args.kv_events_endpoint else None
    )
    host, port = sock.getsockname()[:2]
    print(
        f"emulating {profile.name} as '{settings.model}' ({settings.role.value}, speed {settings.speed:g}) "
        f"on http://{host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        asyncio.run(serve(profile, settings, sock=sock, kv_events=kv_events))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # a failure while serving, reported as such
        print(f"autoscaler emulate: failed: {exc}", file=sys.stderr)
        return 1
    return 0
