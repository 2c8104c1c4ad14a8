"""What the router knows about one endpoint: its phase, the engine's last scrape, the router's own load.

A mutable record owned by the router (one per endpoint, updated in place on every placement and scrape so
the per-request path allocates nothing per endpoint); scorers read it and never write it.
"""

from __future__ import annotations

from autoscaler.core.phases import Phase


class Endpoint:
    __slots__ = (
        "added_at",
        "base_score",
        "draining",
        "hot",
        "in_flight",
        "in_flight_tokens",
        "kv_usage",
        "name",
        "phase",
        "prefill_tokens",
        "queue_length",
        "running",
        "slot",
    )

    def __init__(self, name: str, *, phase: Phase, slot: int, added_at: float) -> None:
        self.name = name
        self.phase = phase
        self.slot = slot  # its slot in the block index
        self.added_at = added_at  # for slow start
        self.draining = False
        # From the engine's /metrics (as of the last scrape).
        self.queue_length = 0.0
        self.running = 0.0
        self.kv_usage = 0.0
        # Derived from the scrape by the router when it changes, so requests need not recompute them.
        self.base_score = 0.0  # weighted sum of the scorers that read only the scrape
        self.hot = False  # past an overload threshold on queue or KV use
        # The router's own accounting of the requests it placed here and that have not finished.
        self.in_flight = 0  # requests
        self.in_flight_tokens = 0  # uncached prompt tokens still to prefill here + expected output tokens
        self.prefill_tokens = 0  # uncached prompt tokens still to prefill here: its prefill backlog

    def __repr__(self) -> str:
        return f"Endpoint({self.name!r}, {self.phase}, in_flight={self.in_flight})"
