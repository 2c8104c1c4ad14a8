"""Serving phases and modes.

A disaggregated deployment has two replica sets, one per phase (prefill, decode). An aggregated deployment
has one replica set that does both; it is described by the single phase ``AGGREGATED``.
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    PREFILL = "prefill"
    DECODE = "decode"
    AGGREGATED = "aggregated"


class ServingMode(enum.StrEnum):
    DISAGGREGATED = "disaggregated"
    AGGREGATED = "aggregated"

    @property
    def phases(self) -> tuple[Phase, ...]:
        """The replica sets a deployment in this mode has, in the order they are reported."""
        if self is ServingMode.DISAGGREGATED:
            return (Phase.PREFILL, Phase.DECODE)
        return (Phase.AGGREGATED,)
