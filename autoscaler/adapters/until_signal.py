"""Serving until SIGTERM or SIGINT, then ending the process by that signal.

The proxy and the endpoint picker stop the same way: stop accepting, let what is under way finish, then end
by the signal received (as uvicorn does), so a supervisor sees why the process ended.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

Serve = Callable[[asyncio.Future[int]], Awaitable[None]]


def run_until_signal(serve: Serve) -> None:
    """Run ``serve(stop)`` on uvloop where installed; ``stop`` gets the signal's number when SIGTERM or SIGINT
    arrives, and ``serve`` returns once it has wound down. The process then ends by that signal."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # uvloop is optional (it builds on Linux and macOS only)
        runner = asyncio.Runner()
    with runner:
        received = runner.run(_until_signal(serve))
    signal.signal(received, signal.SIG_DFL)
    os.kill(os.getpid(), received)


async def _until_signal(serve: Serve) -> int:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[int] = loop.create_future()

    def received(sig: int) -> None:
        if not stop.done():
            stop.set_result(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, received, sig)
    await serve(stop)
    return stop.result()
