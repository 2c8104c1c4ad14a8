"""The Prometheus reader against a real Prometheus scraping vLLM-format exporters.

Two pools (one disaggregated, one aggregated; one exporter writes the ``vllm_`` spelling) are scraped every
second; the reader's Observation must match what the exporters were told, and when Prometheus stops the
policy must hold rather than scale down.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from autoscaler.adapters import prometheus
from autoscaler.core.observation import ReplicaCounts
from autoscaler.core.phases import Phase
from autoscaler.policy.state import PolicyState
from autoscaler.policy.step import step
from tests.integration.prometheus_server import prometheus_server
from tests.integration.text_exporter import text_exporter
from tests.policy.builders import make_settings

TTFT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5)
BLOCKS = 1000  # of 16 tokens


class FakeEngine:
    """Counters growing at fixed rates since ``start``: what a steadily loaded vLLM exports."""

    def __init__(
        self,
        *,
        rate: float,
        prompt: float,
        output: float,
        hit: float,
        queue: float,
        kv: float,
        ttft: float,
        running: float = 8,
        colon: bool = True,
    ) -> None:
        self.rate, self.prompt, self.output, self.hit = rate, prompt, output, hit
        self.queue, self.kv, self.ttft, self.running = queue, kv, ttft, running
        self.sep = ":" if colon else "_"
        self.start = time.monotonic()

    def render(self) -> str:
        n = self.rate * (time.monotonic() - self.start)
        p = f"vllm{self.sep}"
        labels = 'model_name="m",engine="0"'
        lines = [
            f"# TYPE {p}num_requests_waiting gauge",
            f"{p}num_requests_waiting{{{labels}}} {self.queue}",
            f"# TYPE {p}kv_cache_usage_perc gauge",
            f"{p}kv_cache_usage_perc{{{labels}}} {self.kv}",
            f"# TYPE {p}num_requests_running gauge",
            f"{p}num_requests_running{{{labels}}} {self.running}",
            f"# TYPE {p}cache_config_info gauge",
            f'{p}cache_config_info{{block_size="16",num_gpu_blocks="{BLOCKS}",engine="0"}} 1.0',
            f"# TYPE {p}request_success_total counter",
            f'{p}request_success_total{{{labels},finished_reason="length"}} {n}',
            f"# TYPE {p}prefix_cache_queries_total counter",
            f"{p}prefix_cache_queries_total{{{labels}}} {n * self.prompt}",
            f"# TYPE {p}prefix_cache_hits_total counter",
            f"{p}prefix_cache_hits_total{{{labels}}} {n * self.prompt * self.hit}",
        ]
        for name, mean in (
            ("request_prompt_tokens", self.prompt),
            ("request_generation_tokens", self.output),
        ):
            lines += [
                f"# TYPE {p}{name} histogram",
                f'{p}{name}_bucket{{{labels},le="+Inf"}} {n}',
                f"{p}{name}_sum{{{labels}}} {n * mean}",
                f"{p}{name}_count{{{labels}}} {n}",
            ]
        lines.append(f"# TYPE {p}time_to_first_token_seconds histogram")
        for le in TTFT_BUCKETS:
            lines.append(
                f'{p}time_to_first_token_seconds_bucket{{{labels},le="{le}"}} {n if self.ttft <= le else 0}'
            )
        lines += [
            f'{p}time_to_first_token_seconds_bucket{{{labels},le="+Inf"}} {n}',
            f"{p}time_to_first_token_seconds_sum{{{labels}}} {n * self.ttft}",
            f"{p}time_to_first_token_seconds_count{{{labels}}} {n}",
        ]
        return "\n".join(lines) + "\n"


ENGINES = {
    ("a", Phase.PREFILL): FakeEngine(
        rate=20.0, prompt=1500.0, output=1.0, hit=0.4, queue=3, kv=0.2, ttft=0.3
    ),
    ("a", Phase.DECODE): FakeEngine(
        rate=20.0, prompt=1500.0, output=200.0, hit=0.0, queue=0, kv=0.6, ttft=0.05
    ),
    ("b", Phase.AGGREGATED): FakeEngine(
        rate=7.0, prompt=800.0, output=120.0, hit=0.1, queue=1, kv=0.4, ttft=0.8, colon=False
    ),
}
SETTINGS = prometheus.ReaderSettings(window="5s")


def test_observation_matches_what_the_engines_export(tmp_path: Path) -> None:
    with (
        text_exporter(ENGINES["a", Phase.PREFILL].render) as prefill,
        text_exporter(ENGINES["a", Phase.DECODE].render) as decode,
        text_exporter(ENGINES["b", Phase.AGGREGATED].render) as aggregated,
        prometheus_server(
            [
                (prefill, {"pool": "a", "phase": "prefill"}),
                (decode, {"pool": "a", "phase": "decode"}),
                (aggregated, {"pool": "b", "phase": "aggregated"}),
            ],
            tmp_path,
        ) as url,
    ):
        reader = prometheus.PrometheusReader.connect(url, SETTINGS)
        deadline = time.monotonic() + 30
        while True:
            values = reader.read(now=time.time())
            if all("arrival_rate" in values.get(key, {}) for key in ENGINES) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        time.sleep(6)  # until the series fill the whole rate window (rate() over a partial one reads low)
        counts = ReplicaCounts(current=1, ready=1, starting=0)
        obs_a = reader.observe(
            pool="a", replicas={Phase.PREFILL: counts, Phase.DECODE: counts}, now=time.time()
        )
        obs_b = reader.observe(pool="b", replicas={Phase.AGGREGATED: counts}, now=time.time())

    for (pool, phase), engine in ENGINES.items():
        signals = (obs_a if pool == "a" else obs_b).phases[phase]
        assert signals.arrival_rate == pytest.approx(engine.rate, rel=0.10)
        assert signals.prompt_tokens_mean == pytest.approx(engine.prompt, rel=0.01)
        assert signals.output_tokens_mean == pytest.approx(engine.output, rel=0.01)
        assert signals.prefix_hit_rate == pytest.approx(engine.hit, abs=0.01)
        assert signals.queue_length == engine.queue
        assert signals.kv_usage == pytest.approx(engine.kv)
        assert signals.kv_capacity_tokens == 16 * BLOCKS
        assert signals.running_per_replica == engine.running
        assert signals.kv_tokens_per_running == pytest.approx(engine.kv * 16 * BLOCKS / engine.running)
        assert signals.arrival_cv is None  # no source for it, live or simulated
        low = max((b for b in TTFT_BUCKETS if b < engine.ttft), default=0.0)
        high = min(b for b in TTFT_BUCKETS if b >= engine.ttft)
        assert signals.ttft_observed_s is not None and low <= signals.ttft_observed_s <= high
        assert 0.0 <= signals.age_s < 5.0


def test_prometheus_stopping_makes_the_policy_hold(tmp_path: Path) -> None:
    engine = ENGINES["a", Phase.DECODE]
    with text_exporter(engine.render) as address:
        with prometheus_server([(address, {"pool": "a", "phase": "decode"})], tmp_path) as url:
            reader = prometheus.PrometheusReader.connect(url, SETTINGS)
        # Prometheus is gone now: the read fails with a reason, and a failed read is no data
        with pytest.raises(prometheus.SignalsUnavailable, match="Prometheus query failed"):
            reader.read(now=time.time())
    counts = ReplicaCounts(current=6, ready=6, starting=0)
    observation = prometheus.observation(
        pool="a", values={}, replicas={Phase.PREFILL: counts, Phase.DECODE: counts}, now=time.time()
    )
    decision, _ = step(observation, PolicyState(), make_settings(), now=observation.time)
    assert decision.replicas() == {Phase.PREFILL: 6, Phase.DECODE: 6}
    assert {d.reason for d in decision.phases.values()} == {"HoldMissingSignals"}
