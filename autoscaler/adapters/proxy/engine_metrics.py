"""What the proxy reads from one vLLM engine's ``/metrics`` (text exposition format).

Gauges summed over the engine's DP ranks (``engine`` label): ``vllm:num_requests_waiting``,
``vllm:num_requests_running``; ``vllm:kv_cache_usage_perc`` is averaged; ``vllm:cache_config_info``'s
``block_size`` and ``num_gpu_blocks`` labels give the KV capacity in tokens. Both spellings of the prefix
are accepted (``vllm:`` as vLLM serves it, ``vllm_`` after an OpenMetrics rewrite; dependencies.md 1).
"""

from __future__ import annotations

import dataclasses

from prometheus_client.parser import text_string_to_metric_families


@dataclasses.dataclass(frozen=True, slots=True)
class EngineScrape:
    waiting: float
    running: float
    kv_usage: float  # 0..1
    kv_capacity_tokens: int | None  # block_size x num_gpu_blocks, summed over DP ranks; None if absent


def parse(text: str) -> EngineScrape:
    """Parse one scrape; raises ``ValueError`` when the text is not exposition format or lacks the gauges."""
    waiting = running = 0.0
    kv: list[float] = []
    capacity = 0
    seen = set()
    for family in text_string_to_metric_families(text):
        name = family.name.replace("vllm_", "vllm:", 1) if family.name.startswith("vllm_") else family.name
        for sample in family.samples:
            if name == "vllm:num_requests_waiting":
                waiting += sample.value
            elif name == "vllm:num_requests_running":
                running += sample.value
            elif name == "vllm:kv_cache_usage_perc":
                kv.append(sample.value)
            elif name == "vllm:cache_config_info":
                blocks = sample.labels.get("num_gpu_blocks", "")
                size = sample.labels.get("block_size", "")
                if blocks.isdigit() and size.isdigit():
                    capacity += int(blocks) * int(size)
            else:
                continue
            seen.add(name)
    missing = {"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"} - seen
    if missing:
        raise ValueError(f"engine metrics lack {sorted(missing)}")
    return EngineScrape(
        waiting=waiting, running=running, kv_usage=sum(kv) / len(kv), kv_capacity_tokens=capacity or None
    )
