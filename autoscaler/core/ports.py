"""Ports: the narrow interfaces through which drivers give the pure layers what they may not take themselves.

The pure layers never read a clock; they receive ``now`` as an argument, and the drivers (the controller,
the Kubernetes adapters) read it from a ``Clock`` they are given, so tests step time by hand.
"""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on the driver's clock (simulated or monotonic)."""
        ...
