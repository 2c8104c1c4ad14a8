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
        "in_flight_at_scrape",
        "in_flight_tokens",
        "kv_capacity_tokens",
        "kv_usage",
        "name",
        "phase",
        "prefill_tokens",
        "queue_length",
        "running",
        "scraped_kv_usage",
        "scraped_queue_length",
        "slot",
        "tokens_at_scrape",
    )

    def __init__(self, name: str, *, phase: Phase, slot: int, added_at: float) -> None:
        self.name = name
        self.phase = phase
        self.slot = slot  # its slot in the block index
        self.added_at = added_at  # for slow start
        self.draining = False
        self.kv_capacity_tokens = 1  # the engine's KV cache, in tokens
        # From the engine's /metrics (as of the last scrape), and the router's own counts at that moment.
        self.scraped_queue_length = 0.0
        self.running = 0.0
        self.scraped_kv_usage = 0.0
        self.in_flight_at_scrape = 0
        self.tokens_at_scrape = 0
        # Estimated by the router whenever the scrape or its own counts change (``AffinityRouter._rescore``):
        # the scrape corrected by the requests and tokens placed and released here since.
        self.queue_length = 0.0
        self.kv_usage = 0.0
        self.base_score = 0.0  # weighted sum of the scorers that read only the endpoint's state
        self.hot = False  # past an overload threshold on queue, KV use or in-flight tokens
        # The router's own accounting of the requests it placed here and that have not finished.
        self.in_flight = 0  # requests
        # Uncached prompt tokens still to prefill here + expected output tokens (+ the prompt on a decode
        # endpoint, whose steps read its KV).
        self.in_flight_tokens = 0
        self.prefill_tokens = 0  # uncached prompt tokens still to prefill here: its prefill backlog

    def __repr__(self) -> str:
        return f"Endpoint({self.name!r}, {self.phase}, in_flight={self.in_flight})"
