"""The port through which a cycle reads its signals (``adapters.prometheus_signals`` reads them live).

A cycle needs every signal of every (pool, phase) at one time; where they come from is the composition
root's choice (``cli.controller``), so tests give the controller a reader that fails or answers on cue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from autoscaler.adapters.prometheus import ReaderSettings
from autoscaler.core.phases import Phase

Values = Mapping[tuple[str, Phase], Mapping[str, float]]
"""Per (pool, phase), the signals ``core.signal_derivation`` derived from Prometheus' families, by name."""


class SignalReader(Protocol):
    async def read(self, settings: ReaderSettings, *, now: float) -> Values:
        """Every signal of every (pool, phase); raises ``SignalsUnavailable`` when Prometheus fails."""
        ...
